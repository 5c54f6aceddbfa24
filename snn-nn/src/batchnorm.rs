//! Batch normalisation over all rows of a channels-last tensor (batch, and
//! for images H and W; with time folded in, also T), per-channel affine.
//! Training uses batch statistics and records running statistics (momentum
//! 0.1, unbiased variance, as PyTorch); evaluation uses the running ones.

use super::{Nhwc, Rows, Spiking};
use snn_core::dfdx::prelude::*;
use snn_core::spec::Forward;
use snn_core::{Error, Flat, FlatT, Impl, Result, Scope};

#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub name: String,
    pub channels: usize,
    pub eps: f32,
    pub momentum: f32,
    /// Constant factor on the normalised value before the affine map:
    /// 1 for batch norm, `alpha * V_th` for tdBN (Zheng et al. 2021).
    pub scale: f32,
    pub kernel_impl: Impl,
}

impl BatchNorm {
    /// Registers `weight`, `bias` (learned) and `running_mean`,
    /// `running_var` (buffers) in `scope` and returns the layer.
    pub fn new(scope: &mut Scope<'_>, channels: usize) -> Result<Self> {
        let c = channels;
        scope.insert("weight", &[c], vec![1.0; c], true)?;
        scope.insert("bias", &[c], vec![0.0; c], true)?;
        scope.insert("running_mean", &[c], vec![0.0; c], false)?;
        scope.insert("running_var", &[c], vec![1.0; c], false)?;
        Ok(Self {
            name: scope.name().to_string(),
            channels,
            eps: 1e-5,
            momentum: 0.1,
            scale: 1.0,
            kernel_impl: Impl::Auto,
        })
    }

    /// Threshold-dependent batch norm: statistics over every row (with time
    /// folded into the rows: batch, T, H and W), normalised values scaled by
    /// `alpha * v_th` before the learned affine map.
    pub fn tdbn(scope: &mut Scope<'_>, channels: usize, alpha: f32, v_th: f32) -> Result<Self> {
        let mut bn = Self::new(scope, channels)?;
        bn.scale = alpha * v_th;
        Ok(bn)
    }

    fn check_batch(&self, rows_n: usize) -> Result<()> {
        if rows_n < 2 {
            return Err(Error::shape(
                &self.name,
                "training needs at least 2 values per channel",
            ));
        }
        Ok(())
    }

    /// Queues the running statistics' update from one batch's mean and
    /// biased variance over `rows_n` rows (every rank's), by PyTorch's rule `r = (1 - m) r
    /// plus m b` with the variance unbiased by `n / (n - 1)`. Applied after
    /// the step (`Forward::apply_updates`), outside the tape; both paths of
    /// the layer use this one definition.
    fn queue_running_update(
        &self,
        fwd: &mut Forward<'_>,
        rows_n: usize,
        mean: Flat,
        var: Flat,
    ) -> Result<()> {
        let key = |s: &str| format!("{}.{s}", self.name);
        let m = self.momentum;
        let unbias = rows_n as f32 / (rows_n as f32 - 1.0);
        let rm = fwd.store.get(&key("running_mean"))?.value.clone();
        let rv = fwd.store.get(&key("running_var"))?.value.clone();
        fwd.updates
            .push((key("running_mean"), rm * (1.0 - m) + mean * m));
        fwd.updates
            .push((key("running_var"), rv * (1.0 - m) + var * (m * unbias)));
        Ok(())
    }

