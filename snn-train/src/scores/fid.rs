//! FID: Inception-v3 pool3 features of the samples against the Gaussian of
//! a reference set, by default the paper's protocol (clean-fid's "clean"
//! mode against the test split prepared as the training images were).

use super::{load_inception, Pixels, Score};
use sha2::{Digest, Sha256};
use snn_core::{Error, Result};
use snn_data::config::{DataConfig, ImageResize};
use snn_metrics::{frechet_distance, Gaussian, Inception, Input, Resize};
use std::path::{Path, PathBuf};

/// Where the FID network and its reference statistics live by default.
pub const INCEPTION_WEIGHTS: &str = "data/inception/fid-inception.safetensors";

/// What FID compares the samples with.
#[derive(Clone, Debug, PartialEq)]
pub enum FidReference {
    /// The test split of a dataset, brought to the samples' size by the
    /// dataset pipeline (MNIST-like: Pillow bilinear, as the FSVAE code's
    /// `Resize((32, 32))`), at most `limit` images (0 = all).
    Dataset {
        name: String,
        root: PathBuf,
        limit: usize,
    },
    /// Every PNG of a folder.
    Folder(PathBuf),
    /// Precomputed statistics: a `.npz` with `mu` / `sigma` (clean-fid's
    /// and the FSVAE repository's format, e.g. `mnist_test_clean_custom_na.npz`).
    Stats(PathBuf),
}

impl FidReference {
    /// `--fid-reference`: a folder of images or a `.npz`; absent, the test
    /// split of `dataset` under `root`.
    pub fn from_arg(arg: Option<&Path>, dataset: &str, root: &Path, limit: usize) -> Result<Self> {
        match arg {
            None => Ok(Self::Dataset {
                name: dataset.to_string(),
                root: root.to_path_buf(),
                limit,
            }),
            Some(p) if p.is_dir() => Ok(Self::Folder(p.to_path_buf())),
            Some(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz")) => {
                if !p.is_file() {
                    return Err(Error::data(p, "no such statistics file"));
                }
                Ok(Self::Stats(p.to_path_buf()))
            }
            Some(p) => Err(Error::data(
                p,
                "FID reference must be a folder of PNG images or a .npz with `mu` and `sigma`",
            )),
        }
    }

    /// The reference images, at the samples' size where the reference is a
    /// dataset; `None` for precomputed statistics.
    fn pixels(&self, samples: [usize; 3]) -> Result<Option<(Pixels, String)>> {
        match self {
            Self::Stats(_) => Ok(None),
            Self::Folder(dir) => {
                let p = Pixels::load_folder(dir, 0)?;
                let about = format!("{} images of {}", p.len(), dir.display());
                Ok(Some((p, about)))
            }
            Self::Dataset { name, root, limit } => {
                let native = snn_data::load(
                    &DataConfig {
                        dataset: name.clone(),
                        root: root.clone(),
                        test_limit: 1,
                        ..Default::default()
                    },
                    snn_data::Split::Test,
                )?
                .shape;
                let side = samples[1];
                let resized = native[1] != side || native[2] != side;
                let cfg = DataConfig {
                    dataset: name.clone(),
                    root: root.clone(),
                    test_limit: *limit,
                    image_size: if resized || name == "celeba" { side } else { 0 },
                    resize: ImageResize::Bilinear,
                    ..Default::default()
                };
                let p = Pixels::from_dataset(&snn_data::load(&cfg, snn_data::Split::Test)?);
                let how = if resized && name != "celeba" {
                    format!(
                        ", Pillow-bilinear resized {}x{} -> {side}x{side}",
                        native[1], native[2]
                    )
                } else {
                    String::new()
                };
                let about = format!("{name} test split ({} images{how})", p.len());
                Ok(Some((p, about)))
            }
        }
    }
}

