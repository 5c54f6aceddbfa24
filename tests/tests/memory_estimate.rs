//! The peak-memory estimate of `snn check` / `snn train` against the peak
//! actually allocated by the run it predicts, for the classifier and the
//! FSVAE, at batches and time steps it did not probe (including steps it
//! extrapolates to).
//!
//! Its own test binary with the counting allocator installed, and a single
//! `#[test]`: the counters are process-wide, so nothing else may allocate
//! while a case measures.

use snn_core::dfdx::prelude::*;
use snn_core::memory::{self, Guard};
use snn_core::spec::Forward;
use snn_core::{device, init};
use snn_tests::{link_plugins, root};
use snn_train::config::RunConfig;
use snn_train::memory::{estimate, Growth};
use snn_train::session::{build_model, optimizer};
use snn_train::step::{train_step, Learner, StepBatch};

#[global_allocator]
static ALLOC: Guard<std::alloc::System> = Guard(std::alloc::System);

/// Peak bytes above what was in use before, over building the model, one
/// training step at the config's batch and one evaluation batch (at
/// `train.eval_batch_size`, 4x by default).
fn measured_peak(cfg: &RunConfig) -> u64 {
    let (shape, classes) = snn_data::input_shape(&cfg.data).unwrap();
    let [c, h, w] = shape;
    let (b, n) = (cfg.train.batch_size, cfg.train.eval_batch());
    let before = memory::live().unwrap();
    memory::reset_peak();
    let dev = device::create(cfg.seed).unwrap();
    let mut rng = init::rng(cfg.seed);
    let (mut store, model) = build_model(cfg, shape, classes, &dev).unwrap();
    let mut opt = optimizer(cfg);
    let labels: Vec<u8> = (0..b.max(n)).map(|k| (k % classes) as u8).collect();
    let x = dev.tensor_from_vec(
        init::uniform(&mut rng, b * c * h * w, 0.0, 1.0),
        (b, c, h, w),
    );
    let mut learner = Learner {
        model: model.as_ref(),
        store: &mut store,
        opt: &mut opt,
        lr: cfg.train.lr,
    };
    let step = StepBatch {
        images: x,
        labels: &labels[..b],
        global: b,
        draws: None,
        progress: 0.0,
        keep_gradients: false,
    };
    train_step(&mut learner, step, &mut rng, &mut |_| {}).unwrap();
    let train = memory::peak() - before;
    memory::reset_peak();
    let x = dev.tensor_from_vec(
        init::uniform(&mut rng, n * c * h * w, 0.0, 1.0),
        (n, c, h, w),
    );
    snn_core::grad::no_grad(|| {
        let mut fwd = Forward::new(&store, false, &mut rng);
        let o = model
            .objective(x.traced(Gradients::leaky()), &labels[..n], &mut fwd)
            .unwrap();
        o.loss.array();
    });
    let eval = memory::peak() - before;
    train.max(eval)
}

#[test]
fn the_estimate_predicts_the_allocated_peak_of_the_run() {
    link_plugins();
    let quickstart = root().join("configs/quickstart.toml");
    let fsvae = root().join("configs/fsvae-mnist-taid.toml");
    let cases: [(&std::path::Path, &[&str], Option<Growth>); 6] = [
        // Probed at batches 4 and 8, asked for 16.
        (&quickstart, &["train.batch_size=16"], None),
        // Probed at 8 and 16, asked for 40.
        (&quickstart, &["train.batch_size=40"], None),
        // Probed at 8, 16 and 32 steps, asked for 48.
        (
            &quickstart,
            &["train.batch_size=8", "time_steps=48"],
            Some(Growth::Linear),
        ),
        (&fsvae, &["train.batch_size=12", "time_steps=8"], None),
        // An evaluation batch of its own: 12.5x the training batch
        // (probed at 25 and 50), and below it (probed at 2 and 4).
        (
            &quickstart,
            &["train.batch_size=8", "train.eval_batch_size=100"],
            None,
        ),
        (
            &fsvae,
            &[
                "train.batch_size=12",
                "train.eval_batch_size=9",
                "time_steps=8",
            ],
            None,
        ),
    ];
    for (path, sets, growth) in cases {
        let text = std::fs::read_to_string(path).unwrap();
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let cfg = RunConfig::with_overrides(&text, path, &sets).unwrap();
        let est = estimate(&cfg, path).unwrap().expect("the allocator counts");
        assert_eq!(est.extrapolated, growth, "{sets:?}");
        let measured = measured_peak(&cfg);
        let ratio = est.step as f64 / measured as f64;
        eprintln!(
            "{} {sets:?}: estimated {} B ({} peaks), measured {measured} B, ratio {ratio:.3}",
            path.display(),
            est.step,
            if est.evaluation {
                "evaluation"
            } else {
                "training"
            },
        );
        assert!(
            (0.95..=1.05).contains(&ratio),
            "{sets:?}: estimate {} vs measured {measured} (ratio {ratio:.3})",
            est.step
        );
        // The total adds what the process held and the data on top.
        assert!(est.total >= est.step);
        // The phase that peaks names its own batch.
        let batch = if est.evaluation {
            cfg.train.eval_batch()
        } else {
            cfg.train.batch_size
        };
        assert_eq!(est.batch, batch, "{sets:?}");
    }
}
