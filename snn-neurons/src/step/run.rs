//! Host kernels derived from a [`NeuronStep`]: one step of a run of
//! neurons, a whole sequence without gradients, and backpropagation through
//! time over a run. A *run* is `n` neurons whose values sit side by side in
//! every row (one row per time step); state is `STATE` planes of `n`.
//!
//! Neurons are processed eight at a time as [`Lanes`] (the step's
//! arithmetic becomes vector instructions) and the tail one at a time as
//! `f32`, with the same arithmetic, so the split never changes a value.

use rayon::prelude::*;
use snn_core::spec::HostStep;
use snn_core::step::{constants_jacobian, HostNum, Lanes, NeuronStep, MAX_STATE, MAX_TANGENTS};
use std::sync::Arc;

/// Neurons per parallel task: each task runs all time steps of this many
/// neurons, so their state and recomputed history stay in cache (a
/// multiple of 8, so every task's lanes line up).
pub const CHUNK: usize = 16 * 1024;

/// A layer's step at this pass's parameter values: its constants and their
/// derivatives with respect to the stored parameters.
#[derive(Debug)]
pub struct HostRun<S> {
    step: Arc<S>,
    k: Vec<f32>,
    /// `jac[i][p]` = d constant i / d parameter p.
    jac: Vec<[f32; MAX_TANGENTS]>,
    params: usize,
    /// Store keys of the parameters, the order of [`HostRun::param_grads`].
    keys: Vec<String>,
}

impl<S: NeuronStep> HostRun<S> {
    pub fn new(step: Arc<S>, params: &[f32], keys: Vec<String>) -> Self {
        let (k, jac) = constants_jacobian(&*step, params);
        Self {
            step,
            k,
            jac,
            params: params.len(),
            keys,
        }
    }

    /// One step of a run of `x.len()` neurons.
    pub fn step_run(&self, x: &[f32], state: &mut [f32], spikes: &mut [f32]) {
        let (n, ns) = (x.len(), S::STATE);
        let k8: [Lanes; MAX_TANGENTS] =
            std::array::from_fn(|i| Lanes::splat(self.k.get(i).copied().unwrap_or(0.0)));
        let k8 = &k8[..self.k.len()];
        let n8 = n / 8 * 8;
        for i in (0..n8).step_by(8) {
            let mut s: [Lanes; MAX_STATE] = std::array::from_fn(|j| match j < ns {
                true => Lanes::load(&state[j * n + i..]),
                false => Lanes::splat(0.0),
            });
            let o = self.step.step(k8, &mut s[..ns], Lanes::load(&x[i..]));
            o.store(&mut spikes[i..]);
            for (j, sj) in s.iter().enumerate().take(ns) {
                sj.store(&mut state[j * n + i..]);
            }
        }
        for i in n8..n {
            let mut s: [f32; MAX_STATE] =
                std::array::from_fn(|j| if j < ns { state[j * n + i] } else { 0.0 });
            spikes[i] = self.step.step(&self.k, &mut s[..ns], x[i]);
            for (j, sj) in s.iter().enumerate().take(ns) {
                state[j * n + i] = *sj;
            }
        }
    }

    /// The spikes `[steps, m]` of `m` neurons run from zero state on `x`
    /// (`[steps, m]`, or `[m]` repeated at every step), in parallel over
    /// chunks of neurons.
    pub fn simulate(&self, x: &[f32], steps: usize, m: usize) -> Vec<f32> {
        let is_static = x.len() == m && steps > 1;
        let mut spikes = vec![0.0f32; steps * m];
        let rows = snn_core::slices::pieces_of_planes(&mut spikes, m, CHUNK);
        rows.into_par_iter()
            .enumerate()
            .for_each(|(chunk, mut out)| {
                let from = chunk * CHUNK;
                let len = out.first().map_or(0, |r| r.len());
                let mut state = vec![0.0f32; S::STATE * len];
                for (t, o) in out.iter_mut().enumerate() {
                    let row = if is_static { 0 } else { t * m };
                    self.step_run(&x[row + from..row + from + len], &mut state, o);
                }
            });
        spikes
    }

