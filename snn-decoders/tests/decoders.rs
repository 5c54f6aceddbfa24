//! Decoder values against hand computations, TAID gradients against finite
//! differences.

use snn_core::dfdx::prelude::*;
use snn_core::init::{self, Rng};
use snn_core::spec::{DecoderInput, DecoderSpec};
use snn_core::{device, ParamStore};
use snn_decoders::{LastMembraneSpec, MeanRateSpec, Mixing, Reduce, Squeeze, TaidInit, TaidSpec};

type Shape5 = (usize, usize, usize, usize, usize);

/// `[n, c, h, w]` values in channels-last order `[n, h, w, c]`.
fn channels_last(v: &[f32], (n, c, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    assert_eq!(v.len(), n * c * h * w);
    let mut out = vec![0.0; v.len()];
    for (i, x) in v.iter().enumerate() {
        let (p, ci) = (i % (h * w), (i / (h * w)) % c);
        out[(i / (c * h * w) * h * w + p) * c + ci] = *x;
    }
    out
}

/// The inverse of [`channels_last`].
fn channels_first(v: &[f32], (n, c, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    assert_eq!(v.len(), n * c * h * w);
    let mut out = vec![0.0; v.len()];
    for (i, x) in v.iter().enumerate() {
        let (ci, p) = (i % c, (i / c) % (h * w));
        out[(i / (c * h * w) * c + ci) * h * w + p] = *x;
    }
    out
}

/// Decodes host data; returns the output and, for loss `sum(out * c)`, the
/// gradients of the input and of the decoder's weight (if it has one).
/// Values are written and returned channels-first (`shape` is
/// `[T, B, C, H, W]`, as the hand computations read); the decoder itself
/// sees the channels-last `[T, B, H, W, C]` it is given in the models.
fn decode(
    spec: &dyn DecoderSpec,
    shape: Shape5,
    data: &[f32],
    weight: Option<&[f32]>,
    c: &[f32],
) -> (Vec<f32>, Vec<f32>, Option<Vec<f32>>) {
    let (t, b, ch, h, w) = shape;
    let seq = (t * b, ch, h, w);
    let img = (b, ch, h, w);
    let dev = device::create(0).unwrap();
    let mut store = ParamStore::new(dev.clone());
    let mut rng: Rng = init::rng(0);
    store
        .insert("s", &[data.len()], channels_last(data, seq), true)
        .unwrap();
    let input = DecoderInput {
        time_steps: t,
        channels: ch,
    };
    let dec = spec.build("d", input, &mut store, &mut rng).unwrap();
    if let Some(wt) = weight {
        store.set_values("d.weight", wt.to_vec()).unwrap();
    }
    let grads = store.new_grads().unwrap();
    let (s, _) = store.taped("s").unwrap().split_tape();
    let s = s.traced(grads).reshape_like(&(t, b, h, w, ch));
    let out = dec.forward(s, &store).unwrap();
    let out_shape = *out.shape();
    assert_eq!(out_shape, (b, h, w, ch));
    let values = channels_first(&out.retaped::<NoneTape>().as_vec(), img);
    let cw = dev.tensor_from_vec(channels_last(c, img), out_shape);
    let g = (out * cw).sum::<Rank0, _>().backward();
    let gs = channels_first(&store.grad(&g, "s").unwrap().as_vec(), seq);
    let gw = store
        .contains("d.weight")
        .then(|| store.grad(&g, "d.weight").unwrap().as_vec());
    (values, gs, gw)
}

#[test]
fn layout_conversions_invert_each_other() {
    // [1, 2, 1, 2] channels-first (c0: 1 2, c1: 3 4) is (1 3) (2 4) last.
    let v = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(channels_last(&v, (1, 2, 1, 2)), vec![1.0, 3.0, 2.0, 4.0]);
    let r: Vec<f32> = (0..60).map(|i| i as f32).collect();
    let sh = (2, 3, 2, 5);
    assert_eq!(channels_first(&channels_last(&r, sh), sh), r);
}

fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

#[test]
fn mean_rate_is_the_time_average() {
    // T = 4, one pixel pair: spikes 1,0,1,1 and 0,0,0,1.
    let data = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0];
    let (out, gs, _) = decode(&MeanRateSpec {}, (4, 1, 1, 1, 2), &data, None, &[1.0, 2.0]);
    assert_eq!(out, vec![0.75, 0.25]);
    assert_eq!(gs, vec![0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 0.25, 0.5]);
}

#[test]
fn last_membrane_weights_late_steps_most() {
    let spec = LastMembraneSpec { decay: 0.5 };
    let (out, gs, _) = decode(&spec, (3, 1, 1, 1, 1), &[1.0, 2.0, 4.0], None, &[1.0]);
    // 1 * 0.25 + 2 * 0.5 + 4 * 1
    assert_eq!(out, vec![5.25]);
    assert_eq!(gs, vec![0.25, 0.5, 1.0]);
}

#[test]
fn taid_with_zero_weights_halves_the_time_sum() {
    // sigmoid(0) = 1/2 at every step: sum-reduce gives half the time sum.
    let spec = TaidSpec {
        init: TaidInit::Zeros,
        ..Default::default()
    };
    let data = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]; // [T=2, B=1, C=2, 1, 2]
    let (out, _, _) = decode(&spec, (2, 1, 2, 1, 2), &data, None, &[1.0; 4]);
    assert_eq!(out, vec![0.5, 0.5, 1.0, 1.0]);
}

