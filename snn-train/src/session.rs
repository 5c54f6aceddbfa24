//! A training run: config, data, model, optimizer and progress, in one place.

use crate::checkpoint::PartialEpoch;
use crate::checkpoint::{Checkpoint, CONFIG_FILE};
use crate::config::{CheckpointEvery, OnDivergence, OptimizerKind, RunConfig};
pub use crate::evaluate::{evaluate, Evaluation};
use crate::evaluate::{evaluate_with, EvalOptions};
use crate::records::{EpochMetrics, RateMeans, StepMetrics};
use crate::step::{batch_draws, train_step, Learner, StepBatch};
use crate::{curves, learning_rate};
use indicatif::ProgressBar;
use snn_core::dfdx::prelude::*;
use snn_core::init::{self, Rng};
use snn_core::optim::{Adam, AdamConfig, Decay};
use snn_core::spec::{Model, ModelParts};
use snn_core::{collective, device, fsutil, Dev, Error, ParamStore, Result};
use snn_data::{augment, BatchOrder, Dataset, Split};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const METRICS_FILE: &str = "metrics.jsonl";
pub const STEPS_FILE: &str = "steps.jsonl";
pub const CURVES_FILE: &str = "curves.png";
pub const BEST_PARAMS: &str = "best.safetensors";

pub struct Session {
    pub cfg: RunConfig,
    pub dir: PathBuf,
    pub dev: Dev,
    pub store: ParamStore,
    pub model: Box<dyn Model>,
    pub opt: Adam,
    pub train: Dataset,
    pub test: Dataset,
    pub state: Checkpoint,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
    /// Set (e.g. by a SIGINT handler) to stop after the current step with
    /// a checkpoint: training then returns [`Error::Interrupted`].
    pub interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Builds the config's model with fresh parameters seeded by `cfg.seed`.
pub fn build_model(
    cfg: &RunConfig,
    shape: [usize; 3],
    classes: usize,
    dev: &Dev,
) -> Result<(ParamStore, Box<dyn Model>)> {
    let mut rng = init::rng(cfg.seed);
    let mut store = ParamStore::new(dev.clone());
    let parts = ModelParts {
        neuron: cfg.neuron.as_deref(),
        decoder: cfg.decoder.as_deref(),
        input_shape: shape,
        classes,
        time_steps: cfg.time_steps,
        loss: cfg.train.loss,
    };
    let model = cfg.model.build(&parts, &mut store, &mut rng)?;
    Ok((store, model))
}

/// The config's optimizer (Adam, or AdamW with decoupled decay).
pub fn optimizer(cfg: &RunConfig) -> Adam {
    let mut a: AdamConfig = cfg.train.adam.clone();
    if cfg.train.optimizer == OptimizerKind::Adamw {
        a.decay = Decay::Decoupled;
    }
    Adam::new(a)
}

impl Session {
    /// A fresh run writing into `dir`. Loads the data the config names.
    pub fn new(cfg: RunConfig, dir: &Path) -> Result<Self> {
        let train = snn_data::load(&cfg.data, Split::Train)?;
        let test = snn_data::load(&cfg.data, Split::Test)?;
        Self::with_data(cfg, dir, train, test)
    }

    /// A fresh run on data already in memory (tests, tools).
    pub fn with_data(
        cfg: RunConfig,
        dir: &Path,
        mut train: Dataset,
        mut test: Dataset,
    ) -> Result<Self> {
        if train.is_empty() || test.is_empty() {
            return Err(Error::invalid(
                "data",
                "the training and test sets must not be empty",
            ));
        }
        check_ranks(&cfg, &train, &test)?;
        let normalization = cfg.data.normalize.then(|| train.channel_stats());
        if let Some(stats) = &normalization {
            train.normalize(stats);
            test.normalize(stats);
        }
        let dev = device::create(cfg.seed)?;
        let (store, model) = build_model(&cfg, train.shape, train.classes, &dev)?;
        let opt = optimizer(&cfg);
        let state = Checkpoint {
            epoch: 0,
            step: 0,
            best_score: 0.0,
            best_epoch: 0,
            params: String::new(),
            optimizer: String::new(),
            seed: cfg.seed,
            normalization,
            batch: 0,
            partial: None,
        };
        Ok(Self {
            cfg,
            dir: dir.to_path_buf(),
            dev,
            store,
            model,
            opt,
            train,
            test,
            state,
            progress: true,
            interrupt: None,
        })
    }

