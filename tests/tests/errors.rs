//! Bad input gives one clear error naming the file, the field and what is
//! accepted; never a panic.

use snn_core::optim::{Adam, AdamConfig};
use snn_core::{device, ParamStore};
use snn_data::{idx, Split};
use snn_tests::{link_plugins, root};
use snn_train::config::RunConfig;
use std::io::Write;
use std::path::Path;

const GOOD: &str = r#"seed = 1
[model]
type = "classifier"
layers = "FC10"

[neuron]
type = "alif"
tau = 0.5

[decoder]
type = "mean-rate"
"#;

fn parse(text: &str) -> Result<RunConfig, String> {
    link_plugins();
    RunConfig::parse(text, Path::new("my.toml")).map_err(|e| e.to_string())
}

#[test]
fn a_good_config_parses_and_round_trips() {
    let cfg = parse(GOOD).unwrap();
    let resolved = cfg.to_toml().unwrap();
    assert!(resolved.contains("tau = 0.5"), "{resolved}");
    let again = parse(&resolved).unwrap();
    assert_eq!(again.to_toml().unwrap(), resolved);
    // The evaluation batch: left out, 4x the training batch and not
    // written; set, it round-trips.
    assert!(!resolved.contains("eval_batch_size"), "{resolved}");
    assert_eq!(cfg.train.eval_batch(), 4 * cfg.train.batch_size);
    let set = parse(&format!("{GOOD}\n[train]\neval_batch_size = 7\n")).unwrap();
    assert_eq!(set.train.eval_batch(), 7);
    let resolved = set.to_toml().unwrap();
    assert!(resolved.contains("eval_batch_size = 7"), "{resolved}");
    assert_eq!(parse(&resolved).unwrap().train, set.train);
}

#[test]
fn unknown_type_lists_the_registered_ones_with_file_and_line() {
    let err = parse(&GOOD.replace("\"alif\"", "\"alfi\"")).unwrap_err();
    assert!(err.contains("my.toml:"), "{err}");
    assert!(err.contains("unknown type `alfi`"), "{err}");
    assert!(
        err.starts_with("my.toml:7:1:"),
        "points at the type line: {err}"
    );
    for n in ["alif", "if-soft", "lif", "plif"] {
        assert!(err.contains(n), "{n}: {err}");
    }
}

#[test]
fn a_non_finite_number_names_its_field() {
    for (bad, shown) in [("nan", "NaN"), ("inf", "inf"), ("-inf", "-inf")] {
        let err = parse(&GOOD.replace("tau = 0.5", &format!("tau = {bad}"))).unwrap_err();
        assert!(
            err.contains("`neuron.tau` is ")
                && err.contains(shown)
                && err.contains("must be finite"),
            "{err}"
        );
    }
}

#[test]
fn mistyped_field_names_field_file_and_line() {
    let err = parse(&GOOD.replace("tau = 0.5", "tau = \"fast\"")).unwrap_err();
    assert!(err.starts_with("my.toml:"), "{err}");
    assert!(err.contains("tau") || err.contains("f32"), "{err}");
    let line: usize = err.split(':').nth(1).unwrap().parse().unwrap();
    assert!((6..=9).contains(&line), "line {line}: {err}");

    let err = parse(&GOOD.replace("tau = 0.5", "tua = 0.5")).unwrap_err();
    assert!(err.contains("unknown field `tua`"), "{err}");
    assert!(err.contains("tau"), "lists accepted fields: {err}");

    // A classifier without a decoder parses (other models need none) but
    // does not build.
    let cfg = parse(&GOOD.replace("[decoder]\ntype = \"mean-rate\"\n", "")).unwrap();
    let dev = device::create(0).unwrap();
    let err = snn_train::session::build_model(&cfg, [1, 4, 4], 10, &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("add a [decoder] table"), "{err}");

    let err = parse(&format!("{GOOD}\n[train]\nbatch_size = 0\n")).unwrap_err();
    assert!(err.contains("train.batch_size"), "{err}");
    let err = parse(&format!("{GOOD}\n[train]\neval_batch_size = 0\n")).unwrap_err();
    assert!(
        err.contains("train.eval_batch_size") && err.contains("4x train.batch_size"),
        "{err}"
    );
    let err = parse(&format!("{GOOD}\n[train]\nepochs = 0\n")).unwrap_err();
    assert!(err.contains("train.epochs"), "{err}");
    // A negative size: serde names the type only; the message quotes the line.
    let err = parse(&format!("{GOOD}\n[train]\nbatch_size = -4\n")).unwrap_err();
    assert!(err.contains("(at `batch_size = -4`)"), "{err}");
    // A decay of 7 parses but does not build (snn check builds the model).
    let cfg = parse(&GOOD.replace("tau = 0.5", "tau = 7.0")).unwrap();
    let mut store = ParamStore::new(device::create(0).unwrap());
    let neuron = cfg.neuron.as_ref().unwrap();
    let err = neuron.build("n", &mut store).err().unwrap().to_string();
    assert!(
        err.contains("neuron.tau") && err.contains("not a decay factor"),
        "{err}"
    );

    let err = parse("seed = [").unwrap_err();
    assert!(err.starts_with("my.toml:1:"), "{err}");
}

