//! 2-D convolution as one gather (im2col) and one matmul, channels-last.
//!
//! dfdx's own conv2d needs its `nightly` feature, so this layer is composed
//! of stable ops: flatten the input to rows of channels, append one zero row
//! (the padding cell), gather each output pixel's `k x k` window of rows, and
//! multiply by the `[k*k*C_in, C_out]` weight. `gather`'s backward adds into
//! the input gradient, so overlapping windows are handled correctly.

use super::Nhwc;
use crate::im2col::Geometry;
use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::{Error, FlatT, Impl, ParamStore, Result, Scope};

#[derive(Debug, Clone)]
pub struct Conv2d {
    pub weight: String,
    pub bias: Option<String>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub kernel_impl: Impl,
}

/// How to build a [`Conv2d`]:
/// `Conv2dConfig { in_channels: 1, out_channels: 32, kernel: 3, ..Default::default() }
/// .init(&mut store.scope("conv1"), rng)` registers `conv1.weight` (and
/// `conv1.bias`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
    pub weight_init: WeightInit,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self {
            in_channels: 1,
            out_channels: 1,
            kernel: 3,
            stride: 1,
            padding: 0,
            bias: false,
            weight_init: WeightInit::default(),
        }
    }
}

impl Conv2dConfig {
    /// Registers the weight (`[k, k, C_in, C_out]`, `weight_init`) and the
    /// bias (PyTorch's default) in `scope` and returns the layer.
    pub fn init(self, scope: &mut Scope<'_>, rng: &mut Rng) -> Result<Conv2d> {
        let Self {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            bias,
            weight_init,
        } = self;
        if kernel == 0 || stride == 0 {
            return Err(Error::invalid(
                scope.name(),
                "kernel and stride must be at least 1",
            ));
        }
        let fan_in = in_channels * kernel * kernel;
        let shape = [kernel, kernel, in_channels, out_channels];
        let (weight, bias) = crate::weight_and_bias(scope, rng, &shape, fan_in, weight_init, bias)?;
        Ok(Conv2d {
            weight,
            bias,
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            kernel_impl: Impl::Auto,
        })
    }
}

impl Conv2d {
    /// Output spatial size for an input of `h x w`.
    pub fn out_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        if h + 2 * p < k || w + 2 * p < k {
            return Err(Error::shape(
                &self.weight,
                format!("input {h}x{w} with padding {p} is smaller than kernel {k}"),
            ));
        }
        Ok(((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1))
    }

    /// How many output positions read each input pixel (`[h * w]`, row
    /// major): padding taps read nothing, so a border pixel feeds fewer
    /// outputs. The synaptic operations of one input channel to one output
    /// channel are this map's sum (`snn eval --ops`).
    pub fn fan_out(&self, h: usize, w: usize) -> Result<Vec<u32>> {
        let (ho, wo) = self.out_size(h, w)?;
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        // Outputs o whose window o s - p .. o s - p + k covers i.
        let count = |i: usize, outs: usize| {
            (0..outs)
                .filter(|o| (i + p).checked_sub(o * s).is_some_and(|d| d < k))
                .count() as u32
        };
        Ok(crate::pixel_map(h, w, |y| count(y, ho), |x| count(x, wo)))
    }

    /// Row indices of the im2col gather; `zero_row` stands for padding.
    fn im2col_index(&self, n: usize, h: usize, w: usize, ho: usize, wo: usize) -> Vec<usize> {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let zero_row = n * h * w;
        let mut idx = Vec::with_capacity(n * ho * wo * k * k);
        for b in 0..n {
            for oy in 0..ho {
                for ox in 0..wo {
                    for ky in 0..k {
                        for kx in 0..k {
                            let y = (oy * s + ky) as isize - p as isize;
                            let x = (ox * s + kx) as isize - p as isize;
                            let inside = y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w;
                            idx.push(if inside {
                                (b * h + y as usize) * w + x as usize
                            } else {
                                zero_row
                            });
                        }
                    }
                }
            }
        }
        idx
    }

