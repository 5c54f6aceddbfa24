//! A spiking layer fused with the max-pool after it, on the host: the
//! neuron's host step runs band by band beside the pool, so the `T`
//! full-size spike maps (and in training their gradient) never exist.

use snn_core::dfdx::prelude::*;
use snn_core::spec::{Forward, HostStep};
use snn_core::Result;
use snn_nn::host::spike_pool::{spike_max_pool_taped, SpikePool};
use snn_nn::{BatchNorm, Nhwc, Spiking};

/// The fused layer's geometry for input `x`: `[B, H, W, C]` before the time
/// loop exists (`timed == false`) or `[T x B, H, W, C]`, pooled `k x k`.
pub(super) fn geometry(x: &Nhwc, timed: bool, steps: usize, k: usize) -> SpikePool {
    let (n, h, w, c) = *x.shape();
    let images = if timed { n / steps.max(1) } else { n };
    SpikePool {
        steps,
        images,
        h,
        w,
        c,
        k,
    }
}

/// A spiking layer and the max-pool after it, fused (CPU), with the batch
/// norm before them where there is one: `x` holds the layer's input
/// currents (or batch norm's input), laid out as [`geometry`] says.
/// Records the layer's firing rate before pooling, as the unfused layers
/// do.
pub(super) fn spike_pool(
    step: Box<dyn HostStep>,
    x: Nhwc,
    shape: SpikePool,
    fwd: &mut Forward<'_>,
    (sn, bn): (&Spiking, Option<&BatchNorm>),
) -> Result<Nhwc> {
    let SpikePool {
        steps,
        images,
        h,
        w,
        c,
        ..
    } = shape;
    let rows_n = x.shape().0 * h * w;
    let operands = bn.map(|bn| bn.fold_operands(c, rows_n, fwd)).transpose()?;
    let params = snn_nn::spiking::taped_params(step.as_ref(), fwd.store)?;
    let (y, fired, stats) = spike_max_pool_taped(step, x, params, shape, operands)?;
    if let (Some(bn), Some(stats)) = (bn, stats) {
        bn.record_stats(fwd, stats)?;
    }
    fwd.record_fired(&sn.name, fired, steps * images * h * w * c);
    Ok(y)
}
