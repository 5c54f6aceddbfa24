//! Layer values against hand computations and an independent naive
//! reference; input and weight gradients against finite differences.

use snn_core::dfdx::prelude::*;
use snn_core::init::{self, Rng, WeightInit};
use snn_core::spec::Forward;
use snn_core::ParamStore;
use snn_nn::{pool, BatchNorm, Conv2dConfig, Dropout, Impl, LinearConfig};

use snn_nn::testing::{check_fd, input, loss_and_grads, store_with, S4};

fn rng() -> Rng {
    init::rng(11)
}

#[test]
fn conv_matches_hand_case() {
    // 3x3 input 1..9, 2x2 kernel [[1, 0], [0, -1]], stride 1, no padding:
    // each output is x[i][j] - x[i+1][j+1] = -4.
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut store = store_with(&x);
    let conv = Conv2dConfig {
        in_channels: 1,
        out_channels: 1,
        kernel: 2,
        stride: 1,
        padding: 0,
        bias: false,
        weight_init: WeightInit::Torch,
    }
    .init(&mut store.scope("c"), &mut rng())
    .unwrap();
    store
        .set_values("c.weight", vec![1.0, 0.0, 0.0, -1.0])
        .unwrap();
    let y = conv.forward(input(&store, (1, 3, 3, 1)), &store).unwrap();
    assert_eq!(*y.shape(), (1, 2, 2, 1));
    assert_eq!(y.retaped::<NoneTape>().as_vec(), vec![-4.0; 4]);
}

/// Naive direct convolution, NHWC input, HWIO weight, `o` output
/// channels, kernel `k`, stride `s`, padding `p`.
fn naive_conv(x: &[f32], (n, h, w, c): S4, wt: &[f32], (o, k, s, p): S4) -> Vec<f32> {
    let ho = (h + 2 * p - k) / s + 1;
    let wo = (w + 2 * p - k) / s + 1;
    let mut y = vec![0.0f32; n * ho * wo * o];
    for b in 0..n {
        for oy in 0..ho {
            for ox in 0..wo {
                for oc in 0..o {
                    let mut acc = 0.0f64;
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * s + ky) as isize - p as isize;
                            let ix = (ox * s + kx) as isize - p as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            for ic in 0..c {
                                let xv = x[((b * h + iy as usize) * w + ix as usize) * c + ic];
                                let wv = wt[((ky * k + kx) * c + ic) * o + oc];
                                acc += (xv * wv) as f64;
                            }
                        }
                    }
                    y[((b * ho + oy) * wo + ox) * o + oc] = acc as f32;
                }
            }
        }
    }
    y
}

#[test]
fn conv_matches_naive_reference_and_finite_differences() {
    for (k, s, p) in [(3, 1, 1), (3, 2, 1), (2, 2, 0), (3, 1, 0)] {
        let shape = (2, 5, 6, 2);
        let mut r = rng();
        let x = init::uniform(&mut r, 2 * 5 * 6 * 2, -1.0, 1.0);
        let mut store = store_with(&x);
        let conv = Conv2dConfig {
            in_channels: 2,
            out_channels: 3,
            kernel: k,
            stride: s,
            padding: p,
            bias: true,
            weight_init: WeightInit::Torch,
        }
        .init(&mut store.scope("c"), &mut r)
        .unwrap();
        let y = conv.forward(input(&store, shape), &store).unwrap();
        let yshape = *y.shape();
        let wt = store.values("c.weight").unwrap();
        let bias = store.values("c.bias").unwrap();
        let mut want = naive_conv(&x, shape, &wt, (3, k, s, p));
        for (i, v) in want.iter_mut().enumerate() {
            *v += bias[i % 3];
        }
        let got = y.retaped::<NoneTape>().as_vec();
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "k{k}s{s}p{p}: {a} vs {b}");
        }
        let n_out = yshape.0 * yshape.1 * yshape.2 * yshape.3;
        let c = init::uniform(&mut r, n_out, -1.0, 1.0);
        let f =
            |st: &ParamStore| loss_and_grads(st, conv.forward(input(st, shape), st).unwrap(), &c);
        check_fd(&store, &f, 1e-2, 2e-3);
    }
}

