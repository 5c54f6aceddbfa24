//! The Neuromorphic Intermediate Representation (NIR, Pedersen et al.
//! 2024; Python package `nir` 1.0.8), as plain data: the node types this
//! project writes and reads, with NIR's field names, shapes (per image:
//! the batch dimension is left out; channels first, as PyTorch) and
//! parameter layouts. Files are `snn-nir`'s job; mapping a model to a
//! graph is the model's ([`crate::spec::Model::to_nir`]).
//!
//! NIR's neurons are continuous-time equations; a discrete neuron maps to
//! them through one Euler step of length `dt` (see [`LifForm`]).

use crate::{Error, Result};
use std::collections::BTreeMap;

/// The time step this project (and snnTorch, SpikingJelly) reads NIR's
/// continuous-time constants with.
pub const DEFAULT_DT: f64 = 1e-4;

/// How a max-pool of spikes is written: NIR has no max-pool, but on
/// binary inputs "any spike in the window" is exact either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PoolForm {
    /// `SumPool2d` then `Threshold` at 0 (fires on a sum of at least one).
    #[default]
    SumThreshold,
    /// `AvgPool2d` then a memoryless `LIF` (`tau = dt`, `r = 1`) whose
    /// threshold lies between 0 and the smallest non-zero average, for
    /// importers without `SumPool2d` / `Threshold` (snnTorch 1.0).
    AvgLif,
}

/// What an export writes beyond the network itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExportOptions {
    /// The Euler step NIR's time constants are written for.
    pub dt: f64,
    pub pool: PoolForm,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            dt: DEFAULT_DT,
            pool: PoolForm::default(),
        }
    }
}

/// An n-dimensional array, row-major, values widened to f64 in memory
/// (a file stores weights as f32 and neuron constants as f64).
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(
                "NIR array",
                format!("shape {shape:?} holds {n} values, given {}", data.len()),
            ));
        }
        Ok(Self { shape, data })
    }

    /// `value` at every position of `shape`.
    pub fn filled(shape: &[usize], value: f64) -> Self {
        Self {
            shape: shape.to_vec(),
            data: vec![value; shape.iter().product()],
        }
    }

    /// The one value every element has, if they are all equal.
    pub fn uniform(&self) -> Option<f64> {
        let first = *self.data.first()?;
        self.data
            .iter()
            .all(|v| v.to_bits() == first.to_bits())
            .then_some(first)
    }
}

/// A node of a NIR graph (the subset this project maps).
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// The graph's input, `shape` per image (`[C, H, W]`).
    Input {
        shape: Vec<usize>,
    },
    Output {
        shape: Vec<usize>,
    },
    /// `weight` `[C_out, C_in, kH, kW]`; `input_shape` `[H, W]`.
    Conv2d {
        input_shape: [usize; 2],
        weight: Array,
        bias: Array,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    },
    /// `y = W x + b`, `weight` `[out, in]`.
    Affine {
        weight: Array,
        bias: Array,
    },
    /// `y = W x`.
    Linear {
        weight: Array,
    },
    /// Flattens dimensions `start_dim..=end_dim` of `input_type` (per image).
    Flatten {
        start_dim: i64,
        end_dim: i64,
        input_type: Vec<usize>,
    },
    /// `tau dv/dt = (v_leak - v) + r I`; fires when `v > v_threshold`, then
    /// `v = v_reset`. Parameters per neuron (the layer's shape).
    Lif {
        tau: Array,
        r: Array,
        v_leak: Array,
        v_threshold: Array,
        v_reset: Array,
    },
    /// `dv/dt = r I`; fires when `v > v_threshold`, then `v = v_reset`.
    If {
        r: Array,
        v_threshold: Array,
        v_reset: Array,
    },
    SumPool2d {
        kernel_size: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    AvgPool2d {
        kernel_size: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    },
    /// `z = H(x - threshold)` with `H(0) = 0`, per element.
    Threshold {
        threshold: Array,
    },
}

