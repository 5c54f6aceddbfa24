//! The FID Inception network against PyTorch running the same TorchScript
//! file (fixture from bench/inception_reference.py).
//!
//! Needs the converted weights (`scripts/fetch-data.sh inception`, 87 MB,
//! not committed). Without them the test says so and passes, unless
//! SNN_REQUIRE_INCEPTION=1 (set by .ci/run after it fetched them).

use snn_metrics::{Inception, Resize};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn features_match_pytorch_to_1e_4() {
    let weights = root().join("data/inception/fid-inception.safetensors");
    if !weights.exists() {
        assert!(
            std::env::var("SNN_REQUIRE_INCEPTION").is_err(),
            "{} is missing",
            weights.display()
        );
        eprintln!("skipped: {} not fetched", weights.display());
        return;
    }
    let net = Inception::load(&weights).unwrap();
    let text = std::fs::read_to_string(root().join("tests/fixtures/inception/mnist-features.json"))
        .unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(fixture["features"].clone()).unwrap();
    let cfg = snn_core::config::DataConfig {
        dataset: "mnist".into(),
        root: root().join("data/mnist-subset"),
        test_limit: want.len(),
        ..Default::default()
    };
    let test = snn_data::load(&cfg, snn_data::Split::Test).unwrap();
    let pixels: Vec<u8> = test
        .images
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    let got = net
        .embed_pixels(&pixels, [1, 28, 28], Resize::Bilinear)
        .unwrap();
    assert_eq!(got.len(), want.len() * 2048);
    let mut worst = 0.0f64;
    for (g, w) in got.iter().zip(want.iter().flatten()) {
        let err = (*g as f64 - w).abs() / (1.0 + w.abs());
        worst = worst.max(err);
    }
    assert!(worst < 1e-4, "largest relative difference {worst}");
}