#[test]
fn linear_matches_hand_case_and_finite_differences() {
    let mut store = store_with(&[1.0, 2.0, -1.0, 0.5]);
    let fc = LinearConfig {
        inputs: 2,
        outputs: 3,
        bias: true,
        weight_init: WeightInit::Torch,
    }
    .init(&mut store.scope("fc"), &mut rng())
    .unwrap();
    // W [in=2, out=3] = [[1, 2, 3], [4, 5, 6]], b = (0.5, 0, -1)
    store
        .set_values("fc.weight", vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        .unwrap();
    store.set_values("fc.bias", vec![0.5, 0.0, -1.0]).unwrap();
    let run = |st: &ParamStore| {
        let (x, _) = st.taped("x").unwrap().split_tape();
        let x = x.traced(st.new_grads().unwrap()).reshape_like(&(2, 2));
        fc.forward(x, st).unwrap().reshape_like(&(2, 1, 1, 3))
    };
    let y = run(&store).retaped::<NoneTape>().as_vec();
    // row 1: (1 + 8 + 0.5, 2 + 10, 3 + 12 - 1); row 2: (-1 + 2 + 0.5, -2 + 2.5, -3 + 3 - 1)
    assert_eq!(y, vec![9.5, 12.0, 14.0, 1.5, 0.5, -1.0]);
    let c = [0.3, -0.7, 1.1, 0.9, 0.2, -0.4];
    check_fd(&store, &|st| loss_and_grads(st, run(st), &c), 1e-2, 1e-3);
}

#[test]
fn batchnorm_normalises_and_tracks_running_stats() {
    // One channel, values 1..4: mean 2.5, biased var 1.25, unbiased 5/3;
    // the CPU kernel and the composed twin alike.
    for kernel in [Impl::Auto, Impl::Composed] {
        let mut store = store_with(&[1.0, 2.0, 3.0, 4.0]);
        let mut bn = BatchNorm::new(&mut store.scope("bn"), 1).unwrap();
        bn.kernel_impl = kernel;
        let mut r = rng();
        let mut fwd = Forward::new(&store, true, &mut r);
        let y = bn.forward(input(&store, (4, 1, 1, 1)), &mut fwd).unwrap();
        let sd = (1.25f32 + 1e-5).sqrt();
        let want: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .map(|v| (v - 2.5) / sd)
            .collect();
        for (a, b) in y.retaped::<NoneTape>().as_vec().iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{kernel:?}: {a} vs {b}");
        }
        let updates = std::mem::take(&mut fwd.updates);
        drop(fwd);
        Forward::apply_updates(updates, &mut store).unwrap();
        let rm = store.values("bn.running_mean").unwrap()[0];
        let rv = store.values("bn.running_var").unwrap()[0];
        assert!((rm - 0.25).abs() < 1e-6, "{kernel:?}: {rm}");
        assert!(
            (rv - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6,
            "{kernel:?}: {rv}"
        );
        // Evaluation uses the running statistics.
        let mut fwd = Forward::new(&store, false, &mut r);
        let y = bn.forward(input(&store, (4, 1, 1, 1)), &mut fwd).unwrap();
        let v = y.retaped::<NoneTape>().as_vec();
        assert!((v[0] - (1.0 - rm) / (rv + 1e-5).sqrt()).abs() < 1e-6);
    }
}

#[test]
fn batchnorm_gradients_match_finite_differences() {
    let mut r = rng();
    let shape = (3, 2, 2, 3);
    let x = init::uniform(&mut r, 36, -2.0, 2.0);
    let mut store = store_with(&x);
    let bn = BatchNorm::new(&mut store.scope("bn"), 3).unwrap();
    store.set_values("bn.weight", vec![1.5, -0.5, 0.8]).unwrap();
    store.set_values("bn.bias", vec![0.1, 0.2, -0.3]).unwrap();
    let c = init::uniform(&mut r, 36, -1.0, 1.0);
    let f = |st: &ParamStore| {
        let mut rr = rng();
        let mut fwd = Forward::new(st, true, &mut rr);
        let y = bn.forward(input(st, shape), &mut fwd).unwrap();
        loss_and_grads(st, y, &c)
    };
    check_fd(&store, &f, 1e-2, 3e-3);
}

#[test]
fn max_pool_picks_first_maximum_and_routes_gradient_there() {
    // One 2x2 window of tied spikes (1, 1, 0, 1): output 1, gradient only to
    // the first (row-major), as PyTorch. Second channel: distinct values.
    let x = [1.0, 0.2, 1.0, 0.9, 0.0, -1.0, 1.0, 0.5];
    let store = store_with(&x);
    let y = pool::max_pool(input(&store, (1, 2, 2, 2)), 2, Impl::Auto).unwrap();
    assert_eq!(y.retaped::<NoneTape>().as_vec(), vec![1.0, 0.9]);
    let (_, g) = loss_and_grads(&store, y, &[2.0, 3.0]);
    assert_eq!(g[0].1, vec![2.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]);
    assert!(pool::max_pool(input(&store, (1, 2, 2, 2)), 3, Impl::Auto).is_err());
}

#[test]
fn average_pool_and_voting_layer() {
    let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
    let store = store_with(&x);
    let y = pool::avg_pool(input(&store, (1, 2, 2, 2)), 2).unwrap();
    // channel 0: (0 + 2 + 4 + 6) / 4; channel 1: (1 + 3 + 5 + 7) / 4
    assert_eq!(y.retaped::<NoneTape>().as_vec(), vec![3.0, 4.0]);
    let (_, g) = loss_and_grads(&store, y, &[1.0, 2.0]);
    assert_eq!(g[0].1, vec![0.25, 0.5, 0.25, 0.5, 0.25, 0.5, 0.25, 0.5]);
    // Voting: 8 features in groups of 4 -> 2 scores.
    let (xx, _) = store.taped("x").unwrap().split_tape();
    let v = pool::vote(xx.traced(Gradients::leaky()).reshape_like(&(1, 8)), 4).unwrap();
    assert_eq!(v.retaped::<NoneTape>().as_vec(), vec![1.5, 5.5]);
}

#[test]
fn dropout_mask_is_shared_over_time_and_scaled() {
    let steps = 3;
    let (b, f) = (4, 50);
    let x = vec![1.0f32; steps * b * f];
    let store = store_with(&x);
    let dp = Dropout::new(0.5).unwrap();
    let mut r = rng();
    let mut fwd = Forward::new(&store, true, &mut r);
    let y = dp
        .forward(input(&store, (steps * b, 1, 1, f)), steps, &mut fwd)
        .unwrap();
    let v = y.retaped::<NoneTape>().as_vec();
    let per_step = b * f;
    assert_eq!(&v[..per_step], &v[per_step..2 * per_step]);
    assert_eq!(&v[..per_step], &v[2 * per_step..]);
    assert!(v.iter().all(|x| *x == 0.0 || *x == 2.0));
    let kept = v[..per_step].iter().filter(|x| **x == 2.0).count();
    assert!((60..140).contains(&kept), "{kept} of 200 kept at p = 0.5");
    // Evaluation: identity.
    let mut fwd = Forward::new(&store, false, &mut r);
    let y = dp
        .forward(input(&store, (steps * b, 1, 1, f)), steps, &mut fwd)
        .unwrap();
    assert_eq!(y.retaped::<NoneTape>().as_vec(), x);
    assert!(Dropout::new(1.0).is_err());
}

#[test]
fn cpu_conv_kernel_matches_composed_twin() {
    for (c_in, c_out, k, s, p, shape) in [
        (2, 3, 3, 1, 1, (3, 6, 5, 2)),
        (3, 4, 3, 2, 1, (2, 7, 7, 3)),
        (1, 2, 2, 2, 0, (4, 4, 6, 1)),
        (5, 2, 1, 1, 0, (2, 3, 3, 5)),
        // Whole bytes of channels and >= 256 output rows: spike inputs take
        // the table-lookup path (kept bits, dense input gradient).
        (16, 70, 3, 1, 1, (4, 9, 9, 16)),
        (8, 5, 3, 2, 0, (9, 15, 17, 8)),
    ] {
        let mut r = rng();
        for input_values in values_and_spikes(&mut r, shape) {
            let mut store = store_with(&input_values);
            let mut conv = Conv2dConfig {
                in_channels: c_in,
                out_channels: c_out,
                kernel: k,
                stride: s,
                padding: p,
                bias: true,
                weight_init: WeightInit::Torch,
            }
            .init(&mut store.scope("c"), &mut r)
            .unwrap();
            let [kernel, composed] = [Impl::Auto, Impl::Composed].map(|imp| {
                conv.kernel_impl = imp;
                run_layer(&store, conv.forward(input(&store, shape), &store).unwrap())
            });
            assert_twins(&kernel, &composed);
        }
    }
}

/// Values and gradients of a kernel and of its composed twin agree:
/// values to 1e-5 relative, each gradient to 1e-5 of its largest entry (a
/// weight gradient sums hundreds of rows, and both sides are float32 sums
/// in different orders, each ~5e-6 from the float64 value).
type Run = (Vec<f32>, Vec<(String, Vec<f32>)>);

/// Random values for an input of `shape`, and the spike-like inputs made
/// from them: binary values, and spikes after dropout (0 or 2).
fn values_and_spikes(r: &mut Rng, shape: S4) -> [Vec<f32>; 3] {
    let x = init::uniform(r, shape.0 * shape.1 * shape.2 * shape.3, -1.0, 1.0);
    let spikes = x.iter().map(|v| (*v > 0.3) as u8 as f32).collect();
    let dropped = x.iter().map(|v| 2.0 * (*v > -0.5) as u8 as f32).collect();
    [x, spikes, dropped]
}

/// A layer output's values, and the gradients of `sum(y * c)` (`c` fixed
/// random) for every trainable entry of `store`.
fn run_layer(store: &ParamStore, y: snn_nn::Nhwc) -> Run {
    let ys = *y.shape();
    let c = init::uniform(&mut init::rng(5), ys.0 * ys.1 * ys.2 * ys.3, -1.0, 1.0);
    let values = y.retaped::<NoneTape>().as_vec();
    (values, loss_and_grads(store, y, &c).1)
}
fn assert_twins(a: &Run, b: &Run) {
    for (u, v) in a.0.iter().zip(&b.0) {
        assert!((u - v).abs() <= 1e-5 * (1.0 + u.abs()), "value {u} vs {v}");
    }
    for ((na, ga), (nb, gb)) in a.1.iter().zip(&b.1) {
        assert_eq!(na, nb);
        let scale = gb.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (u, v) in ga.iter().zip(gb) {
            assert!((u - v).abs() <= 1e-5 * scale, "{na}: {u} vs {v}");
        }
    }
}

#[test]
fn cpu_max_pool_matches_composed_twin_with_ties() {
    let shape = (3, 6, 4, 5);
    let mut r = rng();
    let raw = init::uniform(&mut r, 3 * 6 * 4 * 5, -1.0, 1.0);
    let spikes: Vec<f32> = raw.iter().map(|v| (*v > 0.0) as u8 as f32).collect();
    let c = init::uniform(&mut r, 3 * 3 * 2 * 5, -1.0, 1.0);
    for x in [raw, spikes] {
        let store = store_with(&x);
        let a = pool::max_pool(input(&store, shape), 2, Impl::Auto).unwrap();
        let b = pool::max_pool_composed(input(&store, shape), 2).unwrap();
        assert_eq!(
            a.retaped::<NoneTape>().as_vec(),
            b.retaped::<NoneTape>().as_vec()
        );
        let (_, ga) = loss_and_grads(&store, a, &c);
        let (_, gb) = loss_and_grads(&store, b, &c);
        assert_eq!(ga, gb);
    }
}

#[test]
fn cpu_batchnorm_kernel_matches_composed_twin() {
    let shape = (4, 3, 5, 6);
    let mut r = rng();
    let x = init::uniform(&mut r, 4 * 3 * 5 * 6, -2.0, 3.0);
    let c = init::uniform(&mut r, 4 * 3 * 5 * 6, -1.0, 1.0);
    for train in [true, false] {
        let mut store = store_with(&x);
        let mut bn = BatchNorm::new(&mut store.scope("bn"), 6).unwrap();
        store
            .set_values("bn.weight", init::uniform(&mut r, 6, 0.5, 1.5))
            .unwrap();
        store
            .set_values("bn.bias", init::uniform(&mut r, 6, -0.5, 0.5))
            .unwrap();
        store
            .set_values("bn.running_mean", init::uniform(&mut r, 6, -0.5, 0.5))
            .unwrap();
        store
            .set_values("bn.running_var", init::uniform(&mut r, 6, 0.5, 2.0))
            .unwrap();
        let mut results = Vec::new();
        for imp in [Impl::Auto, Impl::Composed] {
            bn.kernel_impl = imp;
            let mut rr = rng();
            let mut fwd = Forward::new(&store, train, &mut rr);
            let y = bn.forward(input(&store, shape), &mut fwd).unwrap();
            let updates: Vec<Vec<f32>> = fwd.updates.iter().map(|(_, t)| t.as_vec()).collect();
            drop(fwd);
            let values = y.retaped::<NoneTape>().as_vec();
            let (_, grads) = loss_and_grads(&store, y, &c);
            results.push((values, grads, updates));
        }
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len(), "{what}");
            for (u, v) in a.iter().zip(b) {
                assert!(
                    (u - v).abs() <= 1e-5 * (1.0 + u.abs()),
                    "{what} (train {train}): {u} vs {v}"
                );
            }
        };
        close(&results[0].0, &results[1].0, "values");
        for ((n, ga), (_, gb)) in results[0].1.iter().zip(&results[1].1) {
            close(ga, gb, n);
        }
        assert_eq!(results[0].2.len(), results[1].2.len());
        for (a, b) in results[0].2.iter().zip(&results[1].2) {
            close(a, b, "running stats");
        }
    }
}

