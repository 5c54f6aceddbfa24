//! Core of snn-rs: the device and tensor aliases every crate shares, the
//! parameter store (named tensors saved as safetensors), the Adam / AdamW
//! optimizers over it, the plugin traits (`NeuronSpec`, `DecoderSpec`,
//! `ModelSpec`) and TOML config loading.
//!
//! Activations are time-major (`[T, B, ...]`) and always carry dfdx's
//! `OwnedTape`, so every layer has exactly one forward path whether or not the
//! caller later runs `backward()`.

pub mod checks;
pub mod collective;
pub mod config;
pub mod dense_work;
pub mod device;
pub mod error;
pub mod fsutil;
pub mod gemm;
pub mod grad;
// The one gate of this crate's host kernels (see `device`).
#[cfg(not(feature = "cuda"))]
pub mod host;
pub mod init;
pub mod loss;
pub mod memory;
pub mod nir;
pub mod optim;
pub mod params;
pub mod procfs;
pub mod registry;
pub mod slices;
pub mod spec;
pub mod step;
pub mod surrogate;

pub use dfdx;
pub use error::{Error, Result};
pub use params::{Param, ParamStore, Scope};
pub use typetag;

pub use device::{Dev, Impl, Tp};

/// A flat parameter or buffer tensor without a tape.
pub type Flat = dfdx::tensor::Tensor<(usize,), f32, Dev>;
/// A flat tensor recorded on the tape.
pub type FlatT = dfdx::tensor::Tensor<(usize,), f32, Dev, Tp>;
/// A scalar on the tape (a loss).
pub type Scalar = dfdx::tensor::Tensor<dfdx::shapes::Rank0, f32, Dev, Tp>;
/// `[rows, cols]` on the tape. Neurons see `[T, M]` with `M = B * features`.
pub type Mat = dfdx::tensor::Tensor<(usize, usize), f32, Dev, Tp>;
/// `[T, B, C]` on the tape.
pub type Seq3 = dfdx::tensor::Tensor<(usize, usize, usize), f32, Dev, Tp>;
/// `[B, C, H, W]` on the tape: images as datasets and models exchange them.
pub type Img = dfdx::tensor::Tensor<(usize, usize, usize, usize), f32, Dev, Tp>;
/// `[B, H, W, C]` on the tape: channels-last images, as layers compute
/// them and decoders return them.
pub type ImgNhwc = dfdx::tensor::Tensor<(usize, usize, usize, usize), f32, Dev, Tp>;
/// `[T, B, H, W, C]` on the tape: a spike or membrane sequence of
/// channels-last images, time-major (the layers' `[T * B, H, W, C]`
/// reshaped, no copy), the decoders' input.
pub type SeqImg = dfdx::tensor::Tensor<(usize, usize, usize, usize, usize), f32, Dev, Tp>;