impl Node {
    /// NIR's type name (the `type` field of a file).
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Input { .. } => "Input",
            Node::Output { .. } => "Output",
            Node::Conv2d { .. } => "Conv2d",
            Node::Affine { .. } => "Affine",
            Node::Linear { .. } => "Linear",
            Node::Flatten { .. } => "Flatten",
            Node::Lif { .. } => "LIF",
            Node::If { .. } => "IF",
            Node::SumPool2d { .. } => "SumPool2d",
            Node::AvgPool2d { .. } => "AvgPool2d",
            Node::Threshold { .. } => "Threshold",
        }
    }
}

/// A metadata value (NIR stores metadata as a dictionary of datasets).
#[derive(Clone, Debug, PartialEq)]
pub enum Meta {
    Int(i64),
    Float(f64),
    Text(String),
}

/// A NIR graph: named nodes and directed edges between them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub nodes: BTreeMap<String, Node>,
    pub edges: Vec<(String, String)>,
    pub metadata: BTreeMap<String, Meta>,
}

impl Graph {
    /// A chain `input -> nodes[0] -> ... -> output`, named NIR's way
    /// (`conv2d`, `lif`, `lif_1`, ...; Python `nir`'s `from_list`).
    pub fn chain(input: Vec<usize>, nodes: Vec<Node>, output: Vec<usize>) -> Self {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut names = vec!["input".to_string()];
        let mut graph = Graph::default();
        graph
            .nodes
            .insert("input".into(), Node::Input { shape: input });
        for node in nodes {
            let base = node.kind().to_ascii_lowercase();
            let n = counts.entry(base.clone()).or_default();
            let name = if *n == 0 { base } else { format!("{base}_{n}") };
            *n += 1;
            names.push(name.clone());
            graph.nodes.insert(name, node);
        }
        graph
            .nodes
            .insert("output".into(), Node::Output { shape: output });
        names.push("output".into());
        graph.edges = names
            .windows(2)
            .map(|w| (w[0].clone(), w[1].clone()))
            .collect();
        graph
    }

    /// The nodes from the one `Input` to the one `Output` along the edges,
    /// when the graph is a chain; otherwise an error naming the node
    /// where it branches, merges or stops.
    pub fn walk(&self) -> Result<Vec<(&str, &Node)>> {
        let bad = |node: &str, msg: String| Error::invalid(format!("NIR node `{node}`"), msg);
        for (a, b) in &self.edges {
            for end in [a, b] {
                if !self.nodes.contains_key(end) {
                    return Err(bad(
                        end,
                        "an edge names a node the graph does not have".into(),
                    ));
                }
            }
        }
        let inputs: Vec<&String> = self
            .nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::Input { .. }))
            .map(|(k, _)| k)
            .collect();
        let [start] = inputs.as_slice() else {
            return Err(Error::invalid(
                "NIR graph",
                format!("needs exactly one Input node, has {}", inputs.len()),
            ));
        };
        let mut order = vec![(start.as_str(), &self.nodes[*start])];
        let mut at: &str = start;
        loop {
            let next: Vec<&String> = self
                .edges
                .iter()
                .filter(|(a, _)| a == at)
                .map(|(_, b)| b)
                .collect();
            match (next.as_slice(), &self.nodes[at]) {
                ([], Node::Output { .. }) => break,
                ([], _) => {
                    return Err(bad(
                        at,
                        "leads nowhere: the chain must end in an Output node".into(),
                    ))
                }
                ([one], _) => {
                    let into = self.edges.iter().filter(|(_, b)| b == *one).count();
                    if into != 1 || order.iter().any(|(n, _)| n == *one) {
                        return Err(bad(one, format!("has {into} incoming edges or closes a loop; only chains are supported")));
                    }
                    at = one;
                    order.push((at, &self.nodes[at]));
                }
                (many, _) => {
                    return Err(bad(
                        at,
                        format!(
                            "branches into {} nodes; only chains are supported",
                            many.len()
                        ),
                    ))
                }
            }
        }
        if order.len() != self.nodes.len() {
            let stray = self
                .nodes
                .keys()
                .find(|k| !order.iter().any(|(n, _)| n == k));
            return Err(bad(
                stray.map_or("?", |s| s.as_str()),
                "is not on the chain from the Input to the Output".into(),
            ));
        }
        Ok(order)
    }
}

