//! Scoring generated images with trained networks: FAD with the FAD
//! autoencoder's latents, a classifier-based Inception Score.
//!
//! Generated images travel as 8-bit pixels (what PNG files hold), so
//! scoring a folder of PNGs and scoring a checkpoint's samples directly give
//! the same numbers. Each scoring network gets them in its own input format:
//! centre-cropped or zero-padded to its size, grey replicated to RGB or RGB
//! averaged to grey, scaled to its pixel range.

use crate::generate::Trained;
use serde::Serialize;
use snn_core::dfdx::prelude::*;
use snn_core::spec::Forward;
use snn_core::{init, Error, Result};
use snn_metrics::{frechet_distance, inception_score, Gaussian};
use std::path::Path;
use std::time::SystemTime;

/// Images as bytes, channel-planar `[n, C, H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pixels {
    pub shape: [usize; 3],
    pub data: Vec<u8>,
}

impl Pixels {
    pub fn len(&self) -> usize {
        self.data.len() / self.shape.iter().product::<usize>().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Every `*.png` of `dir`, in name order, at most `limit` (0 = all).
    /// All must share one size; grey and RGB files may not be mixed.
    pub fn load_folder(dir: &Path, limit: usize) -> Result<Self> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")))
            .collect();
        files.sort();
        if limit > 0 {
            files.truncate(limit);
        }
        if files.is_empty() {
            return Err(Error::data(dir, "no .png files in this folder"));
        }
        let mut shape = None;
        let mut data = Vec::new();
        for f in &files {
            let img =
                image::open(f).map_err(|e| Error::data(f, format!("cannot read image: {e}")))?;
            let grey = matches!(img.color(), image::ColorType::L8 | image::ColorType::L16);
            let (w, h) = (img.width() as usize, img.height() as usize);
            let s = [if grey { 1 } else { 3 }, h, w];
            match shape {
                None => shape = Some(s),
                Some(first) if first != s => {
                    return Err(Error::data(
                        f,
                        format!(
                        "image is {s:?} (channels, height, width), the folder's first is {first:?}"
                    ),
                    ))
                }
                _ => {}
            }
            if grey {
                data.extend(img.to_luma8().into_raw());
            } else {
                let rgb = img.to_rgb8();
                for ch in 0..3 {
                    data.extend(rgb.pixels().map(|p| p.0[ch]));
                }
            }
        }
        Ok(Self {
            shape: shape.unwrap_or([1, 1, 1]),
            data,
        })
    }
}

/// One score, with the network that produced it.
#[derive(Clone, Debug, Serialize)]
pub struct Score {
    pub metric: String,
    pub value: f64,
    /// Standard deviation over splits (IS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Which network produced it.
    pub network: String,
    pub samples: usize,
    /// Reference (test set) images compared against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<usize>,
    pub seconds: f64,
}

