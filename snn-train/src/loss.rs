//! Classification losses on `[B, K]` outputs.

use snn_core::config::LossKind;
use snn_core::dfdx::prelude::*;
use snn_core::{Dev, Mat, Tp};

/// One-hot targets `[B, K]`.
pub fn one_hot(dev: &Dev, labels: &[u8], classes: usize) -> Tensor<(usize, usize), f32, Dev> {
    let mut v = vec![0.0f32; labels.len() * classes];
    for (i, l) in labels.iter().enumerate() {
        v[i * classes + *l as usize] = 1.0;
    }
    dev.tensor_from_vec(v, (labels.len(), classes))
}

/// Mean loss over the batch: MSE (mean over all `B x K` entries, as
/// PyTorch's `mse_loss`) or softmax cross-entropy.
pub fn loss(kind: LossKind, out: Mat, labels: &[u8]) -> Tensor<Rank0, f32, Dev, Tp> {
    let (_, k) = *out.shape();
    let target = one_hot(out.device(), labels, k);
    match kind {
        LossKind::Mse => mse_loss(out, target),
        LossKind::Ce => cross_entropy_with_logits_loss(out, target),
    }
}
