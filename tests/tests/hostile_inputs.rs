//! Every parser of user files against hostile bytes, through
//! `snn_tests::hostile` (accepted, or an error naming the file; never a
//! panic or an allocation the input does not justify): the corpus that
//! coverage-guided fuzzing kept (`fuzz/corpus/<target>/`, `fuzz/README.md`)
//! and every crash it found (`fuzz/crashes/<target>/`) replayed, then each
//! seed in `tests/fixtures/seeds/<format>/` (real files of the format) and
//! thousands of seeded corruptions of it (bytes flipped, overwritten with
//! large numbers, cut short, spliced), deterministically, on stable, in
//! every test run. Only inputs that reach a parser are counted.

use rand::{Rng, SeedableRng};
use snn_tests::{hostile, root};

fn seeds(format: &str) -> Vec<Vec<u8>> {
    let dir = root().join("tests/fixtures/seeds").join(format);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no seeds", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// `count` corruptions of `seed`, the same every run.
fn corruptions(seed: &[u8], count: usize, rng_seed: u64) -> Vec<Vec<u8>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(rng_seed);
    (0..count)
        .map(|_| {
            let mut b = seed.to_vec();
            for _ in 0..rng.gen_range(1..4) {
                if b.is_empty() {
                    b.push(rng.gen());
                    continue;
                }
                let at = rng.gen_range(0..b.len());
                match rng.gen_range(0..5) {
                    0 => b[at] ^= 1 << rng.gen_range(0..8),
                    1 => b[at] = rng.gen(),
                    // A length or count field claiming a huge size.
                    2 => {
                        let big = [0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x0f];
                        for (i, v) in big.iter().enumerate() {
                            if let Some(x) = b.get_mut(at + i) {
                                *x = *v;
                            }
                        }
                    }
                    3 => b.truncate(at),
                    _ => {
                        let from = rng.gen_range(0..b.len());
                        let piece: Vec<u8> = b[from..(from + 16).min(b.len())].to_vec();
                        b.splice(at..at, piece);
                    }
                }
            }
            b
        })
        .collect()
}

/// Runs `parse` on every seed of `format` and `count` corruptions of each
/// (times `SNN_HOSTILE_SCALE`, default 1, for longer runs by hand).
fn run_all(format: &str, count: usize, parse: &dyn Fn(&[u8]) -> bool) {
    run_seeds(format, &seeds(format), count, parse);
}

/// [`run_all`] over seeds made in code.
fn run_seeds(format: &str, seeds: &[Vec<u8>], count: usize, parse: &dyn Fn(&[u8]) -> bool) {
    let scale: usize = std::env::var("SNN_HOSTILE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let (mut tried, mut parsed) = (0usize, 0usize);
    for (i, seed) in seeds.iter().enumerate() {
        assert!(
            parse(seed),
            "{format}: a seed that does not reach its parser"
        );
        // In rounds, so a large scale never holds all inputs at once.
        for round in 0..scale {
            let rng_seed = 7 + (i * 1_000_003 + round) as u64;
            for input in corruptions(seed, count, rng_seed) {
                parsed += parse(&input) as usize;
                tried += 1;
            }
        }
    }
    eprintln!(
        "{format}: {parsed} corrupted inputs reached the parser ({tried} made), none panicked"
    );
    assert!(
        parsed * 2 > tried,
        "{format}: only {parsed} of {tried} corruptions reached the parser"
    );
}

#[test]
fn configs_survive_corruption() {
    // Corruptions made text again (bad bytes become U+FFFD), so that every
    // one reaches the parser.
    run_all("config", 3000, &|b| {
        hostile::config(String::from_utf8_lossy(b).as_bytes())
    });
    snn_tests::link_plugins();
    let seed = std::fs::read_to_string(root().join("tests/fixtures/seeds/config/quickstart.toml"))
        .unwrap();
    snn_train::config::RunConfig::parse(&seed, std::path::Path::new("seed")).unwrap();
}

/// A parser as `snn_tests::hostile` runs it: whether the input reached it.
type Parser = fn(&[u8]) -> bool;

/// Every file the fuzzer kept or crashed on, for every target, through
/// its parser (`fuzz/README.md`).
#[test]
fn the_fuzzing_corpus_and_its_crashes_replay_cleanly() {
    let targets: [(&str, Parser); 6] = [
        ("config", hostile::config),
        ("idx", hostile::idx),
        ("safetensors", hostile::safetensors),
        ("npz", hostile::npz),
        ("cifar", hostile::cifar),
        ("image", hostile::image),
    ];
    for (target, parse) in targets {
        let mut replayed = 0;
        for kind in ["seeds", "corpus", "crashes"] {
            let dir = root().join("fuzz").join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                assert_eq!(kind, "crashes", "{}: missing", dir.display());
                continue;
            };
            for file in entries.flatten() {
                parse(&std::fs::read(file.path()).unwrap());
                replayed += 1;
            }
        }
        assert!(replayed > 0, "{target}: an empty corpus");
        eprintln!("{target}: {replayed} seeds, corpus and crash inputs replayed");
    }
    // The seeds are real files, accepted as such.
    let seed = |t: &str, f: &str| std::fs::read(root().join("fuzz/seeds").join(t).join(f)).unwrap();
    let path = std::path::Path::new("seed");
    let (dims, pixels) =
        snn_data::idx::read_bytes(&seed("idx", "images-3.idx.gz"), path, 3).unwrap();
    assert_eq!((dims, pixels.len()), (vec![3, 28, 28], 3 * 784));
    let mut ds = snn_data::Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        shape: [3, 32, 32],
        classes: 10,
    };
    snn_data::cifar::parse(&seed("cifar", "two-records.bin"), path, &mut ds).unwrap();
    assert_eq!(ds.labels, vec![3, 8], "the labels in the fixtures' names");
    let (raw, _) =
        snn_core::params::parse_safetensors(&seed("safetensors", "trained.safetensors"), path)
            .unwrap();
    assert!(raw.iter().any(|(name, _, _)| name == "fc1.weight"));
}

