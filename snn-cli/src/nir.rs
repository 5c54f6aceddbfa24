//! `snn export` and `snn import`: run folders to and from NIR files.

use anyhow::{bail, Context, Result};
use snn_core::nir::{ExportOptions, PoolForm};
use snn_nir::run::ImportTarget;
use snn_train::checkpoint::CONFIG_FILE;
use snn_train::generate::Trained;
use snn_train::session::{say, BEST_PARAMS};
use std::path::{Path, PathBuf};

/// How `snn export` writes a max-pool of spikes.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PoolArg {
    /// `SumPool2d` then `Threshold` (NIR's exact nodes).
    SumThreshold,
    /// `AvgPool2d` then a memoryless `LIF` (for snnTorch 1.0's importer).
    AvgLif,
}

/// NIR's time constants are read and written at an Euler step `dt`.
fn check_dt(dt: f64) -> Result<()> {
    if !(dt.is_finite() && dt > 0.0) {
        bail!("--dt {dt}: the Euler step must be a positive number of seconds");
    }
    Ok(())
}

pub fn export(checkpoint: &Path, out: &Path, pool: PoolArg, dt: f64) -> Result<()> {
    check_dt(dt)?;
    let run = Trained::load(checkpoint)?;
    let pool = match pool {
        PoolArg::SumThreshold => PoolForm::SumThreshold,
        PoolArg::AvgLif => PoolForm::AvgLif,
    };
    let graph = snn_nir::run::export(&run, &ExportOptions { dt, pool })
        .with_context(|| format!("exporting {}", run.params.display()))?;
    snn_nir::file::write(out, &graph)?;
    let kinds: Vec<&str> = graph.walk()?.iter().map(|(_, n)| n.kind()).collect();
    say(&format!("nodes={}", kinds.join(" -> ")));
    say(&format!("nir={}", out.display()));
    Ok(())
}

pub fn import(file: &Path, out: &Path, target: ImportTarget) -> Result<()> {
    check_dt(target.dt)?;
    if out.exists()
        && out
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{}: exists and is not empty; import into a new folder",
            out.display()
        );
    }
    let graph = snn_nir::file::read(file)?;
    let dev = snn_core::device::create(0)?;
    let run = snn_nir::run::import(&graph, &target, file, &dev)?;
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    let config = out.join(CONFIG_FILE);
    std::fs::write(&config, &run.config_text).with_context(|| config.display().to_string())?;
    run.store.save(&out.join(BEST_PARAMS))?;
    say(&format!("layers={}", run.imported.layers));
    say(&format!("time_steps={}", run.cfg.time_steps));
    say(&format!("run={}", out.display()));
    Ok(())
}

/// `--data` or the conventional `data/<dataset>`.
pub fn data_root(dataset: &str, data: Option<PathBuf>) -> PathBuf {
    data.unwrap_or_else(|| PathBuf::from("data").join(dataset))
}
