//! Data-parallel training under `mpirun`: the same model for any rank
//! count, repeatable bytes, resume under another rank count, refused
//! mismatches, a killed rank and Ctrl-C.
//!
//! Needs the binary built with MPI: `scripts/install-mpi.sh`, then
//! `cargo test -p snn-cli --features mpi --test ranks` (what `.ci/run`
//! does). Without the feature this file is empty.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SNN: &str = env!("CARGO_BIN_EXE_snn");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The quickstart network (batch norm, dropout) on 200 training images
/// with augmentation on, so that every rank-dependent piece is exercised.
fn quick(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["train", "--config", "configs/quickstart.toml", "--quiet"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--out".into(), out.display().to_string()]);
    for set in [
        "data.train_limit=200",
        "data.test_limit=100",
        "train.epochs=1",
        "train.log_every=1",
        "data.augment={rotate=15.0, translate=0.1, scale=[0.9, 1.1]}",
    ]
    .iter()
    .chain(extra)
    {
        args.extend(["--set".into(), set.to_string()]);
    }
    args
}

/// `mpirun -np N snn ARGS` (one thread per rank; root allowed, as in CI).
fn mpirun(ranks: usize, args: &[String]) -> Command {
    let mut c = Command::new("mpirun");
    c.current_dir(root())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "-np", &ranks.to_string()])
        .args(["-x", "RAYON_NUM_THREADS=1", SNN])
        .args(args);
    c
}

