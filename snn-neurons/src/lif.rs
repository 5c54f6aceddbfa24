//! The LIF-family neuron layer: one (tau, v_th) pair per layer, either
//! learned or fixed.

use crate::dynamics::{self, Dynamics, Kernel, LifStep};
#[cfg(not(feature = "cuda"))]
use snn_core::dfdx::shapes::HasShape;
use snn_core::spec::{HostStep, Neuron};
use snn_core::{Error, Mat, ParamStore, Result};

/// Settings shared by the LIF, PLIF and ALIF specs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifSettings {
    pub tau: f32,
    pub v_th: f32,
    pub learn_tau: bool,
    pub learn_v_th: bool,
    pub dynamics: Dynamics,
    pub kernel: Kernel,
}

impl LifSettings {
    pub fn validate(&self) -> Result<()> {
        if !self.tau.is_finite() {
            return Err(Error::invalid("neuron.tau", "must be a finite number"));
        }
        if !self.v_th.is_finite() {
            return Err(Error::invalid("neuron.v_th", "must be a finite number"));
        }
        self.dynamics.surrogate.validate("neuron.surrogate")
    }

    /// Registers `name.tau` and `name.v_th` and returns the layer.
    pub fn build(&self, name: &str, store: &mut ParamStore) -> Result<Box<dyn Neuron>> {
        self.validate()?;
        let tau_key = format!("{name}.tau");
        let vth_key = format!("{name}.v_th");
        store.insert(&tau_key, &[], vec![self.tau], self.learn_tau)?;
        store.insert(&vth_key, &[], vec![self.v_th], self.learn_v_th)?;
        Ok(Box::new(LifLayer {
            tau_key,
            vth_key,
            dynamics: self.dynamics,
            kernel: self.kernel,
        }))
    }
}

#[derive(Debug)]
pub struct LifLayer {
    tau_key: String,
    vth_key: String,
    dynamics: Dynamics,
    kernel: Kernel,
}

impl Neuron for LifLayer {
    fn forward(&self, x: Mat, store: &ParamStore) -> Result<Mat> {
        let tau = store.taped(&self.tau_key)?;
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
                let tau = store.taped(&self.tau_key)?;
                let v_th = store.taped(&self.vth_key)?;
                dynamics::forward_fused(x, steps, tau, v_th, self.dynamics)
            }
            _ => self.forward(snn_core::spec::repeat_rows(x, steps)?, store),
        }
    }

    fn host_step(&self, store: &ParamStore) -> Result<Option<Box<dyn HostStep>>> {
        Ok(match self.kernel {
            Kernel::Auto => Some(Box::new(LifStep {
                tau: scalar_value(store, &self.tau_key)?,
                v_th: scalar_value(store, &self.vth_key)?,
                dynamics: self.dynamics,
                keys: [self.tau_key.clone(), self.vth_key.clone()],
            })),
            Kernel::Composed => None,
        })
    }

    fn constants(&self, store: &ParamStore) -> Result<Vec<(String, f32)>> {
        Ok(vec![
            ("tau".into(), scalar_value(store, &self.tau_key)?),
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
