//! A spiking neuron layer on channels-last activations: the one spiking
//! layer of every model (the classifier's `sn` layers, the VAE blocks'
//! neurons).

use crate::Nhwc;
use snn_core::dfdx::prelude::*;
use snn_core::spec::{Forward, HostStep, Neuron};
use snn_core::{ParamStore, Result};

/// A configured neuron under the name its firing rate is recorded by.
#[derive(Debug)]
pub struct Spiking {
    pub name: String,
    pub neuron: Box<dyn Neuron>,
}

impl Spiking {
    /// Spikes `[T * B, H, W, C]` (time-major) of the neurons driven by `x`:
    /// a sequence `[T * B, H, W, C]` when `timed`, else a static input
    /// `[B, H, W, C]` that the neuron repeats over `steps` itself (direct
    /// encoding: it is never copied). Records the layer's firing rate.
    pub fn forward(
        &self,
        x: Nhwc,
        steps: usize,
        timed: bool,
        fwd: &mut Forward<'_>,
    ) -> Result<Nhwc> {
        let (n, h, w, c) = *x.shape();
        let (spikes, rows) = if timed {
            let m = n / steps.max(1) * h * w * c;
            let s = self
                .neuron
                .forward(x.reshape_like(&(steps, m)), fwd.store)?;
            (s, n)
        } else {
            let m = n * h * w * c;
            let s = self
                .neuron
                .forward_static(x.reshape_like(&(1, m)), steps, fwd.store)?;
            (s, steps * n)
        };
        fwd.record_rate(&self.name, &spikes);
        Ok(spikes.reshape_like(&(rows, h, w, c)))
    }
}

/// The neuron's host step where a fused kernel can use it: without
/// gradients any step, in training one that has a backward pass.
pub fn fusable_step(neuron: &dyn Neuron, store: &ParamStore) -> Result<Option<Box<dyn HostStep>>> {
    let step = neuron.host_step(store)?;
    Ok(step.filter(|s| !snn_core::grad::is_enabled() || s.param_keys().is_some()))
}

/// The parameters of a host step on the tape, in its `param_keys` order
/// (none without gradients: nothing would read their gradient).
pub fn taped_params(step: &dyn HostStep, store: &ParamStore) -> Result<Vec<snn_core::FlatT>> {
    if !snn_core::grad::is_enabled() {
        return Ok(Vec::new());
    }
    let keys = step.param_keys().unwrap_or_default();
    keys.iter().map(|k| store.taped(k)).collect()
}
