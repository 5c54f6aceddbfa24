//! Run configs: one TOML file names the model, neuron, decoder, data and
//! training settings. Each plugin table is picked by its `type` line.
//!
//! Errors name the file, the line and column, and what is accepted.

use crate::optim::AdamConfig;
use crate::spec::{DecoderSpec, ModelSpec, NeuronSpec};
use crate::{registry, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
}

/// Where the images come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `mnist`, `fmnist`, `cifar10` or `folder`.
    pub dataset: String,
    /// Folder holding the dataset files.
    pub root: PathBuf,
    /// Use at most this many training / test images (0 = all).
    pub train_limit: usize,
    pub test_limit: usize,
    /// Subtract the dataset mean and divide by its std per channel.
    pub normalize: bool,
    /// Side of the images fed to the model: MNIST-like sets are brought to
    /// it by `resize`, CelebA is resized to it (default 64); 0 keeps the
    /// native size.
    pub image_size: usize,
    /// How MNIST-like and folder images reach `image_size`.
    pub resize: ImageResize,
    /// Scale pixels to [-1, 1] instead of [0, 1] (FSVAE, VAEs with tanh).
    pub symmetric: bool,
    /// Random transforms of each training batch (off by default).
    pub augment: Augment,
}

/// Training-time augmentation, drawn per image from a generator seeded by
/// the run's seed, the epoch and the batch's index in it: the same config
/// gives the same augmented batches, and a resumed run the ones it would
/// have had. Test images are never augmented.
///
/// The authors' classification code: `rotate = 30`, `translate = 0.15`,
/// `scale = [0.85, 1.11]` on MNIST; `crop_padding = 4`, `hflip = true` on
/// CIFAR-10. The FSVAE code flips CIFAR-10 and CelebA (`hflip = true`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Rotation in degrees, uniform in `[-rotate, rotate]` (0 = none).
    pub rotate: f32,
    /// Shift by up to this fraction of the width / height, rounded to
    /// whole pixels (torchvision's `RandomAffine(translate=...)`).
    pub translate: f32,
    /// Zoom factor range `[min, max]` (none = 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<[f32; 2]>,
    /// Random crop back to the image size after zero padding by this many
    /// pixels on every side (torchvision's `RandomCrop(size, padding)`).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
}

impl Augment {
    /// True when some transform is on.
    pub fn is_active(&self) -> bool {
        self.rotate != 0.0
            || self.translate != 0.0
            || self.scale.is_some()
            || self.crop_padding > 0
            || self.hflip
    }

    /// The affine part (rotation, translation, scale) is on.
    pub fn is_affine(&self) -> bool {
        self.rotate != 0.0 || self.translate != 0.0 || self.scale.is_some()
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: "mnist".into(),
            root: PathBuf::from("data/mnist"),
            train_limit: 0,
            test_limit: 0,
            normalize: false,
            image_size: 0,
            resize: ImageResize::Bilinear,
            symmetric: false,
            augment: Augment::default(),
        }
    }
}

/// How a dataset's images are brought to `data.image_size`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageResize {
    /// Pillow's bilinear resize of the 8-bit image (torchvision
    /// `Resize((32, 32))`, what the FSVAE code does to MNIST).
    #[default]
    Bilinear,
    /// Centred zero padding (only grows the image).
    Pad,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// MSE between the output (firing rate) and the one-hot label.
    Mse,
    /// Softmax cross-entropy on the output.
    Ce,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
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

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 16,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            adam: AdamConfig::default(),
            schedule: Schedule::Cosine,
            loss: LossKind::Mse,
            log_every: 20,
            on_divergence: OnDivergence::Stop,
            checkpoint_every: CheckpointEvery::default(),
        }
    }
}

impl RunConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
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
    pub fn with_overrides(text: &str, path: &Path, sets: &[String]) -> Result<Self> {
        let err = |msg: String| Error::Config {
            path: path.to_path_buf(),
            msg,
        };
        let mut doc: toml::Table = parse_toml(text, path)?;
        for set in sets {
            let (key, raw) = set
                .split_once('=')
                .ok_or_else(|| err(format!("--set `{set}`: expected key=value")))?;
            let value = parse_value(raw.trim());
            let mut table = &mut doc;
            let parts: Vec<&str> = key.trim().split('.').collect();
            let (last, parents) = parts
                .split_last()
                .ok_or_else(|| err(format!("--set `{set}`: empty key")))?;
            for p in parents {
                table = table
                    .entry(p.to_string())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .ok_or_else(|| err(format!("--set `{set}`: `{p}` is not a table")))?;
            }
            table.insert(last.to_string(), value);
        }
        let merged = toml::to_string(&doc).map_err(|e| err(e.to_string()))?;
        Self::parse(&merged, path)
    }
}

fn parse_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Deserialises TOML, turning parse and schema errors into one message with
/// the file, line and column.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        // typetag reports an unknown `type` at the end of its table; point at
        // the `type = "..."` line itself when it can be found.
        let type_line = e
            .message()
            .strip_prefix("unknown variant `")
            .and_then(|rest| rest.split('`').next())
            .and_then(|name| {
                text.lines().position(|l| {
                    let l = l.trim_start();
                    l.starts_with("type") && l.contains(&format!("\"{name}\""))
                })
            });
        let loc = match (type_line, e.span()) {
            (Some(i), _) => format!(":{}:1", i + 1),
            (None, Some(s)) => {
                let (line, col) = line_col(text, s.start);
                format!(":{line}:{col}")
            }
            (None, None) => String::new(),
        };
        // Name the field: the text of the line the error points at.
        let at = e
            .span()
            .and_then(|sp| {
                text[..sp.start.min(text.len())]
                    .rsplit('\n')
                    .next()
                    .map(|head| (head, sp))
            })
            .map(|(head, sp)| {
                let tail = text[sp.start.min(text.len())..]
                    .split('\n')
                    .next()
                    .unwrap_or("");
                format!("{head}{tail}").trim().to_string()
            })
            .filter(|l| !l.is_empty() && type_line.is_none())
            .map(|l| format!(" (at `{l}`)"))
            .unwrap_or_default();
        Error::Config {
            path: PathBuf::from(format!("{}{loc}", path.display())),
            msg: format!("{}{at}", explain(e.message())),
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Rewords serde's messages for config authors.
fn explain(msg: &str) -> String {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let name = rest.split('`').next().unwrap_or("");
        let known = registry::parse_expected(msg);
        if msg.contains("expected one of") || msg.contains("expected `") {
            return format!(
                "unknown type `{name}`; registered: {}",
                if known.is_empty() {
                    "(none)".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    msg.to_string()
}
