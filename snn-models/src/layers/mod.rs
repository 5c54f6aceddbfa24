//! Stateless layers built from dfdx's stable public ops.
//!
//! Activations are channels-last, `[N, H, W, C]`, with time folded into the
//! batch (`N = T * B`, time-major) once the sequence exists. Channels-last
//! keeps convolution a single gather + matmul with no permutes between layers.
//! Weights use the matching layouts: conv `[kh, kw, C_in, C_out]`, linear
//! `[in, out]`.

pub mod batchnorm;
#[cfg(not(feature = "cuda"))]
pub mod batchnorm_cpu;
#[cfg(not(feature = "cuda"))]
pub mod bias;
pub mod conv;
#[cfg(not(feature = "cuda"))]
pub mod conv_cpu;
pub mod conv_transpose;
#[cfg(test)]
mod dense_work_tests;
pub mod dropout;
pub mod gemm;
pub mod linear;
pub mod pool;
pub mod spike_gemm;
#[cfg(not(feature = "cuda"))]
pub mod spike_pool;
pub mod spike_sparse;
#[cfg(test)]
mod test_util;

pub use batchnorm::BatchNorm;
pub use conv::Conv2d;
pub use conv_transpose::ConvTranspose2d;
pub use dropout::Dropout;
pub use linear::Linear;

use snn_core::dfdx::prelude::*;
use snn_core::{Dev, Tp};

/// `[N, H, W, C]` on the tape.
pub type Nhwc = Tensor<(usize, usize, usize, usize), f32, Dev, Tp>;
/// Which implementation runs a layer with a custom CPU kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKernel {
    /// The project's CPU kernel where available, composed ops elsewhere.
    #[default]
    Auto,
    /// Always the dfdx-composed implementation (the kernels' test oracle).
    Composed,
}

/// `[N, F]` on the tape.
pub type Rows = Tensor<(usize, usize), f32, Dev, Tp>;
