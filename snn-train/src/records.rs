//! The records a run writes, one JSON object a line: `steps.jsonl` (means
//! over the last `train.log_every` steps) and `metrics.jsonl` (one line an
//! epoch). The session writes them, the curves and the reports read them.

use serde::{Deserialize, Serialize};
use snn_core::{Error, Result};
use std::collections::BTreeMap;

/// One line of `steps.jsonl`: means over the last `train.log_every` steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub epoch: usize,
    /// Optimizer steps done.
    pub step: u64,
    pub loss: f32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub terms: BTreeMap<String, f32>,
    /// Seconds of training since the epoch started, across a resume (the
    /// time before the checkpoint plus the time since), as the epoch's
    /// record counts them.
    pub seconds: f32,
    /// Processes the step ran on (1 in files written before ranks).
    #[serde(default = "one_rank")]
    pub ranks: usize,
    /// Seconds rank 0 spent in reductions (gradients, batch-norm
    /// statistics, figures, waiting for slower ranks) over the steps this
    /// line covers; 0 for one process.
    #[serde(default)]
    pub comm_seconds: f32,
}

fn one_rank() -> usize {
    1
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f32,
    /// Classifiers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_accuracy: Option<f32>,
    pub test_loss: f32,
    /// Classifiers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f32>,
    /// The model's named loss parts (reconstruction, distance), epoch means.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub train_terms: BTreeMap<String, f32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub test_terms: BTreeMap<String, f32>,
    /// Mean firing rate per spiking layer over the training epoch.
    pub firing_rates: BTreeMap<String, f32>,
    /// Neuron constants (tau, v_th) per spiking layer after the epoch.
    pub neurons: BTreeMap<String, BTreeMap<String, f32>>,
    pub lr: f32,
    pub seconds: f32,
    pub images_per_second: f32,
    /// The process's peak resident memory so far (`VmHWM`), MiB; absent
    /// where `/proc` cannot be read and in records written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f32>,
    /// Batches skipped for a non-finite loss (`train.on_divergence = "skip"`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_batches: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The `steps.jsonl` lines of the run folder `dir` (empty if there is
/// none; a line that does not parse, e.g. one cut by a kill, is skipped).
pub fn read_steps(dir: &std::path::Path) -> Vec<StepMetrics> {
    std::fs::read_to_string(dir.join(crate::session::STEPS_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Parses one line of `metrics.jsonl`.
pub fn parse_metrics_line(line: &str) -> Result<EpochMetrics> {
    serde_json::from_str(line).map_err(|e| Error::invalid("metrics line", e.to_string()))
}

/// Named per-batch figures (firing rates, loss terms) averaged over the
/// batches of an epoch (training) or over the images (evaluation).
#[derive(Default)]
pub(crate) struct RateMeans(pub(crate) BTreeMap<String, (f64, usize)>);

impl RateMeans {
    /// One batch's values, each counted once.
    pub(crate) fn add(&mut self, batch: Vec<(String, f32)>) {
        self.add_weighted(batch, 1);
    }

    /// One batch's values (batch means), counted `weight` times.
    pub(crate) fn add_weighted(&mut self, batch: Vec<(String, f32)>, weight: usize) {
        for (name, v) in batch {
            let e = self.0.entry(name).or_insert((0.0, 0));
            e.0 += v as f64 * weight as f64;
            e.1 += weight;
        }
    }

    pub(crate) fn means(self) -> BTreeMap<String, f32> {
        self.0
            .into_iter()
            .map(|(k, (s, n))| (k, (s / n.max(1) as f64) as f32))
            .collect()
    }
}
