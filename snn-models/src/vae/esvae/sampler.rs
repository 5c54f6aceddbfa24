//! ESVAE's reparameterisable Poisson spike sampling (Zhan et al. 2023,
//! `SampledSpikeAct` in their code): a latent with firing rate `r` spikes
//! at step `t` where `r > u_t`, `u_t ~ U[0, 1)` drawn afresh for every
//! latent and step, so it fires with probability `r` (clamped to [0, 1]).
//! The draw is outside the rate, so the spike has a gradient with respect
//! to `r`: a rectangular surrogate, `dz/dr = 1/width` where
//! `|r - u_t| < width / 2` (their `aa = 0.5`: width 1).

use rand::Rng as _;
use snn_core::dfdx::prelude::*;
use snn_core::init::Rng;
use snn_core::FlatT;
use snn_nn::Rows;

/// Uniform draws in `[0, 1)` for `[T, B, C]` latents, time-major: image
/// `i`'s `T * C` draws come from `rngs[i]` in time order, so they do not
/// depend on the images beside it in the batch.
pub fn uniform_draws(rngs: &mut [Rng], steps: usize, latent: usize) -> Vec<f32> {
    let b = rngs.len();
    let mut u = vec![0.0; steps * b * latent];
    for (i, rng) in rngs.iter_mut().enumerate() {
        for t in 0..steps {
            let row = &mut u[(t * b + i) * latent..][..latent];
            row.iter_mut().for_each(|x| *x = rng.gen::<f32>());
        }
    }
    u
}

/// Spikes `z[t, n] = H(r[n] - u[t, n])` (strictly: `r > u` fires) with the
/// rectangular surrogate gradient, `[T, N]` from rates `[N]` and draws
/// `u` (`T * N`, time-major).
///
/// Written `(d g - (d g)|fresh) + H(d)` with `d = r - u` and `g` the
/// surrogate's value taken as a constant: the first bracket is exactly 0
/// (a finite number minus itself), so the spikes are exactly 0 or 1 for
/// any width, and the derivative with respect to `d` is `g`.
pub fn rate_spikes(r: FlatT, u: Vec<f32>, steps: usize, width: f32) -> Rows {
    let n = r.shape().0;
    let dev = r.device().clone();
    let u = dev.tensor_from_vec(u, (steps, n));
    let d = r.broadcast_like::<_, Axis<0>>(&(steps, n)) - u;
    let plain = d.retaped::<NoneTape>();
    let ones = dev.ones_like(&plain);
    let zeros = dev.zeros_like(&plain);
    let fired = plain.clone().gt(0.0).choose(ones.clone(), zeros.clone());
    let inside = plain.abs().lt(width * 0.5);
    let g = inside.choose(ones * (1.0 / width), zeros);
    let dg = d * g;
    // A new tensor with dg's values: subtracting dg itself (same id) would
    // panic in dfdx's backward.
    let fresh = dg.retaped::<NoneTape>() * 1.0;
    (dg - fresh) + fired
}
