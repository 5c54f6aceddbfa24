//! Which dfdx device the workspace computes on, chosen at build time, and
//! the one kernel seam: where the `cuda` feature decides what runs (the
//! only other readings are each crate's one gate on its `host` module).
//!
//! The default build uses dfdx's CPU device. `--features cuda` switches every
//! crate to dfdx's CUDA device.
//!
//! Every op with a fast kernel of its own (neuron layers, convolution,
//! transposed convolution, batch norm, max-pool, spike products, Adam) has
//! two implementations: a **host kernel** (plain slices in host memory,
//! registered on dfdx's tape as a custom op) and its **composed** twin (dfdx
//! ops, any device; the test oracle). Each takes one switch, [`Impl`], and
//! asks [`Impl::host`] which to run; the host kernels' code is wrapped in
//! [`host_kernels!`], which compiles it only where tensors live in host
//! memory. So a CUDA build runs every op composed, and that fallback is
//! decided here, once. The kernels themselves live in one `host` module per
//! crate (`snn_core::host`, `snn_neurons::step::fused`, `snn_nn::host`,
//! the classifier's `fused`).
//!
//! A CUDA kernel for a fused op would go beside its host kernel, compiled
//! by a `cuda_kernels!` twin of [`host_kernels!`] defined here, and be
//! chosen where the op asks [`Impl::host`] today.

use dfdx::tensor::OwnedTape;

#[cfg(not(feature = "cuda"))]
pub type Dev = dfdx::tensor::Cpu;
#[cfg(feature = "cuda")]
pub type Dev = dfdx::tensor::Cuda;

/// The tape every activation carries.
pub type Tp = OwnedTape<f32, Dev>;

/// True when tensor buffers live in host memory, so custom CPU kernels may
/// read and write them directly.
pub const HOST_MEMORY: bool = cfg!(not(feature = "cuda"));

/// Name of the compiled-in device, for messages and `snn list`.
pub const DEVICE_NAME: &str = if HOST_MEMORY { "cpu" } else { "cuda" };

/// Creates the device, seeded. On CUDA, a missing GPU is an error, not a panic.
pub fn create(seed: u64) -> crate::Result<Dev> {
    #[cfg(not(feature = "cuda"))]
    {
        let dev = Dev::seed_from_u64(seed);
        // Reuse freed buffers instead of returning them to the allocator:
        // fresh multi-megabyte allocations each step cost page faults.
        // dfdx's buffer cache (`dev.enable_cache()`) was measured: with mimalloc as
        // the allocator it saves no time and adds ~40% peak memory, so it stays off.
        Ok(dev)
    }
    #[cfg(feature = "cuda")]
    {
        Dev::try_seed_from_u64(seed)
            .map_err(|e| crate::Error::Device(format!("cannot open CUDA device 0: {e:?}")))
    }
}

/// Which implementation runs an op that has a host kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Impl {
    /// The host kernel where tensors live in host memory, the composed ops
    /// elsewhere.
    #[default]
    Auto,
    /// Always the composed implementation (the kernels' test oracle).
    Composed,
}

impl Impl {
    /// Whether the op runs its host kernel: `Auto` in a build whose tensors
    /// live in host memory. The one place a missing device kernel falls
    /// back to the composed op.
    pub const fn host(self) -> bool {
        matches!(self, Impl::Auto) && HOST_MEMORY
    }
}

/// Compiles the items or statements inside only in builds whose tensors
/// live in host memory: the host kernels and the code that calls them.
#[cfg(not(feature = "cuda"))]
#[macro_export]
macro_rules! host_kernels {
    ($($code:tt)*) => { $($code)* };
}

/// Compiles the items or statements inside only in builds whose tensors
/// live in host memory: the host kernels and the code that calls them.
#[cfg(feature = "cuda")]
#[macro_export]
macro_rules! host_kernels {
    ($($code:tt)*) => {};
}
