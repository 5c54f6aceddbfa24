//! Test support for layers and the models built from them: inputs held in
//! a store so their gradients can be read back, and a finite-difference
//! checker. Its functions panic on failure, as test code does.

use crate::Nhwc;
use snn_core::dfdx::prelude::*;
use snn_core::{device, ParamStore};

pub type S4 = (usize, usize, usize, usize);
/// A loss value and the gradient of every trainable entry, by name.
pub type LossGrads = (f64, Vec<(String, Vec<f32>)>);

/// Holds an input tensor "x" in a store so its gradient can be read back.
pub fn store_with(x: &[f32]) -> ParamStore {
    let mut s = ParamStore::new(device::create(0).unwrap());
    s.insert("x", &[x.len()], x.to_vec(), true).unwrap();
    s
}

pub fn input(store: &ParamStore, shape: S4) -> Nhwc {
    let (x, _) = store.taped("x").unwrap().split_tape();
    x.traced(store.new_grads().unwrap()).reshape_like(&shape)
}

/// `sum(y * c)` and its gradients for every trainable entry.
pub fn loss_and_grads(store: &ParamStore, y: Nhwc, c: &[f32]) -> LossGrads {
    let shape = *y.shape();
    let cw = store.dev().tensor_from_vec(c.to_vec(), shape);
    scalar_grads(store, (y * cw).sum::<Rank0, _>())
}

/// Checks every gradient of `f` (a loss of the store) by central differences.
pub fn check_fd(store: &ParamStore, f: &dyn Fn(&ParamStore) -> LossGrads, eps: f32, tol: f32) {
    let (_, grads) = f(store);
    for (name, g) in grads {
        let base = store.values(&name).unwrap();
        for k in (0..base.len()).step_by((base.len() / 40).max(1)) {
            let mut s = store.clone();
            let mut v = base.clone();
            v[k] = base[k] + eps;
            s.set_values(&name, v.clone()).unwrap();
            let plus = f(&s).0;
            v[k] = base[k] - eps;
            s.set_values(&name, v).unwrap();
            let minus = f(&s).0;
            let fd = ((plus - minus) / (2.0 * eps as f64)) as f32;
            assert!(
                (fd - g[k]).abs() <= tol * (1.0 + fd.abs().max(g[k].abs())),
                "{name}[{k}]: backward {} vs finite difference {fd}",
                g[k]
            );
        }
    }
}

/// A scalar loss's value and the gradient of every trainable entry.
pub fn scalar_grads(store: &ParamStore, l: snn_core::Scalar) -> LossGrads {
    let v = l.array() as f64;
    let g = l.backward();
    let grads = store
        .iter()
        .filter(|(_, p)| p.trainable)
        .map(|(n, _)| (n.clone(), store.grad(&g, n).unwrap().as_vec()))
        .collect();
    (v, grads)
}
