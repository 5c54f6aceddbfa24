//! Inference-only convolutions on channels-last activations, for the
//! scoring networks (Inception-v3, the FAD autoencoder): one im2col and one
//! GEMM per group of images.

use snn_core::gemm::{Fresh, Op};
use snn_nn::im2col::Windows;

/// Channels-last activations of a batch, `[n, h, w, c]`.
#[derive(Clone, Debug)]
pub(crate) struct Act {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

/// A convolution with a bias, optionally followed by ReLU.
#[derive(Debug)]
pub(crate) struct Conv {
    kh: usize,
    kw: usize,
    cin: usize,
    pub cout: usize,
    stride: usize,
    ph: usize,
    pw: usize,
    /// `[kh * kw * cin, cout]`.
    w: Vec<f32>,
    b: Vec<f32>,
    relu: bool,
}

impl Conv {
    /// `conv(x) + bias` (no activation) from PyTorch's `[O, C, kh, kw]`
    /// weight.
    pub fn new(shape: [usize; 4], w: &[f32], bias: &[f32], stride: usize, pad: [usize; 2]) -> Self {
        let [o, c, kh, kw] = shape;
        let mut packed = vec![0.0f32; kh * kw * c * o];
        for oi in 0..o {
            for ci in 0..c {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let src = ((oi * c + ci) * kh + ky) * kw + kx;
                        packed[((ky * kw + kx) * c + ci) * o + oi] = w[src];
                    }
                }
            }
        }
        Self {
            kh,
            kw,
            cin: c,
            cout: o,
            stride,
            ph: pad[0],
            pw: pad[1],
            w: packed,
            b: bias.to_vec(),
            relu: false,
        }
    }

    /// `relu(bn(conv(x)))` as one convolution: eval-mode batch norm with
    /// scale `gamma` (or 1 where the graph has none) and `[beta, mean, var]`
    /// folded into the weights and bias.
    pub fn folded(
        shape: [usize; 4],
        w: &[f32],
        gamma: Option<&[f32]>,
        [beta, mean, var]: [&[f32]; 3],
        eps: f32,
        stride: usize,
        pad: [usize; 2],
    ) -> Self {
        let [o, c, kh, kw] = shape;
        let inv: Vec<f32> = (0..o)
            .map(|i| gamma.map_or(1.0, |g| g[i]) / (var[i] + eps).sqrt())
            .collect();
        let per = c * kh * kw;
        let scaled: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(i, v)| v * inv[i / per])
            .collect();
        let bias: Vec<f32> = (0..o).map(|i| beta[i] - mean[i] * inv[i]).collect();
        Self {
            relu: true,
            ..Self::new(shape, &scaled, &bias, stride, pad)
        }
    }

    pub fn forward(&self, x: &Act) -> Act {
        assert_eq!(x.c, self.cin, "conv: channel mismatch");
        let ho = (x.h + 2 * self.ph - self.kh) / self.stride + 1;
        let wo = (x.w + 2 * self.pw - self.kw) / self.stride + 1;
        let width = self.kh * self.kw * self.cin;
        let rows = ho * wo;
        let mut out = Fresh::new(x.n * rows, self.cout);
        snn_core::dense_work::record(x.n * rows * width * self.cout);
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
                    self.im2col(img, [x.h, x.w], [ho, wo], dst);
                }
                &col[..m * width]
            };
            let dst = out.push_product(m, width, Op::N(a), Op::N(&self.w));
            for r in dst.chunks_exact_mut(self.cout) {
                for (v, b) in r.iter_mut().zip(&self.b) {
                    *v += b;
                    if self.relu {
                        *v = v.max(0.0);
                    }
                }
            }
        }
        Act {
            n: x.n,
            h: ho,
            w: wo,
            c: self.cout,
            data: out.finish(),
        }
    }

    fn im2col(&self, img: &[f32], [h, w]: [usize; 2], [ho, wo]: [usize; 2], col: &mut [f32]) {
        let win = Windows {
            h,
            w,
            c: self.cin,
            kh: self.kh,
            kw: self.kw,
            stride: self.stride,
            ph: self.ph,
            pw: self.pw,
            ho,
            wo,
        };
        win.gather(img, col);
    }
}
