//! The peak memory of a training run, estimated before the run allocates
//! anything large: `snn check` prints it, and `snn train` / `snn bench`
//! refuse a config whose estimate exceeds the machine.
//!
//! No formula per layer: the estimate *measures* the config's own model. It
//! builds the model and runs one real training step and one evaluation
//! batch (`train.eval_batch_size`) on random images, each at two small
//! batches of its own, reading the counting allocator's peak
//! ([`snn_core::memory`]). Memory is affine in the batch (parameters,
//! gradients and optimizer moments do not grow with it; activations do), so
//! two batches give both parts exactly; the configured batch is then one
//! multiplication. Time steps up to [`MEASURED_STEPS`] are measured as
//! configured; longer runs are probed at 8, 16 and 32 steps and extrapolated
//! by the quadratic through them (an autoregressive model may keep one
//! activation per prefix, T^2; a plain SNN is linear in T). The data held in
//! memory (train and test images as f32) is added from the files' headers
//! and sizes. The result is checked against measured peaks in
//! `docs/reliability.md`.

use crate::config::RunConfig;
use crate::session::{build_model, optimizer};
use crate::step::{train_step, Learner, StepBatch};
use snn_core::dfdx::prelude::*;
use snn_core::spec::Forward;
use snn_core::{collective, device, init, memory, Result};
use snn_data::Split;
use std::path::Path;

/// Time steps measured as configured; more are extrapolated.
pub const MEASURED_STEPS: usize = 32;
/// The two batches the probes run for a configured `batch`: a quarter and
/// half of it, between 2 and 16. Memory per image grows a little with the
/// batch (kernels pick other tilings for larger ones: 6.1 MiB per image
/// measured at batches 4-8 on the Table-8 MNIST net, 7.0 at 8-16, 9.5 at
/// 16-32), so probes near the configured batch fit best; 16 bounds their
/// cost (the CIFAR-10 net's probes at 8 and 16 take ~10 s, at 16 and 32
/// ~30 s). Batches below 2 are extrapolated down (the fit is affine).
fn probe_batches(batch: usize) -> [usize; 2] {
    probe_batches_up_to(batch, 16)
}

/// The two evaluation batches the probes run for a configured evaluation
/// batch: as [`probe_batches`], up to 64 (no tape: an image costs less
/// there). For the default 4x the training batch these are 4x the
/// training probes, from training batch 8 up.
fn eval_probe_batches(eval_batch: usize) -> [usize; 2] {
    probe_batches_up_to(eval_batch, 64)
}

fn probe_batches_up_to(batch: usize, cap: usize) -> [usize; 2] {
    let hi = (batch / 2).clamp(4, cap);
    [hi / 2, hi]
}
/// Time steps of the probes when `time_steps` exceeds [`MEASURED_STEPS`].
const PROBE_STEPS: [usize; 3] = [8, 16, 32];

/// How memory grows with time steps between the probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    Linear,
    /// A T^2 term accounts for a real share of the growth (an
    /// autoregressive model keeping one activation per prefix).
    Quadratic,
}

/// What a run of the config holds at its peak, in bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub batch: usize,
    pub time_steps: usize,
    /// Whether the phase that peaks is the test pass (an evaluation batch:
    /// `batch` is then `train.eval_batch_size`).
    pub evaluation: bool,
    /// Independent of the batch: parameters, gradients, optimizer moments
    /// and whatever a step allocates once (at the largest measured time
    /// steps, when those were extrapolated).
    pub fixed: u64,
    /// Per image of `batch`, in the phase that peaks (same).
    pub per_image: u64,
    /// Train and test images in memory (`None`: the data could not be
    /// counted, e.g. not fetched yet).
    pub data: Option<u64>,
    /// How `time_steps` beyond those measured was reached, if it was.
    pub extrapolated: Option<Growth>,
    /// The largest phase of the run (building, a training step's forward,
    /// backward or update, an evaluation batch): `fixed + per_image x
    /// batch`, without the data and what the process held before.
    pub step: u64,
    pub total: u64,
}

