//! The subcommands. Each returns an error for `main` to print as one line.

use crate::ranks::Ranks;
use anyhow::{bail, Context, Result};
use snn_core::registry;
use snn_core::spec::{DecoderSpec, ModelSpec, NeuronSpec};
use snn_train::checkpoint::CONFIG_FILE;
use snn_train::config::RunConfig;
use snn_train::evaluate::{evaluate_with, EvalOptions};
use snn_train::generate::{self, Trained};
use snn_train::session::say;
use snn_train::Session;
use std::path::{Path, PathBuf};

pub fn list() -> Result<()> {
    say(&format!("device: {}", snn_core::device::DEVICE_NAME));
    section::<dyn NeuronSpec>("neurons", |s| s.about());
    section::<dyn DecoderSpec>("decoders", |s| s.about());
    section::<dyn ModelSpec>("models", |s| s.about());
    say("\ndatasets (data.dataset):");
    for k in snn_data::KINDS {
        say(&format!("  {:<14} {}", k.name, k.about));
    }
    Ok(())
}

fn section<T: ?Sized>(title: &str, about: impl Fn(&T) -> &'static str)
where
    Box<T>: serde::de::DeserializeOwned + serde::Serialize,
{
    say(&format!("\n{title}:"));
    for name in registry::names::<T>() {
        let probe = serde_json::json!({ "type": name });
        let line = match serde_json::from_value::<Box<T>>(probe) {
            Ok(spec) => about(&spec).to_string(),
            Err(_) => String::new(),
        };
        say(&format!("  {name:<14} {line}"));
        match registry::defaults::<T>(&name) {
            Ok(toml) => {
                for l in toml.lines().filter(|l| !l.starts_with("type =")) {
                    say(&format!("      {l}"));
                }
            }
            Err(e) => say(&format!("      (no defaults: {e})")),
        }
    }
}

pub fn check(path: &Path, sets: &[String]) -> Result<()> {
    let cfg = RunConfig::load_with_overrides(path, sets)?;
    // The estimate first: it builds the model at small sizes, so a config
    // too large for the machine is refused before anything large exists.
    if let Some(est) = memory_check(&cfg, path)? {
        eprintln!("{}: {}{}", path.display(), est.describe(), machine_note());
    }
    // Build the model too: layer geometry and missing tables show up here,
    // not an hour into a run. The data is read only if its format does not
    // fix the image shape.
    let (shape, classes) =
        snn_data::input_shape(&cfg.data).with_context(|| format!("{}", path.display()))?;
    let dev = snn_core::device::create(cfg.seed)?;
    let (store, _) = snn_train::session::build_model(&cfg, shape, classes, &dev)
        .with_context(|| format!("{}", path.display()))?;
    say(&format!(
        "# {} is valid: {} trainable parameters for {}x{}x{} images; resolved:",
        path.display(),
        store.num_trainable(),
        shape[0],
        shape[1],
        shape[2]
    ));
    // What one epoch is, where the data is here (the reproduction runner
    // times a row from it).
    if let Ok(n) = snn_data::image_count(&cfg.data, snn_data::Split::Train) {
        let b = cfg.train.batch_size;
        say(&format!(
            "# epoch: {n} training images, {} steps at batch {b}",
            n.div_ceil(b)
        ));
    }
    say(&cfg.to_toml()?);
    Ok(())
}

/// ` (machine: M GiB, F GiB free now)`, or nothing where /proc says nothing.
fn machine_note() -> String {
    use snn_core::memory;
    let free = memory::available_bytes()
        .map(|a| format!(", {:.1} GiB free now", memory::gib(a)))
        .unwrap_or_default();
    memory::machine_bytes()
        .map(|m| format!(" (machine: {:.1} GiB{free})", memory::gib(m)))
        .unwrap_or_default()
}

/// Estimates the config's peak memory, refuses a config that needs more
/// than the machine has and warns past what is free now; `None` without
/// the counting allocator (a library caller's own `main`).
fn memory_check(cfg: &RunConfig, path: &Path) -> Result<Option<snn_train::memory::Estimate>> {
    use snn_core::memory;
    let Some(est) = snn_train::memory::estimate(cfg, path)
        .with_context(|| format!("{}: estimating peak memory", path.display()))?
    else {
        return Ok(None);
    };
    // The knob that lowers the phase that peaks.
    let batch_key = if est.evaluation {
        "train.eval_batch_size (the test pass peaks)"
    } else {
        "train.batch_size"
    };
    // Ranks on one machine share its memory.
    let local = Ranks::on_this_machine();
    let (total, of) = match local {
        1 => (est.total, String::new()),
        n => (
            est.total * n as u64,
            format!(", x {n} ranks on this machine"),
        ),
    };
    if let Some(m) = memory::machine_bytes().filter(|&m| total > m) {
        bail!(
            "{}: {}{of}: that is more than this machine's {:.1} GiB of memory; lower \
             {batch_key}, time_steps or the layer sizes",
            path.display(),
            est.describe(),
            memory::gib(m)
        );
    }
    if let Some(a) = memory::available_bytes().filter(|&a| total > a) {
        note(&format!(
            "warning: {}: {}{of}: that is more than the {:.1} GiB free now; the run may be \
             killed for memory",
            path.display(),
            est.describe(),
            memory::gib(a)
        ));
    }
    Ok(Some(est))
}

pub fn train(
    config: &Path,
    sets: &[String],
    out: Option<PathBuf>,
    resume: bool,
    quiet: bool,
    check_memory: bool,
) -> Result<()> {
    let (stop, handled) = stop_on_interrupt();
    let dir = out.unwrap_or_else(|| {
        let stem = config
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "run".into());
        PathBuf::from("runs").join(stem)
    });
    if dir.exists() && !dir.is_dir() {
        bail!(
            "--out {}: is a file, not a folder; name a new or existing run folder",
            dir.display()
        );
    }
    // Before the lock and the folder exist: a config too large for the
    // machine leaves nothing behind (the allocator's refusal exits at once).
    let resuming = resume && dir.join("state.json").exists();
    let fresh = if resuming {
        None
    } else {
        Some(RunConfig::load_with_overrides(config, sets)?)
    };
    let memory = if !check_memory {
        None
    } else {
        match &fresh {
            Some(cfg) => memory_check(cfg, config)?,
            None => {
                let saved = dir.join(CONFIG_FILE);
                memory_check(&RunConfig::load(&saved)?, &saved)?
            }
        }
    };
    // Ranks started with different configs or binaries would train
    // different models and reduce nonsense together: refuse at once.
    if let Some(cfg) = &fresh {
        agree_across_ranks(config, cfg, sets)?;
    }
    // Held by rank 0 until this function returns: one run per folder.
    let _lock = if Ranks::prints() {
        let (lock, warning) = snn_train::lock::RunLock::acquire(&dir)?;
        if let Some(w) = warning {
            eprintln!("{w}");
        }
        Some(lock)
    } else {
        None
    };
    let mut session = if resuming {
        if !sets.is_empty() {
            bail!(
                "--set cannot change a run being resumed; edit {}",
                dir.join(CONFIG_FILE).display()
            );
        }
        let s = Session::resume(&dir)?;
        note(&format!(
            "resuming {} after epoch {}",
            dir.display(),
            s.state.epoch
        ));
        s
    } else {
        if dir.join("state.json").exists() {
            bail!(
                "{} already holds a run; pass --resume to continue it or --out to start elsewhere",
                dir.display()
            );
        }
        let cfg = fresh.context("the config is loaded for every fresh run")?;
        Session::new(cfg, &dir).with_context(|| format!("{}", config.display()))?
    };
    if resuming {
        agree_across_ranks(&dir.join(CONFIG_FILE), &session.cfg, &[])?;
    }
    let group = snn_core::collective::group();
    session.progress = !quiet && Ranks::prints();
    note(&format!(
        "training {} on {} images ({} test{}), {}{}",
        config.display(),
        session.train.len(),
        session.test.len(),
        if group.size() > 1 {
            format!(", {}", group.describe())
        } else {
            String::new()
        },
        session.describe().lines().next().unwrap_or_default(),
        memory
            .map(|e| format!(
                "; estimated peak memory {:.2} GiB{}{}",
                snn_core::memory::gib(e.total),
                if group.size() > 1 { " per rank" } else { "" },
                machine_note()
            ))
            .unwrap_or_default()
    ));
    if let Some(w) = Ranks::stop_warning() {
        note(&w);
    }
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        note("interrupted before the first step; nothing was trained");
        return Err(Interrupted.into());
    }
    session.interrupt = handled.then_some(stop);
    let start = std::time::Instant::now();
    let last = match session.run_epochs(|m| note(&epoch_line(m))) {
        Err(snn_core::Error::Interrupted(what)) => {
            note(&format!(
                "{what}\nresume with: snn train --config {} --out {} --resume",
                config.display(),
                dir.display()
            ));
            return Err(Interrupted.into());
        }
        other => other?,
    };
    if session.state.epoch == 0 {
        bail!(
            "no epochs to run (train.epochs = {})",
            session.cfg.train.epochs
        );
    }
    say(&format!("run_folder={}", session.dir.display()));
    say(&format!("seconds={:.1}", start.elapsed().as_secs_f32()));
    let (best, best_epoch) = (session.state.best_score, session.state.best_epoch);
    match last {
        // A run resumed after its last epoch reports the best one.
        None => say(&format!("best_test_score={best:.4} (epoch {best_epoch})")),
        Some(m) => match m.test_accuracy {
            Some(acc) => {
                say(&format!(
                    "best_test_accuracy={best:.4} (epoch {best_epoch})"
                ));
                say(&format!("test_accuracy={acc:.4}"));
            }
            None => {
                say(&format!("best_test_loss={:.5} (epoch {best_epoch})", -best));
                for (k, v) in &m.test_terms {
                    say(&format!("test_{k}={v:.5}"));
                }
                say(&format!("test_loss={:.5}", m.test_loss));
            }
        },
    }
    Ok(())
}