#[test]
fn overrides_apply_like_edits() {
    link_plugins();
    let cfg = RunConfig::with_overrides(
        GOOD,
        Path::new("my.toml"),
        &["neuron.type=\"lif\"".into(), "train.lr=0.01".into()],
    )
    .unwrap();
    assert!(format!("{:?}", cfg.neuron).starts_with("Some(LifSpec"));
    assert_eq!(cfg.train.lr, 0.01);
    let err = RunConfig::with_overrides(GOOD, Path::new("my.toml"), &["nonsense".into()])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("key=value"), "{err}");
}

#[test]
fn parameter_store_round_trips_through_safetensors() {
    let dev = device::create(0).unwrap();
    let mut s = ParamStore::new(dev.clone());
    s.insert(
        "a.weight",
        &[2, 3],
        vec![1.0, -2.0, 3.5, 0.0, 1e-7, -1e9],
        true,
    )
    .unwrap();
    s.insert("a.tau", &[], vec![0.25], false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.safetensors");
    s.save(&path).unwrap();
    let loaded = ParamStore::from_file(dev.clone(), &path).unwrap();
    assert_eq!(
        loaded.values("a.weight").unwrap(),
        s.values("a.weight").unwrap()
    );
    assert_eq!(loaded.get("a.weight").unwrap().shape, vec![2, 3]);
    assert!(!loaded.get("a.tau").unwrap().trainable);
    let mut other = s.clone();
    other.set_values("a.weight", vec![0.0; 6]).unwrap();
    other.load(&path).unwrap();
    assert_eq!(
        other.values("a.weight").unwrap(),
        s.values("a.weight").unwrap()
    );

    // Truncated file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let e = other.load(&cut).unwrap_err().to_string();
    assert!(
        e.contains("cut.safetensors") && e.contains("safetensors"),
        "{e}"
    );
    // Not a safetensors file at all.
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"PK\x03\x04 definitely not safetensors").unwrap();
    assert!(other
        .load(&junk)
        .unwrap_err()
        .to_string()
        .contains("junk.safetensors"));
    // A valid file of another model.
    let mut foreign = ParamStore::new(dev.clone());
    foreign
        .insert("b.weight", &[3], vec![1.0; 3], true)
        .unwrap();
    let fpath = dir.path().join("foreign.safetensors");
    foreign.save(&fpath).unwrap();
    let e = other.load(&fpath).unwrap_err().to_string();
    assert!(e.contains("a.tau") || e.contains("a.weight"), "{e}");
    // Same names, wrong shape.
    let mut wrong = ParamStore::new(dev);
    wrong
        .insert("a.weight", &[3, 2], vec![1.0; 6], true)
        .unwrap();
    wrong.insert("a.tau", &[], vec![0.5], false).unwrap();
    let wpath = dir.path().join("wrong.safetensors");
    wrong.save(&wpath).unwrap();
    let e = other.load(&wpath).unwrap_err().to_string();
    assert!(e.contains("shape [3, 2]"), "{e}");
    // Failed loads left the store untouched.
    assert_eq!(
        other.values("a.weight").unwrap(),
        s.values("a.weight").unwrap()
    );
}

