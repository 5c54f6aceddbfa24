//! Mean over time.

use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::init::Rng;
use snn_core::spec::{Decoder, DecoderInput, DecoderSpec};
use snn_core::{ImgNhwc, ParamStore, Result, SeqImg};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeanRateSpec {}

#[typetag::serde(name = "mean-rate")]
impl DecoderSpec for MeanRateSpec {
    fn build(
        &self,
        _name: &str,
        _input: DecoderInput,
        _store: &mut ParamStore,
        _rng: &mut Rng,
    ) -> Result<Box<dyn Decoder>> {
        Ok(Box::new(MeanRate))
    }

    fn about(&self) -> &'static str {
        "mean over time steps (firing rate); no parameters"
    }
}

#[derive(Debug)]
pub struct MeanRate;

impl Decoder for MeanRate {
    fn forward(&self, x: SeqImg, _store: &ParamStore) -> Result<ImgNhwc> {
        Ok(x.mean::<_, Axis<0>>())
    }

    fn nir_readout(&self) -> Option<&'static str> {
        Some("mean-rate: each class score is its output neuron's spike count over the time_steps divided by time_steps")
    }
}
