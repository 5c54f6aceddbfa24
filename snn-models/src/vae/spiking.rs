//! What the spiking VAEs (FSVAE, ESVAE) share: the encoder from a static
//! image to latent spike rows, the decoder from latent spike rows to an
//! image, and the names and constants of their spiking layers.
//!
//! Rows are time-major, `[T * B, features]`: row `t * B + i` is image `i`
//! at step `t`.

use super::blocks::{Block, Weights};
use snn_core::dfdx::prelude::*;
use snn_core::spec::{Decoder, Forward, NeuronConstants};
use snn_core::{Error, Img, ParamStore, Result};
use snn_nn::{Nhwc, Rows};

pub fn rows_of(x: Nhwc) -> Rows {
    let (n, h, w, c) = *x.shape();
    x.reshape_like(&(n, h * w * c))
}

pub fn as_nhwc(x: Rows) -> Nhwc {
    let (n, f) = *x.shape();
    x.reshape_like(&(n, 1, 1, f))
}

/// Images `[B, C, H, W]` (checked against `image`) through the encoder's
/// blocks to spikes `[T * B, features]`: the first block once on the
/// static image (direct encoding), the map flattened before a linear block.
pub fn encode(
    model: &str,
    blocks: &[Block],
    image: [usize; 3],
    steps: usize,
    x: Img,
    fwd: &mut Forward<'_>,
) -> Result<Rows> {
    let x = super::channels_last(model, image, x)?;
    let Some((first, rest)) = blocks.split_first() else {
        return Err(Error::invalid(format!("{model} encoder"), "has no layer"));
    };
    let mut y = first.forward_static(x, steps, fwd)?;
    for block in rest {
        if matches!(block.weights, Weights::Fc(_)) {
            y = as_nhwc(rows_of(y));
        }
        y = block.forward(y, steps, fwd)?;
    }
    Ok(rows_of(y))
}

/// Latent spikes `[T * B, latent]` through the decoder's blocks (the first
/// a linear block to a 2x2 map of `last_channels`) and the output decoder
/// of the sequence, to images `[B, C, H, W]` in [-1, 1] (tanh).
pub fn decode(
    blocks: &[Block],
    output: &dyn Decoder,
    last_channels: usize,
    steps: usize,
    z: Rows,
    fwd: &mut Forward<'_>,
) -> Result<Img> {
    let (rows, _) = *z.shape();
    let b = rows / steps;
    let Some((first, rest)) = blocks.split_first() else {
        return Err(Error::invalid("decoder", "has no layer"));
    };
    let y = first.forward(as_nhwc(z), steps, fwd)?;
    let mut y = y.reshape_like(&(rows, 2, 2, last_channels));
    for block in rest {
        y = block.forward(y, steps, fwd)?;
    }
    // Time-major channels-last is the decoders' layout: a reshape, no
    // copy; only the decoded image (T times smaller) is permuted.
    let (_, h, w, c) = *y.shape();
    let seq = y.reshape_like(&(steps, b, h, w, c));
    let image = output.forward(seq, fwd.store)?;
    Ok(image.permute::<_, Axes4<0, 3, 1, 2>>().tanh())
}

/// The names of the blocks that spike, in order.
pub fn layer_names<'b>(blocks: impl Iterator<Item = &'b Block>) -> Vec<String> {
    blocks
        .filter(|b| b.neuron().is_some())
        .map(|b| b.name.clone())
        .collect()
}

/// Each spiking block's neuron constants (decay, threshold), by block name.
pub fn layer_constants<'b>(
    blocks: impl Iterator<Item = &'b Block>,
    store: &ParamStore,
) -> Result<Vec<(String, NeuronConstants)>> {
    blocks
        .filter_map(|b| b.neuron().map(|n| (b, n)))
        .map(|(b, n)| Ok((b.name.clone(), n.constants(store)?)))
        .collect()
}
