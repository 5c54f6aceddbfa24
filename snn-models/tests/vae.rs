//! The VAEs' pieces against hand computations and finite differences, the
//! autoregressive stepping against the full-sequence pass, and the models
//! end to end on tiny shapes.

use snn_core::dfdx::prelude::*;
use snn_core::init::{self, WeightInit};
use snn_core::spec::{DecoderSpec, Forward, ModelParts, ModelSpec, NeuronSpec};
use snn_core::{device, ParamStore};
use snn_models::vae::blocks::{Activation, Stepper};
use snn_models::vae::latent::{bernoulli_kl, pick, psp_distance, psp_matrix};
use snn_models::vae::{AnnVaeSpec, Builder, FsvaeSpec};
use snn_nn::testing::{check_fd, scalar_grads, LossGrads};
use snn_nn::Rows;
use snn_nn::Spiking;

fn store() -> ParamStore {
    ParamStore::new(device::create(0).unwrap())
}

/// `[rows, cols]` entry `name` of the store on a fresh tape.
fn taped(store: &ParamStore, name: &str, rows: usize, cols: usize) -> Rows {
    let (x, _) = store.taped(name).unwrap().split_tape();
    x.traced(store.new_grads().unwrap())
        .reshape_like(&(rows, cols))
}

/// The PSP filter run as FSVAE's recursion, per column of `[T, N]`.
fn psp_recursive(x: &[f32], steps: usize, n: usize, tau_s: f32) -> Vec<f32> {
    let mut out = vec![0.0; steps * n];
    for j in 0..n {
        let mut syn = 0.0;
        for t in 0..steps {
            syn += (x[t * n + j] - syn) / tau_s;
            out[t * n + j] = syn;
        }
    }
    out
}

#[test]
fn psp_matrix_is_the_filter_recursion() {
    let m = psp_matrix(3, 2.0);
    // m[s, t] = 0.5 * 0.5^(t - s) for s <= t.
    assert_eq!(m, vec![0.5, 0.25, 0.125, 0.0, 0.5, 0.25, 0.0, 0.0, 0.5]);
}

#[test]
fn psp_distance_matches_recursion_and_finite_differences() {
    let (steps, n) = (5, 3);
    let mut r = init::rng(5);
    let q = init::uniform(&mut r, steps * n, 0.0, 1.0);
    let p = init::uniform(&mut r, steps * n, 0.0, 1.0);
    let (fq, fp) = (
        psp_recursive(&q, steps, n, 2.0),
        psp_recursive(&p, steps, n, 2.0),
    );
    let want: f32 = fq
        .iter()
        .zip(&fp)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f32>()
        / (steps * n) as f32;
    let mut s = store();
    s.insert("q", &[steps * n], q, true).unwrap();
    s.insert("p", &[steps * n], p, true).unwrap();
    let f = |st: &ParamStore| -> LossGrads {
        let l = psp_distance(taped(st, "q", steps, n), taped(st, "p", steps, n), 2.0);
        scalar_grads(st, l)
    };
    assert!(
        (f(&s).0 as f32 - want).abs() < 1e-6,
        "{} vs {want}",
        f(&s).0
    );
    check_fd(&s, &f, 1e-2, 1e-3);
}

#[test]
fn pick_takes_the_chosen_spike_and_routes_its_gradient() {
    // 2 rows, C = 2 latents, k = 3 spikes each.
    let q: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let mut s = store();
    s.insert("q", &[12], q, true).unwrap();
    let picks = [2, 0, 1, 1];
    let z = pick(taped(&s, "q", 2, 6), 3, &picks);
    assert_eq!(z.retaped::<NoneTape>().as_vec(), vec![2.0, 3.0, 7.0, 10.0]);
    let w = s.dev().tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0], (2, 2));
    let g = (z * w).sum::<Rank0, _>().backward();
    let mut want = vec![0.0; 12];
    for (i, v) in [(2, 1.0), (3, 2.0), (7, 3.0), (10, 4.0)] {
        want[i] = v;
    }
    assert_eq!(s.grad(&g, "q").unwrap().as_vec(), want);
}

