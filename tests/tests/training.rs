//! End-to-end training behaviour: one-line swaps train, a killed and
//! resumed run ends exactly where an uninterrupted one does.

use snn_tests::{tiny_config, tiny_fsvae_config};
use snn_train::config::RunConfig;
use snn_train::Session;

fn train(extra: &str, dir: &std::path::Path) -> Session {
    let mut s = Session::new(tiny_config(extra), dir).unwrap();
    s.progress = false;
    s.run().unwrap();
    s
}

#[test]
fn swapping_neuron_or_decoder_is_one_line_and_trains() {
    for line in [
        "",
        "set neuron.type=\"lif\"",
        "set neuron.type=\"plif\"",
        "set decoder={type=\"taid\"}",
        "set decoder={type=\"taid\",squeeze=\"chw\",mixing=\"diagonal\",reduce=\"mean\"}",
        "set neuron.kernel=\"composed\"",
    ] {
        let dir = tempfile::tempdir().unwrap();
        // Three epochs of six steps: two were too few for PLIF's mean loss
        // to fall reliably (it rose by 0.5% with one draw of dropout masks).
        let s = train(&format!("{line}\nset train.epochs=3"), dir.path());
        let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
        let rows: Vec<snn_train::EpochMetrics> = text.lines().map(serde_json_line).collect();
        assert_eq!(rows.len(), 3, "{line}");
        assert!(
            rows[2].train_loss < rows[0].train_loss,
            "{line}: loss {} -> {}",
            rows[0].train_loss,
            rows[2].train_loss
        );
        assert!(rows.iter().all(|r| r.firing_rates.len() == 2));
        assert!(dir.path().join("curves.png").exists());
        assert_eq!(s.state.epoch, 3);
    }
}

fn serde_json_line(l: &str) -> snn_train::EpochMetrics {
    // serde_json is a dependency of snn-train; parse through its re-export
    // of the metrics type.
    snn_train::records::parse_metrics_line(l).unwrap()
}

#[test]
fn killed_and_resumed_run_equals_uninterrupted_run() {
    killed_and_resumed_equals_uninterrupted(&tiny_config);
}

#[test]
fn killed_and_resumed_fsvae_equals_uninterrupted_run() {
    // FSVAE draws its latent picks and scheduled sampling from the epoch's
    // generator: a resumed run must redraw exactly the same.
    killed_and_resumed_equals_uninterrupted(&tiny_fsvae_config);
}

#[test]
fn killed_and_resumed_augmented_run_equals_uninterrupted_run() {
    // Augmentation draws per (seed, epoch, batch): a resumed run redraws
    // exactly the transforms the uninterrupted one had.
    let augmented = |extra: &str| {
        tiny_config(&format!(
            "{extra}\nset data.augment={{rotate=30.0,translate=0.15,scale=[0.85,1.11],crop_padding=2,hflip=true}}"
        ))
    };
    killed_and_resumed_equals_uninterrupted(&augmented);
    // And it is applied: the same run without it ends elsewhere.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plain = train("set train.epochs=1", a.path());
    let mut aug = Session::new(augmented("set train.epochs=1"), b.path()).unwrap();
    aug.progress = false;
    aug.run().unwrap();
    let name = "fc1.weight";
    assert!(plain.store.contains(name), "{name}");
    assert_ne!(
        plain.store.values(name).unwrap(),
        aug.store.values(name).unwrap()
    );
}

fn killed_and_resumed_equals_uninterrupted(config: &dyn Fn(&str) -> RunConfig) {
    let full_dir = tempfile::tempdir().unwrap();
    let mut full = Session::new(config("set train.epochs=3"), full_dir.path()).unwrap();
    full.progress = false;
    full.run().unwrap();

    // "Kill" after the first epoch: a run that stops after epoch 1 ...
    let dir = tempfile::tempdir().unwrap();
    let mut s = Session::new(config("set train.epochs=3"), dir.path()).unwrap();
    s.progress = false;
    s.run_one_epoch().unwrap();
    drop(s);
    // A kill mid-epoch 2 would leave step lines past the checkpoint.
    let steps = dir.path().join("steps.jsonl");
    let mut text = std::fs::read_to_string(&steps).unwrap();
    text.push_str("{\"epoch\":2,\"step\":9999,\"loss\":1.0,\"seconds\":0.0}\n");
    std::fs::write(&steps, text).unwrap();
    // ... and a process that resumes from the folder.
    let mut r = Session::resume(dir.path()).unwrap();
    r.progress = false;
    assert_eq!(r.state.epoch, 1);
    r.run().unwrap();
    assert_eq!(r.state.epoch, 3);
    assert_eq!(r.state.step, full.state.step);
    for (name, p) in full.store.iter() {
        assert_eq!(
            p.value.as_vec(),
            r.store.values(name).unwrap(),
            "parameter {name} differs after resume"
        );
    }
    let a = std::fs::read_to_string(full_dir.path().join("metrics.jsonl")).unwrap();
    let b = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(a.lines().count(), b.lines().count());
    // Per-step logs agree step for step (times aside).
    let losses = |s: &Session| -> Vec<(u64, f32)> {
        s.step_history().iter().map(|m| (m.step, m.loss)).collect()
    };
    assert!(!losses(&full).is_empty());
    assert_eq!(losses(&full), losses(&r));
}

