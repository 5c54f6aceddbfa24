//! Batch norm on the CPU as one tape op: statistics, normalisation and the
//! affine map in two passes over the rows, the closed-form backward in two
//! more. It keeps no normalised copy: the input (held anyway) is re-read.
//!
//! Synchronised across ranks: batch statistics are sums over every rank's
//! rows ([`snn_core::collective`]), and so are the two sums the backward
//! pass needs, so a batch split over ranks is normalised (and
//! differentiated) as the whole batch is in one process. Every path that
//! normalises by batch statistics (this op, the fused tdBN + neuron and
//! spike + pool kernels) goes through [`Norm`], the one place that reduces.

use crate::Rows;
use rayon::prelude::*;
use snn_core::dfdx::prelude::*;
use snn_core::{collective, host, Dev, Flat, FlatT, Tp};

/// Per-channel statistics a batch norm normalises with.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub mean: Vec<f32>,
    /// Biased variance.
    pub var: Vec<f32>,
    /// The rows they are over, every rank's (for the running variance's
    /// unbiasing); 0 for given (running) statistics.
    pub rows: usize,
}

impl Stats {
    /// Given statistics (the running ones), over no counted rows.
    pub fn given(mean: Vec<f32>, var: Vec<f32>) -> Self {
        Self { mean, var, rows: 0 }
    }
}

/// Values per block of the parallel passes (256 KiB, in whole rows).
/// Blocks are fixed by the data, not by the threads, and their partial
/// sums are added in block order, so the result is the same on any number
/// of threads.
const BLOCK_VALUES: usize = 64 * 1024;

fn block_rows(c: usize) -> usize {
    (BLOCK_VALUES / c.max(1)).max(1)
}

