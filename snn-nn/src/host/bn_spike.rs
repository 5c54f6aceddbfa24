//! Batch norm and the spiking neuron after it, fused (CPU), on the tape.
//!
//! Unfused, batch norm keeps its input for backward and the neuron keeps
//! its input (batch norm's output): two full-size float copies of every
//! spiking layer's currents live until backward (524 MB each for the
//! FSVAE decoder's last layer at batch 250). Here only batch norm's input
//! is kept; the neuron's currents are evaluated from it chunk by chunk
//! with [`Norm::apply`], in the forward pass and again in backward, by the
//! expression batch norm itself uses, so the floats are the same. Backward
//! runs the neuron's pass through time chunk by chunk into the output
//! gradient's own buffer (it becomes batch norm's output gradient), then
//! batch norm's closed form in place.

use super::batchnorm::{BnOperands, Norm, Stats};
use crate::Rows;
use rayon::prelude::*;
use snn_core::dfdx::prelude::*;
use snn_core::slices::pieces_of_planes;
use snn_core::spec::HostStep;
use snn_core::{host, Error, Flat, FlatT, Result, Tp};

/// Neurons per parallel task: all `T` steps of this many neurons (their
/// state, currents and gradients) stay in cache.
const CHUNK: usize = 16 * 1024;

/// The layer's layout: `m` neurons per step over `steps` steps, fed a
/// `[steps, m]` sequence or (`is_static`) one `[m]` input at every step.
#[derive(Clone, Copy, Debug)]
struct Layout {
    steps: usize,
    m: usize,
    is_static: bool,
}

impl Layout {
    /// The layout of `rows` rows of `c` channels: a `[steps, m]` sequence,
    /// or (`is_static`) one `[m]` input.
    fn new(rows: usize, c: usize, steps: usize, is_static: bool) -> Result<Self> {
        let input_steps = if is_static { 1 } else { steps };
        if steps == 0 || !rows.is_multiple_of(input_steps) {
            return Err(Error::shape(
                "spiking layer input",
                format!("{rows} rows for {steps} time steps"),
            ));
        }
        Ok(Self {
            steps,
            m: rows / input_steps * c,
            is_static,
        })
    }

    /// Where step `t`'s currents of neurons `from..` start in the input.
    fn at(&self, t: usize, from: usize) -> usize {
        if self.is_static {
            from
        } else {
            t * self.m + from
        }
    }

    fn input_steps(&self) -> usize {
        if self.is_static {
            1
        } else {
            self.steps
        }
    }
}

/// Normalises `x` (`[rows, c]`: the currents of one step-major sequence,
/// `rows = steps x neurons / c`, or of one input repeated at every step
/// when `is_static`) as `bn` says and runs `neuron` on it: returns the
/// spikes `[steps, rows / input steps x c]`, how many of them fired, and
/// the statistics used.
/// `params` are the neuron's parameters in the order of its `param_keys`
/// (scalars). Equals [`super::batchnorm::batch_norm`] followed by the
/// neuron's own kernel.
pub fn batch_norm_spike(
    x: Rows,
    bn: BnOperands,
    neuron: Box<dyn HostStep>,
    params: Vec<FlatT>,
    steps: usize,
    is_static: bool,
) -> Result<(Rows, usize, Stats)> {
    let (rows, c) = *x.shape();
    let layout = Layout::new(rows, c, steps, is_static)?;
    let x = x.reshape_like(&(rows, c));
    let (x, tape) = x.split_tape();
    let (params, tape) = scalar_params(params, tape)?;
    let xs = host::read(&x);
    let (bn, mut tape) = bn.fold(&xs, c, tape);
    let (spikes, fired) = simulate(neuron.as_ref(), &bn.norm, &xs, layout);
    let stats = bn.norm.stats();
    let out = x
        .device()
        .tensor_from_vec(spikes, (steps * layout.m / c, c));
    if !snn_core::grad::is_enabled() {
        return Ok((out.put_tape(tape), fired, stats));
    }
    // Ghosts: backward re-reads the currents from `xs` (`host::take_grad`).
    let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
    tape.add_backward_op(move |grads| {
        let g_out = host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
        let (g, g_params) = neuron_backward(neuron.as_ref(), &bn.norm, &xs, g_out, layout);
        let dx = bn.backward(&xs, g, grads)?;
        host::add_grad_owned(grads.get_or_alloc_mut(&x_ghost)?, dx);
        for (p, g) in params.iter().zip(g_params) {
            grads.get_or_alloc_mut(p)?[0] += g as f32;
        }
        Ok(())
    });
    Ok((out.put_tape(tape), fired, stats))
}