/// SIGINT / SIGTERM from the first moment of `snn train`: the flag the
/// session reads (finish the step, or stop the test pass, checkpoint,
/// stop; while loading, stop before the first step); a second one quits
/// at once (every file is written atomically, so the last checkpoint
/// stays loadable). Also whether the handler could be installed.
fn stop_on_interrupt() -> (std::sync::Arc<std::sync::atomic::AtomicBool>, bool) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let handler = ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("second interrupt: exiting now");
            std::process::exit(130);
        }
        note("interrupt: stopping after this step (or the test pass's batch) with a checkpoint (again to quit at once)");
    });
    (stop, handler.is_ok())
}

/// A run stopped by SIGINT / SIGTERM after writing its checkpoint: `main`
/// exits with 130 (every rank, after closing MPI).
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// A line on stderr from rank 0 (the only process of a plain run).
fn note(line: &str) {
    if Ranks::prints() {
        eprintln!("{line}");
    }
}

/// Refuses ranks started with different configs (after overrides) or
/// different `snn` binaries: each rank's resolved config and executable
/// are fingerprinted and compared with rank 0's.
fn agree_across_ranks(path: &Path, cfg: &RunConfig, sets: &[String]) -> Result<()> {
    use snn_core::collective;
    if !collective::is_distributed() {
        return Ok(());
    }
    collective::agree("configs", cfg.to_toml()?.as_bytes()).map_err(|e| {
        let sets = match sets {
            [] => String::new(),
            _ => format!(" with --set {}", sets.join(" ")),
        };
        anyhow::anyhow!(
            "{}{sets}: {e}; start every rank with the same config",
            path.display()
        )
    })?;
    let exe = std::env::current_exe()
        .and_then(std::fs::read)
        .unwrap_or_default();
    collective::agree("snn binaries", &exe)
        .map_err(|e| anyhow::anyhow!("{e}; start every rank with the same build of snn"))
}

