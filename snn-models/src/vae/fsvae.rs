//! The fully spiking VAE (Kamata et al., AAAI 2022), with the decoder of
//! the output sequence taken from the config (`last-membrane` is FSVAE's,
//! `taid` the paper's).
//!
//! Forward pass, `T` steps, direct encoding:
//! 1. encoder spikes `x[t]` (`[T * B, latent]`);
//! 2. posterior `q(z_t | x_<=t, z_<t)`: a 3-layer spiking MLP on
//!    `concat(x[t], z[t-1])` with `k` outputs per latent; `z[t]` is one of
//!    its `k` spikes picked at random. The inputs `z[t-1]` come from an
//!    autoregressive pass without gradients, then the whole sequence runs
//!    once more with gradients (as in the FSVAE code);
//! 3. prior `p(z_t | z_<t)`: the same MLP shape on `z[t-1]`; in training
//!    some of those inputs are replaced by the prior's own samples
//!    (scheduled sampling, probability rising from 0.1 to 0.3);
//! 4. decoder spikes -> the non-spiking last layer's sequence -> the
//!    configured decoder -> tanh;
//! 5. loss = MSE(image) + distance(posterior, prior spike probabilities).
//!
//! One deviation, for speed: the FSVAE code re-runs the posterior (and the
//! scheduled prior) on every prefix `z_<=t` in training mode, normalising
//! by each prefix's batch statistics, which costs `O(T^2)` layer passes.
//! Here the autoregressive passes step the layers once per time step with
//! the running statistics (exactly what the FSVAE code does when sampling);
//! the pass with gradients is unchanged.

use super::blocks::{Activation, Block, Stepper};
use super::latent::{bernoulli_kl, pick, pick_host, psp_distance, random_picks, spike_probability};
use super::spiking::{self, as_nhwc, rows_of};
use super::{check_geometry, clip_weights, Builder, DecoderFc};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::spec::{
    Decoder, DecoderInput, Forward, Generator, Model, ModelParts, ModelSpec, NeuronConstants,
    Objective,
};
use snn_core::{Dev, Error, Img, Mat, ParamStore, Result, Scalar};
use snn_nn::{Nhwc, Rows, Spiking};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// FSVAE's "mmd": squared difference of PSP-filtered spike probabilities.
    #[default]
    Mmd,
    /// Bernoulli KL divergence of the spike probabilities.
    Kl,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FsvaeSpec {
    /// Encoder channels; one stride-2 layer each. `[32, 64, 128, 256]` for
    /// 32x32 images, `[32, 64, 128, 256, 512]` (the large variant) for 64x64.
    pub channels: Vec<usize>,
    /// Latent size `C`.
    pub latent: usize,
    /// Spikes per latent in the posterior and prior outputs.
    pub k: usize,
    pub distance: Distance,
    /// Weight of the distance in the loss (default: 1 for mmd, 1e-4 for kl,
    /// as in the FSVAE code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_weight: Option<f32>,
    /// Time constant of the PSP filter of the mmd distance.
    pub psp_tau: f32,
    /// `V_th` of tdBN's `alpha * V_th` scale.
    pub bn_v_th: f32,
    /// tdBN `alpha` of the posterior and prior layers (the others use 1).
    pub latent_bn_alpha: f32,
    /// Scheduled sampling of the prior's inputs in training.
    pub scheduled_sampling: bool,
    /// Probability of using the prior's own sample at a step: from the
    /// first value at the first epoch, linearly towards the second.
    pub sampling_p: [f32; 2],
    /// Steps before which the posterior's samples are always used.
    pub sampling_start: usize,
    /// Clamp every trainable parameter to +-this after each step (0 = off).
    pub weight_clip: f32,
    pub init: WeightInit,
}

impl Default for FsvaeSpec {
    fn default() -> Self {
        Self {
            channels: vec![32, 64, 128, 256],
            latent: 128,
            k: 20,
            distance: Distance::Mmd,
            distance_weight: None,
            psp_tau: 2.0,
            bn_v_th: 0.2,
            latent_bn_alpha: 2.0,
            scheduled_sampling: true,
            sampling_p: [0.1, 0.3],
            sampling_start: 5,
            weight_clip: 0.0,
            init: WeightInit::Torch,
        }
    }
}

