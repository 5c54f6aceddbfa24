//! Evaluation of a model on a dataset: loss, loss terms, firing rates and
//! (classifiers) accuracy, each a mean over images, split across ranks and
//! reduced when training runs on several.

use crate::config::RunConfig;
use crate::ops::OpSums;
use crate::records::RateMeans;
use crate::step::{batch_draws, EVALUATION};
use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::init;
use snn_core::spec::{Forward, Model};
use snn_core::{collective, Dev, ParamStore, Result};
use snn_data::Dataset;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Classifiers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f32>,
    pub loss: f32,
    /// Accuracy per class (classifiers only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<f32>,
    pub count: usize,
    pub firing_rates: BTreeMap<String, f32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub terms: BTreeMap<String, f32>,
    /// Synaptic operations per image, when counted ([`evaluate_with_ops`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<crate::ops::Ops>,
    /// Each test image's predicted class, in dataset order, when asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<usize>,
}

impl Evaluation {
    /// Higher is better: the accuracy of a classifier, minus the loss of
    /// any other model. Picks `best.safetensors`.
    pub fn score(&self) -> f32 {
        self.accuracy.unwrap_or(-self.loss)
    }
}

/// Mean loss, loss terms, firing rates and (classifiers) accuracy and
/// per-class accuracy of `model` on `ds` (inference mode, batches of
/// `train.eval_batch_size`, no gradients), each a mean over images.
pub fn evaluate(
    cfg: &RunConfig,
    dev: &Dev,
    store: &ParamStore,
    model: &dyn Model,
    ds: &Dataset,
) -> Result<Evaluation> {
    evaluate_with(cfg, dev, store, model, ds, EvalOptions::default())
}

/// What an evaluation reports beyond its means, and when it stops.
#[derive(Clone, Copy, Debug, Default)]
pub struct EvalOptions<'a> {
    /// Count the synaptic operations per image (`crate::ops`): each
    /// synaptic layer's inputs are read once more.
    pub ops: bool,
    /// Keep each image's predicted class (classifiers).
    pub predictions: bool,
    /// Stop with [`snn_core::Error::Interrupted`] before the next batch
    /// once this is set (Ctrl-C). One process only: ranks evaluate slices
    /// of different lengths and could not agree batch by batch, so under
    /// MPI the pass finishes and the trainer stops after it.
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
}

/// [`evaluate`] with [`EvalOptions`].
pub fn evaluate_with(
    cfg: &RunConfig,
    dev: &Dev,
    store: &ParamStore,
    model: &dyn Model,
    ds: &Dataset,
    options: EvalOptions<'_>,
) -> Result<Evaluation> {
    snn_core::grad::no_grad(|| evaluate_batches(cfg, dev, store, model, ds, options))
}

