//! Fully connected layer, `y = x W (+ b)`, weight `[in, out]`.
//!
//! On the CPU the layer runs on its host kernel ([`crate::host::linear`]):
//! when the input is a spike matrix (every value 0 or one common value,
//! dropout's scaled spikes included), the product and the weight gradient
//! run on the spikes by index lists when few are ones
//! ([`crate::spike_sparse`]) or by table lookup where that beats the GEMM
//! ([`crate::spike_gemm`]), else on the GEMM with the spikes kept as bits;
//! any other input on the GEMM. dfdx's matmul is the composed twin (and
//! the CUDA path).

pub use crate::spike_product::SpikeProduct;

use super::{Nhwc, Rows};
use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::{Error, FlatT, Impl, ParamStore, Result, Scope};

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: String,
    pub bias: Option<String>,
    pub inputs: usize,
    pub outputs: usize,
    pub kernel_impl: Impl,
    /// Forces this kernel for spike inputs (tests, benchmarks); `None`
    /// chooses by the measured density ([`SpikeProduct::choose`]).
    pub spike_kernel: Option<SpikeProduct>,
}

/// How to build a [`Linear`]: `LinearConfig { inputs, outputs, ..Default::default() }
/// .init(&mut store.scope("fc1"), rng)` registers `fc1.weight` (and
/// `fc1.bias`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinearConfig {
    pub inputs: usize,
    pub outputs: usize,
    pub bias: bool,
    pub weight_init: WeightInit,
}

impl LinearConfig {
    /// Registers the weight (`[in, out]`, `weight_init`) and the bias
    /// (PyTorch's default) in `scope` and returns the layer.
    pub fn init(self, scope: &mut Scope<'_>, rng: &mut Rng) -> Result<Linear> {
        let Self {
            inputs,
            outputs,
            bias,
            weight_init,
        } = self;
        let shape = [inputs, outputs];
        let (weight, bias) = crate::weight_and_bias(scope, rng, &shape, inputs, weight_init, bias)?;
        Ok(Linear {
            weight,
            bias,
            inputs,
            outputs,
            kernel_impl: Impl::Auto,
            spike_kernel: None,
        })
    }
}

impl Linear {
    /// The layer on channels-last activations `[N, H, W, C]`, flattened per
    /// row: `[N, 1, 1, outputs]`.
    pub fn forward_image(&self, x: Nhwc, store: &ParamStore) -> Result<Nhwc> {
        let (n, h, w, c) = *x.shape();
        let y = self.forward(x.reshape_like(&(n, h * w * c)), store)?;
        Ok(y.reshape_like(&(n, 1, 1, self.outputs)))
    }

    pub fn forward(&self, x: Rows, store: &ParamStore) -> Result<Rows> {
        let f = x.shape().1;
        if f != self.inputs {
            return Err(Error::shape(
                &self.weight,
                format!("input has {f} features, layer expects {}", self.inputs),
            ));
        }
        snn_core::dense_work::record(x.shape().0 * f * self.outputs);
        snn_core::host_kernels! {
            if self.kernel_impl.host() {
                return crate::host::linear::linear(x, self.operands(store)?);
            }
        }
        let w = store
            .taped(&self.weight)?
            .reshape_like(&(self.inputs, self.outputs));
        self.add_bias(x.matmul(w), store)
    }

    /// The weight and bias on the tape, with what a host kernel needs to
    /// know of the layer.
    pub fn operands(&self, store: &ParamStore) -> Result<LinearOperands> {
        Ok(LinearOperands {
            weight: store.taped(&self.weight)?,
            bias: self.bias.as_ref().map(|b| store.taped(b)).transpose()?,
            outputs: self.outputs,
            spike_kernel: self.spike_kernel,
        })
    }

    fn add_bias(&self, y: Rows, store: &ParamStore) -> Result<Rows> {
        let n = y.shape().0;
        Ok(match &self.bias {
            Some(key) => {
                let b = store.taped(key)?;
                y + b.broadcast_like::<_, Axis<0>>(&(n, self.outputs))
            }
            None => y,
        })
    }
}

/// A linear layer's parameters on the tape, as its host kernel takes them
/// (the kernel never sees the layer or the store).
pub struct LinearOperands {
    /// `[in, out]`, flattened.
    pub weight: FlatT,
    pub bias: Option<FlatT>,
    pub outputs: usize,
    /// [`Linear::spike_kernel`].
    pub spike_kernel: Option<SpikeProduct>,
}
