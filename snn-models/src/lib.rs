//! Models of snn-rs, built from config specs, and the layers they use.

pub mod classifier;
pub mod layers;

pub use classifier::ClassifierSpec;
