//! A spiking layer and the `k x k` max-pool after it, fused (CPU), with
//! and without gradients.
//!
//! Unfused, the neuron writes all `T` spike maps (`[T x B, H, W, C]`, the
//! network's largest tensor: 51 MB for MNIST's first layer at batch 16),
//! the pool reads them back, and in training the pool writes their gradient
//! for the neuron's BPTT to read. Here each task owns one band of `k` image
//! rows of one image, runs the neuron's [`HostStep`] over time on it, and
//! pools each step's spikes while they are still in cache: only the pooled
//! maps (a `k^2`-th of the size) are written, plus in training a byte per
//! pooled value naming its window's winner. Backward works band by band
//! too, the neuron recomputing its membranes from the band's currents.

use super::batchnorm::{BnOperands, Norm, Stats};
use super::bn_spike::scalar_params;
use crate::Nhwc;
use rayon::prelude::*;
use snn_core::dfdx::prelude::*;
use snn_core::slices::pieces_of_planes;
use snn_core::spec::HostStep;
use snn_core::{Error, FlatT, Result};

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

/// A fused layer cut into tasks: task `i` is band `i % ho` (`k` image rows)
/// of image `i / ho`, over all steps.
#[derive(Clone, Copy)]
struct Bands {
    shape: SpikePool,
    /// The currents are one image map repeated at every step.
    is_static: bool,
    /// Pooled rows per image.
    ho: usize,
    /// Floats of one band and of one pooled row.
    band: usize,
    out_row: usize,
    tasks: usize,
}

impl Bands {
    fn new(shape: SpikePool, is_static: bool) -> Self {
        let SpikePool {
            images, h, w, c, k, ..
        } = shape;
        let ho = h / k;
        Self {
            shape,
            is_static,
            ho,
            band: k * w * c,
            out_row: (w / k) * c,
            tasks: images * ho,
        }
    }

    /// Where task `task`'s band starts in the currents at step `t`.
    fn src(&self, task: usize, t: usize) -> usize {
        let s = self.shape;
        let (b, y) = (task / self.ho, task % self.ho);
        let image = if self.is_static { b } else { t * s.images + b };
        (image * s.h + y * s.k) * s.w * s.c
    }
}

/// Runs `neuron` on its currents (`[B, H, W, C]`, the same at every step,
/// or `[T x B, H, W, C]` time-major) and max-pools its spikes into `[T x B,
/// H / k, W / k, C]` (the neuron's `forward` followed by `pool::max_pool`),
/// on the tape: `x` holds the currents, or with `bn` batch norm's input
/// (the currents are then its output, evaluated where they are read:
/// [`Norm::apply`]); `params` the neuron's parameters in the order of its
/// `param_keys` (each one value). In training, forward keeps `x` and,
/// per pooled value, which cell of its window won (a byte); backward
/// scatters the pooled gradient to the winners and runs the neuron's own
/// backward pass band by band, so neither the `T` spike maps nor their
/// gradient ever exist whole. The winner is the first maximum in
/// row-major window order, by the same `pool::max_pool_band` as
/// `pool::max_pool`. Returns the pooled spikes, how many fired and, with
/// `bn`, the statistics it normalised with.
pub fn spike_max_pool_taped(
    neuron: Box<dyn HostStep>,
    x: Nhwc,
    params: Vec<FlatT>,
    shape: SpikePool,
    bn: Option<BnOperands>,
) -> Result<(Nhwc, usize, Option<Stats>)> {
    let (n, h, w, c) = *x.shape();
    let is_static = shape.check(n * h * w * c)?;
    let x = x.reshape_like(&(n, h, w, c));
    let (x, tape) = x.split_tape();
    let (params, tape) = scalar_params(params, tape)?;
    let xs = snn_core::host::read(&x);
    let (bn, mut tape) = match bn {
        Some(bn) => {
            let (folded, tape) = bn.fold(&xs, c, tape);
            (Some(folded), tape)
        }
        None => (None, tape),
    };
    let norm = bn.as_ref().map(|b| &b.norm);
    let bands = Bands::new(shape, is_static);
    let grad = snn_core::grad::is_enabled();
    let mut arg = vec![
        0u8;
        if grad {
            shape.steps * bands.tasks * bands.out_row
        } else {
            0
        }
    ];
    let winners = grad.then_some(&mut arg[..]);
    let (pooled, fired) = forward_bands(neuron.as_ref(), (&xs, norm), bands, winners);
    let stats = norm.map(Norm::stats);
    let (steps, k) = (shape.steps, shape.k);
    let out = x
        .device()
        .tensor_from_vec(pooled, (steps * shape.images, h / k, w / k, c));
    if !grad {
        return Ok((out.put_tape(tape), fired, stats));
    }
    // Ghosts: backward re-reads the input from its own copy.
    let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
    tape.add_backward_op(move |grads| {
        let g_out = snn_core::host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
        let band = Backward {
            neuron: neuron.as_ref(),
            currents: (&xs, bn.as_ref().map(|b| &b.norm)),
            arg: &arg,
            g_out: &g_out,
        };
        let g_params = match &bn {
            // The currents' gradient is batch norm's output gradient.
            Some(bn) => {
                let mut g = vec![0.0f32; xs.len()];
                let g_params = band.run(bands, &mut g);
                let dx = bn.backward(&xs, g, grads)?;
                snn_core::host::add_grad_owned(grads.get_or_alloc_mut(&x_ghost)?, dx);
                g_params
            }
            None => band.run(bands, grads.get_or_alloc_mut(&x_ghost)?),
        };
        for (p, g) in params.iter().zip(g_params) {
            grads.get_or_alloc_mut(p)?[0] += g as f32;
        }
        Ok(())
    });
    Ok((out.put_tape(tape), fired, stats))
}

