//! What every binary test needs: the repository root, `snn` run there, its
//! output as text, a folder's file names, a quickstart training command.
//! Each test binary uses its own part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn snn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snn"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run snn")
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// The sorted names of the files in `dir` that `keep` accepts; none where
/// `dir` does not exist (yet).
pub fn file_names(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| keep(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `snn ARGS`, which must succeed; its stdout.
pub fn snn_ok(args: &[&str]) -> String {
    let o = snn(args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "snn {args:?} failed:\n{out}\n{err}");
    out
}

/// `snn train` of the quickstart config into `out`: with `sets` for a
/// fresh run, or `--resume`.
pub fn quickstart_run_args(out: &Path, resume: bool, sets: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["train", "--config", "configs/quickstart.toml", "--quiet"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(["--out".into(), out.to_str().unwrap().to_string()]);
    if resume {
        a.push("--resume".into());
    } else {
        for s in sets {
            a.extend(["--set".to_string(), s.to_string()]);
        }
    }
    a
}
