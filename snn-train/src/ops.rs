//! Synaptic operations and their energy per image (`snn eval --ops`), in
//! NeuroBench's terms (Yik et al. 2024): *dense* operations are every
//! multiply-accumulate of the synaptic layers as if all inputs were
//! non-zero; *effective* operations skip zero inputs, and are accumulates
//! (ACs) where the input is spikes, multiply-accumulates (MACs) where it
//! is real-valued (the image, an average pool's output). Energy uses the
//! 45 nm figures of Horowitz (ISSCC 2014) that syops-counter and most SNN
//! papers use: 0.9 pJ per AC, 4.6 pJ per MAC. Memory traffic, neuron
//! updates and the readout are not counted.

use serde::{Deserialize, Serialize};
use snn_core::spec::Synapses;
use std::collections::BTreeMap;

/// Energy of one accumulate (32-bit float add, 45 nm), in picojoules.
pub const PJ_PER_AC: f64 = 0.9;
/// Energy of one multiply-accumulate (32-bit float, 45 nm), in picojoules.
pub const PJ_PER_MAC: f64 = 4.6;

/// One synaptic layer's operations per image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerOps {
    pub layer: String,
    /// Passes per image (`T`, or 1 before the first spiking layer).
    pub passes: usize,
    pub dense: f64,
    /// Mean fraction of the layer's inputs that are non-zero.
    pub input_nonzero: f64,
    /// Whether the inputs were spikes (every value 0 or 1).
    pub spike_input: bool,
    pub effective_acs: f64,
    pub effective_macs: f64,
    pub energy_pj: f64,
}

/// A model's operations per image, by layer and in total.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ops {
    pub layers: Vec<LayerOps>,
    pub dense: f64,
    pub effective_acs: f64,
    pub effective_macs: f64,
    pub energy_pj: f64,
    pub convention: String,
}

/// The operations of `synapses` given each one's mean input non-zero
/// fraction and whether it was spikes (`inputs`, from an evaluation);
/// `None` for a model without synaptic layers.
pub fn count(synapses: &[Synapses], inputs: &BTreeMap<String, (f32, bool)>) -> Option<Ops> {
    if synapses.is_empty() {
        return None;
    }
    let layers: Vec<LayerOps> = synapses
        .iter()
        .map(|s| {
            let (nonzero, spikes) = inputs.get(&s.name).copied().unwrap_or((1.0, false));
            let dense = s.dense as f64 * s.passes as f64;
            let effective = dense * nonzero as f64;
            let (acs, macs) = if spikes {
                (effective, 0.0)
            } else {
                (0.0, effective)
            };
            LayerOps {
                layer: s.name.clone(),
                passes: s.passes,
                dense,
                input_nonzero: nonzero as f64,
                spike_input: spikes,
                effective_acs: acs,
                effective_macs: macs,
                energy_pj: acs * PJ_PER_AC + macs * PJ_PER_MAC,
            }
        })
        .collect();
    let total = |f: fn(&LayerOps) -> f64| layers.iter().map(f).sum::<f64>();
    Some(Ops {
        dense: total(|l| l.dense),
        effective_acs: total(|l| l.effective_acs),
        effective_macs: total(|l| l.effective_macs),
        energy_pj: total(|l| l.energy_pj),
        layers,
        convention: format!(
            "per image; NeuroBench's dense / effective ACs (spike inputs) / effective MACs (real inputs); \
             {PJ_PER_AC} pJ per AC, {PJ_PER_MAC} pJ per MAC (45 nm, Horowitz 2014); memory traffic not counted"
        ),
    })
}

/// The report as lines of text, one per layer and a total.
pub fn lines(ops: &Ops) -> Vec<String> {
    let mut out = vec![format!(
        "{:<8} {:>6} {:>14} {:>9} {:>6} {:>14} {:>14} {:>12}",
        "layer", "passes", "dense", "input!=0", "spikes", "eff. ACs", "eff. MACs", "energy nJ"
    )];
    for l in &ops.layers {
        out.push(format!(
            "{:<8} {:>6} {:>14.0} {:>9.4} {:>6} {:>14.0} {:>14.0} {:>12.3}",
            l.layer,
            l.passes,
            l.dense,
            l.input_nonzero,
            if l.spike_input { "yes" } else { "no" },
            l.effective_acs,
            l.effective_macs,
            l.energy_pj / 1e3
        ));
    }
    out.push(format!(
        "{:<8} {:>6} {:>14.0} {:>9} {:>6} {:>14.0} {:>14.0} {:>12.3}",
        "total",
        "",
        ops.dense,
        "",
        "",
        ops.effective_acs,
        ops.effective_macs,
        ops.energy_pj / 1e3
    ));
    out.push(format!("({})", ops.convention));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spike_inputs_count_accumulates_and_real_inputs_multiply_accumulates() {
        let s = |name: &str, dense, passes| Synapses {
            name: name.into(),
            dense,
            passes,
        };
        let synapses = [s("conv1", 1000, 1), s("fc1", 200, 4)];
        let inputs = BTreeMap::from([
            ("conv1".to_string(), (0.5, false)),
            ("fc1".to_string(), (0.25, true)),
        ]);
        let ops = count(&synapses, &inputs).unwrap();
        // conv1: the image, 1000 x 0.5 MACs; fc1: 200 x 4 steps x 0.25 ACs.
        assert_eq!(
            (ops.layers[0].effective_macs, ops.layers[0].effective_acs),
            (500.0, 0.0)
        );
        assert_eq!(
            (ops.layers[1].effective_acs, ops.layers[1].dense),
            (200.0, 800.0)
        );
        assert_eq!(ops.dense, 1800.0);
        assert!((ops.energy_pj - (500.0 * 4.6 + 200.0 * 0.9)).abs() < 1e-9);
        assert!(count(&[], &inputs).is_none());
    }
}
