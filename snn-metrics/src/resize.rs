//! Bringing an image plane to the Inception network's 299x299 input, by
//! one of three documented protocols.

use snn_core::{Error, Result};

/// How images are brought to 299x299.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Resize {
    /// PyTorch `F.interpolate(mode="bilinear", align_corners=False)`, no
    /// antialiasing, on pixel values 0..255: pytorch-fid's protocol.
    Bilinear,
    /// PIL `Image.resize(BICUBIC)` of each channel as a float (`F` mode)
    /// image, clipped to [0, 255]: clean-fid's "clean" protocol.
    Bicubic,
    /// PyTorch `F.interpolate(mode="nearest")`: source pixel
    /// `floor(dst * in / out)`.
    Nearest,
}

impl Resize {
    /// The name the CLI and cache files use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bilinear => "bilinear",
            Self::Bicubic => "bicubic",
            Self::Nearest => "nearest",
        }
    }
}

impl std::str::FromStr for Resize {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bilinear" => Ok(Self::Bilinear),
            "bicubic" | "clean" => Ok(Self::Bicubic),
            "nearest" => Ok(Self::Nearest),
            other => Err(Error::invalid(
                "resize",
                format!(
                    "unknown `{other}`; accepted: bilinear (pytorch-fid), bicubic (clean-fid), nearest"
                ),
            )),
        }
    }
}

/// One channel `[h, w]` of bytes resized to `[side, side]` floats in
/// [0, 255].
pub fn resize_plane(src: &[u8], h: usize, w: usize, side: usize, resize: Resize) -> Vec<f32> {
    match resize {
        Resize::Bicubic => {
            let plane: Vec<f32> = src.iter().map(|&p| p as f32).collect();
            let mut out = pil_bicubic(&plane, h, w, side, side);
            out.iter_mut().for_each(|v| *v = v.clamp(0.0, 255.0));
            out
        }
        Resize::Bilinear | Resize::Nearest => {
            let mut out = vec![0.0f32; side * side];
            let at = |y: usize, x: usize| src[y * w + x] as f32;
            // Source coordinate of a destination index (align_corners = False).
            let coord = |d: usize, n_in: usize| -> (usize, usize, f32) {
                let s = ((d as f32 + 0.5) * n_in as f32 / side as f32 - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, s - i0 as f32)
            };
            for y in 0..side {
                for x in 0..side {
                    out[y * side + x] = if resize == Resize::Nearest {
                        at((y * h / side).min(h - 1), (x * w / side).min(w - 1))
                    } else {
                        let (y0, y1, fy) = coord(y, h);
                        let (x0, x1, fx) = coord(x, w);
                        let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                        let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                        top * (1.0 - fy) + bottom * fy
                    };
                }
            }
            out
        }
    }
}

/// PIL's bicubic kernel (`a = -0.5`, support 2).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// PIL's resampling weights (`precompute_coeffs` in Resample.c): for each
/// output index, the first input index and the normalised weights. When
/// shrinking, the kernel stretches by the scale (antialiasing).
fn pil_coefficients(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = n_in as f64 / n_out as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..n_out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            // C's `(int)` truncates toward zero, then clamps.
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
            let mut k: Vec<f64> = (lo..hi)
                .map(|i| bicubic((i as f64 - center + 0.5) / filter_scale))
                .collect();
            let sum: f64 = k.iter().sum();
            if sum != 0.0 {
                k.iter_mut().for_each(|v| *v /= sum);
            }
            (lo, k)
        })
        .collect()
}

/// PIL `Image.resize((out_w, out_h), BICUBIC)` of a float (`F` mode)
/// image: horizontal pass then vertical, each summing in f64 and storing
/// f32, as Resample.c does.
pub fn pil_bicubic(src: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let kx = pil_coefficients(w, out_w);
    let mut wide = vec![0.0f32; h * out_w];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for (x, (lo, k)) in kx.iter().enumerate() {
            let s: f64 = k.iter().zip(&row[*lo..]).map(|(c, v)| c * *v as f64).sum();
            wide[y * out_w + x] = s as f32;
        }
    }
    let ky = pil_coefficients(h, out_h);
    let mut out = vec![0.0f32; out_h * out_w];
    for (y, (lo, k)) in ky.iter().enumerate() {
        for x in 0..out_w {
            let s: f64 = k
                .iter()
                .enumerate()
                .map(|(j, c)| c * wide[(lo + j) * out_w + x] as f64)
                .sum();
            out[y * out_w + x] = s as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_kernel_matches_its_formula() {
        assert_eq!(bicubic(0.0), 1.0);
        assert_eq!(bicubic(1.0), 0.0);
        assert_eq!(bicubic(2.0), 0.0);
        // a = -0.5: 1.5 |x|^3 - 2.5 |x|^2 + 1 at 0.5; -0.5(|x|^3 - 5|x|^2 + 8|x| - 4) at 1.5.
        assert_eq!(bicubic(0.5), 0.5625);
        assert_eq!(bicubic(-1.5), -0.0625);
    }

    #[test]
    fn upscaling_by_two_matches_pillow() {
        // 2 -> 4: output 0's centre is at input coordinate 0.25, pixel
        // centres at 0.5 and 1.5, so weights bicubic(0.25) and
        // bicubic(1.25), normalised (pixel -1 is outside).
        let k = pil_coefficients(2, 4);
        let (w0, w1) = (bicubic(0.25), bicubic(1.25));
        assert_eq!(k[0].0, 0);
        assert!((k[0].1[0] - w0 / (w0 + w1)).abs() < 1e-15);
        assert!((k[0].1[1] - w1 / (w0 + w1)).abs() < 1e-15);
        // Pillow 13, `Image.fromarray(a, mode="F").resize((4, 4), BICUBIC)`
        // of [[0, 255], [255, 0]]: first row and diagonal.
        let out = pil_bicubic(&[0.0, 255.0, 255.0, 0.0], 2, 2, 4, 4);
        let pillow = [-48.97059, 39.64286, 215.35715, 303.97058];
        for (v, p) in out[..4].iter().zip(pillow) {
            assert!((v - p).abs() < 1e-4, "{v} vs {p}");
        }
        assert!((out[5] - 83.7597).abs() < 1e-4);
        // A constant image stays constant; weights always sum to 1.
        let flat = pil_bicubic(&[7.0; 6], 2, 3, 5, 8);
        assert!(flat.iter().all(|v| (v - 7.0).abs() < 1e-5));
    }
}