/// One line per finished epoch, for the terminal.
fn epoch_line(m: &snn_train::EpochMetrics) -> String {
    let mut parts = vec![format!("epoch {}: train loss {:.4}", m.epoch, m.train_loss)];
    for (k, v) in &m.train_terms {
        parts.push(format!("train {k} {v:.4}"));
    }
    if let Some(a) = m.train_accuracy {
        parts.push(format!("train acc {a:.4}"));
    }
    parts.push(format!("test loss {:.4}", m.test_loss));
    if let Some(a) = m.test_accuracy {
        parts.push(format!("test acc {a:.4}"));
    }
    parts.push(format!("{:.1} img/s", m.images_per_second));
    parts.push(format!("{:.1} s", m.seconds));
    parts.join(", ")
}

pub fn curves(run: &Path) -> Result<()> {
    snn_train::curves::redraw(run)?;
    say(&format!(
        "wrote {}",
        run.join(snn_train::session::CURVES_FILE).display()
    ));
    Ok(())
}

pub fn eval(
    checkpoint: &Path,
    data: Option<PathBuf>,
    sets: &[String],
    json: bool,
    ops: bool,
    predictions: Option<PathBuf>,
) -> Result<()> {
    let mut run = Trained::load_with(checkpoint, sets)?;
    if let Some(root) = data {
        run.cfg.data.root = root;
    }
    let test = run.test_data()?;
    let options = EvalOptions {
        ops,
        predictions: predictions.is_some(),
        stop: None,
    };
    let ev = evaluate_with(
        &run.cfg,
        &run.dev,
        &run.store,
        run.model.as_ref(),
        &test,
        options,
    )?;
    if let Some(path) = predictions {
        if ev.predictions.len() != test.len() {
            bail!("{}: this model does not classify", run.params.display());
        }
        let lines: Vec<String> = ev.predictions.iter().map(|p| p.to_string()).collect();
        std::fs::write(&path, lines.join("\n") + "\n")
            .with_context(|| path.display().to_string())?;
    }
    if ops && ev.ops.is_none() {
        bail!(
            "{}: this model reports no synaptic layers to count",
            run.params.display()
        );
    }
    if json {
        say(&serde_json::to_string(&ev)?);
    } else {
        say(&format!("checkpoint={}", run.params.display()));
        for (c, a) in ev.per_class.iter().enumerate() {
            say(&format!("class {c}: {a:.4}"));
        }
        for (k, v) in &ev.terms {
            say(&format!("test_{k}={v:.5}"));
        }
        say(&format!("test_loss={:.5}", ev.loss));
        if let Some(acc) = ev.accuracy {
            say(&format!("test_accuracy={acc:.4}"));
        }
        if let Some(ops) = &ev.ops {
            for (layer, rate) in &ev.firing_rates {
                say(&format!("firing_rate {layer}={rate:.4}"));
            }
            for line in snn_train::ops::lines(ops) {
                say(&line);
            }
        }
    }
    Ok(())
}

