//! Inception-v3 against PyTorch.
//!
//! - The FID network against PyTorch running the same TorchScript file
//!   (fixture from bench/inception_reference.py). Needs the converted
//!   weights (`scripts/fetch-data.sh inception`, 87 MB, not committed).
//!   Without them the test says so and passes, unless
//!   SNN_REQUIRE_INCEPTION=1 (set by .ci/run after it fetched them).
//! - The torchvision-layout loader, both pooling graphs, features and
//!   logits, against torchvision with formula-generated weights, and PIL's
//!   bicubic resize (fixture from bench/inception_torchvision_reference.py;
//!   no download needed).

use snn_core::params::{write_safetensors, RawTensor};
use snn_metrics::{Graph, Inception, Input, Resize};
use std::collections::HashMap;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn features_match_pytorch_to_1e_4() {
    let weights = root().join("data/inception/fid-inception.safetensors");
    if !snn_core::checks::needs_file(
        "inception features against PyTorch",
        &weights,
        "SNN_REQUIRE_INCEPTION",
        "scripts/fetch-data.sh inception",
    ) {
        return;
    }
    let net = Inception::load(&weights).unwrap();
    let text = std::fs::read_to_string(root().join("tests/fixtures/inception/mnist-features.json"))
        .unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(fixture["features"].clone()).unwrap();
    let pixels = mnist_pixels(want.len());
    let got = net
        .embed(&pixels, [1, 28, 28], Resize::Bilinear, Input::Native)
        .unwrap()
        .features;
    assert_eq!(got.len(), want.len() * 2048);
    let worst = worst_relative(&got, &want);
    assert!(worst < 1e-4, "largest relative difference {worst}");
}

/// The first `n` test images of the committed MNIST subset as pixel
/// values 0..255.
fn mnist_pixels(n: usize) -> Vec<f32> {
    let cfg = snn_data::config::DataConfig {
        dataset: "mnist".into(),
        root: root().join("data/mnist-subset"),
        test_limit: n,
        ..Default::default()
    };
    let test = snn_data::load(&cfg, snn_data::Split::Test).unwrap();
    test.images.iter().map(|v| (v * 255.0).round()).collect()
}

fn worst_relative(got: &[f32], want: &[Vec<f64>]) -> f64 {
    assert_eq!(got.len(), want.iter().map(Vec::len).sum::<usize>());
    got.iter()
        .zip(want.iter().flatten())
        .map(|(g, w)| (*g as f64 - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

fn reference() -> serde_json::Value {
    let path = root().join("tests/fixtures/inception/torchvision-reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture's weights: parameter j, element i is
/// `base + amp * sin(0.7 i + 1.3 j + 0.1)` in f64, stored as f32.
fn formula_weights(params: &serde_json::Value) -> Vec<RawTensor> {
    let params: Vec<(String, Vec<usize>, f64, f64)> =
        serde_json::from_value(params.clone()).unwrap();
    params
        .into_iter()
        .enumerate()
        .map(|(j, (name, shape, base, amp))| {
            let n: usize = shape.iter().product();
            let data = (0..n)
                .map(|i| (base + amp * (0.7 * i as f64 + 1.3 * j as f64 + 0.1).sin()) as f32)
                .collect();
            (name, shape, data)
        })
        .collect()
}

#[test]
fn torchvision_layout_matches_torchvision_on_both_graphs() {
    let fixture = reference();
    let dir = tempfile::tempdir().unwrap();
    for (key, graph, classes) in [
        ("fid2015", Graph::Fid2015, 1008),
        ("torchvision", Graph::Torchvision, 1000),
    ] {
        let case = &fixture[key];
        let path = dir.path().join(format!("{key}.safetensors"));
        write_safetensors(&path, &formula_weights(&case["params"]), HashMap::new()).unwrap();
        let net = Inception::load(&path).unwrap();
        assert_eq!(net.graph(), graph, "{key}: graph guessed from the head");
        assert_eq!(net.classes(), Some(classes));
        let features: Vec<Vec<f64>> = serde_json::from_value(case["features"].clone()).unwrap();
        let logits: Vec<Vec<f64>> = serde_json::from_value(case["logits"].clone()).unwrap();
        let got = net
            .embed(
                &mnist_pixels(features.len()),
                [1, 28, 28],
                Resize::Bilinear,
                Input::Native,
            )
            .unwrap();
        // Raw input feeds the pixel values themselves: p raw is q
        // normalised where q / 127.5 - 1 = p (bilinear resizing is linear,
        // so it commutes with the affine map).
        let p: Vec<f32> = mnist_pixels(2).iter().map(|v| v / 255.0).collect();
        let q: Vec<f32> = p.iter().map(|v| (v + 1.0) * 127.5).collect();
        let raw = net
            .embed(&p, [1, 28, 28], Resize::Bilinear, Input::RawPixels)
            .unwrap();
        let native = net
            .embed(&q, [1, 28, 28], Resize::Bilinear, Input::Native)
            .unwrap();
        let as_rows = |v: &[f32]| -> Vec<Vec<f64>> {
            v.chunks(2048)
                .map(|r| r.iter().map(|x| *x as f64).collect())
                .collect()
        };
        let worst = worst_relative(&raw.features, &as_rows(&native.features));
        assert!(
            worst < 1e-4,
            "{key}: raw input is not the unscaled pixels ({worst})"
        );
        let worst = worst_relative(&got.features, &features);
        assert!(
            worst < 1e-4,
            "{key} features: largest relative difference {worst}"
        );
        let worst = worst_relative(&got.logits.unwrap(), &logits);
        assert!(
            worst < 1e-4,
            "{key} logits: largest relative difference {worst}"
        );
    }
}

#[test]
fn missing_or_misshapen_tensors_are_named() {
    let fixture = reference();
    let dir = tempfile::tempdir().unwrap();
    let mut weights = formula_weights(&fixture["torchvision"]["params"]);
    weights.retain(|(n, _, _)| n != "Mixed_6c.branch7x7_2.bn.running_var");
    let path = dir.path().join("cut.safetensors");
    write_safetensors(&path, &weights, HashMap::new()).unwrap();
    let msg = Inception::load(&path).unwrap_err().to_string();
    assert!(msg.contains("cut.safetensors"), "{msg}");
    assert!(msg.contains("Mixed_6c.branch7x7_2.bn.running_var"), "{msg}");
    let other = vec![("encoder.weight".to_string(), vec![2], vec![0.0, 1.0])];
    write_safetensors(&path, &other, HashMap::new()).unwrap();
    let msg = Inception::load(&path).unwrap_err().to_string();
    assert!(msg.contains("not Inception-v3 weights"), "{msg}");
}

#[test]
fn bicubic_resize_matches_pillow() {
    let fixture = &reference()["pil_bicubic"];
    let want: Vec<f64> = serde_json::from_value(fixture["every_97th"].clone()).unwrap();
    let got = snn_metrics::resize::resize_plane(&mnist_pixels(1), 28, 28, 299, Resize::Bicubic);
    let sampled: Vec<f32> = got.iter().step_by(97).copied().collect();
    assert_eq!(sampled.len(), want.len());
    for (i, (g, w)) in sampled.iter().zip(&want).enumerate() {
        assert!((*g as f64 - w).abs() < 1e-3, "value {}: {g} vs {w}", i * 97);
    }
    let sum: f64 = got.iter().map(|v| *v as f64).sum();
    let want_sum = fixture["sum"].as_f64().unwrap();
    assert!(
        (sum - want_sum).abs() < 1e-6 * want_sum,
        "{sum} vs {want_sum}"
    );
}