#[derive(Debug)]
pub struct Fsvae {
    spec: FsvaeSpec,
    encoder: Vec<Block>,
    posterior: Vec<Block>,
    prior: Vec<Block>,
    decoder: Vec<Block>,
    output: Box<dyn Decoder>,
    image: [usize; 3],
    steps: usize,
    summary: String,
}

#[typetag::serde(name = "fsvae")]
impl ModelSpec for FsvaeSpec {
    fn build(
        &self,
        parts: &ModelParts<'_>,
        store: &mut ParamStore,
        rng: &mut Rng,
    ) -> Result<Box<dyn Model>> {
        check_geometry("fsvae", parts.input_shape, &self.channels)?;
        if self.latent == 0 || self.k == 0 {
            return Err(Error::invalid(
                "model.latent / model.k",
                "must be at least 1",
            ));
        }
        if parts.time_steps < 2 {
            return Err(Error::invalid("time_steps", "FSVAE needs at least 2 steps"));
        }
        for (field, v) in [
            ("model.psp_tau", self.psp_tau),
            ("model.bn_v_th", self.bn_v_th),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(
                    field,
                    format!("must be a positive number, got {v}"),
                ));
            }
        }
        if !(self.weight_clip.is_finite() && self.weight_clip >= 0.0) {
            return Err(Error::invalid(
                "model.weight_clip",
                "must be >= 0 (0 = off)",
            ));
        }
        let neuron = parts.neuron("fsvae")?;
        // A block's neuron keeps its parameters under `block.sn`; its
        // firing rate is recorded under the block's name.
        let make = |block: &str, store: &mut ParamStore| {
            let neuron = neuron.build(&format!("{block}.sn"), store)?;
            let name = block.to_string();
            Ok(Activation::Spike(Spiking { name, neuron }))
        };
        let (c, latent, k) = (parts.input_shape[0], self.latent, self.k);
        let a = self.latent_bn_alpha;
        let mut b = Builder {
            store,
            rng,
            init: self.init,
            bn_scale: self.bn_v_th,
            act: &make,
        };
        let mut encoder = b.encoder(c, &self.channels)?;
        let last = self.channels[self.channels.len() - 1];
        encoder.push(b.fc("encoder.fc", last * 4, latent, 1.0, false)?);
        let posterior = vec![
            b.fc("posterior.0", 2 * latent, 2 * latent, a, false)?,
            b.fc("posterior.1", 2 * latent, 4 * latent, a, false)?,
            b.fc("posterior.2", 4 * latent, k * latent, a, false)?,
        ];
        let prior = vec![
            b.fc("prior.0", latent, 2 * latent, a, false)?,
            b.fc("prior.1", 2 * latent, 4 * latent, a, false)?,
            b.fc("prior.2", 4 * latent, k * latent, a, false)?,
        ];
        let decoder = b.decoder(latent, &self.channels, c, DecoderFc::BnAct)?;
        let input = DecoderInput {
            time_steps: parts.time_steps,
            channels: c,
        };
        let output = parts
            .decoder("fsvae")?
            .build("output", input, b.store, b.rng)?;
        let [_, h, w] = parts.input_shape;
        let summary = format!(
            "FSVAE: {c}x{h}x{w} images, T = {}, encoder {:?} -> latent {latent} x k {k} ({:?} distance), decoder {:?} -> {c} channels -> {output:?} -> tanh",
            parts.time_steps, self.channels, self.distance, self.channels.iter().rev().collect::<Vec<_>>()
        );
        Ok(Box::new(Fsvae {
            spec: self.clone(),
            encoder,
            posterior,
            prior,
            decoder,
            output,
            image: parts.input_shape,
            steps: parts.time_steps,
            summary,
        }))
    }

    fn about(&self) -> &'static str {
        "fully spiking VAE (Kamata et al.): autoregressive Bernoulli latent, output through the configured decoder"
    }
}

/// What the encoder and the latent model produce for a batch.
struct Encoded {
    /// Posterior spikes `[T * B, C * k]`.
    q: Rows,
    /// Prior spikes `[T * B, C * k]`.
    p: Rows,
    /// Sampled latent spikes `[T * B, C]`.
    z: Rows,
}

impl Fsvae {
    fn run(blocks: &[Block], mut x: Nhwc, steps: usize, fwd: &mut Forward<'_>) -> Result<Nhwc> {
        for b in blocks {
            x = b.forward(x, steps, fwd)?;
        }
        Ok(x)
    }