#[test]
fn fsvae_metrics_carry_its_loss_terms_and_no_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Session::new(tiny_fsvae_config(""), dir.path()).unwrap();
    s.progress = false;
    s.run().unwrap();
    let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let rows: Vec<snn_train::EpochMetrics> = text.lines().map(serde_json_line).collect();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(r.test_accuracy.is_none() && r.train_accuracy.is_none());
        let (rec, dist) = (r.train_terms["reconstruction"], r.train_terms["distance"]);
        // loss = reconstruction + 1 x mmd distance, averaged the same way.
        assert!((r.train_loss - (rec + dist)).abs() < 1e-4, "{r:?}");
        assert!(r.test_terms.contains_key("reconstruction"));
        // 5 encoder/latent layers, 3 + 3 posterior and prior, 5 decoder.
        assert_eq!(r.firing_rates.len(), 16, "{:?}", r.firing_rates);
    }
    assert!(rows[1].train_loss < rows[0].train_loss);
    // best.safetensors follows the lowest test loss.
    let best = rows
        .iter()
        .min_by(|a, b| a.test_loss.total_cmp(&b.test_loss))
        .unwrap();
    assert_eq!(s.state.best_epoch, best.epoch);
    assert!((s.state.best_score + best.test_loss).abs() < 1e-6);
}

#[test]
fn resume_without_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Session::resume(dir.path()).err().unwrap().to_string();
    assert!(err.contains("config.toml"), "{err}");
}

/// The classifier runs each spiking layer fused with the max-pool after it
/// (the first on the static image, the second on a time sequence), with
/// and without gradient recording. Outputs and firing rates equal the
/// unfused network: with the composed neuron kernel (no host step) the
/// neuron and the pool run as separate ops.
#[test]
fn fused_spike_pool_layers_match_the_unfused_network() {
    use snn_core::dfdx::prelude::*;
    use snn_core::spec::{Forward, Model};
    let dir = tempfile::tempdir().unwrap();
    let layers = "c4k3s1-BN-SN-MPk2s2-c6k3s1-BN-SN-MPk2s2-DP-FC20-SN-APk2s2";
    let extra = format!("set train.epochs=1\nset model.layers=\"{layers}\"");
    let s = train(&extra, dir.path());
    let composed = tiny_config(&format!("{extra}\nset neuron.kernel=\"composed\""));
    let [c, h, w] = s.test.shape;
    let (_, unfused) =
        snn_train::session::build_model(&composed, s.test.shape, s.test.classes, &s.dev).unwrap();
    let batch = s.test.gather(&(0..12).collect::<Vec<_>>());
    let run = |model: &dyn Model| {
        let x = s
            .dev
            .tensor_from_vec(batch.images.clone(), (12, c, h, w))
            .traced(Gradients::leaky());
        let mut rng = snn_core::init::rng(0);
        let mut fwd = Forward::new(&s.store, false, &mut rng);
        let out = model.forward(x, &mut fwd).unwrap();
        (out.retaped::<NoneTape>().as_vec(), fwd.rates)
    };
    let (twin, twin_rates) = run(unfused.as_ref());
    let recorded = run(s.model.as_ref());
    let plain = snn_core::grad::no_grad(|| run(s.model.as_ref()));
    for (out, rates) in [recorded, plain] {
        assert_eq!(out, twin);
        assert_eq!(rates.len(), 3);
        for ((na, a), (nb, b)) in rates.iter().zip(&twin_rates) {
            assert_eq!(na, nb);
            assert!((a - b).abs() < 1e-6, "{na}: {a} vs {b}");
        }
    }
    assert!(
        twin_rates[0].1 > 0.0,
        "the first layer fires: {twin_rates:?}"
    );
    assert!(
        twin_rates[1].1 > 0.0,
        "the second layer fires: {twin_rates:?}"
    );
}

