//! ESVAE (Zhan et al. 2023, "An Efficient Spiking Variational Autoencoder
//! with Reparameterizable Poisson Spiking Sampling"): FSVAE's spiking
//! encoder and decoder around a latent that needs no autoregression.
//!
//! Forward pass, `T` steps, direct encoding:
//! 1. encoder spikes `[T * B, C]`; the posterior's rates `r_q` are their
//!    means over `T` (`[B, C]`);
//! 2. latent spikes drawn from `r_q` by Poisson sampling with a surrogate
//!    gradient ([`sampler`]), `T` steps;
//! 3. decoder spikes -> the non-spiking last layer's sequence -> the
//!    configured decoder (`last-membrane` is ESVAE's, `taid` an option)
//!    -> tanh;
//! 4. the prior's rates `r_p = sigmoid(W eps + b)` on Gaussian noise
//!    `eps ~ N(0, I)` (`[B, C]`), fresh for each batch; generating draws
//!    latent spikes from `r_p` the same way;
//! 5. loss = MSE(image) + `mmd_weight` * MMD(r_q, r_p) ([`mmd`]).

pub mod mmd;
pub mod sampler;

use super::blocks::Block;
use super::latent::gaussian;
use super::spiking::{self, as_nhwc, rows_of};
use super::{check_geometry, clip_weights, Builder, DecoderFc};
use mmd::{mmd, MmdKernel};
use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::spec::{
    Decoder, DecoderInput, Forward, Generator, Model, ModelParts, ModelSpec, NeuronConstants,
    Objective,
};
use snn_core::{Error, FlatT, Img, Mat, ParamStore, Result};
use snn_nn::gather::gather_rows;
use snn_nn::{Rows, Spiking};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EsvaeSpec {
    /// Encoder channels; one stride-2 layer each. `[32, 64, 128, 256]` for
    /// 32x32 images, `[32, 64, 128, 256, 512]` (ESVAE_large) for 64x64.
    pub channels: Vec<usize>,
    /// Latent size `C` (the ESVAE configs: 32 for MNIST and
    /// Fashion-MNIST, 128 for CIFAR-10 and CelebA).
    pub latent: usize,
    /// Weight of the MMD in the loss (their `distance_lambda`).
    pub mmd_weight: f32,
    pub mmd_kernel: MmdKernel,
    /// Width of the sampler's rectangular surrogate window (their `2 aa`).
    pub sampler_width: f32,
    /// Factor on the learning rate of the prior's layer (their
    /// `sample_layer_lr_times`).
    pub prior_lr_scale: f32,
    /// `V_th` of tdBN's `alpha * V_th` scale.
    pub bn_v_th: f32,
    /// Clamp every trainable parameter to +-this after each step (0 = off;
    /// the ESVAE code defines a clipper to 4 but does not call it).
    pub weight_clip: f32,
    pub init: WeightInit,
}

impl Default for EsvaeSpec {
    fn default() -> Self {
        Self {
            channels: vec![32, 64, 128, 256],
            latent: 32,
            mmd_weight: 1e-3,
            mmd_kernel: MmdKernel::Rbf,
            sampler_width: 1.0,
            prior_lr_scale: 10.0,
            bn_v_th: 0.2,
            weight_clip: 0.0,
            init: WeightInit::Torch,
        }
    }
}

