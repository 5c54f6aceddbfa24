//! The linear layer's spike products on dfdx's tape: forward by index lists
//! or table lookup, the input gradient by GEMM, the weight gradient from
//! the spikes.

use super::bias::Bias;
use crate::linear::LinearOperands;
use crate::spike_gemm::{self, SpikeMatrix};
use crate::spike_product::SpikeProduct;
use crate::spike_sparse::{self, SpikeLists};
use crate::Rows;
use snn_core::dfdx::prelude::*;
use snn_core::gemm::{matmul, Op};
use snn_core::{host, Result};

/// `x W + b` by a spike kernel when `x` is a spike matrix and one of
/// them beats the dense product ([`SpikeProduct::choose`]); otherwise
/// `x` back unchanged.
pub fn spike_product(x: Rows, layer: LinearOperands) -> Result<std::result::Result<Rows, Rows>> {
    let (n, f) = *x.shape();
    let o = layer.outputs;
    // Neither spike kernel can win at this shape: skip the read and scan.
    let possible = layer.spike_kernel.is_some() || SpikeProduct::any_applies(n, o);
    if !possible {
        return Ok(Err(x));
    }
    let x = x.reshape_like(&(n, f));
    let Some(bits) = SpikeMatrix::pack(&host::read(&x), n, f) else {
        return Ok(Err(x));
    };
    let choice = layer
        .spike_kernel
        .or_else(|| SpikeProduct::choose(&bits, o));
    let product = match choice {
        Some(SpikeProduct::Table) => SpikeOperand::Bits(bits),
        Some(SpikeProduct::Lists) => SpikeOperand::Lists(SpikeLists::from_bits(&bits)),
        None => return Ok(Err(x)),
    };
    let (x, x_tape) = x.split_tape();
    let (weight, w_tape) = layer.weight.split_tape();
    let (bias, mut tape) = Bias::split(layer.bias, x_tape.merge(w_tape));
    let ws = host::read(&weight);
    let mut y = vec![0.0f32; n * o];
    match &product {
        SpikeOperand::Bits(b) => spike_gemm::matmul(b, &ws, o, &mut y),
        SpikeOperand::Lists(l) => spike_sparse::matmul(l, &ws, o, &mut y),
    }
    if let Some(b) = &bias {
        b.add_to(&mut y);
    }
    let out = x.device().tensor_from_vec(y, (n, o));
    if snn_core::grad::is_enabled() {
        // Ghosts: the slots, not the values (`host::take_grad`); backward
        // reads the spikes from `product`.
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
            match &product {
                SpikeOperand::Bits(b) => spike_gemm::weight_grad(b, &gy, o, dw),
                SpikeOperand::Lists(l) => spike_sparse::weight_grad(l, &gy, o, dw),
            }
            Ok(())
        });
    }
    Ok(Ok(out.put_tape(tape)))
}

/// The spike operand kept for backward, in the chosen kernel's form.
enum SpikeOperand {
    Bits(SpikeMatrix),
    Lists(SpikeLists),
}
