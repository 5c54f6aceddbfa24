//! The paper rows (configs/paper/) and their runner (scripts/reproduce.py):
//! every row is a valid config with its [paper] table, documented in
//! docs/fidelity.md and docs/results.md; every result in the doc has its
//! config and its line in results/paper.jsonl; and the runner takes a tiny
//! row through estimate, training, scoring, the results file and the doc,
//! does not retrain a finished row, and measures the epoch time of a row
//! whose data cannot be had here.

mod common;

use common::root;
use sha2::Digest as _;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// The row names, sorted (`file_names` sorts).
fn paper_rows() -> Vec<String> {
    common::file_names(&root().join("configs/paper"), |n| n.ends_with(".toml"))
        .into_iter()
        .map(|n| n.trim_end_matches(".toml").to_string())
        .collect()
}

fn python(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("scripts/reproduce.py"))
        .args(args)
        .current_dir(root())
        .env("SNN", env!("CARGO_BIN_EXE_snn"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output()
        .expect("python3 runs the reproduction runner (it is on every machine of this project)")
}

/// The rows named in the "Rows run here" table of the generated section.
fn rows_in_results_table(doc: &str) -> Vec<String> {
    doc.lines()
        .filter_map(|l| {
            l.strip_prefix("| [")?
                .split_once(']')
                .map(|(n, _)| n.to_string())
        })
        .collect()
}

fn results_rows(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display()));
            v["row"]
                .as_str()
                .expect("every line names its row")
                .to_string()
        })
        .collect()
}

#[test]
fn every_paper_row_is_a_valid_documented_config() {
    snn_neurons::link();
    snn_decoders::link();
    snn_models::link();
    let rows = paper_rows();
    assert!(rows.len() >= 20, "configs/paper/ holds {} rows", rows.len());
    let fidelity = std::fs::read_to_string(root().join("docs/fidelity.md")).unwrap();
    let results = std::fs::read_to_string(root().join("docs/results.md")).unwrap();
    for row in &rows {
        let path = root().join(format!("configs/paper/{row}.toml"));
        let cfg = snn_train::config::RunConfig::load(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let paper = cfg
            .paper
            .unwrap_or_else(|| panic!("{row}: no [paper] table"));
        assert!(!paper.deviation.trim().is_empty(), "{row}: no deviation");
        assert!(
            fidelity.contains(row.as_str()),
            "docs/fidelity.md does not list {row}"
        );
        assert!(
            results.contains(row.as_str()),
            "docs/results.md does not list {row}"
        );
    }
    // Each result in the doc has its config and its line in the results file,
    // and the doc is what the runner generates from them.
    let recorded = results_rows(&root().join("results/paper.jsonl"));
    for row in rows_in_results_table(&results) {
        assert!(rows.contains(&row), "docs/results.md: {row} has no config");
        assert!(
            recorded.contains(&row),
            "docs/results.md: {row} has no line in results/paper.jsonl"
        );
    }
    let o = python(&["--check-doc"], &[]);
    let (out, err) = common::text(&o);
    assert!(o.status.success(), "{out}{err}");
}

#[test]
fn a_config_with_a_wrong_paper_figure_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("row.toml");
    let text = std::fs::read_to_string(root().join("configs/paper/table5-mnist-alif.toml"))
        .unwrap()
        .replace("values = { accuracy = 99.78 }", "values = { fid = 99.78 }");
    std::fs::write(&path, text).unwrap();
    let o = common::snn(&["check", path.to_str().unwrap()]);
    let (_, err) = common::text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("row.toml") && err.contains("paper.values.fid") && err.contains("accuracy"),
        "{err}"
    );
}

/// A temporary home laid out as the repository (`REPRODUCE_HOME`) with one
/// row, `configs/paper/NAME.toml`, holding `row`.
fn home_with_row(name: &str, row: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir_all(h.join("configs/paper")).unwrap();
    std::fs::create_dir_all(h.join("docs")).unwrap();
    std::fs::write(h.join(format!("configs/paper/{name}.toml")), row).unwrap();
    home
}

/// The quickstart config's text, the base of the tests' rows.
fn quickstart() -> String {
    std::fs::read_to_string(root().join("configs/quickstart.toml")).unwrap()
}

