//! Scoring generated images: FID (Inception-v3 features), FAD (autoencoder
//! latents) and IS (class probabilities), each by default as the paper's
//! code computes it (`docs/metrics.md`), each line naming its network, its
//! protocol and its reference.

mod fad;
mod fid;
mod is;
mod pixels;

pub use fad::{own_fad, paper_files, PaperFad, FAD_DIR};
pub use fid::{fid, inception_embed, protocol as fid_protocol, FidReference, INCEPTION_WEIGHTS};
pub use is::{classifier_is, inception_is, load_is_network, IS_SAMPLES, IS_SPLITS};
pub use pixels::Pixels;

use serde::Serialize;
use snn_core::{Error, Result};
use snn_metrics::Inception;
use std::path::Path;

/// One score, with the network, protocol and reference that produced it.
#[derive(Clone, Debug, Serialize)]
pub struct Score {
    pub metric: String,
    pub value: f64,
    /// Standard deviation over splits (IS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Which network produced it.
    pub network: String,
    /// How images reached the network.
    pub protocol: String,
    pub samples: usize,
    /// What the samples were compared with (FID, FAD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub seconds: f64,
}

impl Score {
    /// The one-line form `snn metrics` prints.
    pub fn line(&self) -> String {
        let std = self.std.map(|v| format!(" +- {v:.3}")).unwrap_or_default();
        let reference = self
            .reference
            .as_ref()
            .map(|r| format!(", reference: {r}"))
            .unwrap_or_default();
        format!(
            "{}={:.4}{std} ({} samples, network: {}, protocol: {}{reference}, {:.1} s)",
            self.metric, self.value, self.samples, self.network, self.protocol, self.seconds
        )
    }
}

/// Loads Inception weights, with the fetch hint when the file is absent.
pub fn load_inception(weights: &Path) -> Result<Inception> {
    if !weights.exists() {
        return Err(Error::data(
            weights,
            "no Inception weights here; run scripts/fetch-data.sh inception (FID network) or \
             convert a torchvision-layout .pth with tools/torch_to_safetensors.py",
        ));
    }
    Inception::load(weights)
}

/// What an Inception network is, for the output lines.
fn describe(net: &Inception, weights: &Path) -> String {
    let graph = match net.graph() {
        snn_metrics::Graph::Fid2015 => "TF 2015-12-05 FID graph",
        snn_metrics::Graph::Torchvision => "torchvision ImageNet graph",
    };
    format!("Inception-v3 ({graph}) {}", weights.display())
}
