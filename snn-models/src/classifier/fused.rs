//! A spiking layer fused with the max-pool after it, on the host: the
//! neuron's host step runs band by band beside the pool, so the `T`
//! full-size spike maps (and in training their gradient) never exist.

use snn_core::dfdx::prelude::*;
use snn_core::spec::{Forward, HostStep};
use snn_core::Result;
use snn_nn::host::spike_pool::{spike_max_pool, spike_max_pool_taped, SpikePool};
use snn_nn::Nhwc;

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

/// A spiking layer and the max-pool after it, fused (CPU): `x` holds the
/// layer's input currents, laid out as [`geometry`] says. Records the
/// layer's firing rate before pooling, as the unfused layers do.
pub(super) fn spike_pool(
    step: Box<dyn HostStep>,
    x: Nhwc,
    shape: SpikePool,
    fwd: &mut Forward<'_>,
    name: &str,
) -> Result<Nhwc> {
    let SpikePool {
        steps,
        images,
        h,
        w,
        c,
        k,
    } = shape;
    let n = x.shape().0;
    let (y, fired) = if snn_core::grad::is_enabled() {
        let keys = step.param_keys().unwrap_or_default();
        let params = keys
            .iter()
            .map(|key| fwd.store.taped(key))
            .collect::<Result<Vec<_>>>()?;
        spike_max_pool_taped(step, x, params, shape)?
    } else {
        let currents = snn_core::host::read(&x.retaped::<NoneTape>().reshape_like(&(n, h, w, c)));
        let (pooled, fired) = spike_max_pool(step.as_ref(), &currents, shape)?;
        let y = x
            .device()
            .tensor_from_vec(pooled, (steps * images, h / k, w / k, c));
        (y.traced(Gradients::leaky()), fired)
    };
    let neurons = (steps * images * h * w * c).max(1);
    fwd.rates
        .push((name.to_string(), (fired as f64 / neurons as f64) as f32));
    Ok(y)
}
