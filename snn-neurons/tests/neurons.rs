//! Neuron dynamics and BPTT gradients against hand-derived values and an
//! independently written forward-mode (tangent) reference.

use snn_core::dfdx::prelude::*;
use snn_core::spec::NeuronSpec;
use snn_core::{device, ParamStore, Tp};
use snn_neurons::step::HostRun;
use snn_neurons::{
    AlifSpec, Charge, Impl, LifSpec, LifStep, PlifSpec, Surrogate, TauParam, WindowCenter,
};
use std::sync::Arc;

/// A LIF layer's charge form, decay and threshold.
type Lif = (Charge, f32, f32);

/// The paper's form with `tau`, `v_th`.
fn paper(tau: f32, v_th: f32) -> Lif {
    (Charge::Paper, tau, v_th)
}

fn lif_step(charge: Charge) -> LifStep {
    LifStep {
        surrogate: Surrogate::default(),
        window: WindowCenter::Threshold,
        detach_reset: false,
        charge,
        tau_param: TauParam::Raw,
    }
}

/// The LIF step's host kernel for `(charge, tau, v_th)`.
fn lif_run((charge, tau, v_th): Lif) -> HostRun<LifStep> {
    let keys = vec!["tau".into(), "v_th".into()];
    HostRun::new(Arc::new(lif_step(charge)), &[tau, v_th], keys)
}

/// The host kernel driven one step at a time on `x` (`[T, M]`, or `[M]`
/// repeated): the membranes before reset `u` (from the charge formula
/// `u = a r + b x`, written here) and the kernel's spikes, both `[T, M]`.
/// Checks at every step that the kernel's state is the reset membrane
/// `u (1 - o)`.
fn simulate(x: &[f32], steps: usize, m: usize, lif: Lif) -> (Vec<f32>, Vec<f32>) {
    let run = lif_run(lif);
    let (a, b) = match lif.0 {
        Charge::Paper => (lif.1, 1.0),
        Charge::DecayInput => (1.0 - lif.1, lif.1),
    };
    let (mut us, mut spikes) = (vec![0.0; steps * m], vec![0.0; steps * m]);
    let mut state = vec![0.0f32; m];
    for t in 0..steps {
        let xt = if x.len() == m {
            x
        } else {
            &x[t * m..(t + 1) * m]
        };
        for i in 0..m {
            us[t * m + i] = a * state[i] + b * xt[i];
        }
        run.step_run(xt, &mut state, &mut spikes[t * m..(t + 1) * m]);
        for i in 0..m {
            let (u, o) = (us[t * m + i], spikes[t * m + i]);
            assert_eq!(state[i], u * (1.0 - o), "state at t {t}, neuron {i}");
        }
    }
    (us, spikes)
}

/// The kernel's spikes of a whole sequence, in parallel over chunks.
fn simulate_spikes(x: &[f32], steps: usize, m: usize, lif: Lif) -> Vec<f32> {
    lif_run(lif).simulate(x, steps, m)
}

struct Grads {
    spikes: Vec<f32>,
    x: Vec<f32>,
    tau: f32,
    v_th: f32,
}

/// Runs `spec` on `x` ([T, M]) with loss `sum_t,i c[t,i] * o[t,i]` and returns
/// spikes and all gradients, going through the public plugin path.
fn run(spec: &dyn NeuronSpec, x: &[f32], steps: usize, c: &[f32]) -> Grads {
    let m = x.len() / steps;
    let dev = device::create(0).unwrap();
    let mut store = ParamStore::new(dev.clone());
    store.insert("x", &[steps, m], x.to_vec(), true).unwrap();
    let neuron = spec.build("n", &mut store).unwrap();
    let grads = store.new_grads().unwrap();
    let xt = store.taped("x").unwrap();
    let (xt, tape) = xt.split_tape();
    let _ = tape;
    let xt = xt.traced(grads).reshape_like(&(steps, m));
    let o = neuron.forward(xt, &store).unwrap();
    let spikes = o.retaped::<NoneTape>().as_vec();
    let cw = dev.tensor_from_vec(c.to_vec(), (steps, m));
    let loss = (o * cw).sum::<Rank0, _>();
    let g = loss.backward();
    let get = |n: &str| store.grad(&g, n).unwrap().as_vec();
    Grads {
        spikes,
        x: get("x"),
        // The stored decay parameter: tau itself, or its logit.
        tau: store
            .grad(&g, "n.tau")
            .or_else(|_| store.grad(&g, "n.tau_logit"))
            .map(|t| t.as_vec()[0])
            .unwrap_or(0.0),
        v_th: store
            .grad(&g, "n.v_th")
            .map(|t| t.as_vec()[0])
            .unwrap_or(0.0),
    }
}

