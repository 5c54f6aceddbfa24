//! The im2col gather of a 2-D convolution over channels-last images: each
//! output pixel's receptive field as one row laid out `(ky, kx, c)`, zeros
//! where the window reaches into the padding. The training convolution's
//! host kernel and the scoring networks' convolutions (`snn-metrics`) both
//! gather with it.

/// One square convolution of a batch, `[n, h, w, c]` to `[n, ho, wo, o]`:
/// what the layers tell their host kernel (`host::conv`, where its
/// forward and backward passes are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub o: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

/// Where a convolution's windows fall on one `[h, w, c]` image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    /// Kernel height and width.
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    /// Zero padding above / below and left / right.
    pub ph: usize,
    pub pw: usize,
    /// Output height and width.
    pub ho: usize,
    pub wo: usize,
}

impl Windows {
    /// Floats in one row of the gathered matrix: `kh * kw * c`.
    pub fn width(&self) -> usize {
        self.kh * self.kw * self.c
    }

    /// Fills `col` (`[ho * wo, kh * kw * c]`) from one image `img`.
    pub fn gather(&self, img: &[f32], col: &mut [f32]) {
        let (c, width) = (self.c, self.width());
        let kc = self.kw * c;
        for oy in 0..self.ho {
            for ox in 0..self.wo {
                let row = &mut col[(oy * self.wo + ox) * width..][..width];
                for ky in 0..self.kh {
                    let iy = (oy * self.stride + ky) as isize - self.ph as isize;
                    let seg = &mut row[ky * kc..][..kc];
                    // A kernel row above or below the image: all padding.
                    if iy < 0 || iy >= self.h as isize {
                        seg.fill(0.0);
                        continue;
                    }
                    for kx in 0..self.kw {
                        let ix = (ox * self.stride + kx) as isize - self.pw as isize;
                        let cell = &mut seg[kx * c..][..c];
                        if ix < 0 || ix >= self.w as isize {
                            cell.fill(0.0);
                        } else {
                            let src = (iy as usize * self.w + ix as usize) * c;
                            cell.copy_from_slice(&img[src..src + c]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Windows;

    #[test]
    fn rectangular_padded_windows_by_hand() {
        // A 2x3 one-channel image, 2x1 kernel, stride 1, one row of padding
        // above and below: ho = 2 + 2 - 2 + 1 = 3, wo = 3. Row (oy, ox)
        // holds (x[oy - 1, ox], x[oy, ox]).
        let img = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let win = Windows {
            h: 2,
            w: 3,
            c: 1,
            kh: 2,
            kw: 1,
            stride: 1,
            ph: 1,
            pw: 0,
            ho: 3,
            wo: 3,
        };
        let mut col = vec![f32::NAN; 9 * win.width()];
        win.gather(&img, &mut col);
        #[rustfmt::skip]
        let want = [
            0.0, 1.0,  0.0, 2.0,  0.0, 3.0,
            1.0, 4.0,  2.0, 5.0,  3.0, 6.0,
            4.0, 0.0,  5.0, 0.0,  6.0, 0.0,
        ];
        assert_eq!(col, want);
    }

    #[test]
    fn channels_stay_together_and_strides_skip() {
        // 3x3 image of 2 channels (value 10 * pixel + channel), 2x2 kernel,
        // stride 2, padding 1 left/right only: ho = 1, wo = 2.
        let img: Vec<f32> = (0..9)
            .flat_map(|p| [10.0 * p as f32, 10.0 * p as f32 + 1.0])
            .collect();
        let win = Windows {
            h: 3,
            w: 3,
            c: 2,
            kh: 2,
            kw: 2,
            stride: 2,
            ph: 0,
            pw: 1,
            ho: 1,
            wo: 2,
        };
        let mut col = vec![f32::NAN; 2 * win.width()];
        win.gather(&img, &mut col);
        #[rustfmt::skip]
        let want = [
            // ox 0: columns -1 (pad) and 0 of rows 0 and 1.
            0.0, 0.0, 0.0, 1.0,  0.0, 0.0, 30.0, 31.0,
            // ox 1: columns 1 and 2 of rows 0 and 1.
            10.0, 11.0, 20.0, 21.0,  40.0, 41.0, 50.0, 51.0,
        ];
        assert_eq!(col, want);
    }
}
