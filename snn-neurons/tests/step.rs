//! The machinery every neuron step gets: the backward pass derived with
//! dual numbers against LIF's hand-written one, and the eight-lane kernels
//! against one neuron at a time.

use snn_core::spec::HostStep;
use snn_core::step::{HostNum, NeuronStep, Num};
use snn_neurons::step::HostRun;
use snn_neurons::{Charge, LifStep, Surrogate, TauParam, WindowCenter};
use std::sync::Arc;

/// LIF without its hand-written backward step: the trait's default, derived
/// from the step on dual numbers, runs instead.
#[derive(Debug)]
struct DerivedLif(LifStep);

impl NeuronStep for DerivedLif {
    fn constants<N: Num>(&self, p: &[N]) -> Vec<N> {
        self.0.constants(p)
    }

    fn step<N: Num>(&self, k: &[N], state: &mut [N], x: N) -> N {
        self.0.step(k, state, x)
    }
}

fn lif_variants() -> Vec<LifStep> {
    let mut out = Vec::new();
    for surrogate in [
        Surrogate::Rectangular { width: 1.0 },
        Surrogate::Sigmoid { alpha: 4.0 },
        Surrogate::Atan { alpha: 2.0 },
    ] {
        for window in [WindowCenter::Threshold, WindowCenter::Membrane] {
            for detach_reset in [false, true] {
                for charge in [Charge::Paper, Charge::DecayInput] {
                    for tau_param in [TauParam::Raw, TauParam::Sigmoid] {
                        out.push(LifStep {
                            surrogate,
                            window,
                            detach_reset,
                            charge,
                            tau_param,
                        });
                    }
                }
            }
        }
    }
    out
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn derived_backward_equals_the_hand_written_lif_backward() {
    // 29 neurons: three 8-lane groups and a tail of 5, so both the lane and
    // the one-at-a-time paths run; time-varying and repeated inputs.
    let (steps, n) = (6, 29);
    let mut rng = snn_core::init::rng(3);
    let x = snn_core::init::uniform(&mut rng, steps * n, -0.4, 1.0);
    let g = snn_core::init::uniform(&mut rng, steps * n, -1.0, 1.0);
    let keys = || vec!["tau".to_string(), "v_th".to_string()];
    for lif in lif_variants() {
        let stored_tau = match lif.tau_param {
            TauParam::Raw => 0.6,
            TauParam::Sigmoid => 0.4,
        };
        let params = [stored_tau, 0.5];
        let hand = HostRun::new(Arc::new(lif), &params, keys());
        let derived = HostRun::new(Arc::new(DerivedLif(lif)), &params, keys());
        for input in [&x[..], &x[..n]] {
            let (mut gx_hand, mut gx_derived) = (vec![0.0; input.len()], vec![0.0; input.len()]);
            let p_hand = hand.backward(input, steps, &g, &mut gx_hand);
            let p_derived = derived.backward(input, steps, &g, &mut gx_derived);
            let tag = format!("{lif:?} static={}", input.len() == n);
            for (i, (a, b)) in gx_hand.iter().zip(&gx_derived).enumerate() {
                assert!(
                    close(*a as f64, *b as f64, 1e-5),
                    "dx[{i}] {tag}: {a} vs {b}"
                );
            }
            for (a, b) in p_hand.iter().zip(&p_derived) {
                assert!(close(*a, *b, 1e-5), "dparam {tag}: {a} vs {b}");
            }
            assert!(gx_hand.iter().any(|v| *v != 0.0), "{tag}");
        }
    }
}

#[test]
fn lanes_and_single_neurons_compute_the_same_bits() {
    // The same neuron in lane 3 of a group and alone in a tail must agree
    // exactly, forward and backward, for every variant.
    let lif = LifStep {
        surrogate: Surrogate::Triangle { width: 1.5 },
        window: WindowCenter::Threshold,
        detach_reset: false,
        charge: Charge::DecayInput,
        tau_param: TauParam::Sigmoid,
    };
    let k = lif.constants(&[0.3f32, 0.45]);
    let k8: Vec<snn_core::step::Lanes> = k.iter().map(|&c| HostNum::splat(c)).collect();
    let mut rng = snn_core::init::rng(9);
    let xs = snn_core::init::uniform(&mut rng, 40, -0.5, 1.2);
    let (mut s1, mut s8) = ([0.0f32], [snn_core::step::Lanes([0.0; 8])]);
    for t in 0..5 {
        let row = &xs[t * 8..t * 8 + 8];
        // This step's backward pass starts from the state before it.
        let (before1, before8) = (s1, s8);
        let o8 = lif.step(&k8, &mut s8, snn_core::step::Lanes::load(row));
        let o1 = lif.step(&k, &mut s1, row[3]);
        assert_eq!((o8.lane(3), s8[0].lane(3)), (o1, s1[0]), "step {t}");
        let (mut g1, mut g8) = ([0.25f32], [HostNum::splat(0.25)]);
        let (mut gk1, mut gk8) = (vec![0.0f32; 3], vec![snn_core::step::Lanes([0.0; 8]); 3]);
        let gx1 = lif.step_backward(&k, &before1, row[3], 0.5, &mut g1, &mut gk1);
        let gx8 = lif.step_backward(
            &k8,
            &before8,
            HostNum::load(row),
            HostNum::splat(0.5),
            &mut g8,
            &mut gk8,
        );
        assert_eq!(gx8.lane(3), gx1);
        assert_eq!(g8[0].lane(3), g1[0]);
        for (a, b) in gk8.iter().zip(&gk1) {
            assert_eq!(a.lane(3), *b);
        }
    }
}
