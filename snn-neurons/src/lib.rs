//! Spiking neurons for snn-rs: LIF (tau and V_th fixed), PLIF (tau learned)
//! and ALIF (tau and V_th learned, the paper's neuron), all following the
//! paper's Eq. 5-9 with a hard reset and a configurable surrogate gradient.
//!
//! The three specs share every field; only their defaults differ (LIF and
//! ALIF: the paper's Eq. 5 with tau 0.25 / V_th 0.2, fixed or learned; PLIF:
//! Fang et al.'s decay-input form with a sigmoid-parametrised decay), so
//! "which constants learn" and "which form" are config lines, not code
//! changes:
//!
//! ```toml
//! [neuron]
//! type = "alif"          # or "lif", "plif"
//! tau = 0.25
//! v_th = 0.2
//! surrogate = { kind = "rectangular", width = 1.0 }
//! window_center = "threshold"   # "membrane" = FSVAE's variant
//! charge = "paper"               # "decay-input": u = h + (x - h) tau
//! tau_param = "raw"              # "sigmoid": tau = sigmoid(w)
//! detach_reset = false
//! ```

pub mod lif;
pub mod step;

pub use lif::{Charge, LifSettings, LifStep, TauParam, WindowCenter};
pub use snn_core::surrogate::{self, Surrogate};
pub use snn_core::Impl;
pub use step::{StepNeuron, StepParam};

use serde::{Deserialize, Serialize};
use snn_core::spec::{Neuron, NeuronSpec};
use snn_core::{ParamStore, Result};

macro_rules! lif_family_spec {
    ($(#[$doc:meta])* $Spec:ident, $name:literal, $learn_tau:expr, $learn_vth:expr,
     [$tau:expr, $v_th:expr, $charge:expr, $tau_param:expr], $about:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $Spec {
            /// Membrane decay per step (initial value when learned).
            pub tau: f32,
            /// Firing threshold (initial value when learned).
            pub v_th: f32,
            pub learn_tau: bool,
            pub learn_v_th: bool,
            pub surrogate: Surrogate,
            pub window_center: WindowCenter,
            /// Stop the gradient through the reset term `(1 - o[t-1])`
            /// (the paper's Eq. 8 and the authors' classifier runs).
            pub detach_reset: bool,
            /// `paper` (`u = tau h + x`, Eq. 5) or `decay-input`
            /// (`u = h + (x - h) tau`, the authors' code).
            pub charge: Charge,
            /// How the learned decay is stored: `raw` (tau itself) or
            /// `sigmoid` (tau = sigmoid(w), bounded in (0, 1), as the
            /// authors' code and Fang et al.'s PLIF).
            pub tau_param: TauParam,
            /// `auto` (fused CPU kernel where available) or `composed`.
            pub kernel: Impl,
        }

        impl Default for $Spec {
            fn default() -> Self {
                Self {
                    tau: $tau,
                    v_th: $v_th,
                    learn_tau: $learn_tau,
                    learn_v_th: $learn_vth,
                    surrogate: Surrogate::default(),
                    window_center: WindowCenter::Threshold,
                    detach_reset: false,
                    charge: $charge,
                    tau_param: $tau_param,
                    kernel: Impl::Auto,
                }
            }
        }

        impl $Spec {
            pub fn settings(&self) -> LifSettings {
                LifSettings {
                    tau: self.tau,
                    v_th: self.v_th,
                    learn_tau: self.learn_tau,
                    learn_v_th: self.learn_v_th,
                    step: LifStep {
                        surrogate: self.surrogate,
                        window: self.window_center,
                        detach_reset: self.detach_reset,
                        charge: self.charge,
                        tau_param: self.tau_param,
                    },
                    kernel: self.kernel,
                }
            }
        }

        #[typetag::serde(name = $name)]
        impl NeuronSpec for $Spec {
            fn build(&self, name: &str, store: &mut ParamStore) -> Result<Box<dyn Neuron>> {
                self.settings().build(name, store)
            }

            fn about(&self) -> &'static str {
                $about
            }
        }
    };
}

lif_family_spec!(
    /// Leaky integrate-and-fire with fixed `tau` and `v_th`.
    LifSpec, "lif", false, false, [0.25, 0.2, Charge::Paper, TauParam::Raw],
    "leaky integrate-and-fire, tau and v_th fixed"
);
lif_family_spec!(
    /// Fang et al.'s parametric LIF (ICCV 2021): `u = h + (x - h) k` with
    /// `k = sigmoid(w)` learned per layer (`tau` here is `k`, their
    /// `1 / tau`; default 0.5, their tau = 2) and `v_th` fixed at 1, as
    /// SpikingJelly's `ParametricLIFNode`.
    PlifSpec, "plif", true, false, [0.5, 1.0, Charge::DecayInput, TauParam::Sigmoid],
    "Fang et al.'s PLIF: u = h + (x - h) sigmoid(w), w learned per layer, v_th fixed"
);
lif_family_spec!(
    /// Adaptive LIF (the paper's neuron): `tau` and `v_th` learned.
    AlifSpec, "alif", true, true, [0.25, 0.2, Charge::Paper, TauParam::Raw],
    "adaptive LIF (paper Eq. 5-9): tau and v_th learned per layer"
);

/// Forces this crate to be linked, so its typetag registrations are
/// visible: call it (or name any item of the crate) from a binary.
pub fn link() {}
