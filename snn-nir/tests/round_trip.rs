//! Export then import, in memory (no HDF5 needed): the imported classifier
//! computes exactly the outputs of the one exported, on real MNIST images,
//! for both charge forms, both max-pool forms, batch norm, biases, average
//! pooling and the voting layer; and what NIR cannot express is refused
//! naming the layer or node.

use rand::Rng as _;
use snn_core::dfdx::prelude::*;
use snn_core::nir::{ExportOptions, Graph, Node, PoolForm};
use snn_core::spec::{Forward, Model};
use snn_core::{init, ParamStore};
use snn_data::Split;
use snn_nir::run::{import, ImportTarget};
use snn_train::config::RunConfig;
use snn_train::session::build_model;
use std::path::{Path, PathBuf};

fn data_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist-subset")
}

fn config(layers: &str, neuron: &str, bias: bool) -> RunConfig {
    snn_neurons::link();
    snn_decoders::link();
    snn_models::link();
    let text = format!(
        "seed = 3\ntime_steps = 8\n[model]\ntype = \"classifier\"\nlayers = \"{layers}\"\nbias = {bias}\n\
         [neuron]\n{neuron}\n[decoder]\ntype = \"mean-rate\"\n\
         [data]\ndataset = \"mnist\"\nroot = {:?}\n",
        data_root().display().to_string()
    );
    RunConfig::parse(&text, Path::new("round_trip.toml")).expect("config")
}

/// Batch-norm statistics and affine maps drawn so that every layer fires
/// some of the time (a freshly built network is mostly silent past its
/// first layer, which would make equal outputs mean little).
fn randomise_batch_norm(store: &mut ParamStore) {
    let mut rng = init::rng(11);
    let names: Vec<String> = store
        .names()
        .filter(|n| n.starts_with("bn"))
        .cloned()
        .collect();
    for name in names {
        let n = store.values(&name).unwrap().len();
        let range = match name.rsplit('.').next() {
            Some("weight") => 0.5..2.5,
            Some("bias") => -0.2..0.8,
            Some("running_mean") => -0.1..0.1,
            _ => 0.3..2.0,
        };
        let v = (0..n).map(|_| rng.gen_range(range.clone())).collect();
        store.set_values(&name, v).unwrap();
    }
}

fn outputs(model: &dyn Model, store: &ParamStore, images: &[f32], n: usize) -> Vec<f32> {
    snn_core::grad::no_grad(|| {
        let x = store
            .dev()
            .tensor_from_vec(images.to_vec(), (n, 1, 28, 28))
            .traced(Gradients::leaky());
        let mut rng = init::rng(0);
        let mut fwd = Forward::new(store, false, &mut rng);
        model.forward(x, &mut fwd).expect("forward").as_vec()
    })
}

fn round_trip(layers: &str, neuron: &str, bias: bool, pool: PoolForm) -> Graph {
    let cfg = config(layers, neuron, bias);
    let dev = snn_core::device::create(0).unwrap();
    let (mut store, model) = build_model(&cfg, [1, 28, 28], 10, &dev).unwrap();
    randomise_batch_norm(&mut store);
    let options = ExportOptions {
        pool,
        ..Default::default()
    };
    let graph = model.to_nir(&store, &options).expect("export");

    let target = ImportTarget {
        dataset: "mnist".into(),
        root: data_root(),
        time_steps: None,
        dt: options.dt,
    };
    let run = import(&graph, &target, Path::new("memory.nir"), &dev).expect("import");
    assert_eq!(
        run.cfg.time_steps, 8,
        "time steps from the graph's metadata"
    );

    let mut test = snn_data::load(&cfg.data, Split::Test).unwrap();
    test.truncate(200);
    let n = test.len();
    let before = outputs(model.as_ref(), &store, &test.images, n);
    let after = outputs(run.model.as_ref(), &run.store, &test.images, n);
    let differ = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert_eq!(
        differ,
        0,
        "{layers}: {differ} of {} class scores differ after export + import",
        before.len()
    );
    // The check means something only if the network's output moves.
    let firing = before.iter().filter(|v| **v > 0.0).count();
    assert!(
        firing > before.len() / 10,
        "{layers}: only {firing} non-zero scores"
    );
    let rows: std::collections::BTreeSet<Vec<u32>> = before
        .chunks(10)
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect();
    assert!(
        rows.len() > 20,
        "{layers}: only {} distinct score vectors",
        rows.len()
    );
    graph
}

#[test]
fn paper_charge_batch_norm_vote_and_sum_threshold_pools() {
    let g = round_trip(
        "c8k3s1-BN-ALIF-MPk2s2-c8k3s1-BN-ALIF-APk2s2-FC40-ALIF-APk4s4",
        "type = \"alif\"\ntau = 0.3\nv_th = 0.4",
        false,
        PoolForm::SumThreshold,
    );
    let kinds: Vec<&str> = g.walk().unwrap().iter().map(|(_, n)| n.kind()).collect();
    assert_eq!(
        kinds,
        [
            "Input",
            "Conv2d",
            "LIF",
            "SumPool2d",
            "Threshold",
            "Conv2d",
            "LIF",
            "AvgPool2d",
            "Flatten",
            "Affine",
            "LIF",
            "Linear",
            "Output"
        ]
    );
}

