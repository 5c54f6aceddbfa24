//! Models of snn-rs, built from config specs out of `snn-nn`'s layers and
//! the configured neurons and decoders.

pub mod classifier;
pub mod vae;

pub use classifier::ClassifierSpec;
pub use vae::{AnnVaeSpec, EsvaeSpec, FsvaeSpec};

/// Forces this crate to be linked, so its typetag registrations are
/// visible: call it (or name any item of the crate) from a binary.
pub fn link() {}
