//! Datasets: images as `f32` in `[0, 1]` (or normalised), `[N, C, H, W]`
//! row-major, with `u8` labels.
//!
//! Every reader checks what it reads: a missing or truncated file, a wrong
//! magic number or mismatched counts is one error naming the file and what
//! was expected.

pub mod augment;
pub mod batches;
pub mod celeba;
pub mod cifar;
pub mod config;
pub mod folder;
pub mod idx;
pub mod kinds;
pub mod resample;

pub use batches::{Batch, BatchOrder};
pub use kinds::{input_shape, kind, DatasetKind, KINDS};

use crate::config::{DataConfig, ImageResize};
use snn_core::{Error, Result};
use std::path::{Path, PathBuf};

/// A labelled image set held in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `[N, C, H, W]` row-major.
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    /// `[C, H, W]` of one image.
    pub shape: [usize; 3],
    pub classes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Keeps the first `n` samples (`0` keeps all).
    pub fn truncate(&mut self, n: usize) {
        if n > 0 && n < self.len() {
            self.labels.truncate(n);
            self.images.truncate(n * self.image_len());
        }
    }

    /// Zero-pads every image to `size x size`, centred (MNIST's 28 -> 32 for
    /// FSVAE). Shrinking is an error: crop or resize at load time instead.
    pub fn pad_to(&mut self, size: usize) -> Result<()> {
        let [c, h, w] = self.shape;
        if h > size || w > size {
            return Err(Error::invalid(
                "data.image_size",
                format!("{size} is smaller than the images ({h}x{w}); padding cannot shrink"),
            ));
        }
        let (top, left) = ((size - h) / 2, (size - w) / 2);
        let mut out = vec![0.0f32; self.len() * c * size * size];
        for (i, img) in self.images.chunks_exact(c * h * w).enumerate() {
            for ch in 0..c {
                for y in 0..h {
                    let src = &img[(ch * h + y) * w..(ch * h + y + 1) * w];
                    let d = ((i * c + ch) * size + top + y) * size + left;
                    out[d..d + w].copy_from_slice(src);
                }
            }
        }
        self.images = out;
        self.shape = [c, size, size];
        Ok(())
    }

    /// Resizes every image to `size x size` with Pillow's bilinear filter on
    /// its 8-bit pixels (torchvision's `Resize((size, size))` of the PIL
    /// image, how the FSVAE code brings MNIST to 32x32). Values must be
    /// bytes / 255, as every reader here produces; the result is again.
    pub fn resize_bilinear(&mut self, size: usize) {
        let [c, h, w] = self.shape;
        let mut out = Vec::with_capacity(self.len() * c * size * size);
        for plane in self.images.chunks_exact(h * w) {
            let bytes: Vec<u8> = plane
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            let r = resample::resize_u8(&bytes, [h, w], [size, size], resample::Filter::Bilinear);
            out.extend(r.iter().map(|&b| b as f32 / 255.0));
        }
        self.images = out;
        self.shape = [c, size, size];
    }

    /// Per-channel mean and standard deviation.
    pub fn channel_stats(&self) -> Vec<(f32, f32)> {
        let [c, h, w] = self.shape;
        let plane = h * w;
        (0..c)
            .map(|ch| {
                let (mut s, mut s2, mut n) = (0.0f64, 0.0f64, 0usize);
                for img in self.images.chunks_exact(self.image_len()) {
                    for v in &img[ch * plane..(ch + 1) * plane] {
                        s += *v as f64;
                        s2 += (*v as f64) * (*v as f64);
                        n += 1;
                    }
                }
                let mean = s / n.max(1) as f64;
                let var = (s2 / n.max(1) as f64 - mean * mean).max(0.0);
                (mean as f32, var.sqrt().max(1e-6) as f32)
            })
            .collect()
    }

    /// Applies `(x - mean) / std` per channel.
    pub fn normalize(&mut self, stats: &[(f32, f32)]) {
        let [_, h, w] = self.shape;
        let plane = h * w;
        let len = self.image_len();
        for img in self.images.chunks_exact_mut(len) {
            for (ch, (m, s)) in stats.iter().enumerate() {
                for v in &mut img[ch * plane..(ch + 1) * plane] {
                    *v = (*v - m) / s;
                }
            }
        }
    }
}

/// Loads one split as the config describes, applying `*_limit`. Normalisation
/// is left to the caller (it must use the training split's statistics).
pub fn load(cfg: &DataConfig, split: Split) -> Result<Dataset> {
    let mut ds = kind(&cfg.dataset)?.read(cfg, split)?;
    ds.truncate(split_limit(cfg, split));
    if cfg.image_size > 0 && (ds.shape[1] != cfg.image_size || ds.shape[2] != cfg.image_size) {
        match cfg.resize {
            ImageResize::Pad => ds.pad_to(cfg.image_size)?,
            ImageResize::Bilinear => ds.resize_bilinear(cfg.image_size),
        }
    }
    if cfg.symmetric {
        for v in &mut ds.images {
            *v = *v * 2.0 - 1.0;
        }
    }
    Ok(ds)
}

/// How many images [`load`] would return for `split` (after `*_limit`),
/// read from headers, file sizes or file lists without decoding any image:
/// what the memory estimate charges for the data held in memory.
pub fn image_count(cfg: &DataConfig, split: Split) -> Result<usize> {
    let n = kind(&cfg.dataset)?.count(cfg, split)?;
    let limit = split_limit(cfg, split);
    Ok(if limit > 0 { n.min(limit) } else { n })
}

/// `data.train_limit` or `data.test_limit` for `split` (0 = all).
fn split_limit(cfg: &DataConfig, split: Split) -> usize {
    match split {
        Split::Train => cfg.train_limit,
        Split::Test => cfg.test_limit,
    }
}

/// `root/name` or `root/name.gz`, whichever exists.
fn find(root: &Path, name: &str) -> Result<PathBuf> {
    let plain = root.join(name);
    let gz = root.join(format!("{name}.gz"));
    if plain.is_file() {
        Ok(plain)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(Error::data(
            plain,
            format!("file not found (nor {name}.gz); run scripts/fetch-data.sh or set data.root"),
        ))
    }
}
