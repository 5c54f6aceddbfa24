//! Decoders turn a channels-last sequence `[T, B, H, W, C]` into a
//! channels-last image `[B, H, W, C]`.
//!
//! - `mean-rate`: mean over time (the firing rate for spike inputs).
//! - `taid`: the paper's temporal attention image decoding, with the options
//!   that separate the paper's text from the authors' released code.
//! - `last-membrane`: FSVAE's `sum_t x[t] * decay^(T-1-t)`, the final membrane
//!   of a leaky neuron that never fires.

pub mod last_membrane;
pub mod mean_rate;
pub mod taid;

pub use last_membrane::LastMembraneSpec;
pub use mean_rate::MeanRateSpec;
pub use taid::{Mixing, Reduce, Squeeze, TaidInit, TaidSpec};

/// Forces this crate to be linked, so its typetag registrations are
/// visible: call it (or name any item of the crate) from a binary.
pub fn link() {}
