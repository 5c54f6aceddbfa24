//! A neuron that lives outside snn-rs's own crates: integrate-and-fire with
//! a *soft* reset (subtract the threshold instead of zeroing):
//!
//! ```text
//! u[t] = u[t-1] - v_th * o[t-1] + x[t]
//! o[t] = H(u[t] - v_th)
//! ```
//!
//! The neuron is its step function ([`NeuronStep`]); `StepNeuron` derives
//! everything else from it: the fused host kernel and its backward pass
//! through time (from dual numbers), the fused spike + pool layer, the
//! FSVAE's stepper and the composed dfdx twin. Registering the config type
//! takes one attribute, `#[typetag::serde(name = "if-soft")]`; once this
//! crate is linked into a binary, a config selects it with
//! `type = "if-soft"` in its `[neuron]` table. Nothing in snn-rs changes.

use serde::{Deserialize, Serialize};
use snn_core::spec::{Neuron, NeuronSpec};
use snn_core::step::{NeuronStep, Num};
use snn_core::{Error, ParamStore, Result};
use snn_neurons::{Impl, StepNeuron, StepParam, Surrogate};

/// The step: state is the membrane `u`, the one parameter `v_th`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftResetIf {
    pub surrogate: Surrogate,
}

impl NeuronStep for SoftResetIf {
    fn step<N: Num>(&self, k: &[N], state: &mut [N], x: N) -> N {
        let v_th = k[0].clone();
        let u = state[0].clone() + x;
        let v = u.clone() - v_th.clone();
        let o = v.spike(&v, &self.surrogate);
        state[0] = u - v_th * o.clone();
        o
    }
}

/// Config of the soft-reset IF neuron.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoftResetIfSpec {
    pub v_th: f32,
    pub learn_v_th: bool,
    pub surrogate: Surrogate,
    /// `auto` (the derived host kernels) or `composed` (dfdx ops).
    pub kernel: Impl,
}

impl Default for SoftResetIfSpec {
    fn default() -> Self {
        Self {
            v_th: 1.0,
            learn_v_th: false,
            surrogate: Surrogate::default(),
            kernel: Impl::Auto,
        }
    }
}

#[typetag::serde(name = "if-soft")]
impl NeuronSpec for SoftResetIfSpec {
    fn build(&self, name: &str, store: &mut ParamStore) -> Result<Box<dyn Neuron>> {
        if !(self.v_th.is_finite() && self.v_th > 0.0) {
            return Err(Error::invalid("neuron.v_th", "must be a positive number"));
        }
        self.surrogate.validate("neuron.surrogate")?;
        let v_th = StepParam {
            name: "v_th",
            value: self.v_th,
            learn: self.learn_v_th,
        };
        let step = SoftResetIf {
            surrogate: self.surrogate,
        };
        Ok(Box::new(StepNeuron::build(
            step,
            name,
            &[v_th],
            self.kernel,
            store,
        )?))
    }

    fn about(&self) -> &'static str {
        "example plugin: integrate-and-fire with soft reset (u -= v_th on a spike)"
    }
}

/// Forces this crate to be linked so its registration is visible.
pub fn link() {}
