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
use snn_core::spec::SynapseCall;

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

/// One synaptic layer's calls summed over an evaluation (on one rank).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerSums {
    pub rows: f64,
    pub dense: f64,
    pub effective: f64,
    /// Calls whose input was not all 0 / 1.
    pub real_calls: f64,
}

/// Every synaptic layer's sums, in the order the layers first ran.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpSums(pub Vec<(String, LayerSums)>);

impl OpSums {
    pub fn add(&mut self, calls: Vec<SynapseCall>) {
        for c in calls {
            let at = match self.0.iter().position(|(name, _)| *name == c.layer) {
                Some(i) => i,
                None => {
                    self.0.push((c.layer.clone(), LayerSums::default()));
                    self.0.len() - 1
                }
            };
            let s = &mut self.0[at].1;
            s.rows += c.rows as f64;
            s.dense += c.dense;
            s.effective += c.effective;
            s.real_calls += (!c.spikes) as u8 as f64;
        }
    }

    /// The values to sum across ranks, and back.
    pub fn flat(&self) -> Vec<f64> {
        self.0
            .iter()
            .flat_map(|(_, s)| [s.rows, s.dense, s.effective, s.real_calls])
            .collect()
    }

    pub fn set_flat(&mut self, v: &[f64]) {
        for ((_, s), x) in self.0.iter_mut().zip(v.chunks(4)) {
            (s.rows, s.dense, s.effective, s.real_calls) = (x[0], x[1], x[2], x[3]);
        }
    }

    /// Per image of the `images` evaluated; `None` when no synaptic layer ran.
    pub fn per_image(&self, images: usize) -> Option<Ops> {
        if self.0.is_empty() {
            return None;
        }
        let n = images.max(1) as f64;
        let layers: Vec<LayerOps> = self
            .0
            .iter()
            .map(|(name, s)| {
                let spikes = s.real_calls == 0.0;
                let effective = s.effective / n;
                let (acs, macs) = if spikes {
                    (effective, 0.0)
                } else {
                    (0.0, effective)
                };
                LayerOps {
                    layer: name.clone(),
                    passes: (s.rows / n).round() as usize,
                    dense: s.dense / n,
                    input_nonzero: s.effective / s.dense.max(1.0),
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
                "per image; NeuroBench's dense / effective ACs (spike inputs) / effective MACs (real inputs), \
                 padding taps and biases not counted; {PJ_PER_AC} pJ per AC, {PJ_PER_MAC} pJ per MAC (45 nm, Horowitz 2014); \
                 memory traffic and neuron updates not counted"
            ),
        })
    }
}

/// The report as lines of text, one per layer and a total.
pub fn lines(ops: &Ops) -> Vec<String> {
    let mut out = vec![format!(
        "{:<14} {:>6} {:>14} {:>9} {:>6} {:>14} {:>14} {:>12}",
        "layer", "passes", "dense", "input!=0", "spikes", "eff. ACs", "eff. MACs", "energy nJ"
    )];
    for l in &ops.layers {
        out.push(format!(
            "{:<14} {:>6} {:>14.0} {:>9.4} {:>6} {:>14.0} {:>14.0} {:>12.3}",
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
        "{:<14} {:>6} {:>14.0} {:>9} {:>6} {:>14.0} {:>14.0} {:>12.3}",
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
        let call = |layer: &str, rows, dense, effective, spikes| SynapseCall {
            layer: layer.into(),
            rows,
            dense,
            effective,
            spikes,
        };
        let mut sums = OpSums::default();
        // Two batches of 2 images: conv1 once per image, fc1 at 4 steps.
        for _ in 0..2 {
            sums.add(vec![
                call("conv1", 2, 2000.0, 1000.0, false),
                call("fc1", 8, 1600.0, 400.0, true),
            ]);
        }
        let ops = sums.per_image(4).unwrap();
        assert_eq!(ops.layers[0].layer, "conv1", "first-run order");
        assert_eq!((ops.layers[0].passes, ops.layers[1].passes), (1, 4));
        assert_eq!(
            (ops.layers[0].effective_macs, ops.layers[0].effective_acs),
            (500.0, 0.0)
        );
        assert_eq!(
            (ops.layers[1].effective_acs, ops.layers[1].dense),
            (200.0, 800.0)
        );
        assert_eq!(ops.layers[1].input_nonzero, 0.25);
        assert_eq!(ops.dense, 1800.0);
        assert!((ops.energy_pj - (500.0 * 4.6 + 200.0 * 0.9)).abs() < 1e-9);
        // One call of real values makes a layer's operations MACs.
        sums.add(vec![call("fc1", 1, 0.0, 0.0, false)]);
        assert!(!sums.per_image(4).unwrap().layers[1].spike_input);
        assert!(OpSums::default().per_image(4).is_none());
    }
}
