//! The ANN VAE baseline: FSVAE's layout with batch norm and LeakyReLU in
//! place of tdBN and spiking neurons, a Gaussian latent (mean and
//! log-variance heads) and the usual ELBO:
//! `MSE(image) + kl_weight * mean over the batch of KL(N(mu, sigma) || N(0, 1))`.

use super::blocks::{Activation, Block};
use super::latent::gaussian;
use super::{ann_decode, ann_encode, check_geometry, Builder, DecoderFc};
use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::spec::{Forward, Generator, Model, ModelParts, ModelSpec, Objective};
use snn_core::{Error, Img, Mat, ParamStore, Result};
use snn_nn::Rows;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnnVaeSpec {
    /// Encoder channels, one stride-2 layer each (as FSVAE).
    pub channels: Vec<usize>,
    pub latent: usize,
    /// Negative slope of the LeakyReLUs.
    pub slope: f32,
    /// Weight of the KL term (PyTorch-VAE's default for its VanillaVAE).
    pub kl_weight: f32,
    /// `linear` (the FSVAE repository's ANN models) or `bn-act`.
    pub decoder_input: DecoderFc,
    pub init: WeightInit,
}

impl Default for AnnVaeSpec {
    fn default() -> Self {
        Self {
            channels: vec![32, 64, 128, 256],
            latent: 128,
            slope: 0.01,
            kl_weight: 2.5e-4,
            decoder_input: DecoderFc::Linear,
            init: WeightInit::Torch,
        }
    }
}

#[derive(Debug)]
pub struct AnnVae {
    latent: usize,
    kl_weight: f32,
    last_channels: usize,
    /// Convolutions only; the latent heads are `mu` and `log_var`.
    encoder: Vec<Block>,
    mu: Block,
    log_var: Block,
    decoder: Vec<Block>,
    image: [usize; 3],
    summary: String,
}

#[typetag::serde(name = "annvae")]
impl ModelSpec for AnnVaeSpec {
    fn build(
        &self,
        parts: &ModelParts<'_>,
        store: &mut ParamStore,
        rng: &mut Rng,
    ) -> Result<Box<dyn Model>> {
        check_geometry("annvae", parts.input_shape, &self.channels)?;
        if self.latent == 0 {
            return Err(Error::invalid("model.latent", "must be at least 1"));
        }
        if !(self.slope.is_finite() && self.kl_weight.is_finite() && self.kl_weight >= 0.0) {
            return Err(Error::invalid(
                "model.slope / model.kl_weight",
                "must be finite, kl_weight >= 0",
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
        let last = *self.channels.last().unwrap_or(&1);
        let mu = b.fc("encoder.mu", last * 4, self.latent, 1.0, true)?;
        let log_var = b.fc("encoder.log_var", last * 4, self.latent, 1.0, true)?;
        let decoder = b.decoder(self.latent, &self.channels, c, self.decoder_input)?;
        let [_, h, w] = parts.input_shape;
        let summary = format!(
            "ANN VAE: {c}x{h}x{w} images, encoder {:?} (BN, LeakyReLU {slope}) -> Gaussian latent {} -> mirrored decoder -> tanh",
            self.channels, self.latent
        );
        Ok(Box::new(AnnVae {
            latent: self.latent,
            kl_weight: self.kl_weight,
            last_channels: last,
            encoder,
            mu,
            log_var,
            decoder,
            image: parts.input_shape,
            summary,
        }))
    }

    fn about(&self) -> &'static str {
        "ANN VAE baseline with FSVAE's layout: BN + LeakyReLU, Gaussian latent, ELBO"
    }
}

impl AnnVae {
    /// `(mu, log_var)`, each `[B, latent]`.
    fn encode(&self, x: Img, fwd: &mut Forward<'_>) -> Result<(Rows, Rows)> {
        let flat = ann_encode("annvae", &self.encoder, self.image, x, fwd)?;
        let (n, _, _, _) = *flat.shape();
        let mu = self.mu.forward(flat.with_empty_tape(), 1, fwd)?;
        let log_var = self.log_var.forward(flat, 1, fwd)?;
        Ok((
            mu.reshape_like(&(n, self.latent)),
            log_var.reshape_like(&(n, self.latent)),
        ))
    }

    fn decode(&self, z: Rows, fwd: &mut Forward<'_>) -> Result<Img> {
        ann_decode(&self.decoder, self.last_channels, z, fwd)
    }

    /// `mu + eps * exp(log_var / 2)` with `eps ~ N(0, 1)` in training, `mu`
    /// otherwise.
    fn latent_sample(&self, mu: Rows, log_var: Rows, fwd: &mut Forward<'_>) -> Rows {
        if !fwd.train {
            return mu;
        }
        let shape = *mu.shape();
        let eps = gaussian(&mut fwd.image_rngs(shape.0), shape.1);
        let eps = mu.device().tensor_from_vec(eps, shape);
        mu + (log_var * 0.5).exp() * eps
    }
}

impl Model for AnnVae {
    fn forward(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Mat> {
        let img = self.reconstruct(x, fwd)?;
        let (b, c, h, w) = *img.shape();
        Ok(img.reshape_like(&(b, c * h * w)))
    }

    fn objective(&self, x: Img, _labels: &[u8], fwd: &mut Forward<'_>) -> Result<Objective> {
        let shape = *x.shape();
        let target = x.retaped::<NoneTape>();
        let (mu, log_var) = self.encode(x, fwd)?;
        // The taped originals must reach the loss (a dropped tape loses the
        // encoder's backward pass), so the sample uses untaped copies and
        // the KL term consumes the originals.
        let z = self.latent_sample(mu.with_empty_tape(), log_var.with_empty_tape(), fwd);
        // KL(N(mu, s^2) || N(0, 1)) = 1/2 sum(s^2 - log s^2 - 1 + mu^2).
        let kl_terms = (log_var.with_empty_tape().exp() - log_var - 1.0) + mu.square();
        let kl = kl_terms.sum::<Rank0, _>() * (0.5 / shape.0 as f32);
        let img = self.decode(z, fwd)?;
        let recon = mse_loss(img, target);
        let (r, k) = (recon.array(), kl.array());
        Ok(Objective {
            loss: recon + kl * self.kl_weight,
            terms: vec![("reconstruction".into(), r), ("kl".into(), k)],
            predictions: None,
        })
    }

    fn generator(&self) -> Option<&dyn Generator> {
        Some(self)
    }

    fn summary(&self) -> String {
        self.summary.clone()
    }
}

impl Generator for AnnVae {
    fn sample(&self, count: usize, fwd: &mut Forward<'_>) -> Result<Img> {
        let z = gaussian(&mut fwd.image_rngs(count), self.latent);
        let z = fwd
            .store
            .dev()
            .tensor_from_vec(z, (count, self.latent))
            .traced(Gradients::leaky());
        self.decode(z, fwd)
    }

    fn reconstruct(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Img> {
        let (mu, log_var) = self.encode(x, fwd)?;
        let z = self.latent_sample(mu, log_var, fwd);
        self.decode(z, fwd)
    }
}
