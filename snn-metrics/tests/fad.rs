//! The FSVAE authors' FAD network and reference statistics
//! (`data/fsvae-fad`, from shared/fsvae-fad): the real test sets score 0
//! against their own stored reference only when the pipeline is the
//! authors' (bilinear 28 -> 32, batch-statistics BN in batches of 256,
//! channels-first flatten), and the network agrees with PyTorch.

use snn_data::Split;
use snn_metrics::fad::{BatchNorm, FadEncoder, FAD_BATCH};
use snn_metrics::{frechet_distance, Gaussian};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn encoder(name: &str) -> FadEncoder {
    FadEncoder::load(&root().join(format!("data/fsvae-fad/{name}_64.safetensors"))).unwrap()
}

fn reference(name: &str) -> Gaussian {
    Gaussian::load_npz(&root().join(format!("data/fsvae-fad/{name}_test_64.npz"))).unwrap()
}

/// The full test split of `dataset` at 32x32 in [-1, 1], or `None` (with a
/// note) where it has not been fetched; `SNN_REQUIRE_DATA=1` (CI) makes
/// its absence a failure.
fn test_split(dataset: &str, resize: snn_data::config::ImageResize) -> Option<Vec<f32>> {
    let dir = root().join("data").join(dataset);
    let labels = ["t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz"]
        .map(|f| dir.join(f))
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| dir.join("t10k-labels-idx1-ubyte"));
    let check = format!("FAD of the real {dataset} test split");
    let fetch = format!("scripts/fetch-data.sh {dataset}");
    if !snn_core::checks::needs_file(&check, &labels, "SNN_REQUIRE_DATA", &fetch) {
        return None;
    }
    let cfg = snn_data::config::DataConfig {
        dataset: dataset.into(),
        root: dir,
        image_size: 32,
        resize,
        symmetric: true,
        ..Default::default()
    };
    Some(snn_data::load(&cfg, Split::Test).unwrap().images)
}

fn fad(enc: &FadEncoder, images: &[f32], bn: BatchNorm, refg: &Gaussian) -> f64 {
    let z = enc.embed(images, FAD_BATCH, bn).unwrap();
    frechet_distance(&Gaussian::fit(&z, enc.latent()).unwrap(), refg).unwrap()
}

#[test]
fn real_test_sets_score_zero_only_with_the_authors_pipeline() {
    use snn_data::config::ImageResize;
    for (dataset, name) in [("mnist", "mnist"), ("fmnist", "fashion")] {
        let Some(images) = test_split(dataset, ImageResize::Bilinear) else {
            continue;
        };
        let (enc, refg) = (encoder(name), reference(name));
        let paper = fad(&enc, &images, BatchNorm::Batch, &refg);
        let eval = fad(&enc, &images, BatchNorm::Running, &refg);
        let padded = test_split(dataset, ImageResize::Pad).unwrap();
        let pad = fad(&enc, &padded, BatchNorm::Batch, &refg);
        eprintln!("{dataset}: FAD batch-BN {paper:.3e}, eval-BN {eval:.4}, zero-padded {pad:.4}");
        assert!(paper < 1e-3, "{dataset}: {paper}");
        assert!(
            eval > 0.1,
            "{dataset}: eval-mode BN should not reproduce the reference: {eval}"
        );
        assert!(
            pad > 0.1,
            "{dataset}: zero padding should not reproduce the reference: {pad}"
        );
    }
}