pub fn generate(
    checkpoint: &Path,
    count: usize,
    out: &Path,
    grid: Option<PathBuf>,
    seed: u64,
    batch: usize,
) -> Result<()> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let run = Trained::load(checkpoint)?;
    let t0 = std::time::Instant::now();
    let values = run.sample(count, batch, seed)?;
    let seconds = t0.elapsed().as_secs_f32();
    let images = generate::to_images(&run.to_pixels(&values), run.shape);
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let grey = run.shape[0] == 1;
    for (i, img) in images.iter().enumerate() {
        generate::save_png(&out.join(format!("sample-{i:05}.png")), img, grey)?;
    }
    say(&format!("samples={count} dir={}", out.display()));
    if let Some(path) = grid {
        let columns = (count as f64).sqrt().ceil() as usize;
        generate::save_png(&path, &generate::grid(&images, columns), grey)?;
        say(&format!("grid={}", path.display()));
    }
    say(&format!(
        "seconds={seconds:.1} ({:.1} images/s)",
        count as f32 / seconds.max(1e-9)
    ));
    Ok(())
}

/// The first `count` images of epoch `epoch` in training order, as the
/// model receives them, augmented as the run augments them (its first
/// batch's transforms), as a grid PNG.
pub fn show_batch(
    config: &Path,
    sets: &[String],
    out: &Path,
    count: usize,
    epoch: u64,
) -> Result<()> {
    use snn_data::{augment, BatchOrder};
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let cfg = RunConfig::load_with_overrides(config, sets)?;
    let train = snn_data::load(&cfg.data, snn_data::Split::Train)?;
    let order = BatchOrder::Shuffled {
        seed: cfg.seed,
        epoch,
    };
    // Training batches, each with its own transforms, until `count`.
    let zero = if cfg.data.symmetric { -1.0 } else { 0.0 };
    let mut values = Vec::new();
    let per = train.image_len();
    for idx in train.batch_indices(cfg.train.batch_size, order).iter() {
        if values.len() >= count * per {
            break;
        }
        let mut batch = train.gather(idx);
        let keys = augment::Keys {
            seed: cfg.seed,
            epoch,
            images: idx,
        };
        augment::augment_batch(&mut batch, train.shape, &cfg.data.augment, &[zero], keys);
        values.extend(batch.images);
    }
    values.truncate(count * per);
    let bytes: Vec<u8> = values
        .iter()
        .map(|v| {
            let v = if cfg.data.symmetric {
                (v + 1.0) / 2.0
            } else {
                *v
            };
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        })
        .collect();
    let images = generate::to_images(&bytes, train.shape);
    generate::save_png(out, &generate::grid(&images, 8), train.shape[0] == 1)?;
    say(&format!("images={} grid={}", images.len(), out.display()));
    Ok(())
}

