//! Shared helpers of the integration tests.

pub mod hostile;

use snn_train::config::RunConfig;
use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `tests/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Links every plugin crate so typetag sees their registrations.
pub fn link_plugins() {
    snn_neurons::link();
    snn_decoders::link();
    snn_models::link();
    neuron_plugin::link();
}

/// A small, fast config on the committed MNIST subset.
pub fn tiny_config(extra: &str) -> RunConfig {
    link_plugins();
    let text = format!(
        r#"
seed = 3
time_steps = 3
[model]
type = "classifier"
layers = "c4k3s2-BN-SN-MPk2s2-DP-FC20-SN-APk2s2"
dropout = 0.2
[neuron]
type = "alif"
v_th = 0.5
surrogate = {{ kind = "atan", alpha = 2.0 }}
[decoder]
type = "mean-rate"
[data]
dataset = "mnist"
root = "{}"
train_limit = 96
test_limit = 48
[train]
epochs = 2
batch_size = 16
log_every = 2
{extra}
"#,
        root().join("data/mnist-subset").display()
    );
    let (head, sets) = split_sets(&text);
    RunConfig::with_overrides(&head, Path::new("tiny.toml"), &sets).expect("tiny config")
}

/// A tiny FSVAE (T = 4, latent 8, k = 4) on 32x32 MNIST-subset images.
pub fn tiny_fsvae_config(extra: &str) -> RunConfig {
    link_plugins();
    let text = format!(
        r#"
seed = 5
time_steps = 4
[model]
type = "fsvae"
channels = [4, 4, 8, 8]
latent = 8
k = 4
[neuron]
type = "lif"
window_center = "membrane"
[decoder]
type = "taid"
[data]
dataset = "mnist"
root = "{}"
train_limit = 64
test_limit = 32
image_size = 32
symmetric = true
[train]
epochs = 2
batch_size = 16
optimizer = "adamw"
adam = {{ weight_decay = 1e-3 }}
schedule = "constant"
log_every = 2
{extra}
"#,
        root().join("data/mnist-subset").display()
    );
    let (head, sets) = split_sets(&text);
    RunConfig::with_overrides(&head, Path::new("tiny-fsvae.toml"), &sets)
        .expect("tiny FSVAE config")
}

/// Lines starting with `set ` become `--set` overrides (so tests can swap
/// one line the way a user would).
fn split_sets(text: &str) -> (String, Vec<String>) {
    let mut head = String::new();
    let mut sets = Vec::new();
    for l in text.lines() {
        match l.trim().strip_prefix("set ") {
            Some(s) => sets.push(s.to_string()),
            None => {
                head.push_str(l);
                head.push('\n');
            }
        }
    }
    (head, sets)
}