impl EsvaeSpec {
    fn validate(&self, parts: &ModelParts<'_>) -> Result<()> {
        check_geometry("esvae", parts.input_shape, &self.channels)?;
        if self.latent == 0 {
            return Err(Error::invalid("model.latent", "must be at least 1"));
        }
        if parts.time_steps == 0 {
            return Err(Error::invalid("time_steps", "ESVAE needs at least 1 step"));
        }
        let positive = [
            ("model.sampler_width", self.sampler_width),
            ("model.prior_lr_scale", self.prior_lr_scale),
            ("model.bn_v_th", self.bn_v_th),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    field,
                    format!("must be a positive number, got {v}"),
                ));
            }
        }
        let at_least_zero = [
            ("model.mmd_weight", self.mmd_weight),
            ("model.weight_clip", self.weight_clip),
        ];
        for (field, v) in at_least_zero {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    field,
                    format!("must be a number >= 0, got {v}"),
                ));
            }
        }
        Ok(())
    }

    /// The model itself (the typetag `build` boxes it).
    pub fn build_esvae(
        &self,
        parts: &ModelParts<'_>,
        store: &mut ParamStore,
        rng: &mut Rng,
    ) -> Result<Esvae> {
        self.validate(parts)?;
        let neuron = parts.neuron("esvae")?;
        // A block's neuron keeps its parameters under `block.sn`.
        let make = |block: &str, store: &mut ParamStore| {
            let neuron = neuron.build(&format!("{block}.sn"), store)?;
            let name = block.to_string();
            Ok(super::blocks::Activation::Spike(Spiking { name, neuron }))
        };
        let (c, latent) = (parts.input_shape[0], self.latent);
        let last = self.channels[self.channels.len() - 1];
        let mut b = Builder {
            store,
            rng,
            init: self.init,
            bn_scale: self.bn_v_th,
            act: &make,
        };
        let mut encoder = b.encoder(c, &self.channels)?;
        encoder.push(b.fc("encoder.fc", last * 4, latent, 1.0, false)?);
        let prior = b.fc("prior", latent, latent, 1.0, true)?;
        let decoder = b.decoder(latent, &self.channels, c, DecoderFc::BnAct)?;
        let input = DecoderInput {
            time_steps: parts.time_steps,
            channels: c,
        };
        let output = parts
            .decoder("esvae")?
            .build("output", input, b.store, b.rng)?;
        for name in ["prior.weight", "prior.bias"] {
            b.store.set_lr_scale(name, self.prior_lr_scale)?;
        }
        let [_, h, w] = parts.input_shape;
        let summary = format!(
            "ESVAE: {c}x{h}x{w} images, T = {}, encoder {:?} -> latent {latent} (Poisson sampling of the rates; prior sigmoid(linear(N(0, I))), {:?} MMD x {}), decoder {:?} -> {c} channels -> {output:?} -> tanh",
            parts.time_steps,
            self.channels,
            self.mmd_kernel,
            self.mmd_weight,
            self.channels.iter().rev().collect::<Vec<_>>()
        );
        Ok(Esvae {
            spec: self.clone(),
            encoder,
            prior,
            decoder,
            output,
            image: parts.input_shape,
            steps: parts.time_steps,
            summary,
        })
    }
}

#[typetag::serde(name = "esvae")]
impl ModelSpec for EsvaeSpec {
    fn build(
        &self,
        parts: &ModelParts<'_>,
        store: &mut ParamStore,
        rng: &mut Rng,
    ) -> Result<Box<dyn Model>> {
        Ok(Box::new(self.build_esvae(parts, store, rng)?))
    }

    fn about(&self) -> &'static str {
        "efficient spiking VAE (Zhan et al.): Poisson-sampled latent rates, MMD to a learned prior, output through the configured decoder"
    }
}

/// The random draws of one pass: the sampler's uniforms (`T * B * C`,
/// time-major) and the prior's Gaussian noise (`B * C`).
#[derive(Clone, Debug)]
pub struct Noise {
    pub uniform: Vec<f32>,
    pub gaussian: Vec<f32>,
}

/// What one training pass computes, before the loss is formed.
pub struct Pass {
    pub image: Img,
    /// Posterior rates `[B, C]`.
    pub r_q: Rows,
    /// Prior rates `[B, C]`.
    pub r_p: Rows,
}

#[derive(Debug)]
pub struct Esvae {
    spec: EsvaeSpec,
    encoder: Vec<Block>,
    prior: Block,
    decoder: Vec<Block>,
    output: Box<dyn Decoder>,
    image: [usize; 3],
    steps: usize,
    summary: String,
}

impl Esvae {
    /// Draws a pass's noise for `count` images from each image's own
    /// generators (uniforms first, then the Gaussian).
    pub fn draw_noise(&self, count: usize, fwd: &mut Forward<'_>) -> Noise {
        let latent = self.spec.latent;
        Noise {
            uniform: sampler::uniform_draws(&mut fwd.image_rngs(count), self.steps, latent),
            gaussian: gaussian(&mut fwd.image_rngs(count), latent),
        }
    }

    /// Latent spikes `[T * B, C]` from rates `[B * C]` and draws.
    fn spikes(&self, rates: FlatT, uniform: Vec<f32>, fwd: &mut Forward<'_>) -> Rows {
        let n = rates.shape().0;
        let z = sampler::rate_spikes(rates, uniform, self.steps, self.spec.sampler_width);
        fwd.record_rate("latent", &z);
        z.reshape_like(&(self.steps * n / self.spec.latent, self.spec.latent))
    }

    /// The prior's rates `[B, C]` on Gaussian noise `B * C`.
    fn prior_rates(&self, gaussian: Vec<f32>, fwd: &mut Forward<'_>) -> Result<Rows> {
        let latent = self.spec.latent;
        let b = gaussian.len() / latent;
        let eps = fwd.store.dev().tensor_from_vec(gaussian, (b, latent));
        let y = self.prior.forward(as_nhwc(eps.retaped()), 1, fwd)?;
        Ok(rows_of(y).sigmoid())
    }

