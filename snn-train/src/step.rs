//! The one training step: the trainer, `snn bench` and the memory estimate
//! all run [`train_step`], and the only reductions of a data-parallel step
//! happen here (and in batch norm, which sums its statistics itself).
//!
//! Data parallel: each rank holds the whole model and takes a contiguous
//! slice of the global batch. Its loss is its images' share of the global
//! batch's mean loss (the local mean scaled by `local / global`), so the
//! gradients summed over ranks are the gradients of the global mean, and
//! batch norm's backward sums see the same upstream gradients one process
//! would. The reported loss, loss terms, firing rates and correct
//! predictions are reduced the same way, so every rank reports the global
//! batch's figures.

use snn_core::collective;
use snn_core::dfdx::prelude::*;
use snn_core::init::Rng;
use snn_core::optim::Adam;
use snn_core::spec::{mix64, Draws, Forward, Model};
use snn_core::{Dev, Error, ParamStore, Result};

/// What a training step changes: a model's parameters and its optimizer.
pub struct Learner<'a> {
    pub model: &'a dyn Model,
    pub store: &'a mut ParamStore,
    pub opt: &'a mut Adam,
    pub lr: f32,
}

/// This rank's part of one step: its slice of the global batch.
pub struct StepBatch<'a> {
    /// `[b, C, H, W]`: this rank's images.
    pub images: Tensor<(usize, usize, usize, usize), f32, Dev>,
    pub labels: &'a [u8],
    /// Images in the global batch (all ranks' together).
    pub global: usize,
    /// Keys of the model's random draws (dropout masks, latent samples),
    /// one per image; `None`: drawn from the step's generator.
    pub draws: Option<Draws>,
    /// Fraction of training done before this step (FSVAE's schedule).
    pub progress: f32,
    /// Return the summed gradients ([`StepOutcome::gradients`]).
    pub keep_gradients: bool,
}

/// The global batch's figures after a step, the same on every rank.
#[derive(Clone, Debug, Default)]
pub struct StepOutcome {
    /// The global batch's mean loss.
    pub loss: f32,
    pub terms: Vec<(String, f32)>,
    pub rates: Vec<(String, f32)>,
    /// Correct predictions in the global batch (classifiers).
    pub correct: Option<usize>,
    /// False when the loss was not finite: no backward, no update.
    pub applied: bool,
    /// Seconds this rank spent in reductions (communication and waiting).
    pub comm_s: f64,
    /// Reductions made (gradients, batch-norm statistics, figures).
    pub reductions: u64,
    /// Gradient values summed across ranks (0 for one process).
    pub reduced_values: usize,
    /// Each trainable parameter's gradient as the optimizer got it (summed
    /// over ranks), when the batch asked to keep them.
    pub gradients: Option<Vec<(String, Vec<f32>)>>,
}

/// One training step on this rank's slice of a batch: forward recording
/// the tape, the reduced figures, backward, the gradients summed across
/// ranks, the optimizer and the layers' running-statistics updates.
/// `phase_end` is called as forward, backward and update end (0, 1, 2):
/// the bench reads the clock there, the memory estimate the allocator's
/// peak. A non-finite global loss ends the step after forward (phase 0
/// only) with `applied == false`.
pub fn train_step(
    learner: &mut Learner<'_>,
    batch: StepBatch<'_>,
    rng: &mut Rng,
    phase_end: &mut dyn FnMut(usize),
) -> Result<StepOutcome> {
    let Learner {
        model,
        store,
        opt,
        lr,
    } = learner;
    let (model, lr) = (*model, *lr);
    collective::take_seconds();
    let local = batch.labels.len();
    let share = local as f64 / batch.global.max(1) as f64;
    let x = batch.images.traced(store.new_grads()?);
    let mut fwd = Forward::new(store, true, rng);
    fwd.progress = batch.progress;
    fwd.draws = batch.draws;
    let objective = model.objective(x, batch.labels, &mut fwd)?;
    let updates = std::mem::take(&mut fwd.updates);
    let rates = std::mem::take(&mut fwd.rates);
    let local_loss = objective.loss.array();
    let mut out = reduce_figures(
        local_loss,
        objective.terms,
        rates,
        share,
        &objective.predictions,
        batch.labels,
    );
    phase_end(0);
    if !out.loss.is_finite() {
        (out.comm_s, out.reductions) = collective::take_seconds();
        return Ok(out);
    }
    // One process keeps its loss as it is (bit for bit what it was before
    // ranks existed); a rank scales its mean to its share of the batch.
    let loss = if collective::is_distributed() {
        objective.loss * share as f32
    } else {
        objective.loss
    };
    let mut grads = loss.backward();
    phase_end(1);
    out.reduced_values = sum_gradients(store, &mut grads)?;
    if batch.keep_gradients {
        let names = store
            .iter()
            .filter(|(_, p)| p.trainable)
            .map(|(n, _)| n.clone());
        let names: Vec<String> = names.collect();
        let kept = names
            .into_iter()
            .map(|n| Ok((n.clone(), store.grad(&grads, &n)?.as_vec())));
        out.gradients = Some(kept.collect::<Result<_>>()?);
    }
    opt.update(store, &mut grads, lr)?;
    Forward::apply_updates(updates, store)?;
    model.after_step(store)?;
    drop(grads);
    phase_end(2);
    out.applied = true;
    (out.comm_s, out.reductions) = collective::take_seconds();
    Ok(out)
}

