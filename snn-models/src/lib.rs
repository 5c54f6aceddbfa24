//! Models of snn-rs, built from config specs, and the layers they use.

pub mod classifier;
pub mod layers;
pub mod vae;

pub use classifier::ClassifierSpec;
pub use vae::{AnnVaeSpec, FsvaeSpec};

/// Forces this crate to be linked, so its typetag registrations are
/// visible: call it (or name any item of the crate) from a binary.
pub fn link() {}
