//! FSVAE's decoder: the last membrane potential of a non-firing leaky
//! neuron, `sum_t x[t] * decay^(T-1-t)`.

use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::init::Rng;
use snn_core::spec::{Decoder, DecoderInput, DecoderSpec};
use snn_core::{Error, ImgNhwc, ParamStore, Result, SeqImg};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LastMembraneSpec {
    pub decay: f32,
}

impl Default for LastMembraneSpec {
    fn default() -> Self {
        Self { decay: 0.8 }
    }
}

#[typetag::serde(name = "last-membrane")]
impl DecoderSpec for LastMembraneSpec {
    fn build(
        &self,
        _name: &str,
        _input: DecoderInput,
        _store: &mut ParamStore,
        _rng: &mut Rng,
    ) -> Result<Box<dyn Decoder>> {
        if !self.decay.is_finite() {
            return Err(Error::invalid("decoder.decay", "must be a finite number"));
        }
        Ok(Box::new(LastMembrane { decay: self.decay }))
    }

    fn about(&self) -> &'static str {
        "FSVAE: sum_t x[t] * decay^(T-1-t), the last membrane of a leaky non-firing neuron"
    }
}

#[derive(Debug)]
pub struct LastMembrane {
    decay: f32,
}

impl Decoder for LastMembrane {
    fn forward(&self, x: SeqImg, _store: &ParamStore) -> Result<ImgNhwc> {
        let shape = *x.shape();
        let steps = shape.0;
        let w: Vec<f32> = (0..steps)
            .map(|t| self.decay.powi((steps - 1 - t) as i32))
            .collect();
        let w = x.device().tensor_from_vec(w, (steps,));
        let w = w.broadcast_like::<_, Axes4<1, 2, 3, 4>>(&shape);
        Ok((x * w).sum::<_, Axis<0>>())
    }
}