    /// Continues the run in `dir` from its last checkpoint, with the config
    /// saved there.
    pub fn resume(dir: &Path) -> Result<Self> {
        let cfg = RunConfig::load(&dir.join(CONFIG_FILE))?;
        let state = Checkpoint::load(dir)?.ok_or_else(|| Error::Checkpoint {
            path: dir.to_path_buf(),
            msg: "no state.json: nothing to resume".into(),
        })?;
        let mut s = Self::new(cfg, dir)?;
        s.restore(state)?;
        s.trim_steps()?;
        Ok(s)
    }

    fn restore(&mut self, state: Checkpoint) -> Result<()> {
        self.store.load(&state.params_path(&self.dir))?;
        self.opt.load(&state.optimizer_path(&self.dir))?;
        if self.opt.steps() != state.step {
            return Err(Error::Checkpoint {
                path: state.optimizer_path(&self.dir),
                msg: format!(
                    "optimizer is at step {}, state.json says {}",
                    self.opt.steps(),
                    state.step
                ),
            });
        }
        self.state = state;
        Ok(())
    }

    fn image_shape(&self) -> (usize, usize, usize) {
        let [c, h, w] = self.train.shape;
        (c, h, w)
    }

    /// Runs the remaining epochs, checkpointing after each. Returns the best
    /// test score (accuracy for classifiers, minus the loss otherwise).
    pub fn run(&mut self) -> Result<f32> {
        self.run_epochs(|_| {})?;
        Ok(self.state.best_score)
    }

    /// The epoch loop: runs the remaining epochs, checkpointing after each
    /// and handing each epoch's metrics to `on_epoch` (the CLI prints
    /// them). Returns the last epoch's metrics (`None` when none was left).
    pub fn run_epochs(
        &mut self,
        mut on_epoch: impl FnMut(&EpochMetrics),
    ) -> Result<Option<EpochMetrics>> {
        let mut last = None;
        while self.state.epoch < self.cfg.train.epochs {
            let m = self.run_one_epoch()?;
            on_epoch(&m);
            last = Some(m);
        }
        Ok(last)
    }

    /// Trains one epoch, appends its metrics and writes the checkpoint.
    pub fn run_one_epoch(&mut self) -> Result<EpochMetrics> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let cfg_path = self.dir.join(CONFIG_FILE);
        if writes() && !cfg_path.exists() {
            fsutil::atomic_write(&cfg_path, self.cfg.to_toml()?.as_bytes())?;
        }
        let (m, score) = self.train_epoch()?;
        if writes() {
            self.append_metrics(&m)?;
        }
        self.save_checkpoint(score)?;
        Ok(m)
    }

    /// A 0 pixel in the model's input range, per channel: what
    /// augmentation fills uncovered borders with.
    fn background(&self) -> Vec<f32> {
        let zero = if self.cfg.data.symmetric { -1.0 } else { 0.0 };
        match &self.state.normalization {
            Some(stats) => stats.iter().map(|(m, s)| (zero - m) / s).collect(),
            None => vec![zero],
        }
    }

