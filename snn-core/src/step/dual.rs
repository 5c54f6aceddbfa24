//! Forward-mode dual numbers: a value with its derivatives along up to
//! [`MAX_TANGENTS`] inputs. Running a neuron's step on them gives the
//! step's whole Jacobian in one pass, from which [`step_backward`] (the
//! default backward pass of every [`NeuronStep`]) and the chain rule
//! through [`NeuronStep::constants`] follow without hand-written
//! derivatives.

use super::{HostNum, NeuronStep, Num, MAX_STATE};
use crate::surrogate::Surrogate;
use std::ops::{Add, Mul, Sub};

/// Inputs a dual number tracks: the state, the input current and the
/// constants of one step together.
pub const MAX_TANGENTS: usize = 8;

/// `v` and `dv / d input_i` for each tracked input `i`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dual {
    pub v: f32,
    pub d: [f32; MAX_TANGENTS],
}

impl Dual {
    /// A constant: no derivatives.
    pub fn constant(v: f32) -> Self {
        Self {
            v,
            d: [0.0; MAX_TANGENTS],
        }
    }

    /// Input number `i`: derivative 1 along itself.
    pub fn input(v: f32, i: usize) -> Self {
        let mut d = [0.0; MAX_TANGENTS];
        d[i] = 1.0;
        Self { v, d }
    }

    #[inline(always)]
    fn with(v: f32, f: impl Fn(usize) -> f32) -> Self {
        Self {
            v,
            d: std::array::from_fn(f),
        }
    }
}

impl Add for Dual {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self::with(self.v + o.v, |i| self.d[i] + o.d[i])
    }
}

impl Sub for Dual {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self::with(self.v - o.v, |i| self.d[i] - o.d[i])
    }
}

impl Mul for Dual {
    type Output = Self;
    // The product rule: the derivative of a product is a sum.
    #[allow(clippy::suspicious_arithmetic_impl)]
    fn mul(self, o: Self) -> Self {
        Self::with(self.v * o.v, |i| self.d[i] * o.v + self.v * o.d[i])
    }
}

impl Num for Dual {
    fn lit(&self, c: f32) -> Self {
        Self::constant(c)
    }

    fn spike(&self, centre: &Self, surrogate: &Surrogate) -> Self {
        let g = surrogate.grad(centre.v);
        Self::with(super::fires(self.v), |i| g * self.d[i])
    }

    fn detach(&self) -> Self {
        Self::constant(self.v)
    }

    fn sigmoid(&self) -> Self {
        let s = self.v.sigmoid();
        Self::with(s, |i| s * (1.0 - s) * self.d[i])
    }
}

/// [`NeuronStep::step_backward`] derived from the step: each lane's step
/// rerun on dual numbers seeded along its state, its input and the
/// constants, then the Jacobian's transpose applied to the incoming
/// gradients. Needs `STATE + 1 + k.len() <= MAX_TANGENTS`, which
/// [`super::check`] verifies when the neuron is built.
pub fn step_backward<S: NeuronStep + ?Sized, N: HostNum>(
    step: &S,
    k: &[N],
    state: &[N],
    x: N,
    g_spike: N,
    g_state: &mut [N],
    g_k: &mut [N],
) -> N {
    let ns = S::STATE;
    let mut g_x = x;
    for lane in 0..N::LANES {
        let kd: [Dual; MAX_TANGENTS] = std::array::from_fn(|i| match k.get(i) {
            Some(ki) => Dual::input(ki.lane(lane), ns + 1 + i),
            None => Dual::constant(0.0),
        });
        let mut sd: [Dual; MAX_STATE] = std::array::from_fn(|j| match state.get(j) {
            Some(sj) => Dual::input(sj.lane(lane), j),
            None => Dual::constant(0.0),
        });
        let xd = Dual::input(x.lane(lane), ns);
        let o = step.step(&kd[..k.len()], &mut sd[..ns], xd);
        // dL/d input_i = g_o do/di + sum_j g_s[j] ds_j/di.
        let go = g_spike.lane(lane);
        let gs: [f32; MAX_STATE] =
            std::array::from_fn(|j| g_state.get(j).map_or(0.0, |g| g.lane(lane)));
        let grad = |i: usize| -> f32 {
            let mut g = go * o.d[i];
            for j in 0..ns {
                g += gs[j] * sd[j].d[i];
            }
            g
        };
        for (j, g) in g_state.iter_mut().enumerate().take(ns) {
            g.set_lane(lane, grad(j));
        }
        g_x.set_lane(lane, grad(ns));
        for (i, g) in g_k.iter_mut().enumerate() {
            g.set_lane(lane, g.lane(lane) + grad(ns + 1 + i));
        }
    }
    g_x
}

/// The step's constants at parameter values `params`, and the derivative
/// of constant `i` with respect to parameter `p` as `jac[i][p]`.
pub fn constants_jacobian<S: NeuronStep + ?Sized>(
    step: &S,
    params: &[f32],
) -> (Vec<f32>, Vec<[f32; MAX_TANGENTS]>) {
    let pd: Vec<Dual> = params
        .iter()
        .enumerate()
        .map(|(i, &v)| Dual::input(v, i))
        .collect();
    let k = step.constants(&pd);
    (
        k.iter().map(|d| d.v).collect(),
        k.iter().map(|d| d.d).collect(),
    )
}
