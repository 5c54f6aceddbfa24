//! `snn`: the command line of snn-rs.

mod commands;
mod nir;
mod ranks;

// Training allocates and frees multi-megabyte buffers every step; mimalloc
// keeps them mapped instead of faulting fresh pages in each time. The guard
// counts the bytes in use (for the peak-memory estimate) and refuses, with
// one message, a request that would take the process past the machine.
#[global_allocator]
static GLOBAL: snn_core::memory::Guard<mimalloc::MiMalloc> =
    snn_core::memory::Guard(mimalloc::MiMalloc);

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "snn",
    version,
    about = "Train and evaluate spiking neural networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every registered neuron, decoder and model with its fields and defaults.
    List,
    /// Validate a config and print it resolved (all defaults filled in).
    Check {
        config: PathBuf,
        /// Override a field: `key.path=value` (TOML value syntax).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Train a model; writes checkpoints and metrics.jsonl into the run folder.
    Train {
        #[arg(long)]
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Run folder (default: runs/<config name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the run in the run folder from its last checkpoint.
        #[arg(long)]
        resume: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Start without estimating the peak memory first (the estimate
        /// runs two small training steps; a run it refuses can be forced).
        #[arg(long)]
        no_memory_check: bool,
    },
    /// Time training, inference or sampling steps on random inputs of the config's
    /// shape (with the dense-GEMM floor of the step), or the scoring networks.
    Bench {
        #[arg(long)]
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Batch size (default: the config's); with `--mode metrics`, the
        /// images timed (default 1,000).
        #[arg(long)]
        batch: Option<usize>,
        #[arg(long, value_enum, default_value = "train")]
        mode: commands::BenchMode,
        /// Untimed steps first.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Write the first training images of an epoch as the model receives
    /// them (shuffled, resized, augmented) as a grid PNG.
    ShowBatch {
        #[arg(long)]
        config: PathBuf,
        #[arg(long = "set")]
        sets: Vec<String>,
        /// The grid PNG to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 32)]
        count: usize,
        /// Which epoch's order and transforms (0-based).
        #[arg(long, default_value_t = 0)]
        epoch: u64,
    },
    /// Draw images from a trained generative model (FSVAE, ANN VAE).
    Generate {
        /// A run folder, or a parameter file inside one.
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long, default_value_t = 64)]
        count: usize,
        /// Folder for the PNGs (`sample-00000.png`, ...).
        #[arg(long)]
        out: PathBuf,
        /// Also write all samples as one grid image here.
        #[arg(long)]
        grid: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Samples per forward pass.
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
    /// Reconstruct the first test images: a grid of rows of inputs, each
    /// followed by a row of their reconstructions.
    Reconstruct {
        #[arg(long)]
        checkpoint: PathBuf,
        /// The grid PNG to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 32)]
        count: usize,
        /// Folder holding the test data (default: the config's data.root).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Score generated images: FID (Inception-v3 FID network), FAD (with a
    /// trained `ae` run) and a classifier-based Inception Score (with a
    /// trained classifier run). Every line names the network behind it.
    Metrics(Box<commands::MetricsArgs>),
    /// Redraw a run folder's curves.png from its metrics.jsonl (and
    /// steps.jsonl, if present), e.g. a run drawn by an older version.
    Curves {
        /// A run folder, or any folder holding a run's metrics.jsonl.
        run: PathBuf,
    },
    /// Write a trained classifier as a NIR graph (HDF5; docs/nir.md), for
    /// neuromorphic toolchains and other frameworks (snnTorch, Norse, ...).
    Export {
        /// A run folder, or a parameter file inside one.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The `.nir` file to write.
        #[arg(long)]
        out: PathBuf,
        /// How max-pools of spikes are written.
        #[arg(long, value_enum, default_value = "sum-threshold")]
        pool: nir::PoolArg,
        /// The Euler step NIR's time constants are written for (seconds).
        #[arg(long, default_value_t = snn_core::nir::DEFAULT_DT)]
        dt: f64,
    },
    /// Build a classifier run folder from a NIR graph (from `snn export`,
    /// snnTorch, Norse, ...), which `snn eval` then runs.
    Import {
        /// The `.nir` file to read.
        file: PathBuf,
        /// The run folder to create (must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
        /// The dataset the network classifies (`mnist`, `fmnist`, `cifar10`).
        #[arg(long)]
        dataset: String,
        /// Folder holding it (default: data/<dataset>).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Time steps (default: the graph's `time_steps` metadata).
        #[arg(long)]
        time_steps: Option<usize>,
        /// The Euler step NIR's time constants are read at (seconds).
        #[arg(long, default_value_t = snn_core::nir::DEFAULT_DT)]
        dt: f64,
    },
    /// Evaluate a checkpoint: loss (and accuracy, per class, for classifiers).
    Eval {
        /// A run folder, or a parameter file inside one.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Folder holding the test data (default: the config's data.root).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Override a field of the run's config for this evaluation:
        /// `key.path=value` (e.g. `train.eval_batch_size=250`,
        /// `data.test_limit=1000`, `time_steps=16`); the run folder is not changed.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Also count the synaptic operations and their energy per image,
        /// by layer (dense, effective ACs of spike inputs, effective MACs).
        #[arg(long)]
        ops: bool,
        /// Write each test image's predicted class here, one per line, in
        /// dataset order (classifiers).
        #[arg(long)]
        predictions: Option<PathBuf>,
    },
}

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// A build for x86-64-v3 (see `.cargo/config.toml`) on a CPU without AVX2
/// or FMA would die of an illegal instruction somewhere in a kernel; say
/// what is wrong instead. Reads CPUID directly: with the features enabled
/// at compile time, `is_x86_feature_detected!` answers true unasked.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
fn check_cpu() {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU.
    let (leaf1, leaf7) = unsafe {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        (__cpuid(1), __cpuid_count(7, 0))
    };
    let fma = leaf1.ecx & (1 << 12) != 0;
    let avx2 = leaf7.ebx & (1 << 5) != 0;
    if !(fma && avx2) {
        eprintln!(
            "error: this snn was built for x86-64-v3 (AVX2 and FMA) and this CPU lacks them; \
             rebuild with RUSTFLAGS=\"-C target-cpu=x86-64\" (see .cargo/config.toml)"
        );
        std::process::exit(1);
    }
}

fn main() {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    check_cpu();
    // Never hand freed memory back to the OS: a training step frees and
    // re-allocates the same large buffers, and re-faulting them costs the
    // kernel zeroing every page again (measured on the FSVAE step at batch
    // 64: 7.0 s -> 4.6 s, peak memory +17%).
    // mimalloc's own `MIMALLOC_PURGE_DELAY` (milliseconds) in the
    // environment wins, to trade that time for memory.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide allocator option before any threads exist.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    if let Some(bytes) = snn_core::memory::machine_bytes() {
        snn_core::memory::set_limit(bytes);
    }
    snn_neurons::link();
    snn_decoders::link();
    snn_models::link();
    #[cfg(feature = "example-plugin")]
    neuron_plugin::link();
    let cli = Cli::parse();
    let ranks = ranks::Ranks::start();
    let result = match cli.command {
        Command::List => commands::list(),
        Command::Check { config, sets } => commands::check(&config, &sets),
        Command::Train {
            config,
            sets,
            out,
            resume,
            quiet,
            no_memory_check,
        } => commands::train(&config, &sets, out, resume, quiet, !no_memory_check),
        Command::Bench {
            config,
            sets,
            batch,
            mode,
            warmup,
            steps,
            json,
        } => commands::bench(&config, &sets, batch, mode, warmup, steps, json),
        Command::Eval {
            checkpoint,
            data,
            sets,
            json,
            ops,
            predictions,
        } => commands::eval(&checkpoint, data, &sets, json, ops, predictions),
        Command::Metrics(args) => commands::metrics(*args),
        Command::Export {
            checkpoint,
            out,
            pool,
            dt,
        } => nir::export(&checkpoint, &out, pool, dt),
        Command::Import {
            file,
            out,
            dataset,
            data,
            time_steps,
            dt,
        } => {
            let root = nir::data_root(&dataset, data);
            let target = snn_nir::run::ImportTarget {
                dataset,
                root,
                time_steps,
                dt,
            };
            nir::import(&file, &out, target)
        }
        Command::Curves { run } => commands::curves(&run),
        Command::ShowBatch {
            config,
            sets,
            out,
            count,
            epoch,
        } => commands::show_batch(&config, &sets, &out, count, epoch),
        Command::Generate {
            checkpoint,
            count,
            out,
            grid,
            seed,
            batch,
        } => commands::generate(&checkpoint, count, &out, grid, seed, batch),
        Command::Reconstruct {
            checkpoint,
            out,
            count,
            data,
            seed,
        } => commands::reconstruct(&checkpoint, &out, count, data, seed),
    };
    match result {
        Ok(()) => ranks.finish(0),
        Err(e) if e.downcast_ref::<commands::Interrupted>().is_some() => ranks.finish(130),
        Err(e) => ranks.fail(&format!("{e:#}")),
    }
}
