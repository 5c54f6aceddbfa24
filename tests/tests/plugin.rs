//! A neuron from a crate outside snn-rs (examples/neuron-plugin), selected by
//! config, runs through the same model code as the built-in neurons.

use snn_core::config::RunConfig;
use snn_core::dfdx::prelude::*;
use snn_core::spec::NeuronSpec;
use snn_core::{device, registry, ParamStore};
use snn_tests::{link_plugins, tiny_config};
use snn_train::Session;
use std::path::Path;

#[test]
fn plugin_neuron_is_registered_by_typetag_alone() {
    link_plugins();
    let names = registry::names::<dyn NeuronSpec>();
    for n in ["alif", "lif", "plif", "if-soft"] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
}

#[test]
fn plugin_neuron_forward_matches_hand_derivation() {
    // v_th = 1, input 0.6 each step, soft reset:
    // u = 0.6 (no), 1.2 (spike; 0.2 left), 0.8 (no), 1.4 (spike; 0.4 left), 1.0 (spike)
    link_plugins();
    let spec: Box<dyn NeuronSpec> = snn_core::config::parse_toml(
        "type = \"if-soft\"\nv_th = 1.0\nlearn_v_th = true\n",
        Path::new("plugin.toml"),
    )
    .unwrap();
    let mut store = ParamStore::new(device::create(0).unwrap());
    store.insert("x", &[5], vec![0.6; 5], true).unwrap();
    let neuron = spec.build("n", &mut store).unwrap();
    let (x, _) = store.taped("x").unwrap().split_tape();
    let x = x.traced(store.new_grads().unwrap()).reshape_like(&(5, 1));
    let o = neuron.forward(x, &store).unwrap();
    assert_eq!(
        o.retaped::<NoneTape>().as_vec(),
        vec![0.0, 1.0, 0.0, 1.0, 1.0]
    );
    let g = o.sum::<Rank0, _>().backward();
    // Gradients reach the input and the learned threshold.
    assert!(store
        .grad(&g, "x")
        .unwrap()
        .as_vec()
        .iter()
        .any(|v| *v != 0.0));
    assert!(store.grad(&g, "n.v_th").unwrap().as_vec()[0] != 0.0);
}

#[test]
fn plugin_neuron_trains_in_the_classifier_from_a_config_line() {
    let cfg: RunConfig =
        tiny_config("set neuron={type=\"if-soft\",v_th=0.5,surrogate={kind=\"atan\",alpha=2.0}}");
    assert!(format!("{:?}", cfg.neuron).starts_with("Some(SoftResetIfSpec"));
    let dir = tempfile::tempdir().unwrap();
    let mut s = Session::new(cfg, dir.path()).unwrap();
    s.progress = false;
    let before = s.store.values("conv1.weight").unwrap();
    let m = s.run_one_epoch().unwrap();
    assert!(m.train_loss.is_finite());
    assert_ne!(before, s.store.values("conv1.weight").unwrap());
    assert!(m.neurons["sn1"].contains_key("v_th"));
}
