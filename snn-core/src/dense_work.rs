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
use dfdx::prelude::*;
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

/// The best of a few runs of a large square product on `dev` (dfdx's
/// matmul: the `gemm` crate on all cores, as the layers' kernels use it),
/// in floating-point operations per second (a multiply-accumulate is two).
pub fn gemm_peak_flops(dev: &Dev) -> f64 {
    const N: usize = 1024;
    let a = dev.tensor_from_vec((0..N * N).map(|i| (i % 7) as f32 * 0.1).collect(), (N, N));
    let b = dev.tensor_from_vec((0..N * N).map(|i| (i % 5) as f32 * 0.1).collect(), (N, N));
    let mut best = f64::INFINITY;
    // Best of 8 (~15 ms each): the rate the machine reaches when nothing
    // else takes a core, as far as a short measurement can tell.
    for _ in 0..8 {
        let t0 = Instant::now();
        let c = a.clone().matmul(b.clone());
        dev.synchronize();
        drop(c);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    2.0 * (N * N * N) as f64 / best
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
