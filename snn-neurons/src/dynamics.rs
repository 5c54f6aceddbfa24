//! The leaky integrate-and-fire dynamics shared by LIF, PLIF and ALIF
//! (the paper's Eq. 5-9):
//!
//! ```text
//! h[t-1] = u[t-1] * (1 - o[t-1])                 u[-1] = 0, o[-1] = 0 (hard reset)
//! u[t]   = a * h[t-1] + b * x[t]                 (a, b) = (tau, 1): the paper's Eq. 5
//!                                                (a, b) = (1 - tau, tau): decay-input,
//!                                                the authors' u = h + (x - h) tau
//! o[t]   = H(u[t] - v_th)                        H(0) = 1
//! ```
//!
//! For the paper's form `b = 1` multiplies exactly, so that form computes
//! `tau * h + x` bit for bit.
//!
//! Two implementations compute it: [`forward_fused`], one pass over time on
//! the CPU with a hand-written BPTT backward, and [`forward_composed`], built
//! from dfdx ops (runs on every device; the fused kernel's test oracle).

use crate::surrogate::Surrogate;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
#[cfg(not(feature = "cuda"))]
use snn_core::host;
use snn_core::{Dev, Error, Flat, FlatT, Mat, Result, Tp};

/// Where the surrogate window is centred.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowCenter {
    /// On `u - v_th` (the paper's Eq. 7).
    #[default]
    Threshold,
    /// On `u` itself (the FSVAE code's `abs(u) < a/2`).
    Membrane,
}

/// Which implementation runs the time loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kernel {
    /// Fused kernel on the CPU, composed ops elsewhere.
    #[default]
    Auto,
    /// Always the dfdx-composed implementation.
    Composed,
}

/// How the membrane charges from the reset membrane `h` and the input `x`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Charge {
    /// `u = tau h + x` (the paper's Eq. 5).
    #[default]
    Paper,
    /// `u = h + (x - h) tau = (1 - tau) h + tau x` (the TAID and PLIF
    /// authors' code, SpikingJelly's `decay_input`).
    DecayInput,
}

impl Charge {
    /// `(a, b)` of `u = a h + b x` for decay `tau`.
    #[inline]
    pub fn coefficients(self, tau: f32) -> (f32, f32) {
        match self {
            Self::Paper => (tau, 1.0),
            Self::DecayInput => (1.0 - tau, tau),
        }
    }

    /// `(da/dtau, db/dtau)`.
    #[inline]
    fn slopes(self) -> (f32, f32) {
        match self {
            Self::Paper => (1.0, 0.0),
            Self::DecayInput => (-1.0, 1.0),
        }
    }
}

/// Everything about the dynamics except the two scalar constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dynamics {
    pub surrogate: Surrogate,
    pub window: WindowCenter,
    /// Stop the gradient through the reset term `(1 - o[t-1])`.
    pub detach_reset: bool,
    pub charge: Charge,
}

impl Dynamics {
    /// [`Dynamics::sg`] of a row, the surrogate chosen once for the row.
    pub fn sg_row(&self, u: &[f32], v_th: f32, out: &mut [f32]) {
        let shift = match self.window {
            WindowCenter::Threshold => v_th,
            WindowCenter::Membrane => 0.0,
        };
        self.surrogate.grad_row(u, shift, out);
    }