/// Forward-mode reference: propagates the tangent of one seed (x[k], tau or
/// v_th) through the unrolled loop. Independent of the reverse-mode code.
fn tangent_reference(
    x: &[f32],
    steps: usize,
    c: &[f32],
    tau: f32,
    v_th: f32,
    sg: &dyn Fn(f32) -> f32,
    detach_reset: bool,
) -> (Vec<f32>, f32, f32) {
    tangent_reference_charged(x, steps, c, (tau, v_th), sg, detach_reset, Charge::Paper)
}

/// [`tangent_reference`] for either charge form, written out per form:
/// the paper's `u = tau h + x` or the authors' `u = h + (x - h) tau`.
fn tangent_reference_charged(
    x: &[f32],
    steps: usize,
    c: &[f32],
    (tau, v_th): (f32, f32),
    sg: &dyn Fn(f32) -> f32,
    detach_reset: bool,
    charge: Charge,
) -> (Vec<f32>, f32, f32) {
    let m = x.len() / steps;
    #[derive(Clone, Copy)]
    enum Seed {
        X(usize),
        Tau,
        Vth,
    }
    let grad_of = |seed: Seed| -> f64 {
        let mut total = 0.0f64;
        for i in 0..m {
            let (mut u, mut o) = (0.0f64, 0.0f64);
            let (mut du, mut d_o) = (0.0f64, 0.0f64);
            for t in 0..steps {
                let k = t * m + i;
                let dx = matches!(seed, Seed::X(j) if j == k) as i32 as f64;
                let dtau = matches!(seed, Seed::Tau) as i32 as f64;
                let dvth = matches!(seed, Seed::Vth) as i32 as f64;
                let reset_tangent = if detach_reset { 0.0 } else { d_o };
                // h = u (1 - o) and its tangent.
                let h = u * (1.0 - o);
                let dh = du * (1.0 - o) - u * reset_tangent;
                let (tau, xk) = (tau as f64, x[k] as f64);
                (u, du) = match charge {
                    // u = tau h + x
                    Charge::Paper => (tau * h + xk, dtau * h + tau * dh + dx),
                    // u = h + (x - h) tau
                    Charge::DecayInput => {
                        (h + (xk - h) * tau, dh + (dx - dh) * tau + (xk - h) * dtau)
                    }
                };
                let uf = u as f32;
                o = if uf - v_th >= 0.0 { 1.0 } else { 0.0 };
                d_o = sg(uf) as f64 * (du - dvth);
                total += c[k] as f64 * d_o;
            }
        }
        total
    };
    let gx = (0..x.len()).map(|k| grad_of(Seed::X(k)) as f32).collect();
    (gx, grad_of(Seed::Tau) as f32, grad_of(Seed::Vth) as f32)
}

fn close(a: f32, b: f32, rel: f32) -> bool {
    (a - b).abs() <= rel * (1.0 + a.abs().max(b.abs()))
}

