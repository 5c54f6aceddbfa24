//! Using a trained run: load its config and parameters, draw samples from a
//! generative model, reconstruct test images, and write images as PNGs
//! (one file per image, or a grid).

use crate::checkpoint::{Checkpoint, CONFIG_FILE};
use crate::config::RunConfig;
use crate::session::{build_model, BEST_PARAMS};
use image::{ImageBuffer, Luma, Rgb, RgbImage};
use snn_core::dfdx::prelude::*;
use snn_core::init;
use snn_core::spec::{Forward, Generator, Model};
use snn_core::{device, fsutil, Dev, Error, ParamStore, Result};
use snn_data::{Dataset, Split};
use std::path::{Path, PathBuf};

/// A run loaded for inference.
pub struct Trained {
    pub cfg: RunConfig,
    /// The parameter file that was loaded.
    pub params: PathBuf,
    pub dev: Dev,
    pub store: ParamStore,
    pub model: Box<dyn Model>,
    /// `[C, H, W]` of the model's images.
    pub shape: [usize; 3],
    /// Per-channel (mean, std) the training data was normalised with.
    pub normalization: Option<Vec<(f32, f32)>>,
}

impl Trained {
    /// Loads a run folder (its `best.safetensors`) or a parameter file
    /// inside one, with the folder's `config.toml` and `state.json`. The
    /// image shape comes from the config's dataset (read only where the
    /// format does not fix it).
    pub fn load(checkpoint: &Path) -> Result<Self> {
        Self::load_with(checkpoint, &[])
    }

    /// [`Trained::load`] with `key.path=value` overrides (as from `--set`)
    /// applied to the run's config: evaluation settings such as
    /// `train.eval_batch_size`, `data.test_limit` or `time_steps`. An
    /// override that changes a parameter's shape is refused by the
    /// parameter file's load, naming the tensor.
    pub fn load_with(checkpoint: &Path, sets: &[String]) -> Result<Self> {
        let (dir, params) = if checkpoint.is_dir() {
            (checkpoint.to_path_buf(), checkpoint.join(BEST_PARAMS))
        } else {
            let dir = checkpoint.parent().unwrap_or(Path::new(".")).to_path_buf();
            (dir, checkpoint.to_path_buf())
        };
        if !params.exists() {
            return Err(Error::Checkpoint {
                path: params,
                msg: "no such parameter file (is this a run folder of `snn train`?)".into(),
            });
        }
        let cfg = RunConfig::load_with_overrides(&dir.join(CONFIG_FILE), sets)?;
        let normalization = Checkpoint::load(&dir)?.and_then(|s| s.normalization);
        let (shape, classes) = snn_data::input_shape(&cfg.data)?;
        let dev = device::create(cfg.seed)?;
        let (mut store, model) = build_model(&cfg, shape, classes, &dev)?;
        store.load(&params)?;
        Ok(Self {
            cfg,
            params,
            dev,
            store,
            model,
            shape,
            normalization,
        })
    }

    fn generator(&self) -> Result<&dyn Generator> {
        self.model.generator().ok_or_else(|| {
            Error::invalid(
                "model",
                format!(
                    "{} holds a model that does not generate images (a classifier?)",
                    self.params.display()
                ),
            )
        })
    }

