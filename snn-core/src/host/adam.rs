//! Adam's host kernel: the update of one parameter entry in place, in
//! parallel chunks, with the same arithmetic (and order) as the composed
//! update in `optim.rs`.

use crate::optim::{Adam, Decay, Moment};
use crate::{Dev, Error, ParamStore, Result};
use dfdx::prelude::*;
use rayon::prelude::*;

/// The moment's values in host memory.
fn into_host(m: Moment) -> Vec<f32> {
    match m {
        Moment::Host(v) => v,
        Moment::Device(t) => t.as_vec(),
    }
}

/// [`Adam::update`] of entry `name` on the host: one pass over parameter,
/// gradient and moments, in place.
pub fn update(
    adam: &mut Adam,
    store: &mut ParamStore,
    grads: &mut Gradients<f32, Dev>,
    lr: f32,
    name: &str,
) -> Result<()> {
    let c = adam.cfg.clone();
    let (bc1, bc2) = adam.bias_corrections();
    let param = store.get(name)?.value.clone();
    let n = param.shape().0;
    let mut p = crate::host::read(&param);
    let g = grads
        .get_or_alloc_mut(&param)
        .map_err(|e| Error::Device(format!("{e:?}")))?;
    let mut m = adam.m.remove(name).map_or_else(|| vec![0.0; n], into_host);
    let mut v = adam.v.remove(name).map_or_else(|| vec![0.0; n], into_host);
    let l2 = c.decay == Decay::L2 && c.weight_decay != 0.0;
    let decoupled = c.decay == Decay::Decoupled && c.weight_decay != 0.0;
    // Element-wise, so chunks run on all cores and each chunk's loop
    // vectorises (constants in locals, zipped slices, the decay variant
    // chosen outside the loop); per-element arithmetic is unchanged.
    let k = AdamConsts {
        beta1: c.beta1,
        beta2: c.beta2,
        eps: c.eps,
        wd: c.weight_decay,
        bc1,
        bc2,
        lr,
    };
    type Chunk = fn(AdamConsts, &mut [f32], &mut [f32], &mut [f32], &[f32]);
    let kernel: Chunk = match (l2, decoupled) {
        (true, _) => adam_chunk::<true, false>,
        (false, true) => adam_chunk::<false, true>,
        (false, false) => adam_chunk::<false, false>,
    };
    const CHUNK: usize = 1 << 16;
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g[..n].par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| kernel(k, p, m, v, g));
    store.set_values(name, p)?;
    adam.m.insert(name.to_string(), Moment::Host(m));
    adam.v.insert(name.to_string(), Moment::Host(v));
    Ok(())
}

/// Adam's constants for one step, by value so the loop keeps them in
/// registers.
#[derive(Clone, Copy)]
struct AdamConsts {
    beta1: f32,
    beta2: f32,
    eps: f32,
    wd: f32,
    bc1: f32,
    bc2: f32,
    lr: f32,
}

/// One chunk of the host Adam update; `L2` adds the decay to the gradient,
/// `DECOUPLED` to the step (AdamW).
fn adam_chunk<const L2: bool, const DECOUPLED: bool>(
    k: AdamConsts,
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

#[cfg(test)]
mod tests {
    use crate::optim::{Adam, AdamConfig};
    use crate::{device, init, Impl, ParamStore};
    use dfdx::prelude::*;

    /// The CPU kernel and the composed update agree over several steps, for
    /// Adam with L2 and AdamW, including after a save / load round trip.
    #[test]
    fn host_kernel_matches_composed_update() {
        let dev = device::create(0).unwrap();
        // 70,000 entries: more than one of the kernel's parallel chunks.
        const N: usize = 70_000;
        for cfg in [
            AdamConfig {
                weight_decay: 0.01,
                ..AdamConfig::default()
            },
            AdamConfig::adamw(0.05),
            AdamConfig::default(),
        ] {
            let mut r = init::rng(4);
            let w0 = init::uniform(&mut r, N, -1.0, 1.0);
            let mut results = Vec::new();
            for kernel in [Impl::Auto, Impl::Composed] {
                let mut s = ParamStore::new(dev.clone());
                s.insert("w", &[N], w0.clone(), true).unwrap();
                let mut opt = Adam::new(cfg.clone());
                opt.kernel = kernel;
                for step in 0..4 {
                    let (p, _) = s.taped("w").unwrap().split_tape();
                    let c = init::uniform(&mut init::rng(step), N, -1.0, 1.0);
                    let cw = dev.tensor_from_vec(c, (N,));
                    let mut g = (p.traced(s.new_grads().unwrap()).square() * cw)
                        .sum::<Rank0, _>()
                        .backward();
                    opt.update(&mut s, &mut g, 0.05).unwrap();
                    if step == 1 {
                        let dir = tempfile::tempdir().unwrap();
                        let path = dir.path().join("o.safetensors");
                        opt.save(&path).unwrap();
                        let mut again = Adam::new(cfg.clone());
                        again.kernel = kernel;
                        again.load(&path).unwrap();
                        opt = again;
                    }
                }
                results.push(s.values("w").unwrap());
            }
            for (a, b) in results[0].iter().zip(&results[1]) {
                assert!((a - b).abs() < 1e-6, "{cfg:?}: {a} vs {b}");
            }
        }
    }
}