    /// Backpropagation through time over one run: `x[t]` and `g_spikes[t]`
    /// are step `t`'s rows (the same row at every step for a repeated
    /// input), `g_x` the rows the input's gradient is added into (one row
    /// for a repeated input: its gradient is the sum over steps). Recomputes
    /// the states from zero, then steps back. Returns the gradients of the
    /// step's constants.
    pub fn backward_rows(
        &self,
        x: &[&[f32]],
        g_spikes: &[&[f32]],
        g_x: &mut [&mut [f32]],
    ) -> Vec<f64> {
        self.through_time(
            x,
            &mut Apart {
                spikes: g_spikes,
                input: g_x,
            },
        )
    }

    /// [`HostRun::backward_rows`] for a sequence with the gradients in the
    /// same rows: `g[t]` holds step `t`'s spike gradient on entry and its
    /// input's on return.
    pub fn backward_rows_in_place(&self, x: &[&[f32]], g: &mut [&mut [f32]]) -> Vec<f64> {
        self.through_time(x, &mut InPlace(g))
    }

    fn through_time<G: StepGrads>(&self, x: &[&[f32]], grads: &mut G) -> Vec<f64> {
        let (steps, ns) = (x.len(), S::STATE);
        let n = x.first().map_or(0, |r| r.len());
        let plane = ns * n;
        // Row t holds the state before step t: zero, then each step's from
        // the one before (grown row by row, so only row 0 is zero-filled).
        let mut states = Vec::with_capacity(steps * plane);
        states.resize(plane.min(steps * plane), 0.0f32);
        let mut spikes = vec![0.0f32; n];
        for t in 1..steps {
            states.extend_from_within((t - 1) * plane..t * plane);
            self.step_run(x[t - 1], &mut states[t * plane..], &mut spikes);
        }
        let nk = self.k.len();
        let k8: [Lanes; MAX_TANGENTS] =
            std::array::from_fn(|i| Lanes::splat(self.k.get(i).copied().unwrap_or(0.0)));
        // dL/d(state after step t), zero after the last step.
        let mut g_state = vec![0.0f32; plane];
        let mut g_k = vec![0.0f64; nk];
        let n8 = n / 8 * 8;
        for t in (0..steps).rev() {
            let s_before = &states[t * plane..(t + 1) * plane];
            let xr = x[t];
            let mut row = grads.row(t);
            let mut gk8 = [Lanes::splat(0.0); MAX_TANGENTS];
            for i in (0..n8).step_by(8) {
                let s: [Lanes; MAX_STATE] = std::array::from_fn(|j| match j < ns {
                    true => Lanes::load(&s_before[j * n + i..]),
                    false => Lanes::splat(0.0),
                });
                let mut gs: [Lanes; MAX_STATE] = std::array::from_fn(|j| match j < ns {
                    true => Lanes::load(&g_state[j * n + i..]),
                    false => Lanes::splat(0.0),
                });
                let g = self.step.step_backward(
                    &k8[..nk],
                    &s[..ns],
                    Lanes::load(&xr[i..]),
                    row.spikes(i),
                    &mut gs[..ns],
                    &mut gk8[..nk],
                );
                row.put_input(i, g);
                for (j, gj) in gs.iter().enumerate().take(ns) {
                    gj.store(&mut g_state[j * n + i..]);
                }
            }
            let mut gk1 = [0.0f32; MAX_TANGENTS];
            for i in n8..n {
                let s: [f32; MAX_STATE] =
                    std::array::from_fn(|j| if j < ns { s_before[j * n + i] } else { 0.0 });
                let mut gs: [f32; MAX_STATE] =
                    std::array::from_fn(|j| if j < ns { g_state[j * n + i] } else { 0.0 });
                let g = self.step.step_backward(
                    &self.k,
                    &s[..ns],
                    xr[i],
                    row.spikes(i),
                    &mut gs[..ns],
                    &mut gk1[..nk],
                );
                row.put_input(i, g);
                for (j, gj) in gs.iter().enumerate().take(ns) {
                    g_state[j * n + i] = *gj;
                }
            }
            for (i, g) in g_k.iter_mut().enumerate() {
                *g += gk8[i].sum() as f64 + gk1[i] as f64;
            }
        }
        g_k
    }