/// Embeds `pixels` with an Inception network in chunks, with a progress
/// bar: features, and logits if the network has a head.
pub fn inception_embed(
    net: &Inception,
    pixels: &Pixels,
    resize: Resize,
    input: Input,
    what: &str,
) -> Result<snn_metrics::Embedding> {
    let per: usize = pixels.shape.iter().product();
    let bar = crate::progress_bar(pixels.len(), what.to_string());
    let mut out = snn_metrics::Embedding {
        features: Vec::with_capacity(pixels.len() * snn_metrics::inception::FEATURES),
        logits: net.classes().map(|k| Vec::with_capacity(pixels.len() * k)),
    };
    for chunk in pixels.data.chunks(8 * per) {
        let e = net.embed(chunk, pixels.shape, resize, input)?;
        out.features.extend(e.features);
        if let (Some(all), Some(l)) = (&mut out.logits, e.logits) {
            all.extend(l);
        }
        bar.inc((chunk.len() / per) as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The protocol's name for output lines.
pub fn protocol(resize: Resize) -> &'static str {
    match resize {
        Resize::Bicubic => "clean (clean-fid: PIL bicubic of float images)",
        Resize::Bilinear => "pytorch-fid (bilinear, no antialiasing)",
        Resize::Nearest => "nearest",
    }
}

/// The reference Gaussian, from the statistics file or computed from the
/// reference images and cached beside the weights. The cache is keyed by
/// a hash of the reference images, the resize protocol and the weights
/// file, so other images never reuse another set's statistics.
fn reference_gaussian(
    net: &Inception,
    weights: &Path,
    reference: &FidReference,
    samples: [usize; 3],
    resize: Resize,
) -> Result<(Gaussian, String)> {
    if let FidReference::Stats(path) = reference {
        let g = Gaussian::load_npz(path)?;
        if g.dim() != snn_metrics::inception::FEATURES {
            return Err(Error::data(
                path,
                format!(
                    "statistics of {}-d features; the FID network gives {}",
                    g.dim(),
                    snn_metrics::inception::FEATURES
                ),
            ));
        }
        return Ok((g, format!("statistics {}", path.display())));
    }
    let Some((pixels, about)) = reference.pixels(samples)? else {
        return Err(Error::invalid("fid", "no reference images"));
    };
    let weights_len = std::fs::metadata(weights).map(|m| m.len()).unwrap_or(0);
    let mut key = Sha256::new();
    key.update(pixels.digest());
    key.update(resize.name());
    key.update(
        weights
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
            .as_bytes(),
    );
    key.update(weights_len.to_le_bytes());
    let key = format!("{:x}", key.finalize());
    let dir = weights.parent().unwrap_or(Path::new("."));
    let stem = weights
        .file_stem()
        .map_or("weights".into(), |s| s.to_string_lossy());
    let cache = dir.join(format!("reference-{stem}-{}.safetensors", &key[..16]));
    if let Ok((g, _)) = Gaussian::load(&cache) {
        return Ok((g, about));
    }
    let feats = inception_embed(net, &pixels, resize, Input::Native, "reference")?.features;
    let g = Gaussian::fit(&feats, snn_metrics::inception::FEATURES)?;
    g.save(
        &cache,
        &format!("{about}, {} resize, key {key}", resize.name()),
    )?;
    Ok((g, about))
}

/// FID of `samples` against `reference` with the Inception network in
/// `weights`, images resized to 299 by `resize`.
pub fn fid(
    weights: &Path,
    samples: &Pixels,
    reference: &FidReference,
    resize: Resize,
) -> Result<Score> {
    let t0 = std::time::Instant::now();
    let net = load_inception(weights)?;
    let (refg, about) = reference_gaussian(&net, weights, reference, samples.shape, resize)?;
    let feats = inception_embed(&net, samples, resize, Input::Native, "samples")?.features;
    let g = Gaussian::fit(&feats, snn_metrics::inception::FEATURES)?;
    Ok(Score {
        metric: "fid".into(),
        value: frechet_distance(&g, &refg)?,
        std: None,
        network: super::describe(&net, weights),
        protocol: protocol(resize).to_string(),
        samples: samples.len(),
        reference: Some(about),
        seconds: t0.elapsed().as_secs_f64(),
    })
}
