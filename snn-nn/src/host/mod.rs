//! The layers' host kernels: each op's fast path on plain slices in host
//! memory, registered on dfdx's tape as a custom op. Every one has a
//! composed twin beside its layer (the test oracle, and the path on
//! devices without host kernels); the layer asks `Impl::host` which runs.
//! Only builds whose tensors live in host memory compile this module.

pub mod batchnorm;
pub mod bias;
pub mod bn_spike;
pub mod conv;
pub mod gather;
pub mod linear;
pub mod pool;
pub mod spike_pool;