    /// `count` samples from the model's prior, in batches of `batch`,
    /// seeded by `seed`. Returns `[count * C * H * W]` pixel values in the
    /// model's range.
    pub fn sample(&self, count: usize, batch: usize, seed: u64) -> Result<Vec<f32>> {
        let g = self.generator()?;
        let mut rng = init::rng(seed);
        let mut out = Vec::new();
        let mut left = count;
        snn_core::grad::no_grad(|| -> Result<()> {
            while left > 0 {
                let b = left.min(batch.max(1));
                let mut fwd = Forward::new(&self.store, false, &mut rng);
                fwd.progress = 1.0;
                out.extend(g.sample(b, &mut fwd)?.retaped::<NoneTape>().as_vec());
                left -= b;
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Reconstructions of the first `count` images of `ds`.
    pub fn reconstruct(
        &self,
        ds: &Dataset,
        count: usize,
        seed: u64,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let g = self.generator()?;
        if ds.shape != self.shape {
            return Err(Error::shape(
                "reconstruction data",
                format!(
                    "images are {:?}, the model takes {:?}",
                    ds.shape, self.shape
                ),
            ));
        }
        let n = count.min(ds.len());
        let idx: Vec<usize> = (0..n).collect();
        let batch = ds.gather(&idx);
        let [c, h, w] = self.shape;
        let input = batch.images.clone();
        let mut rng = init::rng(seed);
        let recon = snn_core::grad::no_grad(|| -> Result<Vec<f32>> {
            let x = self
                .dev
                .tensor_from_vec(batch.images, (n, c, h, w))
                .traced(Gradients::leaky());
            let mut fwd = Forward::new(&self.store, false, &mut rng);
            Ok(g.reconstruct(x, &mut fwd)?.retaped::<NoneTape>().as_vec())
        })?;
        Ok((input, recon))
    }

    /// The test split the config names, prepared as in training.
    pub fn test_data(&self) -> Result<Dataset> {
        let mut ds = snn_data::load(&self.cfg.data, Split::Test)?;
        if let Some(stats) = &self.normalization {
            ds.normalize(stats);
        }
        Ok(ds)
    }

    /// Model-range values -> intensities in [0, 1], undoing the
    /// normalisation or the [-1, 1] scaling of the data config (clamped).
    pub fn to_unit(&self, values: &[f32]) -> Vec<f32> {
        let [c, h, w] = self.shape;
        let plane = h * w;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut v = *v;
                if let Some(stats) = &self.normalization {
                    let (mean, std) = stats[(i / plane) % c];
                    v = v * std + mean;
                }
                if self.cfg.data.symmetric {
                    v = (v + 1.0) / 2.0;
                }
                v.clamp(0.0, 1.0)
            })
            .collect()
    }

    /// Model-range values -> bytes in [0, 255] (what PNG files hold).
    pub fn to_pixels(&self, values: &[f32]) -> Vec<u8> {
        self.to_unit(values)
            .iter()
            .map(|v| (v * 255.0).round() as u8)
            .collect()
    }
}

/// Pixel bytes of images `[n, C, H, W]` (channel-planar) as RGB images.
pub fn to_images(pixels: &[u8], shape: [usize; 3]) -> Vec<RgbImage> {
    let [c, h, w] = shape;
    pixels
        .chunks(c * h * w)
        .map(|img| {
            ImageBuffer::from_fn(w as u32, h as u32, |x, y| {
                let at = |ch: usize| img[(ch.min(c - 1) * h + y as usize) * w + x as usize];
                Rgb([at(0), at(1), at(2)])
            })
        })
        .collect()
}

/// Lays images out row by row, `columns` per row, with a 2-pixel border.
pub fn grid(images: &[RgbImage], columns: usize) -> RgbImage {
    let columns = columns.max(1);
    let (w, h) = images.first().map_or((1, 1), |i| i.dimensions());
    let rows = images.len().div_ceil(columns).max(1) as u32;
    let pad = 2;
    let cols = columns as u32;
    let mut out = RgbImage::from_pixel(
        cols * (w + pad) + pad,
        rows * (h + pad) + pad,
        Rgb([128, 128, 128]),
    );
    for (i, img) in images.iter().enumerate() {
        let (r, c) = (i as u32 / cols, i as u32 % cols);
        image::imageops::replace(
            &mut out,
            img,
            (pad + c * (w + pad)) as i64,
            (pad + r * (h + pad)) as i64,
        );
    }
    out
}

/// Writes a PNG atomically; single-channel images are written as grey.
pub fn save_png(path: &Path, img: &RgbImage, grey: bool) -> Result<()> {
    let mut bytes = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut bytes);
    let result = if grey {
        let g: ImageBuffer<Luma<u8>, Vec<u8>> =
            ImageBuffer::from_fn(img.width(), img.height(), |x, y| {
                Luma([img.get_pixel(x, y)[0]])
            });
        g.write_with_encoder(enc)
    } else {
        img.write_with_encoder(enc)
    };
    result.map_err(|e| Error::data(path, format!("cannot encode PNG: {e}")))?;
    fsutil::atomic_write(path, &bytes)
}
