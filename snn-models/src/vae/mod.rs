//! Variational autoencoders: the fully spiking VAE of Kamata et al. (FSVAE)
//! and the ANN VAE of the same architecture as its baseline; and the plain
//! ANN autoencoder whose latent FAD measures.
//!
//! Both share one layout (REFERENCE.md, "FSVAE"): an encoder of stride-2
//! 3x3 convolutions (channels 32, 64, 128, 256 for 32x32 images; add 512
//! for 64x64) down to 2x2, a linear layer to the latent, and a mirrored
//! decoder of stride-2 transposed convolutions, a last stride-2 transposed
//! convolution keeping the channels and a stride-1 one to the image
//! channels. Every layer has a bias, as in the FSVAE code.

pub mod ae;
pub mod ann;
pub mod blocks;
pub mod esvae;
pub mod fsvae;
pub mod latent;
pub mod spiking;

pub use ae::AutoencoderSpec;
pub use ann::AnnVaeSpec;
pub use esvae::EsvaeSpec;
pub use fsvae::FsvaeSpec;

use blocks::{Activation, Block, Weights};
use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::spec::Forward;
use snn_core::{Error, Img, ParamStore, Result};
use snn_nn::{BatchNorm, Conv2dConfig, ConvTranspose2dConfig, LinearConfig, Nhwc, Rows};

/// Checks that `[c, h, w]` images shrink to 2x2 through `channels.len()`
/// stride-2 layers.
pub fn check_geometry(model: &str, image: [usize; 3], channels: &[usize]) -> Result<()> {
    let [_, h, w] = image;
    if channels.is_empty() || channels.contains(&0) {
        return Err(Error::invalid(
            format!("model.channels ({model})"),
            "needs at least one layer, each with at least 1 channel",
        ));
    }
    let side = 2usize << channels.len();
    if h != side || w != side {
        return Err(Error::invalid(
            format!("model.channels ({model})"),
            format!(
                "{} stride-2 layers take {side}x{side} images to 2x2, the data is {h}x{w}; set data.image_size = {side} or use {} channel entries",
                channels.len(),
                (h.max(4).ilog2() - 1)
            ),
        ));
    }
    Ok(())
}

/// Builds blocks with one weight initialisation, one kind of batch norm and
/// one activation maker.
pub struct Builder<'a> {
    pub store: &'a mut ParamStore,
    pub rng: &'a mut Rng,
    pub init: WeightInit,
    /// Factor on the normalised value: `alpha * V_th` for tdBN, 1 for BN.
    pub bn_scale: f32,
    /// Makes the activation of the block named by the argument.
    pub act: &'a dyn Fn(&str, &mut ParamStore) -> Result<Activation>,
}

/// Where a 3x3 layer takes its input.
#[derive(Clone, Copy)]
pub enum Step {
    /// Stride-2 convolution, padding 1: halves the side.
    Down,
    /// Stride-2 transposed convolution, padding 1, output padding 1: doubles it.
    Up,
    /// Stride-1 (transposed) convolution, padding 1: keeps it.
    Same,
}

impl Builder<'_> {
    /// A 3x3 layer with batch norm (scaled by `bn_scale * alpha`) and the
    /// activation, or neither when `plain`.
    pub fn conv(
        &mut self,
        name: &str,
        cin: usize,
        cout: usize,
        step: Step,
        plain: bool,
    ) -> Result<Block> {
        let (scope, rng) = (&mut self.store.scope(name), &mut *self.rng);
        let conv_t = |stride, output_padding| ConvTranspose2dConfig {
            in_channels: cin,
            out_channels: cout,
            kernel: 3,
            stride,
            padding: 1,
            output_padding,
            bias: true,
            weight_init: self.init,
        };
        let weights = match step {
            Step::Down => Weights::Conv(
                Conv2dConfig {
                    in_channels: cin,
                    out_channels: cout,
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                    bias: true,
                    weight_init: self.init,
                }
                .init(scope, rng)?,
            ),
            Step::Up => Weights::ConvT(conv_t(2, 1).init(scope, rng)?),
            Step::Same => Weights::ConvT(conv_t(1, 0).init(scope, rng)?),
        };
        self.finish(name, weights, cout, 1.0, plain)
    }

    /// A linear layer with batch norm (scaled by `bn_scale * alpha`) and the
    /// activation, or neither when `plain`.
    pub fn fc(
        &mut self,
        name: &str,
        inputs: usize,
        outputs: usize,
        alpha: f32,
        plain: bool,
    ) -> Result<Block> {
        let fc = LinearConfig {
            inputs,
            outputs,
            bias: true,
            weight_init: self.init,
        }
        .init(&mut self.store.scope(name), self.rng)?;
        self.finish(name, Weights::Fc(fc), outputs, alpha, plain)
    }

    fn finish(
        &mut self,
        name: &str,
        weights: Weights,
        channels: usize,
        alpha: f32,
        plain: bool,
    ) -> Result<Block> {
        let (bn, act) = if plain {
            (None, Activation::None)
        } else {
            let bn_scope = &mut self.store.scope(name);
            let bn = BatchNorm::tdbn(&mut bn_scope.scope("bn"), channels, alpha, self.bn_scale)?;
            (Some(bn), (self.act)(name, self.store)?)
        };
        Ok(Block {
            name: name.to_string(),
            weights,
            bn,
            act,
        })
    }

    /// `encoder.0 ..`: stride-2 convolutions from the image channels through
    /// `channels`, down to a 2x2 map.
    pub fn encoder(&mut self, image_channels: usize, channels: &[usize]) -> Result<Vec<Block>> {
        let mut blocks = Vec::new();
        let mut cin = image_channels;
        for (i, &c) in channels.iter().enumerate() {
            blocks.push(self.conv(&format!("encoder.{i}"), cin, c, Step::Down, false)?);
            cin = c;
        }
        Ok(blocks)
    }

    /// `decoder.fc` from the latent to a 2x2 map of the last channel count
    /// (with batch norm and the activation, or a plain linear layer where
    /// `input` says so), stride-2 transposed convolutions back through
    /// `channels`, one more keeping the first channel count
    /// (`decoder.last`), and a plain stride-1 one to the image channels
    /// (`decoder.out`).
    pub fn decoder(
        &mut self,
        latent: usize,
        channels: &[usize],
        image_channels: usize,
        input: DecoderFc,
    ) -> Result<Vec<Block>> {
        let rev: Vec<usize> = channels.iter().rev().copied().collect();
        let plain = input == DecoderFc::Linear;
        let mut blocks = vec![self.fc("decoder.fc", latent, rev[0] * 4, 1.0, plain)?];
        for (i, pair) in rev.windows(2).enumerate() {
            blocks.push(self.conv(&format!("decoder.{i}"), pair[0], pair[1], Step::Up, false)?);
        }
        let c = rev[rev.len() - 1];
        blocks.push(self.conv("decoder.last", c, c, Step::Up, false)?);
        blocks.push(self.conv("decoder.out", c, image_channels, Step::Same, true)?);
        Ok(blocks)
    }
}

