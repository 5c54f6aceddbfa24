//! The classifier to and from NIR (`docs/nir.md` states every equation).
//!
//! Export folds what NIR has no node for into what it has: batch norm
//! (inference statistics) into the convolution or affine map before it, a
//! neuron's input gain (the decay-input charge) into the same map, the
//! channels-last column order of a linear layer into NIR's channels-first
//! `Flatten`, and a max-pool of spikes into `SumPool2d` + `Threshold` (or
//! `AvgPool2d` + a memoryless `LIF`). Import reverses each step, so
//! export-then-import runs the same network.

use super::{Classifier, Layer};
use snn_core::nir::{Array, ExportOptions, Graph, LifForm, Meta, Node, PoolForm};
use snn_core::{Error, ParamStore, Result};

/// What export tracks between layers: the per-image shape, channels first.
struct Cursor {
    shape: Vec<usize>,
    nodes: Vec<Node>,
}

impl Cursor {
    /// `[C, H, W]`, flattened to `[C * H * W]` first if a vector is needed.
    fn flatten(&mut self) {
        if self.shape.len() == 3 {
            let n = self.shape.iter().product();
            self.nodes.push(Node::Flatten {
                start_dim: 0,
                end_dim: -1,
                input_type: self.shape.clone(),
            });
            self.shape = vec![n];
        }
    }

    /// The last affine node (convolution or affine), skipping the linear
    /// nodes that commute with a per-channel scale.
    fn last_affine(&mut self, layer: &str) -> Result<&mut Node> {
        let found = self
            .nodes
            .iter_mut()
            .rev()
            .find(|n| !matches!(n, Node::AvgPool2d { .. } | Node::Flatten { .. }));
        match found {
            Some(n @ (Node::Conv2d { .. } | Node::Affine { .. })) => Ok(n),
            _ => Err(Error::invalid(
                format!("layer {layer}"),
                "needs a convolution or fully connected layer before it to fold into (NIR has no node for it alone)",
            )),
        }
    }
}

/// Multiplies output channel `o` of a conv / affine node by `scale[o]` and
/// adds `shift[o]` to its bias.
fn scale_outputs(node: &mut Node, scale: &[f64], shift: &[f64]) {
    let (Node::Conv2d { weight, bias, .. } | Node::Affine { weight, bias }) = node else {
        return;
    };
    let per = weight.data.len() / scale.len();
    for (o, row) in weight.data.chunks_mut(per).enumerate() {
        row.iter_mut().for_each(|w| *w *= scale[o]);
        bias.data[o] = bias.data[o] * scale[o] + shift[o];
    }
}

fn values(store: &ParamStore, key: &str) -> Result<Vec<f64>> {
    Ok(store.values(key)?.into_iter().map(f64::from).collect())
}

fn bias_or_zero(store: &ParamStore, key: &Option<String>, n: usize) -> Result<Array> {
    let data = match key {
        Some(k) => values(store, k)?,
        None => vec![0.0; n],
    };
    Array::new(vec![n], data)
}

impl Classifier {
    pub(super) fn export(&self, store: &ParamStore, opt: &ExportOptions) -> Result<Graph> {
        let readout = self.decoder.nir_readout().ok_or_else(|| {
            Error::invalid(
                "decoder",
                "only the mean-rate readout has a NIR form (TAID and last-membrane read hidden state NIR does not expose)",
            )
        })?;
        let input = self.input_shape.to_vec();
        let mut at = Cursor {
            shape: input.clone(),
            nodes: Vec::new(),
        };
        for layer in &self.layers {
            self.export_layer(layer, store, opt, &mut at)?;
        }
        at.flatten();
        // Folded in f64, stored as f32: the graph holds what a file holds.
        for node in &mut at.nodes {
            let arrays = match node {
                Node::Conv2d { weight, bias, .. } | Node::Affine { weight, bias } => {
                    vec![weight, bias]
                }
                Node::Linear { weight } => vec![weight],
                _ => Vec::new(),
            };
            for v in arrays.into_iter().flat_map(|a| a.data.iter_mut()) {
                *v = *v as f32 as f64;
            }
        }
        let mut graph = Graph::chain(input, at.nodes, at.shape);
        let meta = [
            ("producer", Meta::Text("snn-rs".into())),
            ("time_steps", Meta::Int(self.time_steps as i64)),
            ("dt", Meta::Float(opt.dt)),
            (
                "encoding",
                Meta::Text(
                    "direct: the static image is the input at every one of the time_steps".into(),
                ),
            ),
            ("readout", Meta::Text(readout.into())),
        ];
        graph.metadata = meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Ok(graph)
    }

