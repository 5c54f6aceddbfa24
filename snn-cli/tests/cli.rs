//! The `snn` binary as a user runs it.

mod common;

use common::{file_names, quickstart_run_args, root, snn, snn_ok, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Trains a tiny ALIF classifier (quickstart config, one epoch, a small
/// layer list) into `out`, with `train` / `test` images of the subset.
fn train_tiny_classifier(out: &Path, train: usize, test: usize, extra: &[&str]) -> Output {
    let (train, test) = (
        format!("data.train_limit={train}"),
        format!("data.test_limit={test}"),
    );
    let mut args = vec![
        "train",
        "--config",
        "configs/quickstart.toml",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--set",
        "train.epochs=1",
        "--set",
        &train,
        "--set",
        &test,
        "--set",
        "model.layers=\"c4k3s2-BN-ALIF-MPk2s2-FC20-ALIF-APk2s2\"",
    ];
    args.extend_from_slice(extra);
    snn(&args)
}

/// `snn ARGS`, which must succeed.
fn run_ok(args: &[String]) {
    snn_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// `snn ARGS` started in the background, its stderr kept.
fn spawn_snn(args: &[String]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_snn"))
        .args(args)
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run snn")
}

/// The interrupted run `run` ended with the bytes of the uninterrupted
/// two-epoch run `full`.
fn assert_same_checkpoints(full: &Path, run: &Path) {
    for f in [
        "params-e2.safetensors",
        "optim-e2.safetensors",
        "best.safetensors",
    ] {
        let a = std::fs::read(full.join(f)).unwrap();
        let b = std::fs::read(run.join(f)).unwrap();
        assert!(a == b, "{f} differs from the uninterrupted run's");
    }
}

#[test]
fn list_shows_every_component_with_defaults() {
    let o = snn(&["list"]);
    assert!(o.status.success());
    let (out, _) = text(&o);
    for name in [
        "alif",
        "lif",
        "plif",
        "mean-rate",
        "taid",
        "last-membrane",
        "classifier",
        "fsvae",
        "esvae",
        "annvae",
        "mnist",
        "fmnist",
        "cifar10",
        "celeba",
        "folder",
    ] {
        assert!(
            out.contains(&format!("  {name} ")),
            "{name} missing:\n{out}"
        );
    }
    assert!(out.contains("v_th = 0.2"), "{out}");
    assert!(out.contains("squeeze = \"hw\""), "{out}");
    assert!(out.contains("datasets (data.dataset):"), "{out}");
    assert!(out.contains("3x32x32, 10 classes"), "{out}");
}

#[test]
fn check_resolves_every_shipped_config() {
    let (mut n, mut refused) = (0, 0);
    for e in std::fs::read_dir(root().join("configs")).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "toml") {
            let mut o = snn(&["check", p.to_str().unwrap()]);
            let (_, err) = text(&o);
            if !o.status.success() && err.contains("more than this machine's") {
                // A config for a larger machine (CelebA at the paper's
                // batch 250 on 24 GB): refused by its estimate, and valid
                // at a batch this machine holds.
                assert!(err.contains("estimated peak memory"), "{err}");
                o = snn(&["check", p.to_str().unwrap(), "--set", "train.batch_size=16"]);
                refused += 1;
            }
            let (out, err) = text(&o);
            assert!(o.status.success(), "{}: {err}", p.display());
            assert!(out.contains("[model]") && out.contains("[train]"), "{out}");
            assert!(out.contains("trainable parameters"), "{out}");
            n += 1;
        }
    }
    // Only the CelebA configs may be beyond a CI machine.
    assert!(n >= 1 && refused <= 2, "{n} configs, {refused} refused");
}

#[test]
fn bad_config_fails_with_one_line_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    let good = std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap();
    std::fs::write(&cfg, good.replace("type = \"alif\"", "type = \"nope\"")).unwrap();
    let o = snn(&["check", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    let (_, err) = text(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.toml:") && err.contains("registered: alif"),
        "{err}"
    );
    // A missing file: its path and the OS's reason, once; also a run
    // folder without its config.toml.
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("best.safetensors"), b"").unwrap();
    for (args, missing) in [
        (
            vec!["check", "configs/no-such-config.toml"],
            "configs/no-such-config.toml".to_string(),
        ),
        (
            vec!["eval", "--checkpoint", run.to_str().unwrap()],
            run.join("config.toml").display().to_string(),
        ),
    ] {
        let o = snn(&args);
        assert!(!o.status.success());
        let (_, err) = text(&o);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("error: {missing}: "))
                && err.matches("(os error 2)").count() == 1,
            "{err}"
        );
    }
}

