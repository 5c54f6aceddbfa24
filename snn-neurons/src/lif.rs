//! The LIF-family neuron layer: one (tau, v_th) pair per layer, either
//! learned or fixed.

use crate::dynamics::{self, Dynamics, Kernel, LifStep};
use serde::{Deserialize, Serialize};
#[cfg(not(feature = "cuda"))]
use snn_core::dfdx::shapes::HasShape;
use snn_core::spec::{HostStep, Neuron};
use snn_core::{Error, Mat, ParamStore, Result};

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

/// Settings shared by the LIF, PLIF and ALIF specs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifSettings {
    /// The decay (its initial value when learned).
    pub tau: f32,
    pub v_th: f32,
    pub learn_tau: bool,
    pub learn_v_th: bool,
    pub tau_param: TauParam,
    pub dynamics: Dynamics,
    pub kernel: Kernel,
}

impl LifSettings {
    pub fn validate(&self) -> Result<()> {
        let ok = match self.tau_param {
            TauParam::Raw => (0.0..=1.0).contains(&self.tau),
            TauParam::Sigmoid => self.tau > 0.0 && self.tau < 1.0,
        };
        if !ok {
            let range = match self.tau_param {
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
        self.dynamics.surrogate.validate("neuron.surrogate")
    }

    /// Registers `name.tau` (or `name.tau_logit`) and `name.v_th` and
    /// returns the layer.
    pub fn build(&self, name: &str, store: &mut ParamStore) -> Result<Box<dyn Neuron>> {
        self.validate()?;
        let (tau_key, stored) = match self.tau_param {
            TauParam::Raw => (format!("{name}.tau"), self.tau),
            // w = logit(tau), so that sigmoid(w) starts at the configured tau.
            TauParam::Sigmoid => (
                format!("{name}.tau_logit"),
                (self.tau / (1.0 - self.tau)).ln(),
            ),
        };
        let vth_key = format!("{name}.v_th");
        store.insert(&tau_key, &[], vec![stored], self.learn_tau)?;
        store.insert(&vth_key, &[], vec![self.v_th], self.learn_v_th)?;
        Ok(Box::new(LifLayer {
            tau_key,
            vth_key,
            tau_param: self.tau_param,
            dynamics: self.dynamics,
            kernel: self.kernel,
        }))
    }
}

#[derive(Debug)]
pub struct LifLayer {
    tau_key: String,
    vth_key: String,
    tau_param: TauParam,
    dynamics: Dynamics,
    kernel: Kernel,
}

impl LifLayer {
    /// The decay on the tape, from what the store holds.
    fn tau(&self, store: &ParamStore) -> Result<snn_core::FlatT> {
        let p = store.taped(&self.tau_key)?;
        Ok(match self.tau_param {
            TauParam::Raw => p,
            TauParam::Sigmoid => p.sigmoid(),
        })
    }

    /// The decay's value and `dtau / dp` of the stored parameter `p`.
    fn tau_value(&self, store: &ParamStore) -> Result<(f32, f32)> {
        let p = scalar_value(store, &self.tau_key)?;
        Ok(match self.tau_param {
            TauParam::Raw => (p, 1.0),
            TauParam::Sigmoid => {
                let tau = 1.0 / (1.0 + (-p).exp());
                (tau, tau * (1.0 - tau))
            }
        })
    }
}

impl Neuron for LifLayer {
    fn forward(&self, x: Mat, store: &ParamStore) -> Result<Mat> {
        let tau = self.tau(store)?;
        let v_th = store.taped(&self.vth_key)?;
        match self.kernel {
            #[cfg(not(feature = "cuda"))]
            Kernel::Auto => {
                let steps = x.shape().0;
                dynamics::forward_fused(x, steps, tau, v_th, self.dynamics)
            }
            _ => dynamics::forward_composed(x, tau, v_th, self.dynamics),
        }
    }

    fn forward_static(&self, x: Mat, steps: usize, store: &ParamStore) -> Result<Mat> {
        match self.kernel {
            #[cfg(not(feature = "cuda"))]
            Kernel::Auto => {
                let tau = self.tau(store)?;
                let v_th = store.taped(&self.vth_key)?;
                dynamics::forward_fused(x, steps, tau, v_th, self.dynamics)
            }
            _ => self.forward(snn_core::spec::repeat_rows(x, steps)?, store),
        }
    }

    fn host_step(&self, store: &ParamStore) -> Result<Option<Box<dyn HostStep>>> {
        let (tau, tau_slope) = self.tau_value(store)?;
        Ok(match self.kernel {
            Kernel::Auto => Some(Box::new(LifStep {
                tau,
                tau_slope,
                v_th: scalar_value(store, &self.vth_key)?,
                dynamics: self.dynamics,
                keys: [self.tau_key.clone(), self.vth_key.clone()],
            })),
            Kernel::Composed => None,
        })
    }

    fn constants(&self, store: &ParamStore) -> Result<Vec<(String, f32)>> {
        Ok(vec![
            ("tau".into(), self.tau_value(store)?.0),
            ("v_th".into(), scalar_value(store, &self.vth_key)?),
        ])
    }
}

/// The one value of scalar parameter `key`.
fn scalar_value(store: &ParamStore, key: &str) -> Result<f32> {
    match store.values(key)?.as_slice() {
        [v] => Ok(*v),
        other => Err(Error::shape(
            key,
            format!("expected 1 value, got {}", other.len()),
        )),
    }
}