#[test]
fn bernoulli_kl_matches_formula_and_finite_differences() {
    let (steps, n, batch) = (4, 6, 2);
    let mut r = init::rng(9);
    let q = init::uniform(&mut r, steps * n, 0.1, 0.9);
    let p = init::uniform(&mut r, steps * n, 0.1, 0.9);
    let e = 0.01f32;
    let want: f32 = q
        .iter()
        .zip(&p)
        .map(|(q, p)| {
            q * ((q + e) / (p + e)).ln() + (1.0 - q) * ((1.0 - q + e) / (1.0 - p + e)).ln()
        })
        .sum::<f32>()
        / batch as f32;
    let mut s = store();
    s.insert("q", &[steps * n], q, true).unwrap();
    s.insert("p", &[steps * n], p, true).unwrap();
    let f = |st: &ParamStore| -> LossGrads {
        scalar_grads(
            st,
            bernoulli_kl(taped(st, "q", steps, n), taped(st, "p", steps, n), batch),
        )
    };
    assert!(
        (f(&s).0 as f32 - want).abs() < 1e-5,
        "{} vs {want}",
        f(&s).0
    );
    check_fd(&s, &f, 1e-3, 2e-3);
}

fn lif() -> snn_neurons::LifSpec {
    snn_neurons::LifSpec {
        window_center: snn_neurons::WindowCenter::Membrane,
        ..Default::default()
    }
}

/// The stepper carries the state of a neuron with a host step (the fused
/// kernel) and replays the currents of one without (the composed kernel):
/// both must give the whole sequence's spikes at every step.
#[test]
fn stepping_a_spiking_stack_equals_running_the_whole_sequence() {
    for kernel in [snn_core::Impl::Auto, snn_core::Impl::Composed] {
        stepping_equals_whole_sequence(snn_neurons::LifSpec { kernel, ..lif() });
    }
}

fn stepping_equals_whole_sequence(neuron: snn_neurons::LifSpec) {
    let (steps, batch) = (6, 2);
    let mut s = store();
    let mut r = init::rng(3);
    let make = |block: &str, st: &mut ParamStore| {
        let neuron = neuron.build(&format!("{block}.sn"), st)?;
        let name = block.to_string();
        Ok(Activation::Spike(Spiking { name, neuron }))
    };
    let mut b = Builder {
        store: &mut s,
        rng: &mut r,
        init: WeightInit::Torch,
        bn_scale: 0.2,
        act: &make,
    };
    let blocks = vec![
        b.fc("a", 3, 5, 2.0, false).unwrap(),
        b.fc("b", 5, 4, 2.0, false).unwrap(),
    ];
    // Non-trivial running statistics, so evaluation-mode tdBN matters.
    for (name, lo, hi) in [
        ("a.bn.running_mean", -0.5, 0.5),
        ("a.bn.running_var", 0.1, 0.5),
    ] {
        let n = s.get(name).unwrap().numel();
        s.set_values(name, init::uniform(&mut r, n, lo, hi))
            .unwrap();
    }
    let x = init::uniform(&mut r, steps * batch * 3, -2.0, 2.0);
    let dev = s.dev().clone();
    let mut rng = init::rng(0);
    let mut fwd = Forward::new(&s, false, &mut rng);
    let mut y = dev
        .tensor_from_vec(x.clone(), (steps * batch, 1, 1, 3))
        .traced(Gradients::leaky());
    for block in &blocks {
        y = block.forward(y, steps, &mut fwd).unwrap();
    }
    let full = y.retaped::<NoneTape>().as_vec();
    assert!(full.contains(&1.0) && full.contains(&0.0));
    let mut stepper = Stepper::new(&blocks, batch, &s).unwrap();
    for t in 0..steps {
        let row = x[t * batch * 3..(t + 1) * batch * 3].to_vec();
        let out = stepper.step(row, &mut fwd, &dev).unwrap();
        assert_eq!(
            out,
            full[t * batch * 4..(t + 1) * batch * 4],
            "step {t}, {:?}",
            neuron.kernel
        );
    }
}

fn parts<'a>(
    neuron: Option<&'a dyn NeuronSpec>,
    decoder: Option<&'a dyn DecoderSpec>,
    steps: usize,
) -> ModelParts<'a> {
    ModelParts {
        neuron,
        decoder,
        input_shape: [1, 8, 8],
        classes: 10,
        time_steps: steps,
        loss: snn_core::loss::LossKind::Mse,
    }
}

fn images(seed: u64, n: usize) -> Vec<f32> {
    init::uniform(&mut init::rng(seed), n * 64, -1.0, 1.0)
}