/// The global batch's loss, terms, rates and correct count from this
/// rank's (each weighted by the rank's `share` of the images), in one
/// reduction. Every rank's model records the same names in the same order.
fn reduce_figures(
    loss: f32,
    terms: Vec<(String, f32)>,
    rates: Vec<(String, f32)>,
    share: f64,
    predictions: &Option<Vec<usize>>,
    labels: &[u8],
) -> StepOutcome {
    let correct = predictions.as_ref().map(|p| {
        let hits = p.iter().zip(labels).filter(|(p, l)| **p == **l as usize);
        hits.count()
    });
    if !collective::is_distributed() {
        return StepOutcome {
            loss,
            terms,
            rates,
            correct,
            ..StepOutcome::default()
        };
    }
    let named = terms.iter().chain(&rates);
    let mut values: Vec<f64> = std::iter::once(loss)
        .chain(named.map(|(_, v)| *v))
        .map(|v| v as f64 * share)
        .collect();
    values.push(correct.unwrap_or(0) as f64);
    collective::sum_f64(&mut values);
    let mut it = values.into_iter();
    let loss = it.next().unwrap_or(f64::NAN) as f32;
    let mut global = |named: Vec<(String, f32)>| -> Vec<(String, f32)> {
        let pairs = named
            .into_iter()
            .map(|(n, _)| (n, it.next().unwrap_or(f64::NAN) as f32));
        pairs.collect()
    };
    let (terms, rates) = (global(terms), global(rates));
    let correct = correct.map(|_| it.next().unwrap_or(0.0).round() as usize);
    StepOutcome {
        loss,
        terms,
        rates,
        correct,
        ..StepOutcome::default()
    }
}

/// Sums every trainable parameter's gradient across ranks (in name order,
/// one reduction); returns how many values were reduced (0 for one
/// process, which has nothing to sum).
fn sum_gradients(store: &ParamStore, grads: &mut Gradients<f32, Dev>) -> Result<usize> {
    if !collective::is_distributed() {
        return Ok(0);
    }
    snn_core::host_kernels! {
        return sum_host_gradients(store, grads);
    }
    #[allow(unreachable_code)]
    {
        let _ = (store, grads);
        Err(Error::invalid(
            "ranks",
            "training on several ranks sums gradients in host memory; this CUDA build cannot \
             (docs/scaling.md: a GPU build would reduce with NCCL)",
        ))
    }
}

snn_core::host_kernels! {
    /// [`sum_gradients`] on host buffers: one flat copy, one sum, copied back.
    fn sum_host_gradients(store: &ParamStore, grads: &mut Gradients<f32, Dev>) -> Result<usize> {
        let params: Vec<_> = store.iter().filter(|(_, p)| p.trainable).map(|(_, p)| p.value.clone()).collect();
        let device = |e| Error::Device(format!("{e:?}"));
        let mut flat = Vec::new();
        for p in &params {
            flat.extend_from_slice(&grads.get_or_alloc_mut(p).map_err(device)?[..]);
        }
        collective::sum_f32(&mut flat);
        let mut at = 0;
        for p in &params {
            let slot = grads.get_or_alloc_mut(p).map_err(device)?;
            let n = slot.len();
            slot.copy_from_slice(&flat[at..at + n]);
            at += n;
        }
        Ok(flat.len())
    }
}

/// The epoch number evaluation keys its draws with: the same every epoch
/// (an image's test loss moves only with the parameters), and no training
/// epoch's.
pub const EVALUATION: usize = usize::MAX;

/// The keys of a training batch's random draws (dropout masks, latent
/// samples): the batch's from the seed, the epoch and its index in the
/// epoch; each image's from the seed, the epoch and its dataset index, so
/// an image draws the same on whatever rank computes it.
pub fn batch_draws(seed: u64, epoch: usize, batch: usize, images: &[usize]) -> Draws {
    let epoch_key = mix64(seed ^ mix64(epoch as u64 ^ 0x7E57_E90C_0000_0000));
    let keys = images
        .iter()
        .map(|&i| mix64(epoch_key ^ i as u64))
        .collect();
    Draws::new(mix64(epoch_key ^ mix64(!(batch as u64))), keys)
}
