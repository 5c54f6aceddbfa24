//! Image resampling exactly as Pillow's `Image.resize` computes it
//! (`libImaging/Resample.c`), because the paper's code prepares its data and
//! its metric inputs with Pillow: torchvision's `Resize((32, 32))` on an
//! 8-bit MNIST digit is PIL's bilinear resize, and clean-fid's "clean" FID
//! protocol is PIL's bicubic resize of a float image.
//!
//! Both passes (horizontal, then vertical) use Pillow's weights: the kernel
//! is centred on `(o + 0.5) * scale`, stretched by the scale when shrinking
//! (antialiasing), cut at the image border and normalised to sum 1 there.
//! Float images sum in f64 and store f32 between passes; 8-bit images use
//! Pillow's 22-bit fixed-point weights and round to bytes after each pass.

/// Pillow's resampling filters used by the project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Triangle kernel, support 1 (`Image.BILINEAR`).
    Bilinear,
    /// Keys cubic with `a = -0.5`, support 2 (`Image.BICUBIC`).
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    /// The kernel's value at distance `x` (in input pixels, unscaled).
    pub fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Self::Bilinear => (1.0 - x).max(0.0),
            Self::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// Pillow's `precompute_coeffs`: for each output index, the first input
/// index it reads and its normalised weights.
pub fn coefficients(n_in: usize, n_out: usize, filter: Filter) -> Vec<(usize, Vec<f64>)> {
    let scale = n_in as f64 / n_out as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..n_out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            // C's `(int)` truncates toward zero, then clamps.
            let lo = ((center - support + 0.5) as i64).max(0) as usize;
            let hi = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
            let mut k: Vec<f64> = (lo..hi)
                .map(|i| filter.weight((i as f64 - center + 0.5) / filter_scale))
                .collect();
            let sum: f64 = k.iter().sum();
            if sum != 0.0 {
                k.iter_mut().for_each(|v| *v /= sum);
            }
            (lo, k)
        })
        .collect()
}