/// Per-channel sums of `f(row)` over the rows of `[rows, c]` data, block by
/// block in parallel, each block's partial sums added in block order.
fn channel_sums<const K: usize>(
    x: &[f32],
    c: usize,
    f: impl Fn(&[f32], usize, &mut [Vec<f64>; K]) + Sync,
) -> [Vec<f64>; K] {
    let zeros = || std::array::from_fn(|_| vec![0.0f64; c]);
    let rows = block_rows(c);
    let parts: Vec<[Vec<f64>; K]> = x
        .par_chunks(rows * c.max(1))
        .enumerate()
        .map(|(block, xb)| {
            let mut acc = zeros();
            for (r, row) in xb.chunks_exact(c.max(1)).enumerate() {
                f(row, block * rows + r, &mut acc);
            }
            acc
        })
        .collect();
    parts.into_iter().fold(zeros(), |mut sum, part| {
        for (s, p) in sum.iter_mut().zip(&part) {
            s.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
        sum
    })
}

/// Per-channel mean and biased variance of `[rows, c]` data, over every
/// rank's rows.
fn moments(x: &[f32], c: usize) -> Stats {
    let [sum, sq] = channel_sums(x, c, |r, _, [sum, sq]| {
        for ((s, q), v) in sum.iter_mut().zip(sq.iter_mut()).zip(r) {
            *s += *v as f64;
            *q += (*v as f64) * (*v as f64);
        }
    });
    // One reduction: the sums and the row count.
    let mut all: Vec<f64> = [sum, sq].concat();
    all.push((x.len() / c.max(1)) as f64);
    collective::sum_f64(&mut all);
    let rows = all[2 * c] as usize;
    let (sum, sq) = all[..2 * c].split_at(c);
    let n = rows.max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let var = sq
        .iter()
        .zip(sum)
        .map(|(q, s)| ((q / n) - (s / n) * (s / n)).max(0.0) as f32)
        .collect();
    Stats { mean, var, rows }
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
    /// Every rank's rows (batch statistics), else 0.
    rows: usize,
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
        stats: Option<Stats>,
        eps: f32,
        scale: f32,
    ) -> Self {
        let batch_stats = stats.is_none();
        let Stats { mean, var, rows } = stats.unwrap_or_else(|| moments(xs, c));
        let inv = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        // The effective per-channel gain: gamma times the constant scale
        // (alpha * V_th for tdBN, 1 for plain batch norm).
        let gain = gamma.iter().map(|g| g * scale).collect();
        Self {
            c,
            mean,
            var,
            rows,
            inv,
            gain,
            shift: beta.to_vec(),
            batch_stats,
            scale,
        }
    }

    /// The statistics used, `(mean, biased variance)`: as given, or the
    /// batch's (for the running averages).
    pub fn stats(&self) -> Stats {
        Stats {
            mean: self.mean.clone(),
            var: self.var.clone(),
            rows: self.rows,
        }
    }

    /// `y` of the values `xs[at..at + out.len()]` of the `[rows, c]` input:
    /// the partial row it starts in, whole rows, then the partial row it
    /// ends in.
    pub fn apply(&self, xs: &[f32], at: usize, out: &mut [f32]) {
        let (c, n) = (self.c, out.len());
        let x = &xs[at..at + n];
        let first = at % c;
        let head = ((c - first) % c).min(n);
        self.apply_channels(&x[..head], first, &mut out[..head]);
        let body = (n - head) / c * c;
        self.apply_whole_rows(&x[head..head + body], &mut out[head..head + body]);
        self.apply_channels(&x[head + body..], 0, &mut out[head + body..]);
    }

    /// `y` of the whole input.
    fn apply_rows(&self, xs: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0f32; xs.len()];
        self.apply_whole_rows(xs, &mut y);
        y
    }

    /// Whole rows, zipped with the channels' constants: no index checks per
    /// element, so the loop vectorises.
    fn apply_whole_rows(&self, x: &[f32], y: &mut [f32]) {
        let c = self.c;
        for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            self.apply_channels(xr, 0, yr);
        }
    }

    /// Channels `first..first + x.len()` of one row.
    fn apply_channels(&self, x: &[f32], first: usize, y: &mut [f32]) {
        let at = first..first + x.len();
        let consts = self.mean[at.clone()]
            .iter()
            .zip(&self.inv[at.clone()])
            .zip(self.gain[at.clone()].iter().zip(&self.shift[at]));
        for ((y, x), ((m, i), (g, b))) in y.iter_mut().zip(x).zip(consts) {
            *y = (x - m) * i * g + b;
        }
    }

    /// The closed-form backward pass: turns the output gradient `g`
    /// (`[rows, c]`, in place) into the input's, and returns the gradients
    /// of gamma and beta.
    pub fn backward(&self, xs: &[f32], g: &mut [f32]) -> (Vec<f32>, Vec<f32>) {
        let c = self.c;
        let (mean, inv) = (&self.mean, &self.inv);
        // Reductions: dbeta = sum gy, dgamma = sum gy * xhat.
        let gs: &[f32] = g;
        let [db, dg] = channel_sums(xs, c, |xr, row, [db, dg]| {
            let gr = &gs[row * c..(row + 1) * c];
            let per_channel = db.iter_mut().zip(dg.iter_mut()).zip(mean.iter().zip(inv));
            for (((db, dg), (m, i)), (g, x)) in per_channel.zip(gr.iter().zip(xr)) {
                let xhat = (x - m) * i;
                *db += *g as f64;
                *dg += (g * xhat) as f64;
            }
        });
        let scales: Vec<f32> = self.gain.iter().zip(inv).map(|(g, i)| g * i).collect();
        // With batch statistics every rank's rows moved the mean and
        // variance, so the input gradient needs the sums over all of them;
        // gamma and beta get this rank's own (the step sums those).
        let mut all: Vec<f64> = [&db[..], &dg[..]].concat();
        if self.batch_stats {
            collective::sum_f64(&mut all);
        }
        let n = self.rows.max(1) as f32;
        let (db32, dg32): (Vec<f32>, Vec<f32>) = all[..c]
            .iter()
            .zip(&all[c..])
            .map(|(b, g)| (*b as f32, *g as f32))
            .unzip();
        let db_own: Vec<f32> = db.iter().map(|b| *b as f32).collect();
        // Zipped rows and the mode chosen outside the loops: no index
        // checks or branches per element, so both loops vectorise.
        let block = block_rows(c) * c.max(1);
        if self.batch_stats {
            let blocks = g.par_chunks_mut(block).zip(xs.par_chunks(block));
            blocks.for_each(|(gb, xb)| {
                for (gr, xr) in gb.chunks_exact_mut(c).zip(xb.chunks_exact(c)) {
                    let consts = scales
                        .iter()
                        .zip(mean.iter().zip(inv))
                        .zip(db32.iter().zip(&dg32));
                    for ((d, x), ((s, (m, i)), (b, q))) in gr.iter_mut().zip(xr).zip(consts) {
                        let xhat = (x - m) * i;
                        *d = s * (*d - (b + xhat * q) / n);
                    }
                }
            });
        } else {
            g.par_chunks_mut(block).for_each(|gb| {
                for gr in gb.chunks_exact_mut(c) {
                    for (d, s) in gr.iter_mut().zip(&scales) {
                        *d *= s;
                    }
                }
            });
        }
        let dg = dg.iter().map(|v| *v as f32 * self.scale).collect();
        (dg, db_own)
    }
}

