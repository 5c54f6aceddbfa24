//! How much arithmetic the layers' products would cost done densely, and
//! how fast this machine does dense arithmetic: `snn bench` divides the one
//! by the other to print the dense-GEMM floor of a step beside its time.
//!
//! Every convolution, transposed convolution and linear layer records the
//! multiply-accumulates of its forward product as if its input were a dense
//! float matrix, whichever kernel runs it (a spike product by table lookup
//! does far less; the floor says what a dense engine could not beat).
//! So do the scoring networks' convolutions and linear products
//! (`snn-metrics`). Element-wise work (neurons, batch norm, pools,
//! decoders, resizing) is not counted.

use crate::Dev;
use std::cell::Cell;
use std::time::Instant;

thread_local! {
    // Per thread: layers run on the thread that calls the model (the
    // kernels fan out inside), and tests running side by side stay apart.
    static MACS: Cell<u64> = const { Cell::new(0) };
}

/// Adds `macs` multiply-accumulates to this thread's running count.
pub fn record(macs: usize) {
    MACS.with(|m| m.set(m.get() + macs as u64));
}

/// This thread's count since its last `take`, and resets it.
pub fn take() -> u64 {
    MACS.with(|m| m.replace(0))
}

/// Side of the square product [`gemm_peak_flops`] times.
const PEAK_N: usize = 1024;

/// The best of a few runs of a large square product, in floating-point
/// operations per second (a multiply-accumulate is two): on the CPU,
/// [`crate::gemm::matmul`] on all cores, the product the layers' host
/// kernels use.
#[cfg(not(feature = "cuda"))]
pub fn gemm_peak_flops(_dev: &Dev) -> f64 {
    use crate::gemm::{matmul, Op};
    let (a, b) = peak_operands();
    let mut c = vec![0.0f32; PEAK_N * PEAK_N];
    best_rate(|| matmul([PEAK_N; 3], Op::N(&a), Op::N(&b), &mut c, false))
}

/// [`gemm_peak_flops`] with CUDA: dfdx's matmul on `dev`.
#[cfg(feature = "cuda")]
pub fn gemm_peak_flops(dev: &Dev) -> f64 {
    use dfdx::prelude::*;
    let (a, b) = peak_operands();
    let shape = (PEAK_N, PEAK_N);
    let (a, b) = (dev.tensor_from_vec(a, shape), dev.tensor_from_vec(b, shape));
    best_rate(|| {
        let c = a.clone().matmul(b.clone());
        dev.synchronize();
        drop(c);
    })
}

fn peak_operands() -> (Vec<f32>, Vec<f32>) {
    let n = PEAK_N * PEAK_N;
    (
        (0..n).map(|i| (i % 7) as f32 * 0.1).collect(),
        (0..n).map(|i| (i % 5) as f32 * 0.1).collect(),
    )
}

/// Best of 8 runs of `product` (~5-15 ms each): the rate the machine
/// reaches when nothing else takes a core, as far as a short measurement
/// can tell.
fn best_rate(mut product: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..8 {
        let t0 = Instant::now();
        product();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    2.0 * (PEAK_N * PEAK_N * PEAK_N) as f64 / best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_thread_and_take_resets_them() {
        take();
        record(3);
        record(4);
        std::thread::spawn(|| record(100)).join().expect("thread");
        assert_eq!(take(), 7);
        assert_eq!(take(), 0);
    }

    #[test]
    fn the_peak_is_a_positive_finite_rate() {
        let p = gemm_peak_flops(&crate::device::create(0).expect("device"));
        assert!(p.is_finite() && p > 1e6, "{p}");
    }
}