fn evaluate_batches(
    cfg: &RunConfig,
    dev: &Dev,
    store: &ParamStore,
    model: &dyn Model,
    ds: &Dataset,
    options: EvalOptions<'_>,
) -> Result<Evaluation> {
    let [c, h, w] = ds.shape;
    let bs = cfg.train.eval_batch();
    let mut rng = init::rng(cfg.seed);
    let mut sums = EvalSums::new(ds.classes.max(1));
    if options.predictions {
        sums.predictions = vec![0.0; ds.len()];
    }
    // Each rank evaluates its contiguous slice of the set; the sums are
    // reduced after, so every rank gets the whole set's figures.
    let group = collective::group();
    let mine: Vec<usize> = collective::shard(ds.len(), group.rank(), group.size()).collect();
    let stopped = || {
        let asked = options
            .stop
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst));
        asked && !collective::is_distributed()
    };
    for idx in mine.chunks(bs.max(1)) {
        if stopped() {
            return Err(snn_core::Error::Interrupted(
                "stopped during the test pass".into(),
            ));
        }
        let batch = ds.gather(idx);
        let b = batch.labels.len();
        let x = dev
            .tensor_from_vec(batch.images, (b, c, h, w))
            .traced(Gradients::leaky());
        let mut fwd = Forward::new(store, false, &mut rng);
        fwd.progress = 1.0;
        // Each image's draws (FSVAE's latent picks) keyed by its index
        // alone: the same in any batch, on any rank.
        fwd.draws = Some(batch_draws(cfg.seed, EVALUATION, 0, idx));
        fwd.synapse_calls = options.ops.then(Vec::new);
        // Each rank's slice is its own: a loss over the whole batch
        // (ESVAE's MMD gathers every rank's rows in training) must not
        // wait for ranks whose slices have another number of batches.
        let o = collective::alone(|| model.objective(x, &batch.labels, &mut fwd))?;
        sums.loss += o.loss.array() as f64 * b as f64;
        // Weighted by images, so that a short last batch counts for what
        // it holds and the means do not depend on the batch size.
        sums.terms.add_weighted(o.terms, b);
        sums.rates.add_weighted(fwd.rates, b);
        sums.ops.add(fwd.synapse_calls.take().unwrap_or_default());
        if options.predictions {
            for (i, pred) in idx.iter().zip(o.predictions.iter().flatten()) {
                sums.predictions[*i] = *pred as f64 + 1.0;
            }
        }
        for (pred, label) in o.predictions.iter().flatten().zip(&batch.labels) {
            if let Some(pc) = sums.per_class.get_mut(*label as usize) {
                pc.0 += (*pred == *label as usize) as usize;
                pc.1 += 1;
            }
        }
        sums.classified |= o.predictions.is_some();
    }
    sums.reduce();
    let ops = sums.ops.per_image(ds.len());
    let n = ds.len().max(1);
    let correct: usize = sums.per_class.iter().map(|p| p.0).sum();
    let accuracy = sums.classified.then(|| correct as f32 / n as f32);
    Ok(Evaluation {
        accuracy,
        loss: (sums.loss / n as f64) as f32,
        per_class: accuracy
            .map(|_| {
                let pc = sums.per_class.iter();
                pc.map(|(c, t)| *c as f32 / (*t).max(1) as f32).collect()
            })
            .unwrap_or_default(),
        count: ds.len(),
        firing_rates: sums.rates.means(),
        terms: sums.terms.means(),
        ops,
        predictions: sums
            .predictions
            .iter()
            .filter(|p| **p > 0.0)
            .map(|p| *p as usize - 1)
            .collect(),
    })
}

/// An evaluation's running sums on one rank: loss x images, per class
/// (correct, seen), weighted terms and rates.
struct EvalSums {
    loss: f64,
    per_class: Vec<(usize, usize)>,
    terms: RateMeans,
    rates: RateMeans,
    /// Synaptic operations (when counted).
    ops: OpSums,
    /// Per image of the set, 1 + its predicted class (0: another rank's),
    /// when predictions are kept; summed over ranks.
    predictions: Vec<f64>,
    classified: bool,
}

impl EvalSums {
    fn new(classes: usize) -> Self {
        Self {
            loss: 0.0,
            per_class: vec![(0, 0); classes],
            terms: RateMeans::default(),
            rates: RateMeans::default(),
            ops: OpSums::default(),
            predictions: Vec::new(),
            classified: false,
        }
    }

    /// Sums over ranks in one reduction. Every rank's model names the same
    /// terms and rates (each rank evaluates at least one image: the
    /// trainer refuses a test set smaller than the rank count).
    fn reduce(&mut self) {
        if !collective::is_distributed() {
            return;
        }
        let mut v = vec![self.loss, self.classified as u8 as f64];
        v.extend(
            self.per_class
                .iter()
                .flat_map(|(c, t)| [*c as f64, *t as f64]),
        );
        for m in [&self.terms, &self.rates] {
            v.extend(m.0.values().flat_map(|(s, n)| [*s, *n as f64]));
        }
        v.extend(&self.predictions);
        let ops = self.ops.flat();
        v.extend(&ops);
        collective::sum_f64(&mut v);
        let mut it = v.into_iter();
        let mut next = || it.next().unwrap_or(0.0);
        self.loss = next();
        self.classified = next() > 0.0;
        for pc in &mut self.per_class {
            *pc = (next() as usize, next() as usize);
        }
        for m in [&mut self.terms, &mut self.rates] {
            for (s, n) in m.0.values_mut() {
                *s = next();
                *n = next() as usize;
            }
        }
        for p in &mut self.predictions {
            *p = next();
        }
        let ops: Vec<f64> = (0..ops.len()).map(|_| next()).collect();
        self.ops.set_flat(&ops);
    }
}