/// What the decoder's first layer (latent -> 2x2 map) is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderFc {
    /// A plain linear layer (the FSVAE repository's ANN VAE and FAD
    /// autoencoder: `nn.Linear`).
    #[default]
    Linear,
    /// Linear, batch norm, activation (FSVAE's spiking decoder input:
    /// `tdLinear` with tdBN and LIF).
    BnAct,
}

/// Images `[B, C, H, W]`, checked against the model's `image`, as the
/// layers' channels-last `[B, H, W, C]`.
pub fn channels_last(model: &str, image: [usize; 3], x: Img) -> Result<Nhwc> {
    let (b, c, h, w) = *x.shape();
    if [c, h, w] != image {
        return Err(Error::shape(
            format!("{model} input"),
            format!("{:?}, the model takes {image:?}", [c, h, w]),
        ));
    }
    Ok(x.permute::<_, Axes4<0, 2, 3, 1>>()
        .reshape_like(&(b, h, w, c)))
}

/// The ANN models' encoder: checks `[B, C, H, W]` against `image`, runs the
/// convolution blocks, and flattens the final 2x2 map to `[B, 1, 1, F]`
/// for a linear block.
pub fn ann_encode(
    model: &str,
    blocks: &[Block],
    image: [usize; 3],
    x: Img,
    fwd: &mut Forward<'_>,
) -> Result<Nhwc> {
    let mut y = channels_last(model, image, x)?;
    for block in blocks {
        y = block.forward(y, 1, fwd)?;
    }
    let (n, h, w, c) = *y.shape();
    Ok(y.reshape_like(&(n, 1, 1, h * w * c)))
}

/// The ANN models' decoder: latent rows `[B, F]` through the linear block
/// to a 2x2 map of `last_channels`, the transposed convolutions, and tanh.
pub fn ann_decode(
    blocks: &[Block],
    last_channels: usize,
    z: Rows,
    fwd: &mut Forward<'_>,
) -> Result<Img> {
    let (n, f) = *z.shape();
    let y = blocks[0].forward(z.reshape_like(&(n, 1, 1, f)), 1, fwd)?;
    let mut y = y.reshape_like(&(n, 2, 2, last_channels));
    for block in &blocks[1..] {
        y = block.forward(y, 1, fwd)?;
    }
    Ok(y.permute::<_, Axes4<0, 3, 1, 2>>().tanh())
}

/// Clamps every trainable parameter to `[-limit, limit]` (FSVAE's weight
/// clipper, applied after each optimizer step); a limit of 0 is off.
pub fn clip_weights(store: &mut ParamStore, limit: f32) -> Result<()> {
    if limit <= 0.0 {
        return Ok(());
    }
    let names: Vec<String> = store
        .iter()
        .filter(|(_, p)| p.trainable)
        .map(|(n, _)| n.clone())
        .collect();
    for name in names {
        let v = store.values(&name)?;
        if v.iter().any(|x| x.abs() > limit) {
            store.set_values(
                &name,
                v.into_iter().map(|x| x.clamp(-limit, limit)).collect(),
            )?;
        }
    }
    Ok(())
}
