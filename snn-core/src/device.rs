//! Which dfdx device the workspace computes on, chosen at build time.
//!
//! The default build uses dfdx's CPU device. `--features cuda` switches every
//! crate to dfdx's CUDA device; the CPU-only fast kernels then fall back to
//! their composed-of-dfdx-ops twins.

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