impl Trained {
    /// `pixels` as this network's input values `[n * C * H * W]`.
    pub fn input_from_pixels(&self, pixels: &Pixels) -> Vec<f32> {
        let [c, h, w] = self.shape;
        let [sc, sh, sw] = pixels.shape;
        let (oy, ox) = (sh as isize - h as isize, sw as isize - w as isize);
        let mut out = Vec::with_capacity(pixels.len() * c * h * w);
        for img in pixels.data.chunks_exact(sc * sh * sw) {
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        // Centre crop (source larger) or zero padding (smaller).
                        let (sy, sx) = (y as isize + oy / 2, x as isize + ox / 2);
                        let inside = sy >= 0 && sx >= 0 && (sy as usize) < sh && (sx as usize) < sw;
                        let p = if !inside {
                            0.0
                        } else {
                            let at =
                                |k: usize| img[(k * sh + sy as usize) * sw + sx as usize] as f32;
                            match (sc, c) {
                                (1, _) => at(0),
                                (_, 1) => (0..sc).map(at).sum::<f32>() / sc as f32,
                                _ => at(ch.min(sc - 1)),
                            }
                        };
                        out.push(self.pixel_value(p / 255.0, ch));
                    }
                }
            }
        }
        out
    }

    /// A [0, 1] intensity in this network's input range.
    fn pixel_value(&self, v: f32, ch: usize) -> f32 {
        let mut v = v;
        if self.cfg.data.symmetric {
            v = v * 2.0 - 1.0;
        }
        if let Some(stats) = &self.normalization {
            let (mean, std) = stats[ch.min(stats.len() - 1)];
            v = (v - mean) / std;
        }
        v
    }

    /// Runs the network on `values` (`n` images) in batches without
    /// gradients: its embedding (`embed = true`) or its output.
    /// Returns rows of the result and their width.
    pub fn features(&self, values: &[f32], embed: bool, what: &str) -> Result<(Vec<f32>, usize)> {
        let [c, h, w] = self.shape;
        let per = c * h * w;
        let n = values.len() / per;
        let batch = 250;
        let bar = crate::progress_bar(n, what.to_string());
        let mut rng = init::rng(self.cfg.seed);
        let mut out = Vec::new();
        let mut dim = 0;
        snn_core::grad::no_grad(|| -> Result<()> {
            for chunk in values.chunks(batch * per) {
                let b = chunk.len() / per;
                let x = self
                    .dev
                    .tensor_from_vec(chunk.to_vec(), (b, c, h, w))
                    .traced(Gradients::leaky());
                let mut fwd = Forward::new(&self.store, false, &mut rng);
                let y = if embed {
                    let e = self.model.embedder().ok_or_else(|| {
                        Error::invalid(
                            "model",
                            format!(
                                "{} has no embedding (train an `ae` model for FAD)",
                                self.params.display()
                            ),
                        )
                    })?;
                    e.embed(x, &mut fwd)?
                } else {
                    self.model.forward(x, &mut fwd)?
                };
                dim = y.shape().1;
                out.extend(y.retaped::<NoneTape>().as_vec());
                bar.inc(b as u64);
            }
            Ok(())
        })?;
        bar.finish_and_clear();
        Ok((out, dim))
    }

    /// The Gaussian of this network's embedding of its own test set, cached
    /// beside its parameters (recomputed when the parameters are newer).
    pub fn reference_gaussian(&self) -> Result<Gaussian> {
        let dir = self.params.parent().unwrap_or(Path::new("."));
        let stem = self
            .params
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let test = self.test_data()?;
        let cache = dir.join(format!(
            "reference-{}-{}-{stem}.safetensors",
            self.cfg.data.dataset,
            test.len()
        ));
        let modified = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        if cache.exists() && modified(&cache) >= modified(&self.params) {
            return Ok(Gaussian::load(&cache)?.0);
        }
        let (feats, dim) = self.features(&test.images, true, "reference")?;
        let g = Gaussian::fit(&feats, dim)?;
        let about = format!(
            "{} test set, {} images, embedded by {}",
            self.cfg.data.dataset,
            test.len(),
            self.params.display()
        );
        g.save(&cache, &about)?;
        Ok(g)
    }
}

/// FAD of `samples` against the FAD autoencoder's test set.
pub fn fad(model: &Trained, samples: &Pixels) -> Result<Score> {
    let t0 = std::time::Instant::now();
    let reference = model.reference_gaussian()?;
    let (feats, dim) = model.features(&model.input_from_pixels(samples), true, "samples")?;
    let g = Gaussian::fit(&feats, dim)?;
    Ok(Score {
        metric: "fad".into(),
        value: frechet_distance(&g, &reference)?,
        std: None,
        network: format!("autoencoder {} (latent {dim})", model.params.display()),
        samples: samples.len(),
        reference: Some(reference.count),
        seconds: t0.elapsed().as_secs_f64(),
    })
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
        "classifier {} ({k} classes; not Inception-v3)",
        model.params.display()
    );
    is_score(&probs, k, network, t0)
}

