//! The bias of the layers with CPU kernels (convolution, transposed
//! convolution, the spike products of linear layers), fused into them.

use snn_core::dfdx::prelude::*;
use snn_core::{host, Dev, Flat, FlatT, Tp};

/// A per-channel bias added inside a kernel: one pass over the output rows
/// the kernel writes anyway, and in backward the channel sums of the output
/// gradient it already holds, instead of a broadcast op on the tape (a
/// second pass over the output each way and a zeroed gradient buffer).
pub struct Bias {
    tensor: Flat,
    values: Vec<f32>,
}

impl Bias {
    /// Splits the bias off its tape and merges that into `tape`.
    pub fn split(bias: Option<FlatT>, tape: Tp) -> (Option<Self>, Tp) {
        match bias {
            None => (None, tape),
            Some(b) => {
                let (tensor, b_tape) = b.split_tape();
                let values = host::read(&tensor);
                (Some(Self { tensor, values }), tape.merge(b_tape))
            }
        }
    }

    /// `y[r, o] += b[o]` over rows of `b.len()` channels (NHWC).
    pub fn add_to(&self, y: &mut [f32]) {
        for row in y.chunks_exact_mut(self.values.len().max(1)) {
            for (v, b) in row.iter_mut().zip(&self.values) {
                *v += b;
            }
        }
    }

    /// Adds the channel sums of `gy` into the bias gradient.
    pub fn add_grad(
        &self,
        grads: &mut Gradients<f32, Dev>,
        gy: &[f32],
    ) -> Result<(), <Dev as HasErr>::Err> {
        let mut db = vec![0.0f32; self.values.len()];
        for row in gy.chunks_exact(db.len().max(1)) {
            for (d, g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
        host::add_grad(grads.get_or_alloc_mut(&self.tensor)?, &db);
        Ok(())
    }
}