    /// Trains one epoch and evaluates on the test set. Returns the metrics
    /// and the test score.
    pub fn train_epoch(&mut self) -> Result<(EpochMetrics, f32)> {
        let epoch = self.state.epoch;
        let t0 = Instant::now();
        let (c, h, w) = self.image_shape();
        let bs = self.cfg.train.batch_size;
        let order = BatchOrder::Shuffled {
            seed: self.cfg.seed,
            epoch: epoch as u64,
        };
        let batches = self.train.batch_indices(bs, order);
        let total_steps = (self.cfg.train.epochs * batches.len()) as u64;
        let progress = epoch as f32 / self.cfg.train.epochs.max(1) as f32;
        let mut rng: Rng =
            init::rng(self.cfg.seed ^ (0xD1B5_4A32_D192_ED03u64.wrapping_mul(epoch as u64 + 1)));
        let bar = self.progress_bar(batches.len(), epoch);
        // A checkpoint written inside this epoch: continue after its batch,
        // with its generator position and running sums.
        let start = self.state.batch;
        let partial = match (start, self.state.partial.take()) {
            (0, _) => PartialEpoch::default(),
            (_, Some(p)) => {
                let pos: u128 = p.rng_word_pos.parse().map_err(|_| Error::Checkpoint {
                    path: self.dir.join(crate::checkpoint::STATE_FILE),
                    msg: format!("`rng_word_pos` {:?} is not a number", p.rng_word_pos),
                })?;
                rng.set_word_pos(pos);
                p
            }
            (_, None) => {
                return Err(Error::Checkpoint {
                    path: self.dir.join(crate::checkpoint::STATE_FILE),
                    msg: format!("says batch {start} of an epoch but holds no `partial` sums"),
                })
            }
        };
        if let Some(bar) = &bar {
            bar.inc(start as u64);
        }
        let PartialEpoch {
            mut loss_sum,
            mut correct,
            mut seen,
            mut skipped,
            ..
        } = partial;
        let before = partial.seconds;
        let mut rates = RateMeans(partial.rates);
        let mut terms = RateMeans(partial.terms);
        let mut window = (
            partial.window.0,
            partial.window.1,
            RateMeans(partial.window.2),
        );
        let mut lr = if start > 0 {
            partial.lr
        } else {
            self.cfg.train.lr
        };
        let fill = self.background();
        // The epoch's running sums as a checkpoint stores them.
        macro_rules! snapshot {
            () => {
                PartialEpoch {
                    rng_word_pos: rng.get_word_pos().to_string(),
                    loss_sum,
                    correct,
                    seen,
                    skipped,
                    rates: rates.0.clone(),
                    terms: terms.0.clone(),
                    window: (window.0, window.1, window.2 .0.clone()),
                    lr,
                    seconds: before + t0.elapsed().as_secs_f64(),
                }
            };
        }
        let mut last_checkpoint = Instant::now();
        let mut comm_seconds = 0.0f64;
        let (rank, ranks) = (collective::group().rank(), collective::group().size());
        for (index, idx) in batches.iter().enumerate().skip(start) {
            // This rank's contiguous slice of the global batch.
            let mine = &idx[collective::shard(idx.len(), rank, ranks)];
            let mut batch = self.train.gather(mine);
            let keys = augment::Keys {
                seed: self.cfg.seed,
                epoch: epoch as u64,
                images: mine,
            };
            augment::augment_batch(&mut batch, [c, h, w], &self.cfg.data.augment, &fill, keys);
            let b = batch.labels.len();
            let step_batch = StepBatch {
                images: self.dev.tensor_from_vec(batch.images, (b, c, h, w)),
                labels: &batch.labels,
                global: idx.len(),
                draws: Some(batch_draws(self.cfg.seed, epoch, index, mine)),
                progress,
                keep_gradients: self.state.step < self.cfg.train.save_gradients,
            };
            lr = learning_rate(&self.cfg, self.state.step, total_steps);
            let mut learner = Learner {
                model: self.model.as_ref(),
                store: &mut self.store,
                opt: &mut self.opt,
                lr,
            };
            let mut out = train_step(&mut learner, step_batch, &mut rng, &mut |_| {})?;
            comm_seconds += out.comm_s;
            if let Some(g) = out.gradients.take() {
                self.save_gradients(self.state.step + 1, out.loss, g)?;
            }
            if !out.applied {
                match self.cfg.train.on_divergence {
                    // No update, no statistics (and no optimizer step).
                    OnDivergence::Skip => skipped += 1,
                    OnDivergence::Stop => {
                        return Err(Error::invalid(
                            "train",
                            format!(
                                "the loss became {} at epoch {} step {} (batch {} of the epoch); \
                                 nothing was saved from this epoch. {}; lower train.lr, or set \
                                 train.on_divergence = \"skip\" to skip such batches",
                                out.loss,
                                epoch + 1,
                                self.state.step + 1,
                                index + 1,
                                self.last_good()
                            ),
                        ));
                    }
                }
            } else {
                // Figures of the global batch (the same on every rank).
                let global = idx.len();
                if let Some(hits) = out.correct {
                    *correct.get_or_insert(0) += hits;
                }
                window.2.add(out.terms.clone());
                terms.add(out.terms);
                self.state.step += 1;
                loss_sum += out.loss as f64 * global as f64;
                seen += global;
                window.0 += out.loss as f64;
                window.1 += 1;
                let every = self.cfg.train.log_every;
                if every > 0 && self.state.step.is_multiple_of(every as u64) {
                    let (sum, n, t) = std::mem::take(&mut window);
                    self.append_step(&StepMetrics {
                        epoch: epoch + 1,
                        step: self.state.step,
                        loss: (sum / n.max(1) as f64) as f32,
                        terms: t.means(),
                        // Since the epoch began, across a resume (as the
                        // epoch's own record counts it).
                        seconds: (before + t0.elapsed().as_secs_f64()) as f32,
                        ranks,
                        comm_seconds: std::mem::take(&mut comm_seconds) as f32,
                    })?;
                }
                rates.add(out.rates);
                if let Some(bar) = &bar {
                    let ips = seen as f64 / t0.elapsed().as_secs_f64().max(1e-9);
                    bar.set_message(format!(
                        "loss {:.4} | {ips:.1} img/s",
                        loss_sum / seen as f64
                    ));
                    bar.inc(1);
                }
            }
            let due = index + 1 < batches.len()
                && match self.cfg.train.checkpoint_every {
                    CheckpointEvery::Steps(n) => self.state.step.is_multiple_of(n),
                    CheckpointEvery::Minutes(m) => {
                        last_checkpoint.elapsed().as_secs_f64() >= m * 60.0
                    }
                };
            let (stop, due) = self.agree_to_stop_or_save(due);
            if stop || due {
                self.save_partial(index + 1, snapshot!())?;
                last_checkpoint = Instant::now();
                if stop {
                    if let Some(bar) = bar {
                        bar.finish_and_clear();
                    }
                    return Err(Error::Interrupted(format!(
                        "stopped after epoch {} batch {} of {} (step {}); checkpoint written to {}",
                        epoch + 1,
                        index + 1,
                        batches.len(),
                        self.state.step,
                        self.dir.display()
                    )));
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if skipped == batches.len() {
            return Err(Error::invalid(
                "train",
                format!(
                    "every batch of epoch {} had a non-finite loss (all {skipped} skipped); \
                     nothing was saved from this epoch. {}; lower train.lr",
                    epoch + 1,
                    self.last_good()
                ),
            ));
        }
        let train_seconds = (before + t0.elapsed().as_secs_f64()) as f32;
        let eval = match self.evaluate(&self.test) {
            // The epoch's training is done: keep it, and let the resume
            // run the test pass again.
            Err(Error::Interrupted(_)) => {
                self.save_partial(batches.len(), snapshot!())?;
                return Err(Error::Interrupted(format!(
                    "stopped during the test pass of epoch {} (its training is done); checkpoint written to {}, \
                     the resume runs the test pass",
                    epoch + 1,
                    self.dir.display()
                )));
            }
            other => other?,
        };
        self.state.epoch += 1;
        let neurons = self
            .model
            .neuron_constants(&self.store)?
            .into_iter()
            .map(|(n, v)| (n, v.into_iter().collect()))
            .collect();
        let score = eval.score();
        let m = EpochMetrics {
            epoch: self.state.epoch,
            train_loss: (loss_sum / seen.max(1) as f64) as f32,
            train_accuracy: correct.map(|c| c as f32 / seen.max(1) as f32),
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            train_terms: terms.means(),
            test_terms: eval.terms,
            firing_rates: rates.means(),
            neurons,
            lr,
            seconds: (before + t0.elapsed().as_secs_f64()) as f32,
            images_per_second: seen as f32 / train_seconds.max(1e-9),
            peak_rss_mib: snn_core::procfs::kib("/proc/self/status", "VmHWM")
                .map(|kib| kib as f32 / 1024.0),
            skipped_batches: skipped,
        };
        Ok((m, score))
    }

    /// Whether to stop after this step, and whether a checkpoint is `due`:
    /// true on every rank when true on any. Ctrl-C reaches each rank's
    /// handler at its own moment, and a checkpoint every few minutes reads
    /// each rank's own clock; the ranks must still stop and save after the
    /// same step (saving is collective: the parameters are compared).
    fn agree_to_stop_or_save(&self, due: bool) -> (bool, bool) {
        let asked = self
            .interrupt
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst));
        if !collective::is_distributed() {
            return (asked, due);
        }
        let mut any = [asked as u8 as f64, due as u8 as f64];
        collective::sum_f64(&mut any);
        (any[0] > 0.0, any[1] > 0.0)
    }

    fn progress_bar(&self, len: usize, epoch: usize) -> Option<ProgressBar> {
        if !self.progress {
            return None;
        }
        let bar = crate::progress_bar(
            len,
            format!("epoch {}/{}", epoch + 1, self.cfg.train.epochs),
        );
        Some(bar)
    }

    /// Accuracy, mean loss and per-class accuracy on `ds` (inference mode),
    /// stopping between batches on the run's interrupt.
    pub fn evaluate(&self, ds: &Dataset) -> Result<Evaluation> {
        if ds.shape != self.train.shape {
            return Err(Error::shape(
                "evaluation data",
                format!(
                    "images are {:?}, the model takes {:?}",
                    ds.shape, self.train.shape
                ),
            ));
        }
        let stop = self.interrupt.as_deref();
        let options = EvalOptions {
            stop,
            ..Default::default()
        };
        evaluate_with(
            &self.cfg,
            &self.dev,
            &self.store,
            self.model.as_ref(),
            ds,
            options,
        )
    }

    /// Appends one line to `steps.jsonl`. A resumed run first drops lines
    /// past its checkpoint (see [`Session::resume`]).
    fn append_step(&self, m: &StepMetrics) -> Result<()> {
        use std::io::Write as _;
        if !writes() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.dir.join(STEPS_FILE);
        let line = serde_json::to_string(m).map_err(|e| Error::invalid("steps", e.to_string()))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(f, "{line}").map_err(|e| Error::io(&path, e))
    }

    /// Drops `steps.jsonl` lines of steps after the checkpoint (a killed
    /// run logged them before dying; the resumed run redoes those steps).
    fn trim_steps(&self) -> Result<()> {
        let path = self.dir.join(STEPS_FILE);
        if !writes() {
            return Ok(());
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let keep: Vec<&str> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<StepMetrics>(l).is_ok_and(|m| m.step <= self.state.step)
            })
            .collect();
        let body = keep.iter().map(|l| format!("{l}\n")).collect::<String>();
        fsutil::atomic_write(&path, body.as_bytes())
    }