#[test]
fn the_runner_takes_a_row_from_estimate_to_the_doc_and_resumes_finished_rows() {
    let row = quickstart()
        .replace("epochs = 4", "epochs = 1\nlog_every = 2")
        .replace(
            "root = \"data/mnist-subset\"",
            "root = \"data/mnist-subset\"\ntrain_limit = 64\ntest_limit = 100",
        )
        + "\n[paper]\ntable = \"Table 5\"\nrow = \"tiny\"\nscore = \"best-test-accuracy\"\n\
           values = { accuracy = 99.78 }\ndeviation = \"a test's budget\"\n";
    let home = home_with_row("tiny-row", &row);
    let h = home.path();
    std::fs::write(
        h.join("docs/results.md"),
        "# Results\n\nHand-written part.\n",
    )
    .unwrap();
    let runs = h.join("runs");
    let run_args = ["tiny-row", "--runs", runs.to_str().unwrap()];
    let status_args = ["--status", "--runs", runs.to_str().unwrap()];
    let o = python(&status_args, &[("REPRODUCE_HOME", h)]);
    let (out, err) = common::text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(
        out,
        "tiny-row: no result recorded; run folder: not started\n"
    );

    let o = python(&run_args, &[("REPRODUCE_HOME", h)]);
    let (out, err) = common::text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("estimate: 1 of 1 epochs x 4 steps (64 images, batch 16)"),
        "{out}"
    );
    assert!(out.contains(" train "), "{out}");

    // The results line carries the best test accuracy of the run's records.
    let metrics = std::fs::read_to_string(runs.join("tiny-row/metrics.jsonl")).unwrap();
    let best = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["test_accuracy"]
                .as_f64()
                .unwrap()
        })
        .fold(0.0, f64::max);
    let results = std::fs::read_to_string(h.join("results/paper.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(results.lines().next().unwrap()).unwrap();
    assert_eq!(line["row"], "tiny-row");
    assert_eq!(line["config"], "configs/paper/tiny-row.toml");
    let ours = line["ours"]["accuracy"].as_f64().unwrap();
    assert!(
        (ours - (100.0 * best * 100.0).round() / 100.0).abs() < 1e-9,
        "{ours} vs {best}"
    );
    assert_eq!(line["paper"]["accuracy"], 99.78);
    assert!(line["peak_rss_mib"].as_f64().unwrap() > 0.0, "{line}");
    // The revision is the one training ran at, recorded in the run folder.
    let trained = std::fs::read_to_string(runs.join("tiny-row/revisions")).unwrap();
    assert_eq!(trained.lines().count(), 1, "{trained}");
    assert_eq!(line["revision"], trained.trim());
    assert_eq!(
        std::fs::read_to_string(h.join("results/paper/tiny-row/metrics.jsonl")).unwrap(),
        metrics
    );
    // The step log comes along, so the curves can be redrawn from results/.
    assert_eq!(
        std::fs::read_to_string(h.join("results/paper/tiny-row/steps.jsonl")).unwrap(),
        std::fs::read_to_string(runs.join("tiny-row/steps.jsonl")).unwrap()
    );
    let doc = std::fs::read_to_string(h.join("docs/results.md")).unwrap();
    assert!(
        doc.starts_with("# Results\n\nHand-written part.\n"),
        "{doc}"
    );
    assert_eq!(rows_in_results_table(&doc), ["tiny-row"]);
    // The status names the recorded result and what the run folder holds.
    let o = python(&status_args, &[("REPRODUCE_HOME", h)]);
    let (out, err) = common::text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.starts_with(&format!("tiny-row: recorded {ours:.2} ("))
            && out.contains("run folder: 1 of 1 epochs, last logged epoch 1 step 4, newest checkpoint 0 h 00 min old\n"),
        "{out}"
    );

    // A finished row is scored again, not retrained; its line still names
    // the revisions that trained it, whatever revision scores it.
    std::fs::write(runs.join("tiny-row/revisions"), "abc1234\ndef5678\n").unwrap();
    let o = python(&run_args, &[("REPRODUCE_HOME", h)]);
    let (out, err) = common::text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        !out.contains(" train ") && !out.contains("estimate:"),
        "{out}"
    );
    assert_eq!(results_rows(&h.join("results/paper.jsonl")).len(), 1);
    let results = std::fs::read_to_string(h.join("results/paper.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 2);
    let line: serde_json::Value = serde_json::from_str(results.lines().nth(1).unwrap()).unwrap();
    assert_eq!(line["revision"], "abc1234+def5678");
    let o = python(&["--check-doc"], &[("REPRODUCE_HOME", h)]);
    assert!(o.status.success(), "{:?}", common::text(&o));

    // An unknown row is one clear error naming the rows there are.
    let o = python(&["no-such-row"], &[("REPRODUCE_HOME", h)]);
    let (_, err) = common::text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("`no-such-row`") && err.contains("tiny-row"),
        "{err}"
    );
}

