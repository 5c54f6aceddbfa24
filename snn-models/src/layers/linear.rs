//! Fully connected layer, `y = x W (+ b)`, weight `[in, out]`.

use super::Rows;
use snn_core::dfdx::prelude::*;
use snn_core::init::{self, Rng, WeightInit};
use snn_core::{Error, ParamStore, Result};

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: String,
    pub bias: Option<String>,
    pub inputs: usize,
    pub outputs: usize,
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
        })
    }

    pub fn forward(&self, x: Rows, store: &ParamStore) -> Result<Rows> {
        let (n, f) = *x.shape();
        if f != self.inputs {
            return Err(Error::shape(
                &self.weight,
                format!("input has {f} features, layer expects {}", self.inputs),
            ));
        }
        let w = store
            .taped(&self.weight)?
            .reshape_like(&(self.inputs, self.outputs));
        let y = x.matmul(w);
        Ok(match &self.bias {
            Some(key) => {
                let b = store.taped(key)?;
                y + b.broadcast_like::<_, Axis<0>>(&(n, self.outputs))
            }
            None => y,
        })
    }
}
