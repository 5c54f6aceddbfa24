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

/// One batch norm's per-channel constants for a pass: `y = (x - mean) *
/// inv * gain + shift`, the gain being `gamma * scale`. Kernels that keep
/// the input (not the output) evaluate `y` where they need it with
/// [`Norm::apply`], always by this one expression, so every path gets the
/// same floats.
#[derive(Clone, Debug)]
pub struct Norm {
    c: usize,
    mean: Vec<f32>,
    var: Vec<f32>,
    inv: Vec<f32>,
    gain: Vec<f32>,
    shift: Vec<f32>,
    /// Batch statistics (their gradient flows) rather than given ones.
    batch_stats: bool,
    scale: f32,
}

impl Norm {
    /// The constants for input `xs` (`[rows, c]`): its own statistics when
    /// `stats` is `None`, else the given `(mean, var)`.
    pub fn new(
        xs: &[f32],
        c: usize,
        (gamma, beta): (&[f32], &[f32]),
        stats: Option<(Vec<f32>, Vec<f32>)>,
        eps: f32,
        scale: f32,
    ) -> Self {
        let batch_stats = stats.is_none();
        let (mean, var) = stats.unwrap_or_else(|| moments(xs, c));
        let inv = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        // The effective per-channel gain: gamma times the constant scale
        // (alpha * V_th for tdBN, 1 for plain batch norm).
        let gain = gamma.iter().map(|g| g * scale).collect();
        Self {
            c,
            mean,
            var,
            inv,
            gain,
            shift: beta.to_vec(),
            batch_stats,
            scale,
        }
    }

    /// The statistics used, `(mean, biased variance)`: as given, or the
    /// batch's (for the running averages).
    pub fn stats(&self) -> (Vec<f32>, Vec<f32>) {
        (self.mean.clone(), self.var.clone())
    }

    /// `y` of the values `xs[at..at + out.len()]` of the `[rows, c]` input.
    pub fn apply(&self, xs: &[f32], at: usize, out: &mut [f32]) {
        let mut ch = at % self.c;
        for (y, x) in out.iter_mut().zip(&xs[at..]) {
            *y = (x - self.mean[ch]) * self.inv[ch] * self.gain[ch] + self.shift[ch];
            ch += 1;
            if ch == self.c {
                ch = 0;
            }
        }
    }

    /// `y` of the whole input, row by row (zipped rows: no index checks
    /// per element, so the loop vectorises).
    fn apply_rows(&self, xs: &[f32]) -> Vec<f32> {
        let c = self.c;
        let mut y = vec![0.0f32; xs.len()];
        for (yr, xr) in y.chunks_exact_mut(c).zip(xs.chunks_exact(c)) {
            let consts = self
                .mean
                .iter()
                .zip(&self.inv)
                .zip(self.gain.iter().zip(&self.shift));
            for ((y, x), ((m, i), (g, b))) in yr.iter_mut().zip(xr).zip(consts) {
                *y = (x - m) * i * g + b;
            }
        }
        y
    }

    /// The closed-form backward pass: turns the output gradient `g`
    /// (`[rows, c]`, in place) into the input's, and returns the gradients
    /// of gamma and beta.
    pub fn backward(&self, xs: &[f32], g: &mut [f32]) -> (Vec<f32>, Vec<f32>) {
        let c = self.c;
        let (mean, inv) = (&self.mean, &self.inv);
        // Reductions: dbeta = sum gy, dgamma = sum gy * xhat.
        let mut db = vec![0.0f64; c];
        let mut dg = vec![0.0f64; c];
        for (gr, xr) in g.chunks_exact(c).zip(xs.chunks_exact(c)) {
            let per_channel = db.iter_mut().zip(dg.iter_mut()).zip(mean.iter().zip(inv));
            for (((db, dg), (m, i)), (g, x)) in per_channel.zip(gr.iter().zip(xr)) {
                let xhat = (x - m) * i;
                *db += *g as f64;
                *dg += (g * xhat) as f64;
            }
        }
        let n = (g.len() / c.max(1)) as f32;
        let scales: Vec<f32> = self.gain.iter().zip(inv).map(|(g, i)| g * i).collect();
        let (db32, dg32): (Vec<f32>, Vec<f32>) = db
            .iter()
            .zip(&dg)
            .map(|(b, g)| (*b as f32, *g as f32))
            .unzip();
        // Zipped rows and the mode chosen outside the loops: no index
        // checks or branches per element, so both loops vectorise.
        if self.batch_stats {
            for (gr, xr) in g.chunks_exact_mut(c).zip(xs.chunks_exact(c)) {
                let consts = scales
                    .iter()
                    .zip(mean.iter().zip(inv))
                    .zip(db32.iter().zip(&dg32));
                for ((d, x), ((s, (m, i)), (b, q))) in gr.iter_mut().zip(xr).zip(consts) {
                    let xhat = (x - m) * i;
                    *d = s * (*d - (b + xhat * q) / n);
                }
            }
        } else {
            for gr in g.chunks_exact_mut(c) {
                for (d, s) in gr.iter_mut().zip(&scales) {
                    *d *= s;
                }
            }
        }
        let dg = dg.iter().map(|v| *v as f32 * self.scale).collect();
        (dg, db32)
    }
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
    let affine = (&host::read(&gamma)[..], &host::read(&beta)[..]);
    let norm = Norm::new(&xs, c, affine, stats, eps, scale);
    let out = x.device().tensor_from_vec(norm.apply_rows(&xs), (rows, c));
    let (mean, var) = norm.stats();
    if !snn_core::grad::is_enabled() {
        return (out.put_tape(tape), mean, var);
    }
    // Ghosts: backward re-reads the input from `xs` (`host::take_grad`).
    let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
    tape.add_backward_op(move |grads| {
        let mut g = host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
        let (dg, db) = norm.backward(&xs, &mut g);
        host::add_grad_owned(grads.get_or_alloc_mut(&x_ghost)?, g);
        host::add_grad(grads.get_or_alloc_mut(&gamma)?, &dg);
        host::add_grad(grads.get_or_alloc_mut(&beta)?, &db);
        Ok(())
    });
    (out.put_tape(tape), mean, var)
}