pub fn reconstruct(
    checkpoint: &Path,
    out: &Path,
    count: usize,
    data: Option<PathBuf>,
    seed: u64,
) -> Result<()> {
    if count == 0 {
        bail!("--count must be at least 1");
    }
    let mut run = Trained::load(checkpoint)?;
    if let Some(root) = data {
        run.cfg.data.root = root;
    }
    let test = run.test_data()?;
    let (input, recon) = run.reconstruct(&test, count, seed)?;
    let inputs = generate::to_images(&run.to_pixels(&input), run.shape);
    let recons = generate::to_images(&run.to_pixels(&recon), run.shape);
    // Rows of 8: test images, then their reconstructions below them.
    let mut cells = Vec::new();
    for (a, b) in inputs.chunks(8).zip(recons.chunks(8)) {
        cells.extend_from_slice(a);
        cells.extend_from_slice(b);
    }
    let mse = input
        .iter()
        .zip(&recon)
        .map(|(a, b)| ((a - b) * (a - b)) as f64)
        .sum::<f64>()
        / input.len().max(1) as f64;
    generate::save_png(
        out,
        &generate::grid(&cells, 8.min(inputs.len())),
        run.shape[0] == 1,
    )?;
    say(&format!("images={} grid={}", inputs.len(), out.display()));
    say(&format!("reconstruction_mse={mse:.5}"));
    Ok(())
}