    pub fn forward(&self, x: Nhwc, fwd: &mut Forward<'_>) -> Result<Nhwc> {
        let shape = *x.shape();
        let c = shape.3;
        if c != self.channels {
            return Err(Error::shape(
                &self.name,
                format!("input has {c} channels, layer expects {}", self.channels),
            ));
        }
        let rows_n = shape.0 * shape.1 * shape.2;
        let x = x.reshape_like(&(rows_n, c));
        let store = fwd.store;
        let key = |s: &str| format!("{}.{s}", self.name);
        let gamma = store.taped(&key("weight"))?;
        let beta = store.taped(&key("bias"))?;
        let y = if fwd.train {
            self.check_batch(rows_n)?;
            let (y, mean, var, rows) = self.normalise_batch(x, gamma, beta);
            self.queue_running_update(fwd, rows, mean, var)?;
            y
        } else {
            let rm = store.get(&key("running_mean"))?.value.clone();
            let rv = store.get(&key("running_var"))?.value.clone();
            self.normalise_running(x, gamma, beta, rm, rv)
        };
        Ok(y.reshape_like(&shape))
    }

    /// This layer and the spiking layer `sn` after it: the spikes
    /// `[T * B, H, W, C]` of `sn` driven by the normalised `x` (a sequence
    /// `[T * B, H, W, C]` when `timed`, else `[B, H, W, C]` repeated over
    /// `steps`). With the CPU kernels and a neuron host step that can
    /// train, one fused kernel ([`crate::host::bn_spike`]) that never
    /// stores the normalised currents; otherwise the two layers in turn.
    pub fn forward_spiking(
        &self,
        x: Nhwc,
        sn: &Spiking,
        steps: usize,
        timed: bool,
        fwd: &mut Forward<'_>,
    ) -> Result<Nhwc> {
        snn_core::host_kernels! {
            if self.kernel_impl.host() {
                if let Some(step) = crate::spiking::fusable_step(sn.neuron.as_ref(), fwd.store)? {
                    return self.fused_spiking(x, step, sn, steps, timed, fwd);
                }
            }
        }
        let y = self.forward(x, fwd)?;
        sn.forward(y, steps, timed, fwd)
    }

    snn_core::host_kernels! {
        fn fused_spiking(
            &self,
            x: Nhwc,
            step: Box<dyn snn_core::spec::HostStep>,
            sn: &Spiking,
            steps: usize,
            timed: bool,
            fwd: &mut Forward<'_>,
        ) -> Result<Nhwc> {
            let (n, h, w, c) = *x.shape();
            let rows_n = n * h * w;
            let bn = self.fold_operands(c, rows_n, fwd)?;
            let params = crate::spiking::taped_params(step.as_ref(), fwd.store)?;
            let (spikes, fired, stats) = crate::host::bn_spike::batch_norm_spike(
                x.reshape_like(&(rows_n, c)),
                bn,
                step,
                params,
                steps,
                !timed,
            )?;
            self.record_stats(fwd, stats)?;
            let images = if timed { n } else { steps * n };
            fwd.record_fired(&sn.name, fired, images * h * w * c);
            Ok(spikes.reshape_like(&(images, h, w, c)))
        }

        /// What a fused kernel needs to apply this layer to an input of
        /// `rows_n` rows of `c` channels: the parameters on the tape and,
        /// in evaluation, the running statistics (training uses the
        /// batch's; hand them to [`BatchNorm::record_stats`] after).
        pub fn fold_operands(
            &self,
            c: usize,
            rows_n: usize,
            fwd: &Forward<'_>,
        ) -> Result<crate::host::batchnorm::BnOperands> {
            if c != self.channels {
                return Err(Error::shape(
                    &self.name,
                    format!("input has {c} channels, layer expects {}", self.channels),
                ));
            }
            let store = fwd.store;
            let key = |s: &str| format!("{}.{s}", self.name);
            let (gamma, beta) = (store.taped(&key("weight"))?, store.taped(&key("bias"))?);
            let stats = if fwd.train {
                self.check_batch(rows_n)?;
                None
            } else {
                let values = |s: &str| store.values(&key(s));
                let given = crate::host::batchnorm::Stats::given;
                Some(given(values("running_mean")?, values("running_var")?))
            };
            Ok(self.operands(gamma, beta, stats))
        }

        /// Queues the running statistics' update from the batch statistics
        /// a fused kernel normalised with (training only).
        pub fn record_stats(
            &self,
            fwd: &mut Forward<'_>,
            stats: crate::host::batchnorm::Stats,
        ) -> Result<()> {
            let crate::host::batchnorm::Stats { mean, var, rows } = stats;
            if !fwd.train {
                return Ok(());
            }
            let dev = fwd.store.dev().clone();
            let c = mean.len();
            let (mean, var) = (dev.tensor_from_vec(mean, (c,)), dev.tensor_from_vec(var, (c,)));
            self.queue_running_update(fwd, rows, mean, var)
        }

        fn operands(
            &self,
            gamma: FlatT,
            beta: FlatT,
            stats: Option<crate::host::batchnorm::Stats>,
        ) -> crate::host::batchnorm::BnOperands {
            crate::host::batchnorm::BnOperands {
                gamma,
                beta,
                stats,
                eps: self.eps,
                scale: self.scale,
            }
        }
    }

