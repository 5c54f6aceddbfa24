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
fn test_split(dataset: &str, resize: snn_core::config::ImageResize) -> Option<Vec<f32>> {
    let dir = root().join("data").join(dataset);
    if !dir.join("t10k-labels-idx1-ubyte").exists()
        && !dir.join("t10k-labels-idx1-ubyte.gz").exists()
    {
        assert!(
            std::env::var("SNN_REQUIRE_DATA").is_err(),
            "{}: full test split missing (scripts/fetch-data.sh {dataset})",
            dir.display()
        );
        eprintln!(
            "skipped: {} not fetched (scripts/fetch-data.sh {dataset})",
            dir.display()
        );
        return None;
    }
    let cfg = snn_core::config::DataConfig {
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
    use snn_core::config::ImageResize;
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