/// The IS line of per-image class probabilities `[n, k]`, in 10 splits.
fn is_score(probs: &[f32], k: usize, network: String, t0: std::time::Instant) -> Result<Score> {
    let n = probs.len() / k.max(1);
    let (value, std) = inception_score(probs, k, 10.min(n).max(1))?;
    Ok(Score {
        metric: "is".into(),
        value,
        std: Some(std),
        network,
        samples: n,
        reference: None,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Where the FID network and its reference statistics live by default.
pub const INCEPTION_WEIGHTS: &str = "data/inception/fid-inception.safetensors";

/// The test split of `dataset` (native size, pixels as stored) as bytes.
pub fn dataset_pixels(dataset: &str, root: &Path, limit: usize) -> Result<Pixels> {
    let cfg = snn_core::config::DataConfig {
        dataset: dataset.to_string(),
        root: root.to_path_buf(),
        test_limit: limit,
        ..Default::default()
    };
    let ds = snn_data::load(&cfg, snn_data::Split::Test)?;
    Ok(Pixels {
        shape: ds.shape,
        data: ds
            .images
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect(),
    })
}

/// Embeds `pixels` with an Inception network in chunks, with a progress
/// bar: features, and logits if the network has a head.
fn inception_embed(
    net: &snn_metrics::Inception,
    pixels: &Pixels,
    resize: snn_metrics::Resize,
    what: &str,
) -> Result<snn_metrics::Embedding> {
    let per: usize = pixels.shape.iter().product();
    let bar = crate::progress_bar(pixels.len(), what.to_string());
    let mut out = snn_metrics::Embedding {
        features: Vec::with_capacity(pixels.len() * snn_metrics::inception::FEATURES),
        logits: net.classes().map(|k| Vec::with_capacity(pixels.len() * k)),
    };
    for chunk in pixels.data.chunks(8 * per) {
        let e = net.embed(chunk, pixels.shape, resize)?;
        out.features.extend(e.features);
        if let (Some(all), Some(l)) = (&mut out.logits, e.logits) {
            all.extend(l);
        }
        bar.inc((chunk.len() / per) as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Loads Inception weights, with the fetch hint when the file is absent.
fn load_inception(weights: &Path) -> Result<snn_metrics::Inception> {
    if !weights.exists() {
        return Err(Error::data(
            weights,
            "no Inception weights here; run scripts/fetch-data.sh inception (FID network) or \
             convert a torchvision-layout .pth with tools/torch_to_safetensors.py",
        ));
    }
    snn_metrics::Inception::load(weights)
}

/// What an Inception network is, for the output lines.
fn describe(net: &snn_metrics::Inception, weights: &Path, resize: snn_metrics::Resize) -> String {
    let graph = match net.graph() {
        snn_metrics::Graph::Fid2015 => "TF 2015-12-05 FID graph",
        snn_metrics::Graph::Torchvision => "torchvision ImageNet graph",
    };
    format!(
        "Inception-v3 ({graph}) {}, {} resize to 299",
        weights.display(),
        resize.name()
    )
}

/// Loads Inception-v3 weights for IS: they must include the classifier.
pub fn load_is_network(weights: &Path) -> Result<snn_metrics::Inception> {
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

/// Inception Score from Inception-v3 ImageNet logits (softmax over the
/// head's classes, 10 splits); `net` from [`load_is_network`].
pub fn inception_is(
    net: &snn_metrics::Inception,
    weights: &Path,
    samples: &Pixels,
    resize: snn_metrics::Resize,
) -> Result<Score> {
    let t0 = std::time::Instant::now();
    let Some(k) = net.classes() else {
        return Err(Error::invalid(
            "is",
            "the Inception network has no classifier head",
        ));
    };
    let logits = inception_embed(net, samples, resize, "samples")?
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
    let network = format!("{} ({k} classes{bias})", describe(net, weights, resize));
    is_score(&probs, k, network, t0)
}

/// FID of `samples` against the test split of `dataset` (read from
/// `root`), with the reference statistics cached beside the weights per
/// dataset, resize protocol and image count.
pub fn fid(
    weights: &Path,
    samples: &Pixels,
    dataset: &str,
    root: &Path,
    reference_limit: usize,
    resize: snn_metrics::Resize,
) -> Result<Score> {
    let t0 = std::time::Instant::now();
    let net = load_inception(weights)?;
    let reference_pixels = dataset_pixels(dataset, root, reference_limit)?;
    // One cache per network file, dataset, resize protocol and image count.
    let dir = weights.parent().unwrap_or(Path::new("."));
    let stem = weights
        .file_stem()
        .map_or("weights".into(), |s| s.to_string_lossy());
    let cache = dir.join(format!(
        "reference-{stem}-{dataset}-{}-{}.safetensors",
        resize.name(),
        reference_pixels.len()
    ));
    let reference = match Gaussian::load(&cache) {
        Ok((g, _)) => g,
        Err(_) => {
            let feats = inception_embed(&net, &reference_pixels, resize, "reference")?.features;
            let g = Gaussian::fit(&feats, snn_metrics::inception::FEATURES)?;
            let about = format!(
                "{dataset} test set from {}, {} images, {} resize",
                root.display(),
                reference_pixels.len(),
                resize.name()
            );
            g.save(&cache, &about)?;
            g
        }
    };
    let feats = inception_embed(&net, samples, resize, "samples")?.features;
    let g = Gaussian::fit(&feats, snn_metrics::inception::FEATURES)?;
    Ok(Score {
        metric: "fid".into(),
        value: frechet_distance(&g, &reference)?,
        std: None,
        network: describe(&net, weights, resize),
        samples: samples.len(),
        reference: Some(reference.count),
        seconds: t0.elapsed().as_secs_f64(),
    })
}
