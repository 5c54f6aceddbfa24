//! Fully connected layer, `y = x W (+ b)`, weight `[in, out]`.
//!
//! On the CPU, when the input is a spike matrix (every value 0 or one
//! common value, dropout's scaled spikes included), the product and the
//! weight gradient run on the spikes: by index lists when few are ones
//! ([`crate::spike_sparse`]), by table lookup on packed bits when there are
//! enough rows ([`crate::spike_gemm`]); otherwise dfdx's matmul. The spike
//! products' tape op is [`crate::host::linear`].

use super::{Nhwc, Rows};
use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::{Error, Impl, ParamStore, Result, Scope};

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: String,
    pub bias: Option<String>,
    pub inputs: usize,
    pub outputs: usize,
    pub kernel_impl: Impl,
    /// Forces this spike kernel for spike inputs (tests, benchmarks);
    /// `None` chooses by the measured density.
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
            let x = match crate::host::linear::spike_product(self, x, store)? {
                Ok(y) => return Ok(y),
                Err(x) => x,
            };
        }
        let w = store
            .taped(&self.weight)?
            .reshape_like(&(self.inputs, self.outputs));
        self.add_bias(x.matmul(w), store)
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

/// Which spike kernel a product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpikeProduct {
    /// Index lists of the ones ([`super::spike_sparse`]).
    Lists,
    /// Subset-sum tables over packed bits ([`super::spike_gemm`]).
    Table,
}

impl SpikeProduct {
    /// The kernel for `bits` times a weight with `n` output columns, from
    /// the measured density; `None` where the dense product is as fast.
    /// Costs relative to the dense product, measured with
    /// `examples/spike_gemm.rs` at FC1's shape (forward and weight gradient
    /// alike): the lists ~2.2 x density (given at least two 64-column tiles
    /// per thread to spread the work), the table ~0.6 from 256 rows up.
    pub fn choose(bits: &super::spike_gemm::SpikeMatrix, n: usize) -> Option<Self> {
        const LISTS_PER_DENSITY: f64 = 2.2;
        const TABLE: f64 = 0.6;
        let lists = if Self::lists_apply(n) {
            LISTS_PER_DENSITY * bits.density()
        } else {
            f64::INFINITY
        };
        let table = if super::spike_gemm::worthwhile(bits.rows) {
            TABLE
        } else {
            f64::INFINITY
        };
        if lists < table.min(1.0) {
            Some(Self::Lists)
        } else if table < 1.0 {
            Some(Self::Table)
        } else {
            None
        }
    }

    /// Whether [`SpikeProduct::choose`] could pick a spike kernel for
    /// `rows` x `n` at some density: if not, the input need not be packed.
    pub fn any_applies(rows: usize, n: usize) -> bool {
        Self::lists_apply(n) || super::spike_gemm::worthwhile(rows)
    }

    /// Lists need at least two column tiles per thread to spread the work.
    fn lists_apply(n: usize) -> bool {
        let threads = rayon::current_num_threads().max(1);
        n >= 2 * super::spike_gemm::TILE * threads
    }
}