    fn export_layer(
        &self,
        layer: &Layer,
        store: &ParamStore,
        opt: &ExportOptions,
        at: &mut Cursor,
    ) -> Result<()> {
        match layer {
            Layer::Conv(conv) => conv_node(conv, store, at),
            Layer::Bn(bn) => fold_batch_norm(bn, store, at),
            Layer::Spike(sn) => {
                let form = sn.neuron.lif_form(store)?.ok_or_else(|| {
                    Error::invalid(
                        format!("layer {}", sn.name),
                        "this neuron has no NIR form (LIF, PLIF and ALIF have)",
                    )
                })?;
                if form.gain != 1.0 {
                    let n = at.shape[0];
                    let gain = vec![form.gain as f64; n];
                    scale_outputs(at.last_affine(&sn.name)?, &gain, &vec![0.0; n]);
                }
                at.nodes
                    .push(neuron_node(&at.shape, form.decay, form.v_th, opt.dt));
                Ok(())
            }
            Layer::MaxPool(k) => max_pool_nodes(*k, opt, at),
            Layer::AvgPool(k) => {
                let pool = [*k; 2];
                at.nodes.push(Node::AvgPool2d {
                    kernel_size: pool,
                    stride: pool,
                    padding: [0, 0],
                });
                at.shape = vec![at.shape[0], at.shape[1] / k, at.shape[2] / k];
                Ok(())
            }
            Layer::Vote(k) => {
                at.flatten();
                let (n, out) = (at.shape[0], at.shape[0] / k);
                let share = |i: usize| {
                    if i % n / k == i / n {
                        1.0 / *k as f64
                    } else {
                        0.0
                    }
                };
                let weight = Array::new(vec![out, n], (0..out * n).map(share).collect())?;
                at.nodes.push(Node::Linear { weight });
                at.shape = vec![out];
                Ok(())
            }
            Layer::Dropout(_) => Ok(()),
            Layer::Fc(fc) => fc_node(fc, store, at),
        }
    }
}

/// `Conv2d`, its weight from `[k, k, C_in, C_out]` to `[C_out, C_in, k, k]`.
fn conv_node(conv: &snn_nn::Conv2d, store: &ParamStore, at: &mut Cursor) -> Result<()> {
    let (k, cin, cout) = (conv.kernel, conv.in_channels, conv.out_channels);
    let w = values(store, &conv.weight)?;
    let mut nir = vec![0.0; w.len()];
    for (i, v) in w.iter().enumerate() {
        let (o, c) = (i % cout, i / cout % cin);
        let (kx, ky) = (i / (cout * cin) % k, i / (cout * cin * k));
        nir[((o * cin + c) * k + ky) * k + kx] = *v;
    }
    let [_, h, wd] = at.shape[..] else {
        return Err(Error::shape(
            &conv.weight,
            "a convolution after a flattened vector",
        ));
    };
    at.nodes.push(Node::Conv2d {
        input_shape: [h, wd],
        weight: Array::new(vec![cout, cin, k, k], nir)?,
        bias: bias_or_zero(store, &conv.bias, cout)?,
        stride: [conv.stride; 2],
        padding: [conv.padding; 2],
        dilation: [1, 1],
        groups: 1,
    });
    let (ho, wo) = conv.out_size(h, wd)?;
    at.shape = vec![cout, ho, wo];
    Ok(())
}

