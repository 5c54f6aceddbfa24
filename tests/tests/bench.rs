//! `snn bench`'s measurements on the tiny classifier: what it reports and
//! how it refuses a request with nothing to time.

use snn_tests::tiny_config;
use snn_train::bench::{run, Mode};

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
    let r = run(&cfg, 4, Mode::Infer, 0, 2).unwrap();
    assert_eq!((r.mode.as_str(), r.steps, r.warmup), ("infer", 2, 0));
    assert!(r.phases.is_none());
}

#[test]
fn bench_without_timed_steps_is_an_error() {
    let err = run(&tiny_config(""), 4, Mode::Train, 1, 0).err().unwrap();
    assert!(err.to_string().contains("steps"), "{err}");
}
