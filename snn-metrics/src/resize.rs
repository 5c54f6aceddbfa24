//! Bringing an image plane to the Inception network's 299x299 input, by
//! one of three documented protocols.

use snn_core::{Error, Result};
use snn_data::resample::{resize_float, Filter};

/// How images are brought to 299x299.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Resize {
    /// PyTorch `F.interpolate(mode="bilinear", align_corners=False)`, no
    /// antialiasing, on pixel values 0..255: pytorch-fid's protocol.
    Bilinear,
    /// PIL `Image.resize(BICUBIC)` of each channel as a float (`F` mode)
    /// image, clipped to [0, 255]: clean-fid's "clean" protocol
    /// ([`snn_data::resample`]).
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

/// One channel `[h, w]` of pixel values (0..255, any float: generated
/// images need not be whole bytes) resized to `[side, side]`.
pub fn resize_plane(src: &[f32], h: usize, w: usize, side: usize, resize: Resize) -> Vec<f32> {
    match resize {
        Resize::Bicubic => {
            let mut out = resize_float(src, [h, w], [side, side], Filter::Bicubic);
            out.iter_mut().for_each(|v| *v = v.clamp(0.0, 255.0));
            out
        }
        Resize::Bilinear | Resize::Nearest => {
            let mut out = vec![0.0f32; side * side];
            let at = |y: usize, x: usize| src[y * w + x];
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
