//! Adam and AdamW over a [`ParamStore`].
//!
//! dfdx's optimizers walk a statically typed module tree; ours walk the named
//! store, so any layer list read from a config is optimised. On the CPU each
//! parameter is updated by one in-place pass over parameter, gradient and
//! moments (`host::adam::update`, parallel over chunks, handed its slices
//! by `update_host`); the same update
//! written with dfdx tensor ops (`update_composed`) runs on CUDA and is the
//! kernel's test oracle (`Adam::kernel = Impl::Composed`).

use crate::params::{read_safetensors, write_safetensors, RawTensor};
use crate::{Dev, Error, Flat, Impl, ParamStore, Result};
use dfdx::prelude::*;
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
pub(crate) enum Moment {
    /// Host memory, updated in place by the CPU kernel.
    Host(Vec<f32>),
    /// A device tensor, updated by the composed path.
    Device(Flat),
}

impl Moment {
    fn into_device(self, dev: &Dev) -> Flat {
        match self {
            Moment::Device(t) => t,
            Moment::Host(v) => {
                let n = v.len();
                dev.tensor_from_vec(v, (n,))
            }
        }
    }

    /// The values in host memory.
    #[allow(dead_code)] // only the host kernel's side calls it
    fn into_host(self) -> Vec<f32> {
        match self {
            Moment::Host(v) => v,
            Moment::Device(t) => t.as_vec(),
        }
    }

    fn to_vec(&self) -> Vec<f32> {
        match self {
            Moment::Host(v) => v.clone(),
            Moment::Device(t) => t.as_vec(),
        }
    }
}

// The host kernel's side of the update: hands `host::adam::update` the
// entry's values, gradient and moments as slices (compiled where host
// kernels are, like the kernel itself).
crate::host_kernels! {
    impl Adam {
        /// [`Adam::update`] of entry `name` on the host, in place.
        fn update_host(
            &mut self,
            store: &mut ParamStore,
            grads: &mut Gradients<f32, Dev>,
            lr: f32,
            name: &str,
        ) -> Result<()> {
            let (bc1, bc2) = self.bias_corrections();
            let (l2, decoupled) = self.decays();
            let c = &self.cfg;
            let (beta1, beta2, eps, wd) = (c.beta1, c.beta2, c.eps, c.weight_decay);
            let k = crate::host::adam::AdamStep {
                beta1, beta2, eps, wd, bc1, bc2, lr, l2, decoupled,
            };
            let param = store.get(name)?.value.clone();
            let n = param.shape().0;
            let mut p = crate::host::read(&param);
            let g = grads
                .get_or_alloc_mut(&param)
                .map_err(|e| Error::Device(format!("{e:?}")))?;
            let mut m = self.m.remove(name).map_or_else(|| vec![0.0; n], Moment::into_host);
            let mut v = self.v.remove(name).map_or_else(|| vec![0.0; n], Moment::into_host);
            crate::host::adam::update(k, &mut p, &mut m, &mut v, &g[..n]);
            store.set_values(name, p)?;
            self.m.insert(name.to_string(), Moment::Host(m));
            self.v.insert(name.to_string(), Moment::Host(v));
            Ok(())
        }
    }
}

/// Adam / AdamW with per-parameter moments kept by name.
#[derive(Clone, Debug)]
pub struct Adam {
    pub cfg: AdamConfig,
    /// The host kernel (`auto`) or the dfdx-composed update (the kernel's
    /// test oracle; always the case on CUDA).
    pub kernel: Impl,
    step: u64,
    m: BTreeMap<String, Moment>,
    v: BTreeMap<String, Moment>,
}

impl Adam {
    pub fn new(cfg: AdamConfig) -> Self {
        Self {
            cfg,
            kernel: Impl::Auto,
            step: 0,
            m: BTreeMap::new(),
            v: BTreeMap::new(),
        }
    }