#[test]
fn ann_vae_gradients_match_finite_differences() {
    let spec = AnnVaeSpec {
        channels: vec![2, 3],
        latent: 3,
        kl_weight: 0.1,
        ..Default::default()
    };
    let mut s = store();
    let model = spec
        .build(&parts(None, None, 1), &mut s, &mut init::rng(1))
        .unwrap();
    let x = images(4, 2);
    // Evaluation mode: z = mu and running statistics, so the loss is a
    // smooth function of every parameter.
    let f = |st: &ParamStore| -> LossGrads {
        let img = st
            .dev()
            .tensor_from_vec(x.clone(), (2, 1, 8, 8))
            .traced(st.new_grads().unwrap());
        let mut rng = init::rng(0);
        let mut fwd = Forward::new(st, false, &mut rng);
        let o = model.objective(img, &[0, 1], &mut fwd).unwrap();
        assert_eq!(o.terms.len(), 2);
        scalar_grads(st, o.loss)
    };
    check_fd(&s, &f, 1e-3, 2e-2);
}

#[test]
fn fsvae_learns_a_batch_and_samples_in_range() {
    let spec = FsvaeSpec {
        channels: vec![2, 4],
        latent: 4,
        k: 3,
        sampling_start: 1,
        ..Default::default()
    };
    let neuron = lif();
    let decoder = snn_decoders::LastMembraneSpec::default();
    let mut s = store();
    let model = spec
        .build(
            &parts(Some(&neuron), Some(&decoder), 4),
            &mut s,
            &mut init::rng(1),
        )
        .unwrap();
    let x = images(2, 4);
    let mut opt = snn_core::optim::Adam::new(Default::default());
    let mut rng = init::rng(7);
    let mut losses = Vec::new();
    for _ in 0..40 {
        let img = s
            .dev()
            .tensor_from_vec(x.clone(), (4, 1, 8, 8))
            .traced(s.new_grads().unwrap());
        let mut fwd = Forward::new(&s, true, &mut rng);
        fwd.progress = 0.5;
        let o = model.objective(img, &[0; 4], &mut fwd).unwrap();
        let updates = std::mem::take(&mut fwd.updates);
        losses.push(o.loss.array());
        let mut g = o.loss.backward();
        if losses.len() == 1 {
            // Every layer learns: the encoder through the picked posterior
            // spikes, posterior and prior through the distance.
            for (name, p) in s.iter().filter(|(_, p)| p.trainable) {
                let grad = s.grad(&g, name).unwrap().as_vec();
                let weight = name.ends_with(".weight") && p.shape.len() > 1;
                assert!(
                    !weight || grad.iter().any(|v| *v != 0.0),
                    "{name}: zero gradient"
                );
            }
        }
        opt.update(&mut s, &mut g, 1e-2).unwrap();
        Forward::apply_updates(updates, &mut s).unwrap();
        model.after_step(&mut s).unwrap();
    }
    let first: f32 = losses[..5].iter().sum();
    let last: f32 = losses[35..].iter().sum();
    assert!(last < 0.8 * first, "loss {first} -> {last}: {losses:?}");
    // Weight clipping holds every trainable parameter in [-4, 4].
    assert!(s.iter().filter(|(_, p)| p.trainable).all(|(_, p)| p
        .value
        .as_vec()
        .iter()
        .all(|v| v.abs() <= 4.0)));

    let g = model.generator().expect("FSVAE generates");
    let draw = |seed: u64| {
        let mut rng = init::rng(seed);
        let mut fwd = Forward::new(&s, false, &mut rng);
        g.sample(3, &mut fwd).unwrap().retaped::<NoneTape>()
    };
    let a = draw(1);
    assert_eq!(*a.shape(), (3, 1, 8, 8));
    assert!(a.as_vec().iter().all(|v| (-1.0..=1.0).contains(v)));
    assert_eq!(a.as_vec(), draw(1).as_vec(), "same seed, same samples");
}

#[test]
fn vae_geometry_errors_name_the_fix() {
    let mut s = store();
    let spec = FsvaeSpec::default(); // 4 stride-2 layers: 32x32
    let neuron = lif();
    let decoder = snn_decoders::LastMembraneSpec::default();
    let err = spec
        .build(
            &parts(Some(&neuron), Some(&decoder), 4),
            &mut s,
            &mut init::rng(1),
        )
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("data.image_size = 32"), "{err}");
    let err = FsvaeSpec {
        channels: vec![2, 4],
        ..Default::default()
    }
    .build(&parts(None, Some(&decoder), 4), &mut s, &mut init::rng(1))
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("[neuron]"), "{err}");
}