    pub fn forward(&self, x: Nhwc, store: &ParamStore) -> Result<Nhwc> {
        let (n, h, w, c) = *x.shape();
        if c != self.in_channels {
            return Err(Error::shape(
                &self.weight,
                format!("input has {c} channels, layer expects {}", self.in_channels),
            ));
        }
        let (ho, wo) = self.out_size(h, w)?;
        snn_core::dense_work::record(
            n * ho * wo * self.kernel * self.kernel * c * self.out_channels,
        );
        snn_core::host_kernels! {
            if self.kernel_impl.host() {
                let geo = self.geometry([n, h, w], (ho, wo));
                return Ok(crate::host::conv::conv2d(x, store.taped(&self.weight)?, self.taped_bias(store)?, geo));
            }
        }
        let k = self.kernel;
        let dev = x.device().clone();
        let rows = x.reshape_like(&(n * h * w, c));
        let zero: Tensor<(usize, usize), f32, _> = dev.zeros_like(&(1, c));
        let rows = (rows, zero).concat_along(Axis::<0>);
        let idx = dev.tensor_from_vec(self.im2col_index(n, h, w, ho, wo), (n * ho * wo * k * k,));
        let cols: Tensor<(usize, usize), f32, _, _> = rows.gather(idx);
        let cols = cols.reshape_like(&(n * ho * wo, k * k * c));
        let wt = store
            .taped(&self.weight)?
            .reshape_like(&(k * k * c, self.out_channels));
        let y = cols
            .matmul(wt)
            .reshape_like(&(n, ho, wo, self.out_channels));
        self.add_bias(y, store)
    }

    /// The convolution of a batch of `n` images of `h x w` to `ho x wo`,
    /// as the host kernel takes it.
    pub fn geometry(&self, [n, h, w]: [usize; 3], (ho, wo): (usize, usize)) -> Geometry {
        Geometry {
            n,
            h,
            w,
            c: self.in_channels,
            o: self.out_channels,
            k: self.kernel,
            stride: self.stride,
            pad: self.padding,
            ho,
            wo,
        }
    }

    /// The bias on the tape, if the layer has one.
    pub fn taped_bias(&self, store: &ParamStore) -> Result<Option<FlatT>> {
        self.bias.as_ref().map(|b| store.taped(b)).transpose()
    }

    pub(crate) fn add_bias(&self, y: Nhwc, store: &ParamStore) -> Result<Nhwc> {
        let Some(key) = &self.bias else {
            return Ok(y);
        };
        let shape = *y.shape();
        let b = store.taped(key)?;
        Ok(b.broadcast_like::<_, Axes3<0, 1, 2>>(&shape) + y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn border_pixels_feed_fewer_outputs() {
        let dev = snn_core::device::create(0).unwrap();
        let mut store = ParamStore::new(dev);
        let mut rng = snn_core::init::rng(0);
        let cfg = Conv2dConfig {
            in_channels: 1,
            out_channels: 1,
            kernel: 3,
            padding: 1,
            ..Default::default()
        };
        let conv = cfg.init(&mut store.scope("c"), &mut rng).unwrap();
        // 4x4, k3 p1 s1: rows / columns 0 and 3 feed 2 outputs, 1 and 2 feed 3.
        let f = conv.fan_out(4, 4).unwrap();
        assert_eq!(&f[..4], &[4, 6, 6, 4]);
        assert_eq!(&f[4..8], &[6, 9, 9, 6]);
        // Every valid tap of the 16 outputs once: 16 x 9 less the 44 padded.
        assert_eq!(f.iter().sum::<u32>(), 100);
        let strided = Conv2dConfig { stride: 2, ..cfg };
        let strided = strided.init(&mut store.scope("d"), &mut rng).unwrap();
        // 5 -> 3 outputs, windows -1..=1, 1..=3, 3..=5.
        assert_eq!(&strided.fan_out(5, 5).unwrap()[..5], &[1, 2, 1, 2, 1]);
    }
}
