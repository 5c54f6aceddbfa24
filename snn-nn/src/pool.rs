//! Pooling with window = stride: max-pool over `k x k` image windows and the
//! voting layer (mean of each group of `k` features).

use super::{Nhwc, Rows};
use snn_core::dfdx::prelude::*;
use snn_core::{Error, Impl, Result};

/// `k x k` max-pool with stride `k`, channels-last.
///
/// The winner of each window is found on the host and the output gathered
/// from it, so the gradient goes to one element per window: the first
/// maximum in row-major window order, as PyTorch does. dfdx's `max` would
/// instead send it to every tied maximum, and spike inputs tie constantly.
pub fn max_pool(x: Nhwc, k: usize, imp: Impl) -> Result<Nhwc> {
    let (_, h, w, _) = *x.shape();
    if k == 0 || h % k != 0 || w % k != 0 {
        return Err(Error::shape(
            "max-pool",
            format!("input {h}x{w} is not divisible by window {k}"),
        ));
    }
    if imp.host() {
        snn_core::host_kernels! {
            return Ok(crate::host::pool::max_pool(x, k));
        }
    }
    max_pool_composed(x, k)
}

/// The composed max-pool (any device): the winners' flat indices are found
/// on the host and the output gathered from them.
pub fn max_pool_composed(x: Nhwc, k: usize) -> Result<Nhwc> {
    let (n, h, w, c) = *x.shape();
    let (ho, wo) = (h / k, w / k);
    let values = x.retaped::<NoneTape>().as_vec();
    let mut idx = Vec::with_capacity(n * ho * wo * c);
    for b in 0..n {
        for oy in 0..ho {
            for ox in 0..wo {
                for ch in 0..c {
                    let mut best = ((b * h + oy * k) * w + ox * k) * c + ch;
                    for ky in 0..k {
                        for kx in 0..k {
                            let i = ((b * h + oy * k + ky) * w + ox * k + kx) * c + ch;
                            if values[i] > values[best] {
                                best = i;
                            }
                        }
                    }
                    idx.push(best);
                }
            }
        }
    }
    let dev = x.device().clone();
    let idx = dev.tensor_from_vec(idx, (n * ho * wo * c,));
    let flat = x.reshape_like(&(n * h * w * c,));
    let y: Tensor<(usize,), f32, _, _> = flat.gather(idx);
    Ok(y.reshape_like(&(n, ho, wo, c)))
}

/// `k x k` average pool with stride `k`, channels-last.
pub fn avg_pool(x: Nhwc, k: usize) -> Result<Nhwc> {
    let (n, h, w, c) = *x.shape();
    if k == 0 || h % k != 0 || w % k != 0 {
        return Err(Error::shape(
            "avg-pool",
            format!("input {h}x{w} is not divisible by window {k}"),
        ));
    }
    let x = x.reshape_like(&(n, h / k, k, w / k, k, c));
    Ok(x.mean::<_, Axes2<2, 4>>())
}

/// The voting layer (`APk10s10` after `FC100`): mean of each group of `k`
/// consecutive features, `[N, F] -> [N, F / k]`.
pub fn vote(x: Rows, k: usize) -> Result<Rows> {
    let (n, f) = *x.shape();
    if k == 0 || f % k != 0 {
        return Err(Error::shape(
            "voting layer",
            format!("{f} features are not divisible by group size {k}"),
        ));
    }
    Ok(x.reshape_like(&(n, f / k, k)).mean::<_, Axis<2>>())
}