    /// Number of updates applied so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Applies one update with learning rate `lr` (times each entry's
    /// `lr_scale`; decoupled decay scales with it, as in a PyTorch param
    /// group) to every trainable entry. Takes the accumulator mutably to
    /// read gradients in place.
    pub fn update(
        &mut self,
        store: &mut ParamStore,
        grads: &mut Gradients<f32, Dev>,
        lr: f32,
    ) -> Result<()> {
        self.step += 1;
        let entries: Vec<(String, f32)> = store
            .iter()
            .filter(|(_, p)| p.trainable)
            .map(|(n, p)| (n.clone(), p.lr_scale))
            .collect();
        for (name, scale) in entries {
            let lr = lr * scale;
            crate::host_kernels! {
                if self.kernel.host() {
                    self.update_host(store, grads, lr, &name)?;
                    continue;
                }
            }
            self.update_composed(store, grads, lr, &name)?;
        }
        Ok(())
    }

    fn bias_corrections(&self) -> (f32, f32) {
        let t = self.step as i32;
        (1.0 - self.cfg.beta1.powi(t), 1.0 - self.cfg.beta2.powi(t))
    }

    /// Which decays apply: (L2 on the gradient, decoupled on the step).
    fn decays(&self) -> (bool, bool) {
        let on = self.cfg.weight_decay != 0.0;
        (
            on && self.cfg.decay == Decay::L2,
            on && self.cfg.decay == Decay::Decoupled,
        )
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
        let (l2, decoupled) = self.decays();
        if l2 {
            g = g + p.clone() * c.weight_decay;
        }
        let zeros = || Moment::Device(dev.zeros_like(&p));
        let m = self.m.remove(name).unwrap_or_else(zeros).into_device(&dev);
        let v = self.v.remove(name).unwrap_or_else(zeros).into_device(&dev);
        let m = m * c.beta1 + g.clone() * (1.0 - c.beta1);
        let v = v * c.beta2 + g.square() * (1.0 - c.beta2);
        let denom = (v.clone() / bc2).sqrt() + c.eps;
        let mut step = (m.clone() / bc1) / denom;
        if decoupled {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{device, init};

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

    /// An entry's `lr_scale` multiplies its step and its decoupled decay
    /// (PyTorch AdamW with a param group of lr * scale), and nothing else.
    #[test]
    fn lr_scale_multiplies_one_entry_step_and_decay() {
        let dev = device::create(0).unwrap();
        let mut s = ParamStore::new(dev.clone());
        s.insert("a", &[1], vec![2.0], true).unwrap();
        s.insert("b", &[1], vec![2.0], true).unwrap();
        s.set_lr_scale("b", 10.0).unwrap();
        let mut opt = Adam::new(AdamConfig::adamw(0.5));
        let (a, _) = s.taped("a").unwrap().split_tape();
        let (b, _) = s.taped("b").unwrap().split_tape();
        let grads = s.new_grads().unwrap();
        // loss = 3a + 3b: both gradients 3, so both Adam directions are 1.
        let loss = (a.traced(grads) * 3.0).sum::<Rank0, _>();
        let (loss, tape) = loss.split_tape();
        let loss = (loss.put_tape(tape)
            + (b.retaped::<crate::device::Tp>() * 3.0).sum::<Rank0, _>())
        .sum::<Rank0, _>();
        let mut g = loss.backward();
        opt.update(&mut s, &mut g, 0.01).unwrap();
        let eps = 1e-8f32;
        let unit = 3.0 / (3.0 + eps);
        let want = |lr: f32| 2.0 - lr * (unit + 0.5 * 2.0);
        assert!((s.values("a").unwrap()[0] - want(0.01)).abs() < 1e-6);
        assert!((s.values("b").unwrap()[0] - want(0.1)).abs() < 1e-6);
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let e = s.set_lr_scale("a", bad).unwrap_err().to_string();
            assert!(e.contains("positive finite"), "{e}");
        }
        assert!(s.set_lr_scale("missing", 2.0).is_err());
    }
}