/// Batch norm at its inference statistics, folded into the layer before:
/// `s = scale gamma / sqrt(var + eps)`, `W' = s W`, `b' = s (b - mean) + beta`.
fn fold_batch_norm(bn: &snn_nn::BatchNorm, store: &ParamStore, at: &mut Cursor) -> Result<()> {
    let key = |s: &str| format!("{}.{s}", bn.name);
    let (g, b) = (values(store, &key("weight"))?, values(store, &key("bias"))?);
    let (m, v) = (
        values(store, &key("running_mean"))?,
        values(store, &key("running_var"))?,
    );
    let scale: Vec<f64> = (0..bn.channels)
        .map(|c| bn.scale as f64 * g[c] / (v[c] + bn.eps as f64).sqrt())
        .collect();
    let shift: Vec<f64> = (0..bn.channels).map(|c| b[c] - m[c] * scale[c]).collect();
    scale_outputs(at.last_affine(&bn.name)?, &scale, &shift);
    Ok(())
}

/// A max-pool of spikes, exact on binary inputs (any spike in the window).
fn max_pool_nodes(k: usize, opt: &ExportOptions, at: &mut Cursor) -> Result<()> {
    let [c, h, w] = at.shape[..] else {
        return Err(Error::shape("max-pool", "after a flattened vector"));
    };
    let out = [c, h / k, w / k];
    let (kernel_size, stride, padding) = ([k; 2], [k; 2], [0, 0]);
    match opt.pool {
        PoolForm::SumThreshold => {
            at.nodes.push(Node::SumPool2d {
                kernel_size,
                stride,
                padding,
            });
            at.nodes.push(Node::Threshold {
                threshold: Array::filled(&out, 0.0),
            });
        }
        PoolForm::AvgLif => {
            at.nodes.push(Node::AvgPool2d {
                kernel_size,
                stride,
                padding,
            });
            // Fires on any average of at least 1/k^2; a quarter of that
            // keeps it firing under a subtractive reset too.
            at.nodes
                .push(memoryless(&out, 0.25 / (k * k) as f32, opt.dt));
        }
    }
    at.shape = out.to_vec();
    Ok(())
}

/// `Flatten` (once) and `Affine`: row `(y W + x) C + ch` of the `[in,
/// out]` weight (channels-last) is NIR's column `ch H W + y W + x`.
fn fc_node(fc: &snn_nn::Linear, store: &ParamStore, at: &mut Cursor) -> Result<()> {
    let [c, h, w] = match at.shape[..] {
        [c, h, w] => [c, h, w],
        [n] => [n, 1, 1],
        _ => return Err(Error::shape(&fc.weight, "unexpected input rank")),
    };
    at.flatten();
    let wt = values(store, &fc.weight)?;
    let (inputs, out) = (fc.inputs, fc.outputs);
    let mut nir = vec![0.0; wt.len()];
    for row in 0..inputs {
        let col = (row % c) * h * w + row / c;
        for o in 0..out {
            nir[o * inputs + col] = wt[row * out + o];
        }
    }
    at.nodes.push(Node::Affine {
        weight: Array::new(vec![out, inputs], nir)?,
        bias: bias_or_zero(store, &fc.bias, out)?,
    });
    at.shape = vec![out];
    Ok(())
}

/// A layer of neurons `u = decay r + x`, hard reset to 0, firing at
/// `u >= v_th`, as NIR's `LIF` (or `IF` without leak).
fn neuron_node(shape: &[usize], decay: f32, v_th: f32, dt: f64) -> Node {
    let form = LifForm {
        decay,
        gain: 1.0,
        v_th,
    };
    let fill = |v: f64| Array::filled(shape, v);
    let threshold = fill(LifForm::strict_threshold(v_th) as f64);
    match form.tau_r(dt) {
        Some((tau, r)) => Node::Lif {
            tau: fill(tau),
            r: fill(r),
            v_leak: fill(0.0),
            v_threshold: threshold,
            v_reset: fill(0.0),
        },
        None => Node::If {
            r: fill(1.0 / dt),
            v_threshold: threshold,
            v_reset: fill(0.0),
        },
    }
}

fn memoryless(shape: &[usize], v_th: f32, dt: f64) -> Node {
    neuron_node(shape, 0.0, v_th, dt)
}