/// A row of the quickstart config on CIFAR-10, whose data is not here.
fn far_row() -> String {
    quickstart().replace(
        "dataset = \"mnist\"\nroot = \"data/mnist-subset\"",
        "dataset = \"cifar10\"\nroot = \"data/not-on-this-machine\"",
    ) + "\n[paper]\ntable = \"Table 6\"\nrow = \"tiny\"\nscore = \"best-test-accuracy\"\n\
           values = { accuracy = 93.89 }\ndeviation = \"Not run here: no data.\"\nruns_here = false\n"
}

#[test]
fn a_row_whose_data_is_not_here_gets_its_epoch_time_measured_and_listed() {
    let row = far_row();
    assert!(
        row.contains("cifar10"),
        "the quickstart config changed: {row}"
    );
    let home = home_with_row("far-row", &row);
    let h = home.path();

    let o = python(&["far-row", "--estimate-only"], &[("REPRODUCE_HOME", h)]);
    let (out, err) = common::text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("far-row: Not run here: no data."), "{out}");
    assert!(!out.contains("snn train "), "nothing is trained: {out}");

    // The estimate: CIFAR-10's 50,000 training images at the row's batch 16.
    let text = std::fs::read_to_string(h.join("results/estimates.jsonl")).unwrap();
    let e: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(e["row"], "far-row");
    assert_eq!(
        (e["train_images"].as_u64(), e["batch"].as_u64()),
        (Some(50_000), Some(16))
    );
    let step = e["s_per_step"].as_f64().unwrap();
    let epoch = e["epoch_seconds"].as_f64().unwrap();
    assert!(step > 0.0, "{e}");
    // 3,125 steps an epoch, from a step rounded to milliseconds.
    assert!(
        (epoch - 3125.0 * step).abs() <= 3125.0 * 0.0005 + 0.5,
        "{e}"
    );
    assert!(
        !h.join("results/paper.jsonl").exists(),
        "nothing was trained or scored"
    );

    // The doc lists the row as not run, with the time its epoch would take.
    let doc = std::fs::read_to_string(h.join("docs/results.md")).unwrap();
    let listed = doc
        .lines()
        .find(|l| l.starts_with("- [far-row]"))
        .unwrap_or_else(|| panic!("{doc}"));
    assert!(
        listed.contains(&format!("{step:.3} s a step at batch 16"))
            && listed.contains("an epoch of 50,000 images"),
        "{listed}"
    );
    assert!(rows_in_results_table(&doc).is_empty(), "{doc}");
    let o = python(&["--check-doc"], &[("REPRODUCE_HOME", h)]);
    assert!(o.status.success(), "{:?}", common::text(&o));
}

/// A result names the code that made it: from a work tree with uncommitted
/// changes the runner refuses to train or record, and with `--allow-dirty`
/// records the diff's SHA-256.
#[test]
fn the_runner_refuses_a_dirty_tree_unless_told_and_then_hashes_the_diff() {
    let row = far_row();
    let home = home_with_row("far-row", &row);
    let h = home.path();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(h)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {:?}", common::text(&o));
        o
    };
    git(&["init", "-q"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@t", "add", "."]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "rows",
    ]);
    let config = h.join("configs/paper/far-row.toml");
    std::fs::write(&config, row.replace("seed = 1", "seed = 2")).unwrap();

    let o = python(&["far-row"], &[("REPRODUCE_HOME", h)]);
    let (out, err) = common::text(&o);
    assert!(
        !o.status.success() && err.contains("uncommitted changes") && err.contains("--allow-dirty"),
        "{out}{err}"
    );
    assert!(!h.join("results").exists(), "nothing recorded: {out}");

    let o = python(&["far-row", "--allow-dirty"], &[("REPRODUCE_HOME", h)]);
    assert!(o.status.success(), "{:?}", common::text(&o));
    let text = std::fs::read_to_string(h.join("results/estimates.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let diff = git(&["diff", "HEAD"]).stdout;
    let want = format!("{:x}", sha2::Sha256::digest(&diff));
    assert_eq!(line["diff_sha256"], want.as_str(), "{line}");
    assert!(
        line["revision"].as_str().unwrap().ends_with("-dirty"),
        "{line}"
    );
}