    /// The `steps.jsonl` history (empty if there is none).
    pub fn step_history(&self) -> Vec<StepMetrics> {
        crate::records::read_steps(&self.dir)
    }

    fn append_metrics(&self, m: &EpochMetrics) -> Result<()> {
        let path = self.dir.join(METRICS_FILE);
        // A resumed run may find lines of epochs it is about to redo (killed
        // after metrics, before state.json): keep only earlier epochs.
        let mut lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                // By the epoch field alone: a line with a NaN (written as
                // null) is no EpochMetrics, but is kept all the same.
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["epoch"].as_u64())
                    .is_some_and(|e| (e as usize) < m.epoch)
            })
            .map(str::to_string)
            .collect();
        lines.push(serde_json::to_string(m).map_err(|e| Error::invalid("metrics", e.to_string()))?);
        let text = lines.join("\n") + "\n";
        fsutil::atomic_write(&path, text.as_bytes())?;
        let history: Vec<EpochMetrics> = lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        curves::write_png(&self.dir.join(CURVES_FILE), &history, &self.step_history())
    }

    /// A checkpoint inside the epoch: after `batch` batches of epoch
    /// `state.epoch + 1`, with the epoch's running sums. Files as at epoch
    /// ends (parameters, optimizer, then `state.json`, each atomic).
    fn save_partial(&mut self, batch: usize, sums: PartialEpoch) -> Result<()> {
        if let Some(name) = self.store.first_non_finite() {
            return Err(Error::invalid(
                "train",
                format!(
                    "parameter `{name}` is not finite in epoch {}; nothing was saved. {}",
                    self.state.epoch + 1,
                    self.last_good()
                ),
            ));
        }
        let e = self.state.epoch;
        let mut next = self.state.clone();
        next.params = format!("params-e{e}-b{batch}.safetensors");
        next.optimizer = format!("optim-e{e}-b{batch}.safetensors");
        next.batch = batch;
        next.partial = Some(sums);
        self.check_ranks_agree()?;
        if writes() {
            self.store.save(&next.params_path(&self.dir))?;
            self.opt.save(&next.optimizer_path(&self.dir))?;
            next.save(&self.dir)?;
            next.prune(&self.dir);
        }
        // The epoch goes on from the in-memory sums; keep none here.
        next.partial = None;
        self.state = next;
        Ok(())
    }

    /// Rank 0 writes step `step`'s gradients (as the optimizer got them)
    /// and the global loss to `gradients/step-NNNNNN.safetensors`.
    fn save_gradients(&self, step: u64, loss: f32, grads: Vec<(String, Vec<f32>)>) -> Result<()> {
        if !writes() {
            return Ok(());
        }
        let dir = self.dir.join("gradients");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let tensors: Vec<_> = grads
            .into_iter()
            .map(|(n, g)| (n, vec![g.len()], g))
            .collect();
        let meta = [
            ("loss".to_string(), format!("{loss:e}")),
            ("ranks".to_string(), collective::group().size().to_string()),
        ];
        let path = dir.join(format!("step-{step:06}.safetensors"));
        snn_core::params::write_safetensors(&path, &tensors, meta.into_iter().collect())
    }

    /// Where the last checkpoint is, for messages.
    fn last_good(&self) -> String {
        if self.state.params.is_empty() {
            format!("{} has no checkpoint yet", self.dir.display())
        } else {
            format!(
                "The last good checkpoint is {} (epoch {}; `--resume` continues from it)",
                self.state.params_path(&self.dir).display(),
                self.state.epoch
            )
        }
    }

    fn save_checkpoint(&mut self, score: f32) -> Result<()> {
        // A non-finite parameter is never written, nor marked best.
        if let Some(name) = self.store.first_non_finite() {
            return Err(Error::invalid(
                "train",
                format!(
                    "parameter `{name}` is not finite after epoch {}; nothing was saved. {}",
                    self.state.epoch,
                    self.last_good()
                ),
            ));
        }
        let e = self.state.epoch;
        self.state.params = format!("params-e{e}.safetensors");
        self.state.optimizer = format!("optim-e{e}.safetensors");
        self.state.batch = 0;
        self.state.partial = None;
        self.check_ranks_agree()?;
        let rank0 = writes();
        if rank0 {
            self.store.save(&self.state.params_path(&self.dir))?;
            self.opt.save(&self.state.optimizer_path(&self.dir))?;
        }
        // A NaN test score never makes a checkpoint the best.
        if score.is_finite() && (score > self.state.best_score || self.state.best_epoch == 0) {
            self.state.best_score = score;
            self.state.best_epoch = e;
            if rank0 {
                self.store.save(&self.dir.join(BEST_PARAMS))?;
            }
        }
        if rank0 {
            self.state.save(&self.dir)?;
            self.state.prune(&self.dir);
        }
        Ok(())
    }

    /// Before a checkpoint: every rank must hold the same parameters and
    /// optimizer step (they apply the same summed gradients). A rank that
    /// drifted is a bug or a broken reduction; stop rather than save one
    /// rank's view of the model as everyone's.
    fn check_ranks_agree(&self) -> Result<()> {
        if !collective::is_distributed() {
            return Ok(());
        }
        let mut bytes = self.opt.steps().to_le_bytes().to_vec();
        for (name, p) in self.store.iter() {
            bytes.extend_from_slice(name.as_bytes());
            let values = p.value.as_vec();
            bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        }
        collective::agree("parameters", &bytes).map_err(|msg| {
            Error::invalid(
                "ranks",
                format!(
                    "{msg} before the checkpoint at step {}; nothing was saved",
                    self.state.step
                ),
            )
        })
    }

    /// Parameter count and the model's layer summary, one item per line.
    pub fn describe(&self) -> String {
        format!(
            "{} trainable parameters in {} tensors\n{}",
            self.store.num_trainable(),
            self.store.len(),
            self.model.summary()
        )
    }
}