/// Stops `config`'s run after its first step (as SIGINT does), resumes it,
/// stops it again one step later, resumes again: it must end with the
/// parameters and epoch figures of an uninterrupted run.
fn interrupted_inside_epochs_equals_uninterrupted(config: &dyn Fn(&str) -> RunConfig) {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let extra = "set train.epochs=2\nset train.checkpoint_every=\"3 steps\"\nset train.log_every=1";
    let full_dir = tempfile::tempdir().unwrap();
    let mut full = Session::new(config(extra), full_dir.path()).unwrap();
    full.progress = false;
    full.run().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut s = Session::new(config(extra), dir.path()).unwrap();
    s.progress = false;
    s.interrupt = Some(Arc::new(AtomicBool::new(true)));
    let e = s.run().unwrap_err();
    assert!(matches!(e, snn_core::Error::Interrupted(_)), "{e}");
    assert_eq!((s.state.epoch, s.state.batch, s.state.step), (0, 1, 1));
    drop(s);
    for (batch, step) in [(2, 2), (0, 0)] {
        let mut r = Session::resume(dir.path()).unwrap();
        r.progress = false;
        if batch > 0 {
            r.interrupt = Some(Arc::new(AtomicBool::new(true)));
            assert!(r.run().is_err());
            assert_eq!((r.state.batch, r.state.step), (batch, step));
            continue;
        }
        r.run().unwrap();
        assert_eq!(r.state.step, full.state.step);
        for (name, p) in full.store.iter() {
            assert_eq!(
                p.value.as_vec(),
                r.store.values(name).unwrap(),
                "parameter {name} differs after two interrupts"
            );
        }
        let figures = |d: &std::path::Path| -> Vec<String> {
            let text = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
            text.lines()
                .map(|l| {
                    let mut m = serde_json_line(l);
                    (m.seconds, m.images_per_second, m.peak_rss_mib) = (0.0, 0.0, None);
                    format!("{m:?}")
                })
                .collect()
        };
        assert_eq!(figures(full_dir.path()), figures(dir.path()));
        // Step lines count their epoch's time across the resumes, as the
        // epoch's record does: within an epoch it never goes back.
        let steps = r.step_history();
        assert_eq!(steps.len() as u64, full.state.step, "{steps:?}");
        for w in steps.windows(2) {
            assert!(
                w[0].epoch != w[1].epoch || w[1].seconds >= w[0].seconds,
                "{w:?}"
            );
        }
        // Identical training, identical checkpoint bytes.
        let bytes = |d: &std::path::Path| std::fs::read(d.join("params-e2.safetensors")).unwrap();
        assert_eq!(bytes(full_dir.path()), bytes(dir.path()));
    }
}

#[test]
fn interrupted_classifier_resumes_inside_the_epoch_bit_exact() {
    interrupted_inside_epochs_equals_uninterrupted(&tiny_config);
}

#[test]
fn interrupted_fsvae_resumes_inside_the_epoch_bit_exact() {
    interrupted_inside_epochs_equals_uninterrupted(&tiny_fsvae_config);
}

#[test]
fn evaluation_does_not_depend_on_the_evaluation_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = train("set train.epochs=1", dir.path());
    let eval_at = |extra: &str| {
        let cfg = tiny_config(extra);
        snn_train::session::evaluate(&cfg, &s.dev, &s.store, s.model.as_ref(), &s.test).unwrap()
    };
    // Left out: 4x the training batch of 16, all 48 test images at once.
    let whole = eval_at("");
    assert_eq!(whole.count, 48);
    // 5 leaves a last batch of 3 (48 = 9 x 5 + 3): the means are over
    // images, not batches.
    for extra in ["set train.eval_batch_size=5", "set train.eval_batch_size=1"] {
        let split = eval_at(extra);
        assert_eq!(split.accuracy, whole.accuracy, "{extra}");
        assert_eq!(split.per_class, whole.per_class, "{extra}");
        assert!((split.loss - whole.loss).abs() < 1e-5, "{extra}");
        assert_eq!(split.firing_rates.len(), 2);
        for (name, rate) in &whole.firing_rates {
            let r = split.firing_rates[name];
            assert!((r - rate).abs() < 1e-5, "{extra}: {name} {r} vs {rate}");
        }
    }
}