#[test]
fn idx_files_survive_corruption() {
    run_all("idx", 5000, &hostile::idx);
    let seed = std::fs::read(root().join("tests/fixtures/seeds/idx/images.idx")).unwrap();
    let (dims, _) = snn_data::idx::read_bytes(&seed, std::path::Path::new("seed"), 3).unwrap();
    assert_eq!(dims, vec![2, 3, 3]);
}

#[test]
fn safetensors_checkpoints_survive_corruption() {
    run_all("safetensors", 5000, &hostile::safetensors);
    let seed =
        std::fs::read(root().join("tests/fixtures/seeds/safetensors/tiny.safetensors")).unwrap();
    let (raw, _) =
        snn_core::params::parse_safetensors(&seed, std::path::Path::new("seed")).unwrap();
    assert_eq!(raw.len(), 2);
}

#[test]
fn npz_statistics_survive_corruption() {
    run_all("npz", 1500, &hostile::npz);
    let seed = std::fs::read(root().join("tests/fixtures/seeds/npz/mnist_test_64.npz")).unwrap();
    let g = snn_metrics::Gaussian::read_npz(std::io::Cursor::new(seed), std::path::Path::new("s"))
        .unwrap();
    assert_eq!(g.dim(), 64);
}

#[test]
fn cifar10_batches_survive_corruption() {
    // Two records: labels 3 and 9, pixels a ramp.
    let mut seed = Vec::new();
    for label in [3u8, 9] {
        seed.push(label);
        seed.extend((0..3072).map(|i| (i * 7 % 256) as u8));
    }
    run_seeds("cifar10", &[seed.clone()], 5000, &hostile::cifar);
    let mut ds = snn_data::Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        shape: [3, 32, 32],
        classes: 10,
    };
    snn_data::cifar::parse(&seed, std::path::Path::new("seed"), &mut ds).unwrap();
    assert_eq!(ds.labels, vec![3, 9]);
}

#[test]
fn folder_images_survive_corruption() {
    // A colour PNG, a grey PNG and a JPEG, small enough to decode fast.
    let encode = |img: image::DynamicImage, format: image::ImageFormat| -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    };
    let rgb = image::RgbImage::from_fn(12, 10, |x, y| image::Rgb([x as u8 * 20, y as u8 * 25, 7]));
    let grey = image::GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * y) as u8 * 4]));
    let seeds = [
        encode(rgb.clone().into(), image::ImageFormat::Png),
        encode(grey.into(), image::ImageFormat::Png),
        encode(rgb.into(), image::ImageFormat::Jpeg),
    ];
    run_seeds("image", &seeds, 5000, &hostile::image);
    let path = std::path::Path::new("seed");
    let (shape, px) = snn_data::folder::decode(&seeds[0], path).unwrap();
    assert_eq!(shape, [3, 10, 12]);
    assert_eq!(px[12 + 2], 40.0 / 255.0); // red of (x 2, y 1)
    assert_eq!(
        snn_data::folder::decode(&seeds[1], path).unwrap().0,
        [1, 8, 8]
    );
    assert_eq!(
        snn_data::folder::decode(&seeds[2], path).unwrap().0,
        [3, 10, 12]
    );
}

#[test]
fn an_image_header_claiming_billions_of_pixels_is_refused_unallocated() {
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image::RgbImage::new(4, 4))
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let mut png = png.into_inner();
    // IHDR: length, "IHDR", width, height (big-endian) at 16..24, CRC of
    // type and data at 29..33, so the claim passes the checksum.
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    // 60,000^2 RGB pixels are 10 GB as bytes, 40 GB as floats.
    let e = snn_data::folder::decode(&png, std::path::Path::new("huge.png"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("huge.png") && e.contains("unreadable image"),
        "{e}"
    );
    // Refused by the decoder's allocation limit, not by running out of
    // bytes after allocating.
    assert!(e.contains("limit"), "{e}");
}
