//! The max-pool's host kernel and the window pass it shares with the fused
//! spike + pool layer.

use crate::Nhwc;
use rayon::prelude::*;
use snn_core::dfdx::prelude::*;

/// Max-pool on the CPU: one pass keeps the winner's offset inside its window
/// (a byte per output, [`max_pool_band`]), backward scatters the gradient to
/// it. Same tie rule as [`crate::pool::max_pool_composed`], its test oracle.
pub fn max_pool(x: Nhwc, k: usize) -> Nhwc {
    let (n, h, w, c) = *x.shape();
    let (ho, wo) = (h / k, w / k);
    let x = x.reshape_like(&(n, h, w, c));
    let (x, tape) = x.split_tape();
    let mut tape = tape;
    let xs = snn_core::host::read(&x);
    let mut y = vec![0.0f32; n * ho * wo * c];
    let mut arg = vec![0u8; n * ho * wo * c];
    // Output row r = (b, oy) reads input rows k*r .. k*r + k, one contiguous
    // block: rows are independent and split across threads.
    let (in_row, out_row) = (k * w * c, wo * c);
    y.par_chunks_mut(out_row)
        .zip(arg.par_chunks_mut(out_row))
        .zip(xs.par_chunks(in_row))
        .for_each(|((y_r, arg_r), x_r)| max_pool_band(x_r, y_r, Some(arg_r), w, c, k));
    drop(xs);
    let out = x.device().tensor_from_vec(y, (n, ho, wo, c));
    if !snn_core::grad::is_enabled() {
        return out.put_tape(tape);
    }
    // Ghosts: backward needs the slots and `arg`, not the values.
    let (out_ghost, x_ghost) = (out.ghost(), x.ghost());
    tape.add_backward_op(move |grads| {
        let gy = snn_core::host::take_grad(grads.get_or_alloc_mut(&out_ghost)?);
        let gx = grads.get_or_alloc_mut(&x_ghost)?;
        gx.par_chunks_mut(in_row)
            .zip(gy.par_chunks(out_row).zip(arg.par_chunks(out_row)))
            .for_each(|(gx_r, (gy_r, arg_r))| {
                for ox in 0..wo {
                    let (g, win) = (&gy_r[ox * c..][..c], &arg_r[ox * c..][..c]);
                    // One pass per window cell, a select per channel (no
                    // division, vectorises); losers add an exact zero.
                    for ky in 0..k {
                        for kx in 0..k {
                            let slot = (ky * k + kx) as u8;
                            let dst = &mut gx_r[(ky * w + ox * k + kx) * c..][..c];
                            for ((d, &gv), &a) in dst.iter_mut().zip(g).zip(win) {
                                *d += if a == slot { gv } else { 0.0 };
                            }
                        }
                    }
                }
            });
        Ok(())
    });
    out.put_tape(tape)
}

/// Max over each `k x k` window of a band of `k` rows (`[k, w, c]`) into
/// one pooled row (`[w / k, c]`), and with `arg` the winner's slot
/// `ky * k + kx`: cells are visited in slot order and only a strictly
/// larger value takes over, so the first maximum wins. The CPU max-pools'
/// one tie rule: `max_pool` and the fused spike + pool layer both use it.
pub(crate) fn max_pool_band(
    band: &[f32],
    dst: &mut [f32],
    arg: Option<&mut [u8]>,
    w: usize,
    c: usize,
    k: usize,
) {
    dst.fill(f32::NEG_INFINITY);
    match arg {
        None => {
            for row in band.chunks_exact(w * c) {
                for (x, src) in row.chunks_exact(c).enumerate() {
                    let cell = &mut dst[(x / k) * c..][..c];
                    cell.iter_mut().zip(src).for_each(|(d, &v)| *d = d.max(v));
                }
            }
        }
        Some(arg) => {
            for (ky, row) in band.chunks_exact(w * c).enumerate() {
                for (x, src) in row.chunks_exact(c).enumerate() {
                    let slot = (ky * k + x % k) as u8;
                    let cell = &mut dst[(x / k) * c..][..c];
                    let win = &mut arg[(x / k) * c..][..c];
                    for ((d, a), &v) in cell.iter_mut().zip(win.iter_mut()).zip(src) {
                        let wins = v > *d;
                        *d = if wins { v } else { *d };
                        *a = if wins { slot } else { *a };
                    }
                }
            }
        }
    }
}