impl Estimate {
    /// One line for people: total and its parts.
    pub fn describe(&self) -> String {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        let data = match self.data {
            Some(d) => format!(" + data {:.0} MiB", mib(d)),
            None => " (data not counted: not found)".into(),
        };
        let parts = format!(
            "{:.0} MiB fixed + {:.2} MiB per image x {}batch {}",
            mib(self.fixed),
            mib(self.per_image),
            if self.evaluation { "evaluation " } else { "" },
            self.batch
        );
        let how = match self.extrapolated {
            Some(g) => format!(
                "at {} time steps, extrapolated {} from 8-32 (at 32: {parts})",
                self.time_steps,
                if g == Growth::Quadratic {
                    "quadratically"
                } else {
                    "linearly"
                },
            ),
            None => format!("at {} time steps: {parts}", self.time_steps),
        };
        let ranks = collective::group().size();
        let per_rank = if ranks > 1 {
            format!(" per rank ({ranks} ranks)")
        } else {
            String::new()
        };
        format!(
            "estimated peak memory {:.2} GiB{per_rank} {how}{data}",
            memory::gib(self.total)
        )
    }
}

/// Estimates `cfg`'s peak; `None` when the process does not count its
/// memory (the counting allocator is the `snn` binary's).
pub fn estimate(cfg: &RunConfig, path: &Path) -> Result<Option<Estimate>> {
    if memory::live().is_none() {
        return Ok(None);
    }
    // Each rank holds the model and its slice of the batch (rank 0's is
    // the largest): the estimate is per process.
    let ranks = collective::group().size();
    let batch = collective::shard(cfg.train.batch_size, 0, ranks).len();
    let steps = cfg.time_steps;
    // The training phases' configured batch and the two they are probed
    // at, and the evaluation batch's.
    let training = (batch, probe_batches(batch));
    let eval_batch = cfg.train.eval_batch();
    let evaluation = (eval_batch, eval_probe_batches(eval_batch));
    let batches_of = |phase: usize| {
        if phase == EVAL_PHASE {
            evaluation
        } else {
            training
        }
    };
    let probe_sets = |t: usize, k: usize| {
        [
            format!("time_steps={t}"),
            format!("train.batch_size={}", training.1[k]),
            format!("train.eval_batch_size={}", evaluation.1[k]),
        ]
    };
    let probe_steps: Vec<usize> = if steps <= MEASURED_STEPS {
        vec![steps]
    } else {
        PROBE_STEPS.to_vec()
    };
    let text = cfg.to_toml()?;
    // Per probed step count, each phase as (fixed, per image).
    let mut fits: Vec<[(f64, f64); PHASES]> = Vec::new();
    memory::set_probing(true);
    // The probes are this rank's own: their batch norms reduce nothing.
    let probed = collective::alone(|| -> Result<()> {
        // A first, discarded probe: one-time allocations (thread pools,
        // lazily built tables) stay in use afterwards and would otherwise
        // count against the first measured batch only. The GEMM's
        // per-thread buffers are made on every thread first: the probe
        // alone leaves them to chance (`snn_core::gemm::warm_threads`).
        snn_core::gemm::warm_threads();
        probe(&RunConfig::with_overrides(
            &text,
            path,
            &probe_sets(probe_steps[0], 0),
        )?)?;
        for &t in &probe_steps {
            let mut peaks = Vec::new();
            for k in 0..2 {
                let cfg = RunConfig::with_overrides(&text, path, &probe_sets(t, k))?;
                peaks.push(probe(&cfg)?);
            }
            fits.push(std::array::from_fn(|phase| {
                affine_in_batch(batches_of(phase).1, [peaks[0][phase], peaks[1][phase]])
            }));
        }
        Ok(())
    });
    memory::set_probing(false);
    probed?;
    // Each phase at the configured batch, then at the configured steps; the
    // peak is the largest phase. Extrapolated are the phases' totals (the
    // fixed / per-image split at small batches is the noisier part).
    let at_batch = |fit: &[(f64, f64); PHASES], phase: usize| {
        fit[phase].0 + fit[phase].1 * batches_of(phase).0 as f64
    };
    // The phase that peaks at the largest measured steps is the one that
    // grows with them (activations); only it is extrapolated, so that
    // rounding in a small phase cannot pass for a T^2 term.
    let last = &fits[fits.len() - 1];
    let phase = (0..PHASES)
        .max_by(|&a, &b| at_batch(last, a).total_cmp(&at_batch(last, b)))
        .unwrap_or(0);
    let (peak, growth) = match fits.as_slice() {
        [one] => (at_batch(one, phase), None),
        _ => {
            let ys = [0, 1, 2].map(|i| at_batch(&fits[i], phase));
            let (y, g) = extrapolate(PROBE_STEPS.map(|t| t as f64), ys, steps as f64);
            (y, Some(g))
        }
    };
    let (fixed, per_image) = last[phase];
    let data = data_bytes(cfg);
    let total = peak + data.unwrap_or(0) as f64 + memory::live().unwrap_or(0) as f64;
    Ok(Some(Estimate {
        batch: batches_of(phase).0,
        time_steps: steps,
        evaluation: phase == EVAL_PHASE,
        fixed: fixed.max(0.0) as u64,
        per_image: per_image.max(0.0) as u64,
        data,
        extrapolated: growth,
        step: peak.max(0.0).min(u64::MAX as f64) as u64,
        total: total.max(0.0).min(u64::MAX as f64) as u64,
    }))
}

