//! Run configs: one TOML file names the model, neuron, decoder, data and
//! training settings. Each plugin table is picked by its `type` line.
//!
//! Errors name the file, the line and column, and what is accepted.

use serde::{Deserialize, Serialize};
use snn_core::config::{apply_sets, parse_toml};
use snn_core::loss::LossKind;
use snn_core::optim::AdamConfig;
use snn_core::spec::{DecoderSpec, ModelSpec, NeuronSpec};
use snn_core::{registry, Error, Result};
use snn_data::config::DataConfig;
use std::path::Path;

fn default_seed() -> u64 {
    42
}
fn default_time_steps() -> usize {
    8
}

/// A complete run: what to build and how to train it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seeds weights, shuffling and dropout: same config, same result.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulation steps `T`.
    #[serde(default = "default_time_steps")]
    pub time_steps: usize,
    pub model: Box<dyn ModelSpec>,
    /// The spiking layers' neuron; models without spiking layers (the ANN
    /// VAE) need none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neuron: Option<Box<dyn NeuronSpec>>,
    /// How the output sequence becomes a result (rates, an image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<Box<dyn DecoderSpec>>,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub train: TrainConfig,
    /// The paper row this config reproduces (`configs/paper/`); training
    /// ignores it, `scripts/reproduce.sh` reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<PaperRow>,
}

/// A row of the paper's tables: what the paper reports and how the
/// reproduction is scored and bounded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperRow {
    /// The table, as the paper numbers it (`"Table 7"`).
    pub table: String,
    /// The row, in the paper's words (`"ALIF, learned, tau 0.25, V_th 0.2"`).
    pub row: String,
    /// How the run is scored.
    pub score: PaperScore,
    /// The paper's figures: `accuracy` (%) for classification; `is`, `fid`,
    /// `fad` for generation. Empty where the paper has no number.
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, f64>,
    /// Where the paper's figure comes from, if not this paper's own table.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// What this machine changes from the paper's recipe (epochs, batch),
    /// and why; `docs/fidelity.md` lists the same per row.
    pub deviation: String,
    /// Whether the data can be had on these machines; `false` marks a row
    /// that `docs/results.md` lists as not run here.
    #[serde(default = "yes")]
    pub runs_here: bool,
}

fn yes() -> bool {
    true
}

/// How a paper row is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaperScore {
    /// The best test accuracy over the epochs (PLIF's "accuracy A").
    BestTestAccuracy,
    /// IS, FID and FAD of samples, with the paper's protocol (`snn metrics`).
    Generation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// Cosine annealing from `lr` to 0 over all epochs (per step).
    Cosine,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Adamw,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Images per batch of the test pass after each epoch (and `snn eval`);
    /// left out, 4x `batch_size` (no tape is kept, so a larger batch fits).
    /// That pass can be a run's memory peak (the FSVAE at batch 250: ~6.5
    /// GiB allocated in the test pass against ~3 GiB a training step), so a
    /// smaller one lowers it. Scores do not depend on it up to rounding
    /// (the FSVAE's posterior samples are drawn per image, keyed by the
    /// image's index, whatever batch or rank it is in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_batch_size: Option<usize>,
    pub lr: f32,
    pub optimizer: OptimizerKind,
    pub adam: AdamConfig,
    pub schedule: Schedule,
    pub loss: LossKind,
    /// Append the mean loss (and loss terms) of every this many optimizer
    /// steps to `steps.jsonl` (0 = off): curves within long epochs.
    pub log_every: usize,
    /// What a non-finite loss does: `stop` (the default: stop with the
    /// step, the loss and the last good checkpoint named) or `skip` (skip
    /// the batch and count it in `metrics.jsonl`).
    pub on_divergence: OnDivergence,
    /// Checkpoint inside epochs too, every this many optimizer steps
    /// (`500`, `"500 steps"`) or minutes (`"10 min"`), so a kill loses at
    /// most that much work; epoch ends always checkpoint.
    pub checkpoint_every: CheckpointEvery,
    /// Write the gradient of each of the first this many optimizer steps
    /// (summed over ranks, before the update) to the run folder's
    /// `gradients/step-N.safetensors`: to check a run on several ranks
    /// against one process (0, the default: off).
    #[serde(skip_serializing_if = "is_zero")]
    pub save_gradients: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How often training writes a checkpoint inside an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StepsOrText", into = "String")]
pub enum CheckpointEvery {
    Steps(u64),
    Minutes(f64),
}

impl Default for CheckpointEvery {
    fn default() -> Self {
        Self::Minutes(10.0)
    }
}

/// What a config may write for [`CheckpointEvery`].
#[derive(Deserialize)]
#[serde(untagged)]
enum StepsOrText {
    Steps(u64),
    Text(String),
}

