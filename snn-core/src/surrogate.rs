//! Surrogate derivatives of the Heaviside spike function.
//!
//! The forward pass always fires `o = H(v)` (with `H(0) = 1`); only the
//! backward pass uses the surrogate `do/dv`.

use crate::{Dev, Error, Result};
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};
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
            Surrogate::Rectangular { width } => rectangular(width, v),
            Surrogate::Triangle { width } => triangle(width, v),
            Surrogate::Sigmoid { alpha } => sigmoid(alpha, v),
            Surrogate::Atan { alpha } => atan(alpha, v),
        }
    }

    /// [`Surrogate::grad`] of each lane, with the kind matched once for
    /// all of them so the lanes vectorise.
    #[inline(always)]
    pub fn grad_lanes<const L: usize>(&self, v: [f32; L]) -> [f32; L] {
        match *self {
            Surrogate::Rectangular { width } => v.map(|v| rectangular(width, v)),
            Surrogate::Triangle { width } => v.map(|v| triangle(width, v)),
            Surrogate::Sigmoid { alpha } => v.map(|v| sigmoid(alpha, v)),
            Surrogate::Atan { alpha } => v.map(|v| atan(alpha, v)),
        }
    }

    /// The same derivative written with dfdx ops, for the composed path
    /// (which also runs on CUDA). `v` carries no tape. Its formulas mirror
    /// the scalar ones below; `tensor_form_matches_scalar_form` holds them
    /// together.
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

// One definition per surrogate, shared by the scalar and the lane forms.

#[inline(always)]
fn rectangular(width: f32, v: f32) -> f32 {
    if v.abs() < width * 0.5 {
        1.0 / width
    } else {
        0.0
    }
}

#[inline(always)]
fn triangle(width: f32, v: f32) -> f32 {
    let h = 2.0 / width;
    (h * (1.0 - v.abs() * h)).max(0.0)
}

#[inline(always)]
fn sigmoid(alpha: f32, v: f32) -> f32 {
    let s = 1.0 / (1.0 + (-alpha * v).exp());
    alpha * s * (1.0 - s)
}

#[inline(always)]
fn atan(alpha: f32, v: f32) -> f32 {
    let z = FRAC_PI_2 * alpha * v;
    alpha * 0.5 / (1.0 + z * z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device;

    const KINDS: [Surrogate; 4] = [
        Surrogate::Rectangular { width: 1.0 },
        Surrogate::Triangle { width: 2.0 },
        Surrogate::Sigmoid { alpha: 4.0 },
        Surrogate::Atan { alpha: 2.0 },
    ];

    #[test]
    fn scalar_values_by_hand() {
        let [rect, tri, sig, atan] = KINDS;
        // Inside the window 1/width; its edge is outside (strict).
        assert_eq!(
            (rect.grad(0.2), rect.grad(-0.49), rect.grad(0.5)),
            (1.0, 1.0, 0.0)
        );
        // h = 2/width = 1: h (1 - |v| h).
        assert_eq!(
            (tri.grad(0.0), tri.grad(0.5), tri.grad(1.5)),
            (1.0, 0.5, 0.0)
        );
        // alpha s (1 - s) at s = 1/2, and alpha/2 / (1 + (pi/2 alpha v)^2).
        assert_eq!((sig.grad(0.0), atan.grad(0.0)), (1.0, 1.0));
        let z = FRAC_PI_2 * 2.0 * 0.3;
        assert!((atan.grad(0.3) - 1.0 / (1.0 + z * z)).abs() < 1e-7);
    }

    #[test]
    fn tensor_form_matches_scalar_form() {
        let dev = device::create(0).expect("device");
        let u: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.025).collect();
        for s in KINDS {
            let shift = 0.25;
            let v: Vec<f32> = u.iter().map(|x| x - shift).collect();
            let row: Vec<f32> = v
                .chunks(8)
                .flat_map(|c| s.grad_lanes::<8>(std::array::from_fn(|i| c[i % c.len()])))
                .collect();
            let tensor = s
                .grad_tensor(dev.tensor_from_vec(v.clone(), (v.len(),)))
                .as_vec();
            for ((&x, r), t) in v.iter().zip(&row).zip(&tensor) {
                assert_eq!(*r, s.grad(x), "{s:?} row at {x}");
                assert!((t - s.grad(x)).abs() < 1e-6, "{s:?} tensor at {x}: {t}");
            }
        }
    }
}
