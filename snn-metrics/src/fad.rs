//! The FSVAE authors' FAD network: the encoder of their ANN autoencoder
//! (`shared/fsvae-fad/README.md`), inference only, run the way their
//! `metrics/autoencoder_fid.py` runs it.
//!
//! Four blocks of Conv2d(k3, s2, p1) -> BatchNorm2d -> LeakyReLU(0.01)
//! take a `[1, 32, 32]` image in [-1, 1] to `[256, 2, 2]`, flattened in
//! PyTorch's channels-first order, then `latent_layer` (Linear 1024 -> 64)
//! gives the FAD feature.
//!
//! Their code never calls `eval()` on this network, so every batch norm
//! normalises with the statistics of its own batch (biased variance, eps
//! 1e-5): a latent depends on the batch it was computed in, and their
//! reference statistics were made that way, in batches of 256
//! ([`BatchNorm::Batch`], [`FAD_BATCH`]). The stored running statistics are
//! kept for [`BatchNorm::Running`] (eval mode), which scores the real test
//! set 0.59 instead of 0 against their reference.

use crate::conv::{Act, Conv};
use snn_core::gemm::{matmul, Op};
use snn_core::{params, Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Images per batch in the FSVAE code's FAD (`batch_size = 256`).
pub const FAD_BATCH: usize = 256;
/// Samples the FSVAE code scores: ceil(5000 / 256) batches of 256.
pub const FAD_SAMPLES: usize = 20 * FAD_BATCH;
const BN_EPS: f64 = 1e-5;
const SLOPE: f32 = 0.01;

/// Which statistics the encoder's batch norms normalise with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchNorm {
    /// Each batch's own mean and biased variance (train mode): what the
    /// FSVAE code does, and how its references were made.
    Batch,
    /// The stored running statistics (eval mode).
    Running,
}

impl BatchNorm {
    pub fn name(self) -> &'static str {
        match self {
            Self::Batch => "batch-statistics BN",
            Self::Running => "running-statistics BN",
        }
    }
}

impl std::str::FromStr for BatchNorm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "batch" => Ok(Self::Batch),
            "running" | "eval" => Ok(Self::Running),
            other => Err(Error::invalid(
                "fad-bn",
                format!("unknown `{other}`; accepted: batch (the FSVAE code), running (eval mode)"),
            )),
        }
    }
}

/// Conv -> BN -> LeakyReLU.
#[derive(Debug)]
struct Block {
    conv: Conv,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
}

impl Block {
    fn forward(&self, x: &Act, bn: BatchNorm) -> Act {
        let mut y = self.conv.forward(x);
        let c = y.c;
        let (mean, var): (Vec<f64>, Vec<f64>) = match bn {
            BatchNorm::Running => (
                self.mean.iter().map(|&v| v as f64).collect(),
                self.var.iter().map(|&v| v as f64).collect(),
            ),
            BatchNorm::Batch => {
                let count = (y.data.len() / c).max(1) as f64;
                let mut sum = vec![0.0f64; c];
                for row in y.data.chunks_exact(c) {
                    row.iter().zip(&mut sum).for_each(|(v, s)| *s += *v as f64);
                }
                let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
                let mut sq = vec![0.0f64; c];
                for row in y.data.chunks_exact(c) {
                    for ((v, m), s) in row.iter().zip(&mean).zip(&mut sq) {
                        let d = *v as f64 - m;
                        *s += d * d;
                    }
                }
                (mean, sq.iter().map(|s| s / count).collect())
            }
        };
        let scale: Vec<f64> = (0..c)
            .map(|i| self.gamma[i] as f64 / (var[i] + BN_EPS).sqrt())
            .collect();
        for row in y.data.chunks_exact_mut(c) {
            for (i, v) in row.iter_mut().enumerate() {
                let z = ((*v as f64 - mean[i]) * scale[i] + self.beta[i] as f64) as f32;
                *v = if z >= 0.0 { z } else { z * SLOPE };
            }
        }
        y
    }
}

/// The encoder of the FSVAE FAD autoencoder.
#[derive(Debug)]
pub struct FadEncoder {
    blocks: Vec<Block>,
    /// `[latent, features]`, columns in channels-last order (the layout of
    /// [`Act`]); the file's are channels-first.
    latent_w: Vec<f32>,
    latent_b: Vec<f32>,
    channels: usize,
    side: usize,
    path: PathBuf,
}

