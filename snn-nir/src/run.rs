//! Run folders to and from NIR graphs (the files themselves are
//! `snn-nir`'s): export adds what the graph cannot say about the run's
//! input pixels; import turns a graph into a classifier config and its
//! parameters, checked by building the model the config describes.

use snn_core::nir::{ExportOptions, Graph, Meta};
use snn_core::spec::Model;
use snn_core::{Dev, Error, ParamStore, Result};
use snn_models::classifier::nir_import::{from_nir, Imported};
use snn_train::config::RunConfig;
use snn_train::generate::Trained;
use snn_train::session::build_model;
use std::path::Path;

/// The trained run as a NIR graph, its input pixels described in the
/// metadata.
pub fn export(run: &Trained, options: &ExportOptions) -> Result<Graph> {
    let mut graph = run.model.to_nir(&run.store, options)?;
    let data = &run.cfg.data;
    let range = if data.symmetric { "[-1, 1]" } else { "[0, 1]" };
    let mut input = format!("pixels scaled to {range}, C x H x W per image");
    if let Some(norm) = &run.normalization {
        let per: Vec<String> = norm
            .iter()
            .map(|(m, s)| format!("(x - {m}) / {s}"))
            .collect();
        input += &format!(", then per channel {}", per.join(", "));
    }
    graph.metadata.insert("input".into(), Meta::Text(input));
    graph
        .metadata
        .insert("dataset".into(), Meta::Text(data.dataset.clone()));
    Ok(graph)
}

/// Where an imported classifier's run finds its data, and for how many steps it runs.
#[derive(Clone, Debug)]
pub struct ImportTarget {
    pub dataset: String,
    pub root: std::path::PathBuf,
    /// Overrides (or stands in for) the graph's `time_steps` metadata.
    pub time_steps: Option<usize>,
    /// NIR's time constants are read at this Euler step.
    pub dt: f64,
}

/// An imported run: its config as TOML text, the config, and the model
/// with the graph's parameters.
pub struct ImportedRun {
    pub config_text: String,
    pub cfg: RunConfig,
    pub store: ParamStore,
    pub model: Box<dyn Model>,
    pub imported: Imported,
}

/// Builds a classifier run from `graph` (read from `source`, named in the
/// config's header and in errors).
pub fn import(
    graph: &Graph,
    target: &ImportTarget,
    source: &Path,
    dev: &Dev,
) -> Result<ImportedRun> {
    let data = snn_data::config::DataConfig {
        dataset: target.dataset.clone(),
        root: target.root.clone(),
        ..Default::default()
    };
    // The dataset's shape, read once: the import reads a flattened input
    // by it, and the graph must match it.
    let (image, classes) = snn_data::input_shape(&data)?;
    let imported = from_nir(graph, target.dt, image)?;
    let steps = target.time_steps.or(imported.time_steps).ok_or_else(|| {
        Error::invalid(
            "time_steps",
            format!(
                "{} has no `time_steps` metadata; give the number of steps (--time-steps)",
                source.display()
            ),
        )
    })?;
    let config_text = format!(
        "# Imported from the NIR graph {} by `snn import` (Euler step dt = {}).\n\
         # The neurons are ALIF layers holding each layer's decay and threshold\n\
         # as parameters (paper charge form, hard reset to 0; docs/nir.md).\n\
         seed = 0\ntime_steps = {steps}\n\n\
         [model]\ntype = \"classifier\"\nlayers = \"{}\"\nbias = {}\ndropout = 0.0\n\n\
         [neuron]\ntype = \"alif\"\n\n[decoder]\ntype = \"mean-rate\"\n\n\
         [data]\ndataset = {:?}\nroot = {:?}\n",
        source.display(),
        target.dt,
        imported.layers,
        imported.bias,
        target.dataset,
        target.root.display().to_string(),
    );
    let cfg = RunConfig::parse(&config_text, source)?;
    if image != imported.input || classes != imported.classes {
        return Err(Error::invalid(
            "NIR graph",
            format!(
                "{}: takes {:?} images to {} classes; dataset `{}` has {image:?} images in {classes} classes",
                source.display(),
                imported.input,
                imported.classes,
                target.dataset
            ),
        ));
    }
    let (mut store, model) = build_model(&cfg, image, classes, dev)?;
    for (key, _, values) in &imported.params {
        store.set_values(key, values.clone())?;
    }
    Ok(ImportedRun {
        config_text,
        cfg,
        store,
        model,
        imported,
    })
}
