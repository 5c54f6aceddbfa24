//! [`StepNeuron`]: a [`NeuronStep`] made into a neuron layer. Every way of
//! running the layer derives from the step: the fused host kernel with its
//! backward pass through time, the no-gradient simulation, the host step
//! models fuse with what follows (spike + pool, the FSVAE's stepper) and
//! the composed twin.

use super::run::HostRun;
use snn_core::dfdx::shapes::HasShape;
use snn_core::nir::LifForm;
use snn_core::spec::{HostStep, Neuron, NeuronConstants};
use snn_core::step::NeuronStep;
use snn_core::{Error, FlatT, Impl, Mat, ParamStore, Result};
use std::sync::Arc;

/// One scalar parameter of a neuron layer, as registered in the store.
#[derive(Clone, Debug, PartialEq)]
pub struct StepParam {
    /// Short name: the store key is `layer.name`.
    pub name: &'static str,
    /// The stored (initial) value.
    pub value: f32,
    pub learn: bool,
}

/// A neuron layer defined by its step.
#[derive(Debug)]
pub struct StepNeuron<S> {
    step: Arc<S>,
    /// `(short name, store key)` of each parameter, in the step's order.
    params: Vec<(&'static str, String)>,
    kernel: Impl,
}

impl<S: NeuronStep> StepNeuron<S> {
    /// Registers `params` under `name.` and returns the layer.
    pub fn build(
        step: S,
        name: &str,
        params: &[StepParam],
        kernel: Impl,
        store: &mut ParamStore,
    ) -> Result<Self> {
        snn_core::step::check(&step, params.len(), &format!("neuron `{name}`"))?;
        let mut keys = Vec::with_capacity(params.len());
        for p in params {
            let key = format!("{name}.{}", p.name);
            store.insert(&key, &[], vec![p.value], p.learn)?;
            keys.push((p.name, key));
        }
        Ok(Self {
            step: Arc::new(step),
            params: keys,
            kernel,
        })
    }

    fn values(&self, store: &ParamStore) -> Result<Vec<f32>> {
        self.params
            .iter()
            .map(|(_, key)| match store.values(key)?.as_slice() {
                [v] => Ok(*v),
                other => Err(Error::shape(
                    key,
                    format!("expected 1 value, got {}", other.len()),
                )),
            })
            .collect()
    }

    fn taped(&self, store: &ParamStore) -> Result<Vec<FlatT>> {
        self.params
            .iter()
            .map(|(_, key)| store.taped(key))
            .collect()
    }

    /// The host kernels at the store's current parameter values.
    pub fn host_run(&self, store: &ParamStore) -> Result<HostRun<S>> {
        let keys = self.params.iter().map(|(_, k)| k.clone()).collect();
        Ok(HostRun::new(self.step.clone(), &self.values(store)?, keys))
    }

    /// The layer on `rows` = `steps` or 1 (repeated) rows of input.
    fn run(&self, x: Mat, steps: usize, store: &ParamStore) -> Result<Mat> {
        snn_core::host_kernels! {
            if self.kernel.host() {
                return super::fused::forward(self.host_run(store)?, x, steps, self.taped(store)?);
            }
        }
        super::composed::forward(&*self.step, x, steps, self.taped(store)?)
    }
}

impl<S: NeuronStep> Neuron for StepNeuron<S> {
    fn forward(&self, x: Mat, store: &ParamStore) -> Result<Mat> {
        let steps = x.shape().0;
        self.run(x, steps, store)
    }

    fn forward_static(&self, x: Mat, steps: usize, store: &ParamStore) -> Result<Mat> {
        self.run(x, steps, store)
    }

    fn host_step(&self, store: &ParamStore) -> Result<Option<Box<dyn HostStep>>> {
        Ok(match self.kernel {
            Impl::Auto => Some(Box::new(self.host_run(store)?)),
            Impl::Composed => None,
        })
    }

    fn lif_form(&self, store: &ParamStore) -> Result<Option<LifForm>> {
        let k = self.step.constants(&self.values(store)?);
        Ok(self.step.lif_form(&k))
    }

    fn constants(&self, store: &ParamStore) -> Result<NeuronConstants> {
        let values = self.values(store)?;
        let reported = self.step.report(&values);
        Ok(if reported.is_empty() {
            self.params
                .iter()
                .zip(values)
                .map(|((name, _), v)| (name.to_string(), v))
                .collect()
        } else {
            reported
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect()
        })
    }
}
