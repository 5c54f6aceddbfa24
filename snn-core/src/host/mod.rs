//! Host-memory access for the project's CPU kernels (custom tape ops).
//!
//! Tensors handed to these functions must be contiguous: call
//! `reshape_like` with their own shape first, which copies only when needed.

pub mod adam;

use crate::Dev;
use dfdx::prelude::*;

/// The values of a contiguous tensor, copied with one `memcpy` (dfdx's
/// `as_vec` walks an element iterator, several times slower).
pub fn read<S: Shape, T>(t: &Tensor<S, f32, Dev, T>) -> Vec<f32> {
    let mut v = vec![0.0f32; t.shape().num_elements()];
    t.copy_into(&mut v);
    v
}

/// Moves the gradient of `t` out of the accumulator without copying it.
///
/// Only for an op's *own output*: when its backward runs, every consumer of
/// the output has already added its share, and nothing reads that gradient
/// afterwards (the accumulator keeps an empty buffer in its place).
pub fn take_grad<S: Shape>(
    grads: &mut Gradients<f32, Dev>,
    t: &Tensor<S, f32, Dev>,
) -> Result<Vec<f32>, <Dev as HasErr>::Err> {
    Ok(std::mem::take(&mut **grads.get_or_alloc_mut(t)?))
}

/// Adds `src` into the gradient of `t`.
pub fn add_grad<S: Shape>(
    grads: &mut Gradients<f32, Dev>,
    t: &Tensor<S, f32, Dev>,
    src: &[f32],
) -> Result<(), <Dev as HasErr>::Err> {
    let g = grads.get_or_alloc_mut(t)?;
    for (a, b) in g.iter_mut().zip(src) {
        *a += b;
    }
    Ok(())
}
