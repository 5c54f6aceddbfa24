//! The parsers of user files, each run on one input as a fuzzer runs it
//! (`cargo fuzz`, `fuzz/`; and `tests/tests/hostile_inputs.rs`, which
//! replays the fuzzing corpus and seeded corruptions of real files): any
//! bytes must get a value or an error that names the file, never a panic
//! or an allocation the input does not justify. Each returns whether the
//! input reached the parser (a config that is not UTF-8 does not).

use std::fmt::Display;
use std::path::Path;

/// Accepted, or refused with an error naming `file`.
fn accepted_or_named<T, E: Display>(result: Result<T, E>, file: &str) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(file),
                "an error that does not name {file}: {message}"
            );
            None
        }
    }
}

/// A run config: parse, and round-trip what parses.
pub fn config(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    crate::link_plugins();
    let parsed = snn_train::config::RunConfig::parse(text, Path::new("fuzz.toml"));
    if let Some(cfg) = accepted_or_named(parsed, "fuzz.toml") {
        if let Ok(again) = cfg.to_toml() {
            let back = snn_train::config::RunConfig::parse(&again, Path::new("again.toml"));
            assert!(
                back.is_ok(),
                "a config that parsed does not parse once written: {again}"
            );
        }
    }
    true
}

/// IDX image and label files (the gzip path included).
pub fn idx(bytes: &[u8]) -> bool {
    let path = Path::new("fuzz-idx");
    for dims in [3, 1] {
        accepted_or_named(snn_data::idx::read_bytes(bytes, path, dims), "fuzz-idx");
    }
    true
}

/// A safetensors checkpoint.
pub fn safetensors(bytes: &[u8]) -> bool {
    let path = Path::new("fuzz.safetensors");
    accepted_or_named(
        snn_core::params::parse_safetensors(bytes, path),
        "fuzz.safetensors",
    );
    true
}

/// `.npz` reference statistics.
pub fn npz(bytes: &[u8]) -> bool {
    let read = snn_metrics::Gaussian::read_npz(std::io::Cursor::new(bytes), Path::new("fuzz.npz"));
    accepted_or_named(read, "fuzz.npz");
    true
}

/// A CIFAR-10 binary batch file.
pub fn cifar(bytes: &[u8]) -> bool {
    let mut ds = snn_data::Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        shape: [3, 32, 32],
        classes: 10,
    };
    accepted_or_named(
        snn_data::cifar::parse(bytes, Path::new("fuzz.bin"), &mut ds),
        "fuzz.bin",
    );
    true
}

/// One image of an image folder (PNG or JPEG).
pub fn image(bytes: &[u8]) -> bool {
    accepted_or_named(
        snn_data::folder::decode(bytes, Path::new("fuzz.png")),
        "fuzz.png",
    );
    true
}