#[test]
fn identical_contents_give_byte_identical_safetensors_files() {
    // Eight metadata entries: written in hash-map order they would come
    // out the same twice with probability 1 / 8! only.
    let dir = tempfile::tempdir().unwrap();
    let tensors = vec![
        ("b.weight".to_string(), vec![2], vec![1.0, 2.0]),
        ("a.bias".to_string(), vec![1], vec![-3.0]),
    ];
    let meta: std::collections::HashMap<String, String> = (0..8)
        .map(|i| (format!("key{i}"), format!("value {i}")))
        .collect();
    let paths: Vec<_> = (0..2)
        .map(|i| {
            let p = dir.path().join(format!("{i}.safetensors"));
            // A fresh map each time (its own hash seed).
            let m: std::collections::HashMap<_, _> = meta.clone().into_iter().collect();
            snn_core::params::write_safetensors(&p, &tensors, m).unwrap();
            p
        })
        .collect();
    let (a, b) = (
        std::fs::read(&paths[0]).unwrap(),
        std::fs::read(&paths[1]).unwrap(),
    );
    assert_eq!(a, b);
    // Still a valid file with everything in it.
    let (raw, read_meta) = snn_core::params::read_safetensors(&paths[0]).unwrap();
    assert_eq!(raw.len(), 2);
    assert_eq!(read_meta, meta);
    let header = u64::from_le_bytes(a[..8].try_into().unwrap());
    assert_eq!(header % 8, 0, "header padded to 8 bytes");
}

