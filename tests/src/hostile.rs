//! The parsers of user files, each run on one input as a fuzzer would run
//! it (`tests/tests/hostile_inputs.rs` feeds them seeds and thousands of
//! seeded corruptions of them): any bytes must get a value or an error,
//! never a panic or an allocation the input does not justify.

use std::path::Path;

/// A run config: parse, and round-trip what parses.
pub fn config(text: &str) {
    crate::link_plugins();
    if let Ok(cfg) = snn_train::config::RunConfig::parse(text, Path::new("fuzz.toml")) {
        if let Ok(again) = cfg.to_toml() {
            let _ = snn_train::config::RunConfig::parse(&again, Path::new("fuzz.toml"));
        }
    }
}

/// IDX image and label files (the gzip path included).
pub fn idx(bytes: &[u8]) {
    let path = Path::new("fuzz-idx");
    let _ = snn_data::idx::read_bytes(bytes, path, 3);
    let _ = snn_data::idx::read_bytes(bytes, path, 1);
}

/// A safetensors checkpoint.
pub fn safetensors(bytes: &[u8]) {
    let _ = snn_core::params::parse_safetensors(bytes, Path::new("fuzz.safetensors"));
}

/// `.npz` reference statistics.
pub fn npz(bytes: &[u8]) {
    let _ = snn_metrics::Gaussian::read_npz(std::io::Cursor::new(bytes), Path::new("fuzz.npz"));
}

/// A CIFAR-10 binary batch file.
pub fn cifar(bytes: &[u8]) {
    let mut ds = snn_data::Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        shape: [3, 32, 32],
        classes: 10,
    };
    let _ = snn_data::cifar::parse(bytes, Path::new("fuzz.bin"), &mut ds);
}

/// One image of an image folder (PNG or JPEG).
pub fn image(bytes: &[u8]) {
    let _ = snn_data::folder::decode(bytes, Path::new("fuzz.png"));
}
