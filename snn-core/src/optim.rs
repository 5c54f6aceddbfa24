//! Adam and AdamW over a [`ParamStore`].
//!
//! dfdx's optimizers walk a statically typed module tree; ours walk the named
//! store, so any layer list read from a config is optimised. On the CPU each
//! parameter is updated by one in-place pass over parameter, gradient and
//! moments (`update_host`, parallel over chunks); the same update written
//! with dfdx tensor ops (`update_composed`) runs on CUDA and is the kernel's
//! test oracle (`Adam::composed`).

use crate::params::{read_safetensors, write_safetensors, RawTensor};
use crate::{Dev, Error, Flat, ParamStore, Result};
use dfdx::prelude::*;
#[cfg(not(feature = "cuda"))]
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// How weight decay is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Adam with L2: `g += wd * p` before the moments (PyTorch `Adam`).
    L2,
    /// AdamW: `p -= lr * wd * p`, decoupled from the moments.
    Decoupled,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decay: Decay,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decay: Decay::L2,
        }
    }
}

impl AdamConfig {
    pub fn adamw(weight_decay: f32) -> Self {
        Self {
            weight_decay,
            decay: Decay::Decoupled,
            ..Self::default()
        }
    }
}

/// One moment vector, where the last update left it.
#[derive(Clone, Debug)]
enum Moment {
    /// Host memory, updated in place by the CPU kernel.
    Host(Vec<f32>),
    /// A device tensor, updated by the composed path.
    Device(Flat),
}

impl Moment {
    #[cfg(not(feature = "cuda"))]
    fn into_host(self) -> Vec<f32> {
        match self {
            Moment::Host(v) => v,
            Moment::Device(t) => t.as_vec(),
        }
    }

    fn into_device(self, dev: &Dev) -> Flat {
        match self {
            Moment::Device(t) => t,
            Moment::Host(v) => {
                let n = v.len();
                dev.tensor_from_vec(v, (n,))
            }
        }
    }

    fn to_vec(&self) -> Vec<f32> {
        match self {
            Moment::Host(v) => v.clone(),
            Moment::Device(t) => t.as_vec(),
        }
    }
}

/// Adam / AdamW with per-parameter moments kept by name.
#[derive(Clone, Debug)]
pub struct Adam {
    pub cfg: AdamConfig,
    /// Use the dfdx-composed update even where the CPU kernel is available
    /// (the kernel's test oracle; always the case on CUDA).
    pub composed: bool,
    step: u64,
    m: BTreeMap<String, Moment>,
    v: BTreeMap<String, Moment>,
}

impl Adam {
    pub fn new(cfg: AdamConfig) -> Self {
        Self {
            cfg,
            composed: false,
            step: 0,
            m: BTreeMap::new(),
            v: BTreeMap::new(),
        }
    }

    /// Number of updates applied so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Applies one update with learning rate `lr` to every trainable entry.
    /// Takes the accumulator mutably to read gradients in place.
    pub fn update(
        &mut self,
        store: &mut ParamStore,
        grads: &mut Gradients<f32, Dev>,
        lr: f32,
    ) -> Result<()> {
        self.step += 1;
        let names: Vec<String> = store
            .iter()
            .filter(|(_, p)| p.trainable)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            #[cfg(not(feature = "cuda"))]
            if !self.composed {
                self.update_host(store, grads, lr, &name)?;
                continue;
            }
            self.update_composed(store, grads, lr, &name)?;
        }
        Ok(())
    }

    fn bias_corrections(&self) -> (f32, f32) {
        let t = self.step as i32;
        (1.0 - self.cfg.beta1.powi(t), 1.0 - self.cfg.beta2.powi(t))
    }

    /// The CPU kernel: one pass over parameter, gradient and moments, in
    /// place, with the same arithmetic (and order) as the composed path.
    #[cfg(not(feature = "cuda"))]
    fn update_host(
        &mut self,
        store: &mut ParamStore,
        grads: &mut Gradients<f32, Dev>,
        lr: f32,
        name: &str,
    ) -> Result<()> {
        let c = self.cfg.clone();
        let (bc1, bc2) = self.bias_corrections();
        let param = store.get(name)?.value.clone();
        let n = param.shape().0;
        let mut p = crate::host::read(&param);
        let g = grads
            .get_or_alloc_mut(&param)
            .map_err(|e| Error::Device(format!("{e:?}")))?;
        let mut m = self
            .m
            .remove(name)
            .map_or_else(|| vec![0.0; n], Moment::into_host);
        let mut v = self
            .v
            .remove(name)
            .map_or_else(|| vec![0.0; n], Moment::into_host);
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
        self.m.insert(name.to_string(), Moment::Host(m));
        self.v.insert(name.to_string(), Moment::Host(v));
        Ok(())
    }

    /// The update written with dfdx tensor ops (any device).
    fn update_composed(
        &mut self,
        store: &mut ParamStore,
        grads: &Gradients<f32, Dev>,
        lr: f32,
        name: &str,
    ) -> Result<()> {
        let c = self.cfg.clone();
        let (bc1, bc2) = self.bias_corrections();
        let dev = store.dev().clone();
        let p = store.get(name)?.value.clone();
        let mut g = store.grad(grads, name)?;
        if c.decay == Decay::L2 && c.weight_decay != 0.0 {
            g = g + p.clone() * c.weight_decay;
        }
        let zeros = || Moment::Device(dev.zeros_like(&p));
        let m = self.m.remove(name).unwrap_or_else(zeros).into_device(&dev);
        let v = self.v.remove(name).unwrap_or_else(zeros).into_device(&dev);
        let m = m * c.beta1 + g.clone() * (1.0 - c.beta1);
        let v = v * c.beta2 + g.square() * (1.0 - c.beta2);
        let denom = (v.clone() / bc2).sqrt() + c.eps;
        let mut step = (m.clone() / bc1) / denom;
        if c.decay == Decay::Decoupled && c.weight_decay != 0.0 {
            step = step + p.clone() * c.weight_decay;
        }
        store.set_tensor(name, p - step * lr)?;
        self.m.insert(name.to_string(), Moment::Device(m));
        self.v.insert(name.to_string(), Moment::Device(v));
        Ok(())
    }

    /// Saves the moments and step count (for exact resume), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut raw: Vec<RawTensor> = Vec::new();
        for (prefix, map) in [("m", &self.m), ("v", &self.v)] {
            for (n, t) in map {
                let data = t.to_vec();
                raw.push((format!("{prefix}/{n}"), vec![data.len()], data));
            }
        }
        let mut meta = HashMap::new();
        meta.insert("format".into(), "snn-rs/adam".into());
        meta.insert("step".into(), self.step.to_string());
        write_safetensors(path, &raw, meta)
    }

    /// Restores state saved by [`Adam::save`].
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let (raw, meta) = read_safetensors(path)?;
        let err = |msg: String| Error::Checkpoint {
            path: path.to_path_buf(),
            msg,
        };
        let step = meta
            .get("step")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| err("metadata field `step` is missing or not an integer".into()))?;
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        for (name, _shape, data) in raw {
            let t = Moment::Host(data);
            match name.split_once('/') {
                Some(("m", rest)) => m.insert(rest.to_string(), t),
                Some(("v", rest)) => v.insert(rest.to_string(), t),
                _ => {
                    return Err(err(format!(
                        "unexpected tensor `{name}`; expected m/* or v/*"
                    )))
                }
            };
        }
        self.step = step;
        self.m = m;
        self.v = v;
        Ok(())
    }
}

