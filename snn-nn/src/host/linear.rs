//! The linear layer on dfdx's tape, on the host: a spike input by index
//! lists, table lookup or the dense GEMM ([`SpikeProduct::choose`]), kept
//! as bits or lists for the weight gradient; any other input by the dense
//! GEMM, kept as floats. The input gradient is always the GEMM.

use super::bias::Bias;
use crate::linear::LinearOperands;
use crate::spike_gemm::{self, SpikeMatrix};
use crate::spike_product::SpikeProduct;
use crate::spike_sparse::{self, SpikeLists};
use crate::Rows;
use snn_core::dfdx::prelude::*;
use snn_core::gemm::{matmul, Op};
use snn_core::{host, Result};

/// `x W + b` for `x` `[n, in]`.
pub fn linear(x: Rows, layer: LinearOperands) -> Result<Rows> {
    let (n, f) = *x.shape();
    let o = layer.outputs;
    let x = x.reshape_like(&(n, f));
    let xs = host::read(&x);
    let (x, x_tape) = x.split_tape();
    let (weight, w_tape) = layer.weight.split_tape();
    let (bias, mut tape) = Bias::split(layer.bias, x_tape.merge(w_tape));
    let ws = host::read(&weight);
    let mut y = vec![0.0f32; n * o];
    let input = match SpikeMatrix::pack(&xs, n, f) {
        Some(bits) => {
            let kernel = layer
                .spike_kernel
                .unwrap_or_else(|| SpikeProduct::choose(&bits, o));
            match kernel {
                SpikeProduct::Table => {
                    spike_gemm::matmul(&bits, &ws, o, &mut y);
                    Input::Bits(bits)
                }
                SpikeProduct::Lists => {
                    let lists = SpikeLists::from_bits(&bits);
                    spike_sparse::matmul(&lists, &ws, o, &mut y);
                    Input::Lists(lists)
                }
                SpikeProduct::Dense => {
                    matmul([n, o, f], Op::N(&xs), Op::N(&ws), &mut y, false);
                    Input::DenseBits(bits)
                }
            }
        }
        None => {
            matmul([n, o, f], Op::N(&xs), Op::N(&ws), &mut y, false);
            Input::Floats(xs)
        }
    };
    if let Some(b) = &bias {
        b.add_to(&mut y);
    }
    let out = x.device().tensor_from_vec(y, (n, o));
    if snn_core::grad::is_enabled() {
        // Ghosts: the slots, not the values (`host::take_grad`); backward
        // reads the input from `input`.
        let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
        tape.add_backward_op(move |grads| {
            let gy = host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
            if let Some(b) = &bias {
                b.add_grad(grads, &gy)?;
            }
            // Both gradients add straight into the accumulator.
            let dx = grads.get_or_alloc_mut(&x_ghost)?;
            matmul([n, f, o], Op::N(&gy), Op::T(&ws), dx, true);
            let dw = grads.get_or_alloc_mut(&weight)?;
            match &input {
                Input::Bits(b) => spike_gemm::weight_grad(b, &gy, o, dw),
                Input::Lists(l) => spike_sparse::weight_grad(l, &gy, o, dw),
                Input::DenseBits(b) => spike_gemm::weight_grad_dense(b, &gy, o, dw),
                Input::Floats(xs) => matmul([f, o, n], Op::T(xs), Op::N(&gy), dw, true),
            }
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// The input as backward keeps it: a spike input in its kernel's form
/// (bits are 1/32 of the floats), any other as the floats.
enum Input {
    Bits(SpikeMatrix),
    Lists(SpikeLists),
    DenseBits(SpikeMatrix),
    Floats(Vec<f32>),
}
