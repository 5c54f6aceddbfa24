//! Classification losses on `[B, K]` outputs.

use crate::{Dev, Mat, Scalar};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

/// A classifier's loss (`train.loss`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// MSE between the output (firing rate) and the one-hot label.
    Mse,
    /// Softmax cross-entropy on the output.
    Ce,
}

/// One-hot targets `[B, K]`.
pub fn one_hot(dev: &Dev, labels: &[u8], classes: usize) -> Tensor<(usize, usize), f32, Dev> {
    let mut v = vec![0.0f32; labels.len() * classes];
    for (i, l) in labels.iter().enumerate() {
        // Datasets check labels against their class count when loading.
        if let Some(x) = v.get_mut(i * classes + *l as usize) {
            *x = 1.0;
        }
    }
    dev.tensor_from_vec(v, (labels.len(), classes))
}

/// Mean loss over the batch: MSE (mean over all `B x K` entries, as
/// PyTorch's `mse_loss`) or softmax cross-entropy.
pub fn loss(kind: LossKind, out: Mat, labels: &[u8]) -> Scalar {
    let (_, k) = *out.shape();
    let target = one_hot(out.device(), labels, k);
    match kind {
        LossKind::Mse => mse_loss(out, target),
        LossKind::Ce => cross_entropy_with_logits_loss(out, target),
    }
}

/// The index of the largest entry of each of the `rows` rows of `values`
/// (`[B, K]`, row-major; ties go to the lowest index).
pub fn predictions(values: &[f32], rows: usize) -> Vec<usize> {
    let k = values.len() / rows.max(1);
    values.chunks(k.max(1)).map(argmax).collect()
}

/// Index of the first largest entry.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}
