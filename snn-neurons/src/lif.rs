//! The LIF family's definition: one time step (the paper's Eq. 5-9 with a
//! hard reset), from which [`StepNeuron`] derives every way of running it.
//!
//! ```text
//! r[t-1] = u[t-1] (1 - o[t-1])        the state: membrane after reset, 0 before the first step
//! u[t]   = a r[t-1] + b x[t]          (a, b) = (tau, 1): the paper's Eq. 5
//!                                     (a, b) = (1 - tau, tau): decay-input,
//!                                     the authors' u = h + (x - h) tau
//! o[t]   = H(u[t] - v_th)             H(0) = 1
//! ```
//!
//! For the paper's form `b = 1` multiplies exactly, so that form computes
//! `tau r + x` bit for bit.

use crate::step::{StepNeuron, StepParam};
use serde::{Deserialize, Serialize};
use snn_core::nir::LifForm;
use snn_core::spec::Neuron;
use snn_core::step::{HostNum, NeuronStep, Num};
use snn_core::surrogate::Surrogate;
use snn_core::{Error, Impl, ParamStore, Result};

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

/// How the membrane charges from the reset membrane `r` and the input `x`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Charge {
    /// `u = tau r + x` (the paper's Eq. 5).
    #[default]
    Paper,
    /// `u = r + (x - r) tau = (1 - tau) r + tau x` (the TAID and PLIF
    /// authors' code, SpikingJelly's `decay_input`).
    DecayInput,
}

/// How a layer's decay is held in the parameter store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TauParam {
    /// `name.tau` is the decay itself.
    #[default]
    Raw,
    /// `name.tau_logit` holds `w`, and the decay is `sigmoid(w)`: always
    /// in (0, 1), however far training moves `w`.
    Sigmoid,
}

/// One LIF step. Parameters: the stored decay (`tau` or `tau_logit`) and
/// `v_th`; constants: `a`, `b` and `v_th`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifStep {
    pub surrogate: Surrogate,
    pub window: WindowCenter,
    /// Stop the gradient through the reset term `(1 - o[t])`.
    pub detach_reset: bool,
    pub charge: Charge,
    pub tau_param: TauParam,
}

impl LifStep {
    fn tau<N: Num>(&self, stored: &N) -> N {
        match self.tau_param {
            TauParam::Raw => stored.clone(),
            TauParam::Sigmoid => stored.sigmoid(),
        }
    }
}

impl NeuronStep for LifStep {
    fn constants<N: Num>(&self, p: &[N]) -> Vec<N> {
        let tau = self.tau(&p[0]);
        let (a, b) = match self.charge {
            Charge::Paper => (tau.clone(), tau.lit(1.0)),
            Charge::DecayInput => (tau.lit(1.0) - tau.clone(), tau),
        };
        vec![a, b, p[1].clone()]
    }

    #[inline(always)]
    fn step<N: Num>(&self, k: &[N], state: &mut [N], x: N) -> N {
        let u = k[0].clone() * state[0].clone() + k[1].clone() * x;
        let v = u.clone() - k[2].clone();
        let o = match self.window {
            WindowCenter::Threshold => v.spike(&v, &self.surrogate),
            WindowCenter::Membrane => v.spike(&u, &self.surrogate),
        };
        let keep = if self.detach_reset {
            o.detach()
        } else {
            o.clone()
        };
        state[0] = u * (keep.lit(1.0) - keep);
        o
    }

    /// By hand, for speed (the derived one runs the step on dual numbers
    /// along five inputs); the twin tests hold it to the composed step.
    #[inline(always)]
    fn step_backward<N: HostNum>(
        &self,
        k: &[N],
        state: &[N],
        x: N,
        g_spike: N,
        g_state: &mut [N],
        g_k: &mut [N],
    ) -> N {
        let (a, b, v_th, r) = (k[0], k[1], k[2], state[0]);
        let u = a * r + b * x;
        let v = u - v_th;
        let o = v.heaviside();
        let sg = match self.window {
            WindowCenter::Threshold => v,
            WindowCenter::Membrane => u,
        }
        .surrogate_grad(&self.surrogate);
        // r[t] = u (1 - o): the spike's total gradient includes the reset
        // path, unless it is detached.
        let g_r = g_state[0];
        let g_o = if self.detach_reset {
            g_spike
        } else {
            g_spike - g_r * u
        };
        let g_u = g_r * (N::splat(1.0) - o) + g_o * sg;
        g_k[0] = g_k[0] + g_u * r;
        g_k[1] = g_k[1] + g_u * x;
        g_k[2] = g_k[2] - g_o * sg;
        g_state[0] = g_u * a;
        g_u * b
    }

    fn report(&self, p: &[f32]) -> Vec<(&'static str, f32)> {
        vec![("tau", self.tau(&p[0])), ("v_th", p[1])]
    }

    fn lif_form(&self, k: &[f32]) -> Option<LifForm> {
        Some(LifForm {
            decay: k[0],
            gain: k[1],
            v_th: k[2],
        })
    }
}

/// Settings shared by the LIF, PLIF and ALIF specs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifSettings {
    /// The decay (its initial value when learned).
    pub tau: f32,
    pub v_th: f32,
    pub learn_tau: bool,
    pub learn_v_th: bool,
    pub step: LifStep,
    pub kernel: Impl,
}

impl LifSettings {
    pub fn validate(&self) -> Result<()> {
        let ok = match self.step.tau_param {
            TauParam::Raw => (0.0..=1.0).contains(&self.tau),
            TauParam::Sigmoid => self.tau > 0.0 && self.tau < 1.0,
        };
        if !ok {
            let range = match self.step.tau_param {
                TauParam::Raw => "[0, 1]",
                TauParam::Sigmoid => "(0, 1) with tau_param = \"sigmoid\"",
            };
            return Err(Error::invalid(
                "neuron.tau",
                format!(
                    "{} is not a decay factor: tau multiplies the membrane every step, accepted {range}",
                    self.tau
                ),
            ));
        }
        if !self.v_th.is_finite() {
            return Err(Error::invalid("neuron.v_th", "must be a finite number"));
        }
        self.step.surrogate.validate("neuron.surrogate")
    }

    /// Registers `name.tau` (or `name.tau_logit`) and `name.v_th` and
    /// returns the layer.
    pub fn build(&self, name: &str, store: &mut ParamStore) -> Result<Box<dyn Neuron>> {
        self.validate()?;
        let decay = match self.step.tau_param {
            TauParam::Raw => ("tau", self.tau),
            // w = logit(tau), so that sigmoid(w) starts at the configured tau.
            TauParam::Sigmoid => ("tau_logit", (self.tau / (1.0 - self.tau)).ln()),
        };
        let params = [
            StepParam {
                name: decay.0,
                value: decay.1,
                learn: self.learn_tau,
            },
            StepParam {
                name: "v_th",
                value: self.v_th,
                learn: self.learn_v_th,
            },
        ];
        let layer = StepNeuron::build(self.step, name, &params, self.kernel, store)?;
        Ok(Box::new(layer))
    }
}
