//! Batch norm on the CPU as one tape op: statistics, normalisation and the
//! affine map in two passes over the rows, the closed-form backward in two
//! more. It keeps no normalised copy: the input (held anyway) is re-read.

use crate::Rows;
use snn_core::dfdx::prelude::*;
use snn_core::{host, FlatT};

/// Per-channel mean and biased variance of `[rows, c]` data.
fn moments(x: &[f32], c: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = x.len() / c.max(1);
    let mut sum = vec![0.0f64; c];
    let mut sq = vec![0.0f64; c];
    for r in x.chunks_exact(c) {
        for ((s, q), v) in sum.iter_mut().zip(sq.iter_mut()).zip(r) {
            *s += *v as f64;
            *q += (*v as f64) * (*v as f64);
        }
    }
    let n = rows.max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let var = sq
        .iter()
        .zip(&sum)
        .map(|(q, s)| ((q / n) - (s / n) * (s / n)).max(0.0) as f32)
        .collect();
    (mean, var)
}

/// Normalises `x` (`[rows, c]`) with batch statistics (`stats = None`) or
/// the given `(mean, var)`, scaled by `scale * gamma`, shifted by `beta`;
/// returns the output and the statistics used.
pub fn batch_norm(
    x: Rows,
    gamma: FlatT,
    beta: FlatT,
    stats: Option<(Vec<f32>, Vec<f32>)>,
    eps: f32,
    scale: f32,
) -> (Rows, Vec<f32>, Vec<f32>) {
    let (rows, c) = *x.shape();
    let x = x.reshape_like(&(rows, c));
    let (x, x_tape) = x.split_tape();
    let (gamma, g_tape) = gamma.split_tape();
    let (beta, b_tape) = beta.split_tape();
    let mut tape = x_tape.merge(g_tape).merge(b_tape);
    let xs = host::read(&x);
    // The effective per-channel gain: gamma times the constant scale
    // (alpha * V_th for tdBN, 1 for plain batch norm).
    let gs: Vec<f32> = host::read(&gamma).iter().map(|g| g * scale).collect();
    let bs = host::read(&beta);
    let batch_stats = stats.is_none();
    let (mean, var) = stats.unwrap_or_else(|| moments(&xs, c));
    let inv: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let mut y = vec![0.0f32; rows * c];
    for (yr, xr) in y.chunks_exact_mut(c).zip(xs.chunks_exact(c)) {
        let consts = mean.iter().zip(&inv).zip(gs.iter().zip(&bs));
        for ((y, x), ((m, i), (g, b))) in yr.iter_mut().zip(xr).zip(consts) {
            *y = (x - m) * i * g + b;
        }
    }
    let out = x.device().tensor_from_vec(y, (rows, c));
    if !snn_core::grad::is_enabled() {
        return (out.put_tape(tape), mean, var);
    }
    // Ghosts: backward re-reads the input from `xs` (`host::take_grad`).
    let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
    let (mean_b, inv_b) = (mean.clone(), inv.clone());
    tape.add_backward_op(move |grads| {
        let gy = host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
        // Reductions: dbeta = sum gy, dgamma = sum gy * xhat.
        let mut db = vec![0.0f64; c];
        let mut dg = vec![0.0f64; c];
        for (gr, xr) in gy.chunks_exact(c).zip(xs.chunks_exact(c)) {
            let per_channel = db
                .iter_mut()
                .zip(dg.iter_mut())
                .zip(mean_b.iter().zip(&inv_b));
            for (((db, dg), (m, i)), (g, x)) in per_channel.zip(gr.iter().zip(xr)) {
                let xhat = (x - m) * i;
                *db += *g as f64;
                *dg += (g * xhat) as f64;
            }
        }
        let mut dx = vec![0.0f32; rows * c];
        let n = rows as f32;
        let scales: Vec<f32> = gs.iter().zip(&inv_b).map(|(g, i)| g * i).collect();
        let (db32, dg32): (Vec<f32>, Vec<f32>) = db
            .iter()
            .zip(&dg)
            .map(|(b, g)| (*b as f32, *g as f32))
            .unzip();
        // Zipped rows and the mode chosen outside the loops: no index
        // checks or branches per element, so both loops vectorise.
        let rows_of = dx.chunks_exact_mut(c).zip(gy.chunks_exact(c));
        if batch_stats {
            for ((dr, gr), xr) in rows_of.zip(xs.chunks_exact(c)) {
                let consts = scales
                    .iter()
                    .zip(mean_b.iter().zip(&inv_b))
                    .zip(db32.iter().zip(&dg32));
                for (((d, g), x), ((s, (m, i)), (b, q))) in
                    dr.iter_mut().zip(gr).zip(xr).zip(consts)
                {
                    let xhat = (x - m) * i;
                    *d = s * (g - (b + xhat * q) / n);
                }
            }
        } else {
            for (dr, gr) in rows_of {
                for ((d, g), s) in dr.iter_mut().zip(gr).zip(&scales) {
                    *d = s * g;
                }
            }
        }
        host::add_grad(grads.get_or_alloc_mut(&x_ghost)?, &dx);
        let dg: Vec<f32> = dg.iter().map(|v| *v as f32 * scale).collect();
        let db: Vec<f32> = db.iter().map(|v| *v as f32).collect();
        host::add_grad(grads.get_or_alloc_mut(&gamma)?, &dg);
        host::add_grad(grads.get_or_alloc_mut(&beta)?, &db);
        Ok(())
    });
    (out.put_tape(tape), mean, var)
}
