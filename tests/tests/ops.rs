//! Synaptic operation counts (`snn eval --ops`) against hand-derived
//! values: dense operations from the layer shapes, the first layer's
//! effective MACs from the test images' own non-zero pixels, the second
//! layer's effective ACs from the first spiking layer's firing rate (its
//! input is exactly those spikes).

use snn_tests::tiny_config;
use snn_train::evaluate::{evaluate_with, EvalOptions};
use snn_train::ops::{PJ_PER_AC, PJ_PER_MAC};
use snn_train::{Evaluation, Session};

/// A tiny classifier with `extra` config lines, trained, and its test
/// evaluation with operation counts.
fn trained_and_counted(extra: &str, dir: &std::path::Path) -> (Session, Evaluation) {
    let mut s = Session::new(tiny_config(extra), dir).unwrap();
    s.progress = false;
    s.run().unwrap();
    let options = EvalOptions {
        ops: true,
        ..Default::default()
    };
    let ev = evaluate_with(&s.cfg, &s.dev, &s.store, s.model.as_ref(), &s.test, options).unwrap();
    (s, ev)
}

#[test]
fn operations_follow_from_shapes_pixels_and_firing_rates() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ev) = trained_and_counted(
        "set model.layers=\"FC30-SN-FC10-SN\"\nset time_steps=4",
        dir.path(),
    );
    let ops = ev.ops.expect("a classifier reports its operations");
    let [fc1, fc2] = &ops.layers[..] else {
        panic!("{:?}", ops.layers)
    };

    // fc1 sees the static image once (direct encoding): 784 x 30 MACs
    // where a pixel is non-zero.
    let pixels = &s.test.images;
    let nonzero = pixels.iter().filter(|p| **p != 0.0).count() as f64 / pixels.len() as f64;
    assert_eq!(
        (fc1.passes, fc1.dense, fc1.spike_input),
        (1, 784.0 * 30.0, false)
    );
    assert!(
        (fc1.input_nonzero - nonzero).abs() < 1e-6,
        "{} vs {nonzero}",
        fc1.input_nonzero
    );
    assert!((fc1.effective_macs - 784.0 * 30.0 * nonzero).abs() < 1e-2);

    // fc2 sees sn1's spikes at each of the 4 steps: 30 x 10 x 4 dense,
    // accumulates where sn1 fired.
    let rate = ev.firing_rates["sn1"] as f64;
    assert!(rate > 0.01 && rate < 0.99, "sn1 rate {rate}");
    assert_eq!((fc2.passes, fc2.dense, fc2.spike_input), (4, 1200.0, true));
    assert!(
        (fc2.input_nonzero - rate).abs() < 1e-6,
        "{} vs {rate}",
        fc2.input_nonzero
    );
    assert!((fc2.effective_acs - 1200.0 * rate).abs() < 1e-3);

    let energy = fc1.effective_macs * PJ_PER_MAC + fc2.effective_acs * PJ_PER_AC;
    assert!((ops.energy_pj - energy).abs() < 1e-6 * energy);
    assert_eq!(ops.dense, 784.0 * 30.0 + 1200.0);
}

#[test]
fn a_convolution_counts_the_taps_that_read_a_non_zero_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ev) = trained_and_counted("set model.layers=\"c3k5s2p2-SN-FC10-SN\"", dir.path());
    let conv = &ev.ops.unwrap().layers[0];

    // By brute force: every output position's every tap inside the image,
    // counted where its pixel is non-zero, for each of 3 output channels.
    let (k, stride, pad, side, out) = (5i64, 2i64, 2i64, 28i64, 14i64);
    let (mut dense, mut used) = (0u64, 0u64);
    for image in s.test.images.chunks(784) {
        for (oy, ox, ky, kx) in (0..out).flat_map(|oy| {
            (0..out).flat_map(move |ox| {
                (0..k).flat_map(move |ky| (0..k).map(move |kx| (oy, ox, ky, kx)))
            })
        }) {
            let (y, x) = (oy * stride + ky - pad, ox * stride + kx - pad);
            if (0..side).contains(&y) && (0..side).contains(&x) {
                dense += 3;
                used += 3 * (image[(y * side + x) as usize] != 0.0) as u64;
            }
        }
    }
    let n = s.test.len() as f64;
    assert_eq!(
        conv.dense,
        dense as f64 / n,
        "padding taps are not synapses"
    );
    let want = used as f64 / n;
    assert!(
        (conv.effective_macs - want).abs() < 1e-3 * want,
        "{} vs {want}",
        conv.effective_macs
    );
    assert!(!conv.spike_input);
}
