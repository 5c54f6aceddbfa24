//! FAD: the Frechet distance of autoencoder latents. By default for MNIST
//! and Fashion-MNIST, the FSVAE authors' own network and test-set
//! statistics (`data/fsvae-fad`), run as their code runs it; otherwise (and
//! for CIFAR-10 / CelebA, whose authors' weights are not available here) an
//! autoencoder trained with this project (`--fad-model RUN`).

use super::{Pixels, Score};
use crate::generate::Trained;
use snn_core::dfdx::prelude::*;
use snn_core::spec::Forward;
use snn_core::{init, Error, Result};
use snn_metrics::fad::{BatchNorm, FadEncoder, FAD_BATCH};
use snn_metrics::{frechet_distance, Gaussian};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Folder of the committed FSVAE FAD files.
pub const FAD_DIR: &str = "data/fsvae-fad";

/// The authors' network and reference for a dataset, where they exist:
/// `(weights, statistics)` under `dir`.
pub fn paper_files(dataset: &str, dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let name = match dataset {
        "mnist" => "mnist",
        "fmnist" => "fashion",
        _ => return None,
    };
    Some((
        dir.join(format!("{name}_64.safetensors")),
        dir.join(format!("{name}_test_64.npz")),
    ))
}

/// The FSVAE authors' FAD encoder with the reference it is compared with.
pub struct PaperFad {
    pub encoder: FadEncoder,
    pub reference: Gaussian,
    pub reference_path: PathBuf,
    pub bn: BatchNorm,
}

impl PaperFad {
    /// Loads both files; the reference must be in the encoder's latent.
    pub fn load(weights: &Path, reference: &Path, bn: BatchNorm) -> Result<Self> {
        if !weights.exists() {
            return Err(Error::data(
                weights,
                "no FAD network here; run scripts/fetch-data.sh fad (or pass --fad-network FILE)",
            ));
        }
        let encoder = FadEncoder::load(weights)?;
        let g = Gaussian::load_npz(reference)?;
        if g.dim() != encoder.latent() {
            return Err(Error::data(
                reference,
                format!(
                    "statistics of a {}-d latent; the FAD network {} has latent {}",
                    g.dim(),
                    weights.display(),
                    encoder.latent()
                ),
            ));
        }
        Ok(Self {
            encoder,
            reference: g,
            reference_path: reference.to_path_buf(),
            bn,
        })
    }

    /// FAD of `samples` (pixel values 0..255), fed as the FSVAE code feeds
    /// generator output: `2 p / 255 - 1`, 32x32 (other sizes resized with
    /// Pillow's bilinear filter first), in batches of 256.
    pub fn score(&self, samples: &Pixels) -> Result<Score> {
        let t0 = std::time::Instant::now();
        let [c, side, _] = self.encoder.input_shape();
        if samples.shape[0] != c {
            return Err(Error::shape(
                "FAD samples",
                format!(
                    "{} channels; the FAD network {} takes {c}",
                    samples.shape[0],
                    self.encoder.path().display()
                ),
            ));
        }
        let resized = samples.resized(side);
        let values: Vec<f32> = resized.data.iter().map(|p| p / 127.5 - 1.0).collect();
        let z = self.encoder.embed(&values, FAD_BATCH, self.bn)?;
        let g = Gaussian::fit(&z, self.encoder.latent())?;
        Ok(Score {
            metric: "fad".into(),
            value: frechet_distance(&g, &self.reference)?,
            std: None,
            network: format!(
                "FSVAE authors' autoencoder {} (latent {}, {})",
                self.encoder.path().display(),
                self.encoder.latent(),
                self.bn.name()
            ),
            protocol: format!("FSVAE code: batches of {FAD_BATCH}, [-1, 1], no quantisation"),
            samples: samples.len(),
            reference: Some(format!("statistics {}", self.reference_path.display())),
            seconds: t0.elapsed().as_secs_f64(),
        })
    }
}

impl Trained {
    /// `pixels` (values 0..255) as this network's input values
    /// `[n * C * H * W]`: brought to its size as its data pipeline does
    /// (Pillow bilinear where `data.resize = "bilinear"` and the side
    /// differs; otherwise centre-cropped or zero-padded), grey replicated
    /// or RGB averaged, scaled to its range.
    pub fn input_from_pixels(&self, pixels: &Pixels) -> Vec<f32> {
        let [c, h, w] = self.shape;
        let resized;
        let mut pixels = pixels;
        let data = &self.cfg.data;
        if data.image_size > 0
            && data.resize == snn_data::config::ImageResize::Bilinear
            && h == w
            && pixels.shape[1] != h
            && matches!(data.dataset.as_str(), "mnist" | "fmnist" | "folder")
        {
            resized = pixels.resized(h);
            pixels = &resized;
        }
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
                            let at = |k: usize| img[(k * sh + sy as usize) * sw + sx as usize];
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

/// FAD of `samples` against the test set of an autoencoder trained here
/// (`configs/ae-*.toml`): not the paper's network, so its values are
/// comparable only between models scored with the same autoencoder.
pub fn own_fad(model: &Trained, samples: &Pixels) -> Result<Score> {
    let t0 = std::time::Instant::now();
    let reference = model.reference_gaussian()?;
    let (feats, dim) = model.features(&model.input_from_pixels(samples), true, "samples")?;
    let g = Gaussian::fit(&feats, dim)?;
    let why = match model.cfg.data.dataset.as_str() {
        "mnist" | "fmnist" => "not the paper's network",
        _ => {
            "not the paper's network: the FSVAE authors' latent-128 weights are not available here"
        }
    };
    Ok(Score {
        metric: "fad".into(),
        value: frechet_distance(&g, &reference)?,
        std: None,
        network: format!(
            "own autoencoder {} (latent {dim}, running-statistics BN; {why})",
            model.params.display()
        ),
        protocol: "model's own input pipeline, batches of 250".into(),
        samples: samples.len(),
        reference: Some(format!(
            "{} test split ({} images) in that latent",
            model.cfg.data.dataset, reference.count
        )),
        seconds: t0.elapsed().as_secs_f64(),
    })
}