#[test]
fn optimizer_state_round_trips() {
    use snn_core::dfdx::prelude::{Backward, Rank0, SplitTape, SumTo, Trace};
    let dev = device::create(0).unwrap();
    let mut s = ParamStore::new(dev.clone());
    s.insert("w", &[3], vec![1.0, 2.0, 3.0], true).unwrap();
    let mut opt = Adam::new(AdamConfig::default());
    for _ in 0..2 {
        let (w, _) = s.taped("w").unwrap().split_tape();
        let mut g = w
            .traced(s.new_grads().unwrap())
            .square()
            .sum::<Rank0, _>()
            .backward();
        opt.update(&mut s, &mut g, 0.1).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("o.safetensors");
    opt.save(&p).unwrap();
    let mut back = Adam::new(AdamConfig::default());
    back.load(&p).unwrap();
    assert_eq!(back.steps(), 2);
    let e = back
        .load(&dir.path().join("missing.safetensors"))
        .unwrap_err();
    assert!(e.to_string().contains("missing.safetensors"));
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn committed_mnist_subset_is_real_idx() {
    let cfg = snn_data::config::DataConfig {
        root: root().join("data/mnist-subset"),
        ..Default::default()
    };
    let train = snn_data::load(&cfg, Split::Train).unwrap();
    let test = snn_data::load(&cfg, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (3000, 1000));
    assert_eq!(train.shape, [1, 28, 28]);
    // The well-known first labels of MNIST's training and test files.
    assert_eq!(&train.labels[..8], &[5, 0, 4, 1, 9, 2, 1, 3]);
    assert_eq!(&test.labels[..8], &[7, 2, 1, 0, 4, 1, 4, 9]);
    assert!(train.images.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn idx_errors_name_the_file_and_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    images.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    let labels = vec![0, 0, 8, 1, 0, 0, 0, 2, 3, 4];
    std::fs::write(d.join("i"), &images).unwrap();
    std::fs::write(d.join("l.gz"), gz(&labels)).unwrap();
    let ds = idx::load_pair(&d.join("i"), &d.join("l.gz"), 10).unwrap();
    assert_eq!(ds.labels, vec![3, 4]);
    assert_eq!(ds.shape, [1, 2, 2]);
    assert_eq!(ds.images[7], 8.0 / 255.0);

    std::fs::write(d.join("trunc"), &images[..20]).unwrap();
    let e = idx::load_pair(&d.join("trunc"), &d.join("l.gz"), 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("trunc") && e.contains("truncated"), "{e}");

    let mut bad_magic = images.clone();
    bad_magic[3] = 1;
    std::fs::write(d.join("magic"), &bad_magic).unwrap();
    let e = idx::load_pair(&d.join("magic"), &d.join("l.gz"), 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("magic") && e.contains("0x00000803"), "{e}");

    let three = vec![0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3];
    std::fs::write(d.join("l3"), &three).unwrap();
    let e = idx::load_pair(&d.join("i"), &d.join("l3"), 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 labels") && e.contains("2 images"), "{e}");

    let e = idx::load_pair(&d.join("nope"), &d.join("l3"), 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");

    // A header whose dimensions overflow a usize when multiplied.
    let mut huge = vec![0, 0, 8, 3];
    for _ in 0..3 {
        huge.extend(u32::MAX.to_be_bytes());
    }
    std::fs::write(d.join("huge"), &huge).unwrap();
    let e = idx::load_pair(&d.join("huge"), &d.join("l3"), 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("huge") && e.contains("overflow"), "{e}");

    let mut corrupt = gz(&labels);
    corrupt.truncate(corrupt.len() - 6);
    std::fs::write(d.join("c.gz"), &corrupt).unwrap();
    let e = idx::load_pair(&d.join("i"), &d.join("c.gz"), 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("c.gz") && e.contains("gzip"), "{e}");

    // A gzipped file read as a stream: refused as soon as its data runs
    // short or runs on, whatever its header says.
    let mut short = labels.clone();
    short[7] = 200; // promises 200 labels, holds 2
    std::fs::write(d.join("short.gz"), gz(&short)).unwrap();
    let e = idx::read(&d.join("short.gz"), 1).unwrap_err().to_string();
    assert!(
        e.contains("short.gz") && e.contains("promises 200 bytes") && e.contains("has 2"),
        "{e}"
    );
    // 2 labels promised, 64 MiB of zeros inflated behind them.
    let mut bomb = labels.clone();
    bomb.resize(labels.len() + (64 << 20), 0);
    std::fs::write(d.join("bomb.gz"), gz(&bomb)).unwrap();
    let e = idx::read(&d.join("bomb.gz"), 1).unwrap_err().to_string();
    assert!(
        e.contains("bomb.gz") && e.contains(&format!("{} unexpected bytes", 64 << 20)),
        "{e}"
    );
    // A header promising more than any IDX file (5 x 2^30 bytes).
    let mut big3 = vec![0, 0, 8, 3];
    for dim in [5u32 << 20, 32, 32] {
        big3.extend(dim.to_be_bytes());
    }
    std::fs::write(d.join("big.gz"), gz(&big3)).unwrap();
    let e = idx::read(&d.join("big.gz"), 3).unwrap_err().to_string();
    assert!(
        e.contains("big.gz") && e.contains("more than an IDX file here holds"),
        "{e}"
    );

    let cfg = snn_data::config::DataConfig {
        root: d.join("empty"),
        ..Default::default()
    };
    let e = snn_data::load(&cfg, Split::Train).unwrap_err().to_string();
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("fetch-data"),
        "{e}"
    );
}

#[test]
fn cifar10_binary_reads_real_images() {
    // Write the 20 real CIFAR-10 test images (PNG fixtures) into the real
    // binary layout, then read it back with the CIFAR-10 reader.
    let fixtures = root().join("tests/fixtures/cifar10");
    let mut files: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 20);
    let mut bin = Vec::new();
    let mut expect = Vec::new();
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let label: u8 = name.rsplit('_').next().unwrap().parse().unwrap();
        let img = image::open(f).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (32, 32));
        bin.push(label);
        for ch in 0..3 {
            bin.extend(img.pixels().map(|p| p.0[ch]));
        }
        expect.push((label, img.get_pixel(5, 7).0));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test_batch.bin"), &bin).unwrap();
    let cfg = snn_data::config::DataConfig {
        dataset: "cifar10".into(),
        root: dir.path().to_path_buf(),
        ..Default::default()
    };
    let ds = snn_data::load(&cfg, Split::Test).unwrap();
    assert_eq!(ds.len(), 20);
    assert_eq!(ds.shape, [3, 32, 32]);
    for (i, (label, px)) in expect.iter().enumerate() {
        assert_eq!(ds.labels[i], *label);
        for (ch, p) in px.iter().enumerate() {
            let v = ds.images[i * 3072 + ch * 1024 + 7 * 32 + 5];
            assert_eq!(v, *p as f32 / 255.0);
        }
    }
    // Truncated record and bad label.
    std::fs::write(dir.path().join("test_batch.bin"), &bin[..bin.len() - 1]).unwrap();
    let e = snn_data::load(&cfg, Split::Test).unwrap_err().to_string();
    assert!(e.contains("test_batch.bin") && e.contains("3073"), "{e}");
    let mut bad = bin.clone();
    bad[3073] = 12;
    std::fs::write(dir.path().join("test_batch.bin"), &bad).unwrap();
    let e = snn_data::load(&cfg, Split::Test).unwrap_err().to_string();
    assert!(e.contains("record 1") && e.contains("label 12"), "{e}");
    let e = snn_data::load(&cfg, Split::Train).unwrap_err().to_string();
    assert!(e.contains("data_batch_1.bin"), "{e}");
}

#[test]
fn image_folder_reads_classes_in_name_order_and_rejects_bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = root().join("tests/fixtures/cifar10");
    for (class, files) in [
        ("cat", ["cifar10_00_3.png", "cifar10_08_3.png"]),
        ("ship", ["cifar10_01_8.png", "cifar10_02_8.png"]),
    ] {
        let d = dir.path().join("train").join(class);
        std::fs::create_dir_all(&d).unwrap();
        for f in files {
            std::fs::copy(fixtures.join(f), d.join(f)).unwrap();
        }
    }
    let cfg = snn_data::config::DataConfig {
        dataset: "folder".into(),
        root: dir.path().to_path_buf(),
        ..Default::default()
    };
    let ds = snn_data::load(&cfg, Split::Train).unwrap();
    assert_eq!(ds.labels, vec![0, 0, 1, 1]);
    assert_eq!((ds.shape, ds.classes), ([3, 32, 32], 2));
    let px = image::open(fixtures.join("cifar10_01_8.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(
        ds.images[2 * 3072 + 1024 + 3 * 32 + 4],
        px.get_pixel(4, 3).0[1] as f32 / 255.0
    );
    std::fs::write(
        dir.path().join("train/ship/broken.png"),
        b"\x89PNG not really",
    )
    .unwrap();
    let e = snn_data::load(&cfg, Split::Train).unwrap_err().to_string();
    assert!(
        e.contains("broken.png") && e.contains("unreadable image"),
        "{e}"
    );
    std::fs::remove_file(dir.path().join("train/ship/broken.png")).unwrap();
    // Mixed sizes: another size, or grey among colour images, named with
    // both shapes.
    for (name, img) in [
        (
            "small.png",
            image::DynamicImage::ImageRgb8(image::RgbImage::new(16, 16)),
        ),
        (
            "grey.png",
            image::DynamicImage::ImageLuma8(image::GrayImage::new(32, 32)),
        ),
    ] {
        let path = dir.path().join("train/ship").join(name);
        img.save(&path).unwrap();
        let e = snn_data::load(&cfg, Split::Train).unwrap_err().to_string();
        let (c, h) = if name == "grey.png" { (1, 32) } else { (3, 16) };
        assert!(
            e.contains(name)
                && e.contains(&format!("image is {c}x{h}x{h}"))
                && e.contains("first image is 3x32x32"),
            "{e}"
        );
        std::fs::remove_file(path).unwrap();
    }
    // A PNG under another extension is read by its content.
    std::fs::copy(
        fixtures.join("cifar10_02_8.png"),
        dir.path().join("train/ship/renamed.img"),
    )
    .unwrap();
    assert_eq!(snn_data::load(&cfg, Split::Train).unwrap().labels.len(), 5);
    // Class folders with nothing in them, and no class folders at all.
    let empty = tempfile::tempdir().unwrap();
    let cfg = snn_data::config::DataConfig {
        root: empty.path().to_path_buf(),
        ..cfg
    };
    std::fs::create_dir_all(empty.path().join("train")).unwrap();
    let e = snn_data::load(&cfg, Split::Train).unwrap_err().to_string();
    assert!(e.contains("no class folders"), "{e}");
    std::fs::create_dir_all(empty.path().join("train/cat")).unwrap();
    let e = snn_data::load(&cfg, Split::Train).unwrap_err().to_string();
    assert!(e.contains("no images found"), "{e}");
}

#[test]
fn padding_to_32_centres_mnist_digits() {
    let cfg = snn_data::config::DataConfig {
        root: root().join("data/mnist-subset"),
        image_size: 32,
        resize: snn_data::config::ImageResize::Pad,
        symmetric: true,
        test_limit: 3,
        ..Default::default()
    };
    let plain = snn_data::load(
        &snn_data::config::DataConfig {
            image_size: 0,
            symmetric: false,
            ..cfg.clone()
        },
        Split::Test,
    )
    .unwrap();
    let ds = snn_data::load(&cfg, Split::Test).unwrap();
    assert_eq!(ds.shape, [1, 32, 32]);
    assert_eq!(ds.images.len(), 3 * 1024);
    // Border is padding (0 -> -1 after scaling), the digit sits at offset 2.
    assert_eq!(ds.images[0], -1.0);
    for y in 0..28 {
        for x in 0..28 {
            let want = plain.images[y * 28 + x] * 2.0 - 1.0;
            assert_eq!(ds.images[(y + 2) * 32 + x + 2], want);
        }
    }
    let bad = snn_data::config::DataConfig {
        image_size: 20,
        ..cfg
    };
    let e = snn_data::load(&bad, Split::Test).unwrap_err().to_string();
    assert!(e.contains("data.image_size"), "{e}");
}

#[test]
fn celeba_reads_partition_crops_and_resizes() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("img_align_celeba");
    std::fs::create_dir_all(&imgs).unwrap();
    // 178 x 218 images, uniform colour per image so resizing keeps values.
    for (i, rgb) in [[200u8, 10, 10], [10, 200, 10], [10, 10, 200]]
        .iter()
        .enumerate()
    {
        let img = image::RgbImage::from_pixel(178, 218, image::Rgb(*rgb));
        img.save(imgs.join(format!("{:06}.jpg", i + 1))).unwrap();
    }
    let part = dir.path().join("list_eval_partition.txt");
    std::fs::write(&part, "000001.jpg 0\n000002.jpg 2\n000003.jpg 0\n").unwrap();
    let cfg = snn_data::config::DataConfig {
        dataset: "celeba".into(),
        root: dir.path().to_path_buf(),
        image_size: 16,
        ..Default::default()
    };
    let train = snn_data::load(&cfg, Split::Train).unwrap();
    let test = snn_data::load(&cfg, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (2, 1));
    assert_eq!(train.shape, [3, 16, 16]);
    // JPEG is lossy: the test image is green within a few levels.
    let g = test.images[256 + 8 * 16 + 8];
    assert!((g - 200.0 / 255.0).abs() < 0.03, "{g}");
    assert!(test.images[8 * 16 + 8] < 0.1);

    std::fs::write(&part, "000001.jpg 0\n000002.jpg\n").unwrap();
    let e = snn_data::load(&cfg, Split::Train).unwrap_err().to_string();
    assert!(
        e.contains("list_eval_partition.txt") && e.contains("line 2"),
        "{e}"
    );
    std::fs::write(&part, "000001.jpg 0\n000009.jpg 0\n").unwrap();
    let e = snn_data::load(&cfg, Split::Train).unwrap_err().to_string();
    assert!(
        e.contains("000009.jpg") && e.contains("unreadable image"),
        "{e}"
    );
    std::fs::remove_file(&part).unwrap();
    let e = snn_data::load(&cfg, Split::Train).unwrap_err().to_string();
    assert!(e.contains("list_eval_partition.txt"), "{e}");
}
