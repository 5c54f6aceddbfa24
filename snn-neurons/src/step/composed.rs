//! The composed twin: a step run on taped dfdx tensors, one time step at a
//! time, with dfdx's own autodiff for the backward pass. It runs on every
//! device and is the oracle the host kernels are tested against.
//!
//! Each value holds its tensor on an empty tape, and every operation's
//! tape goes into one shared sink that the output finally carries, so no
//! history is lost whatever the step does with its intermediate values.

use snn_core::dfdx::prelude::*;
use snn_core::step::{NeuronStep, Num};
use snn_core::surrogate::Surrogate;
use snn_core::{Dev, Error, Flat, FlatT, Mat, Result, Tp};
use std::cell::RefCell;
use std::ops::{Add, Mul, Sub};
use std::rc::Rc;

type Sink = Rc<RefCell<Tp>>;

/// A flat taped tensor (length 1 for a layer constant, `M` for a row of
/// neurons; operations broadcast the former to the latter).
pub struct Taped {
    t: FlatT,
    sink: Sink,
}

impl Taped {
    fn wrap(t: FlatT, sink: &Sink) -> Self {
        let (t, tape) = t.split_tape();
        let mut s = sink.borrow_mut();
        let all = std::mem::take(&mut *s).merge(tape);
        *s = all;
        Self {
            t: t.put_tape(Tp::default()),
            sink: sink.clone(),
        }
    }

    fn len(&self) -> usize {
        self.t.shape().0
    }

    fn widened(&self, n: usize) -> FlatT {
        let t = self.t.with_empty_tape();
        if self.len() == n {
            t
        } else {
            t.reshape_like(&()).broadcast_like(&(n,))
        }
    }

    fn binary(self, o: Self, f: impl FnOnce(FlatT, FlatT) -> FlatT) -> Self {
        let n = self.len().max(o.len());
        Self::wrap(f(self.widened(n), o.widened(n)), &self.sink)
    }
}

impl Clone for Taped {
    fn clone(&self) -> Self {
        Self {
            t: self.t.with_empty_tape(),
            sink: self.sink.clone(),
        }
    }
}

impl Add for Taped {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        self.binary(o, |a, b| a + b)
    }
}

impl Sub for Taped {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        self.binary(o, |a, b| a - b)
    }
}

impl Mul for Taped {
    type Output = Self;
    fn mul(self, o: Self) -> Self {
        self.binary(o, |a, b| a * b)
    }
}

impl Num for Taped {
    fn lit(&self, c: f32) -> Self {
        let t = self.t.device().tensor_from_vec(vec![c], (1,));
        Self::wrap(t.retaped::<Tp>(), &self.sink)
    }

    fn spike(&self, centre: &Self, surrogate: &Surrogate) -> Self {
        let n = self.len().max(centre.len());
        let c = centre.widened(n).retaped::<NoneTape>();
        Self::wrap(spike(self.widened(n), c, *surrogate).0, &self.sink)
    }

    fn detach(&self) -> Self {
        // A new tensor (new id): no gradient reaches the original.
        let fresh = self.t.retaped::<NoneTape>() * 1.0;
        Self::wrap(fresh.retaped::<Tp>(), &self.sink)
    }

    fn sigmoid(&self) -> Self {
        Self::wrap(self.t.with_empty_tape().sigmoid(), &self.sink)
    }
}

/// One time step's spikes `H(v)` with the surrogate gradient, from dfdx ops
/// (any device). `centre` is where the surrogate is evaluated. Returns the
/// taped spikes and their plain values.
///
/// Straight-through form: `o = v * g + (H(v) - v * g)|detached`, with
/// `g = surrogate'(centre)` taken as a constant. Its value is `H(v)` and its
/// derivative with respect to `v` is `g`.
pub fn spike(v: FlatT, centre: Flat, surrogate: Surrogate) -> (FlatT, Flat) {
    let dev = v.device().clone();
    let v_plain = v.retaped::<NoneTape>();
    let g = surrogate.grad_tensor(centre);
    let h = v_plain
        .clone()
        .ge(0.0)
        .choose(dev.ones_like(&v_plain), dev.zeros_like(&v_plain));
    let offset = h.clone() - v_plain * g.clone();
    (v * g + offset, h)
}

/// The layer on `x` (`[steps, M]` or `[1, M]` repeated), composed of dfdx
/// ops; `params` as [`super::fused::forward`]'s.
pub fn forward<S: NeuronStep>(step: &S, x: Mat, steps: usize, params: Vec<FlatT>) -> Result<Mat> {
    let (rows, m) = *x.shape();
    if steps == 0 || (rows != steps && rows != 1) {
        return Err(Error::shape(
            "neuron input",
            format!("{rows} rows for {steps} time steps"),
        ));
    }
    let dev: Dev = x.device().clone();
    let sink: Sink = Rc::new(RefCell::new(Tp::default()));
    let (x, x_tape) = x.split_tape();
    let all = std::mem::take(&mut *sink.borrow_mut()).merge(x_tape);
    *sink.borrow_mut() = all;
    let x = x.put_tape(Tp::default());
    let params: Vec<Taped> = params.into_iter().map(|p| Taped::wrap(p, &sink)).collect();
    let k = step.constants(&params);
    let zero = Taped::wrap(dev.zeros_like(&(m,)).retaped::<Tp>(), &sink);
    let mut state: Vec<Taped> = vec![zero; S::STATE];
    let mut outs: Vec<FlatT> = Vec::with_capacity(steps);
    for t in 0..steps {
        let row = if rows == 1 { 0 } else { t };
        let xt = Taped::wrap(x.with_empty_tape().select(dev.tensor(row)), &sink);
        let o = step.step(&k, &mut state, xt);
        outs.push(o.widened(m));
    }
    let stacked: Mat = outs.stack();
    let (stacked, tape) = stacked.split_tape();
    drop((k, state));
    let all = std::mem::take(&mut *sink.borrow_mut()).merge(tape);
    Ok(stacked.put_tape(all))
}