/// Batch norm's operands, for a kernel that applies it to an input it
/// keeps: the affine parameters on the tape, the statistics to use
/// (`None`: the batch's), `eps`, and the constant scale (`alpha * V_th` for
/// tdBN, 1 for plain batch norm).
pub struct BnOperands {
    pub gamma: FlatT,
    pub beta: FlatT,
    pub stats: Option<Stats>,
    pub eps: f32,
    pub scale: f32,
}

/// Batch norm inside a kernel: its constants for the kept input, and its
/// parameters for the backward pass.
pub struct Folded {
    pub norm: Norm,
    gamma: Flat,
    beta: Flat,
}

impl BnOperands {
    /// Splits the parameters off their tapes (merged into `tape`) and
    /// computes the constants for the input `xs` (`[rows, c]`).
    pub fn fold(self, xs: &[f32], c: usize, tape: Tp) -> (Folded, Tp) {
        let (gamma, g_tape) = self.gamma.split_tape();
        let (beta, b_tape) = self.beta.split_tape();
        let affine = (&host::read(&gamma)[..], &host::read(&beta)[..]);
        let norm = Norm::new(xs, c, affine, self.stats, self.eps, self.scale);
        let folded = Folded { norm, gamma, beta };
        (folded, tape.merge(g_tape).merge(b_tape))
    }
}

impl Folded {
    /// Backward: turns `g`, the gradient of the normalised values, into
    /// the input's (returned; same buffer) and adds gamma's and beta's.
    pub fn backward(
        &self,
        xs: &[f32],
        mut g: Vec<f32>,
        grads: &mut Gradients<f32, Dev>,
    ) -> std::result::Result<Vec<f32>, <Dev as HasErr>::Err> {
        let (dg, db) = self.norm.backward(xs, &mut g);
        host::add_grad(grads.get_or_alloc_mut(&self.gamma)?, &dg);
        host::add_grad(grads.get_or_alloc_mut(&self.beta)?, &db);
        Ok(g)
    }
}

/// Normalises `x` (`[rows, c]`) as `bn` says; returns the output and the
/// statistics used.
pub fn batch_norm(x: Rows, bn: BnOperands) -> (Rows, Stats) {
    let (rows, c) = *x.shape();
    let x = x.reshape_like(&(rows, c));
    let (x, tape) = x.split_tape();
    let xs = host::read(&x);
    let (bn, mut tape) = bn.fold(&xs, c, tape);
    let out = x
        .device()
        .tensor_from_vec(bn.norm.apply_rows(&xs), (rows, c));
    let stats = bn.norm.stats();
    if !snn_core::grad::is_enabled() {
        return (out.put_tape(tape), stats);
    }
    // Ghosts: backward re-reads the input from `xs` (`host::take_grad`).
    let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
    tape.add_backward_op(move |grads| {
        let g = host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
        let dx = bn.backward(&xs, g, grads)?;
        host::add_grad_owned(grads.get_or_alloc_mut(&x_ghost)?, dx);
        Ok(())
    });
    (out.put_tape(tape), stats)
}
