//! The CIFAR-10 and CelebA configs cannot be trained to length on these
//! machines (the data sets cannot be fetched here, and a run would take
//! days), but each shipped config, and each paper row's (configs/paper/),
//! must run end to end on its real file format: train a few steps,
//! checkpoint, and (generative models) sample.
//! CIFAR-10 is written in its binary layout from the 20 real test images in
//! `tests/fixtures/cifar10`; CelebA is a folder of generated 178 x 218 JPEGs
//! with its partition file.

mod common;

use common::{file_names, root, snn, text};
use std::path::Path;

/// `data_batch_1..5.bin` (16 images) and `test_batch.bin` (4), records of
/// 1 label byte + 1024 R + 1024 G + 1024 B.
fn write_cifar10(dir: &Path) {
    let fixtures = root().join("tests/fixtures/cifar10");
    let names = file_names(&fixtures, |n| n.ends_with(".png"));
    assert_eq!(names.len(), 20);
    let record = |name: &str| -> Vec<u8> {
        // cifar10_NN_LABEL.png
        let label: u8 = name
            .trim_end_matches(".png")
            .rsplit('_')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let img = image::open(fixtures.join(name)).unwrap().to_rgb8();
        let mut r = vec![label];
        for ch in 0..3 {
            r.extend(img.pixels().map(|p| p.0[ch]));
        }
        r
    };
    std::fs::create_dir_all(dir).unwrap();
    let files = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    let splits: [&[String]; 6] = [
        &names[0..4],
        &names[4..7],
        &names[7..10],
        &names[10..13],
        &names[13..16],
        &names[16..20],
    ];
    for (file, part) in files.iter().zip(splits) {
        let bytes: Vec<u8> = part.iter().flat_map(|n| record(n)).collect();
        std::fs::write(dir.join(file), bytes).unwrap();
    }
}

/// `img_align_celeba/00000N.jpg` (178 x 218, a colour gradient each) and
/// `list_eval_partition.txt`: 4 training images, 1 validation, 2 test.
fn write_celeba(dir: &Path) {
    let imgs = dir.join("img_align_celeba");
    std::fs::create_dir_all(&imgs).unwrap();
    let mut partition = String::new();
    for i in 0..7u32 {
        let img = image::RgbImage::from_fn(178, 218, |x, y| {
            image::Rgb([(x + 30 * i) as u8, (y / 2 + 20 * i) as u8, (x + y) as u8])
        });
        let name = format!("{:06}.jpg", i + 1);
        img.save(imgs.join(&name)).unwrap();
        let split = match i {
            0..=3 => 0,
            4 => 1,
            _ => 2,
        };
        partition.push_str(&format!("{name} {split}\n"));
    }
    std::fs::write(dir.join("list_eval_partition.txt"), partition).unwrap();
}

/// Trains `config` for one epoch at batch 2 on the files under `data`, and
/// returns the run folder.
fn train(config: &str, data: &Path, runs: &Path) -> std::path::PathBuf {
    let out = runs.join(config.trim_end_matches(".toml"));
    let root_set = format!("data.root={:?}", data.to_str().unwrap());
    let o = snn(&[
        "train",
        "--config",
        &format!("configs/{config}"),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--set",
        &root_set,
        "--set",
        "train.epochs=1",
        "--set",
        "train.batch_size=2",
        "--set",
        "data.train_limit=4",
        "--set",
        "data.test_limit=2",
    ]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{config}: {err}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1, "{config}: {metrics}");
    let m: serde_json::Value = serde_json::from_str(metrics.trim()).unwrap();
    let loss = m["train_loss"].as_f64().unwrap_or(f64::NAN);
    assert!(loss.is_finite(), "{config}: {m}");
    assert!(out.join("best.safetensors").exists(), "{config}");
    out
}

/// `snn generate` of two images from a trained run: RGB PNGs of `side`.
fn generates(run: &Path, side: u32) {
    let dir = run.join("samples");
    let o = snn(&[
        "generate",
        "--checkpoint",
        run.to_str().unwrap(),
        "--count",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}: {}", run.display(), text(&o).1);
    let pngs = file_names(&dir, |n| n.ends_with(".png"));
    assert_eq!(pngs.len(), 2, "{pngs:?}");
    let img = image::open(dir.join(&pngs[0])).unwrap();
    assert_eq!((img.width(), img.height()), (side, side));
    assert_eq!(img.color().channel_count(), 3);
}

#[test]
fn cifar10_configs_train_on_the_binary_format_and_generate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar10");
    write_cifar10(&data);
    let runs = dir.path().join("runs");
    for config in ["cifar10-alif.toml", "paper/table6-cifar10-alif.toml"] {
        let run = train(config, &data, &runs);
        let o = snn(&["eval", "--checkpoint", run.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o).1);
    }
    train("ae-cifar10.toml", &data, &runs);
    // The shipped configs and the paper rows' (configs/paper/).
    for config in [
        "fsvae-cifar10-taid.toml",
        "fsvae-cifar10-membrane.toml",
        "annvae-cifar10.toml",
        "paper/table1-cifar10-fsvae-taid.toml",
        "paper/table1-cifar10-fsvae.toml",
        "paper/table1-cifar10-annvae.toml",
        "esvae-cifar10.toml",
        "paper/esvae-cifar10.toml",
    ] {
        generates(&train(config, &data, &runs), 32);
    }
}

#[test]
fn celeba_configs_train_on_the_aligned_folder_and_generate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("celeba");
    write_celeba(&data);
    let runs = dir.path().join("runs");
    train("ae-celeba.toml", &data, &runs);
    for config in [
        "fsvae-celeba-taid.toml",
        "fsvae-celeba-membrane.toml",
        "annvae-celeba.toml",
        "paper/table1-celeba-fsvae-taid.toml",
        "paper/table1-celeba-fsvae.toml",
        "paper/table1-celeba-annvae.toml",
        "esvae-celeba.toml",
        "paper/esvae-celeba.toml",
    ] {
        generates(&train(config, &data, &runs), 64);
    }
}
