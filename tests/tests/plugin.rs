//! A neuron from a crate outside snn-rs (examples/neuron-plugin), selected by
//! config, runs through the same model code as the built-in neurons.

use snn_core::dfdx::prelude::*;
use snn_core::spec::NeuronSpec;
use snn_core::{device, registry, ParamStore};
use snn_tests::{link_plugins, tiny_config};
use snn_train::config::RunConfig;
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

/// Spikes and gradients (input, `v_th`) of one neuron layer built from
/// `spec` on `x` (`[steps, m]`), loss `sum c * o`.
fn layer_grads(spec: &str, x: &[f32], steps: usize, c: &[f32]) -> (Vec<f32>, Vec<f32>, f32) {
    let m = x.len() / steps;
    let spec: Box<dyn NeuronSpec> =
        snn_core::config::parse_toml(spec, Path::new("plugin.toml")).unwrap();
    let dev = device::create(0).unwrap();
    let mut store = ParamStore::new(dev.clone());
    store.insert("x", &[steps * m], x.to_vec(), true).unwrap();
    let neuron = spec.build("n", &mut store).unwrap();
    let (xt, _) = store.taped("x").unwrap().split_tape();
    let xt = xt
        .traced(store.new_grads().unwrap())
        .reshape_like(&(steps, m));
    let o = neuron.forward(xt, &store).unwrap();
    let spikes = o.retaped::<NoneTape>().as_vec();
    let loss = (o * dev.tensor_from_vec(c.to_vec(), (steps, m))).sum::<Rank0, _>();
    let g = loss.backward();
    let gx = store.grad(&g, "x").unwrap().as_vec();
    (spikes, gx, store.grad(&g, "n.v_th").unwrap().as_vec()[0])
}

#[test]
fn plugin_neuron_gets_the_fused_paths_from_its_step_alone() {
    // The plugin writes one step function; the host kernels (forward and
    // the dual-number backward through time) must agree with the composed
    // dfdx twin, and it offers the host step that the fused spike + pool
    // layer and the FSVAE stepper use.
    link_plugins();
    let (steps, m) = (6, 21);
    let mut rng = snn_core::init::rng(4);
    let x = snn_core::init::uniform(&mut rng, steps * m, -0.2, 0.9);
    let c = snn_core::init::uniform(&mut rng, steps * m, -1.0, 1.0);
    let spec = |kernel: &str| {
        format!(
            "type = \"if-soft\"\nv_th = 0.7\nlearn_v_th = true\nkernel = \"{kernel}\"\n\
             surrogate = {{ kind = \"sigmoid\", alpha = 3.0 }}\n"
        )
    };
    let fused = layer_grads(&spec("auto"), &x, steps, &c);
    let composed = layer_grads(&spec("composed"), &x, steps, &c);
    assert_eq!(fused.0, composed.0);
    let fired = fused.0.iter().sum::<f32>();
    assert!(fired > 10.0 && fired < (steps * m) as f32 - 10.0, "{fired}");
    for (i, (a, b)) in fused.1.iter().zip(&composed.1).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "dx[{i}]: {a} vs {b}"
        );
    }
    assert!((fused.2 - composed.2).abs() <= 1e-4 * (1.0 + composed.2.abs()));
    assert!(fused.2 != 0.0);

    let spec: Box<dyn NeuronSpec> =
        snn_core::config::parse_toml(&spec("auto"), Path::new("plugin.toml")).unwrap();
    let mut store = ParamStore::new(device::create(0).unwrap());
    let step = spec
        .build("n", &mut store)
        .unwrap()
        .host_step(&store)
        .unwrap();
    let step = step.expect("a step neuron offers a host step");
    assert_eq!(step.param_keys(), Some(vec!["n.v_th".to_string()]));
}