    /// Encoder, posterior (with its autoregressive pre-pass) and prior.
    fn encode(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Encoded> {
        let b = x.shape().0;
        let (steps, latent, k) = (self.steps, self.spec.latent, self.spec.k);
        let dev = x.device().clone();
        let enc = spiking::encode("fsvae", &self.encoder, self.image, steps, x, fwd)?;
        let n = b * latent;
        let picks = random_picks(&mut fwd.image_rngs(b), steps, latent, k);

        // z[t-1] for every t, sampled step by step without gradients.
        let enc_host = enc.retaped::<NoneTape>().as_vec();
        let z_prev = self.posterior_samples(&enc_host, fwd, &dev, b, &picks)?;

        let z_in = dev.tensor_from_vec(z_prev, (steps * b, latent));
        let q_in = (enc, z_in).concat_along(Axis::<1>);
        let q = rows_of(Self::run(&self.posterior, as_nhwc(q_in), steps, fwd)?);
        // `z` shares `q`'s values; `q` keeps the tape (see `objective`).
        let z = pick(q.with_empty_tape(), k, &picks);

        // The prior sees z[t-1], detached.
        let z_host = z.retaped::<NoneTape>().as_vec();
        let mut p_in = vec![0.0; steps * n];
        p_in[n..].copy_from_slice(&z_host[..(steps - 1) * n]);
        if fwd.train && self.spec.scheduled_sampling {
            p_in = self.scheduled_inputs(p_in, fwd, &dev, b)?;
        }
        let p_in = dev
            .tensor_from_vec(p_in, (steps * b, latent))
            .traced(Gradients::leaky());
        let p = rows_of(Self::run(&self.prior, as_nhwc(p_in), steps, fwd)?);
        Ok(Encoded { q, p, z })
    }

    /// The posterior's autoregressive pass: at each step `t < T - 1` the
    /// input row of sample `i` is `enc[t, i]` followed by `z[t-1, i]`.
    /// Returns `z[t-1]` for all `t` (zeros at `t = 0`), `[T * B * C]`.
    fn posterior_samples(
        &self,
        enc: &[f32],
        fwd: &mut Forward<'_>,
        dev: &Dev,
        b: usize,
        picks: &[usize],
    ) -> Result<Vec<f32>> {
        let (steps, latent, k) = (self.steps, self.spec.latent, self.spec.k);
        let n = b * latent;
        let mut z_prev = vec![0.0; steps * n];
        let mut eval = Forward::new(fwd.store, false, fwd.rng);
        snn_core::grad::no_grad(|| -> Result<()> {
            let mut stepper = Stepper::new(&self.posterior, b, eval.store)?;
            for t in 0..steps - 1 {
                let mut row = Vec::with_capacity(2 * n);
                for i in 0..b {
                    row.extend_from_slice(&enc[(t * b + i) * latent..][..latent]);
                    row.extend_from_slice(&z_prev[t * n + i * latent..][..latent]);
                }
                let q_t = stepper.step(row, &mut eval, dev)?;
                let z_t = pick_host(&q_t, k, &picks[t * n..(t + 1) * n]);
                z_prev[(t + 1) * n..(t + 2) * n].copy_from_slice(&z_t);
            }
            Ok(())
        })?;
        Ok(z_prev)
    }

    /// Scheduled sampling: steps the prior on its inputs and, from step
    /// `sampling_start` on, with probability `p` per step replaces the next
    /// input by the prior's own guess (latent on where more than half of
    /// its `k` spikes fire; a fair coin at exactly half, as the FSVAE
    /// code's 1e-3 noise does).
    fn scheduled_inputs(
        &self,
        mut p_in: Vec<f32>,
        fwd: &mut Forward<'_>,
        dev: &Dev,
        b: usize,
    ) -> Result<Vec<f32>> {
        let (steps, latent, k) = (self.steps, self.spec.latent, self.spec.k);
        let n = b * latent;
        let [p0, p1] = self.spec.sampling_p;
        let prob = p0 + (p1 - p0) * fwd.progress;
        // Whether a step is replaced is one draw for the whole batch; the
        // coins at exactly half are each image's own.
        let mut step_coin = fwd.batch_rng();
        let mut image_coins = fwd.image_rngs(b);
        let mut eval = Forward::new(fwd.store, false, fwd.rng);
        snn_core::grad::no_grad(|| -> Result<()> {
            let mut stepper = Stepper::new(&self.prior, b, eval.store)?;
            for t in 0..steps - 1 {
                let out = stepper.step(p_in[t * n..(t + 1) * n].to_vec(), &mut eval, dev)?;
                if t >= self.spec.sampling_start && step_coin.gen::<f32>() < prob {
                    for (i, spikes) in out.chunks(k).enumerate() {
                        let on = spikes.iter().sum::<f32>() / k as f32;
                        let bit = if on == 0.5 {
                            image_coins[i / latent].gen::<bool>()
                        } else {
                            on > 0.5
                        };
                        p_in[(t + 1) * n + i] = bit as u8 as f32;
                    }
                }
            }
            Ok(())
        })?;
        Ok(p_in)
    }

    /// Latent spikes `[T * B, C]` -> images `[B, C, H, W]` in [-1, 1].
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

    fn distance(&self, q: Rows, p: Rows, batch: usize) -> (Scalar, f32) {
        let (steps, k) = (self.steps, self.spec.k);
        let q = spike_probability(q, steps, k);
        let p = spike_probability(p, steps, k);
        match self.spec.distance {
            Distance::Mmd => (
                psp_distance(q, p, self.spec.psp_tau),
                self.spec.distance_weight.unwrap_or(1.0),
            ),
            Distance::Kl => (
                bernoulli_kl(q, p, batch),
                self.spec.distance_weight.unwrap_or(1e-4),
            ),
        }
    }

    fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.encoder
            .iter()
            .chain(&self.posterior)
            .chain(&self.prior)
            .chain(&self.decoder)
    }
}

