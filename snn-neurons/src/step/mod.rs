//! Everything a neuron layer does, derived from its [`NeuronStep`]
//! (`snn_core::step`): [`StepNeuron`] is the layer, [`run`] its host
//! kernels, [`fused`] the host kernels on dfdx's tape, [`composed`] the
//! twin built from dfdx ops.

pub mod composed;
// The one gate of this crate's host kernels (see `snn_core::device`).
#[cfg(not(feature = "cuda"))]
pub mod fused;
mod neuron;
pub mod run;

pub use neuron::{StepNeuron, StepParam};
pub use run::HostRun;
