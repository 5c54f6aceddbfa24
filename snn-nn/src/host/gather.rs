//! The host side of [`crate::gather::gather_rows`]: one sum over ranks of
//! zero-padded rows (each entry has one non-zero term, so the sum is
//! exact), and a backward that takes the rank's slice.

use crate::Rows;
use snn_core::collective;
use snn_core::dfdx::prelude::*;

pub fn gather_rows(x: Rows) -> Rows {
    let (b, f) = *x.shape();
    let x = x.reshape_like(&(b, f));
    let (rank, size) = (collective::group().rank(), collective::group().size());
    let mut counts = vec![0.0f64; size];
    counts[rank] = b as f64;
    collective::sum_f64(&mut counts);
    let total = counts.iter().sum::<f64>() as usize;
    let start = counts[..rank].iter().sum::<f64>() as usize;
    let (x, mut tape) = x.split_tape();
    let mut all = vec![0.0f32; total * f];
    all[start * f..(start + b) * f].copy_from_slice(&snn_core::host::read(&x));
    collective::sum_f32(&mut all);
    let out = x.device().tensor_from_vec(all, (total, f));
    if !snn_core::grad::is_enabled() {
        return out.put_tape(tape);
    }
    // The step scales this rank's loss by its share b / total: undo it
    // for the whole-batch loss's gradient.
    let unshare = total as f32 / b.max(1) as f32;
    let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
    tape.add_backward_op(move |grads| {
        let gy = snn_core::host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
        let gx = grads.get_or_alloc_mut(&x_ghost)?;
        for (d, g) in gx.iter_mut().zip(&gy[start * f..(start + b) * f]) {
            *d += g * unshare;
        }
        Ok(())
    });
    out.put_tape(tape)
}
