//! The Inception Score, `exp(E_x KL(p(y|x) || p(y)))`, over class
//! probabilities from any classifier, in splits (mean and standard
//! deviation over the splits, as the reference implementations report).

use snn_core::{Error, Result};

/// `probs`: `n` rows of `classes` probabilities (each row sums to 1).
/// Returns `(mean, std)` over `splits` consecutive chunks.
pub fn inception_score(probs: &[f32], classes: usize, splits: usize) -> Result<(f64, f64)> {
    if classes == 0 || !probs.len().is_multiple_of(classes) {
        return Err(Error::shape(
            "class probabilities",
            format!("{} values are not rows of {classes}", probs.len()),
        ));
    }
    let n = probs.len() / classes;
    if splits == 0 || n < splits {
        return Err(Error::invalid(
            "splits",
            format!("{n} samples cannot make {splits} splits"),
        ));
    }
    let mut scores = Vec::with_capacity(splits);
    for s in 0..splits {
        let (lo, hi) = (s * n / splits, (s + 1) * n / splits);
        let rows = &probs[lo * classes..hi * classes];
        let m = (hi - lo) as f64;
        let mut marginal = vec![0.0f64; classes];
        for row in rows.chunks_exact(classes) {
            for (p, v) in marginal.iter_mut().zip(row) {
                *p += *v as f64 / m;
            }
        }
        let mut kl = 0.0f64;
        for row in rows.chunks_exact(classes) {
            for (v, p) in row.iter().zip(&marginal) {
                let v = *v as f64;
                if v > 0.0 {
                    kl += v * (v.ln() - p.ln());
                }
            }
        }
        scores.push((kl / m).exp());
    }
    let mean = scores.iter().sum::<f64>() / splits as f64;
    let var = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / splits as f64;
    Ok((mean, var.sqrt()))
}