#[test]
fn train_then_eval_a_tiny_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = train_tiny_classifier(&out, 64, 32, &[]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let last = stdout.trim().lines().last().unwrap();
    let acc: f32 = last
        .strip_prefix("test_accuracy=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..=1.0).contains(&acc));
    for f in [
        "config.toml",
        "state.json",
        "metrics.jsonl",
        "best.safetensors",
        "curves.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // `snn curves` redraws the PNG training wrote, byte for byte.
    let drawn = std::fs::read(out.join("curves.png")).unwrap();
    std::fs::remove_file(out.join("curves.png")).unwrap();
    let o = snn(&["curves", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert_eq!(std::fs::read(out.join("curves.png")).unwrap(), drawn);
    // A second train into the same folder without --resume refuses.
    let o = snn(&[
        "train",
        "--config",
        "configs/quickstart.toml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("--resume"));
    // Eval prints per-class and overall accuracy equal to the training run's
    // best epoch (the only one).
    let o = snn(&["eval", "--checkpoint", out.to_str().unwrap()]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(stdout.contains("class 9:"));
    assert!(
        stdout.trim().ends_with(&format!("test_accuracy={acc:.4}")),
        "{stdout}"
    );
    // `--set` overrides the run's config for this evaluation only: the
    // evaluation batch does not change the result, a test limit does
    // change the count, and a layer of another width is refused by the
    // parameter file, naming the tensor. The run folder's config is kept.
    let config = std::fs::read(out.join("config.toml")).unwrap();
    let eval_with = |sets: &[&str]| {
        let mut args = vec!["eval", "--checkpoint", out.to_str().unwrap(), "--json"];
        for s in sets {
            args.extend(["--set", s]);
        }
        snn(&args)
    };
    let eval_json = |sets: &[&str]| {
        let o = eval_with(sets);
        let (stdout, err) = text(&o);
        assert!(o.status.success(), "{err}");
        serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap()
    };
    let eval_error = |set: &str| {
        let o = eval_with(&[set]);
        assert!(!o.status.success());
        text(&o).1
    };
    let full = eval_json(&[]);
    assert_eq!(full["count"], 32);
    assert_eq!(
        eval_json(&["train.eval_batch_size=1"])["accuracy"],
        full["accuracy"]
    );
    assert_eq!(eval_json(&["data.test_limit=8"])["count"], 8);
    let err = eval_error("model.layers=\"c8k3s2-BN-ALIF-MPk2s2-FC20-ALIF-APk2s2\"");
    assert!(
        err.contains("best.safetensors") && err.contains("has shape"),
        "{err}"
    );
    let err = eval_error("train.nope=1");
    assert!(err.contains("config.toml") && err.contains("nope"), "{err}");
    assert_eq!(std::fs::read(out.join("config.toml")).unwrap(), config);
}

#[test]
fn fsvae_trains_then_generates_and_reconstructs_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = snn(&[
        "train",
        "--config",
        "configs/fsvae-mnist-taid.toml",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
        "--set",
        "data.root=\"data/mnist-subset\"",
        "--set",
        "data.train_limit=64",
        "--set",
        "data.test_limit=16",
        "--set",
        "train.epochs=1",
        "--set",
        "train.batch_size=32",
        "--set",
        "time_steps=4",
        "--set",
        "model.channels=[4, 4, 8, 8]",
        "--set",
        "model.latent=8",
        "--set",
        "model.k=4",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(stdout.contains("test_reconstruction="), "{stdout}");
    assert!(stdout.contains("test_loss="), "{stdout}");

    let samples = dir.path().join("samples");
    let grid = dir.path().join("grid.png");
    let o = snn(&[
        "generate",
        "--checkpoint",
        run.to_str().unwrap(),
        "--count",
        "5",
        "--out",
        samples.to_str().unwrap(),
        "--grid",
        grid.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o).1);
    for i in 0..5 {
        let img = image::open(samples.join(format!("sample-{i:05}.png"))).unwrap();
        assert_eq!((img.width(), img.height()), (32, 32));
        assert_eq!(img.color(), image::ColorType::L8, "MNIST samples are grey");
    }
    // 3 x 2 cells of 32 px with 2 px borders.
    let g = image::open(&grid).unwrap();
    assert_eq!((g.width(), g.height()), (3 * 34 + 2, 2 * 34 + 2));

    let recon = dir.path().join("recon.png");
    let o = snn(&[
        "reconstruct",
        "--checkpoint",
        run.to_str().unwrap(),
        "--out",
        recon.to_str().unwrap(),
        "--count",
        "8",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(stdout.contains("reconstruction_mse="), "{stdout}");
    let r = image::open(&recon).unwrap();
    assert_eq!(
        (r.width(), r.height()),
        (8 * 34 + 2, 2 * 34 + 2),
        "inputs above reconstructions"
    );
}

#[test]
fn generate_from_a_classifier_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = train_tiny_classifier(&run, 32, 16, &[]);
    assert!(o.status.success(), "{}", text(&o).1);
    let o = snn(&[
        "generate",
        "--checkpoint",
        run.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let (_, err) = text(&o);
    assert!(err.contains("does not generate images"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let o = snn(&[
        "generate",
        "--checkpoint",
        dir.path().join("nothing").to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("no such parameter file"),
        "{}",
        text(&o).1
    );
}

/// The first `n` test images of the committed MNIST subset as 28x28 PNGs
/// in `dir/pngs`.
fn subset_test_pngs(dir: &Path, n: usize) -> PathBuf {
    let cfg = snn_data::config::DataConfig {
        root: root().join("data/mnist-subset"),
        test_limit: n,
        ..Default::default()
    };
    let test = snn_data::load(&cfg, snn_data::Split::Test).unwrap();
    let pngs = dir.join("pngs");
    std::fs::create_dir_all(&pngs).unwrap();
    for (i, img) in test.images.chunks(784).enumerate() {
        let bytes: Vec<u8> = img.iter().map(|v| (v * 255.0).round() as u8).collect();
        let g = image::GrayImage::from_raw(28, 28, bytes).unwrap();
        g.save(pngs.join(format!("{i:03}.png"))).unwrap();
    }
    pngs
}

#[test]
fn metrics_score_a_png_folder_with_fad_and_classifier_is() {
    let dir = tempfile::tempdir().unwrap();
    let (ae, clf) = (dir.path().join("ae"), dir.path().join("clf"));
    let tiny = [
        "--quiet",
        "--set",
        "train.epochs=1",
        "--set",
        "data.train_limit=64",
        "--set",
        "data.test_limit=40",
        "--set",
        "data.root=\"data/mnist-subset\"",
    ];
    let mut args = vec![
        "train",
        "--config",
        "configs/ae-mnist.toml",
        "--out",
        ae.to_str().unwrap(),
    ];
    args.extend(tiny);
    args.extend([
        "--set",
        "model.channels=[4, 4, 8, 8]",
        "--set",
        "train.batch_size=32",
    ]);
    assert!(snn(&args).status.success());
    let o = train_tiny_classifier(&clf, 64, 40, &["--set", "data.root=\"data/mnist-subset\""]);
    assert!(o.status.success(), "{}", text(&o).1);

    // The "samples" are the 40 real test images themselves, as 28x28 PNGs:
    // resized to the autoencoder's 32x32 as its data pipeline resizes
    // them, they are exactly its reference set, so FAD is 0 up to rounding.
    let pngs = subset_test_pngs(dir.path(), 40);
    let o = snn(&[
        "metrics",
        "--samples",
        pngs.to_str().unwrap(),
        "--dataset",
        "mnist",
        "--fad-model",
        ae.to_str().unwrap(),
        "--classifier",
        clf.to_str().unwrap(),
        "--metrics",
        "fad,is",
        "--json",
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let fad = v["fad"]["value"].as_f64().unwrap();
    assert!(fad.abs() < 1e-3, "FAD of the reference set itself: {fad}");
    let reference = v["fad"]["reference"].as_str().unwrap();
    assert!(reference.contains("40 images"), "{reference}");
    assert!(v["fad"]["network"]
        .as_str()
        .unwrap()
        .contains("own autoencoder"));
    let is = v["is"]["value"].as_f64().unwrap();
    assert!(is > 1.0, "40 different digits: {is}");
    assert!(v["is"]["network"]
        .as_str()
        .unwrap()
        .contains("not Inception-v3"));
    // Ten copies of one digit: every class distribution equals the
    // marginal, so the score is exactly exp(0) = 1, whatever the network.
    let same = dir.path().join("same");
    std::fs::create_dir_all(&same).unwrap();
    for i in 0..10 {
        std::fs::copy(pngs.join("000.png"), same.join(format!("{i:03}.png"))).unwrap();
    }
    let clf_dir = clf.to_str().unwrap();
    let args = [
        "metrics",
        "--samples",
        same.to_str().unwrap(),
        "--dataset",
        "mnist",
    ];
    let o = snn(&[
        &args[..],
        &["--classifier", clf_dir, "--metrics", "is", "--json"],
    ]
    .concat());
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let one = v["is"]["value"].as_f64().unwrap();
    assert!((one - 1.0).abs() < 1e-6, "IS of identical images: {one}");

    // FID of 8 of those images against the same 8 as the reference set is 0
    // (needs the FID weights: scripts/fetch-data.sh inception).
    let weights = root().join("data/inception/fid-inception.safetensors");
    if weights.exists() {
        let fid_dir = dir.path().join("fid");
        std::fs::create_dir_all(&fid_dir).unwrap();
        let copy = fid_dir.join("w.safetensors");
        let fid = |extra: &[&str]| {
            let mut args = vec![
                "metrics",
                "--samples",
                pngs.to_str().unwrap(),
                "--count",
                "8",
                "--dataset",
                "mnist",
                "--metrics",
                "fid",
                "--data",
                "data/mnist-subset",
                "--reference-count",
                "8",
                "--inception",
                copy.to_str().unwrap(),
            ];
            args.extend_from_slice(extra);
            snn(&args)
        };
        let o = fid(&[]);
        assert!(!o.status.success(), "missing weights file is an error");
        assert!(
            text(&o).1.contains("fetch-data.sh inception"),
            "{}",
            text(&o).1
        );
        std::fs::copy(&weights, &copy).unwrap();
        let o = fid(&["--json"]);
        let (stdout, err) = text(&o);
        assert!(o.status.success(), "{err}");
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let own = v["fid"]["value"].as_f64().unwrap();
        assert!(own.abs() < 1e-2, "FID of a set against itself: {own}");
        assert!(v["fid"]["protocol"].as_str().unwrap().contains("clean"));
        let caches = || file_names(&fid_dir, |n| n.starts_with("reference-w-")).len();
        assert_eq!(caches(), 1);
        // Another 8 images as the reference (same count, same dataset
        // name): new statistics, not the cached ones.
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        for i in 8..16 {
            let name = format!("{i:03}.png");
            std::fs::copy(pngs.join(&name), other.join(&name)).unwrap();
        }
        let o = fid(&["--json", "--fid-reference", other.to_str().unwrap()]);
        let (stdout, err) = text(&o);
        assert!(o.status.success(), "{err}");
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let other_fid = v["fid"]["value"].as_f64().unwrap();
        assert!(other_fid > 1.0, "FID against other images: {other_fid}");
        assert!(v["fid"]["reference"].as_str().unwrap().contains("other"));
        assert_eq!(caches(), 2);
    } else {
        let check = "snn metrics FID part";
        let fetch = "scripts/fetch-data.sh inception";
        assert!(!snn_core::checks::needs_file(
            check,
            &weights,
            "SNN_REQUIRE_INCEPTION",
            fetch
        ));
    }

    // Wrong dataset, unknown metric, missing or wrong network: one-line errors.
    let ae_weights = ae.join("best.safetensors");
    for (extra, want) in [
        (
            vec![
                "--dataset",
                "fmnist",
                "--metrics",
                "fad",
                "--fad-model",
                ae.to_str().unwrap(),
            ],
            "not on --dataset `fmnist`",
        ),
        (
            vec!["--dataset", "mnist", "--metrics", "kid"],
            "unknown `kid`",
        ),
        (
            vec!["--dataset", "mnist", "--metrics", "is"],
            "is needs --is-inception FILE",
        ),
        (
            vec![
                "--dataset",
                "mnist",
                "--metrics",
                "is",
                "--is-inception",
                ae_weights.to_str().unwrap(),
            ],
            "not Inception-v3 weights",
        ),
    ] {
        let mut args = vec!["metrics", "--samples", pngs.to_str().unwrap()];
        args.extend(extra);
        let o = snn(&args);
        let (_, err) = text(&o);
        assert!(!o.status.success() && err.contains(want), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// The FID weights, or `None` (with a note) where they have not been
/// fetched; `SNN_REQUIRE_INCEPTION=1` (CI) makes their absence a failure.
fn fid_weights(check: &str) -> Option<PathBuf> {
    let weights = root().join("data/inception/fid-inception.safetensors");
    let fetch = "scripts/fetch-data.sh inception";
    snn_core::checks::needs_file(check, &weights, "SNN_REQUIRE_INCEPTION", fetch).then_some(weights)
}

#[test]
fn fid_in_the_default_clean_mode_matches_clean_fid() {
    let Some(weights) = fid_weights("FID in clean mode against clean-fid") else {
        return;
    };
    // bench/paper_protocol_reference.py: clean-fid's compute_fid(A, B,
    // mode="clean") of the same two folders of 32x32 PNGs.
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/paper-protocol.json")).unwrap(),
    )
    .unwrap();
    let f = &fixture["clean_fid"];
    let cfg = snn_data::config::DataConfig {
        root: root().join("data/mnist-subset"),
        test_limit: 100,
        ..Default::default()
    };
    let test = snn_data::load(&cfg, snn_data::Split::Test).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut folders = Vec::new();
    for (name, range) in [("a", &f["a"]), ("b", &f["b"])] {
        let r: Vec<usize> = serde_json::from_value(range.clone()).unwrap();
        let (from, to, shift) = (r[0], r[1], r[2]);
        let out = dir.path().join(name);
        std::fs::create_dir_all(&out).unwrap();
        for i in from..to {
            let digit: Vec<u8> = test.images[i * 784..(i + 1) * 784]
                .iter()
                .map(|v| (v * 255.0).round() as u8)
                .collect();
            let big = snn_data::resample::resize_u8(
                &digit,
                [28, 28],
                [32, 32],
                snn_data::resample::Filter::Bilinear,
            );
            let mut moved = vec![0u8; 1024];
            for y in 0..32 {
                moved[y * 32 + shift..(y + 1) * 32]
                    .copy_from_slice(&big[y * 32..(y + 1) * 32 - shift]);
            }
            let g = image::GrayImage::from_raw(32, 32, moved).unwrap();
            g.save(out.join(format!("{:03}.png", i - from))).unwrap();
        }
        folders.push(out);
    }
    // A copy of the weights, so the statistics cache lands in the temp dir.
    let copy = dir.path().join("w.safetensors");
    std::fs::copy(&weights, &copy).unwrap();
    let o = snn(&[
        "metrics",
        "--samples",
        folders[0].to_str().unwrap(),
        "--fid-reference",
        folders[1].to_str().unwrap(),
        "--dataset",
        "mnist",
        "--metrics",
        "fid",
        "--inception",
        copy.to_str().unwrap(),
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let line = stdout.trim();
    let ours: f64 = line
        .strip_prefix("fid=")
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let theirs = f["fid"].as_f64().unwrap();
    eprintln!("clean-mode FID: ours {ours}, clean-fid {theirs}");
    assert!(
        theirs > 10.0,
        "the fixture's sets should score well above 0"
    );
    assert!(
        (ours - theirs).abs() < 1e-3 * theirs,
        "{line} vs clean-fid {theirs}"
    );
    assert!(line.contains("protocol: clean"), "{line}");
    assert!(line.contains("reference: 50 images of"), "{line}");
}

#[test]
fn fad_defaults_to_the_authors_network_for_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let pngs = subset_test_pngs(dir.path(), 300);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "metrics",
            "--samples",
            pngs.to_str().unwrap(),
            "--metrics",
            "fad",
            "--json",
        ];
        args.extend_from_slice(extra);
        if !extra.contains(&"--dataset") {
            args.extend(["--dataset", "mnist"]);
        }
        snn(&args)
    };
    let value = |o: &Output| -> serde_json::Value {
        let (stdout, err) = text(o);
        assert!(o.status.success(), "{err}");
        serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap()["fad"].clone()
    };
    // 300 real test digits (28x28 PNGs, resized to 32 as the authors'
    // pipeline does): the finite-sample bias of a 64-d Frechet distance
    // keeps them well above the full test set's 0 (the authors' network in
    // PyTorch gives 28.29 for these 300, 16.7 for 1,000) and well below
    // the 2-pixel-shifted set of the FAD fixture (103.5).
    let paper = value(&run(&[]));
    let network = paper["network"].as_str().unwrap();
    assert!(network.contains("FSVAE authors' autoencoder"), "{network}");
    assert!(network.contains("batch-statistics BN"), "{network}");
    assert!(paper["reference"]
        .as_str()
        .unwrap()
        .contains("mnist_test_64.npz"));
    assert_eq!(paper["samples"].as_u64(), Some(300));
    let v = paper["value"].as_f64().unwrap();
    // PyTorch's value as the comment above prints it, to 2 decimals.
    assert!(
        (v - 28.29).abs() < 0.01,
        "real digits against the real test set: {v}, PyTorch 28.29"
    );
    let eval = value(&run(&["--fad-bn", "running"]));
    assert!(eval["network"]
        .as_str()
        .unwrap()
        .contains("running-statistics BN"));
    assert_ne!(eval["value"].as_f64(), Some(v));
    for (extra, want) in [
        (
            vec!["--fad-reference", "data/fsvae-fad/mnist_test_128.npz"],
            "128-d latent",
        ),
        (vec!["--fad-bn", "sometimes"], "accepted: batch"),
        (vec!["--dataset", "cifar10"], "needs --fad-model RUN"),
    ] {
        let o = run(&extra);
        let (_, err) = text(&o);
        assert!(!o.status.success() && err.contains(want), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn train_into_a_file_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"keep me").unwrap();
    let o = snn(&[
        "train",
        "--config",
        "configs/quickstart.toml",
        "--out",
        file.to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("not-a-folder") && err.contains("is a file"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn one_run_per_folder_and_a_dead_holder_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out_s = out.to_str().unwrap();
    let args = [
        "train",
        "--config",
        "configs/quickstart.toml",
        "--out",
        out_s,
        "--quiet",
        "--set",
        "train.epochs=1000",
    ];
    let mut holder = Command::new(env!("CARGO_BIN_EXE_snn"))
        .args(args)
        .current_dir(root())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run snn");
    let lock = out.join("run.lock");
    // The holder writes its pid once it holds the lock.
    let named = || std::fs::read_to_string(&lock).is_ok_and(|t| !t.trim().is_empty());
    let t0 = std::time::Instant::now();
    while !named() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(named(), "the running train holds a lock");
    // A second run into the folder, fresh or resuming, is refused.
    for extra in [&[][..], &["--resume"][..]] {
        let mut a = args.to_vec();
        a.extend_from_slice(extra);
        let o = snn(&a);
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{err}");
        assert!(
            err.contains("in use by a running snn") && err.contains(&holder.id().to_string()),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // kill -9: the kernel drops the lock; the file still names the dead
    // process, and the next run takes it over with a warning.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(named());
    let o = snn(&[
        "train",
        "--config",
        "configs/quickstart.toml",
        "--out",
        out_s,
        "--quiet",
        "--set",
        "train.epochs=1",
        "--set",
        "data.train_limit=32",
        "--set",
        "data.test_limit=16",
    ]);
    let (_, err) = text(&o);
    assert!(err.contains("no longer running; taking it over"), "{err}");
    assert!(!named(), "released (emptied) at exit");
}

#[test]
fn divergence_stops_cleanly_and_never_saves_nan() {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &Path, mode: &str| {
        let mode = format!("train.on_divergence=\"{mode}\"");
        snn(&[
            "train",
            "--config",
            "configs/annvae-mnist.toml",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
            "--set",
            "data.root=\"data/mnist-subset\"",
            "--set",
            "data.train_limit=256",
            "--set",
            "data.test_limit=64",
            "--set",
            "train.batch_size=32",
            "--set",
            "train.epochs=2",
            "--set",
            "model.channels=[4, 4, 8, 8]",
            // The KL term's exp(log_var) overflows within a few steps.
            "--set",
            "train.lr=1e3",
            "--set",
            &mode,
        ])
    };
    let params = |d: &Path| file_names(d, |n| n.ends_with(".safetensors"));
    // Stop (default): step and loss named, nothing saved.
    let stop = dir.path().join("stop");
    let o = run(&stop, "stop");
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("the loss became") && err.contains("step"),
        "{err}"
    );
    assert!(err.contains("no checkpoint yet"), "{err}");
    assert_eq!(
        err.trim().lines().count(),
        2,
        "the training line and the error: {err}"
    );
    // The training line carries the memory estimate.
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.starts_with("training ") && l.contains("; estimated peak memory ")),
        "{err}"
    );
    assert!(params(&stop).is_empty(), "{:?}", params(&stop));
    // Skip: bad batches counted; once every batch diverges it stops,
    // naming the last good checkpoint; no checkpoint with a NaN test
    // score is marked best.
    let skip = dir.path().join("skip");
    let o = run(&skip, "skip");
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("every batch of epoch 2"), "{err}");
    assert!(err.contains("params-e1.safetensors"), "{err}");
    let metrics = std::fs::read_to_string(skip.join("metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert!(first["skipped_batches"].as_u64().unwrap() > 0, "{metrics}");
    if first["test_loss"].is_null() {
        assert!(!skip.join("best.safetensors").exists());
    }
    for f in params(&skip) {
        let (raw, _) = snn_core::params::read_safetensors(&skip.join(&f)).unwrap();
        assert!(
            raw.iter().all(|(_, _, d)| d.iter().all(|v| v.is_finite())),
            "{f}"
        );
    }
}

#[test]
fn sigint_and_kill_9_inside_epochs_then_resume_end_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let sets = [
        "train.epochs=2",
        "data.train_limit=480",
        "data.test_limit=64",
        "train.checkpoint_every=\"2 steps\"",
    ];
    let args = |out: &Path, resume: bool| quickstart_run_args(out, resume, &sets);
    let full = dir.path().join("full");
    run_ok(&args(&full, false));

    let run = dir.path().join("run");
    // Interrupt once with SIGINT, once with kill -9, each after the run has
    // written a new checkpoint inside the epoch (58 more steps to go); then
    // let it finish. Each interrupt must land: SIGINT exits 130 with its
    // checkpoint, kill -9 leaves no exit code.
    for (round, signal) in ["INT", "KILL", ""].iter().enumerate() {
        let child = spawn_snn(&args(&run, round > 0));
        if !signal.is_empty() {
            let state = run.join("state.json");
            let before = std::fs::read_to_string(&state).unwrap_or_default();
            let t0 = std::time::Instant::now();
            while std::fs::read_to_string(&state).unwrap_or_default() == before {
                assert!(
                    t0.elapsed().as_secs() < 120,
                    "round {round}: no new checkpoint in 2 minutes"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let _ = Command::new("kill")
                .args([format!("-{signal}"), child.id().to_string()])
                .status();
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        match (*signal, out.status.code()) {
            ("INT", Some(130)) => {
                assert!(err.contains("resume with: snn train"), "{err}");
                assert!(err.contains("checkpoint written"), "{err}");
            }
            ("KILL", None) | ("", Some(0)) => {}
            (s, code) => {
                panic!("signal {s:?}: exit {code:?}, the interrupt did not land as expected: {err}")
            }
        }
    }
    assert_same_checkpoints(&full, &run);
}

#[test]
fn sigint_during_the_test_pass_keeps_the_epoch_and_the_resume_evaluates_it() {
    let dir = tempfile::tempdir().unwrap();
    // 4 training steps, then a test pass of 125 batches of 8 images at
    // T = 32: seconds long, so the interrupt lands inside it.
    let sets = [
        "train.epochs=1",
        "data.train_limit=64",
        "data.test_limit=1000",
        "time_steps=32",
        "train.eval_batch_size=8",
        "train.log_every=1",
    ];
    let args = |out: &Path, resume: bool| quickstart_run_args(out, resume, &sets);
    let full = dir.path().join("full");
    run_ok(&args(&full, false));

    let run = dir.path().join("run");
    let child = spawn_snn(&args(&run, false));
    // The fourth step's line is written as the test pass begins.
    let steps = run.join("steps.jsonl");
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&steps)
        .unwrap_or_default()
        .lines()
        .count()
        < 4
    {
        assert!(
            t0.elapsed().as_secs() < 120,
            "the 4 training steps never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("stopped during the test pass of epoch 1"),
        "{err}"
    );
    assert!(
        !run.join("metrics.jsonl").exists(),
        "the epoch was recorded without its test pass"
    );

    run_ok(&args(&run, true));
    let line = |d: &Path| -> serde_json::Value {
        serde_json::from_str(
            std::fs::read_to_string(d.join("metrics.jsonl"))
                .unwrap()
                .trim(),
        )
        .unwrap()
    };
    let (a, b) = (line(&full), line(&run));
    for key in [
        "test_accuracy",
        "test_loss",
        "train_loss",
        "train_accuracy",
        "epoch",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
    assert_eq!(
        std::fs::read(full.join("best.safetensors")).unwrap(),
        std::fs::read(run.join("best.safetensors")).unwrap()
    );
}

#[test]
fn twenty_pairs_started_at_once_into_one_folder_run_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let sets = [
        "train.epochs=1",
        "data.train_limit=32",
        "data.test_limit=16",
    ];
    for pair in 0..20 {
        let out = dir.path().join(format!("pair{pair}"));
        let start = || spawn_snn(&quickstart_run_args(&out, false, &sets));
        let (a, b) = (start(), start());
        let results = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let ran = results.iter().filter(|o| o.status.success()).count();
        let errs: Vec<String> = results
            .iter()
            .map(|o| String::from_utf8_lossy(&o.stderr).to_string())
            .collect();
        assert_eq!(ran, 1, "pair {pair}: {ran} runs\n{}", errs.join("\n---\n"));
        let refused = &errs[results.iter().position(|o| !o.status.success()).unwrap()];
        // Refused while the other holds the folder, or after it finished.
        assert!(
            refused.contains("in use by a running snn") || refused.contains("already holds a run"),
            "pair {pair}: {refused}"
        );
        let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 1, "pair {pair}: {lines}");
    }
}

#[test]
fn sizes_beyond_the_machine_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let huge_fc = "model.layers=\"c4k3s2-BN-SN-MPk2s2-FC2000000000-SN-APk2s2\"";
    // 10^7 channels: its first activation alone is ~60 GiB at batch 2.
    let wide = "model.layers=\"c10000000k3s1-BN-ALIF-MPk2s2-FC100-ALIF-APk10s10\"";
    let train = |set: &'static str| -> Vec<&str> {
        vec![
            "train",
            "--config",
            "configs/quickstart.toml",
            "--out",
            out,
            "--set",
            set,
        ]
    };
    // (arguments, refused by the estimate rather than by one tensor)
    let cases: Vec<(Vec<&str>, bool)> = vec![
        (
            vec!["check", "configs/quickstart.toml", "--set", huge_fc],
            false,
        ),
        (
            vec![
                "check",
                "configs/quickstart.toml",
                "--set",
                "time_steps=100000",
            ],
            true,
        ),
        (
            vec![
                "check",
                "configs/quickstart.toml",
                "--set",
                "train.batch_size=1000000000",
            ],
            true,
        ),
        (
            vec!["check", "configs/quickstart.toml", "--set", wide],
            false,
        ),
        (train("time_steps=100000000"), true),
        (train("train.batch_size=1000000000"), true),
        (train(wide), false),
        (
            vec![
                "bench",
                "--config",
                "configs/fsvae-mnist-taid.toml",
                "--batch",
                "100000000",
                "--warmup",
                "0",
                "--steps",
                "1",
            ],
            false,
        ),
    ];
    for (args, by_estimate) in cases {
        let o = snn(&args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        let last = err.trim().lines().last().unwrap_or_default();
        assert!(
            last.contains("more than this machine's") && last.contains("GiB"),
            "{err}"
        );
        if by_estimate {
            assert!(last.contains("estimated peak memory"), "{args:?}: {err}");
        }
        assert!(!err.contains("memory allocation of"), "{err}");
        // Refused before the run folder (or its lock) was made.
        assert!(!Path::new(out).exists(), "{args:?} left {out}");
    }
    // A test pass too large (probed small, like any batch): the message
    // names the evaluation batch and the knob that lowers it.
    let o = snn(&train("train.eval_batch_size=1000000000"));
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("x evaluation batch 1000000000")
            && err.contains("lower train.eval_batch_size (the test pass peaks)"),
        "{err}"
    );
    assert!(!Path::new(out).exists(), "left {out}");
}

#[test]
fn check_and_train_print_the_estimated_peak_memory() {
    let o = snn(&["check", "configs/quickstart.toml"]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("estimated peak memory"))
        .unwrap_or_else(|| panic!("no estimate in {err}"));
    // `estimated peak memory X GiB at 4 time steps: F MiB fixed + P MiB per
    // image x batch 16 + data D MiB (machine: M GiB, ...)`
    let number_after = |key: &str| -> f64 {
        let at = line.find(key).unwrap_or_else(|| panic!("{key} in {line}"));
        let rest = &line[at + key.len()..];
        rest.split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(',')
            .parse()
            .unwrap()
    };
    let total_gib = number_after("estimated peak memory ");
    let (fixed, per_image, data) = (
        number_after("time steps: "),
        number_after("fixed + "),
        number_after("+ data "),
    );
    // The phase that peaks names its batch: the training batch of 16, or
    // the test pass's 4x that.
    let batch = if line.contains("x evaluation batch 64") {
        64.0
    } else {
        assert!(line.contains("x batch 16"), "{line}");
        16.0
    };
    assert!(line.contains("at 4 time steps"), "{line}");
    // The parts add up to the total (less what the process held before,
    // which is well under 64 MiB).
    let parts_mib = fixed + per_image * batch + data;
    let total_mib = total_gib * 1024.0;
    assert!(
        parts_mib <= total_mib + 10.0 && total_mib < parts_mib + 64.0,
        "{line}"
    );
    // The committed subset: 4,000 images of 28x28 as f32.
    assert!(
        (data - 4000.0 * 784.0 * 4.0 / 1048576.0).abs() < 1.0,
        "{line}"
    );
    assert!(line.contains("(machine: "), "{line}");
}

#[test]
fn kill_9_during_checkpoint_writes_then_resume_ends_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    // A checkpoint every step, so writes fill much of the run's time.
    let sets = [
        "train.epochs=2",
        "data.train_limit=320",
        "data.test_limit=32",
        "train.checkpoint_every=\"1 steps\"",
    ];
    let args = |out: &Path, resume: bool| quickstart_run_args(out, resume, &sets);
    let full = dir.path().join("full");
    let o = Command::new(env!("CARGO_BIN_EXE_snn"))
        .args(args(&full, false))
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o).1);

    let run = dir.path().join("run");
    let partials = |d: &Path| file_names(d, |n| n.starts_with(".partial-"));
    // Kill the moment an unfinished file appears; a kill that lands before
    // its rename leaves the file behind, proving it hit a write.
    let (mut torn, mut attempts, mut left_partial) = (0, 0, false);
    while torn < 3 && attempts < 30 {
        attempts += 1;
        let resume = run.join("state.json").exists();
        // What the last kill left; the new run removes it once it holds
        // the folder, before it writes anything.
        let stale = partials(&run);
        let mut child = Command::new(env!("CARGO_BIN_EXE_snn"))
            .args(args(&run, resume))
            .current_dir(root())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run snn");
        let t0 = std::time::Instant::now();
        let mut seen = std::collections::HashSet::new();
        let finished = loop {
            // Before the first checkpoint, a kill would only lose the
            // config: wait for one, then watch the writes.
            // The first new file in the first try, the second in the
            // second, ...: kills in different files and checkpoints.
            if run.join("state.json").exists() {
                seen.extend(partials(&run).into_iter().filter(|p| !stale.contains(p)));
            }
            if seen.len() >= attempts {
                // SIGKILL straight from this process (a `kill` subprocess
                // takes a millisecond, longer than most writes).
                let _ = child.kill();
                break false;
            }
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "attempt {attempts}: {status}");
                break true;
            }
            assert!(t0.elapsed().as_secs() < 120, "no write seen");
        };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        if resume {
            assert!(err.contains("resuming"), "{err}");
        }
        if left_partial {
            assert!(err.contains("removed 1 unfinished file"), "{err}");
        }
        if finished {
            break;
        }
        left_partial = !partials(&run).is_empty();
        torn += usize::from(left_partial);
    }
    eprintln!("{torn} of {attempts} kills landed inside a write");
    assert!(
        torn >= 1,
        "no kill landed inside a write in {attempts} tries"
    );
    // Whatever was torn, the last checkpoint loads; the resumed run removes
    // the unfinished files and ends with the uninterrupted run's bytes.
    let o = snn(&args(&run, true)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let err = text(&o).1;
    assert!(o.status.success(), "{err}");
    assert!(partials(&run).is_empty(), "{:?}", partials(&run));
    assert_same_checkpoints(&full, &run);
}

#[test]
fn bench_samples_from_a_generative_model_and_refuses_a_classifier() {
    let o = snn(&[
        "bench",
        "--config",
        "configs/fsvae-mnist-taid.toml",
        "--mode",
        "sample",
        "--batch",
        "3",
        "--warmup",
        "0",
        "--steps",
        "2",
        "--json",
        "--set",
        "time_steps=4",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["mode"], "sample", "{r}");
    assert_eq!(
        (r["batch"].as_u64(), r["steps"].as_u64()),
        (Some(3), Some(2))
    );
    let per_step = r["median_s"].as_f64().unwrap();
    let rate = r["images_per_second"].as_f64().unwrap();
    assert!(
        per_step > 0.0 && (rate * per_step - 3.0).abs() < 1e-6,
        "{r}"
    );
    assert!(r.get("phases").is_none(), "{r}");
    let o = snn(&[
        "bench",
        "--config",
        "configs/quickstart.toml",
        "--mode",
        "sample",
        "--steps",
        "1",
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--mode sample needs a generative model") && err.trim().lines().count() == 1,
        "{err}"
    );
}
