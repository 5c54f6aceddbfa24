//! `snn export` / `snn import` as a user runs them (snn built with the
//! feature `nir`): a trained classifier exported, imported into a new run
//! folder and evaluated predicts the same class for each of the committed
//! MNIST subset's 1,000 test images, with the same loss, accuracy and
//! per-class accuracy, in both max-pool forms; what cannot be exported or
//! imported is one message.
#![cfg(feature = "nir")]

mod common;

use common::{file_names, quickstart_run_args, snn, snn_ok, text};
use std::path::Path;

/// A quickstart classifier trained 1 epoch into `out` (1,000 images
/// unless `sets` say otherwise).
fn train(out: &Path, sets: &[&str]) {
    let sets = [&["train.epochs=1", "data.train_limit=1000"][..], sets].concat();
    let args = quickstart_run_args(out, false, &sets);
    snn_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// `snn eval --json` of a run, and its per-image predictions.
fn eval(run: &Path) -> (serde_json::Value, String) {
    let file = run.join("predictions.txt");
    let args = [
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--json",
        "--predictions",
        file.to_str().unwrap(),
    ];
    let json = serde_json::from_str(&snn_ok(&args)).unwrap();
    (json, std::fs::read_to_string(file).unwrap())
}

#[test]
fn an_exported_then_imported_classifier_scores_the_test_set_identically() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train(&run, &[]);
    let (original, predicted) = eval(&run);
    assert_eq!(original["count"], 1000);
    assert_eq!(predicted.lines().count(), 1000);
    for pool in ["sum-threshold", "avg-lif"] {
        let file = dir.path().join(format!("{pool}.nir"));
        let said = snn_ok(&[
            "export",
            "--checkpoint",
            run.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
            "--pool",
            pool,
        ]);
        assert!(said.contains("nodes=Input -> Conv2d -> LIF"), "{said}");
        let back = dir.path().join(format!("imported-{pool}"));
        let said = snn_ok(&[
            "import",
            file.to_str().unwrap(),
            "--out",
            back.to_str().unwrap(),
            "--dataset",
            "mnist",
            "--data",
            "data/mnist-subset",
        ]);
        assert!(
            said.contains("layers=c16k3s1p1-ALIF-MPk2s2-c32k3s1p1-ALIF-MPk2s2-FC100-ALIF-APk10s10"),
            "{said}"
        );
        let (imported, again) = eval(&back);
        let differ = predicted
            .lines()
            .zip(again.lines())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differ, 0, "{pool}: {differ} of 1,000 predictions differ");
        for key in ["accuracy", "loss", "per_class", "count"] {
            assert_eq!(imported[key], original[key], "{pool}: {key}");
        }
    }
}

#[test]
fn what_cannot_cross_is_refused_with_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("taid");
    train(
        &run,
        &[
            "data.train_limit=64",
            "data.test_limit=32",
            "decoder={ type = \"taid\" }",
        ],
    );
    let file = dir.path().join("x.nir");
    let o = snn(&[
        "export",
        "--checkpoint",
        run.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("decoder") && err.contains("mean-rate"),
        "{err}"
    );
    let left = file_names(dir.path(), |n| n.contains(".nir"));
    assert!(
        left.is_empty(),
        "a refused export leaves no file, found {left:?}"
    );

    // A graph made for 28 x 28 grey images, imported for CIFAR-10.
    let plain = dir.path().join("plain");
    train(&plain, &["data.train_limit=64", "data.test_limit=32"]);
    snn_ok(&[
        "export",
        "--checkpoint",
        plain.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    let o = snn(&[
        "import",
        file.to_str().unwrap(),
        "--out",
        dir.path().join("c").to_str().unwrap(),
        "--dataset",
        "cifar10",
    ]);
    let (_, err) = text(&o);
    assert!(
        !o.status.success() && err.contains("[1, 28, 28]") && err.contains("cifar10"),
        "{err}"
    );

    // Never into a folder that holds something.
    let o = snn(&[
        "import",
        file.to_str().unwrap(),
        "--out",
        plain.to_str().unwrap(),
        "--dataset",
        "mnist",
    ]);
    let (_, err) = text(&o);
    assert!(!o.status.success() && err.contains("not empty"), "{err}");
}