/// What `snn metrics` scores and with which networks. The defaults are
/// the paper's protocol (docs/metrics.md).
#[derive(clap::Args)]
pub struct MetricsArgs {
    /// A folder of PNG samples ...
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// ... or a generative run to draw them from (scored as floats, not
    /// rounded to 8 bits).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// The dataset the samples imitate; the scoring runs must be trained on it.
    #[arg(long)]
    pub dataset: String,
    /// Comma-separated: fid, fad, is.
    #[arg(long, value_delimiter = ',', default_value = "fid,fad,is")]
    pub metrics: Vec<String>,
    /// Samples for FID (the FSVAE code: 5,000).
    #[arg(long, default_value_t = 5000)]
    pub count: usize,
    /// FID network weights (scripts/fetch-data.sh inception).
    #[arg(long, default_value = snn_train::scores::INCEPTION_WEIGHTS)]
    pub inception: PathBuf,
    /// FID resize to 299x299: clean (clean-fid's default: PIL bicubic of
    /// float images), bilinear (pytorch-fid) or nearest.
    #[arg(long, alias = "resize", default_value = "clean")]
    pub fid_resize: String,
    /// FID reference: a folder of PNGs or a .npz with `mu` / `sigma`
    /// (clean-fid's format); default the dataset's test split, prepared as
    /// the training images (MNIST at 32x32: Pillow bilinear).
    #[arg(long)]
    pub fid_reference: Option<PathBuf>,
    /// Folder of the dataset's test split for FID (default data/<dataset>).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// FID reference images taken from the test split (0 = all).
    #[arg(long, default_value_t = 0)]
    pub reference_count: usize,
    /// Samples for FAD (the FSVAE code: 20 batches of 256).
    #[arg(long, default_value_t = snn_metrics::fad::FAD_SAMPLES)]
    pub fad_count: usize,
    /// FAD network: the FSVAE authors' encoder (safetensors); default
    /// data/fsvae-fad/<dataset>_64.safetensors for mnist and fmnist.
    #[arg(long)]
    pub fad_network: Option<PathBuf>,
    /// FAD reference statistics (.npz, `mu` / `sigma`); default the
    /// authors' test-set statistics beside the network.
    #[arg(long)]
    pub fad_reference: Option<PathBuf>,
    /// Batch norm of the authors' FAD network: batch (statistics of each
    /// batch of 256, as their code runs it) or running (eval mode).
    #[arg(long, default_value = "batch")]
    pub fad_bn: String,
    /// FAD with an autoencoder trained here instead (`configs/ae-*.toml`);
    /// the only option for cifar10 and celeba.
    #[arg(long, conflicts_with_all = ["fad_network", "fad_reference"])]
    pub fad_model: Option<PathBuf>,
    /// IS from Inception-v3 logits: weights with their classifier head, a
    /// torchvision-layout state dict converted by tools/torch_to_safetensors.py.
    #[arg(long)]
    pub is_inception: Option<PathBuf>,
    /// What the IS network receives: raw (pixels 0-255, as the FSVAE code
    /// feeds torchvision's inception_v3) or normalized (the weights' range).
    #[arg(long, default_value = "raw")]
    pub is_input: String,
    /// IS resize to 299x299 (the FSVAE code: bilinear, nn.Upsample).
    #[arg(long, default_value = "bilinear")]
    pub is_resize: String,
    /// Samples for IS (the FSVAE code: 10 batches of 256), in 10 splits.
    #[arg(long, default_value_t = snn_train::scores::IS_SAMPLES)]
    pub is_count: usize,
    /// IS from a classifier of the dataset (run folder) instead.
    #[arg(long, conflicts_with = "is_inception")]
    pub classifier: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn metrics(a: MetricsArgs) -> Result<()> {
    use snn_train::scores::{self, FidReference, PaperFad, Pixels};
    for m in &a.metrics {
        match m.as_str() {
            "fid" | "fad" | "is" => {}
            other => bail!("--metrics: unknown `{other}`; accepted: fid, fad, is"),
        }
    }
    let wants = |m: &str| a.metrics.iter().any(|x| x == m);
    // The networks first: a wrong path should fail before minutes of sampling.
    let fid_resize: snn_metrics::Resize = a.fid_resize.parse()?;
    let is_resize: snn_metrics::Resize = a.is_resize.parse()?;
    let is_input: snn_metrics::Input = a.is_input.parse()?;
    let fad_bn: snn_metrics::fad::BatchNorm = a.fad_bn.parse()?;
    let root = a
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from("data").join(&a.dataset));
    let fid_reference = if wants("fid") {
        if !a.inception.exists() {
            bail!(
                "{}: no FID network weights; run scripts/fetch-data.sh inception (or pass --inception FILE)",
                a.inception.display()
            );
        }
        Some(FidReference::from_arg(
            a.fid_reference.as_deref(),
            &a.dataset,
            &root,
            a.reference_count,
        )?)
    } else {
        None
    };
    let load = |metric: &str, flag: &str, path: &Option<PathBuf>| -> Result<Trained> {
        let Some(p) = path else {
            bail!(
                "{metric} needs {flag} RUN (a run trained on `{}`), or leave it out of --metrics",
                a.dataset
            );
        };
        let t = Trained::load(p)?;
        if t.cfg.data.dataset != a.dataset {
            bail!(
                "{flag} {}: trained on `{}`, not on --dataset `{}`",
                p.display(),
                t.cfg.data.dataset,
                a.dataset
            );
        }
        Ok(t)
    };
    let (paper_fad, own_fad) = match (wants("fad"), &a.fad_model) {
        (false, _) => (None, None),
        (true, Some(_)) => (None, Some(load("fad", "--fad-model", &a.fad_model)?)),
        (true, None) => {
            let defaults = scores::paper_files(&a.dataset, Path::new(scores::FAD_DIR));
            let weights = a
                .fad_network
                .clone()
                .or(defaults.as_ref().map(|d| d.0.clone()));
            let Some(weights) = weights else {
                bail!(
                    "fad for `{}` needs --fad-model RUN (an autoencoder trained here,                      configs/ae-{}.toml): the FSVAE authors' network is available for mnist and                      fmnist only (their latent-128 weights are not available here); or pass                      --fad-network FILE --fad-reference FILE.npz",
                    a.dataset,
                    a.dataset
                );
            };
            let reference = match (&a.fad_reference, &defaults) {
                (Some(r), _) => r.clone(),
                (None, Some(d)) => d.1.clone(),
                (None, None) => bail!(
                    "--fad-network needs --fad-reference FILE.npz for `{}`",
                    a.dataset
                ),
            };
            (Some(PaperFad::load(&weights, &reference, fad_bn)?), None)
        }
    };
    let is_network = match a.is_inception.as_ref().filter(|_| wants("is")) {
        Some(w) => Some((scores::load_is_network(w)?, w)),
        None => None,
    };
    let classifier = if wants("is") && a.is_inception.is_none() {
        if a.classifier.is_none() {
            bail!(
                "is needs --is-inception FILE (Inception-v3 with its logits) or --classifier RUN \
                 (a classifier trained on `{}`), or leave it out of --metrics",
                a.dataset
            );
        }
        Some(load("is", "--classifier", &a.classifier)?)
    } else {
        None
    };
    // One draw serves every metric; each scores its first N samples.
    let needed = [("fid", a.count), ("fad", a.fad_count), ("is", a.is_count)]
        .iter()
        .filter(|(m, _)| wants(m))
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    if needed == 0 {
        bail!("--count, --fad-count and --is-count must be at least 1 for the metrics asked");
    }
    let pixels = match (&a.samples, &a.checkpoint) {
        (Some(dir), None) => Pixels::load_folder(dir, needed)?,
        (None, Some(ck)) => {
            let run = Trained::load(ck)?;
            eprintln!("drawing {needed} samples from {}", ck.display());
            run.sample_pixels(needed, 100, a.seed)?
        }
        _ => bail!("give exactly one of --samples DIR and --checkpoint RUN"),
    };
    let mut out = Vec::new();
    if let Some(reference) = &fid_reference {
        out.push(scores::fid(
            &a.inception,
            &pixels.first(a.count),
            reference,
            fid_resize,
        )?);
    }
    if let Some(f) = &paper_fad {
        out.push(f.score(&pixels.first(a.fad_count))?);
    }
    if let Some(m) = &own_fad {
        out.push(scores::own_fad(m, &pixels.first(a.fad_count))?);
    }
    if let Some((net, w)) = &is_network {
        out.push(scores::inception_is(
            net,
            w,
            &pixels.first(a.is_count),
            is_resize,
            is_input,
        )?);
    }
    if let Some(m) = &classifier {
        out.push(scores::classifier_is(m, &pixels.first(a.is_count))?);
    }
    if a.json {
        let obj: serde_json::Map<String, serde_json::Value> = out
            .iter()
            .map(|s| Ok((s.metric.clone(), serde_json::to_value(s)?)))
            .collect::<Result<_>>()?;
        say(&serde_json::to_string(&obj)?);
    } else {
        for s in &out {
            say(&s.line());
        }
    }
    Ok(())
}

