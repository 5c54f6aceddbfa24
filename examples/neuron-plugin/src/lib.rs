//! A neuron that lives outside snn-rs's own crates: integrate-and-fire with
//! a *soft* reset (subtract the threshold instead of zeroing):
//!
//! ```text
//! u[t] = u[t-1] - v_th * o[t-1] + x[t]
//! o[t] = H(u[t] - v_th)
//! ```
//!
//! Registering it takes one attribute, `#[typetag::serde(name = "if-soft")]`;
//! once this crate is linked into a binary, a config selects it with
//! `type = "if-soft"` in its `[neuron]` table. Nothing in snn-rs changes.

use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::spec::{Neuron, NeuronSpec};
use snn_core::{Error, FlatT, Mat, ParamStore, Result, Tp};
use snn_neurons::dynamics::spike;
use snn_neurons::Surrogate;

/// Config of the soft-reset IF neuron.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoftResetIfSpec {
    pub v_th: f32,
    pub learn_v_th: bool,
    pub surrogate: Surrogate,
}

impl Default for SoftResetIfSpec {
    fn default() -> Self {
        Self {
            v_th: 1.0,
            learn_v_th: false,
            surrogate: Surrogate::default(),
        }
    }
}

#[typetag::serde(name = "if-soft")]
impl NeuronSpec for SoftResetIfSpec {
    fn build(&self, name: &str, store: &mut ParamStore) -> Result<Box<dyn Neuron>> {
        if !(self.v_th.is_finite() && self.v_th > 0.0) {
            return Err(Error::invalid("neuron.v_th", "must be a positive number"));
        }
        self.surrogate.validate("neuron.surrogate")?;
        let key = format!("{name}.v_th");
        store.insert(&key, &[], vec![self.v_th], self.learn_v_th)?;
        Ok(Box::new(SoftResetIf {
            key,
            surrogate: self.surrogate,
        }))
    }

    fn about(&self) -> &'static str {
        "example plugin: integrate-and-fire with soft reset (u -= v_th on a spike)"
    }
}

#[derive(Debug)]
pub struct SoftResetIf {
    key: String,
    surrogate: Surrogate,
}

impl Neuron for SoftResetIf {
    fn forward(&self, x: Mat, store: &ParamStore) -> Result<Mat> {
        let (steps, m) = *x.shape();
        let dev = x.device().clone();
        let v_th = store.taped(&self.key)?.reshape_like(&());
        let mut u: Option<FlatT> = None;
        let mut outs = Vec::with_capacity(steps);
        // Every step reads row t of x and v_th through copies on empty tapes
        // (same ids, gradients add up); the histories of x and v_th ride on
        // the final output.
        let (x, x_tape) = x.split_tape();
        for t in 0..steps {
            let xt: FlatT = x.retaped::<Tp>().select(dev.tensor(t));
            let th = || v_th.retaped::<Tp>().broadcast_like(&(m,));
            let u_t = match u.take() {
                None => xt,
                Some(prev) => prev + xt,
            };
            let v = u_t.with_empty_tape() - th();
            let centre = v.retaped::<NoneTape>();
            let (o, _) = spike(v, centre, self.surrogate);
            // Soft reset: subtract v_th where the neuron fired.
            let u_after = u_t - o.with_empty_tape() * th();
            outs.push(o);
            u = Some(u_after);
        }
        let out: Mat = outs.stack();
        let (out, mut tape) = out.split_tape();
        let (_, vth_tape) = v_th.split_tape();
        tape = tape.merge(x_tape).merge(vth_tape);
        if let Some(u) = u {
            tape = tape.merge(u.split_tape().1);
        }
        Ok(out.put_tape(tape))
    }

    fn constants(&self, store: &ParamStore) -> Result<Vec<(String, f32)>> {
        Ok(vec![("v_th".into(), store.values(&self.key)?[0])])
    }
}

/// Forces this crate to be linked so its registration is visible.
pub fn link() {}
