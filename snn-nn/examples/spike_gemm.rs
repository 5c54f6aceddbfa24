//! Spike products by table lookup against the dense GEMM, at the shapes of
//! the paper's MNIST network (T = 8): conv2's im2col product and FC1.
//!
//!     cargo run --release -p snn-nn --example spike_gemm [-- density]
//!
//! Prints the median of 5 runs of each product, in milliseconds.

use snn_core::gemm::{matmul, Op};
use snn_nn::spike_gemm::{self, SpikeMatrix};
use snn_nn::spike_sparse::{self, SpikeLists};
use std::time::Instant;

fn median_ms(mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[2]
}

fn main() {
    let density: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0.5);
    let mut seed = 1u64;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (seed >> 40) as f64 / (1u64 << 24) as f64
    };
    println!("density {density}");
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "shape m x k x n",
        "dense fwd",
        "table fwd",
        "lists fwd",
        "dense dW",
        "table dW",
        "lists dW",
        "unpack+dW",
        "pack"
    );
    for (label, m, k, n) in [
        ("conv2 b16", 128 * 196, 1152, 128),
        ("conv2 b64", 512 * 196, 1152, 128),
        ("fc1 b16", 128, 6272, 2048),
        ("fc1 b64", 512, 6272, 2048),
        ("fc2 b64", 512, 2048, 100),
    ] {
        let x: Vec<f32> = (0..m * k)
            .map(|_| if next() < density { 1.0 } else { 0.0 })
            .collect();
        let w: Vec<f32> = (0..k * n).map(|_| next() as f32 - 0.5).collect();
        let g: Vec<f32> = (0..m * n).map(|_| next() as f32 - 0.5).collect();
        let mut out = vec![0.0f32; m * n];
        let mut dw = vec![0.0f32; k * n];
        let dense_fwd = median_ms(|| matmul([m, n, k], Op::N(&x), Op::N(&w), &mut out, false));
        let dense_dw = median_ms(|| matmul([k, n, m], Op::T(&x), Op::N(&g), &mut dw, false));
        let pack = median_ms(|| {
            SpikeMatrix::pack(&x, m, k);
        });
        let s = SpikeMatrix::pack(&x, m, k).expect("binary");
        let spike_fwd = median_ms(|| spike_gemm::matmul(&s, &w, n, &mut out));
        let spike_dw = median_ms(|| spike_gemm::weight_grad(&s, &g, n, &mut dw));
        let lists_fwd =
            median_ms(|| spike_sparse::matmul(&SpikeLists::from_bits(&s), &w, n, &mut out));
        let unpacked_dw = median_ms(|| spike_gemm::weight_grad_dense(&s, &g, n, &mut dw));
        let lists_dw =
            median_ms(|| spike_sparse::weight_grad(&SpikeLists::from_bits(&s), &g, n, &mut dw));
        println!(
            "{label:<10} {:>13} {dense_fwd:>10.1} {spike_fwd:>10.1} {lists_fwd:>10.1} {dense_dw:>10.1} {spike_dw:>10.1} {lists_dw:>10.1} {unpacked_dw:>10.1} {pack:>8.1}",
            format!("{m}x{k}x{n}")
        );
    }
}
