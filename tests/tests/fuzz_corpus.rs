//! Replays every input of the fuzz corpora (`fuzz/corpus/<target>/`: the
//! seeds and whatever `cargo +nightly fuzz run` added or found crashing)
//! through the same code the fuzz targets run, on the stable toolchain, so
//! a fixed crash stays fixed. The seeds must also still parse.

use snn_tests::{fuzz_inputs, root};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root().join("fuzz/corpus").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{}: no corpus", dir.display());
    out
}

#[test]
fn config_corpus_never_panics_and_the_seeds_parse() {
    for (_, bytes) in inputs("config") {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            fuzz_inputs::config(text);
        }
    }
    snn_tests::link_plugins();
    let seed = std::fs::read_to_string(root().join("fuzz/corpus/config/quickstart.toml")).unwrap();
    snn_core::config::RunConfig::parse(&seed, std::path::Path::new("seed")).unwrap();
}

#[test]
fn idx_safetensors_and_npz_corpora_never_panic() {
    for (_, bytes) in inputs("idx") {
        fuzz_inputs::idx(&bytes);
    }
    for (_, bytes) in inputs("safetensors") {
        fuzz_inputs::safetensors(&bytes);
    }
    for (_, bytes) in inputs("npz") {
        fuzz_inputs::npz(&bytes);
    }
    // The seeds are valid files of their formats.
    let seed = std::fs::read(root().join("fuzz/corpus/safetensors/tiny.safetensors")).unwrap();
    let (raw, _) =
        snn_core::params::parse_safetensors(&seed, std::path::Path::new("seed")).unwrap();
    assert_eq!(raw.len(), 2);
    let seed = std::fs::read(root().join("fuzz/corpus/idx/images.idx")).unwrap();
    let (dims, _) = snn_data::idx::parse(&seed, std::path::Path::new("seed"), 3).unwrap();
    assert_eq!(dims, vec![2, 3, 3]);
}