/// A discrete leaky neuron with a hard reset to zero, the form every LIF
/// variant here has:
///
/// ```text
/// u[t] = decay r[t-1] + gain x[t]     r: membrane after reset, 0 at first
/// o[t] = H(u[t] - v_th), H(0) = 1     r[t] = u[t] (1 - o[t])
/// ```
///
/// One Euler step of NIR's `LIF` (`tau dv/dt = -v + r I`, `v_leak = 0`) of
/// length `dt` is `v' = (1 - dt/tau) v + (r dt/tau) I`, so `tau = dt /
/// (1 - decay)` and `r = gain / (1 - decay)` give the same update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifForm {
    pub decay: f32,
    pub gain: f32,
    pub v_th: f32,
}

impl LifForm {
    /// NIR's `(tau, r)` for this decay and gain at step `dt`; `None` for
    /// `decay = 1` (no leak: NIR's `IF`, `r = gain / dt`).
    pub fn tau_r(&self, dt: f64) -> Option<(f64, f64)> {
        let leak = 1.0 - self.decay as f64;
        (leak != 0.0).then(|| (dt / leak, self.gain as f64 / leak))
    }

    /// The decay and gain of a NIR `LIF` with `tau`, `r` read at step `dt`,
    /// rounded to f32 once (so that `tau_r` then this returns the f32
    /// decay it started from).
    pub fn from_tau_r(tau: f64, r: f64, dt: f64) -> (f32, f32) {
        ((1.0 - dt / tau) as f32, (r * dt / tau) as f32)
    }

    /// NIR fires on `v > threshold`, this project on `u >= v_th`: the
    /// largest f32 below `v_th` makes the strict comparison of f32
    /// membranes fire exactly where this one does.
    pub fn strict_threshold(v_th: f32) -> f32 {
        v_th.next_down()
    }

    /// The inverse of [`LifForm::strict_threshold`].
    pub fn from_strict_threshold(threshold: f32) -> f32 {
        threshold.next_up()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strict_threshold_fires_exactly_where_the_project_does() {
        for v_th in [0.5f32, 0.2, 1.0, -0.3, 1e-3, 0.0] {
            let t = LifForm::strict_threshold(v_th);
            let below = v_th.next_down();
            for u in [below.next_down(), below, v_th, v_th.next_up(), v_th + 1.0] {
                assert_eq!(u > t, u >= v_th, "v_th {v_th}, u {u}");
            }
            assert_eq!(LifForm::from_strict_threshold(t), v_th);
        }
    }

    #[test]
    fn tau_and_r_round_trip_the_decay_at_the_conventional_step() {
        for decay in [0.25f32, 0.5, 0.9, 0.0, -0.23, 1.2] {
            let form = LifForm {
                decay,
                gain: 1.0,
                v_th: 0.5,
            };
            let (tau, r) = form.tau_r(DEFAULT_DT).unwrap();
            // One Euler step of tau dv/dt = -v + r I from v = 1, I = 2.
            let euler = 1.0 + DEFAULT_DT / tau * (-1.0 + r * 2.0);
            assert!(
                (euler - (decay as f64 + 2.0)).abs() < 1e-12,
                "{decay}: {euler}"
            );
            assert_eq!(LifForm::from_tau_r(tau, r, DEFAULT_DT), (decay, 1.0));
        }
        let no_leak = LifForm {
            decay: 1.0,
            gain: 1.0,
            v_th: 0.5,
        };
        assert_eq!(no_leak.tau_r(DEFAULT_DT), None);
    }

    #[test]
    fn a_chain_walks_in_order_and_a_branch_is_named() {
        let relu = || Node::Threshold {
            threshold: Array::filled(&[3], 0.0),
        };
        let mut g = Graph::chain(vec![3], vec![relu(), relu()], vec![3]);
        let names: Vec<&str> = g.walk().unwrap().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["input", "threshold", "threshold_1", "output"]);
        g.edges.push(("threshold".into(), "output".into()));
        let e = g.walk().unwrap_err().to_string();
        assert!(
            e.contains("`threshold`") && e.contains("branches into 2"),
            "{e}"
        );
    }
}
