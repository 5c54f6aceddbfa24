//! Inception Score: from Inception-v3 ImageNet logits (the paper's
//! network, where such weights are at hand) or, labelled as such, from a
//! classifier trained here.

use super::fid::inception_embed;
use super::{describe, load_inception, Pixels, Score};
use crate::generate::Trained;
use snn_core::{Error, Result};
use snn_metrics::{inception_score, Inception, Input, Resize};
use std::path::Path;

/// Samples and splits of the FSVAE code's final IS: 10 batches of 256.
pub const IS_SAMPLES: usize = 2560;
pub const IS_SPLITS: usize = 10;

/// Loads Inception-v3 weights for IS: they must include the classifier.
pub fn load_is_network(weights: &Path) -> Result<Inception> {
    let net = load_inception(weights)?;
    if net.classes().is_none() {
        return Err(Error::data(
            weights,
            "no classifier head (`fc`): IS needs Inception-v3 weights with their logits, a \
             torchvision-layout state dict (torchvision's or pytorch-fid's .pth converted with \
             tools/torch_to_safetensors.py); or use --classifier RUN",
        ));
    }
    Ok(net)
}

/// Inception Score from Inception-v3 logits (softmax over the head's
/// classes, 10 splits); `net` from [`load_is_network`]. The FSVAE code's
/// protocol is `Resize::Bilinear` with `Input::RawPixels`.
pub fn inception_is(
    net: &Inception,
    weights: &Path,
    samples: &Pixels,
    resize: Resize,
    input: Input,
) -> Result<Score> {
    let t0 = std::time::Instant::now();
    let Some(k) = net.classes() else {
        return Err(Error::invalid(
            "is",
            "the Inception network has no classifier head",
        ));
    };
    let logits = inception_embed(net, samples, resize, input, "samples")?
        .logits
        .unwrap_or_default();
    let mut probs = Vec::with_capacity(logits.len());
    for row in logits.chunks(k) {
        let top = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f64> = row.iter().map(|v| ((v - top) as f64).exp()).collect();
        let sum: f64 = exp.iter().sum();
        probs.extend(exp.iter().map(|e| (e / sum) as f32));
    }
    let bias = match net.graph() {
        snn_metrics::Graph::Fid2015 => ", logits without bias",
        snn_metrics::Graph::Torchvision => "",
    };
    let network = format!("{} ({k} classes{bias})", describe(net, weights));
    let protocol = format!("{} resize to 299, {}", resize.name(), input.name());
    is_score(&probs, k, network, protocol, t0)
}

/// Inception Score computed from a trained classifier's outputs, each
/// image's output normalised to sum to 1 (firing rates are not
/// probabilities; an all-silent output counts as uniform), 10 splits.
pub fn classifier_is(model: &Trained, samples: &Pixels) -> Result<Score> {
    let t0 = std::time::Instant::now();
    let (out, k) = model.features(&model.input_from_pixels(samples), false, "samples")?;
    let mut probs = Vec::with_capacity(out.len());
    for row in out.chunks(k.max(1)) {
        let clipped: Vec<f32> = row.iter().map(|v| v.max(0.0)).collect();
        let sum: f32 = clipped.iter().sum();
        if sum > 0.0 {
            probs.extend(clipped.iter().map(|v| v / sum));
        } else {
            probs.extend(std::iter::repeat_n(1.0 / k as f32, k));
        }
    }
    let network = format!(
        "classifier {} ({k} classes; not Inception-v3, not comparable with published IS)",
        model.params.display()
    );
    is_score(&probs, k, network, "rates normalised to sum 1".into(), t0)
}

/// The IS line of per-image class probabilities `[n, k]`, in 10 splits.
fn is_score(
    probs: &[f32],
    k: usize,
    network: String,
    protocol: String,
    t0: std::time::Instant,
) -> Result<Score> {
    let n = probs.len() / k.max(1);
    let (value, std) = inception_score(probs, k, IS_SPLITS.min(n).max(1))?;
    Ok(Score {
        metric: "is".into(),
        value,
        std: Some(std),
        network,
        protocol,
        samples: n,
        reference: None,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