/// `snn bench --mode metrics`: the scoring networks' time per 1,000 images.
fn bench_metrics(
    config: &Path,
    cfg: &snn_train::config::RunConfig,
    images: usize,
    json: bool,
) -> Result<()> {
    use snn_train::scores::{FAD_DIR, INCEPTION_WEIGHTS};
    let (inception, fad) = (Path::new(INCEPTION_WEIGHTS), Path::new(FAD_DIR));
    let r = snn_train::bench::metric_networks(cfg, images, inception, fad)
        .with_context(|| format!("{}", config.display()))?;
    if json {
        say(&serde_json::to_string(&r)?);
        return Ok(());
    }
    let [c, h, w] = r.shape;
    say(&format!(
        "{} metrics on {} random {c}x{h}x{w} images (GEMM peak {:.1} GFLOP/s), peak RSS {:.0} MiB",
        r.dataset, r.images, r.gemm_peak_gflops, r.peak_rss_mib
    ));
    let nets = [
        (
            "FID: Inception-v3, clean resize to 299",
            r.fid_s_per_1000,
            r.fid_floor_s_per_1000,
        ),
        (
            "FAD: FSVAE authors' encoder",
            r.fad_s_per_1000,
            r.fad_floor_s_per_1000,
        ),
    ];
    for (name, t, floor) in nets {
        if let (Some(t), Some(floor)) = (t, floor) {
            say(&format!(
                "  {name}: {t:.1} s per 1000 images (dense floor {floor:.1} s)"
            ));
        }
    }
    for s in &r.skipped {
        say(&format!("  not timed: {s}"));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BenchMode {
    Train,
    Infer,
    /// Draw images from a generative model (images/s of `snn generate`).
    Sample,
    /// Time the FID and FAD networks on `--batch` images of the config's
    /// shape (default 1,000): seconds per 1,000 images.
    Metrics,
}

pub fn bench(
    config: &Path,
    sets: &[String],
    batch: Option<usize>,
    mode: BenchMode,
    warmup: usize,
    steps: usize,
    json: bool,
) -> Result<()> {
    let cfg = RunConfig::load_with_overrides(config, sets)?;
    if batch == Some(0) {
        bail!("--batch must be at least 1");
    }
    let mode = match mode {
        BenchMode::Train => snn_train::bench::Mode::Train,
        BenchMode::Infer => snn_train::bench::Mode::Infer,
        BenchMode::Sample => snn_train::bench::Mode::Sample,
        BenchMode::Metrics => return bench_metrics(config, &cfg, batch.unwrap_or(1000), json),
    };
    let batch = batch.unwrap_or(cfg.train.batch_size);
    let r = snn_train::bench::run(&cfg, batch, mode, warmup, steps)
        .with_context(|| format!("{}", config.display()))?;
    if json {
        say(&serde_json::to_string(&r)?);
    } else {
        say(&format!(
            "{} {} batch {} T {}: median {:.3} s/step (min {:.3}, max {:.3}, {} steps), {:.1} images/s, peak RSS {:.0} MiB",
            config.display(),
            r.mode,
            r.batch,
            r.time_steps,
            r.median_s,
            r.min_s,
            r.max_s,
            r.steps,
            r.images_per_second,
            r.peak_rss_mib
        ));
        if let Some(p) = &r.phases {
            say(&format!(
                "  phases (medians): forward {:.3} s, backward {:.3} s, update {:.3} s",
                p.forward_s, p.backward_s, p.update_s
            ));
        }
        say(&format!(
            "  dense floor: {:.2} GFLOP of layer products at the measured GEMM peak of {:.1} GFLOP/s = {:.3} s/step ({:.2}x of it)",
            r.dense_gflop,
            r.gemm_peak_gflops,
            r.dense_floor_s,
            r.median_s / r.dense_floor_s
        ));
        if r.ranks > 1 && r.mode == "train" {
            say(&format!(
                "  {} ranks, {} images each (rank 0): {:.3} s/step in {} reductions ({:.1} MB of gradient summed), {:.3} s computing",
                r.ranks,
                r.local_batch,
                r.comm_median_s,
                r.reductions_per_step,
                r.reduced_gradient_bytes as f64 / 1e6,
                r.median_s - r.comm_median_s
            ));
        }
    }
    Ok(())
}