/// The phases a probe measures: building the model (and its first batch),
/// a training step's forward, backward and update, and an evaluation
/// batch. Each peaks at another time with another share of batch-sized
/// data (activations during forward and backward, parameter-sized
/// gradients and moments in the update), so each is fitted on its own.
const PHASES: usize = 5;
/// The evaluation batch's phase (fitted per image of the evaluation batch,
/// the others per image of the training batch).
const EVAL_PHASE: usize = PHASES - 1;

/// Peak bytes of each phase, above what was in use before the probe.
type Peaks = [u64; PHASES];

fn probe(cfg: &RunConfig) -> Result<Peaks> {
    let (shape, classes) = snn_data::input_shape(&cfg.data)?;
    let [c, h, w] = shape;
    let b = cfg.train.batch_size;
    let before = memory::live().unwrap_or(0);
    let mut peaks = [0u64; PHASES];
    let mut end_phase = |phase: usize| {
        peaks[phase] = memory::peak().saturating_sub(before);
        memory::reset_peak();
    };
    memory::reset_peak();
    let dev = device::create(cfg.seed)?;
    let mut rng = init::rng(cfg.seed);
    let (mut store, model) = build_model(cfg, shape, classes, &dev)?;
    let mut opt = optimizer(cfg);
    // `n` random images and their labels (the training and the evaluation
    // batch differ in size only).
    let batch = |rng: &mut init::Rng, n: usize| {
        let x = dev.tensor_from_vec(init::uniform(rng, n * c * h * w, 0.0, 1.0), (n, c, h, w));
        let labels: Vec<u8> = (0..n).map(|k| (k % classes.max(1)) as u8).collect();
        (x, labels)
    };
    let (x, labels) = batch(&mut rng, b);
    end_phase(0);
    let mut step_phase = |phase: usize| end_phase(1 + phase);
    let mut learner = Learner {
        model: model.as_ref(),
        store: &mut store,
        opt: &mut opt,
        lr: cfg.train.lr,
    };
    let step = StepBatch {
        images: x,
        labels: &labels,
        global: b,
        draws: None,
        progress: 0.0,
        keep_gradients: false,
    };
    train_step(&mut learner, step, &mut rng, &mut step_phase)?;
    // Evaluation: the parameters and optimizer state (held now) and one
    // evaluation batch's forward without the tape, at its own size (the
    // products' scratch buffers do not grow in proportion to the batch, so
    // a smaller batch scaled up misses some of them).
    let (x, labels) = batch(&mut rng, cfg.train.eval_batch());
    snn_core::grad::no_grad(|| -> Result<()> {
        let mut fwd = Forward::new(&store, false, &mut rng);
        let o = model.objective(x.traced(Gradients::leaky()), &labels, &mut fwd)?;
        let _ = o.loss.array();
        Ok(())
    })?;
    end_phase(EVAL_PHASE);
    Ok(peaks)
}