/// Whether this process writes the run's files: rank 0 (the only one
/// without MPI) writes `metrics.jsonl`, `steps.jsonl`, curves and
/// checkpoints; the others compute the same state and write nothing.
fn writes() -> bool {
    collective::group().rank() == 0
}

/// Refuses a split that would leave a rank without images: every rank
/// needs at least one image of every batch (the epoch's last, short one
/// included) and of the test set.
fn check_ranks(cfg: &RunConfig, train: &Dataset, test: &Dataset) -> Result<()> {
    let ranks = collective::group().size();
    if ranks == 1 {
        return Ok(());
    }
    let bs = cfg.train.batch_size.max(1);
    let last = match train.len() % bs {
        0 => bs.min(train.len()),
        short => short,
    };
    if last < ranks || test.len() < ranks {
        return Err(Error::invalid(
            "train.batch_size",
            format!(
                "{ranks} ranks each need an image of every batch and of the test set: \
                 {} training images at batch {bs} end with a batch of {last}, and the test set \
                 has {}; use at most {} ranks or a batch size that leaves a last batch of at \
                 least {ranks}",
                train.len(),
                test.len(),
                last.min(test.len()),
            ),
        ));
    }
    Ok(())
}

/// Writes to stdout, ignoring a closed pipe; only rank 0 of several
/// prints (the others' figures are the same).
pub fn say(line: &str) {
    if !writes() {
        return;
    }
    let _ = writeln!(std::io::stdout(), "{line}");
}