fn fixture() -> serde_json::Value {
    let path = root().join("tests/fixtures/paper-protocol.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The committed subset's test digits as bytes `[n, 28, 28]`.
fn subset_bytes() -> Vec<u8> {
    let cfg = snn_data::config::DataConfig {
        root: root().join("data/mnist-subset"),
        ..Default::default()
    };
    let ds = snn_data::load(&cfg, Split::Test).unwrap();
    ds.images
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect()
}

fn resize32(digit: &[u8]) -> Vec<u8> {
    snn_data::resample::resize_u8(
        digit,
        [28, 28],
        [32, 32],
        snn_data::resample::Filter::Bilinear,
    )
}

fn shift_right(img: &[u8], side: usize, k: usize) -> Vec<u8> {
    let mut out = vec![0u8; img.len()];
    for y in 0..side {
        out[y * side + k..(y + 1) * side].copy_from_slice(&img[y * side..(y + 1) * side - k]);
    }
    out
}

#[test]
fn bilinear_resize_matches_pillow_on_real_digits() {
    let want: Vec<Vec<u8>> = serde_json::from_value(fixture()["resize"].clone()).unwrap();
    let digits = subset_bytes();
    for (i, w) in want.iter().enumerate() {
        let got = resize32(&digits[i * 784..(i + 1) * 784]);
        assert_eq!(&got, w, "digit {i}: Pillow's bilinear 28 -> 32 differs");
    }
}

#[test]
fn fad_matches_the_authors_network_in_pytorch() {
    let f = &fixture()["fad"];
    let shift = f["shift"].as_u64().unwrap() as usize;
    let digits = subset_bytes();
    let images: Vec<f32> = digits
        .chunks(784)
        .flat_map(|d| shift_right(&resize32(d), 32, shift))
        .map(|b| b as f32 / 255.0 * 2.0 - 1.0)
        .collect();
    assert_eq!(images.len() / 1024, f["count"].as_u64().unwrap() as usize);
    let enc = encoder("mnist");
    let z = enc.embed(&images, FAD_BATCH, BatchNorm::Batch).unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(f["latents"].clone()).unwrap();
    for (i, w) in want.iter().enumerate() {
        for (j, v) in w.iter().enumerate() {
            let g = z[i * 64 + j] as f64;
            assert!(
                (g - v).abs() < 1e-4 * (1.0 + v.abs()),
                "latent {i}.{j}: {g} vs {v}"
            );
        }
    }
    let ours = frechet_distance(&Gaussian::fit(&z, 64).unwrap(), &reference("mnist")).unwrap();
    let theirs = f["fad"].as_f64().unwrap();
    eprintln!("FAD of shifted digits: ours {ours:.6}, PyTorch + scipy {theirs:.6}");
    assert!(theirs > 1.0, "the fixture's set should score well above 0");
    assert!((ours - theirs).abs() < 1e-3 * theirs, "{ours} vs {theirs}");
}

#[test]
fn bad_fad_files_get_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (tensors, _) =
        snn_core::params::read_safetensors(&root().join("data/fsvae-fad/mnist_64.safetensors"))
            .unwrap();
    // A state dict missing a key, then one with a wrong shape.
    let cut: Vec<_> = tensors
        .iter()
        .filter(|(n, _, _)| n != "encoder.2.1.running_var")
        .cloned()
        .collect();
    let path = dir.path().join("cut.safetensors");
    snn_core::params::write_safetensors(&path, &cut, Default::default()).unwrap();
    let e = FadEncoder::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("cut.safetensors") && e.contains("encoder.2.1.running_var"),
        "{e}"
    );
    let mut bent = tensors.clone();
    for t in &mut bent {
        if t.0 == "encoder.1.0.bias" {
            *t = (t.0.clone(), vec![63], t.2[..63].to_vec());
        }
    }
    snn_core::params::write_safetensors(&path, &bent, Default::default()).unwrap();
    let e = FadEncoder::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("encoder.1.0.bias") && e.contains("[63]") && e.contains("expected [64]"),
        "{e}"
    );
    // A .npz without `sigma`: written by hand (a zip of .npy files).
    let npz = dir.path().join("stats.npz");
    {
        let file = std::fs::File::create(&npz).unwrap();
        use npyz::WriterBuilder;
        let mut w = npyz::npz::NpzWriter::new(file);
        let mut arr = w
            .array::<f32>("mu", Default::default())
            .unwrap()
            .default_dtype()
            .shape(&[2])
            .begin_nd()
            .unwrap();
        arr.extend([1.0f32, 2.0]).unwrap();
        arr.finish().unwrap();
    }
    let e = Gaussian::load_npz(&npz).unwrap_err().to_string();
    assert!(e.contains("stats.npz") && e.contains("no `sigma`"), "{e}");
    std::fs::write(&npz, b"not a zip").unwrap();
    let e = Gaussian::load_npz(&npz).unwrap_err().to_string();
    assert!(
        e.contains("stats.npz") && e.contains("not a NumPy .npz"),
        "{e}"
    );
    // The committed statistics read as f32 `mu`, f64 `sigma`.
    let g = reference("fashion");
    assert_eq!((g.dim(), g.cov.nrows()), (64, 64));
}
