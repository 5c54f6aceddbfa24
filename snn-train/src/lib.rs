//! Training and evaluation of a model described by a [`RunConfig`]:
//! epochs over seeded batches, Adam/AdamW with a cosine or constant schedule,
//! a `metrics.jsonl` line per epoch, and atomic per-epoch checkpoints from
//! which a killed run resumes with exactly the parameters of an
//! uninterrupted one.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod curves;
pub mod evaluate;
pub mod generate;
pub mod lock;
pub mod memory;
pub mod ops;
pub mod records;
pub mod scores;
pub use snn_core::loss;
pub mod session;
pub mod step;

pub use checkpoint::Checkpoint;
pub use records::{EpochMetrics, StepMetrics};
pub use session::{Evaluation, Session};

use crate::config::RunConfig;
pub use crate::config::Schedule;

/// Learning rate at global step `step` of `total`.
pub fn learning_rate(cfg: &RunConfig, step: u64, total: u64) -> f32 {
    let lr = cfg.train.lr;
    match cfg.train.schedule {
        Schedule::Constant => lr,
        Schedule::Cosine => {
            let p = (step as f64 / total.max(1) as f64).min(1.0);
            (0.5 * lr as f64 * (1.0 + (std::f64::consts::PI * p).cos())) as f32
        }
    }
}

/// A progress bar of `len` items labelled `prefix`, in the project's one
/// style (`{msg}` shows what the caller sets; indicatif hides it when
/// stderr is not a terminal).
pub fn progress_bar(len: usize, prefix: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {msg} | {per_sec} | ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix);
    bar
}
