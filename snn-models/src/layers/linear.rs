//! Fully connected layer, `y = x W (+ b)`, weight `[in, out]`.
//!
//! On the CPU, when the input is a spike matrix (every value 0 or one
//! common value, dropout's scaled spikes included), the product and the
//! weight gradient run on the spikes: by index lists when few are ones
//! ([`super::spike_sparse`]), by table lookup on packed bits when there are
//! enough rows ([`super::spike_gemm`]); otherwise dfdx's matmul.

use super::{LayerKernel, Rows};
use snn_core::dfdx::prelude::*;
use snn_core::init::{self, Rng, WeightInit};
use snn_core::{Error, ParamStore, Result};

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: String,
    pub bias: Option<String>,
    pub inputs: usize,
    pub outputs: usize,
    pub kernel_impl: LayerKernel,
    /// Forces this spike kernel for spike inputs (tests, benchmarks);
    /// `None` chooses by the measured density.
    pub spike_kernel: Option<SpikeProduct>,
}

impl Linear {
    /// Registers `name.weight` (and `name.bias`) with PyTorch's default init.
    pub fn new(
        name: &str,
        inputs: usize,
        outputs: usize,
        bias: bool,
        weight_init: WeightInit,
        store: &mut ParamStore,
        rng: &mut Rng,
    ) -> Result<Self> {
        let weight = format!("{name}.weight");
        let w = weight_init.sample(rng, inputs * outputs, inputs);
        store.insert(&weight, &[inputs, outputs], w, true)?;
        let bias = if bias {
            let key = format!("{name}.bias");
            let b = init::torch_default(rng, outputs, inputs);
            store.insert(&key, &[outputs], b, true)?;
            Some(key)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            inputs,
            outputs,
            kernel_impl: LayerKernel::Auto,
            spike_kernel: None,
        })
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
        #[cfg(not(feature = "cuda"))]
        let x = match self.spike_product(x, store)? {
            Ok(y) => return Ok(y),
            Err(x) => x,
        };
        let w = store
            .taped(&self.weight)?
            .reshape_like(&(self.inputs, self.outputs));
        self.add_bias(x.matmul(w), store)
    }

    /// `x W + b` by a spike kernel when `x` is a spike matrix and one of
    /// them beats the dense product ([`SpikeProduct::choose`]); otherwise
    /// `x` back unchanged.
    #[cfg(not(feature = "cuda"))]
    fn spike_product(
        &self,
        x: Rows,
        store: &ParamStore,
    ) -> Result<std::result::Result<Rows, Rows>> {
        use super::bias::Bias;
        use super::spike_gemm::{self, SpikeMatrix};
        use super::spike_sparse::{self, SpikeLists};
        use snn_core::host;
        let (n, f) = *x.shape();
        let o = self.outputs;
        // Neither spike kernel can win at this shape: skip the read and scan.
        let possible = self.spike_kernel.is_some() || SpikeProduct::any_applies(n, o);
        if self.kernel_impl != LayerKernel::Auto || !possible {
            return Ok(Err(x));
        }
        let x = x.reshape_like(&(n, f));
        let Some(bits) = SpikeMatrix::pack(&host::read(&x), n, f) else {
            return Ok(Err(x));
        };
        let choice = self.spike_kernel.or_else(|| SpikeProduct::choose(&bits, o));
        let product = match choice {
            Some(SpikeProduct::Table) => SpikeOperand::Bits(bits),
            Some(SpikeProduct::Lists) => SpikeOperand::Lists(SpikeLists::from_bits(&bits)),
            None => return Ok(Err(x)),
        };
        let (x, x_tape) = x.split_tape();
        let (weight, w_tape) = store.taped(&self.weight)?.split_tape();
        let bias = self.bias.as_ref().map(|b| store.taped(b)).transpose()?;
        let (bias, mut tape) = Bias::split(bias, x_tape.merge(w_tape));
        let ws = host::read(&weight);
        let mut y = vec![0.0f32; n * o];
        match &product {
            SpikeOperand::Bits(b) => spike_gemm::matmul(b, &ws, o, &mut y),
            SpikeOperand::Lists(l) => spike_sparse::matmul(l, &ws, o, &mut y),
        }
        if let Some(b) = &bias {
            b.add_to(&mut y);
        }
        let out = x.device().tensor_from_vec(y, (n, o));
        if snn_core::grad::is_enabled() {
            let out_id = out.clone();
            tape.add_backward_op(move |grads| {
                let gy = host::take_grad(grads, &out_id)?;
                if let Some(b) = &bias {
                    b.add_grad(grads, &gy)?;
                }
                // Both gradients add straight into the accumulator.
                let dx = grads.get_or_alloc_mut(&x)?;
                super::gemm::matmul(n, f, o, &gy, false, &ws, true, dx, true);
                let dw = grads.get_or_alloc_mut(&weight)?;
                match &product {
                    SpikeOperand::Bits(b) => spike_gemm::weight_grad(b, &gy, o, dw),
                    SpikeOperand::Lists(l) => spike_sparse::weight_grad(l, &gy, o, dw),
                }
                Ok(())
            });
        }
        Ok(Ok(out.put_tape(tape)))
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

/// The spike operand kept for backward, in the chosen kernel's form.
#[cfg(not(feature = "cuda"))]
enum SpikeOperand {
    Bits(super::spike_gemm::SpikeMatrix),
    Lists(super::spike_sparse::SpikeLists),
}
