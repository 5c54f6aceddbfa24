//! Surrogate derivatives of the Heaviside spike function.
//!
//! The forward pass always fires `o = H(v)` (with `H(0) = 1`); only the
//! backward pass uses the surrogate `do/dv`.

use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::{Dev, Error, Result};
use std::f32::consts::FRAC_PI_2;

/// `do/dv` as a function of `v` (the membrane relative to the window centre).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Surrogate {
    /// The paper's Eq. 7: `1/width` where `|v| < width/2`, else 0.
    Rectangular { width: f32 },
    /// Triangle of unit area on `|v| < width/2`: `(2/width)(1 - 2|v|/width)`.
    Triangle { width: f32 },
    /// Derivative of `sigmoid(alpha v)` (SpikingJelly's default).
    Sigmoid { alpha: f32 },
    /// Derivative of `atan(pi/2 alpha v)/pi + 1/2` (the PLIF authors' code).
    Atan { alpha: f32 },
}

impl Default for Surrogate {
    fn default() -> Self {
        Surrogate::Rectangular { width: 1.0 }
    }
}

impl Surrogate {
    pub fn validate(&self, field: &str) -> Result<()> {
        let (name, x) = match *self {
            Surrogate::Rectangular { width } | Surrogate::Triangle { width } => ("width", width),
            Surrogate::Sigmoid { alpha } | Surrogate::Atan { alpha } => ("alpha", alpha),
        };
        if !(x.is_finite() && x > 0.0) {
            return Err(Error::invalid(
                format!("{field}.{name}"),
                format!("must be a positive number, got {x}"),
            ));
        }
        Ok(())
    }

    /// The scalar derivative (used by the fused kernel and the references).
    #[inline]
    pub fn grad(&self, v: f32) -> f32 {
        match *self {
            Surrogate::Rectangular { width } => {
                if v.abs() < width * 0.5 {
                    1.0 / width
                } else {
                    0.0
                }
            }
            Surrogate::Triangle { width } => {
                let h = 2.0 / width;
                (h * (1.0 - v.abs() * h)).max(0.0)
            }
            Surrogate::Sigmoid { alpha } => {
                let s = 1.0 / (1.0 + (-alpha * v).exp());
                alpha * s * (1.0 - s)
            }
            Surrogate::Atan { alpha } => {
                let z = FRAC_PI_2 * alpha * v;
                alpha * 0.5 / (1.0 + z * z)
            }
        }
    }

    /// The same derivative written with dfdx ops, for the composed path
    /// (which also runs on CUDA). `v` carries no tape.
    /// `out[i] = grad(u[i] - shift)`, with the kind matched once so the
    /// loop vectorises.
    pub fn grad_row(&self, u: &[f32], shift: f32, out: &mut [f32]) {
        fn each(u: &[f32], shift: f32, out: &mut [f32], f: impl Fn(f32) -> f32) {
            for (o, &v) in out.iter_mut().zip(u) {
                *o = f(v - shift);
            }
        }
        match *self {
            Surrogate::Rectangular { width } => each(u, shift, out, |v| {
                if v.abs() < width * 0.5 {
                    1.0 / width
                } else {
                    0.0
                }
            }),
            s @ Surrogate::Triangle { .. } => each(u, shift, out, |v| s.grad(v)),
            s @ Surrogate::Sigmoid { .. } => each(u, shift, out, |v| s.grad(v)),
            Surrogate::Atan { alpha } => each(u, shift, out, |v| {
                let z = FRAC_PI_2 * alpha * v;
                alpha * 0.5 / (1.0 + z * z)
            }),
        }
    }

    pub fn grad_tensor(&self, v: Tensor<(usize,), f32, Dev>) -> Tensor<(usize,), f32, Dev> {
        match *self {
            Surrogate::Rectangular { width } => {
                let dev = v.device().clone();
                let inside = v.clone().abs().lt(width * 0.5);
                let hi = dev.ones_like(&v) * (1.0 / width);
                inside.choose(hi, dev.zeros_like(&v))
            }
            Surrogate::Triangle { width } => {
                let h = 2.0 / width;
                ((v.abs() * -h + 1.0) * h).relu()
            }
            Surrogate::Sigmoid { alpha } => {
                let s = (v * alpha).sigmoid();
                let one_minus = s.clone().negate() + 1.0;
                s * one_minus * alpha
            }
            Surrogate::Atan { alpha } => {
                let z = v * (FRAC_PI_2 * alpha);
                (z.square() + 1.0).recip() * (alpha * 0.5)
            }
        }
    }
}