#[test]
fn kernels_give_the_same_values_without_gradient_recording() {
    let shape = (2, 6, 6, 3);
    let mut r = rng();
    let x = init::uniform(&mut r, 2 * 6 * 6 * 3, -1.0, 1.0);
    let mut store = store_with(&x);
    let conv = Conv2dConfig {
        in_channels: 3,
        out_channels: 4,
        kernel: 3,
        stride: 1,
        padding: 1,
        bias: false,
        weight_init: WeightInit::Torch,
    }
    .init(&mut store.scope("c"), &mut r)
    .unwrap();
    let bn = BatchNorm::new(&mut store.scope("bn"), 4).unwrap();
    let run = |st: &ParamStore| {
        let mut rr = rng();
        let mut fwd = Forward::new(st, true, &mut rr);
        let y = conv.forward(input(st, shape), st).unwrap();
        let y = bn.forward(y, &mut fwd).unwrap();
        pool::max_pool(y, 2, Impl::Auto)
            .unwrap()
            .retaped::<NoneTape>()
            .as_vec()
    };
    let with = run(&store);
    let without = snn_core::grad::no_grad(|| run(&store));
    assert_eq!(with, without);
}

/// PyTorch's definition of a transposed convolution, NHWC, with our weight
/// layout (the equivalent convolution's kernel, flipped): `o` output
/// channels, kernel `k`, stride `s`, padding `p`, output padding `op`.
fn naive_conv_transpose(
    x: &[f32],
    (n, h, w, c): S4,
    wt: &[f32],
    (o, k, s, p, op): (usize, usize, usize, usize, usize),
) -> (Vec<f32>, usize, usize) {
    let ho = (h - 1) * s + k + op - 2 * p;
    let wo = (w - 1) * s + k + op - 2 * p;
    let mut y = vec![0.0f64; n * ho * wo * o];
    for b in 0..n {
        for iy in 0..h {
            for ix in 0..w {
                for ky in 0..k {
                    for kx in 0..k {
                        let oy = (iy * s + ky) as isize - p as isize;
                        let ox = (ix * s + kx) as isize - p as isize;
                        if oy < 0 || ox < 0 || oy >= ho as isize || ox >= wo as isize {
                            continue;
                        }
                        for ic in 0..c {
                            let xv = x[((b * h + iy) * w + ix) * c + ic] as f64;
                            for oc in 0..o {
                                // torch w[ic, oc, ky, kx] = ours[k-1-ky, k-1-kx, ic, oc]
                                let wv = wt[(((k - 1 - ky) * k + (k - 1 - kx)) * c + ic) * o + oc]
                                    as f64;
                                y[((b * ho + oy as usize) * wo + ox as usize) * o + oc] += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    (y.into_iter().map(|v| v as f32).collect(), ho, wo)
}

#[test]
fn transposed_conv_matches_definition_and_finite_differences() {
    use snn_nn::ConvTranspose2dConfig;
    // FSVAE's upsampling (k3 s2 p1 op1 doubles the size) and a stride-1
    // one, with and without the bias (added inside the CPU kernel).
    let cases = [(3, 2, 1, 1), (3, 1, 1, 0), (2, 2, 0, 0)];
    for ((k, s, p, op), bias) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
        let shape = (2, 3, 4, 2);
        let mut r = rng();
        let x = init::uniform(&mut r, 2 * 3 * 4 * 2, -1.0, 1.0);
        let mut store = store_with(&x);
        let mut ct = ConvTranspose2dConfig {
            in_channels: 2,
            out_channels: 3,
            kernel: k,
            stride: s,
            padding: p,
            output_padding: op,
            bias,
            weight_init: WeightInit::Torch,
        }
        .init(&mut store.scope("ct"), &mut r)
        .unwrap();
        let wt = store.values("ct.weight").unwrap();
        let (mut want, ho, wo) = naive_conv_transpose(&x, shape, &wt, (3, k, s, p, op));
        if bias {
            let b = store.values("ct.bias").unwrap();
            assert!(b.iter().all(|v| *v != 0.0));
            for (i, v) in want.iter_mut().enumerate() {
                *v += b[i % 3];
            }
        }
        assert_eq!(ct.out_size(3, 4), (ho, wo));
        if (k, s, p, op) == (3, 2, 1, 1) {
            assert_eq!((ho, wo), (6, 8), "k3 s2 p1 op1 doubles");
        }
        for imp in [Impl::Auto, Impl::Composed] {
            ct.set_kernel_impl(imp);
            let y = ct.forward(input(&store, shape), &store).unwrap();
            assert_eq!(*y.shape(), (2, ho, wo, 3));
            for (a, b) in y.retaped::<NoneTape>().as_vec().iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "k{k}s{s}p{p}op{op} {imp:?}: {a} vs {b}"
                );
            }
            let c = init::uniform(&mut init::rng(2), 2 * ho * wo * 3, -1.0, 1.0);
            let f =
                |st: &ParamStore| loss_and_grads(st, ct.forward(input(st, shape), st).unwrap(), &c);
            check_fd(&store, &f, 1e-2, 2e-3);
        }
    }
    let mut store = store_with(&[0.0]);
    assert!(ConvTranspose2dConfig {
        in_channels: 1,
        out_channels: 1,
        kernel: 3,
        stride: 2,
        padding: 1,
        output_padding: 2,
        bias: false,
        weight_init: WeightInit::Torch
    }
    .init(&mut store.scope("bad"), &mut rng())
    .is_err());
}

#[test]
fn cpu_transposed_conv_kernel_matches_composed_twin_on_spike_inputs() {
    use snn_nn::ConvTranspose2dConfig;
    // A spike input is kept as bits for the weight gradient and unpacked
    // chunk by chunk in backward. The second shape's columns (32 x 32
    // pixels x 3 x 3 x 64 outputs, 2.4 MB an image) put each image in its
    // own chunk, so rows are unpacked from an offset.
    for (c_in, c_out, stride, shape) in [(3, 5, 2, (2, 5, 4, 3)), (8, 64, 1, (3, 32, 32, 8))] {
        let mut r = rng();
        for input_values in values_and_spikes(&mut r, shape) {
            let mut store = store_with(&input_values);
            let mut ct = ConvTranspose2dConfig {
                in_channels: c_in,
                out_channels: c_out,
                kernel: 3,
                stride,
                padding: 1,
                output_padding: stride - 1,
                bias: true,
                weight_init: WeightInit::Torch,
            }
            .init(&mut store.scope("ct"), &mut r)
            .unwrap();
            let [kernel, composed] = [Impl::Auto, Impl::Composed].map(|imp| {
                ct.set_kernel_impl(imp);
                run_layer(&store, ct.forward(input(&store, shape), &store).unwrap())
            });
            assert_twins(&kernel, &composed);
        }
    }
}

#[test]
fn tdbn_scales_the_normalised_value_by_alpha_vth() {
    // One channel, values 1..4 (mean 2.5, biased var 1.25); alpha 1, V_th 0.2.
    let mut store = store_with(&[1.0, 2.0, 3.0, 4.0]);
    let mut bn = BatchNorm::tdbn(&mut store.scope("td"), 1, 1.0, 0.2).unwrap();
    store.set_values("td.bias", vec![0.5]).unwrap();
    let sd = (1.25f32 + 1e-5).sqrt();
    for imp in [Impl::Auto, Impl::Composed] {
        bn.kernel_impl = imp;
        let mut r = rng();
        let mut fwd = Forward::new(&store, true, &mut r);
        let y = bn.forward(input(&store, (4, 1, 1, 1)), &mut fwd).unwrap();
        drop(fwd);
        let v = y.retaped::<NoneTape>().as_vec();
        for (i, x) in [1.0f32, 2.0, 3.0, 4.0].iter().enumerate() {
            let want = 0.2 * (x - 2.5) / sd + 0.5;
            assert!((v[i] - want).abs() < 1e-6, "{imp:?}: {} vs {want}", v[i]);
        }
        let c = [0.3, -1.0, 0.7, 2.0];
        let f = |st: &ParamStore| {
            let mut rr = rng();
            let mut fwd = Forward::new(st, true, &mut rr);
            let y = bn.forward(input(st, (4, 1, 1, 1)), &mut fwd).unwrap();
            drop(fwd);
            loss_and_grads(st, y, &c)
        };
        check_fd(&store, &f, 1e-2, 3e-3);
    }
}

#[test]
fn spike_linear_matches_composed_twin() {
    use snn_nn::linear::SpikeProduct;
    // 600 inputs span the index-list kernel's weight blocks; 130 outputs
    // are two full column tiles and a partial one.
    let (n, f, o) = (300, 600, 130);
    let mut r = rng();
    let raw = init::uniform(&mut r, n * f, -1.0, 1.0);
    let spikes: Vec<f32> = raw.iter().map(|v| (*v > 0.3) as u8 as f32).collect();
    let dropped: Vec<f32> = raw.iter().map(|v| 2.0 * (*v > -0.5) as u8 as f32).collect();
    for values in [spikes, dropped, raw] {
        let mut store = store_with(&values);
        let mut fc = LinearConfig {
            inputs: f,
            outputs: o,
            bias: true,
            weight_init: WeightInit::Torch,
        }
        .init(&mut store.scope("fc"), &mut r)
        .unwrap();
        let c = init::uniform(&mut init::rng(5), n * o, -1.0, 1.0);
        let mut run = |imp, spike_kernel| {
            fc.kernel_impl = imp;
            fc.spike_kernel = spike_kernel;
            let (x, _) = store.taped("x").unwrap().split_tape();
            let x = x.traced(store.new_grads().unwrap()).reshape_like(&(n, f));
            let y = fc.forward(x, &store).unwrap().reshape_like(&(n, 1, 1, o));
            let v = y.retaped::<NoneTape>().as_vec();
            (v, loss_and_grads(&store, y, &c).1)
        };
        let composed = run(Impl::Composed, None);
        let kernels = [
            SpikeProduct::Lists,
            SpikeProduct::Table,
            SpikeProduct::Dense,
        ];
        for kernel in std::iter::once(None).chain(kernels.map(Some)) {
            assert_twins(&run(Impl::Auto, kernel), &composed);
        }
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn fused_spike_pool_matches_composed_neuron_then_pool_with_gradients() {
    use snn_core::spec::NeuronSpec;
    use snn_neurons::{AlifSpec, Surrogate};
    use snn_nn::host::spike_pool::{spike_max_pool_taped, SpikePool};
    let (steps, b, h, w, c, k) = (5, 2, 4, 6, 3, 2);
    let m = b * h * w * c;
    let mut r = rng();
    let cw = init::uniform(&mut r, steps * m / (k * k), -1.0, 1.0);
    let spec = |kernel| AlifSpec {
        tau: 0.7,
        v_th: 0.4,
        surrogate: Surrogate::Sigmoid { alpha: 4.0 },
        kernel,
        ..AlifSpec::default()
    };
    // Static input (the first layer) and one that varies over time.
    for timed in [false, true] {
        let n = if timed { steps * b } else { b };
        let mut x = init::uniform(&mut r, n * h * w * c, -0.3, 0.9);
        // Currents on the threshold fire at once: H(0) = 1.
        x.iter_mut().step_by(7).for_each(|v| *v = 0.4);
        let shape = (n, h, w, c);
        // Fused, with the LIF family's host step.
        let mut store = store_with(&x);
        let layer = spec(Impl::Auto).build("n", &mut store).unwrap();
        let step = layer.host_step(&store).unwrap().unwrap();
        let keys = step.param_keys().unwrap();
        let params = keys.iter().map(|key| store.taped(key).unwrap()).collect();
        let geometry = SpikePool {
            steps,
            images: b,
            h,
            w,
            c,
            k,
        };
        let (y, fired, _) =
            spike_max_pool_taped(step, input(&store, shape), params, geometry, None).unwrap();
        let values = y.retaped::<NoneTape>().as_vec();
        let (_, grads) = loss_and_grads(&store, y, &cw);
        // Twin: the dfdx-composed neuron, then the composed max-pool.
        let mut twin_store = store_with(&x);
        let twin = spec(Impl::Composed).build("n", &mut twin_store).unwrap();
        let xin = input(&twin_store, shape);
        let spikes = if timed {
            twin.forward(xin.reshape_like(&(steps, m)), &twin_store)
        } else {
            twin.forward_static(xin.reshape_like(&(1, m)), steps, &twin_store)
        }
        .unwrap();
        let ones = spikes.retaped::<NoneTape>().as_vec().iter().sum::<f32>();
        let pooled =
            pool::max_pool_composed(spikes.reshape_like(&(steps * b, h, w, c)), k).unwrap();
        assert_eq!(
            values,
            pooled.retaped::<NoneTape>().as_vec(),
            "timed {timed}"
        );
        assert_eq!(fired, ones as usize);
        assert!(
            fired > steps * m / 10 && fired < steps * m * 9 / 10,
            "{fired}"
        );
        let (_, want) = loss_and_grads(&twin_store, pooled, &cw);
        assert_eq!(grads.len(), 3);
        assert_gradients_match(&format!("timed {timed}"), &grads, &want);
    }
}

/// Two runs' gradients of the same entries agree, each to 1e-5 of its
/// largest entry (both are float32 sums, in different orders), and none is
/// all zeros (a gradient that never arrives would agree trivially).
fn assert_gradients_match(what: &str, got: &[(String, Vec<f32>)], want: &[(String, Vec<f32>)]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for ((name, g), (want_name, wg)) in got.iter().zip(want) {
        assert_eq!(name, want_name);
        assert!(
            wg.iter().any(|v| *v != 0.0),
            "{what}: {name} has no gradient"
        );
        let scale = wg.iter().fold(1e-3f32, |s, v| s.max(v.abs()));
        for (i, (a, e)) in g.iter().zip(wg).enumerate() {
            assert!(
                (a - e).abs() <= 1e-5 * scale,
                "{what} {name}[{i}]: {a} vs {e}"
            );
        }
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn fused_batch_norm_spike_matches_batch_norm_then_neuron_with_gradients() {
    use snn_core::spec::NeuronSpec;
    use snn_neurons::{AlifSpec, LifSpec, Surrogate, WindowCenter};
    use snn_nn::Spiking;
    let specs: [Box<dyn NeuronSpec>; 2] = [
        // The paper's neuron (learned tau and V_th: parameter gradients)
        // and FSVAE's LIF (fixed constants, membrane-centred window).
        Box::new(AlifSpec {
            tau: 0.7,
            v_th: 0.4,
            surrogate: Surrogate::Sigmoid { alpha: 4.0 },
            ..AlifSpec::default()
        }),
        Box::new(LifSpec {
            surrogate: Surrogate::Rectangular { width: 1.0 },
            window_center: WindowCenter::Membrane,
            ..LifSpec::default()
        }),
    ];
    let mut r = rng();
    let cases = specs
        .iter()
        .flat_map(|s| [(s, false, true), (s, true, true), (s, true, false)]);
    // A small layer, and one of 24,576 neurons a step: two of the kernel's
    // chunks of 16,384, the second starting mid-pixel (16,384 % 12 = 4).
    let geometries = [(5, 3, 4, 5, 6), (3, 2, 32, 32, 12)];
    for ((steps, b, h, w, c), (spec, timed, train)) in geometries
        .iter()
        .flat_map(|g| cases.clone().map(move |case| (*g, case)))
    {
        let n = if timed { steps * b } else { b };
        let shape = (n, h, w, c);
        let x = init::uniform(&mut r, n * h * w * c, -1.0, 2.0);
        let cw = init::uniform(&mut r, steps * b * h * w * c, -1.0, 1.0);
        let mut store = store_with(&x);
        let mut bn = BatchNorm::tdbn(&mut store.scope("bn"), c, 2.0, 0.2).unwrap();
        let sn = Spiking {
            name: "sn".into(),
            neuron: spec.build("sn", &mut store).unwrap(),
        };
        for (key, lo, hi) in [("weight", 0.5, 1.5), ("bias", 0.0, 0.3)] {
            let v = init::uniform(&mut r, c, lo, hi);
            store.set_values(&format!("bn.{key}"), v).unwrap();
        }
        for (key, lo, hi) in [("running_mean", -0.5, 0.5), ("running_var", 0.5, 2.0)] {
            let v = init::uniform(&mut r, c, lo, hi);
            store.set_values(&format!("bn.{key}"), v).unwrap();
        }
        // Fused, then the twin: the same host batch norm followed by the
        // neuron's own kernel (two ops, each keeping its input).
        let mut results = Vec::new();
        for fused in [true, false] {
            bn.kernel_impl = Impl::Auto;
            let mut rr = rng();
            let mut fwd = Forward::new(&store, train, &mut rr);
            let y = if fused {
                bn.forward_spiking(input(&store, shape), &sn, steps, timed, &mut fwd)
            } else {
                let currents = bn.forward(input(&store, shape), &mut fwd).unwrap();
                sn.forward(currents, steps, timed, &mut fwd)
            }
            .unwrap();
            let updates: Vec<Vec<f32>> = fwd.updates.iter().map(|(_, t)| t.as_vec()).collect();
            let rates = fwd.rates.clone();
            drop(fwd);
            let values = y.retaped::<NoneTape>().as_vec();
            let (_, grads) = loss_and_grads(&store, y, &cw);
            results.push((values, grads, updates, rates));
        }
        let what = format!(
            "{spec:?} {:?} timed {timed} train {train}",
            (steps, b, h, w, c)
        );
        let (fused, twin) = (&results[0], &results[1]);
        assert_eq!(fused.0, twin.0, "spikes, {what}");
        let fired = fused.0.iter().filter(|v| **v == 1.0).count();
        assert!(
            fired > fused.0.len() / 10 && fired < fused.0.len() * 9 / 10,
            "{what}: {fired}"
        );
        assert_eq!(fused.2, twin.2, "running statistics, {what}");
        assert_eq!(fused.3, twin.3, "firing rates, {what}");
        assert_gradients_match(&what, &fused.1, &twin.1);
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn batch_norm_folded_into_spike_pool_matches_batch_norm_then_spike_pool() {
    use snn_core::spec::NeuronSpec;
    use snn_neurons::{AlifSpec, Surrogate};
    use snn_nn::host::spike_pool::{spike_max_pool_taped, SpikePool};
    use snn_nn::spiking::taped_params;
    let (steps, b, h, w, c, k) = (4, 3, 4, 6, 5, 2);
    let mut r = rng();
    let cw = init::uniform(&mut r, steps * b * h * w * c / (k * k), -1.0, 1.0);
    for (timed, train) in [(false, true), (true, true), (true, false)] {
        let n = if timed { steps * b } else { b };
        let shape = (n, h, w, c);
        let x = init::uniform(&mut r, n * h * w * c, -1.0, 2.0);
        let mut store = store_with(&x);
        let bn = BatchNorm::tdbn(&mut store.scope("bn"), c, 2.0, 0.2).unwrap();
        let neuron = AlifSpec {
            tau: 0.7,
            v_th: 0.4,
            surrogate: Surrogate::Sigmoid { alpha: 4.0 },
            ..AlifSpec::default()
        }
        .build("sn", &mut store)
        .unwrap();
        for (key, lo, hi) in [
            ("weight", 0.5, 1.5),
            ("bias", 0.0, 0.3),
            ("running_mean", -0.5, 0.5),
            ("running_var", 0.5, 2.0),
        ] {
            let v = init::uniform(&mut r, c, lo, hi);
            store.set_values(&format!("bn.{key}"), v).unwrap();
        }
        let geometry = SpikePool {
            steps,
            images: b,
            h,
            w,
            c,
            k,
        };
        let mut results = Vec::new();
        for folded in [true, false] {
            let mut rr = rng();
            let mut fwd = Forward::new(&store, train, &mut rr);
            let step = neuron.host_step(&store).unwrap().unwrap();
            let params = taped_params(step.as_ref(), &store).unwrap();
            let rows_n = n * h * w;
            let (y, fired) = if folded {
                let operands = bn.fold_operands(c, rows_n, &fwd).unwrap();
                let (y, fired, stats) = spike_max_pool_taped(
                    step,
                    input(&store, shape),
                    params,
                    geometry,
                    Some(operands),
                )
                .unwrap();
                bn.record_stats(&mut fwd, stats.unwrap()).unwrap();
                (y, fired)
            } else {
                let currents = bn.forward(input(&store, shape), &mut fwd).unwrap();
                let (y, fired, stats) =
                    spike_max_pool_taped(step, currents, params, geometry, None).unwrap();
                assert!(stats.is_none());
                (y, fired)
            };
            let updates: Vec<Vec<f32>> = fwd.updates.iter().map(|(_, t)| t.as_vec()).collect();
            drop(fwd);
            let values = y.retaped::<NoneTape>().as_vec();
            let (_, grads) = loss_and_grads(&store, y, &cw);
            results.push((values, fired, updates, grads));
        }
        let what = format!("timed {timed} train {train}");
        let (folded, twin) = (&results[0], &results[1]);
        assert_eq!(folded.0, twin.0, "pooled spikes, {what}");
        assert_eq!(folded.1, twin.1, "spike count, {what}");
        let all = steps * b * h * w * c;
        assert!(
            folded.1 > all / 10 && folded.1 < all * 9 / 10,
            "{what}: {}",
            folded.1
        );
        assert_eq!(folded.2, twin.2, "running statistics, {what}");
        assert_eq!(folded.2.len(), if train { 2 } else { 0 });
        assert_gradients_match(&what, &folded.3, &twin.3);
    }
}