impl TryFrom<StepsOrText> for CheckpointEvery {
    type Error = String;
    fn try_from(v: StepsOrText) -> std::result::Result<Self, String> {
        let text = match v {
            StepsOrText::Steps(0) => return Err("checkpoint_every must be at least 1 step".into()),
            StepsOrText::Steps(n) => return Ok(Self::Steps(n)),
            StepsOrText::Text(t) => t,
        };
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = (t[..split].trim(), t[split..].trim());
        let bad = || {
            format!(
                "checkpoint_every `{text}`: expected a step count (500, \"500 steps\") or minutes (\"10 min\")"
            )
        };
        match unit {
            "" | "step" | "steps" => match num.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Self::Steps(n)),
                _ => Err(bad()),
            },
            "m" | "min" | "mins" | "minute" | "minutes" => match num.parse::<f64>() {
                Ok(m) if m.is_finite() && m > 0.0 => Ok(Self::Minutes(m)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl From<CheckpointEvery> for String {
    fn from(c: CheckpointEvery) -> String {
        match c {
            CheckpointEvery::Steps(n) => format!("{n} steps"),
            CheckpointEvery::Minutes(m) => format!("{m} min"),
        }
    }
}

/// What training does when a batch's loss is not finite.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDivergence {
    #[default]
    Stop,
    Skip,
}

impl TrainConfig {
    /// Images per evaluation batch: `eval_batch_size`, or 4x `batch_size`.
    pub fn eval_batch(&self) -> usize {
        self.eval_batch_size
            .unwrap_or(self.batch_size.saturating_mul(4))
            .max(1)
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 16,
            eval_batch_size: None,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            adam: AdamConfig::default(),
            schedule: Schedule::Cosine,
            loss: LossKind::Mse,
            log_every: 20,
            on_divergence: OnDivergence::Stop,
            checkpoint_every: CheckpointEvery::default(),
            save_gradients: 0,
        }
    }
}

impl RunConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with_overrides(path, &[])
    }

    /// [`RunConfig::load`] with `--set` overrides (see [`RunConfig::with_overrides`]).
    pub fn load_with_overrides(path: &Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::with_overrides(&text, path, sets)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        // A nan or inf would pass the fields' types and fail much later,
        // where the config is written back, naming no field.
        if let Some((key, v)) = toml::from_str::<toml::Value>(text)
            .ok()
            .and_then(|v| first_non_finite(&v, ""))
        {
            return Err(Error::Config {
                path: path.to_path_buf(),
                msg: format!("`{key}` is {v}: every number in a config must be finite"),
            });
        }
        let cfg: Self = parse_toml(text, path)?;
        cfg.validate().map_err(|msg| Error::Config {
            path: path.to_path_buf(),
            msg,
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.time_steps == 0 {
            return Err("`time_steps` must be at least 1".into());
        }
        if self.train.batch_size == 0 {
            return Err("`train.batch_size` must be at least 1".into());
        }
        if self.train.eval_batch_size == Some(0) {
            return Err(
                "`train.eval_batch_size` must be at least 1 (left out: 4x train.batch_size)".into(),
            );
        }
        if self.train.epochs == 0 {
            return Err("`train.epochs` must be at least 1".into());
        }
        let a = &self.data.augment;
        if !(a.rotate.is_finite() && (0.0..=180.0).contains(&a.rotate)) {
            return Err(format!(
                "`data.augment.rotate` must be degrees in [0, 180], got {}",
                a.rotate
            ));
        }
        if !(a.translate.is_finite() && (0.0..=1.0).contains(&a.translate)) {
            return Err(format!(
                "`data.augment.translate` must be a fraction in [0, 1], got {}",
                a.translate
            ));
        }
        if let Some([lo, hi]) = a.scale {
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
                return Err(format!(
                    "`data.augment.scale` must be [min, max] with 0 < min <= max, got [{lo}, {hi}]"
                ));
            }
        }
        if let Some(p) = &self.paper {
            let (score, accepted): (&str, &[&str]) = match p.score {
                PaperScore::BestTestAccuracy => ("best-test-accuracy", &["accuracy"]),
                PaperScore::Generation => ("generation", &["is", "fid", "fad"]),
            };
            if let Some(k) = p.values.keys().find(|k| !accepted.contains(&k.as_str())) {
                return Err(format!(
                    "`paper.values.{k}` is not a figure of a `{score}` row; accepted: {}",
                    accepted.join(", ")
                ));
            }
        }
        if !(self.train.lr.is_finite() && self.train.lr > 0.0) {
            return Err(format!(
                "`train.lr` must be a positive number, got {}",
                self.train.lr
            ));
        }
        Ok(())
    }

    /// The resolved config (all defaults filled in) as TOML.
    pub fn to_toml(&self) -> Result<String> {
        // Through a JSON value: toml cannot serialise a table after a value
        // (`model` before `seed`), the JSON detour orders keys for it.
        let v = serde_json::to_value(self).map_err(|e| Error::invalid("config", e.to_string()))?;
        toml::to_string(&registry::tidy_floats(v))
            .map_err(|e| Error::invalid("config", e.to_string()))
    }

    /// Applies `key.path=value` overrides (as from `--set`), value in TOML
    /// syntax (`train.lr=5e-4`, `neuron.type="lif"`); bare words are strings.
    /// Without overrides the text is parsed as it is, so errors quote the
    /// file's own lines rather than its re-serialised form.
    pub fn with_overrides(text: &str, path: &Path, sets: &[String]) -> Result<Self> {
        if sets.is_empty() {
            return Self::parse(text, path);
        }
        Self::parse(&apply_sets(text, path, sets)?, path)
    }
}

/// The first float in `v` that is nan or infinite, with its dotted key.
fn first_non_finite(v: &toml::Value, key: &str) -> Option<(String, f64)> {
    let join = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    match v {
        toml::Value::Float(f) if !f.is_finite() => Some((key.to_string(), *f)),
        toml::Value::Table(t) => t.iter().find_map(|(k, v)| first_non_finite(v, &join(k))),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_non_finite(v, &format!("{key}[{i}]"))),
        _ => None,
    }
}
