//! Transposed 2-D convolution (FSVAE's decoder upsampling), channels-last.
//!
//! Computed as what it is equivalent to: spread the input onto a grid with
//! `stride - 1` zeros between pixels, pad it by `k - 1 - padding` on the top
//! and left and `k - 1 - padding + output_padding` on the bottom and right,
//! and run a stride-1 convolution over it. The dilation and padding are one
//! gather (with a zero row for the empty cells), the convolution is
//! [`Conv2d`] (the CPU kernel where available).
//!
//! On the CPU a kernel computes the same without the zeros (see
//! [`crate::host::conv::conv_transpose2d`]), a quarter of the products at
//! stride 2; the composed form above is its test oracle and the CUDA path.
//!
//! The weight is stored as that equivalent convolution's kernel,
//! `[k, k, C_in, C_out]`: PyTorch's `ConvTranspose2d` weight `w[i, o, y, x]`
//! corresponds to ours at `[k-1-y, k-1-x, i, o]`.

use super::{Conv2d, Conv2dConfig, Nhwc};
use crate::im2col::Geometry;
use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::{Error, Impl, ParamStore, Result, Scope};

#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    pub conv: Conv2d,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
}

/// How to build a [`ConvTranspose2d`] (PyTorch's `ConvTranspose2d`
/// arguments), initialised in a scope as [`crate::Conv2dConfig`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTranspose2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
    pub bias: bool,
    pub weight_init: WeightInit,
}

impl Default for ConvTranspose2dConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            out_channels: 1,
            kernel: 3,
            stride: 1,
            padding: 0,
            output_padding: 0,
            bias: false,
            weight_init: WeightInit::default(),
        }
    }
}

impl ConvTranspose2dConfig {
    pub fn init(self, scope: &mut Scope<'_>, rng: &mut Rng) -> Result<ConvTranspose2d> {
        let Self {
            kernel,
            stride,
            padding,
            output_padding,
            ..
        } = self;
        if stride == 0 || padding >= kernel || output_padding >= stride.max(1) {
            return Err(Error::invalid(
                scope.name(),
                format!("transposed conv needs stride >= 1, padding < kernel and output_padding < stride (k{kernel} s{stride} p{padding} op{output_padding})"),
            ));
        }
        // The weight as a stride-1 convolution's; the transposition is in
        // the forward pass.
        let conv = Conv2dConfig {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel,
            stride: 1,
            padding: 0,
            bias: self.bias,
            weight_init: self.weight_init,
        }
        .init(scope, rng)?;
        Ok(ConvTranspose2d {
            conv,
            stride,
            padding,
            output_padding,
        })
    }
}

impl ConvTranspose2d {
    pub fn set_kernel_impl(&mut self, k: Impl) {
        self.conv.kernel_impl = k;
    }

