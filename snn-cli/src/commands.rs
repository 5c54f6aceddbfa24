//! The subcommands. Each returns an error for `main` to print as one line.

use anyhow::{bail, Context, Result};
use snn_core::config::RunConfig;
use snn_core::registry;
use snn_core::spec::{DecoderSpec, ModelSpec, NeuronSpec};
use snn_data::Split;
use snn_train::checkpoint::CONFIG_FILE;
use snn_train::session::{build_model, evaluate, say, BEST_PARAMS};
use snn_train::Session;
use std::path::{Path, PathBuf};

pub fn list() -> Result<()> {
    say(&format!("device: {}", snn_core::device::DEVICE_NAME));
    section::<dyn NeuronSpec>("neurons", |s| s.about());
    section::<dyn DecoderSpec>("decoders", |s| s.about());
    section::<dyn ModelSpec>("models", |s| s.about());
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

fn load_config(path: &Path, sets: &[String]) -> Result<RunConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(RunConfig::with_overrides(&text, path, sets)?)
}

pub fn check(path: &Path, sets: &[String]) -> Result<()> {
    let cfg = load_config(path, sets)?;
    say(&format!("# {} is valid; resolved:", path.display()));
    say(&cfg.to_toml()?);
    Ok(())
}

pub fn train(
    config: &Path,
    sets: &[String],
    out: Option<PathBuf>,
    resume: bool,
    quiet: bool,
) -> Result<()> {
    let dir = out.unwrap_or_else(|| {
        let stem = config
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "run".into());
        PathBuf::from("runs").join(stem)
    });
    let mut session = if resume && dir.join("state.json").exists() {
        if !sets.is_empty() {
            bail!(
                "--set cannot change a run being resumed; edit {}",
                dir.join(CONFIG_FILE).display()
            );
        }
        let s = Session::resume(&dir)?;
        eprintln!("resuming {} after epoch {}", dir.display(), s.state.epoch);
        s
    } else {
        if dir.join("state.json").exists() {
            bail!(
                "{} already holds a run; pass --resume to continue it or --out to start elsewhere",
                dir.display()
            );
        }
        Session::new(load_config(config, sets)?, &dir)
            .with_context(|| format!("{}", config.display()))?
    };
    session.progress = !quiet;
    eprintln!(
        "training {} on {} images ({} test), {}",
        config.display(),
        session.train.len(),
        session.test.len(),
        session.describe().lines().next().unwrap_or_default()
    );
    let start = std::time::Instant::now();
    let mut last = None;
    while session.state.epoch < session.cfg.train.epochs {
        let m = session.run_one_epoch()?;
        eprintln!(
            "epoch {}: train loss {:.4}, train acc {:.4}, test acc {:.4}, {:.1} img/s, {:.1} s",
            m.epoch,
            m.train_loss,
            m.train_accuracy,
            m.test_accuracy,
            m.images_per_second,
            m.seconds
        );
        last = Some(m.test_accuracy);
    }
    let Some(acc) = last.or(Some(session.state.best_accuracy).filter(|_| session.state.epoch > 0))
    else {
        bail!(
            "no epochs to run (train.epochs = {})",
            session.cfg.train.epochs
        );
    };
    say(&format!("run_folder={}", session.dir.display()));
    say(&format!("seconds={:.1}", start.elapsed().as_secs_f32()));
    say(&format!(
        "best_test_accuracy={:.4} (epoch {})",
        session.state.best_accuracy, session.state.best_epoch
    ));
    say(&format!("test_accuracy={acc:.4}"));
    Ok(())
}

pub fn eval(checkpoint: &Path, data: Option<PathBuf>, json: bool) -> Result<()> {
    let (dir, params) = if checkpoint.is_dir() {
        (checkpoint.to_path_buf(), checkpoint.join(BEST_PARAMS))
    } else {
        let dir = checkpoint.parent().unwrap_or(Path::new(".")).to_path_buf();
        (dir, checkpoint.to_path_buf())
    };
    let mut cfg = RunConfig::load(&dir.join(CONFIG_FILE))?;
    if let Some(root) = data {
        cfg.data.root = root;
    }
    let mut test = snn_data::load(&cfg.data, Split::Test)?;
    // Normalise with the training statistics saved in the checkpoint.
    if let Some(stats) = snn_train::Checkpoint::load(&dir)?.and_then(|s| s.normalization) {
        test.normalize(&stats);
    }
    let dev = snn_core::device::create(cfg.seed)?;
    let (mut store, model) = build_model(&cfg, test.shape, test.classes, &dev)?;
    store.load(&params)?;
    let ev = evaluate(&cfg, &dev, &store, model.as_ref(), &test)?;
    if json {
        say(&serde_json::to_string(&ev)?);
    } else {
        say(&format!("checkpoint={}", params.display()));
        for (c, a) in ev.per_class.iter().enumerate() {
            say(&format!("class {c}: {a:.4}"));
        }
        say(&format!("test_loss={:.5}", ev.loss));
        say(&format!("test_accuracy={:.4}", ev.accuracy));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BenchMode {
    Train,
    Infer,
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
    let cfg = load_config(config, sets)?;
    let batch = batch.unwrap_or(cfg.train.batch_size);
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    let mode = match mode {
        BenchMode::Train => snn_train::bench::Mode::Train,
        BenchMode::Infer => snn_train::bench::Mode::Infer,
    };
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
    }
    Ok(())
}