/// Fixed and per-image bytes from one phase's peaks at two batches.
fn affine_in_batch(batches: [usize; 2], peaks: [u64; 2]) -> (f64, f64) {
    let (b0, b1) = (batches[0] as f64, batches[1] as f64);
    let (y0, y1) = (peaks[0] as f64, peaks[1] as f64);
    let per = ((y1 - y0) / (b1 - b0)).max(0.0);
    (y0 - per * b0, per)
}

/// The value at `x` of the line or upward quadratic through three points
/// (`xs` increasing), and which it was. Far from the points any noise in
/// a curvature is multiplied by `x^2`, so a T^2 term is kept only where it
/// makes at least a quarter of the growth between the first and last
/// point; a negative one (rounding in the measured peaks) is dropped. The
/// value never falls below the last measurement.
fn extrapolate(xs: [f64; 3], ys: [f64; 3], x: f64) -> (f64, Growth) {
    let [x0, x1, x2] = xs;
    let [y0, y1, y2] = ys;
    let s01 = (y1 - y0) / (x1 - x0);
    let s12 = (y2 - y1) / (x2 - x1);
    let mut curvature = ((s12 - s01) / (x2 - x0)).max(0.0);
    let growth = y2 - y0;
    let quadratic =
        growth > 0.0 && curvature > 0.0 && curvature * (x2 * x2 - x0 * x0) >= 0.25 * growth;
    if !quadratic {
        curvature = 0.0;
    }
    // Through the last two points with that curvature (a line: their
    // slope).
    let slope = s12 - curvature * (x1 + x2);
    let value = y2 + slope * (x - x2) + curvature * (x * x - x2 * x2);
    let kind = if quadratic {
        Growth::Quadratic
    } else {
        Growth::Linear
    };
    (value.max(y2), kind)
}

/// Train and test images held as f32, from the files' headers and sizes.
fn data_bytes(cfg: &RunConfig) -> Option<u64> {
    let (shape, _) = snn_data::input_shape(&cfg.data).ok()?;
    let per_image = shape.iter().product::<usize>() as u64 * 4;
    let train = snn_data::image_count(&cfg.data, Split::Train).ok()? as u64;
    let test = snn_data::image_count(&cfg.data, Split::Test).ok()? as u64;
    Some((train + test) * per_image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolation_is_exact_for_lines_and_upward_quadratics() {
        let xs = [8.0, 16.0, 32.0];
        // 100 + 3t
        let line = xs.map(|t| 100.0 + 3.0 * t);
        assert_eq!(extrapolate(xs, line, 1000.0), (3100.0, Growth::Linear));
        // 5 + 2t + 0.5 t^2
        let quad = xs.map(|t| 5.0 + 2.0 * t + 0.5 * t * t);
        let expected = 5.0 + 200.0 + 5000.0;
        assert_eq!(extrapolate(xs, quad, 100.0), (expected, Growth::Quadratic));
        // A slight curvature (1e-3 t^2 beside 3 t: 2% of the growth) is
        // taken for noise: the last segment's slope continues.
        let bent = xs.map(|t| 100.0 + 3.0 * t + 1e-3 * t * t);
        let slope = (bent[2] - bent[1]) / 16.0;
        let (y, g) = extrapolate(xs, bent, 1000.0);
        assert_eq!(g, Growth::Linear);
        assert!((y - (bent[2] + slope * 968.0)).abs() < 1e-9);
    }

    #[test]
    fn negative_curvature_is_taken_as_none_and_never_shrinks() {
        let xs = [8.0, 16.0, 32.0];
        // Concave (slopes 2 then 1 per step): the last slope continues.
        assert_eq!(extrapolate(xs, [0.0, 16.0, 32.0], 64.0).0, 64.0);
        // Falling values never extrapolate below the last measurement.
        assert_eq!(extrapolate(xs, [30.0, 20.0, 10.0], 1000.0).0, 10.0);
    }

    #[test]
    fn two_batches_split_fixed_and_per_image_bytes() {
        // 1000 fixed + 300 per image, measured at batches 2 and 4.
        assert_eq!(affine_in_batch([2, 4], [1600, 2200]), (1000.0, 300.0));
        // A peak that falls with the batch (noise) has no per-image part.
        assert_eq!(affine_in_batch([2, 4], [1600, 1500]), (1600.0, 0.0));
    }
}