/// A fused kernel's neuron parameters off their tapes (merged into
/// `tape`); each must be one value.
pub fn scalar_params(params: Vec<FlatT>, mut tape: Tp) -> Result<(Vec<Flat>, Tp)> {
    let mut plain = Vec::with_capacity(params.len());
    for p in params {
        if p.shape().num_elements() != 1 {
            return Err(Error::shape(
                "neuron parameter",
                format!("fused kernels need scalars, got {:?}", p.shape()),
            ));
        }
        let (p, t) = p.split_tape();
        tape = tape.merge(t);
        plain.push(p);
    }
    Ok((plain, tape))
}

/// The spikes `[steps, m]`, chunk of neurons by chunk, each chunk's
/// currents evaluated one step at a time into a small buffer; and how many
/// fired (counted while each step's row is in cache: the firing rate
/// without another pass over the spikes).
fn simulate(neuron: &dyn HostStep, norm: &Norm, xs: &[f32], layout: Layout) -> (Vec<f32>, usize) {
    let Layout { steps, m, .. } = layout;
    let mut spikes = vec![0.0f32; steps * m];
    let state_len = neuron.state_len();
    let fired = pieces_of_planes(&mut spikes, m, CHUNK)
        .into_par_iter()
        .enumerate()
        .map(|(chunk, mut out)| {
            let from = chunk * CHUNK;
            let len = out.first().map_or(0, |r| r.len());
            let mut state = vec![0.0f32; state_len * len];
            let mut current = vec![0.0f32; len];
            let mut fired = 0;
            for (t, o) in out.iter_mut().enumerate() {
                norm.apply(xs, layout.at(t, from), &mut current);
                neuron.step(&current, &mut state, o);
                fired += o.iter().filter(|s| **s != 0.0).count();
            }
            fired
        })
        .sum();
    (spikes, fired)
}

/// The neuron's backward pass through time, chunk of neurons by chunk:
/// returns the gradient of its currents (batch norm's output; `[rows, c]`,
/// in `g_out`'s buffer for a sequence) and of its parameters.
fn neuron_backward(
    neuron: &dyn HostStep,
    norm: &Norm,
    xs: &[f32],
    mut g_out: Vec<f32>,
    layout: Layout,
) -> (Vec<f32>, Vec<f64>) {
    let Layout { steps, m, .. } = layout;
    // A repeated input's gradient is one row (the sum over steps), written
    // beside `g_out`; a sequence's replaces `g_out` in place.
    let mut g_static = vec![0.0f32; if layout.is_static { m } else { 0 }];
    // Batch norm's output for neurons `from..from + len`, `[input steps, len]`.
    let currents = |from: usize, len: usize| {
        let mut currents = vec![0.0f32; layout.input_steps() * len];
        for (t, row) in currents.chunks_exact_mut(len.max(1)).enumerate() {
            norm.apply(xs, layout.at(t, from), row);
        }
        currents
    };
    let sum = |a: Vec<f64>, b: Vec<f64>| a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let g_params = if layout.is_static {
        let g_out = &g_out;
        g_static
            .par_chunks_mut(CHUNK)
            .enumerate()
            .map(|(chunk, g_x)| {
                let from = chunk * CHUNK;
                let mut g_spikes = Vec::with_capacity(steps * g_x.len());
                for t in 0..steps {
                    g_spikes.extend_from_slice(&g_out[t * m + from..][..g_x.len()]);
                }
                neuron.backward(&currents(from, g_x.len()), steps, &g_spikes, g_x)
            })
            .reduce_with(sum)
    } else {
        // Each chunk's rows of `g_out` are handed to the neuron as they
        // lie: no gathering into a contiguous buffer and back.
        pieces_of_planes(&mut g_out, m, CHUNK)
            .into_par_iter()
            .enumerate()
            .map(|(chunk, mut rows)| {
                let len = rows.first().map_or(0, |r| r.len());
                neuron.backward_in_place(&currents(chunk * CHUNK, len), &mut rows)
            })
            .reduce_with(sum)
    };
    let g = if layout.is_static { g_static } else { g_out };
    (g, g_params.unwrap_or_default())
}