impl FadEncoder {
    /// Loads the encoder from a safetensors conversion of the authors'
    /// state dict (`tools/torch_to_safetensors.py`; the decoder's tensors
    /// may be present or left out).
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, _) = params::read_safetensors(path)?;
        let by_name: HashMap<&str, (&[usize], &[f32])> = tensors
            .iter()
            .map(|(n, s, d)| (n.as_str(), (s.as_slice(), d.as_slice())))
            .collect();
        let get = |name: &str, shape: &[Option<usize>]| -> Result<(&[usize], &[f32])> {
            let (s, d) = by_name.get(name).copied().ok_or_else(|| {
                Error::data(
                    path,
                    format!(
                        "missing tensor `{name}` (expected the FSVAE FAD autoencoder's state dict: \
                         encoder.{{0..3}}.{{0,1}}.*, latent_layer.*)"
                    ),
                )
            })?;
            let fits = s.len() == shape.len()
                && s.iter().zip(shape).all(|(a, b)| b.is_none_or(|b| *a == b));
            if !fits {
                let want: Vec<String> = shape
                    .iter()
                    .map(|d| d.map_or("_".into(), |d| d.to_string()))
                    .collect();
                return Err(Error::data(
                    path,
                    format!("`{name}` is {s:?}, expected [{}]", want.join(", ")),
                ));
            }
            Ok((s, d))
        };
        let mut blocks = Vec::new();
        let mut cin = None;
        let mut channels = 0;
        while by_name.contains_key(format!("encoder.{}.0.weight", blocks.len()).as_str()) {
            let i = blocks.len();
            let (ws, w) = get(
                &format!("encoder.{i}.0.weight"),
                &[None, cin, Some(3), Some(3)],
            )?;
            let o = ws[0];
            if i == 0 {
                channels = ws[1];
            }
            let vec = |p: &str| -> Result<Vec<f32>> {
                Ok(get(&format!("encoder.{i}.{p}"), &[Some(o)])?.1.to_vec())
            };
            let bias = vec("0.bias")?;
            blocks.push(Block {
                conv: Conv::new([o, ws[1], 3, 3], w, &bias, 2, [1, 1]),
                gamma: vec("1.weight")?,
                beta: vec("1.bias")?,
                mean: vec("1.running_mean")?,
                var: vec("1.running_var")?,
            });
            cin = Some(o);
        }
        if blocks.is_empty() {
            get("encoder.0.0.weight", &[None, None, Some(3), Some(3)])?;
        }
        let last = cin.unwrap_or(1);
        // Four stride-2 blocks end at 2x2 in the authors' network: the
        // latent layer's width fixes the final map, and so the input side.
        let (lws, lw) = get("latent_layer.weight", &[None, None])?;
        let (latent, width) = (lws[0], lws[1]);
        let cells = width / last;
        let end = (cells as f64).sqrt() as usize;
        if cells * last != width || end * end != cells {
            return Err(Error::data(
                path,
                format!("`latent_layer.weight` takes {width} inputs, not {last} channels of a square map"),
            ));
        }
        let latent_b = get("latent_layer.bias", &[Some(latent)])?.1.to_vec();
        // PyTorch flattens [C, h, w]; activations here are [h, w, C].
        let mut latent_w = vec![0.0f32; latent * width];
        for j in 0..latent {
            for c in 0..last {
                for p in 0..cells {
                    latent_w[j * width + p * last + c] = lw[j * width + c * cells + p];
                }
            }
        }
        Ok(Self {
            side: end << blocks.len(),
            blocks,
            latent_w,
            latent_b,
            channels,
            path: path.to_path_buf(),
        })
    }

    /// Latent size (the FAD feature dimension).
    pub fn latent(&self) -> usize {
        self.latent_b.len()
    }

    /// `[C, H, W]` of the images it takes.
    pub fn input_shape(&self) -> [usize; 3] {
        [self.channels, self.side, self.side]
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Latents `[n, latent]` of images `[n, C, H, W]` (channel-planar,
    /// values in [-1, 1]), encoded in consecutive batches of `batch` (the
    /// last may be smaller), each normalised as `bn` says.
    pub fn embed(&self, images: &[f32], batch: usize, bn: BatchNorm) -> Result<Vec<f32>> {
        let [c, h, w] = self.input_shape();
        let per = c * h * w;
        if !images.len().is_multiple_of(per) {
            return Err(Error::shape(
                "FAD input",
                format!("{} values are not images of {:?}", images.len(), [c, h, w]),
            ));
        }
        let mut out = Vec::with_capacity(images.len() / per * self.latent());
        for chunk in images.chunks(batch.max(1) * per) {
            out.extend(self.encode(chunk, bn));
        }
        Ok(out)
    }

    /// One batch through the encoder.
    fn encode(&self, images: &[f32], bn: BatchNorm) -> Vec<f32> {
        let [c, h, w] = self.input_shape();
        let n = images.len() / (c * h * w);
        let mut data = Vec::with_capacity(images.len());
        for img in images.chunks_exact(c * h * w) {
            for px in 0..h * w {
                data.extend((0..c).map(|ch| img[ch * h * w + px]));
            }
        }
        let mut x = Act { n, h, w, c, data };
        for b in &self.blocks {
            x = b.forward(&x, bn);
        }
        let (latent, width) = (self.latent(), self.latent_w.len() / self.latent());
        let mut z = vec![0.0f32; n * latent];
        snn_core::dense_work::record(n * latent * width);
        matmul(
            [n, latent, width],
            Op::N(&x.data),
            Op::T(&self.latent_w),
            &mut z,
            false,
        );
        for row in z.chunks_exact_mut(latent) {
            row.iter_mut()
                .zip(&self.latent_b)
                .for_each(|(v, b)| *v += b);
        }
        z
    }
}