/// One process without mpirun (the group of one).
fn alone(args: &[String]) -> Command {
    let mut c = Command::new(SNN);
    c.current_dir(root())
        .env("RAYON_NUM_THREADS", "1")
        .args(args);
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().expect("start snn / mpirun");
    assert!(
        out.status.success(),
        "{c:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The trainable gradients and the loss a run saved for `step`.
fn gradients(run: &Path, step: u64) -> (Vec<(String, Vec<f32>)>, f64) {
    let path = run.join(format!("gradients/step-{step:06}.safetensors"));
    let (tensors, meta) = snn_core::params::read_safetensors(&path).expect("gradient file");
    let loss = meta["loss"].parse().expect("loss metadata");
    let mut named: Vec<_> = tensors.into_iter().map(|(n, _, v)| (n, v)).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    (named, loss)
}

/// `|a - b| / |b|` over all the gradients, as one vector.
fn relative_difference(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for ((na, va), (nb, vb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        for (x, y) in va.iter().zip(vb) {
            diff += ((x - y) as f64).powi(2);
            norm += (*y as f64).powi(2);
        }
    }
    (diff / norm).sqrt()
}

#[test]
fn two_and_three_ranks_compute_the_gradients_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = |n: usize| dir.path().join(format!("np{n}"));
    let save = ["train.save_gradients=3"];
    run(alone(&quick(&out(1), &save)));
    let runs = [2, 3].map(|n| mpirun(n, &quick(&out(n), &save)).output().unwrap());
    assert_same_gradients("quickstart", 3, &out, runs);
}

/// The gradients and loss of the first `steps` steps of the 2- and 3-rank
/// runs (in `out(2)`, `out(3)`) against the one-process run in `out(1)`,
/// to 1e-5 norm-wise; then that the multi-rank runs ended well. Checked
/// after the gradients: a rank that drifts makes the run refuse its
/// checkpoint, and the gradients say why.
fn assert_same_gradients(
    what: &str,
    steps: u64,
    out: &dyn Fn(usize) -> PathBuf,
    runs: [Output; 2],
) {
    for step in 1..=steps {
        let (one, loss_one) = gradients(&out(1), step);
        let finite = one.iter().all(|(_, g)| g.iter().all(|x| x.is_finite()));
        assert!(
            loss_one.is_finite() && finite,
            "{what} step {step}: loss {loss_one} alone, gradients finite: {finite}"
        );
        for n in [2, 3] {
            let (many, loss) = gradients(&out(n), step);
            let d = relative_difference(&many, &one);
            // Float rounding only: the sums are over the same terms in
            // another grouping. Without synchronised batch norm, per-image
            // keys or the gradient's share this is 1e-2 or more.
            assert!(
                d < 1e-5,
                "{what} step {step}, {n} ranks: gradient differs by {d:e}"
            );
            let dl = (loss - loss_one).abs() / loss_one;
            assert!(
                dl < 1e-5,
                "{what} step {step}, {n} ranks: loss {loss} vs {loss_one}"
            );
        }
    }
    for o in runs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// A tiny spiking VAE's config: `model` is its `[model]` table's lines,
/// `decoder` its decoder type. 33 test images in batches of 16: on 2 ranks
/// one slice has 2 batches and the other 1 (the test pass must not
/// communicate: ESVAE's gather once hung there).
fn tiny_vae(model: &str, decoder: &str) -> String {
    format!(
        r#"
seed = 5
time_steps = 4
[model]
{model}
channels = [4, 4, 8, 8]
latent = 8
[neuron]
type = "lif"
[decoder]
type = "{decoder}"
[data]
dataset = "mnist"
root = "data/mnist-subset"
train_limit = 64
test_limit = 33
image_size = 32
symmetric = true
[train]
epochs = 1
batch_size = 16
eval_batch_size = 16
log_every = 1
save_gradients = 2
"#
    )
}

/// A tiny FSVAE: tdBN everywhere, latent picks and scheduled sampling
/// from each image's and the batch's keyed draws.
#[test]
fn fsvae_on_two_and_three_ranks_computes_the_gradients_of_one_process() {
    let model = "type = \"fsvae\"\nk = 4\nsampling_start = 1\nsampling_p = [0.9, 0.9]";
    same_gradients_on_ranks("FSVAE", &tiny_vae(model, "taid"));
}

/// A tiny ESVAE: its MMD compares every pair of the batch's images, so
/// each rank gathers the others' latent rates (`snn_nn::gather`). With
/// the last-membrane readout this random network's first loss differs by
/// 1.5e-5 (its gradients agree to 1e-5; the second step's loss to 3e-6):
/// rounding in the batch-norm sums grows through the untrained decoder,
/// the MMD term is identical; TAID, as in the FSVAE case, stays within 5e-6.
#[test]
fn esvae_on_two_and_three_ranks_computes_the_gradients_of_one_process() {
    same_gradients_on_ranks("ESVAE", &tiny_vae("type = \"esvae\"", "taid"));
}

fn same_gradients_on_ranks(what: &str, toml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiny.toml");
    std::fs::write(&config, toml).unwrap();
    let out = |n: usize| dir.path().join(format!("np{n}"));
    let args = |n: usize| -> Vec<String> {
        let c = config.display().to_string();
        let o = out(n).display().to_string();
        ["train", "--quiet", "--config", &c, "--out", &o]
            .map(String::from)
            .to_vec()
    };
    run(alone(&args(1)));
    let runs = [2, 3].map(|n| mpirun(n, &args(n)).output().unwrap());
    assert_same_gradients(what, 2, &out, runs);
}

/// Whole files of a run folder, for byte comparisons.
fn bytes(run: &Path, file: &str) -> Vec<u8> {
    std::fs::read(run.join(file)).unwrap_or_else(|e| panic!("{}: {e}", run.join(file).display()))
}

#[test]
fn the_same_rank_count_gives_the_same_bytes_and_a_whole_epoch_matches_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, one) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("one"),
    );
    run(mpirun(2, &quick(&a, &[])));
    run(mpirun(2, &quick(&b, &[])));
    for f in [
        "params-e1.safetensors",
        "optim-e1.safetensors",
        "best.safetensors",
    ] {
        assert!(
            bytes(&a, f) == bytes(&b, f),
            "{f} differs between two 2-rank runs"
        );
    }
    run(alone(&quick(&one, &[])));
    // The test pass split over 3 ranks and reduced: one process's figures.
    let eval = |c: Command| -> serde_json::Value {
        let o = run(c);
        serde_json::from_slice(&o.stdout).expect("snn eval --json")
    };
    let args: Vec<String> = ["eval", "--json", "--checkpoint"]
        .iter()
        .map(|s| s.to_string())
        .chain([a.display().to_string()])
        .collect();
    let (e1, e3) = (eval(alone(&args)), eval(mpirun(3, &args)));
    assert!(e1["accuracy"].is_f64(), "{e1}");
    assert_eq!(e1["accuracy"], e3["accuracy"]);
    assert_eq!(e1["count"], e3["count"]);
    let (l1, l3) = (e1["loss"].as_f64().unwrap(), e3["loss"].as_f64().unwrap());
    assert!(
        (l1 - l3).abs() <= 1e-6 * l1,
        "test loss {l3} on 3 ranks, {l1} alone"
    );
    let loss = |run: &Path| -> f64 {
        let text = String::from_utf8(bytes(run, "metrics.jsonl")).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        v["train_loss"].as_f64().unwrap()
    };
    // 13 steps: Adam's first steps and the spikes' thresholds amplify
    // rounding, but the epoch's mean loss stays within a percent.
    let (l2, l1) = (loss(&a), loss(&one));
    assert!(
        (l2 - l1).abs() / l1 < 0.01,
        "epoch loss {l2} at 2 ranks, {l1} alone"
    );
}

#[test]
fn ranks_with_different_configs_or_binaries_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    let args = quick(&out, &[]);
    let mut c = mpirun(1, &args);
    c.arg(":")
        .args(["-np", "1", "-x", "RAYON_NUM_THREADS=1", SNN]);
    c.args(&args).args(["--set", "seed=2"]);
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("rank 1 of 2 holds different configs from rank 0"),
        "{err}"
    );
    assert!(!out.join("state.json").exists());
    // The same program with one byte more: another binary.
    let other = dir.path().join("snn-other");
    let mut exe = std::fs::read(SNN).unwrap();
    exe.push(0);
    std::fs::write(&other, exe).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = mpirun(1, &args);
    c.arg(":")
        .args(["-np", "1", "-x", "RAYON_NUM_THREADS=1"])
        .arg(&other);
    let o = c.args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("different snn binaries"), "{err}");
}