    /// Training: `[rows, C]` normalised by its own statistics, then scaled
    /// and shifted; returns the batch mean and biased variance too, and
    /// the rows they are over. The host kernel's statistics are over every
    /// rank's rows (synchronised); the composed path's over this
    /// process's.
    fn normalise_batch(&self, x: Rows, gamma: FlatT, beta: FlatT) -> (Rows, Flat, Flat, usize) {
        let (rows_n, c) = *x.shape();
        snn_core::host_kernels! {
            if self.kernel_impl.host() {
                let (y, stats) = crate::host::batchnorm::batch_norm(x, self.operands(gamma, beta, None));
                let dev = y.device().clone();
                let (mean, var) = (dev.tensor_from_vec(stats.mean, (c,)), dev.tensor_from_vec(stats.var, (c,)));
                return (y, mean, var, stats.rows);
            }
        }
        let mean = x.with_empty_tape().mean::<_, Axis<0>>();
        let mean_plain = mean.retaped::<NoneTape>();
        let centred = x - mean.broadcast_like::<_, Axis<0>>(&(rows_n, c));
        let var = centred.with_empty_tape().square().mean::<_, Axis<0>>();
        let var_plain = var.retaped::<NoneTape>();
        let inv_std = (var + self.eps).sqrt().recip();
        let normalised = centred * inv_std.broadcast_like::<_, Axis<0>>(&(rows_n, c));
        (
            self.affine(normalised, gamma, beta),
            mean_plain,
            var_plain,
            rows_n,
        )
    }

    /// Evaluation: `[rows, C]` normalised by the running statistics, then
    /// scaled and shifted.
    fn normalise_running(&self, x: Rows, gamma: FlatT, beta: FlatT, rm: Flat, rv: Flat) -> Rows {
        let (rows_n, c) = *x.shape();
        snn_core::host_kernels! {
            if self.kernel_impl.host() {
                let stats = Some(crate::host::batchnorm::Stats::given(rm.as_vec(), rv.as_vec()));
                return crate::host::batchnorm::batch_norm(x, self.operands(gamma, beta, stats)).0;
            }
        }
        let inv_std = (rv + self.eps).sqrt().recip();
        let normalised = (x - rm.broadcast_like::<_, Axis<0>>(&(rows_n, c)))
            * inv_std.broadcast_like::<_, Axis<0>>(&(rows_n, c));
        self.affine(normalised, gamma, beta)
    }

    /// `scale * gamma * normalised + beta` (the composed path).
    fn affine(&self, normalised: Rows, gamma: FlatT, beta: FlatT) -> Rows {
        let (rows_n, c) = *normalised.shape();
        let normalised = if self.scale == 1.0 {
            normalised
        } else {
            normalised * self.scale
        };
        normalised * gamma.broadcast_like::<_, Axis<0>>(&(rows_n, c))
            + beta.broadcast_like::<_, Axis<0>>(&(rows_n, c))
    }
}
