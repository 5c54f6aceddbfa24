//! Pooling with window = stride: max-pool over `k x k` image windows and the
//! voting layer (mean of each group of `k` features).

use super::{Nhwc, Rows};
#[cfg(not(feature = "cuda"))]
use rayon::prelude::*;
use snn_core::dfdx::prelude::*;
use snn_core::{Error, Result};

/// `k x k` max-pool with stride `k`, channels-last.
///
/// The winner of each window is found on the host and the output gathered
/// from it, so the gradient goes to one element per window: the first
/// maximum in row-major window order, as PyTorch does. dfdx's `max` would
/// instead send it to every tied maximum, and spike inputs tie constantly.
pub fn max_pool(x: Nhwc, k: usize) -> Result<Nhwc> {
    let (_, h, w, _) = *x.shape();
    if k == 0 || h % k != 0 || w % k != 0 {
        return Err(Error::shape(
            "max-pool",
            format!("input {h}x{w} is not divisible by window {k}"),
        ));
    }
    #[cfg(not(feature = "cuda"))]
    {
        Ok(max_pool_cpu(x, k))
    }
    #[cfg(feature = "cuda")]
    {
        max_pool_composed(x, k)
    }
}

/// The composed max-pool (any device): the winners' flat indices are found
/// on the host and the output gathered from them.
pub fn max_pool_composed(x: Nhwc, k: usize) -> Result<Nhwc> {
    let (n, h, w, c) = *x.shape();
    let (ho, wo) = (h / k, w / k);
    let values = x.retaped::<NoneTape>().as_vec();
    let mut idx = Vec::with_capacity(n * ho * wo * c);
    for b in 0..n {
        for oy in 0..ho {
            for ox in 0..wo {
                for ch in 0..c {
                    let mut best = ((b * h + oy * k) * w + ox * k) * c + ch;
                    for ky in 0..k {
                        for kx in 0..k {
                            let i = ((b * h + oy * k + ky) * w + ox * k + kx) * c + ch;
                            if values[i] > values[best] {
                                best = i;
                            }
                        }
                    }
                    idx.push(best);
                }
            }
        }
    }
    let dev = x.device().clone();
    let idx = dev.tensor_from_vec(idx, (n * ho * wo * c,));
    let flat = x.reshape_like(&(n * h * w * c,));
    let y: Tensor<(usize,), f32, _, _> = flat.gather(idx);
    Ok(y.reshape_like(&(n, ho, wo, c)))
}

/// `k x k` average pool with stride `k`, channels-last.
pub fn avg_pool(x: Nhwc, k: usize) -> Result<Nhwc> {
    let (n, h, w, c) = *x.shape();
    if k == 0 || h % k != 0 || w % k != 0 {
        return Err(Error::shape(
            "avg-pool",
            format!("input {h}x{w} is not divisible by window {k}"),
        ));
    }
    let x = x.reshape_like(&(n, h / k, k, w / k, k, c));
    Ok(x.mean::<_, Axes2<2, 4>>())
}

/// The voting layer (`APk10s10` after `FC100`): mean of each group of `k`
/// consecutive features, `[N, F] -> [N, F / k]`.
pub fn vote(x: Rows, k: usize) -> Result<Rows> {
    let (n, f) = *x.shape();
    if k == 0 || f % k != 0 {
        return Err(Error::shape(
            "voting layer",
            format!("{f} features are not divisible by group size {k}"),
        ));
    }
    Ok(x.reshape_like(&(n, f / k, k)).mean::<_, Axis<2>>())
}

/// Max-pool on the CPU: one pass keeps the winner's offset inside its window
/// (a byte per output, [`max_pool_band`]), backward scatters the gradient to
/// it. Same tie rule as [`max_pool_composed`], its test oracle.
#[cfg(not(feature = "cuda"))]
fn max_pool_cpu(x: Nhwc, k: usize) -> Nhwc {
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
    let out_id = out.clone();
    tape.add_backward_op(move |grads| {
        let gy = snn_core::host::take_grad(grads, &out_id)?;
        let gx = grads.get_or_alloc_mut(&x)?;
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
#[cfg(not(feature = "cuda"))]
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
