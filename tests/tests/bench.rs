//! `snn bench`'s measurements on the tiny classifier: what it reports and
//! how it refuses a request with nothing to time.

use snn_tests::tiny_config;
use snn_train::bench::{metric_networks, run, Mode};

#[test]
fn bench_reports_consistent_step_times_phases_and_memory() {
    let cfg = tiny_config("");
    let r = run(&cfg, 4, Mode::Train, 1, 3).unwrap();
    assert_eq!((r.dataset.as_str(), r.mode.as_str()), ("mnist", "train"));
    assert_eq!((r.batch, r.time_steps, r.warmup, r.steps), (4, 3, 1, 3));
    assert!(0.0 < r.min_s && r.min_s <= r.median_s && r.median_s <= r.max_s);
    assert!((r.images_per_second * r.median_s - 4.0).abs() < 1e-9);
    assert!(r.peak_rss_mib > 1.0, "read from /proc: {}", r.peak_rss_mib);
    let p = r.phases.expect("a training step has phases");
    for (name, s) in [
        ("forward", p.forward_s),
        ("backward", p.backward_s),
        ("update", p.update_s),
    ] {
        assert!(
            s > 0.0 && s <= r.max_s,
            "{name}: {s} of at most {}",
            r.max_s
        );
    }
    // The dense floor's work, by hand: conv1 (3x3, pad 1, stride 2, 1 -> 4
    // channels) runs once per image on the static input, 4 x 14x14 pixels
    // x 9 x 4; FC20 on every time step, 3 x 4 rows x (4 x 7x7) x 20.
    // Two FLOPs a multiply-accumulate; training adds both gradients.
    let macs = (4 * 14 * 14 * 9 * 4 + 3 * 4 * 196 * 20) as f64;
    assert!(
        (r.dense_gflop - 3.0 * 2.0 * macs / 1e9).abs() < 1e-12,
        "{}",
        r.dense_gflop
    );
    assert!(r.gemm_peak_gflops > 0.1, "{}", r.gemm_peak_gflops);
    assert!((r.dense_floor_s * r.gemm_peak_gflops - r.dense_gflop).abs() < 1e-12);
    let r = run(&cfg, 4, Mode::Infer, 0, 2).unwrap();
    assert_eq!((r.mode.as_str(), r.steps, r.warmup), ("infer", 2, 0));
    assert!(r.phases.is_none());
    assert!(
        (r.dense_gflop - 2.0 * macs / 1e9).abs() < 1e-12,
        "{}",
        r.dense_gflop
    );
}

#[test]
fn metric_bench_times_the_authors_fad_network_and_names_what_it_skipped() {
    let cfg = tiny_config("");
    let root = snn_tests::root();
    let missing = root.join("no-such-dir/fid-inception.safetensors");
    let fad = root.join(snn_train::scores::FAD_DIR);
    let r = metric_networks(&cfg, 20, &missing, &fad).unwrap();
    assert_eq!(
        (r.dataset.as_str(), r.shape, r.images),
        ("mnist", [1, 28, 28], 20)
    );
    assert!(r.fad_s_per_1000.is_some_and(|t| t > 0.0), "{r:?}");
    assert!(r.fid_s_per_1000.is_none() && r.fid_floor_s_per_1000.is_none());
    // The encoder's products did dense work, and it has a floor.
    let floor = r.fad_floor_s_per_1000.expect("a floor beside the time");
    assert!(floor > 0.0 && r.gemm_peak_gflops > 0.1, "{r:?}");
    assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);
    assert!(
        r.skipped[0].contains("no-such-dir") && r.skipped[0].contains("fetch-data.sh inception")
    );
    let err = metric_networks(&cfg, 0, &missing, &fad).unwrap_err();
    assert!(err.to_string().contains("--batch"), "{err}");
}

#[test]
fn bench_without_timed_steps_is_an_error() {
    let err = run(&tiny_config(""), 4, Mode::Train, 1, 0).err().unwrap();
    assert!(err.to_string().contains("steps"), "{err}");
}