    /// Encoder, sampler and decoder on given draws: the image and the
    /// posterior's rates `[B, C]`.
    fn autoencode(&self, x: Img, uniform: Vec<f32>, fwd: &mut Forward<'_>) -> Result<(Img, Rows)> {
        let (b, latent, steps) = (x.shape().0, self.spec.latent, self.steps);
        let enc = spiking::encode("esvae", &self.encoder, self.image, steps, x, fwd)?;
        let r_q: FlatT = enc.reshape_like(&(steps, b * latent)).mean::<_, Axis<0>>();
        // The sampler's branch and the MMD's branch share r_q's values;
        // r_q keeps the tape for the MMD (both end in the loss).
        let z = self.spikes(r_q.with_empty_tape(), uniform, fwd);
        let image = self.decode(z, fwd)?;
        Ok((image, r_q.reshape_like(&(b, latent))))
    }

    fn decode(&self, z: Rows, fwd: &mut Forward<'_>) -> Result<Img> {
        let last = *self.spec.channels.last().unwrap_or(&1);
        spiking::decode(
            &self.decoder,
            self.output.as_ref(),
            last,
            self.steps,
            z,
            fwd,
        )
    }

    /// Encoder, sampler, decoder and prior on given noise: the pass a
    /// training step takes, with its draws made outside (tests give the
    /// ones a reference implementation used).
    pub fn pass(&self, x: Img, noise: Noise, fwd: &mut Forward<'_>) -> Result<Pass> {
        let (image, r_q) = self.autoencode(x, noise.uniform, fwd)?;
        let r_p = self.prior_rates(noise.gaussian, fwd)?;
        Ok(Pass { image, r_q, r_p })
    }

    /// Reconstruction, MMD and their weighted sum on a pass. The MMD
    /// compares every pair of images of the batch: on several ranks it
    /// runs on every rank's rates (`gather_rows`), so it is the one
    /// process's.
    pub fn loss(&self, pass: Pass, target: &Img) -> Result<Objective> {
        let (r_q, r_p) = (gather_rows(pass.r_q)?, gather_rows(pass.r_p)?);
        let dist = mmd(r_q, r_p, self.spec.mmd_kernel);
        let recon = mse_loss(pass.image, target.retaped::<NoneTape>());
        let (r, d) = (recon.array(), dist.array());
        Ok(Objective {
            loss: recon + dist * self.spec.mmd_weight,
            terms: vec![("reconstruction".into(), r), ("distance".into(), d)],
            predictions: None,
        })
    }

    fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.encoder.iter().chain(&self.decoder)
    }
}

impl Model for Esvae {
    fn forward(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Mat> {
        let img = self.reconstruct(x, fwd)?;
        let (b, c, h, w) = *img.shape();
        Ok(img.reshape_like(&(b, c * h * w)))
    }

    fn objective(&self, x: Img, _labels: &[u8], fwd: &mut Forward<'_>) -> Result<Objective> {
        let noise = self.draw_noise(x.shape().0, fwd);
        let target = x.retaped();
        let pass = self.pass(x, noise, fwd)?;
        self.loss(pass, &target)
    }

    fn after_step(&self, store: &mut ParamStore) -> Result<()> {
        clip_weights(store, self.spec.weight_clip)
    }

    fn generator(&self) -> Option<&dyn Generator> {
        Some(self)
    }

    fn neuron_layers(&self) -> Vec<String> {
        spiking::layer_names(self.blocks())
    }

    fn neuron_constants(&self, store: &ParamStore) -> Result<Vec<(String, NeuronConstants)>> {
        spiking::layer_constants(self.blocks(), store)
    }

    fn summary(&self) -> String {
        self.summary.clone()
    }

    fn to_nir(
        &self,
        _store: &ParamStore,
        _options: &snn_core::nir::ExportOptions,
    ) -> Result<snn_core::nir::Graph> {
        Err(Error::invalid(
            "model",
            "esvae: its decoder's transposed convolutions, the Poisson latent sampler and the image readout have no NIR node; only the spiking classifier exports",
        ))
    }
}

impl Generator for Esvae {
    fn sample(&self, count: usize, fwd: &mut Forward<'_>) -> Result<Img> {
        let noise = self.draw_noise(count, fwd);
        let r_p = self.prior_rates(noise.gaussian, fwd)?;
        let n = count * self.spec.latent;
        let z = self.spikes(r_p.reshape_like(&(n,)), noise.uniform, fwd);
        self.decode(z, fwd)
    }

    fn reconstruct(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Img> {
        let uniform = self.draw_noise(x.shape().0, fwd).uniform;
        Ok(self.autoencode(x, uniform, fwd)?.0)
    }
}
