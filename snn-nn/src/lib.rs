//! The layers of snn-rs, built from dfdx's stable public ops, with their
//! host kernels and the GEMM and spike products they share (the metric
//! networks use them too).
//!
//! Activations are channels-last, `[N, H, W, C]`, with time folded into the
//! batch (`N = T * B`, time-major) once the sequence exists. Channels-last
//! keeps convolution a single gather + matmul with no permutes between layers.
//! Weights use the matching layouts: conv `[kh, kw, C_in, C_out]`, linear
//! `[in, out]`.

pub mod batchnorm;
pub mod conv;
pub mod conv_transpose;
#[cfg(test)]
mod dense_work_tests;
pub mod dropout;
pub mod gather;
// The one gate of this crate's host kernels (see `snn_core::device`).
#[cfg(not(feature = "cuda"))]
pub mod host;
pub mod im2col;
pub mod linear;
pub mod pool;
pub mod spike_gemm;
pub mod spike_product;
pub mod spike_sparse;
pub mod spiking;
#[cfg(test)]
mod test_util;
pub mod testing;

pub use batchnorm::BatchNorm;
pub use conv::{Conv2d, Conv2dConfig};
pub use conv_transpose::{ConvTranspose2d, ConvTranspose2dConfig};
pub use dropout::Dropout;
pub use linear::{Linear, LinearConfig};
pub use snn_core::Impl;
pub use spiking::Spiking;

use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::{Dev, Result, Scope, Tp};

/// `[N, H, W, C]` on the tape.
pub type Nhwc = Tensor<(usize, usize, usize, usize), f32, Dev, Tp>;
/// `[N, F]` on the tape.
pub type Rows = Tensor<(usize, usize), f32, Dev, Tp>;

/// Registers a weight layer's parameters in `scope`: `weight` of `shape`
/// drawn by `init` for fan-in `fan_in` and, when `bias`, a `bias` as long
/// as the last axis (PyTorch's default). Returns their keys.
pub(crate) fn weight_and_bias(
    scope: &mut Scope<'_>,
    rng: &mut Rng,
    shape: &[usize],
    fan_in: usize,
    init: WeightInit,
    bias: bool,
) -> Result<(String, Option<String>)> {
    let size = shape.iter().product();
    let weight = scope.insert("weight", shape, init.sample(rng, size, fan_in), true)?;
    let bias = match (bias, shape.last()) {
        (true, Some(&outputs)) => {
            let b = snn_core::init::torch_default(rng, outputs, fan_in);
            Some(scope.insert("bias", &[outputs], b, true)?)
        }
        _ => None,
    };
    Ok((weight, bias))
}

/// `[h * w]` (row major): a pixel's count as the product of its row's and
/// its column's (each output position's window is a row range times a
/// column range). The fan-out maps of the convolutions.
fn pixel_map(
    h: usize,
    w: usize,
    row: impl Fn(usize) -> u32,
    col: impl Fn(usize) -> u32,
) -> Vec<u32> {
    let cols: Vec<u32> = (0..w).map(col).collect();
    (0..h)
        .flat_map(|y| {
            let r = row(y);
            cols.iter().map(move |c| r * c)
        })
        .collect()
}
