//! `.nir` files against the real other side: Python `nir` 1.0.8 (in the
//! venv `scripts/nir-python.sh` makes) reads what snn writes, with its type
//! checks, and a graph Python `nir` writes (gzip-compressed datasets, its
//! own names) imports and runs with exactly the class scores a numpy
//! simulation of NIR's equations gives (`nir_reference.py`).
#![cfg(feature = "hdf5")]

use snn_core::dfdx::prelude::*;
use snn_core::nir::{ExportOptions, PoolForm};
use snn_core::spec::Forward;
use snn_core::{init, ParamStore};
use snn_nir::file;
use snn_nir::run::{import, ImportTarget};
use snn_train::config::RunConfig;
use snn_train::session::build_model;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's Python, made once per test process; a failure to make it
/// fails the test (never a skip).
fn python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(make_venv).clone()
}

fn make_venv() -> PathBuf {
    let out = Command::new("bash")
        .arg(root().join("scripts/nir-python.sh"))
        .output()
        .expect("running scripts/nir-python.sh");
    assert!(
        out.status.success(),
        "scripts/nir-python.sh could not make the nir venv:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn reference(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nir_reference.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nir_reference.py {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn link() {
    snn_neurons::link();
    snn_decoders::link();
    snn_models::link();
}

fn target(time_steps: Option<usize>) -> ImportTarget {
    let data = root().join("data/mnist-subset");
    ImportTarget {
        dataset: "mnist".into(),
        root: data,
        time_steps,
        dt: 1e-4,
    }
}

#[test]
fn python_nir_reads_what_snn_writes_and_the_file_round_trips() {
    link();
    let text = format!(
        "time_steps = 4\n[model]\ntype = \"classifier\"\nlayers = \"c16k3s1-BN-ALIF-MPk2s2-c32k3s1-BN-ALIF-MPk2s2-DP-FC100-ALIF-APk10s10\"\n\
         [neuron]\ntype = \"alif\"\n[decoder]\ntype = \"mean-rate\"\n[data]\ndataset = \"mnist\"\nroot = {:?}\n",
        root().join("data/mnist-subset").display().to_string()
    );
    let cfg = RunConfig::parse(&text, Path::new("q.toml")).unwrap();
    let dev = snn_core::device::create(0).unwrap();
    let (store, model) = build_model(&cfg, [1, 28, 28], 10, &dev).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for pool in [PoolForm::SumThreshold, PoolForm::AvgLif] {
        let graph = model
            .to_nir(
                &store,
                &ExportOptions {
                    pool,
                    ..Default::default()
                },
            )
            .unwrap();
        let path = dir.path().join("net.nir");
        file::write(&path, &graph).unwrap();
        let back = file::read(&path).unwrap();
        let differ: Vec<&String> = graph
            .nodes
            .keys()
            .filter(|k| back.nodes.get(*k) != graph.nodes.get(*k))
            .collect();
        assert!(
            differ.is_empty(),
            "{pool:?}: nodes {differ:?} changed in a write and read"
        );
        assert_eq!(
            (&back.edges, &back.metadata),
            (&graph.edges, &graph.metadata)
        );

        let seen: serde_json::Value =
            serde_json::from_str(&reference(&["read", path.to_str().unwrap()])).unwrap();
        let shape = |node: &str, io: &str| seen["nodes"][node][io].clone();
        let kind = |node: &str| {
            seen["nodes"][node]["type"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        };
        assert_eq!(kind("conv2d"), "Conv2d");
        assert_eq!(shape("conv2d", "output"), serde_json::json!([16, 28, 28]));
        assert_eq!(shape("flatten", "input"), serde_json::json!([32, 7, 7]));
        assert_eq!(shape("affine", "output"), serde_json::json!([100]));
        assert_eq!(kind("lif_2"), "LIF");
        assert_eq!(shape("linear", "output"), serde_json::json!([10]));
        let pools: Vec<String> = match pool {
            PoolForm::SumThreshold => vec![kind("sumpool2d"), kind("threshold_1")],
            PoolForm::AvgLif => vec![kind("avgpool2d"), kind("lif_1")],
        };
        let want = match pool {
            PoolForm::SumThreshold => ["SumPool2d", "Threshold"],
            PoolForm::AvgLif => ["AvgPool2d", "LIF"],
        };
        assert_eq!(pools, want);
        assert_eq!(seen["metadata"]["time_steps"], 4);
        assert_eq!(
            seen["edges"].as_array().map(Vec::len),
            Some(graph.edges.len())
        );
    }
}

fn scores(model: &dyn snn_core::spec::Model, store: &ParamStore, images: Vec<f32>) -> Vec<f32> {
    let n = images.len() / 784;
    snn_core::grad::no_grad(|| {
        let x = store
            .dev()
            .tensor_from_vec(images, (n, 1, 28, 28))
            .traced(Gradients::leaky());
        let mut rng = init::rng(0);
        model
            .forward(x, &mut Forward::new(store, false, &mut rng))
            .unwrap()
            .as_vec()
    })
}

#[test]
fn a_graph_python_nir_writes_runs_as_numpy_simulates_it() {
    link();
    let dir = tempfile::tempdir().unwrap();
    let idx = root().join("data/mnist-subset/t10k-images-idx3-ubyte.gz");
    reference(&["make", dir.path().to_str().unwrap(), idx.to_str().unwrap()]);
    let graph = file::read(&dir.path().join("graph.nir")).unwrap();
    let dev = snn_core::device::create(0).unwrap();
    let run = import(&graph, &target(None), Path::new("graph.nir"), &dev).unwrap();
    assert_eq!(
        run.imported.layers,
        "c6k5s1p2-ALIF-MPk2s2-c8k3s1p1-ALIF-APk2s2-FC30-ALIF-FC10-ALIF"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("reference.json")).unwrap()).unwrap();
    let floats = |k: &str| -> Vec<f32> {
        json[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let want = floats("scores");
    let got = scores(run.model.as_ref(), &run.store, floats("images"));
    let differ: Vec<usize> = (0..want.len()).filter(|i| want[*i] != got[*i]).collect();
    assert!(
        differ.is_empty(),
        "{} of {} scores differ from numpy's, first at {:?}",
        differ.len(),
        want.len(),
        differ.first()
    );
    assert!(
        want.iter().filter(|v| **v > 0.0).count() > want.len() / 4,
        "the reference network barely fires"
    );
}

#[test]
fn a_broken_file_is_one_error_naming_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.nir");
    std::fs::write(&junk, b"not hdf5 at all").unwrap();
    let e = file::read(&junk).unwrap_err().to_string();
    assert!(
        e.contains("junk.nir") && e.contains("not an HDF5 file"),
        "{e}"
    );
    let e = file::read(&dir.path().join("missing.nir"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.nir") && e.contains("no such file"),
        "{e}"
    );
}
