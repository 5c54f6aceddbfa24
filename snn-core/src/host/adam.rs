//! Adam's host kernel: the update of one parameter's values in place, in
//! parallel chunks, with the same arithmetic (and order) as the composed
//! update in `optim.rs` (which hands it the slices).

use rayon::prelude::*;

/// Adam's constants for one step, by value so the loop keeps them in
/// registers; `l2` adds the decay to the gradient, `decoupled` to the step
/// (AdamW).
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub wd: f32,
    /// The bias corrections `1 - beta^t`.
    pub bc1: f32,
    pub bc2: f32,
    pub lr: f32,
    pub l2: bool,
    pub decoupled: bool,
}

/// One Adam step of a parameter `p` with gradient `g` and moments `m`,
/// `v`, in place, in parallel chunks.
pub fn update(k: AdamStep, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
    // Element-wise, so chunks run on all cores and each chunk's loop
    // vectorises (constants in locals, zipped slices, the decay variant
    // chosen outside the loop); per-element arithmetic is unchanged.
    type Chunk = fn(AdamStep, &mut [f32], &mut [f32], &mut [f32], &[f32]);
    let kernel: Chunk = match (k.l2, k.decoupled) {
        (true, _) => adam_chunk::<true, false>,
        (false, true) => adam_chunk::<false, true>,
        (false, false) => adam_chunk::<false, false>,
    };
    const CHUNK: usize = 1 << 16;
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| kernel(k, p, m, v, g));
}

/// One chunk of the host Adam update; `L2` adds the decay to the gradient,
/// `DECOUPLED` to the step (AdamW).
fn adam_chunk<const L2: bool, const DECOUPLED: bool>(
    k: AdamStep,
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
) {
    for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
        let gi = if L2 { g + *p * k.wd } else { g };
        *m = *m * k.beta1 + gi * (1.0 - k.beta1);
        *v = *v * k.beta2 + gi * gi * (1.0 - k.beta2);
        let denom = (*v / k.bc2).sqrt() + k.eps;
        let step = (*m / k.bc1) / denom;
        let step = if DECOUPLED { step + *p * k.wd } else { step };
        *p -= step * k.lr;
    }
}