    /// The stored parameters' gradients from the constants' (chain rule
    /// through [`NeuronStep::constants`]).
    pub fn param_grads(&self, g_k: &[f64]) -> Vec<f64> {
        (0..self.params)
            .map(|p| {
                g_k.iter()
                    .zip(&self.jac)
                    .map(|(g, j)| g * j[p] as f64)
                    .sum()
            })
            .collect()
    }
}

impl<S: NeuronStep> HostStep for HostRun<S> {
    fn state_len(&self) -> usize {
        S::STATE
    }

    fn step(&self, x: &[f32], state: &mut [f32], spikes: &mut [f32]) {
        self.step_run(x, state, spikes);
    }

    fn param_keys(&self) -> Option<Vec<String>> {
        Some(self.keys.clone())
    }

    fn backward(&self, x: &[f32], steps: usize, g_spikes: &[f32], g_x: &mut [f32]) -> Vec<f64> {
        let n = g_spikes.len() / steps.max(1);
        let is_static = x.len() == n && steps > 1;
        let xs: Vec<&[f32]> = (0..steps)
            .map(|t| if is_static { x } else { &x[t * n..(t + 1) * n] })
            .collect();
        let gos: Vec<&[f32]> = g_spikes.chunks(n.max(1)).collect();
        let mut gxs: Vec<&mut [f32]> = g_x.chunks_mut(n.max(1)).collect();
        let g_k = self.backward_rows(&xs, &gos, &mut gxs);
        self.param_grads(&g_k)
    }

    fn backward_in_place(&self, x: &[f32], g: &mut [&mut [f32]]) -> Vec<f64> {
        let n = g.first().map_or(0, |r| r.len());
        let xs: Vec<&[f32]> = x.chunks(n.max(1)).take(g.len()).collect();
        let g_k = self.backward_rows_in_place(&xs, g);
        self.param_grads(&g_k)
    }
}

/// Where the pass through time reads each step's spike gradient and puts
/// its input's: [`StepGrads::row`] hands out step `t`'s rows once, then
/// the kernel reads and writes them `N::LANES` neurons from `i` at a time,
/// each group's input gradient only after its spike gradient is read.
trait StepGrads {
    type Row<'a>: RowGrads
    where
        Self: 'a;
    fn row(&mut self, t: usize) -> Self::Row<'_>;
}

trait RowGrads {
    fn spikes<N: HostNum>(&self, i: usize) -> N;
    fn put_input<N: HostNum>(&mut self, i: usize, g: N);
}

/// The two gradients in rows of their own: the input's is added into its
/// row (a repeated input's single row sums every step's).
struct Apart<'a, 's, 'x> {
    spikes: &'a [&'s [f32]],
    input: &'a mut [&'x mut [f32]],
}

impl StepGrads for Apart<'_, '_, '_> {
    type Row<'a>
        = (&'a [f32], &'a mut [f32])
    where
        Self: 'a;

    #[inline(always)]
    fn row(&mut self, t: usize) -> Self::Row<'_> {
        let input = if self.input.len() == 1 { 0 } else { t };
        (self.spikes[t], &mut *self.input[input])
    }
}

impl RowGrads for (&[f32], &mut [f32]) {
    #[inline(always)]
    fn spikes<N: HostNum>(&self, i: usize) -> N {
        N::load(&self.0[i..])
    }

    #[inline(always)]
    fn put_input<N: HostNum>(&mut self, i: usize, g: N) {
        let dst = &mut self.1[i..];
        (N::load(dst) + g).store(dst);
    }
}

/// Both in the same rows: the input's gradient replaces the spikes'.
struct InPlace<'a, 'r>(&'a mut [&'r mut [f32]]);

impl StepGrads for InPlace<'_, '_> {
    type Row<'a>
        = &'a mut [f32]
    where
        Self: 'a;

    #[inline(always)]
    fn row(&mut self, t: usize) -> Self::Row<'_> {
        &mut *self.0[t]
    }
}

impl RowGrads for &mut [f32] {
    #[inline(always)]
    fn spikes<N: HostNum>(&self, i: usize) -> N {
        N::load(&self[i..])
    }

    #[inline(always)]
    fn put_input<N: HostNum>(&mut self, i: usize, g: N) {
        g.store(&mut self[i..]);
    }
}
