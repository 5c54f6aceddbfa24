//! The maximum mean discrepancy between the posterior's and the prior's
//! latent firing rates, ESVAE's distance term (`MMD_loss` in their code).

use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::Scalar;
use snn_nn::Rows;

/// The kernel of the MMD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MmdKernel {
    /// A sum of 5 Gaussian kernels whose bandwidths double from a quarter
    /// of the batch's mean pairwise squared distance (the ESVAE configs'
    /// `rbf`).
    #[default]
    Rbf,
    /// The squared distance between the two batch means.
    Linear,
}

/// Gaussian kernels in the sum, and the ratio between their bandwidths.
const KERNELS: i32 = 5;
const BANDWIDTH_RATIO: f32 = 2.0;

/// MMD between rates `q` and `p`, both `[B, C]`.
pub fn mmd(q: Rows, p: Rows, kernel: MmdKernel) -> Scalar {
    match kernel {
        MmdKernel::Rbf => rbf(q, p),
        MmdKernel::Linear => {
            let d = q.mean::<_, Axis<0>>() - p.mean::<_, Axis<0>>();
            d.square().sum()
        }
    }
}

/// `mean K(q, q) + mean K(p, p) - 2 mean K(q, p)` with
/// `K(x, y) = sum_i exp(-|x - y|^2 / (s 2^i))`, `i = 0..5`, and
/// `s = sum of all pairwise squared distances / (n^2 - n) / 4` over the
/// `n = 2B` rows of both, computed from the values (no gradient through
/// `s`, as the ESVAE code's `.data`).
fn rbf(q: Rows, p: Rows) -> Scalar {
    let (b, c) = *q.shape();
    let n = 2 * b;
    let dev = q.device().clone();
    let all = (q, p).concat_along(Axis::<0>);
    // A broadcast keeps its source's id, and a binary op on one id panics
    // in dfdx's backward: one side goes through a copy (`* 1.0`).
    let copy = all.with_empty_tape() * 1.0;
    let rows_j = copy.broadcast_like::<_, Axis<0>>(&(n, n, c));
    let rows_i = all.broadcast_like::<_, Axis<1>>(&(n, n, c));
    let l2 = (rows_j - rows_i).square().sum::<_, Axis<2>>();
    let total = l2.retaped::<NoneTape>().sum::<Rank0, _>().array();
    let mean = total / (n * n - n).max(1) as f32;
    // All rows equal: every distance is 0, the MMD is 0 at any bandwidth.
    let base = if mean > 0.0 { mean } else { 1.0 } / BANDWIDTH_RATIO.powi(KERNELS / 2);
    // The sum in the ESVAE code's order; the last term takes l2's tape
    // (the others' backward ops join it through the additions).
    let scale = |i: i32| -1.0 / (base * BANDWIDTH_RATIO.powi(i));
    let mut k = (l2.with_empty_tape() * scale(0)).exp();
    for i in 1..KERNELS - 1 {
        k = k + (l2.with_empty_tape() * scale(i)).exp();
    }
    let k = k + (l2 * scale(KERNELS - 1)).exp();
    // +1/B^2 on the two same-side blocks, -1/B^2 on the two cross blocks.
    let w = 1.0 / (b * b) as f32;
    let signs: Vec<f32> = (0..n * n)
        .map(|ij| if (ij / n < b) == (ij % n < b) { w } else { -w })
        .collect();
    (k * dev.tensor_from_vec(signs, (n, n))).sum()
}