    /// The surrogate derivative at membrane `u` for threshold `v_th`.
    #[inline]
    pub fn sg(&self, u: f32, v_th: f32) -> f32 {
        match self.window {
            WindowCenter::Threshold => self.surrogate.grad(u - v_th),
            WindowCenter::Membrane => self.surrogate.grad(u),
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn scalar(t: &FlatT, what: &str) -> Result<f32> {
    let v = t.as_vec();
    match v.as_slice() {
        [x] => Ok(*x),
        _ => Err(Error::shape(
            what,
            format!("expected 1 value, got {}", v.len()),
        )),
    }
}

/// Neurons per parallel task: each step's row is split into chunks this
/// long (a multiple of 8, so every chunk's lanes line up), enough work per
/// task to hide rayon's dispatch and few enough tasks to balance 2-16 cores.
const CHUNK: usize = 16 * 1024;

/// Runs the dynamics on host data and returns the membrane potentials
/// before reset and the spikes, both `[T, M]`. `x` holds `T` rows of `M`
/// (`x[t * m + i]`) or, for a static input repeated at every step, one row.
///
/// Time outer, neurons inner: every pass streams contiguous rows, and the
/// neurons of a row are independent, so each row is split across threads.
pub fn simulate(x: &[f32], steps: usize, m: usize, c: Coefficients) -> (Vec<f32>, Vec<f32>) {
    let is_static = x.len() == m && steps > 1;
    let mut us = vec![0.0f32; steps * m];
    let mut spikes = vec![0.0f32; steps * m];
    for t in 0..steps {
        let x_row = if is_static {
            &x[..m]
        } else {
            &x[t * m..(t + 1) * m]
        };
        let (us_prev, us_cur) = us.split_at_mut(t * m);
        let (o_prev, o_cur) = spikes.split_at_mut(t * m);
        let (u_row, o_row) = (&mut us_cur[..m], &mut o_cur[..m]);
        let tasks = u_row
            .par_chunks_mut(CHUNK)
            .zip(o_row.par_chunks_mut(CHUNK))
            .zip(x_row.par_chunks(CHUNK))
            .enumerate();
        tasks.for_each(|(chunk, ((u_c, o_c), x_c))| {
            let prev = (t > 0).then(|| {
                let from = (t - 1) * m + chunk * CHUNK;
                u_c.copy_from_slice(&us_prev[from..from + u_c.len()]);
                &o_prev[from..from + u_c.len()]
            });
            step(u_c, prev, x_c, o_c, c);
        });
    }
    (us, spikes)
}

/// The per-step constants of a layer: `u = a h + b x`, firing at `v_th`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefficients {
    pub a: f32,
    pub b: f32,
    pub v_th: f32,
}

impl Coefficients {
    pub fn new(charge: Charge, tau: f32, v_th: f32) -> Self {
        let (a, b) = charge.coefficients(tau);
        Self { a, b, v_th }
    }
}

/// [`simulate`]'s spikes alone, for passes without gradients. No membrane
/// history: each chunk of neurons keeps its state (the membrane after
/// reset, see [`LifStep`]) and runs all `T` steps before the next chunk, so
/// the state stays in cache.
pub fn simulate_spikes(x: &[f32], steps: usize, m: usize, c: Coefficients) -> Vec<f32> {
    let is_static = x.len() == m && steps > 1;
    let mut spikes = vec![0.0f32; steps * m];
    // Chunk c's rows of every step.
    let rows = snn_core::slices::pieces_of_planes(&mut spikes, m, CHUNK);
    rows.into_par_iter()
        .enumerate()
        .for_each(|(chunk, mut out)| {
            let from = chunk * CHUNK;
            let mut state = vec![0.0f32; out.first().map_or(0, |r| r.len())];
            for (t, o) in out.iter_mut().enumerate() {
                let row = if is_static { 0 } else { t * m };
                let x_c = &x[row + from..row + from + o.len()];
                step_after_reset(x_c, &mut state, o, c);
            }
        });
    spikes
}

/// One step with the membrane after reset as state: `u = a r + b x`,
/// spikes `H(u - v_th)`, then `r = u (1 - o)`. Equal to [`step`]'s
/// `a * u * (1 - o) + b x` bit for bit (a product by 1 or 0 either way).
#[inline(always)]
fn step_after_reset(x: &[f32], state: &mut [f32], spikes: &mut [f32], c: Coefficients) {
    for ((r, &xi), o) in state.iter_mut().zip(x).zip(spikes.iter_mut()) {
        let u = c.a * *r + c.b * xi;
        let f = fires(u, c.v_th);
        *o = f;
        *r = u * (1.0 - f);
    }
}

/// One step for a chunk of neurons: `u` holds `u[t-1]` (ignored at the
/// first step, `o_prev == None`) and becomes `u[t]`; `o` gets the spikes.
#[inline(always)]
fn step(u: &mut [f32], o_prev: Option<&[f32]>, x: &[f32], o: &mut [f32], c: Coefficients) {
    match o_prev {
        None => u.iter_mut().zip(x).for_each(|(u, &xi)| *u = c.b * xi),
        Some(o_prev) => {
            for ((u, &op), &xi) in u.iter_mut().zip(o_prev).zip(x) {
                *u = c.a * *u * (1.0 - op) + c.b * xi;
            }
        }
    }
    for (o, &u) in o.iter_mut().zip(u.iter()) {
        *o = fires(u, c.v_th);
    }
}

/// The dynamics one step at a time for fused host kernels, and their
/// backward pass over a run of neurons. The state is the membrane after
/// reset, `u[t] * (1 - o[t])`, so a step needs neither the previous spikes
/// nor a first-step case: `tau * 0 + x` is `x`, and `tau * (u (1 - o))`
/// equals [`simulate`]'s `tau * u * (1 - o)` exactly (a product by 1 or 0),
/// so the spikes match it bit for bit (`step_after_reset`).
#[derive(Clone, Debug, PartialEq)]
pub struct LifStep {
    /// The decay itself (after any parametrisation).
    pub tau: f32,
    pub v_th: f32,
    /// `dtau / dp` of the stored parameter `p` (1 for a raw tau,
    /// `tau (1 - tau)` for `tau = sigmoid(p)`): `backward` returns the
    /// gradient of what the store holds.
    pub tau_slope: f32,
    pub dynamics: Dynamics,
    /// Store keys of tau and v_th, the order of `backward`'s gradients.
    pub keys: [String; 2],
}

impl LifStep {
    fn coefficients(&self) -> Coefficients {
        Coefficients::new(self.dynamics.charge, self.tau, self.v_th)
    }
}

impl snn_core::spec::HostStep for LifStep {
    fn step(&self, x: &[f32], state: &mut [f32], spikes: &mut [f32]) {
        step_after_reset(x, state, spikes, self.coefficients());
    }

    fn param_keys(&self) -> Option<Vec<String>> {
        Some(self.keys.to_vec())
    }

    /// The fused kernel's backward pass on one run of neurons, serially
    /// (callers split their work across threads), after recomputing the
    /// membranes with [`simulate`]'s own per-step kernel.
    fn backward(&self, x: &[f32], steps: usize, g_spikes: &[f32], g_x: &mut [f32]) -> Vec<f64> {
        let n = g_spikes.len() / steps.max(1);
        let is_static = x.len() == n && steps > 1;
        let c = self.coefficients();
        // Row 0 is u[-1] = 0; row t + 1 holds u[t].
        let mut us = vec![0.0f32; (steps + 1) * n];
        let mut spikes = vec![0.0f32; steps * n];
        for t in 0..steps {
            let x_row = if is_static { x } else { &x[t * n..(t + 1) * n] };
            let (done, next) = us.split_at_mut((t + 1) * n);
            let u_row = &mut next[..n];
            u_row.copy_from_slice(&done[t * n..]);
            let (o_prev, o_cur) = spikes.split_at_mut(t * n);
            let prev = (t > 0).then(|| &o_prev[(t - 1) * n..]);
            step(u_row, prev, x_row, &mut o_cur[..n], c);
        }
        let run = Bptt::new(self.dynamics, c);
        let (mut gu, mut gu_next, mut sg) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        let (mut g_tau, mut g_vth) = (0.0f64, 0.0f64);
        for t in (0..steps).rev() {
            let (u, u_prev) = (&us[(t + 1) * n..(t + 2) * n], &us[t * n..(t + 1) * n]);
            let go = &g_spikes[t * n..(t + 1) * n];
            let x_row = if is_static { x } else { &x[t * n..(t + 1) * n] };
            let (dt, dv) = run.step(&mut gu, &gu_next, [u, u_prev, x_row], go, &mut sg);
            g_tau += dt;
            g_vth += dv;
            let dst = if is_static {
                &mut g_x[..n]
            } else {
                &mut g_x[t * n..(t + 1) * n]
            };
            dst.iter_mut().zip(&gu).for_each(|(d, g)| *d += c.b * g);
            std::mem::swap(&mut gu, &mut gu_next);
        }
        vec![g_tau * self.tau_slope as f64, g_vth]
    }
}

/// `H(u - v_th)` with `H(0) = 1`.
#[inline]
pub fn fires(u: f32, v_th: f32) -> f32 {
    if u - v_th >= 0.0 {
        1.0
    } else {
        0.0
    }
}

/// Fused forward with BPTT registered on the tape. `x` is `[T, M]`, or
/// `[1, M]` for a static input that is the same at every one of `steps`
/// steps (direct encoding: it is never copied T times, and its gradient is
/// the sum over time).
///
/// Only the membrane potentials `u[t]` (before reset) are kept for backward:
/// the spikes are recomputed from them.
#[cfg(not(feature = "cuda"))]
pub fn forward_fused(x: Mat, steps: usize, tau: FlatT, v_th: FlatT, d: Dynamics) -> Result<Mat> {
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
    let tau_v = scalar(&tau, "neuron tau")?;
    let vth_v = scalar(&v_th, "neuron v_th")?;
    let (x, x_tape) = x.split_tape();
    let (tau, tau_tape) = tau.split_tape();
    let (v_th, vth_tape) = v_th.split_tape();
    let mut tape = x_tape.merge(tau_tape).merge(vth_tape);

    let dev = x.device().clone();
    let c = Coefficients::new(d.charge, tau_v, vth_v);
    if !snn_core::grad::is_enabled() {
        let spikes = simulate_spikes(&host::read(&x), steps, m, c);
        return Ok(dev.tensor_from_vec(spikes, (steps, m)).put_tape(tape));
    }
    let x_host = host::read(&x);
    let (us, spikes) = simulate(&x_host, steps, m, c);
    // Only the decay-input form's tau derivative reads x[t] in backward.
    let x_host = (d.charge == Charge::DecayInput).then_some(x_host);
    let out = dev.tensor_from_vec(spikes, (steps, m));
    let out_id = out.clone();
    tape.add_backward_op(move |grads| {
        let g_out = host::take_grad(grads, &out_id)?;
        let gx = grads.get_or_alloc_mut(&x)?;
        let (mut g_tau, mut g_vth) = (0.0f64, 0.0f64);
        // Backward in time, all neurons of a step at once, split across
        // threads. `gu_next` holds dL/du[t+1] while row t is computed into
        // `gu`; it is zero at the last step, so that step needs no special
        // case. The chunk loop has no branches and sums in 8 lanes, so it
        // vectorises; each chunk returns its partial tau / v_th sums.
        let mut gu_next = vec![0.0f32; m];
        let mut gu = vec![0.0f32; m];
        let zeros = vec![0.0f32; m];
        let run = Bptt::new(d, c);
        for t in (0..steps).rev() {
            let u_row = &us[t * m..(t + 1) * m];
            let up_row = if t > 0 {
                &us[(t - 1) * m..t * m]
            } else {
                &zeros[..]
            };
            let go_row = &g_out[t * m..(t + 1) * m];
            // A static input's gradient is the sum over time of one row.
            let dst = if rows_in == 1 {
                0..m
            } else {
                t * m..(t + 1) * m
            };
            // x[t] for the decay-input form; any row of the right length
            // otherwise (the paper's form multiplies it by 0).
            let x_row = match &x_host {
                Some(xs) => &xs[dst.clone()],
                None => up_row,
            };
            let tasks = gu
                .par_chunks_mut(CHUNK)
                .zip(gu_next.par_chunks(CHUNK))
                .zip(u_row.par_chunks(CHUNK).zip(up_row.par_chunks(CHUNK)))
                .zip(go_row.par_chunks(CHUNK).zip(gx[dst].par_chunks_mut(CHUNK)))
                .zip(x_row.par_chunks(CHUNK));
            let (tau_sum, vth_sum) = tasks
                .map_init(
                    || vec![0.0f32; CHUNK],
                    |sg, ((((g_c, gn_c), (u_c, up_c)), (go_c, gx_c)), x_c)| {
                        let sg = &mut sg[..g_c.len()];
                        let sums = run.step(g_c, gn_c, [u_c, up_c, x_c], go_c, sg);
                        gx_c.iter_mut()
                            .zip(g_c.iter())
                            .for_each(|(a, g)| *a += c.b * g);
                        sums
                    },
                )
                .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
            std::mem::swap(&mut gu, &mut gu_next);
            g_tau += tau_sum;
            g_vth += vth_sum;
        }
        grads.get_or_alloc_mut(&tau)?[0] += g_tau as f32;
        grads.get_or_alloc_mut(&v_th)?[0] += g_vth as f32;
        Ok(())
    });
    Ok(out.put_tape(tape))
}

/// The constants of a backward pass through time.
#[derive(Clone, Copy)]
struct Bptt {
    d: Dynamics,
    c: Coefficients,
    /// The reset path's factor: `a`, or 0 with `detach_reset`.
    reset: f32,
    /// `(da/dtau, db/dtau)`.
    slopes: (f32, f32),
}

impl Bptt {
    fn new(d: Dynamics, c: Coefficients) -> Self {
        Self {
            d,
            c,
            reset: if d.detach_reset { 0.0 } else { c.a },
            slopes: d.charge.slopes(),
        }
    }

    /// One step back for a run of neurons: from `dL/du[t+1]` (`gu_next`,
    /// zero after the last step), the membranes `u[t]` and `u[t-1]`
    /// (zero before the first step), the input `x[t]` (read only where
    /// `db/dtau` is not 0) and the spikes' gradient at `t`, writes
    /// `dL/du[t]` into `gu` (`dL/dx[t]` is `b` times it) and returns this
    /// step's shares of `dL/dtau` and `dL/dv_th`. `sg` is scratch as long
    /// as the run. Branch-free and summed in 8 lanes, so it vectorises.
    #[inline(always)]
    fn step(
        &self,
        gu: &mut [f32],
        gu_next: &[f32],
        rows: [&[f32]; 3],
        g_out: &[f32],
        sg: &mut [f32],
    ) -> (f64, f64) {
        // Monomorphised per form, so the paper's never reads x.
        match self.d.charge {
            Charge::Paper => self.step_form::<false>(gu, gu_next, rows, g_out, sg),
            Charge::DecayInput => self.step_form::<true>(gu, gu_next, rows, g_out, sg),
        }
    }

    /// [`Bptt::step`] for one charge form: `READS_X` where `db/dtau` is
    /// not 0 (decay-input).
    #[inline(always)]
    fn step_form<const READS_X: bool>(
        &self,
        gu: &mut [f32],
        gu_next: &[f32],
        [u, u_prev, x]: [&[f32]; 3],
        g_out: &[f32],
        sg: &mut [f32],
    ) -> (f64, f64) {
        let (a, v_th, reset) = (self.c.a, self.c.v_th, self.reset);
        let (da, db) = self.slopes;
        self.d.sg_row(u, v_th, sg);
        let (mut lane_tau, mut lane_vth) = ([0.0f32; 8], [0.0f32; 8]);
        // One neuron: returns dL/du[t] and its (tau, v_th) shares.
        let neuron = |u: f32, up: f32, x: f32, gn: f32, go: f32, s: f32| {
            // u[t+1] = a * u[t] * (1 - o[t]) + b * x[t+1].
            let go = go - gn * reset * u;
            let g = gn * a * (1.0 - fires(u, v_th)) + go * s;
            // du[t]/dtau = da * h[t-1] + db * x[t] (h[t-1] in the paper's form).
            let h = up * (1.0 - fires(up, v_th));
            let slope = if READS_X { da * h + db * x } else { h };
            (g, g * slope, -go * s)
        };
        // Whole groups of 8 as fixed-size arrays, so the lanes vectorise
        // wherever this is inlined; then the tail.
        let n8 = gu.len() / 8 * 8;
        let lanes = gu[..n8]
            .chunks_exact_mut(8)
            .zip(gu_next.chunks_exact(8))
            .zip(u.chunks_exact(8).zip(u_prev.chunks_exact(8)))
            .zip(g_out.chunks_exact(8).zip(sg.chunks_exact(8)))
            .zip(x.chunks_exact(8));
        let arr = |c: &[f32]| -> [f32; 8] { std::array::from_fn(|j| c[j]) };
        for ((((g8, gn8), (u8, up8)), (go8, sg8)), x8) in lanes {
            let (u8, up8, gn8, go8, sg8) = (arr(u8), arr(up8), arr(gn8), arr(go8), arr(sg8));
            let x8 = if READS_X { arr(x8) } else { [0.0; 8] };
            let mut out = [0.0f32; 8];
            for j in 0..8 {
                let (g, dt, dv) = neuron(u8[j], up8[j], x8[j], gn8[j], go8[j], sg8[j]);
                out[j] = g;
                lane_tau[j] += dt;
                lane_vth[j] += dv;
            }
            g8.copy_from_slice(&out);
        }
        for i in n8..gu.len() {
            let xi = if READS_X { x[i] } else { 0.0 };
            let (g, dt, dv) = neuron(u[i], u_prev[i], xi, gu_next[i], g_out[i], sg[i]);
            gu[i] = g;
            lane_tau[0] += dt;
            lane_vth[0] += dv;
        }
        let sum = |l: [f32; 8]| l.iter().sum::<f32>() as f64;
        (sum(lane_tau), sum(lane_vth))
    }
}

/// One time step's spikes `H(v)` with the surrogate gradient, from dfdx ops
/// (any device). `centre` is where the surrogate is evaluated (usually `v`
/// itself, without tape). Returns the taped spikes and their plain values.
///
/// Straight-through form: `o = v * g + (H(v) - v * g)|detached`, with
/// `g = surrogate'(centre)` taken as a constant. Its value is `H(v)` and its
/// derivative with respect to `v` is `g`. Plugin neurons can build on it.
pub fn spike(v: FlatT, centre: Flat, surrogate: Surrogate) -> (FlatT, Flat) {
    let dev = v.device().clone();
    let v_plain = v.retaped::<NoneTape>();
    let g = surrogate.grad_tensor(centre);
    let h = v_plain
        .clone()
        .ge(0.0)
        .choose(dev.ones_like(&v_plain), dev.zeros_like(&v_plain));
    let offset = h.clone() - v_plain * g.clone();
    (v * g + offset, h)
}

/// The same dynamics composed of dfdx ops, one time step at a time, with
/// [`spike`] for the firing.
pub fn forward_composed(x: Mat, tau: FlatT, v_th: FlatT, d: Dynamics) -> Result<Mat> {
    let (steps, m) = *x.shape();
    if steps == 0 {
        return Err(Error::shape("neuron input", "no time steps"));
    }
    let dev = x.device().clone();
    let (x, x_tape) = x.split_tape();
    let tau = tau.reshape_like(&());
    let v_th = v_th.reshape_like(&());
    // Copies on empty tapes share the originals' ids, so the gradients of
    // every step add into one buffer; the originals' histories ride on the
    // first use (`take()`).
    let tau_c = tau.retaped::<Tp>();
    let vth_c = v_th.retaped::<Tp>();
    let (mut x_tape, mut tau_first, mut vth_first) = (Some(x_tape), Some(tau), Some(v_th));
    let mut outs: Vec<FlatT> = Vec::with_capacity(steps);
    let mut state: Option<(FlatT, FlatT)> = None; // (u[t-1], 1 - o[t-1])
    for t in 0..steps {
        let x_src = match x_tape.take() {
            Some(tp) => x.clone().put_tape(tp),
            None => x.retaped::<Tp>(),
        };
        let xt: FlatT = x_src.select(dev.tensor(t));
        let tau_t = tau_first.take().unwrap_or_else(|| tau_c.retaped());
        let vth_t = vth_first.take().unwrap_or_else(|| vth_c.retaped());
        // u = a h + b x: (tau, 1) or (1 - tau, tau).
        let (a_t, bx) = match d.charge {
            Charge::Paper => (tau_t, xt),
            Charge::DecayInput => {
                let a_t = tau_c.retaped::<Tp>().negate() + 1.0;
                (a_t, tau_t.broadcast_like(&(m,)) * xt)
            }
        };
        let u_t = match state.take() {
            Some((u_prev, keep)) => a_t.broadcast_like(&(m,)) * u_prev * keep + bx,
            None => {
                let (_, a_tape) = a_t.split_tape();
                let (bx, bx_tape) = bx.split_tape();
                bx.put_tape(bx_tape.merge(a_tape))
            }
        };
        let v = u_t.with_empty_tape() - vth_t.broadcast_like(&(m,));
        let centre = match d.window {
            WindowCenter::Threshold => v.retaped::<NoneTape>(),
            WindowCenter::Membrane => u_t.retaped::<NoneTape>(),
        };
        let (o, h) = spike(v, centre, d.surrogate);
        let keep = if d.detach_reset {
            // A fresh tensor (new id): no gradient reaches the spike.
            (h.negate() + 1.0).retaped::<Tp>()
        } else {
            o.with_empty_tape().negate() + 1.0
        };
        outs.push(o);
        state = Some((u_t, keep));
    }
    let stacked: Tensor<(usize, usize), f32, Dev, Tp> = outs.stack();
    // The last membrane and reset factor feed no later step: merge their
    // tapes so their histories are not lost.
    let (stacked, mut tape) = stacked.split_tape();
    if let Some((u, keep)) = state {
        tape = tape.merge(u.split_tape().1).merge(keep.split_tape().1);
    }
    Ok(stacked.put_tape(tape))
}
