//! FSVAE's autoregressive Bernoulli latent: picking one of `k` spikes per
//! latent, the PSP filter and the distances between posterior and prior.
//!
//! Latent tensors are rows `[T * B, features]`, time-major; the `k` spikes
//! of latent `c` are features `c * k .. (c + 1) * k`, as in the FSVAE code's
//! `(B, C, k, T)` view.

use rand::Rng as _;
use snn_core::dfdx::prelude::*;
use snn_core::init::Rng;
use snn_core::{Dev, Scalar};
use snn_nn::Rows;

/// Random picks for `[T, B, C]` latents (time-major): for each latent, one
/// of `k` spikes. Image `i`'s `T * C` picks come from `rngs[i]` in time
/// order, so they do not depend on the images beside it in the batch.
pub fn random_picks(rngs: &mut [Rng], steps: usize, latent: usize, k: usize) -> Vec<usize> {
    let b = rngs.len();
    let mut picks = vec![0; steps * b * latent];
    for (i, rng) in rngs.iter_mut().enumerate() {
        for t in 0..steps {
            let row = &mut picks[(t * b + i) * latent..][..latent];
            row.iter_mut().for_each(|p| *p = rng.gen_range(0..k));
        }
    }
    picks
}

/// `z[r, c] = q[r, c * k + picks[r * C + c]]`: `[R, C * k]` -> `[R, C]`.
pub fn pick(q: Rows, k: usize, picks: &[usize]) -> Rows {
    let (rows, ck) = *q.shape();
    let c = ck / k;
    let idx: Vec<usize> = picks.iter().enumerate().map(|(i, j)| i * k + j).collect();
    let dev = q.device().clone();
    let idx = dev.tensor_from_vec(idx, (rows * c,));
    let flat = q.reshape_like(&(rows * ck,));
    let z: Tensor<(usize,), f32, Dev, _> = flat.gather(idx);
    z.reshape_like(&(rows, c))
}

/// The same on host values of one step `[B, C * k]`.
pub fn pick_host(q: &[f32], k: usize, picks: &[usize]) -> Vec<f32> {
    picks
        .iter()
        .enumerate()
        .map(|(i, j)| q[i * k + j])
        .collect()
}

/// Mean over the `k` spikes of each latent: `[T * B, C * k]` -> `[T, B * C]`.
pub fn spike_probability(q: Rows, steps: usize, k: usize) -> Rows {
    let (rows, ck) = *q.shape();
    let n = rows / steps * (ck / k);
    q.reshape_like(&(steps, n, k)).mean::<_, Axis<2>>()
}

/// The PSP filter `syn[t] = syn[t-1] + (x[t] - syn[t-1]) / tau_s` (from
/// `syn[-1] = 0`) as a matrix acting on the time axis from the right:
/// `psp(x)[n, t] = sum_s x[n, s] * m[s, t]` with
/// `m[s, t] = (1/tau_s) (1 - 1/tau_s)^(t - s)` for `s <= t`.
pub fn psp_matrix(steps: usize, tau_s: f32) -> Vec<f32> {
    let a = 1.0 / tau_s;
    let mut m = vec![0.0; steps * steps];
    for s in 0..steps {
        for t in s..steps {
            m[s * steps + t] = a * (1.0 - a).powi((t - s) as i32);
        }
    }
    m
}

/// FSVAE's "mmd": mean over latents, steps and batch of
/// `(psp(q)[t] - psp(p)[t])^2`, with `q`, `p` the `[T, N]` spike
/// probabilities. The filter is linear, so it runs once on `q - p`.
pub fn psp_distance(q: Rows, p: Rows, tau_s: f32) -> Scalar {
    let (steps, n) = *q.shape();
    let m = q
        .device()
        .tensor_from_vec(psp_matrix(steps, tau_s), (steps, steps));
    let d = (q - p)
        .permute::<_, Axes2<1, 0>>()
        .reshape_like(&(n, steps));
    d.matmul(m).square().mean()
}

/// FSVAE's Bernoulli KL, `sum over latents and steps, mean over the batch`
/// of `q ln((q+e)/(p+e)) + (1-q) ln((1-q+e)/(1-p+e))` with `e = 0.01`.
pub fn bernoulli_kl(q: Rows, p: Rows, batch: usize) -> Scalar {
    let e = 1e-2;
    let q2 = q.with_empty_tape();
    let p2 = p.with_empty_tape();
    let on = q.with_empty_tape() * ((q2 + e).ln() - (p2 + e).ln());
    let off = (q.with_empty_tape().negate() + 1.0)
        * ((q.negate() + (1.0 + e)).ln() - (p.negate() + (1.0 + e)).ln());
    (on + off).sum() / batch as f32
}

/// `per` standard normal samples (Box-Muller) for each image, from that
/// image's generator.
pub fn gaussian(rngs: &mut [Rng], per: usize) -> Vec<f32> {
    rngs.iter_mut()
        .flat_map(|rng| {
            (0..per)
                .map(|_| {
                    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
                    let u2: f32 = rng.gen();
                    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