#[test]
fn decay_input_charge_biases_and_avg_lif_pools() {
    // The decay-input form's input gain tau folds into the layer before.
    round_trip(
        "c8k3s2-PLIF-MPk2s2-c16k3s1-BN-PLIF-APk7s7-FC10-BN-PLIF",
        "type = \"plif\"\ntau = 0.6\nv_th = 0.3",
        true,
        PoolForm::AvgLif,
    );
}

#[test]
fn what_nir_cannot_express_is_refused_by_name() {
    let dev = snn_core::device::create(0).unwrap();
    let mut cfg = config("c4k3s1-ALIF-MPk2s2-FC10-ALIF", "type = \"alif\"", false);
    cfg.decoder = Some(Box::new(snn_decoders::taid::TaidSpec::default()));
    let (store, model) = build_model(&cfg, [1, 28, 28], 10, &dev).unwrap();
    let e = model
        .to_nir(&store, &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("decoder") && e.contains("mean-rate"), "{e}");

    // A layer whose neurons do not share one time constant.
    let cfg = config("FC10-ALIF", "type = \"alif\"", false);
    let (store, model) = build_model(&cfg, [1, 28, 28], 10, &dev).unwrap();
    let mut g = model.to_nir(&store, &ExportOptions::default()).unwrap();
    if let Some(Node::Lif { tau, .. }) = g.nodes.get_mut("lif") {
        tau.data[3] *= 2.0;
    }
    let target = ImportTarget {
        dataset: "mnist".into(),
        root: data_root(),
        time_steps: None,
        dt: 1e-4,
    };
    let e = import(&g, &target, Path::new("x.nir"), &dev)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("`lif`") && e.contains("`tau` differs"), "{e}");

    // A node type the classifier has no layer for, placed in the chain.
    let mut g = model.to_nir(&store, &ExportOptions::default()).unwrap();
    g.nodes.insert(
        "lif".into(),
        Node::SumPool2d {
            kernel_size: [3, 3],
            stride: [1, 1],
            padding: [0, 0],
        },
    );
    let e = import(&g, &target, Path::new("x.nir"), &dev)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("`lif`") && e.contains("stride = window"), "{e}");

    // Hostile values: a zero-sized pooling window, a resistance of NaN.
    let mut g = model.to_nir(&store, &ExportOptions::default()).unwrap();
    let zero = Node::SumPool2d {
        kernel_size: [0, 0],
        stride: [0, 0],
        padding: [0, 0],
    };
    g.nodes.insert("lif".into(), zero);
    let e = import(&g, &target, Path::new("x.nir"), &dev)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("`lif`") && e.contains("square windows"), "{e}");
    let mut g = model.to_nir(&store, &ExportOptions::default()).unwrap();
    if let Some(Node::Lif { r, .. }) = g.nodes.get_mut("lif") {
        r.data.iter_mut().for_each(|v| *v = f64::NAN);
    }
    let e = import(&g, &target, Path::new("x.nir"), &dev)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("`lif`") && e.contains("not finite"), "{e}");
}

/// Exporters write a network that starts with a fully connected layer with
/// the image already flattened (`Input [784]`, no `Flatten`): it imports
/// and computes what the graph with the explicit `Flatten` computes.
#[test]
fn a_graph_on_the_flattened_image_imports_too() {
    let cfg = config(
        "FC40-BN-ALIF-FC10-ALIF",
        "type = \"alif\"\nv_th = 0.3",
        true,
    );
    let dev = snn_core::device::create(0).unwrap();
    let (mut store, model) = build_model(&cfg, [1, 28, 28], 10, &dev).unwrap();
    randomise_batch_norm(&mut store);
    let graph = model.to_nir(&store, &ExportOptions::default()).unwrap();
    let mut flat = graph.clone();
    flat.nodes.remove("flatten");
    flat.nodes
        .insert("input".into(), Node::Input { shape: vec![784] });
    flat.edges.retain(|(a, _)| a != "flatten");
    for (_, b) in flat.edges.iter_mut().filter(|(a, _)| a == "input") {
        *b = "affine".into();
    }
    let target = ImportTarget {
        dataset: "mnist".into(),
        root: data_root(),
        time_steps: None,
        dt: 1e-4,
    };
    let with = import(&graph, &target, Path::new("a.nir"), &dev).unwrap();
    let without = import(&flat, &target, Path::new("b.nir"), &dev).unwrap();
    assert_eq!(with.imported.layers, without.imported.layers);
    let mut test = snn_data::load(&cfg.data, Split::Test).unwrap();
    test.truncate(100);
    let a = outputs(with.model.as_ref(), &with.store, &test.images, 100);
    let b = outputs(without.model.as_ref(), &without.store, &test.images, 100);
    let c = outputs(model.as_ref(), &store, &test.images, 100);
    assert_eq!(a, b);
    assert_eq!(a, c, "and both compute what the exported network does");
    assert!(a.iter().any(|v| *v > 0.0));
    // A flat input of another length is refused naming the input node.
    flat.nodes
        .insert("input".into(), Node::Input { shape: vec![783] });
    let e = import(&flat, &target, Path::new("c.nir"), &dev)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("`input`") && e.contains("flattened"), "{e}");
}
