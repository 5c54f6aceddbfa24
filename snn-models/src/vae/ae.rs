//! The ANN autoencoder behind FAD (REFERENCE.md, "Generation metrics"):
//! FSVAE's layout with batch norm and LeakyReLU, a plain linear latent
//! (64 for MNIST / Fashion-MNIST, 128 for CIFAR-10 / CelebA) and tanh,
//! trained with MSE. Its latent is the feature map FAD compares.

use super::blocks::{Activation, Block};
use super::{ann_decode, ann_encode, check_geometry, Builder, DecoderFc};
use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::spec::{Embedder, Forward, Model, ModelParts, ModelSpec, Objective};
use snn_core::{Error, Img, Mat, ParamStore, Result};
use snn_nn::Rows;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoencoderSpec {
    pub channels: Vec<usize>,
    pub latent: usize,
    pub slope: f32,
    /// `linear` (the FSVAE repository's ANN models) or `bn-act`.
    pub decoder_input: DecoderFc,
    pub init: WeightInit,
}

impl Default for AutoencoderSpec {
    fn default() -> Self {
        Self {
            channels: vec![32, 64, 128, 256],
            latent: 64,
            slope: 0.01,
            decoder_input: DecoderFc::Linear,
            init: WeightInit::Torch,
        }
    }
}

#[derive(Debug)]
pub struct Autoencoder {
    encoder: Vec<Block>,
    latent: Block,
    decoder: Vec<Block>,
    last_channels: usize,
    image: [usize; 3],
    summary: String,
}

#[typetag::serde(name = "ae")]
impl ModelSpec for AutoencoderSpec {
    fn build(
        &self,
        parts: &ModelParts<'_>,
        store: &mut ParamStore,
        rng: &mut Rng,
    ) -> Result<Box<dyn Model>> {
        check_geometry("ae", parts.input_shape, &self.channels)?;
        if self.latent == 0 || !self.slope.is_finite() {
            return Err(Error::invalid(
                "model.latent / model.slope",
                "latent must be at least 1, slope finite",
            ));
        }
        let slope = self.slope;
        let make = move |_: &str, _: &mut ParamStore| Ok(Activation::Leaky(slope));
        let c = parts.input_shape[0];
        let mut b = Builder {
            store,
            rng,
            init: self.init,
            bn_scale: 1.0,
            act: &make,
        };
        let encoder = b.encoder(c, &self.channels)?;
        let last = self.channels[self.channels.len() - 1];
        let latent = b.fc("encoder.latent", last * 4, self.latent, 1.0, true)?;
        let decoder = b.decoder(self.latent, &self.channels, c, self.decoder_input)?;
        let [_, h, w] = parts.input_shape;
        Ok(Box::new(Autoencoder {
            encoder,
            latent,
            decoder,
            last_channels: last,
            image: parts.input_shape,
            summary: format!(
                "autoencoder (FAD): {c}x{h}x{w} images, encoder {:?} (BN, LeakyReLU {slope}) -> latent {} -> mirrored decoder -> tanh",
                self.channels, self.latent
            ),
        }))
    }

    fn about(&self) -> &'static str {
        "ANN autoencoder whose latent FAD compares (BN + LeakyReLU, linear latent, tanh, MSE)"
    }
}

impl Autoencoder {
    fn encode(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Rows> {
        let flat = ann_encode("autoencoder", &self.encoder, self.image, x, fwd)?;
        let z = self.latent.forward(flat, 1, fwd)?;
        let (n, _, _, d) = *z.shape();
        Ok(z.reshape_like(&(n, d)))
    }

    fn decode(&self, z: Rows, fwd: &mut Forward<'_>) -> Result<Img> {
        ann_decode(&self.decoder, self.last_channels, z, fwd)
    }
}

impl Model for Autoencoder {
    fn forward(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Mat> {
        let z = self.encode(x, fwd)?;
        let img = self.decode(z, fwd)?;
        let (b, c, h, w) = *img.shape();
        Ok(img.reshape_like(&(b, c * h * w)))
    }

    fn objective(&self, x: Img, _labels: &[u8], fwd: &mut Forward<'_>) -> Result<Objective> {
        let target = x.retaped::<NoneTape>();
        let z = self.encode(x, fwd)?;
        let img = self.decode(z, fwd)?;
        let loss = mse_loss(img, target);
        let r = loss.array();
        Ok(Objective {
            loss,
            terms: vec![("reconstruction".into(), r)],
            predictions: None,
        })
    }

    fn embedder(&self) -> Option<&dyn Embedder> {
        Some(self)
    }

    fn summary(&self) -> String {
        self.summary.clone()
    }
}

impl Embedder for Autoencoder {
    fn embed(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Mat> {
        self.encode(x, fwd)
    }
}
