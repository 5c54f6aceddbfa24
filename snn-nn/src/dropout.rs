//! Dropout whose mask is drawn once per sample and shared by all T steps
//! (the PLIF networks' spiking dropout), scaled by `1 / (1 - p)`.

use super::Nhwc;
use rand::Rng as _;
use snn_core::dfdx::prelude::*;
use snn_core::spec::Forward;
use snn_core::{Error, Result};

#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f32,
}

impl Dropout {
    pub fn new(p: f32) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::invalid(
                "dropout",
                format!("p must be in [0, 1), got {p}"),
            ));
        }
        Ok(Self { p })
    }

    /// `x` is `[T * B, H, W, C]`, time-major.
    pub fn forward(&self, x: Nhwc, steps: usize, fwd: &mut Forward<'_>) -> Result<Nhwc> {
        if !fwd.train || self.p == 0.0 {
            return Ok(x);
        }
        let shape = *x.shape();
        let b = shape.0 / steps.max(1);
        let per = shape.1 * shape.2 * shape.3;
        let scale = 1.0 / (1.0 - self.p);
        // Each image's mask from its own generator: the same whatever
        // slice of the batch (or rank) computes it.
        let mask: Vec<f32> = fwd
            .image_rngs(b)
            .iter_mut()
            .flat_map(|rng| {
                (0..per)
                    .map(|_| {
                        if rng.gen::<f32>() < self.p {
                            0.0
                        } else {
                            scale
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let dev = x.device().clone();
        let mask = dev
            .tensor_from_vec(mask, (b, per))
            .broadcast_like::<_, Axis<0>>(&(steps, b, per))
            .reshape_like(&shape);
        Ok(x * mask)
    }
}
