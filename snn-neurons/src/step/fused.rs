//! The host kernels of a step registered on dfdx's tape: a neuron layer's
//! whole time loop as one op, with its backward pass through time.

use super::run::{HostRun, CHUNK};
use rayon::prelude::*;
use snn_core::dfdx::prelude::*;
use snn_core::step::NeuronStep;
use snn_core::{host, Error, FlatT, Mat, Result};

/// Runs the layer on `x` (`[steps, M]`, or `[1, M]` for an input that is
/// the same at every step: it is never copied `steps` times, and its
/// gradient is the sum over time) and returns the spikes `[steps, M]`.
/// `params` are the layer's stored parameters on the tape, in the step's
/// order. Only the input is kept for backward, which recomputes the states.
pub fn forward<S: NeuronStep>(
    run: HostRun<S>,
    x: Mat,
    steps: usize,
    params: Vec<FlatT>,
) -> Result<Mat> {
    let (rows_in, m) = *x.shape();
    if rows_in != steps && rows_in != 1 {
        return Err(Error::shape(
            "neuron input",
            format!("{rows_in} rows for {steps} time steps"),
        ));
    }
    // reshape_like copies a non-contiguous tensor, so indices below are
    // physical offsets into both data and gradient buffers.
    let x = x.reshape_like(&(rows_in, m));
    let (x, mut tape) = x.split_tape();
    let mut plain = Vec::with_capacity(params.len());
    for p in params {
        let (p, t) = p.split_tape();
        tape = tape.merge(t);
        plain.push(p);
    }
    let dev = x.device().clone();
    let x_host = host::read(&x);
    let spikes = run.simulate(&x_host, steps, m);
    let out = dev.tensor_from_vec(spikes, (steps, m));
    if !snn_core::grad::is_enabled() {
        return Ok(out.put_tape(tape));
    }
    // Ghosts, not the tensors: backward needs their gradient slots, and
    // the input's values are in `x_host` (see `host::take_grad`).
    let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
    tape.add_backward_op(move |grads| {
        let g_out = host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
        let gx = grads.get_or_alloc_mut(&x_ghost)?;
        // Each task: all steps of one chunk of neurons.
        let gx_chunks = snn_core::slices::pieces_of_planes(&mut gx[..], m, CHUNK);
        let g_k = gx_chunks
            .into_par_iter()
            .enumerate()
            .map(|(chunk, mut gx_rows)| {
                let from = chunk * CHUNK;
                let len = gx_rows.first().map_or(0, |r| r.len());
                let xs: Vec<&[f32]> = (0..steps)
                    .map(|t| {
                        let r = if rows_in == 1 { 0 } else { t };
                        &x_host[r * m + from..r * m + from + len]
                    })
                    .collect();
                let gos: Vec<&[f32]> = (0..steps)
                    .map(|t| &g_out[t * m + from..t * m + from + len])
                    .collect();
                run.backward_rows(&xs, &gos, &mut gx_rows)
            })
            .reduce_with(|a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect())
            .unwrap_or_default();
        if !g_k.is_empty() {
            for (p, g) in plain.iter().zip(run.param_grads(&g_k)) {
                grads.get_or_alloc_mut(p)?[0] += g as f32;
            }
        }
        Ok(())
    });
    Ok(out.put_tape(tape))
}
