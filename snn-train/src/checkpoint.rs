//! Checkpoints: `state.json` names the parameter and optimizer files of the
//! last finished epoch. Those files are written first (each atomically),
//! `state.json` last (atomically), and only then are older files removed, so
//! a kill at any moment leaves a complete, loadable checkpoint.

use serde::{Deserialize, Serialize};
use snn_core::{fsutil, Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.toml";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps completed.
    pub step: u64,
    /// Best test score so far: accuracy for classifiers, minus the test
    /// loss for other models (higher is better).
    #[serde(alias = "best_accuracy")]
    pub best_score: f32,
    pub best_epoch: usize,
    /// Parameter file (relative to the run folder).
    pub params: String,
    /// Optimizer state file (relative to the run folder).
    pub optimizer: String,
    /// Seed of the run; batch order and dropout of epoch `e` derive from
    /// `(seed, e)`, so no generator state needs saving at epoch boundaries.
    pub seed: u64,
    /// Normalisation statistics used (per channel mean, std).
    pub normalization: Option<Vec<(f32, f32)>>,
    /// Batches of epoch `epoch + 1` already trained: 0 at an epoch
    /// boundary, more for a checkpoint written inside an epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub batch: usize,
    /// The running sums of that epoch, where `batch > 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What an epoch has accumulated so far, so that a run resumed inside it
/// ends exactly where an uninterrupted one does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Word position of the epoch's generator (dropout, latent picks), as
    /// a decimal string (a u128).
    pub rng_word_pos: String,
    pub loss_sum: f64,
    pub correct: Option<usize>,
    pub seen: usize,
    pub skipped: usize,
    pub rates: BTreeMap<String, (f64, usize)>,
    pub terms: BTreeMap<String, (f64, usize)>,
    /// The `steps.jsonl` window in progress: loss sum, steps, term sums.
    pub window: (f64, usize, BTreeMap<String, (f64, usize)>),
    pub lr: f32,
    /// Training seconds of the epoch before the checkpoint.
    pub seconds: f64,
}

impl Checkpoint {
    pub fn params_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.params)
    }

    pub fn optimizer_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.optimizer)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid("checkpoint", e.to_string()))?;
        fsutil::atomic_write(&dir.join(STATE_FILE), text.as_bytes())
    }

    /// Reads `dir/state.json`; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Checkpoint {
                path: path.clone(),
                msg: format!("not a valid checkpoint state: {e}"),
            })
    }

    /// Removes parameter / optimizer files of other epochs.
    pub fn prune(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let ours = name == self.params || name == self.optimizer;
            let epoch_file = (name.starts_with("params-e") || name.starts_with("optim-e"))
                && name.ends_with(".safetensors");
            if epoch_file && !ours {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