/// What a fused layer reads its currents from: the values themselves, or
/// batch norm's input and its constants.
type Currents<'a> = (&'a [f32], Option<&'a Norm>);

/// Currents `at..at + out.len()` into `out`.
fn read_currents((xs, norm): Currents<'_>, at: usize, out: &mut [f32]) {
    match norm {
        Some(norm) => norm.apply(xs, at, out),
        None => out.copy_from_slice(&xs[at..at + out.len()]),
    }
}

/// The forward pass, task (image b, band y) by task: the neuron on the
/// band's `k` image rows over time, each step pooled into pooled row y of
/// image b. With `arg`, also the winner of each pooled value, laid out
/// `[task, T, W / k x C]`.
fn forward_bands(
    neuron: &dyn HostStep,
    (xs, norm): Currents<'_>,
    bands: Bands,
    arg: Option<&mut [u8]>,
) -> (Vec<f32>, usize) {
    let (band, out_row, tasks) = (bands.band, bands.out_row, bands.tasks);
    let SpikePool { steps, w, c, k, .. } = bands.shape;
    let mut out = vec![0.0f32; steps * tasks * out_row];
    let rows = pieces_of_planes(&mut out, tasks * out_row, out_row);
    let args: Vec<Option<&mut [u8]>> = match arg {
        Some(a) => a.chunks_mut((steps * out_row).max(1)).map(Some).collect(),
        None => (0..tasks).map(|_| None).collect(),
    };
    let state_len = neuron.state_len();
    let fired = rows
        .into_par_iter()
        .zip(args)
        .enumerate()
        .map_init(
            || {
                let band_of = |len| vec![0.0f32; len];
                (band_of(state_len * band), band_of(band), band_of(band))
            },
            |(state, spikes, normalised), (task, (mut dst, mut arg))| {
                state.fill(0.0);
                let mut fired = 0;
                for (t, dst) in dst.iter_mut().enumerate() {
                    let src = bands.src(task, t);
                    let currents = match norm {
                        Some(norm) => {
                            norm.apply(xs, src, normalised);
                            &normalised[..]
                        }
                        None => &xs[src..src + band],
                    };
                    neuron.step(currents, state, spikes);
                    fired += spikes.iter().filter(|&&s| s != 0.0).count();
                    let arg_t = arg.as_deref_mut().map(|a| &mut a[t * out_row..][..out_row]);
                    super::pool::max_pool_band(spikes, dst, arg_t, w, c, k);
                }
                fired
            },
        )
        .sum();
    (out, fired)
}

/// What the backward pass reads.
struct Backward<'a> {
    neuron: &'a dyn HostStep,
    currents: Currents<'a>,
    /// Winners, `[task, T, W / k x C]`.
    arg: &'a [u8],
    /// The pooled output's gradient, `[T x B, H / k, W / k, C]`.
    g_out: &'a [f32],
}

impl Backward<'_> {
    /// Adds the currents' gradient into `gx` (their layout) and returns
    /// the parameters' gradients, task by task as in the forward pass.
    fn run(&self, bands: Bands, gx: &mut [f32]) -> Vec<f64> {
        let (band, out_row, tasks) = (bands.band, bands.out_row, bands.tasks);
        let SpikePool { steps, w, c, k, .. } = bands.shape;
        let x_rows = if bands.is_static { 1 } else { steps };
        let gx_rows = pieces_of_planes(gx, tasks * band, band);
        let parts: Vec<Vec<f64>> = gx_rows
            .into_par_iter()
            .enumerate()
            .map_init(
                || {
                    let scratch = vec![0.0f32; steps * band];
                    (scratch.clone(), scratch.clone(), scratch)
                },
                |(g_spikes, xb, gxb), (task, mut dst)| {
                    g_spikes.fill(0.0);
                    let arg = &self.arg[task * steps * out_row..][..steps * out_row];
                    for t in 0..steps {
                        let g = &self.g_out[(t * tasks + task) * out_row..][..out_row];
                        let gs = &mut g_spikes[t * band..][..band];
                        for (j, (&gv, &slot)) in g.iter().zip(&arg[t * out_row..]).enumerate() {
                            let (ox, ch, slot) = (j / c, j % c, slot as usize);
                            gs[((slot / k) * w + ox * k + slot % k) * c + ch] = gv;
                        }
                    }
                    let (xb, gxb) = (&mut xb[..x_rows * band], &mut gxb[..x_rows * band]);
                    for (t, xr) in xb.chunks_exact_mut(band).enumerate() {
                        let src = bands.src(task, t);
                        read_currents(self.currents, src, xr);
                    }
                    gxb.fill(0.0);
                    let g_params = self.neuron.backward(xb, steps, g_spikes, gxb);
                    for (d, src) in dst.iter_mut().zip(gxb.chunks_exact(band)) {
                        d.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    }
                    g_params
                },
            )
            .collect();
        parts.into_iter().fold(Vec::new(), |mut sum, p| {
            sum.resize(sum.len().max(p.len()), 0.0);
            sum.iter_mut().zip(p).for_each(|(s, v)| *s += v);
            sum
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused layer on plain currents, without a tape: the pooled
    /// spikes and how many fired before pooling.
    fn spike_max_pool(
        neuron: &dyn HostStep,
        currents: &[f32],
        shape: SpikePool,
    ) -> Result<(Vec<f32>, usize)> {
        let bands = Bands::new(shape, shape.check(currents.len())?);
        Ok(forward_bands(neuron, (currents, None), bands, None))
    }

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
