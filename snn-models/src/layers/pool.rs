//! Pooling with window = stride: max-pool over `k x k` image windows and the
//! voting layer (mean of each group of `k` features).

use super::{Nhwc, Rows};
use snn_core::dfdx::prelude::*;
use snn_core::{Error, Result};

/// `k x k` max-pool with stride `k`, channels-last. dfdx's `max` sends the
/// gradient to every element equal to the maximum (ties share it).
pub fn max_pool(x: Nhwc, k: usize) -> Result<Nhwc> {
    let (n, h, w, c) = *x.shape();
    if k == 0 || h % k != 0 || w % k != 0 {
        return Err(Error::shape(
            "max-pool",
            format!("input {h}x{w} is not divisible by window {k}"),
        ));
    }
    let x = x.reshape_like(&(n, h / k, k, w / k, k, c));
    Ok(x.max::<_, Axes2<2, 4>>())
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