#[test]
fn taid_authors_variant_matches_hand_computation() {
    // T = 2, B = 1, C = 2, H = 1, W = 2.
    // S[0] = c0: (1, 0), c1: (1, 1);  S[1] = c0: (0, 1), c1: (0, 0).
    // X[t, c] = means: X[0] = (0.5, 1), X[1] = (0.5, 0).
    // W = [[1, 0], [2, -1]]: Z[0] = X[0] = (0.5, 1); Z[1] = 2 X[0] - X[1] = (0.5, 2).
    // out[c] = sum_t sigmoid(Z[t, c]) S[t, c].
    let s = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0];
    let w = [1.0, 0.0, 2.0, -1.0];
    let sig = |z: f32| 1.0 / (1.0 + (-z).exp());
    let expect = [
        sig(0.5) * 1.0 + sig(0.5) * 0.0,
        sig(0.5) * 0.0 + sig(0.5) * 1.0,
        sig(1.0) * 1.0,
        sig(1.0) * 1.0,
    ];
    let (out, _, _) = decode(
        &TaidSpec::default(),
        (2, 1, 2, 1, 2),
        &s,
        Some(&w),
        &[1.0; 4],
    );
    assert_close("taid", &out, &expect, 1e-6);
}

#[test]
fn taid_paper_variant_matches_hand_computation() {
    // squeeze chw, diagonal weights, mean over T.
    // X[0] = mean(1,0,1,1) = 0.75, X[1] = mean(0,1,0,0) = 0.25; w = (2, -4).
    // F = sigmoid(1.5), sigmoid(-1); out = (F0 S[0] + F1 S[1]) / 2.
    let spec = TaidSpec {
        squeeze: Squeeze::Chw,
        mixing: Mixing::Diagonal,
        reduce: Reduce::Mean,
        init: TaidInit::Torch,
    };
    let s = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0];
    let sig = |z: f32| 1.0 / (1.0 + (-z).exp());
    let (f0, f1) = (sig(1.5), sig(-1.0));
    let expect = [f0 / 2.0, f1 / 2.0, f0 / 2.0, f0 / 2.0];
    let (out, _, _) = decode(&spec, (2, 1, 2, 1, 2), &s, Some(&[2.0, -4.0]), &[1.0; 4]);
    assert_close("taid paper", &out, &expect, 1e-6);
}

#[test]
fn taid_gradients_match_finite_differences() {
    let shape: Shape5 = (4, 2, 3, 2, 2);
    let n = 4 * 2 * 3 * 2 * 2;
    let mut rng = init::rng(3);
    let s = init::uniform(&mut rng, n, -1.0, 1.0);
    let c = init::uniform(&mut rng, 2 * 3 * 2 * 2, -1.0, 1.0);
    let variants = [
        TaidSpec::default(),
        TaidSpec {
            squeeze: Squeeze::Chw,
            mixing: Mixing::Diagonal,
            reduce: Reduce::Mean,
            init: TaidInit::Torch,
        },
        TaidSpec {
            squeeze: Squeeze::Hw,
            mixing: Mixing::Diagonal,
            reduce: Reduce::Sum,
            init: TaidInit::Torch,
        },
    ];
    for spec in variants {
        let wn = if spec.mixing == Mixing::Full { 16 } else { 4 };
        let w = init::uniform(&mut rng, wn, -1.5, 1.5);
        let loss = |s: &[f32], w: &[f32]| -> f64 {
            let (out, _, _) = decode(&spec, shape, s, Some(w), &c);
            out.iter()
                .zip(&c)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        let (_, gs, gw) = decode(&spec, shape, &s, Some(&w), &c);
        let gw = gw.unwrap();
        let eps = 1e-2f32;
        let fd_w: Vec<f32> = (0..wn)
            .map(|k| {
                let (mut wp, mut wm) = (w.clone(), w.clone());
                wp[k] += eps;
                wm[k] -= eps;
                ((loss(&s, &wp) - loss(&s, &wm)) / (2.0 * eps as f64)) as f32
            })
            .collect();
        assert_close(&format!("dW {spec:?}"), &gw, &fd_w, 2e-3);
        let fd_s: Vec<f32> = (0..n)
            .step_by(7)
            .map(|k| {
                let (mut sp, mut sm) = (s.clone(), s.clone());
                sp[k] += eps;
                sm[k] -= eps;
                ((loss(&sp, &w) - loss(&sm, &w)) / (2.0 * eps as f64)) as f32
            })
            .collect();
        let gs_sub: Vec<f32> = gs.iter().step_by(7).copied().collect();
        assert_close(&format!("dS {spec:?}"), &gs_sub, &fd_s, 2e-3);
    }
}

#[test]
fn decoders_load_from_toml_by_type() {
    for (text, want) in [
        ("type = \"mean-rate\"", "MeanRateSpec"),
        ("type = \"taid\"\nsqueeze = \"chw\"", "TaidSpec"),
        ("type = \"last-membrane\"\ndecay = 0.9", "LastMembraneSpec"),
    ] {
        let spec: Box<dyn DecoderSpec> = toml::from_str(text).unwrap();
        assert!(format!("{spec:?}").starts_with(want), "{spec:?}");
    }
    let bad: Result<Box<dyn DecoderSpec>, _> = toml::from_str("type = \"taid\"\nsqueez = \"hw\"");
    assert!(bad.unwrap_err().to_string().contains("squeez"));
}