/// Waits until `cond` holds (polling), at most `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The step of the run's last checkpoint (0 without one).
fn checkpoint_step(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}

/// Two epochs of 400 images (25 steps each), a checkpoint every 5 steps.
fn long(out: &Path) -> Vec<String> {
    quick(
        out,
        &[
            "data.train_limit=400",
            "train.epochs=2",
            "train.checkpoint_every=5",
        ],
    )
}

#[test]
fn a_killed_rank_ends_the_job_and_resume_gives_the_uninterrupted_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
    run(mpirun(2, &long(&whole)));
    let mut job = mpirun(2, &long(&killed))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(60), || checkpoint_step(
        &killed
    ) >= 10));
    // Rank processes are mpirun's children.
    let ps = Command::new("pgrep")
        .args(["-P", &job.id().to_string()])
        .output()
        .unwrap();
    let ranks: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(ranks.len(), 2, "rank pids: {ranks:?}");
    let t0 = Instant::now();
    Command::new("kill")
        .args(["-9", &ranks[1]])
        .status()
        .unwrap();
    let ended = wait_for(Duration::from_secs(30), || {
        job.try_wait().unwrap().is_some()
    });
    if !ended {
        let _ = job.kill();
    }
    assert!(ended, "the job did not end within 30 s of a rank's kill -9");
    let status = job.wait().unwrap();
    assert!(!status.success());
    // mpirun returns as it signals the other ranks; they are gone soon after.
    let gone = |pid: &String| !Path::new(&format!("/proc/{pid}")).exists();
    assert!(
        wait_for(Duration::from_secs(30), || ranks.iter().all(gone)),
        "a rank outlived the job"
    );
    eprintln!(
        "job ended {:.1} s after the kill",
        t0.elapsed().as_secs_f64()
    );
    // Resume with the same rank count: the uninterrupted run's bytes.
    let mut args = vec![
        "train".to_string(),
        "--config".into(),
        "configs/quickstart.toml".into(),
    ];
    args.extend([
        "--quiet".into(),
        "--resume".into(),
        "--out".into(),
        killed.display().to_string(),
    ]);
    run(mpirun(2, &args));
    for f in [
        "params-e2.safetensors",
        "optim-e2.safetensors",
        "best.safetensors",
    ] {
        assert!(
            bytes(&killed, f) == bytes(&whole, f),
            "{f}: resumed run differs"
        );
    }
}

#[test]
fn a_checkpoint_of_two_ranks_resumes_on_one_or_three() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let mut job = mpirun(2, &long(&first))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(60), || checkpoint_step(
        &first
    ) >= 5));
    Command::new("kill")
        .args(["-INT", &job.id().to_string()])
        .status()
        .unwrap();
    job.wait().unwrap();
    let saved = checkpoint_step(&first);
    assert!((5..50).contains(&saved), "checkpoint at step {saved}");
    for (n, name) in [(1, "one"), (3, "three")] {
        let copy = dir.path().join(name);
        Command::new("cp")
            .args(["-r"])
            .arg(&first)
            .arg(&copy)
            .status()
            .unwrap();
        let args: Vec<String> = [
            "train",
            "--config",
            "configs/quickstart.toml",
            "--quiet",
            "--resume",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([copy.display().to_string()])
        .collect();
        let o = if n == 1 {
            run(alone(&args))
        } else {
            run(mpirun(n, &args))
        };
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains("test_accuracy="), "{stdout}");
        // Continued from the saved step: 50 steps in all, none redone.
        assert_eq!(checkpoint_step(&copy), 50);
        let steps = String::from_utf8(bytes(&copy, "steps.jsonl")).unwrap();
        let logged: Vec<u64> = steps
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(logged, (1..=50).collect::<Vec<_>>(), "{n} ranks");
    }
}

#[test]
fn ctrl_c_to_mpirun_checkpoints_and_every_rank_stops() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("int");
    let mut job = mpirun(2, &long(&out))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = out.join("steps.jsonl");
    assert!(wait_for(Duration::from_secs(60), || std::fs::metadata(
        &log
    )
    .is_ok_and(|m| m.len() > 0)));
    Command::new("kill")
        .args(["-INT", &job.id().to_string()])
        .status()
        .unwrap();
    let done = wait_for(Duration::from_secs(30), || {
        job.try_wait().unwrap().is_some()
    });
    assert!(done, "ranks did not stop within 30 s of Ctrl-C");
    let o = job.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    // One message (rank 0's), naming the checkpoint; and at start, the
    // warning that Open MPI's default kill timeout is short.
    assert_eq!(err.matches("checkpoint written to").count(), 1, "{err}");
    assert_eq!(
        err.matches("export OMPI_MCA_odls_base_sigkill_timeout=600")
            .count(),
        1,
        "{err}"
    );
    let step = checkpoint_step(&out);
    assert!((1..50).contains(&step), "checkpoint at step {step}");
}
