//! Images on their way to a scoring network: pixel values 0..255 as floats.
//!
//! Floats, not bytes, because the paper's protocol scores generated images
//! before any rounding: clean-fid resizes the generator's float output and
//! the FSVAE FAD feeds it straight to the autoencoder. Images read from PNG
//! files or a dataset are whole numbers here, and stay exactly what the
//! files hold.

use crate::generate::Trained;
use sha2::{Digest, Sha256};
use snn_core::{Error, Result};
use snn_data::resample::{self, Filter};
use std::path::Path;

/// Images `[n, C, H, W]`, channel-planar, values 0..255.
#[derive(Clone, Debug, PartialEq)]
pub struct Pixels {
    pub shape: [usize; 3],
    pub data: Vec<f32>,
}

impl Pixels {
    pub fn len(&self) -> usize {
        self.data.len() / self.shape.iter().product::<usize>().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The first `n` images (all where there are fewer).
    pub fn first(&self, n: usize) -> Self {
        let per: usize = self.shape.iter().product();
        Self {
            shape: self.shape,
            data: self.data[..n.min(self.len()) * per].to_vec(),
        }
    }

    /// Every value is a whole number in 0..255 (images from files).
    pub fn is_bytes(&self) -> bool {
        self.data
            .iter()
            .all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v))
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
                data.extend(img.to_luma8().into_raw().iter().map(|&b| b as f32));
            } else {
                let rgb = img.to_rgb8();
                for ch in 0..3 {
                    data.extend(rgb.pixels().map(|p| p.0[ch] as f32));
                }
            }
        }
        Ok(Self {
            shape: shape.unwrap_or([1, 1, 1]),
            data,
        })
    }

    /// A dataset's images (values in [0, 1], not normalised) as pixels.
    pub fn from_dataset(ds: &snn_data::Dataset) -> Self {
        Self {
            shape: ds.shape,
            data: ds
                .images
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round())
                .collect(),
        }
    }

    /// Every image resized to `side x side` with Pillow's bilinear filter:
    /// on bytes as an 8-bit image (the dataset pipeline's resize), on
    /// other values as a float image. Same size: unchanged.
    pub fn resized(&self, side: usize) -> Self {
        let [c, h, w] = self.shape;
        if h == side && w == side {
            return self.clone();
        }
        let bytes = self.is_bytes();
        let mut data = Vec::with_capacity(self.len() * c * side * side);
        for plane in self.data.chunks_exact(h * w) {
            if bytes {
                let b: Vec<u8> = plane.iter().map(|&v| v as u8).collect();
                let r = resample::resize_u8(&b, [h, w], [side, side], Filter::Bilinear);
                data.extend(r.iter().map(|&v| v as f32));
            } else {
                data.extend(resample::resize_float(
                    plane,
                    [h, w],
                    [side, side],
                    Filter::Bilinear,
                ));
            }
        }
        Self {
            shape: [c, side, side],
            data,
        }
    }

    /// SHA-256 (hex) of the shape and every value: what a cache of
    /// statistics computed from these images is keyed by.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for d in self.shape {
            h.update((d as u64).to_le_bytes());
        }
        for v in &self.data {
            h.update(v.to_le_bytes());
        }
        format!("{:x}", h.finalize())
    }
}

impl Trained {
    /// `count` samples drawn as [`Trained::sample`] draws them, as pixel
    /// values 0..255, not rounded (the paper's protocol scores the
    /// generator's float output).
    pub fn sample_pixels(&self, count: usize, batch: usize, seed: u64) -> Result<Pixels> {
        let values = self.sample(count, batch, seed)?;
        Ok(Pixels {
            shape: self.shape,
            data: self.to_unit(&values).iter().map(|v| v * 255.0).collect(),
        })
    }
}
