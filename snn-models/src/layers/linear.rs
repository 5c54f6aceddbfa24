//! Fully connected layer, `y = x W (+ b)`, weight `[in, out]`.
//!
//! On the CPU, when the input is a spike matrix (every value 0 or one
//! common value, dropout's scaled spikes included) and has enough rows, the
//! product and the weight gradient run by table lookup on packed bits
//! ([`super::spike_gemm`]); otherwise dfdx's matmul.

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
        #[cfg(not(feature = "cuda"))]
        let x = match self.spike_product(x, store)? {
            Ok(y) => return self.add_bias(y, store),
            Err(x) => x,
        };
        let w = store
            .taped(&self.weight)?
            .reshape_like(&(self.inputs, self.outputs));
        self.add_bias(x.matmul(w), store)
    }

    /// `x W` by table lookup when `x` is a large enough spike matrix;
    /// otherwise `x` back unchanged.
    #[cfg(not(feature = "cuda"))]
    fn spike_product(
        &self,
        x: Rows,
        store: &ParamStore,
    ) -> Result<std::result::Result<Rows, Rows>> {
        use super::spike_gemm::{self, SpikeMatrix};
        use snn_core::host;
        let (n, f) = *x.shape();
        if self.kernel_impl != LayerKernel::Auto || !spike_gemm::worthwhile(n) {
            return Ok(Err(x));
        }
        let x = x.reshape_like(&(n, f));
        let Some(bits) = SpikeMatrix::pack(&host::read(&x), n, f) else {
            return Ok(Err(x));
        };
        let (x, x_tape) = x.split_tape();
        let (weight, w_tape) = store.taped(&self.weight)?.split_tape();
        let mut tape = x_tape.merge(w_tape);
        let ws = host::read(&weight);
        let o = self.outputs;
        let mut y = vec![0.0f32; n * o];
        spike_gemm::matmul(&bits, &ws, o, &mut y);
        let out = x.device().tensor_from_vec(y, (n, o));
        if snn_core::grad::is_enabled() {
            let out_id = out.clone();
            tape.add_backward_op(move |grads| {
                let gy = host::take_grad(grads, &out_id)?;
                let mut dx = vec![0.0f32; n * f];
                super::gemm::matmul(n, f, o, &gy, false, &ws, true, &mut dx, false);
                let mut dw = vec![0.0f32; f * o];
                spike_gemm::weight_grad(&bits, &gy, o, &mut dw);
                host::add_grad(grads, &x, &dx)?;
                host::add_grad(grads, &weight, &dw)
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
