//! A spiking layer and the `k x k` max-pool after it, fused, for passes
//! without gradients (CPU).
//!
//! Unfused, the neuron writes all `T` spike maps (`[T x B, H, W, C]`, the
//! network's largest tensor: 51 MB for MNIST's first layer at batch 64),
//! and the pool reads them back. Here each task owns one band of `k` image
//! rows of one image, runs the neuron's [`HostStep`] over time on it, and
//! pools each step's spikes while they are still in cache: only the pooled
//! maps (a `k^2`-th of the size) are written.

use rayon::prelude::*;
use snn_core::spec::HostStep;
use snn_core::{Error, Result};

/// The shape of a fused spike + max-pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpikePool {
    pub steps: usize,
    pub images: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    /// Pooling window and stride.
    pub k: usize,
}

impl SpikePool {
    fn check(&self, currents: usize) -> Result<bool> {
        let Self { steps, h, w, k, .. } = *self;
        if k == 0 || h % k != 0 || w % k != 0 {
            return Err(Error::shape(
                "max-pool",
                format!("input {h}x{w} is not divisible by window {k}"),
            ));
        }
        let image = self.images * h * w * self.c;
        if currents == image {
            Ok(true)
        } else if currents == steps * image {
            Ok(false)
        } else {
            Err(Error::shape(
                "spiking layer input",
                format!("{currents} currents for {steps} steps of {image}"),
            ))
        }
    }
}

/// Runs `neuron` on `currents` (`[B, H, W, C]`, the same at every step, or
/// `[T x B, H, W, C]` time-major) and max-pools its spikes: returns the
/// pooled spikes `[T x B, H / k, W / k, C]` and how many spikes fired
/// before pooling (for the layer's firing rate). Equals the neuron's
/// `forward` followed by `pool::max_pool`.
pub fn spike_max_pool(
    neuron: &dyn HostStep,
    currents: &[f32],
    shape: SpikePool,
) -> Result<(Vec<f32>, usize)> {
    let is_static = shape.check(currents.len())?;
    let SpikePool {
        steps,
        images,
        h,
        w,
        c,
        k,
    } = shape;
    let (ho, wo) = (h / k, w / k);
    let (band, out_row) = (k * w * c, wo * c);
    let mut out = vec![0.0f32; steps * images * ho * out_row];
    // Task (image b, band y) writes pooled row y of image b at every step:
    // T disjoint slices of `out`, handed out before the tasks start.
    let tasks = images * ho;
    let mut rows: Vec<Vec<&mut [f32]>> = (0..tasks).map(|_| Vec::with_capacity(steps)).collect();
    for plane in out.chunks_mut((tasks * out_row).max(1)) {
        for (task, row) in plane.chunks_mut(out_row.max(1)).enumerate() {
            rows[task].push(row);
        }
    }
    let state_len = neuron.state_len();
    let fired = rows
        .into_par_iter()
        .enumerate()
        .map_init(
            || (vec![0.0f32; state_len * band], vec![0.0f32; band]),
            |(state, spikes), (task, mut dst)| {
                let (b, y) = (task / ho, task % ho);
                state.fill(0.0);
                let mut fired = 0;
                for (t, dst) in dst.iter_mut().enumerate() {
                    let image = if is_static { b } else { t * images + b };
                    let src = (image * h + y * k) * w * c;
                    neuron.step(&currents[src..src + band], state, spikes);
                    fired += spikes.iter().filter(|&&s| s != 0.0).count();
                    pool_band(spikes, dst, w, c, k);
                }
                fired
            },
        )
        .sum();
    Ok((out, fired))
}

/// Max over each `k x k` window of a band of `k` rows (`[k, w, c]`) into
/// one pooled row (`[w / k, c]`).
fn pool_band(band: &[f32], dst: &mut [f32], w: usize, c: usize, k: usize) {
    dst.fill(f32::NEG_INFINITY);
    for row in band.chunks_exact(w * c) {
        for (x, src) in row.chunks_exact(c).enumerate() {
            let cell = &mut dst[(x / k) * c..][..c];
            cell.iter_mut().zip(src).for_each(|(d, &v)| *d = d.max(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A neuron that fires when its accumulated input reaches 1, then
    /// resets: spikes are easy to predict by hand.
    struct Counter;

    impl HostStep for Counter {
        fn step(&self, x: &[f32], state: &mut [f32], spikes: &mut [f32]) {
            for ((s, &x), o) in state.iter_mut().zip(x).zip(spikes.iter_mut()) {
                *s += x;
                *o = if *s >= 1.0 { 1.0 } else { 0.0 };
                if *o == 1.0 {
                    *s = 0.0;
                }
            }
        }
    }

    #[test]
    fn static_input_pools_each_step_by_hand() {
        // One image 2x4, one channel, k = 2: two windows.
        // Left window: inputs 0.5 (fires every 2nd step) and 0 elsewhere.
        // Right window: one input of 1.0 (fires every step).
        let x = [0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        let shape = SpikePool {
            steps: 3,
            images: 1,
            h: 2,
            w: 4,
            c: 1,
            k: 2,
        };
        let (out, fired) = spike_max_pool(&Counter, &x, shape).unwrap();
        assert_eq!(out, vec![0.0, 1.0, 1.0, 1.0, 0.0, 1.0]);
        assert_eq!(fired, 4);
    }

    #[test]
    fn timed_input_reads_each_steps_map_and_keeps_images_apart() {
        // Two images 2x2, two channels, k = 2, two steps (time-major).
        // Image 1 channel 1 gets 1.0 at step 1 only; the rest is 0.
        let mut x = vec![0.0f32; 2 * 2 * 4 * 2];
        let at = |t: usize, b: usize, pos: usize, ch: usize| ((t * 2 + b) * 4 + pos) * 2 + ch;
        x[at(1, 1, 3, 1)] = 1.0;
        x[at(0, 0, 2, 0)] = 0.6;
        x[at(1, 0, 2, 0)] = 0.6;
        let shape = SpikePool {
            steps: 2,
            images: 2,
            h: 2,
            w: 2,
            c: 2,
            k: 2,
        };
        let (out, fired) = spike_max_pool(&Counter, &x, shape).unwrap();
        // [t][b][ch]: image 0 channel 0 fires at step 1 (0.6 + 0.6).
        assert_eq!(out, vec![0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!(fired, 2);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let shape = SpikePool {
            steps: 2,
            images: 1,
            h: 3,
            w: 2,
            c: 1,
            k: 2,
        };
        let err = spike_max_pool(&Counter, &[0.0; 6], shape).unwrap_err();
        assert!(err.to_string().contains("not divisible"), "{err}");
        let shape = SpikePool { h: 2, ..shape };
        let err = spike_max_pool(&Counter, &[0.0; 5], shape).unwrap_err();
        assert!(err.to_string().contains("5 currents"), "{err}");
    }
}