    /// Output size: `(h - 1) * stride - 2 * padding + k + output_padding`.
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        let f = |n: usize| {
            (n - 1) * self.stride + self.conv.kernel + self.output_padding - 2 * self.padding
        };
        (f(h), f(w))
    }

    /// How many output positions each input pixel writes (`[h * w]`):
    /// pixel `y` writes rows `y s - p + ky`, `ky < k`, those inside the
    /// output. For operation counts, as `Conv2d::fan_out`.
    pub fn fan_out(&self, h: usize, w: usize) -> Vec<u32> {
        let (ho, wo) = self.out_size(h, w);
        let (k, s, p) = (self.conv.kernel, self.stride, self.padding);
        let count = |i: usize, outs: usize| {
            (0..k)
                .filter(|ky| (i * s + ky).checked_sub(p).is_some_and(|o| o < outs))
                .count() as u32
        };
        crate::pixel_map(h, w, |y| count(y, ho), |x| count(x, wo))
    }

    /// The stride-`s` convolution whose input gradient this layer is, for
    /// a batch of `n` images of `h x w`: it maps the output `[n, H_out,
    /// W_out, C_out]` back to the input's `[n, h, w, C_in]`. The host
    /// kernel computes the layer as that adjoint, without the zeros.
    pub fn adjoint(&self, [n, h, w]: [usize; 3]) -> Geometry {
        let (ho, wo) = self.out_size(h, w);
        Geometry {
            n,
            h: ho,
            w: wo,
            c: self.conv.out_channels,
            o: self.conv.in_channels,
            k: self.conv.kernel,
            stride: self.stride,
            pad: self.padding,
            ho: h,
            wo: w,
        }
    }

    pub fn forward(&self, x: Nhwc, store: &ParamStore) -> Result<Nhwc> {
        let (n, h, w, c) = *x.shape();
        if h == 0 || w == 0 {
            return Err(Error::shape(&self.conv.weight, "empty input"));
        }
        let k = self.conv.kernel;
        // Each input pixel scatters a k x k x C_out patch.
        snn_core::dense_work::record(n * h * w * c * k * k * self.conv.out_channels);
        if c != self.conv.in_channels {
            return Err(Error::shape(
                &self.conv.weight,
                format!(
                    "input has {c} channels, layer expects {}",
                    self.conv.in_channels
                ),
            ));
        }
        snn_core::host_kernels! {
            if self.conv.kernel_impl.host() {
                let (weight, bias) = (store.taped(&self.conv.weight)?, self.conv.taped_bias(store)?);
                return Ok(crate::host::conv::conv_transpose2d(x, weight, bias, self.adjoint([n, h, w])));
            }
        }
        let lo = k - 1 - self.padding;
        let hi = lo + self.output_padding;
        let hd = (h - 1) * self.stride + 1 + lo + hi;
        let wd = (w - 1) * self.stride + 1 + lo + hi;
        let zero_row = n * h * w;
        let mut idx = Vec::with_capacity(n * hd * wd);
        for b in 0..n {
            for y in 0..hd {
                for xx in 0..wd {
                    let (yy, xs) = (y as isize - lo as isize, xx as isize - lo as isize);
                    let s = self.stride as isize;
                    let on_grid = yy >= 0 && xs >= 0 && yy % s == 0 && xs % s == 0;
                    let (iy, ix) = (yy / s.max(1), xs / s.max(1));
                    idx.push(if on_grid && (iy as usize) < h && (ix as usize) < w {
                        (b * h + iy as usize) * w + ix as usize
                    } else {
                        zero_row
                    });
                }
            }
        }
        let dev = x.device().clone();
        let rows = x.reshape_like(&(n * h * w, c));
        let zero: Tensor<(usize, usize), f32, _> = dev.zeros_like(&(1, c));
        let rows = (rows, zero).concat_along(Axis::<0>);
        let idx = dev.tensor_from_vec(idx, (n * hd * wd,));
        let dilated: Tensor<(usize, usize), f32, _, _> = rows.gather(idx);
        self.conv
            .forward(dilated.reshape_like(&(n, hd, wd, c)), store)
    }
}

#[cfg(test)]
mod fan_out_tests {
    use super::*;

    #[test]
    fn each_input_pixel_writes_the_taps_inside_the_output() {
        let dev = snn_core::device::create(0).unwrap();
        let mut store = snn_core::ParamStore::new(dev);
        let mut rng = snn_core::init::rng(0);
        let t = ConvTranspose2dConfig {
            in_channels: 1,
            out_channels: 1,
            kernel: 3,
            stride: 2,
            padding: 1,
            output_padding: 1,
            ..Default::default()
        }
        .init(&mut store.scope("t"), &mut rng)
        .unwrap();
        // 2 -> 4: pixel 0 writes rows -1, 0, 1 (two inside), pixel 1 rows 1, 2, 3.
        assert_eq!(t.out_size(2, 2), (4, 4));
        assert_eq!(t.fan_out(2, 2), vec![4, 6, 6, 9]);
    }
}