fn assert_all_close(what: &str, a: &[f32], b: &[f32], rel: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(close(*x, *y, rel), "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn lif_forward_matches_hand_derived_sequence() {
    // tau 0.5, v_th 1: u = 0.75, 0.875, 1.0625 (fire), 1.5 (after reset; fire),
    // 0.125 (after reset). All values exact in binary.
    let x = [0.75, 0.5, 0.625, 1.5, 0.125];
    let (u, o) = simulate(&x, 5, 1, paper(0.5, 1.0));
    assert_eq!(u, vec![0.75, 0.875, 1.0625, 1.5, 0.125]);
    assert_eq!(o, vec![0.0, 0.0, 1.0, 1.0, 0.0]);
    // Exactly at threshold fires (H(0) = 1).
    let (_, o) = simulate(&[1.0, 0.0], 2, 1, paper(0.5, 1.0));
    assert_eq!(o, vec![1.0, 0.0]);
    // The layer gives the same spikes, fused and composed.
    for kernel in [Impl::Auto, Impl::Composed] {
        let spec = LifSpec {
            tau: 0.5,
            v_th: 1.0,
            kernel,
            ..Default::default()
        };
        let g = run(&spec, &x, 5, &[1.0; 5]);
        assert_eq!(g.spikes, vec![0.0, 0.0, 1.0, 1.0, 0.0], "{kernel:?}");
    }
}

#[test]
fn multi_neuron_layout_is_time_major() {
    // Two neurons side by side: [T=3, M=2]; neuron 1 gets the same input as
    // the single-neuron case, neuron 0 stays silent.
    let x = [0.0, 0.75, 0.0, 0.5, 0.0, 0.625];
    let (u, o) = simulate(&x, 3, 2, paper(0.5, 1.0));
    assert_eq!(u, vec![0.0, 0.75, 0.0, 0.875, 0.0, 1.0625]);
    assert_eq!(o, vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
}

#[test]
fn bptt_gradients_match_tangent_reference_with_resets() {
    // tau 0.5, v_th 0.25, rectangular width 1: window |u - 0.25| < 0.5.
    // Inputs give spikes, resets, a membrane exactly on the window's upper
    // edge (u = 0.75: outside, zero surrogate) and one on the lower edge
    // (u = -0.25, also outside).
    let steps = 6;
    let x = vec![
        0.5, 0.75, 0.1, //
        0.375, -0.25, 0.2, //
        -0.1, 0.3, 0.05, //
        0.4, 0.2, -0.6, //
        0.05, 0.6, 0.3, //
        0.7, -0.2, 0.45,
    ];
    let c: Vec<f32> = (0..x.len())
        .map(|k| 0.3 + 0.17 * (k as f32) - 0.02 * (k * k) as f32)
        .collect();
    let (_, o) = simulate(&x, steps, 3, paper(0.5, 0.25));
    assert!(o.iter().sum::<f32>() >= 4.0, "the case must fire: {o:?}");
    for detach_reset in [false, true] {
        for kernel in [Impl::Auto, Impl::Composed] {
            let spec = AlifSpec {
                tau: 0.5,
                v_th: 0.25,
                detach_reset,
                kernel,
                ..Default::default()
            };
            let g = run(&spec, &x, steps, &c);
            let s = Surrogate::Rectangular { width: 1.0 };
            let (gx, gtau, gvth) = tangent_reference(
                &x,
                steps,
                &c,
                0.5,
                0.25,
                &|u| s.grad(u - 0.25),
                detach_reset,
            );
            let tag = format!("{kernel:?} detach={detach_reset}");
            assert_eq!(g.spikes, o, "{tag}");
            assert_all_close(&format!("dx {tag}"), &g.x, &gx, 1e-5);
            assert!(close(g.tau, gtau, 1e-5), "dtau {tag}: {} vs {gtau}", g.tau);
            assert!(
                close(g.v_th, gvth, 1e-5),
                "dvth {tag}: {} vs {gvth}",
                g.v_th
            );
            // Edge cells: u = 0.75 at (t0, i1) is on the window edge, so the
            // direct path contributes nothing there; the gradient of x[1]
            // comes only through later steps.
            assert!(gx.iter().any(|v| *v != 0.0));
        }
    }
}

#[test]
fn detached_gradients_match_paper_eq_8_and_9() {
    // With the reset detached, Eq. 9 is exact: dL/dV_th = -sum_t dL/do[t] * sg[t],
    // and Eq. 8 unrolls du[t]/dtau = sum_m u[m](1-o[m]) prod_{j>m} tau (1-o[j]).
    let steps = 5;
    let x = [0.3, 0.1, 0.35, 0.05, 0.2];
    let c = [1.0, -0.5, 2.0, 0.25, -1.5];
    let (tau, vth, width) = (0.6f32, 0.4f32, 0.8f32);
    let (u, o) = simulate(&x, steps, 1, paper(tau, vth));
    assert!(o.contains(&1.0));
    let sg = |uu: f32| {
        if (uu - vth).abs() < width / 2.0 {
            1.0 / width
        } else {
            0.0
        }
    };
    let mut eq9 = 0.0f32;
    let mut eq8 = 0.0f32;
    for t in 0..steps {
        eq9 -= c[t] * sg(u[t]);
        let mut du_dtau = 0.0f32;
        for m in 0..t {
            let mut prod = 1.0;
            for oj in &o[m + 1..t] {
                prod *= tau * (1.0 - oj);
            }
            du_dtau += u[m] * (1.0 - o[m]) * prod;
        }
        eq8 += c[t] * sg(u[t]) * du_dtau;
    }
    for kernel in [Impl::Auto, Impl::Composed] {
        let spec = AlifSpec {
            tau,
            v_th: vth,
            detach_reset: true,
            surrogate: Surrogate::Rectangular { width },
            kernel,
            ..Default::default()
        };
        let g = run(&spec, &x, steps, &c);
        assert!(
            close(g.v_th, eq9, 1e-5),
            "{kernel:?}: {} vs Eq.9 {eq9}",
            g.v_th
        );
        assert!(
            close(g.tau, eq8, 1e-5),
            "{kernel:?}: {} vs Eq.8 {eq8}",
            g.tau
        );
    }
}

#[test]
fn fused_and_composed_agree_for_every_surrogate_and_window() {
    // 40,000 neurons span three of the fused kernel's parallel chunks (the
    // last one partial); 37 is less than one 8-lane group past 32. With
    // 320,000 terms, loss weights of both signs would cancel the tau / v_th
    // sums down to float32 rounding noise, so the large case weighs spikes
    // in [0, 1]; and the composed oracle sums them in float32 (measured
    // 1.0e-5 off the fused kernel's float64 total), so those two sums get
    // 1e-4. A lost or doubled chunk would be off by a third.
    for (m, c_low, sum_rel) in [(37, -1.0, 1e-5), (40_000, 0.0, 1e-4)] {
        fused_and_composed_agree(m, c_low, sum_rel);
    }
}

fn fused_and_composed_agree(m: usize, c_low: f32, sum_rel: f32) {
    let steps = 8;
    let mut rng = snn_core::init::rng(7);
    let x = snn_core::init::uniform(&mut rng, steps * m, -0.4, 0.9);
    let c = snn_core::init::uniform(&mut rng, steps * m, c_low, 1.0);
    let surrogates = [
        Surrogate::Rectangular { width: 1.0 },
        Surrogate::Triangle { width: 0.7 },
        Surrogate::Sigmoid { alpha: 4.0 },
        Surrogate::Atan { alpha: 2.0 },
    ];
    for s in surrogates {
        for window_center in [WindowCenter::Threshold, WindowCenter::Membrane] {
            let mk = |kernel| AlifSpec {
                surrogate: s,
                window_center,
                kernel,
                ..Default::default()
            };
            let a = run(&mk(Impl::Auto), &x, steps, &c);
            let b = run(&mk(Impl::Composed), &x, steps, &c);
            let tag = format!("{s:?} {window_center:?} m={m}");
            assert_eq!(a.spikes, b.spikes, "{tag}");
            assert_all_close(&format!("dx {tag}"), &a.x, &b.x, 1e-5);
            assert!(close(a.tau, b.tau, sum_rel), "{tag}: {} {}", a.tau, b.tau);
            let (va, vb) = (a.v_th, b.v_th);
            assert!(close(va, vb, sum_rel), "{tag}: {va} {vb}");
        }
    }
}

#[test]
fn learn_flags_decide_which_constants_get_gradients() {
    let dev = device::create(0).unwrap();
    // PLIF (Fang et al.) stores its decay as a logit.
    let cases: [(&dyn NeuronSpec, &str, bool, bool); 3] = [
        (&LifSpec::default(), "n.tau", false, false),
        (&PlifSpec::default(), "n.tau_logit", true, false),
        (&AlifSpec::default(), "n.tau", true, true),
    ];
    for (spec, tau_key, tau, vth) in cases {
        let mut store = ParamStore::new(dev.clone());
        spec.build("n", &mut store).unwrap();
        assert_eq!(store.get(tau_key).unwrap().trainable, tau, "{spec:?}");
        assert_eq!(store.get("n.v_th").unwrap().trainable, vth, "{spec:?}");
    }
    // And a fixed LIF made learnable by config alone.
    let spec: Box<dyn NeuronSpec> = toml::from_str("type = \"lif\"\nlearn_v_th = true\n").unwrap();
    let mut store = ParamStore::new(dev);
    spec.build("n", &mut store).unwrap();
    assert!(store.get("n.v_th").unwrap().trainable);
    assert!(!store.get("n.tau").unwrap().trainable);
}

#[test]
fn bad_settings_are_errors_not_panics() {
    let dev = device::create(0).unwrap();
    let mut store = ParamStore::new(dev);
    let spec = AlifSpec {
        surrogate: Surrogate::Rectangular { width: 0.0 },
        ..Default::default()
    };
    let err = spec.build("n", &mut store).unwrap_err().to_string();
    assert!(err.contains("neuron.surrogate.width"), "{err}");
    let spec = AlifSpec {
        tau: f32::NAN,
        ..Default::default()
    };
    assert!(spec.build("m", &mut store).is_err());
}

#[allow(dead_code)]
fn _tape_type_is_shared(_: Tp) {}

#[test]
fn static_input_path_equals_repeating_the_input() {
    // Direct encoding: forward_static([1, M], T) must equal forward on the
    // row repeated T times, values and gradients (input grad = sum over t).
    let (steps, m) = (5, 23);
    let mut rng = snn_core::init::rng(9);
    let x = snn_core::init::uniform(&mut rng, m, -0.5, 1.2);
    let c = snn_core::init::uniform(&mut rng, steps * m, -1.0, 1.0);
    let dev = device::create(0).unwrap();
    let mut results = Vec::new();
    for (kernel, use_static) in [
        (Impl::Auto, true),
        (Impl::Composed, false),
        (Impl::Composed, true),
    ] {
        let spec = AlifSpec {
            kernel,
            ..Default::default()
        };
        let mut store = ParamStore::new(dev.clone());
        store.insert("x", &[m], x.clone(), true).unwrap();
        let neuron = spec.build("n", &mut store).unwrap();
        let (xt, _) = store.taped("x").unwrap().split_tape();
        let xt = xt.traced(store.new_grads().unwrap());
        let o = if use_static {
            neuron
                .forward_static(xt.reshape_like(&(1, m)), steps, &store)
                .unwrap()
        } else {
            let rep = xt.broadcast_like::<_, Axis<0>>(&(steps, m));
            neuron.forward(rep, &store).unwrap()
        };
        let spikes = o.retaped::<NoneTape>().as_vec();
        let cw = dev.tensor_from_vec(c.clone(), (steps, m));
        let g = (o * cw).sum::<Rank0, _>().backward();
        let gx = store.grad(&g, "x").unwrap().as_vec();
        let gtau = store.grad(&g, "n.tau").unwrap().as_vec()[0];
        results.push((spikes, gx, gtau));
    }
    for r in &results[1..] {
        assert_eq!(r.0, results[0].0);
        assert_all_close("dx static", &r.1, &results[0].1, 1e-5);
        assert!(close(r.2, results[0].2, 1e-5));
    }
}

#[test]
fn spikes_without_membrane_history_equal_the_full_simulation() {
    // Time-varying and static inputs; 40,000 neurons span three chunks.
    let (steps, m) = (6, 40_000);
    let mut rng = snn_core::init::rng(11);
    let x = snn_core::init::uniform(&mut rng, steps * m, -0.3, 0.8);
    for input in [&x[..], &x[..m]] {
        let (_, full) = simulate(input, steps, m, paper(0.6, 0.5));
        let fired = full.iter().filter(|&&o| o == 1.0).count();
        assert!(
            fired > steps * m / 10 && fired < steps * m * 9 / 10,
            "{fired}"
        );
        assert_eq!(simulate_spikes(input, steps, m, paper(0.6, 0.5)), full);
    }
}

#[test]
fn host_step_reproduces_the_layers_spikes_bit_for_bit() {
    // The step that fused kernels call, driven one step at a time, against
    // the layer's own forward pass; values land on the threshold too.
    let (steps, m) = (7, 300);
    let mut rng = snn_core::init::rng(5);
    let mut x = snn_core::init::uniform(&mut rng, steps * m, -0.3, 0.8);
    x.iter_mut().step_by(17).for_each(|v| *v = 0.5);
    let spec = AlifSpec {
        tau: 0.6,
        v_th: 0.5,
        ..AlifSpec::default()
    };
    let dev = device::create(0).unwrap();
    let mut store = ParamStore::new(dev.clone());
    let layer = spec.build("n", &mut store).unwrap();
    let input = dev.tensor_from_vec(x.clone(), (steps, m));
    let expected =
        snn_core::grad::no_grad(|| layer.forward(input.traced(Gradients::leaky()), &store))
            .unwrap()
            .as_vec();
    let step = layer
        .host_step(&store)
        .unwrap()
        .expect("LIF family has a host step");
    let mut state = vec![0.0f32; step.state_len() * m];
    let mut spikes = vec![0.0f32; steps * m];
    for (xt, ot) in x.chunks(m).zip(spikes.chunks_mut(m)) {
        step.step(xt, &mut state, ot);
    }
    assert_eq!(spikes, expected);
    let fired = spikes.iter().filter(|&&o| o == 1.0).count();
    assert!(
        fired > steps * m / 10 && fired < steps * m * 9 / 10,
        "{fired}"
    );
    // The composed kernel offers none: models fall back to `forward`.
    let composed = AlifSpec {
        kernel: Impl::Composed,
        ..spec
    };
    let layer = composed.build("c", &mut store).unwrap();
    assert!(layer.host_step(&store).unwrap().is_none());
}

#[test]
fn host_step_backward_matches_the_composed_twin() {
    // BPTT of the host step (what fused model kernels train with) against
    // the dfdx-composed neuron, for time-varying and repeated inputs, both
    // windows, a reset that carries gradient and one that does not.
    let (steps, m) = (6, 203);
    let mut rng = snn_core::init::rng(9);
    let x = snn_core::init::uniform(&mut rng, steps * m, -0.4, 0.9);
    let c = snn_core::init::uniform(&mut rng, steps * m, -1.0, 1.0);
    let repeated: Vec<f32> = (0..steps).flat_map(|_| x[..m].to_vec()).collect();
    for detach_reset in [false, true] {
        for window_center in [WindowCenter::Threshold, WindowCenter::Membrane] {
            let spec = AlifSpec {
                surrogate: Surrogate::Sigmoid { alpha: 4.0 },
                window_center,
                detach_reset,
                ..Default::default()
            };
            let composed = AlifSpec {
                kernel: Impl::Composed,
                ..spec.clone()
            };
            let dev = device::create(0).unwrap();
            let mut store = ParamStore::new(dev);
            let step = spec
                .build("n", &mut store)
                .unwrap()
                .host_step(&store)
                .unwrap();
            let step = step.expect("LIF family has a host step");
            let keys = step.param_keys().expect("and a backward pass");
            assert_eq!(keys, ["n.tau", "n.v_th"]);
            let tag = format!("{window_center:?} detach {detach_reset}");
            for input in [&x[..], &x[..m]] {
                let is_static = input.len() == m;
                let full = if is_static { &repeated[..] } else { input };
                let want = run(&composed, full, steps, &c);
                let mut gx = vec![0.25f32; input.len()];
                let g = step.backward(input, steps, &c, &mut gx);
                let mut want_x = want.x.clone();
                if is_static {
                    want_x = (0..m)
                        .map(|i| (0..steps).map(|t| want.x[t * m + i]).sum())
                        .collect();
                }
                let want_x: Vec<f32> = want_x.iter().map(|v| v + 0.25).collect();
                assert_all_close(&format!("dx {tag} static {is_static}"), &gx, &want_x, 1e-5);
                assert!(
                    close(g[0] as f32, want.tau, 1e-5),
                    "{tag}: {g:?} {}",
                    want.tau
                );
                assert!(
                    close(g[1] as f32, want.v_th, 1e-5),
                    "{tag}: {g:?} {}",
                    want.v_th
                );
            }
        }
    }
}

#[test]
fn decay_input_charge_matches_hand_derived_values_and_tangent_gradients() {
    // tau 0.5, v_th 1, u = h + (x - h) / 2: u = 0.75, 0.875, 1.6875 (fire),
    // then from h = 0: 0.125. All exact in binary.
    let x = [1.5, 1.0, 2.5, 0.25];
    let (u, o) = simulate(&x, 4, 1, (Charge::DecayInput, 0.5, 1.0));
    assert_eq!(u, vec![0.75, 0.875, 1.6875, 0.125]);
    assert_eq!(o, vec![0.0, 0.0, 1.0, 0.0]);
    // Gradients on a firing multi-neuron case, fused and composed, with
    // and without the reset detached, against the unrolled tangent
    // reference written directly in the authors' form.
    let steps = 5;
    let x: Vec<f32> = (0..steps * 3)
        .map(|k| 0.9 * ((k as f32) * 1.3).sin() + 0.45)
        .collect();
    let c: Vec<f32> = (0..x.len()).map(|k| 0.5 - 0.11 * k as f32).collect();
    let (tau, vth) = (0.6f32, 0.5f32);
    let (_, o) = simulate(&x, steps, 3, (Charge::DecayInput, tau, vth));
    assert!(o.iter().sum::<f32>() >= 3.0, "the case must fire: {o:?}");
    let s = Surrogate::Rectangular { width: 1.0 };
    for detach_reset in [false, true] {
        let (gx, gtau, gvth) = tangent_reference_charged(
            &x,
            steps,
            &c,
            (tau, vth),
            &|u| s.grad(u - vth),
            detach_reset,
            Charge::DecayInput,
        );
        assert!(gtau.abs() > 1e-3, "the case must exercise dtau: {gtau}");
        for kernel in [Impl::Auto, Impl::Composed] {
            let spec = AlifSpec {
                tau,
                v_th: vth,
                detach_reset,
                charge: Charge::DecayInput,
                kernel,
                ..Default::default()
            };
            let g = run(&spec, &x, steps, &c);
            let tag = format!("{kernel:?} detach={detach_reset}");
            assert_eq!(g.spikes, o, "{tag}");
            assert_all_close(&format!("dx {tag}"), &g.x, &gx, 1e-5);
            assert!(close(g.tau, gtau, 1e-5), "dtau {tag}: {} vs {gtau}", g.tau);
            assert!(
                close(g.v_th, gvth, 1e-5),
                "dvth {tag}: {} vs {gvth}",
                g.v_th
            );
        }
    }
}

#[test]
fn sigmoid_tau_starts_at_tau_and_its_gradient_is_the_chain_rule() {
    // tau = sigmoid(w), w = logit(0.5) = 0: the same dynamics as tau 0.5,
    // and dL/dw = dL/dtau * tau (1 - tau) = dL/dtau / 4, in both forms.
    let steps = 4;
    let x = [0.3, 0.8, -0.2, 0.6, 0.9, 0.1, 0.4, 0.7];
    let c = [1.0, -0.5, 0.25, 2.0, -1.0, 0.5, 1.5, -0.75];
    for charge in [Charge::Paper, Charge::DecayInput] {
        for kernel in [Impl::Auto, Impl::Composed] {
            let raw = AlifSpec {
                tau: 0.5,
                v_th: 0.3,
                charge,
                kernel,
                ..Default::default()
            };
            let sig = AlifSpec {
                tau_param: TauParam::Sigmoid,
                ..raw.clone()
            };
            let (a, b) = (run(&raw, &x, steps, &c), run(&sig, &x, steps, &c));
            let tag = format!("{charge:?} {kernel:?}");
            assert_eq!(a.spikes, b.spikes, "{tag}");
            assert_eq!(a.x, b.x, "{tag}");
            assert!(a.tau.abs() > 1e-3, "{tag}: the case must exercise dtau");
            assert!(
                close(b.tau, a.tau * 0.25, 1e-6),
                "{tag}: {} vs {}",
                b.tau,
                a.tau / 4.0
            );
            assert_eq!(a.v_th, b.v_th, "{tag}");
        }
    }
    // The stored value is the logit; the reported constant is tau.
    let dev = device::create(0).unwrap();
    let mut store = ParamStore::new(dev);
    let spec = AlifSpec {
        tau: 0.25,
        tau_param: TauParam::Sigmoid,
        ..Default::default()
    };
    let n = spec.build("n", &mut store).unwrap();
    let w = store.values("n.tau_logit").unwrap()[0];
    assert!((w - (1.0f32 / 3.0).ln()).abs() < 1e-6, "{w}");
    let tau = n.constants(&store).unwrap()[0].1;
    assert!((tau - 0.25).abs() < 1e-6, "{tau}");
}

#[test]
fn host_step_backward_follows_the_charge_form_and_tau_parametrisation() {
    // The fused spike + pool kernels train through HostStep::backward;
    // it must give the tangent reference's gradients, dL/dw for a
    // sigmoid-parametrised tau.
    let (steps, m) = (5, 3);
    let x: Vec<f32> = (0..steps * m)
        .map(|k| 0.8 * ((k as f32) * 0.9).cos() + 0.4)
        .collect();
    let c: Vec<f32> = (0..x.len()).map(|k| 0.7 - 0.09 * k as f32).collect();
    let s = Surrogate::Rectangular { width: 1.0 };
    for charge in [Charge::Paper, Charge::DecayInput] {
        for tau_param in [TauParam::Raw, TauParam::Sigmoid] {
            let spec = AlifSpec {
                tau: 0.5,
                v_th: 0.4,
                charge,
                tau_param,
                ..Default::default()
            };
            let dev = device::create(0).unwrap();
            let mut store = ParamStore::new(dev);
            let n = spec.build("n", &mut store).unwrap();
            let step = n.host_step(&store).unwrap().unwrap();
            let mut gx = vec![0.0f32; x.len()];
            let g = step.backward(&x, steps, &c, &mut gx);
            let (rx, rtau, rvth) = tangent_reference_charged(
                &x,
                steps,
                &c,
                (0.5, 0.4),
                &|u| s.grad(u - 0.4),
                false,
                charge,
            );
            let slope = if tau_param == TauParam::Sigmoid {
                0.25
            } else {
                1.0
            };
            let tag = format!("{charge:?} {tau_param:?}");
            assert_all_close(&format!("dx {tag}"), &gx, &rx, 1e-5);
            assert!(
                close(g[0] as f32, rtau * slope, 1e-5),
                "dtau {tag}: {} vs {}",
                g[0],
                rtau * slope
            );
            assert!(close(g[1] as f32, rvth, 1e-5), "dvth {tag}");
        }
    }
}

#[test]
fn host_step_backward_in_place_equals_backward_wherever_the_rows_lie() {
    // The fused batch norm + neuron kernel hands the neuron one chunk of
    // neurons of its output gradient, rows apart in memory, to overwrite
    // with the input's gradient. The ALIF override and the trait's default
    // (gather, `backward`, scatter) must both give `backward`'s values
    // exactly, and touch nothing between the rows.
    use snn_core::spec::HostStep;
    struct DefaultInPlace(Box<dyn HostStep>);
    impl HostStep for DefaultInPlace {
        fn step(&self, x: &[f32], state: &mut [f32], spikes: &mut [f32]) {
            self.0.step(x, state, spikes)
        }
        fn param_keys(&self) -> Option<Vec<String>> {
            self.0.param_keys()
        }
        fn backward(&self, x: &[f32], steps: usize, g: &[f32], g_x: &mut [f32]) -> Vec<f64> {
            self.0.backward(x, steps, g, g_x)
        }
    }
    // 11 neurons: one group of 8 lanes and a tail of 3 done one by one.
    let (steps, m) = (6, 11);
    let x: Vec<f32> = (0..steps * m)
        .map(|k| 0.8 * ((k as f32) * 0.7).sin() + 0.3)
        .collect();
    let c: Vec<f32> = (0..x.len()).map(|k| 0.6 - 0.05 * k as f32).collect();
    let dev = device::create(0).unwrap();
    let mut store = ParamStore::new(dev);
    let spec = AlifSpec {
        tau: 0.5,
        v_th: 0.3,
        ..Default::default()
    };
    let n = spec.build("n", &mut store).unwrap();
    let step = n.host_step(&store).unwrap().unwrap();
    let mut gx = vec![0.0f32; x.len()];
    let g = step.backward(&x, steps, &c, &mut gx);
    assert!(gx.iter().any(|v| *v != 0.0) && g.iter().all(|v| *v != 0.0));
    let default = DefaultInPlace(n.host_step(&store).unwrap().unwrap());
    for (which, kernel) in [("override", &*step), ("default", &default as &dyn HostStep)] {
        // Each row at the front of a row twice as long; the rest is a sentinel.
        let mut buf = vec![7.0f32; steps * 2 * m];
        for (row, src) in buf.chunks_mut(2 * m).zip(c.chunks(m)) {
            row[..m].copy_from_slice(src);
        }
        let mut rows: Vec<&mut [f32]> = buf.chunks_mut(2 * m).map(|r| &mut r[..m]).collect();
        let g_in_place = kernel.backward_in_place(&x, &mut rows);
        assert_eq!(g_in_place, g, "{which}: parameter gradients");
        for (t, row) in buf.chunks(2 * m).enumerate() {
            assert_eq!(
                &row[..m],
                &gx[t * m..(t + 1) * m],
                "{which}: input gradient, step {t}"
            );
            assert!(
                row[m..].iter().all(|v| *v == 7.0),
                "{which}: wrote between rows"
            );
        }
    }
}
#[test]
fn a_tau_that_is_not_a_decay_factor_is_refused() {
    let dev = device::create(0).unwrap();
    for (tau, param) in [
        (7.0, TauParam::Raw),
        (-0.1, TauParam::Raw),
        (1.0, TauParam::Sigmoid),
    ] {
        let mut store = ParamStore::new(dev.clone());
        let spec = LifSpec {
            tau,
            tau_param: param,
            ..Default::default()
        };
        let e = spec.build("n", &mut store).unwrap_err().to_string();
        assert!(
            e.contains("neuron.tau") && e.contains("not a decay factor"),
            "{e}"
        );
    }
}