/// Adam's constants for one step, by value so the loop keeps them in
/// registers.
#[cfg(not(feature = "cuda"))]
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
#[cfg(not(feature = "cuda"))]
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
    use super::*;
    use crate::device;

    /// Loss `sum(c * w)` has gradient `c`; returns the store after `n` steps.
    fn run(cfg: AdamConfig, w: &[f32], c: &[f32], lr: f32, n: usize) -> Vec<f32> {
        let dev = device::create(0).unwrap();
        let mut s = ParamStore::new(dev.clone());
        s.insert("w", &[w.len()], w.to_vec(), true).unwrap();
        let mut opt = Adam::new(cfg);
        for _ in 0..n {
            let (p, _) = s.taped("w").unwrap().split_tape();
            let cw = dev.tensor_from_vec(c.to_vec(), (c.len(),));
            let mut g = (p.traced(s.new_grads().unwrap()) * cw)
                .sum::<Rank0, _>()
                .backward();
            opt.update(&mut s, &mut g, lr).unwrap();
        }
        s.values("w").unwrap()
    }

    #[test]
    fn first_adam_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // m_hat = g, v_hat = g^2: the step is lr * g / (|g| + eps).
        let w = run(
            AdamConfig::default(),
            &[1.0, -2.0, 0.5],
            &[3.0, -0.5, 0.0],
            0.1,
            1,
        );
        let eps = 1e-8f32;
        let want = [
            1.0 - 0.1 * 3.0 / (3.0 + eps),
            -2.0 + 0.1 * 0.5 / (0.5 + eps),
            0.5,
        ];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn constant_gradient_keeps_unit_steps_and_adamw_decays_decoupled() {
        // With a constant gradient m_hat = g and v_hat = g^2 at every step.
        let w = run(AdamConfig::default(), &[0.0], &[2.0], 0.01, 5);
        assert!((w[0] + 0.05).abs() < 1e-5, "{}", w[0]);
        // AdamW, zero gradient: p <- p - lr * wd * p each step.
        let w = run(AdamConfig::adamw(0.5), &[2.0], &[0.0], 0.1, 2);
        assert!((w[0] - 2.0 * 0.95 * 0.95).abs() < 1e-6, "{}", w[0]);
        // Adam with L2: the decay enters the gradient, so the first step is
        // lr * sign(wd * p) = 0.1.
        let l2 = AdamConfig {
            weight_decay: 0.5,
            ..AdamConfig::default()
        };
        let w = run(l2, &[2.0], &[0.0], 0.1, 1);
        assert!((w[0] - 1.9).abs() < 1e-6, "{}", w[0]);
    }
}

#[cfg(all(test, not(feature = "cuda")))]
mod kernel_tests {
    use super::*;
    use crate::{device, init};

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
            for composed in [false, true] {
                let mut s = ParamStore::new(dev.clone());
                s.insert("w", &[N], w0.clone(), true).unwrap();
                let mut opt = Adam::new(cfg.clone());
                opt.composed = composed;
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
                        again.composed = composed;
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