impl Model for Fsvae {
    fn forward(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Mat> {
        let img = self.reconstruct(x, fwd)?;
        let (b, c, h, w) = *img.shape();
        Ok(img.reshape_like(&(b, c * h * w)))
    }

    fn objective(&self, x: Img, _labels: &[u8], fwd: &mut Forward<'_>) -> Result<Objective> {
        let shape = *x.shape();
        let target = x.retaped::<NoneTape>();
        let e = self.encode(x, fwd)?;
        let img = self.decode(e.z, fwd)?;
        // `q` and `p` carry the posterior's and prior's backward passes on
        // their tapes: they must end up in the loss, not be dropped.
        let (dist, weight) = self.distance(e.q, e.p, shape.0);
        let recon = mse_loss(img, target);
        let (r, d) = (recon.array(), dist.array());
        Ok(Objective {
            loss: recon + dist * weight,
            terms: vec![("reconstruction".into(), r), ("distance".into(), d)],
            predictions: None,
        })
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
            "fsvae: its decoder's transposed convolutions, the latent sampler (Bernoulli draws from the posterior / prior networks' rates) and the image readout have no NIR node; only the spiking classifier exports",
        ))
    }
}

impl Generator for Fsvae {
    fn sample(&self, count: usize, fwd: &mut Forward<'_>) -> Result<Img> {
        let (steps, latent, k) = (self.steps, self.spec.latent, self.spec.k);
        let n = count * latent;
        let dev = fwd.store.dev().clone();
        let picks = random_picks(&mut fwd.image_rngs(count), steps, latent, k);
        let mut z = vec![0.0; (steps + 1) * n];
        let mut eval = Forward::new(fwd.store, false, fwd.rng);
        snn_core::grad::no_grad(|| -> Result<()> {
            let mut stepper = Stepper::new(&self.prior, count, eval.store)?;
            for t in 0..steps {
                let out = stepper.step(z[t * n..(t + 1) * n].to_vec(), &mut eval, &dev)?;
                let z_t = pick_host(&out, k, &picks[t * n..(t + 1) * n]);
                z[(t + 1) * n..(t + 2) * n].copy_from_slice(&z_t);
            }
            Ok(())
        })?;
        let z = dev
            .tensor_from_vec(z[n..].to_vec(), (steps * count, latent))
            .traced(Gradients::leaky());
        self.decode(z, fwd)
    }

    fn reconstruct(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Img> {
        let e = self.encode(x, fwd)?;
        self.decode(e.z, fwd)
    }
}