/// `Image.fromarray(plane, mode="F").resize((out_w, out_h), filter)`: a
/// float plane `[h, w]` to `[out_h, out_w]`, f64 sums, f32 between passes,
/// no clipping.
pub fn resize_float(
    src: &[f32],
    [h, w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
    filter: Filter,
) -> Vec<f32> {
    let kx = coefficients(w, out_w, filter);
    let mut wide = vec![0.0f32; h * out_w];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for (x, (lo, k)) in kx.iter().enumerate() {
            let s: f64 = k.iter().zip(&row[*lo..]).map(|(c, v)| c * *v as f64).sum();
            wide[y * out_w + x] = s as f32;
        }
    }
    let ky = coefficients(h, out_h, filter);
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

/// Fixed-point precision of Pillow's 8-bit resampling (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Weights as Pillow's `normalize_coeffs_8bpp` rounds them.
fn fixed_point(k: &[f64]) -> Vec<i64> {
    let one = (1i64 << PRECISION_BITS) as f64;
    k.iter()
        .map(|&v| {
            if v < 0.0 {
                (-0.5 + v * one) as i64
            } else {
                (0.5 + v * one) as i64
            }
        })
        .collect()
}

/// One output byte of a fixed-point sum, as Pillow's `clip8`.
fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `Image.fromarray(plane, mode="L").resize((out_w, out_h), filter)`: an
/// 8-bit plane `[h, w]` to `[out_h, out_w]` bytes. A pass whose size does
/// not change is skipped, as Pillow skips it.
pub fn resize_u8(
    src: &[u8],
    [h, w]: [usize; 2],
    [out_h, out_w]: [usize; 2],
    filter: Filter,
) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    let wide = if out_w == w {
        src[..h * w].to_vec()
    } else {
        let kx: Vec<(usize, Vec<i64>)> = coefficients(w, out_w, filter)
            .into_iter()
            .map(|(lo, k)| (lo, fixed_point(&k)))
            .collect();
        let mut wide = vec![0u8; h * out_w];
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            for (x, (lo, k)) in kx.iter().enumerate() {
                let s: i64 = k.iter().zip(&row[*lo..]).map(|(c, v)| c * *v as i64).sum();
                wide[y * out_w + x] = clip8(half + s);
            }
        }
        wide
    };
    if out_h == h {
        return wide;
    }
    let ky: Vec<(usize, Vec<i64>)> = coefficients(h, out_h, filter)
        .into_iter()
        .map(|(lo, k)| (lo, fixed_point(&k)))
        .collect();
    let mut out = vec![0u8; out_h * out_w];
    for (y, (lo, k)) in ky.iter().enumerate() {
        for x in 0..out_w {
            let s: i64 = k
                .iter()
                .enumerate()
                .map(|(j, c)| c * wide[(lo + j) * out_w + x] as i64)
                .sum();
            out[y * out_w + x] = clip8(half + s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_their_formulas() {
        let b = Filter::Bicubic;
        assert_eq!(b.weight(0.0), 1.0);
        assert_eq!(b.weight(1.0), 0.0);
        assert_eq!(b.weight(2.0), 0.0);
        // a = -0.5: 1.5 |x|^3 - 2.5 |x|^2 + 1 at 0.5; -0.5(|x|^3 - 5|x|^2 + 8|x| - 4) at 1.5.
        assert_eq!(b.weight(0.5), 0.5625);
        assert_eq!(b.weight(-1.5), -0.0625);
        let l = Filter::Bilinear;
        assert_eq!(l.weight(0.25), 0.75);
        assert_eq!(l.weight(-0.75), 0.25);
        assert_eq!(l.weight(1.5), 0.0);
    }

    #[test]
    fn bicubic_upscaling_by_two_matches_pillow() {
        // 2 -> 4: output 0's centre is at input coordinate 0.25, pixel
        // centres at 0.5 and 1.5, so weights bicubic(0.25) and
        // bicubic(1.25), normalised (pixel -1 is outside).
        let f = Filter::Bicubic;
        let k = coefficients(2, 4, f);
        let (w0, w1) = (f.weight(0.25), f.weight(1.25));
        assert_eq!(k[0].0, 0);
        assert!((k[0].1[0] - w0 / (w0 + w1)).abs() < 1e-15);
        assert!((k[0].1[1] - w1 / (w0 + w1)).abs() < 1e-15);
        // Pillow 13, `Image.fromarray(a, mode="F").resize((4, 4), BICUBIC)`
        // of [[0, 255], [255, 0]]: first row and diagonal.
        let out = resize_float(&[0.0, 255.0, 255.0, 0.0], [2, 2], [4, 4], f);
        let pillow = [-48.97059, 39.64286, 215.35715, 303.97058];
        for (v, p) in out[..4].iter().zip(pillow) {
            assert!((v - p).abs() < 1e-4, "{v} vs {p}");
        }
        assert!((out[5] - 83.7597).abs() < 1e-4);
        // A constant image stays constant; weights always sum to 1.
        let flat = resize_float(&[7.0; 6], [2, 3], [5, 8], f);
        assert!(flat.iter().all(|v| (v - 7.0).abs() < 1e-5));
    }

    #[test]
    fn bilinear_bytes_by_hand() {
        // 2 -> 4 along x only: outputs sit at input coordinates 0.25, 0.75,
        // 1.25, 1.75 (pixel centres 0.5, 1.5): weights (1, 0) clipped at
        // the border, (0.75, 0.25), (0.25, 0.75), (0, 1).
        let out = resize_u8(&[0, 200], [1, 2], [1, 4], Filter::Bilinear);
        assert_eq!(out, vec![0, 50, 150, 200]);
        // Fixed point rounds half up: 0.25 * 3 = 0.75 -> 1, 0.75 * 3 = 2.25 -> 2.
        let out = resize_u8(&[0, 3], [1, 2], [1, 4], Filter::Bilinear);
        assert_eq!(out, vec![0, 1, 2, 3]);
        // Same size: untouched.
        assert_eq!(
            resize_u8(&[1, 2, 3, 4], [2, 2], [2, 2], Filter::Bilinear),
            vec![1, 2, 3, 4]
        );
    }
}
