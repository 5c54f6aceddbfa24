//! A NIR graph as a classifier: the layer notation, the parameters by
//! store key, and the neuron constants per layer (`docs/nir.md`). Each
//! step undoes one of `nir.rs`'s folds; a node or a shape the classifier
//! cannot run is refused naming the node.

use snn_core::nir::{Array, Graph, LifForm, Meta, Node};
use snn_core::{Error, Result};

/// A classifier read from a NIR graph, ready to become a run folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// `[C, H, W]` of the graph's input.
    pub input: [usize; 3],
    /// The layers in the paper's notation (the neurons as `ALIF`, with
    /// each layer's decay and threshold among the parameters).
    pub layers: String,
    /// Whether the conv / fully connected layers carry biases.
    pub bias: bool,
    pub classes: usize,
    /// From the graph's `time_steps` metadata, when it has one.
    pub time_steps: Option<usize>,
    /// `(store key, shape, values)` of every parameter.
    pub params: Vec<(String, Vec<usize>, Vec<f32>)>,
}

/// Walks the chain of nodes, keeping the per-image shape and whether the
/// last layer's output is binary (spikes), which makes pooling exact.
struct Reader<'g> {
    dt: f64,
    shape: Vec<usize>,
    /// `[C, H, W]` before the `Flatten` that made the current vector.
    unflattened: Option<[usize; 3]>,
    binary: bool,
    atoms: Vec<String>,
    params: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// Index in `params` of the weight of the last conv / FC layer, while
    /// nothing nonlinear followed it (a neuron's input gain folds there).
    open_affine: Option<usize>,
    /// A pooling node waiting for the node after it: `(name, kind, k)`.
    pending_pool: Option<(&'g str, &'static str, usize)>,
    counts: [usize; 3], // conv, spike, fc
    any_bias: bool,
}

/// Why a `SumPool2d` that is not a max-pool of spikes is refused.
const SUM_POOL_ALONE: &str =
    "SumPool2d is read only as a max-pool of spikes: followed by a Threshold in [0, 1)";

fn refuse(node: &str, msg: impl Into<String>) -> Error {
    Error::invalid(format!("NIR node `{node}`"), msg)
}

fn f32s(a: &Array) -> Vec<f32> {
    a.data.iter().map(|v| *v as f32).collect()
}

fn uniform(node: &str, field: &str, a: &Array) -> Result<f64> {
    a.uniform().ok_or_else(|| {
        refuse(
            node,
            format!("`{field}` differs between neurons; a layer here shares one value"),
        )
    })
}

/// A square window with equal stride, no padding: `k`.
fn pool_window(
    node: &str,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<usize> {
    if kernel[0] == 0 || kernel[0] != kernel[1] || stride != kernel || padding != [0, 0] {
        return Err(refuse(node, format!("pooling {kernel:?} stride {stride:?} padding {padding:?}: only square windows with stride = window and no padding")));
    }
    Ok(kernel[0])
}

/// `Some(k)` when `w` (`[out, in]`) averages consecutive groups of `k`
/// inputs: the voting layer.
fn vote_window(w: &Array) -> Option<usize> {
    let [out, n] = w.shape[..] else { return None };
    if out == 0 || n % out != 0 {
        return None;
    }
    let k = n / out;
    let share = 1.0 / k as f64;
    let close = |v: f64, want: f64| (v - want).abs() <= 1e-7 * want.max(1.0);
    let ok = w.data.iter().enumerate().all(|(i, v)| {
        let want = if i % n / k == i / n { share } else { 0.0 };
        close(*v, want)
    });
    ok.then_some(k)
}

impl<'g> Reader<'g> {
    fn push_param(&mut self, key: String, shape: Vec<usize>, data: Vec<f32>) -> usize {
        self.params.push((key, shape, data));
        self.params.len() - 1
    }

    /// The per-image shape after a `k x k` pool.
    fn pooled(&mut self, k: usize) {
        self.shape = vec![self.shape[0], self.shape[1] / k, self.shape[2] / k];
    }

    fn flush_pool(&mut self) {
        if let Some((_, kind, k)) = self.pending_pool.take() {
            self.atoms.push(format!("{kind}k{k}s{k}"));
            self.pooled(k);
            self.binary = false;
        }
    }

    fn node(&mut self, name: &'g str, node: &'g Node) -> Result<()> {
        // A pool of spikes followed by the node that makes it a max-pool.
        if let Some((pool, kind, k)) = self.pending_pool {
            if self.completes_max_pool(node, kind, k) {
                self.pending_pool = None;
                self.atoms.push(format!("MPk{k}s{k}"));
                self.pooled(k);
                return Ok(());
            }
            if kind == "SP" {
                return Err(refuse(pool, SUM_POOL_ALONE));
            }
            self.flush_pool();
        }
        match node {
            Node::Input { .. } | Node::Output { .. } => Ok(()),
            Node::Conv2d { .. } => self.conv(name, node),
            Node::Flatten {
                start_dim,
                end_dim,
                input_type,
            } => self.flatten(name, *start_dim, *end_dim, input_type),
            Node::Affine { weight, bias } => self.affine(name, weight, Some(bias)),
            Node::Linear { weight } => self.affine(name, weight, None),
            Node::Lif {
                tau,
                r,
                v_leak,
                v_threshold,
                v_reset,
            } => {
                for (field, a) in [("v_leak", v_leak), ("v_reset", v_reset)] {
                    if uniform(name, field, a)? != 0.0 {
                        return Err(refuse(
                            name,
                            format!(
                                "`{field}` must be 0 (the neurons here leak to and reset to 0)"
                            ),
                        ));
                    }
                }
                let (decay, gain) = LifForm::from_tau_r(
                    uniform(name, "tau", tau)?,
                    uniform(name, "r", r)?,
                    self.dt,
                );
                self.neuron(
                    name,
                    decay,
                    gain,
                    uniform(name, "v_threshold", v_threshold)?,
                )
            }
            Node::If {
                r,
                v_threshold,
                v_reset,
            } => {
                if uniform(name, "v_reset", v_reset)? != 0.0 {
                    return Err(refuse(name, "`v_reset` must be 0"));
                }
                let gain = (uniform(name, "r", r)? * self.dt) as f32;
                self.neuron(name, 1.0, gain, uniform(name, "v_threshold", v_threshold)?)
            }
            // A threshold alone is a neuron that keeps nothing.
            Node::Threshold { threshold } => {
                self.neuron(name, 0.0, 1.0, uniform(name, "threshold", threshold)?)
            }
            Node::SumPool2d {
                kernel_size,
                stride,
                padding,
            }
            | Node::AvgPool2d {
                kernel_size,
                stride,
                padding,
            } => {
                let k = pool_window(name, *kernel_size, *stride, *padding)?;
                let [_, h, w] = self.shape[..] else {
                    return Err(refuse(
                        name,
                        format!("pooling needs a [C, H, W] input, has {:?}", self.shape),
                    ));
                };
                if h % k != 0 || w % k != 0 {
                    return Err(refuse(
                        name,
                        format!("pooling {k}x{k} on a {h}x{w} map: size not divisible"),
                    ));
                }
                let kind = if matches!(node, Node::SumPool2d { .. }) {
                    "SP"
                } else {
                    "AP"
                };
                self.pending_pool = Some((name, kind, k));
                Ok(())
            }
        }
    }

    /// A `Threshold` in `[0, 1)` after a sum-pool of spikes, or a
    /// memoryless neuron firing on any positive average after an
    /// average-pool of spikes: exactly a max-pool.
    fn completes_max_pool(&self, node: &Node, kind: &str, k: usize) -> bool {
        if !self.binary {
            return false;
        }
        let smallest = if kind == "SP" {
            1.0
        } else {
            1.0 / (k * k) as f64
        };
        let fires_on_any = |t: f64| (0.0..smallest).contains(&t);
        match node {
            Node::Threshold { threshold } => threshold.uniform().is_some_and(fires_on_any),
            Node::Lif {
                tau,
                r,
                v_leak,
                v_threshold,
                v_reset,
            } if kind == "AP" => {
                let one = |a: &Array| a.uniform();
                let (Some(t), Some(r), Some(th)) = (one(tau), one(r), one(v_threshold)) else {
                    return false;
                };
                LifForm::from_tau_r(t, r, self.dt) == (0.0, 1.0)
                    && one(v_leak) == Some(0.0)
                    && one(v_reset).is_some()
                    && fires_on_any(th)
            }
            _ => false,
        }
    }

    fn conv(&mut self, name: &str, node: &Node) -> Result<()> {
        let Node::Conv2d {
            input_shape,
            weight,
            bias,
            stride,
            padding,
            dilation,
            groups,
        } = node
        else {
            return Ok(());
        };
        let [cout, cin, kh, kw] = weight.shape[..] else {
            return Err(refuse(
                name,
                format!(
                    "weight of shape {:?}; expected [C_out, C_in, kH, kW]",
                    weight.shape
                ),
            ));
        };
        if *groups != 1
            || *dilation != [1, 1]
            || kh != kw
            || stride[0] != stride[1]
            || padding[0] != padding[1]
        {
            return Err(refuse(name, "only square kernels, equal strides and paddings, dilation 1 and groups 1 are supported"));
        }
        let [c, h, w] = self.shape[..] else {
            return Err(refuse(
                name,
                format!(
                    "a convolution needs a [C, H, W] input, has {:?}",
                    self.shape
                ),
            ));
        };
        if c != cin || *input_shape != [h, w] {
            return Err(refuse(
                name,
                format!(
                    "expects {cin} x {input_shape:?} input, the layer before gives {:?}",
                    self.shape
                ),
            ));
        }
        let (k, s, p) = (kh, stride[0], padding[0]);
        if h + 2 * p < k || w + 2 * p < k || s == 0 {
            return Err(refuse(
                name,
                format!("kernel {k} stride {s} padding {p} does not fit a {h}x{w} input"),
            ));
        }
        // [C_out, C_in, k, k] -> [k, k, C_in, C_out].
        let mut ours = vec![0.0f32; weight.data.len()];
        for (i, v) in weight.data.iter().enumerate() {
            let (kx, ky, ci, o) = (i % k, i / k % k, i / (k * k) % cin, i / (k * k * cin));
            ours[((ky * k + kx) * cin + ci) * cout + o] = *v as f32;
        }
        self.counts[0] += 1;
        let key = format!("conv{}", self.counts[0]);
        let at = self.push_param(format!("{key}.weight"), vec![k, k, cin, cout], ours);
        self.push_param(format!("{key}.bias"), vec![cout], f32s(bias));
        self.any_bias |= bias.data.iter().any(|b| *b != 0.0);
        self.atoms.push(format!("c{cout}k{k}s{s}p{p}"));
        self.shape = vec![cout, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1];
        self.binary = false;
        self.open_affine = Some(at);
        Ok(())
    }

    fn flatten(&mut self, name: &str, start: i64, end: i64, input_type: &[usize]) -> Result<()> {
        let rank = self.shape.len() as i64;
        let (s, e) = (
            if start < 0 { start + rank } else { start },
            if end < 0 { end + rank } else { end },
        );
        if self.shape.len() == 1 {
            return Ok(());
        }
        if (s, e) != (0, rank - 1) || (!input_type.is_empty() && input_type != self.shape) {
            return Err(refuse(name, format!("flattens dims {start}..={end} of {input_type:?}; only a full flatten of the layer's {:?} output is supported", self.shape)));
        }
        self.unflattened = Some([self.shape[0], self.shape[1], self.shape[2]]);
        self.shape = vec![self.shape.iter().product()];
        Ok(())
    }

    fn affine(&mut self, name: &str, weight: &Array, bias: Option<&Array>) -> Result<()> {
        let [out, inputs] = weight.shape[..] else {
            return Err(refuse(
                name,
                format!("weight of shape {:?}; expected [out, in]", weight.shape),
            ));
        };
        let n: usize = self.shape.iter().product();
        if inputs != n || (self.shape.len() == 3 && self.shape[1..] != [1, 1]) {
            return Err(refuse(name, format!("takes {inputs} inputs, the layer before gives {:?} (a Flatten must come first)", self.shape)));
        }
        let zero_bias = bias.is_none_or(|b| b.data.iter().all(|v| *v == 0.0));
        // The classifier reads `AP` after a vector as its voting layer.
        let vector = self.unflattened.is_none_or(|[_, h, w]| h * w == 1);
        if let (Some(k), true, true) = (vote_window(weight), zero_bias, vector) {
            self.atoms.push(format!("APk{k}s{k}"));
            self.shape = vec![out];
            self.binary = false;
            return Ok(());
        }
        // NIR's column ch H W + pix is row pix C + ch of the [in, out] weight.
        let [c, h, w] = self
            .unflattened
            .filter(|_| self.shape.len() == 1)
            .unwrap_or([n, 1, 1]);
        let mut ours = vec![0.0f32; weight.data.len()];
        for o in 0..out {
            for col in 0..inputs {
                let (ch, pix) = (col / (h * w), col % (h * w));
                ours[(pix * c + ch) * out + o] = weight.data[o * inputs + col] as f32;
            }
        }
        self.counts[2] += 1;
        let key = format!("fc{}", self.counts[2]);
        let at = self.push_param(format!("{key}.weight"), vec![inputs, out], ours);
        let b = bias.map_or(vec![0.0; out], f32s);
        self.any_bias |= !zero_bias;
        self.push_param(format!("{key}.bias"), vec![out], b);
        self.atoms.push(format!("FC{out}"));
        self.shape = vec![out];
        self.unflattened = None;
        self.binary = false;
        self.open_affine = Some(at);
        Ok(())
    }

    /// A neuron layer `u = decay r + gain x`, firing on `u > threshold`.
    fn neuron(&mut self, name: &str, decay: f32, gain: f32, threshold: f64) -> Result<()> {
        if !decay.is_finite() || !gain.is_finite() || !threshold.is_finite() {
            return Err(refuse(
                name,
                format!("decay {decay}, gain {gain}, threshold {threshold}: not finite (tau = 0?)"),
            ));
        }
        if gain != 1.0 {
            let at = self.open_affine.ok_or_else(|| {
                refuse(name, format!("input gain {gain} (r dt / tau) needs a convolution or affine layer directly before it to fold into"))
            })?;
            for i in [at, at + 1] {
                self.params[i].2.iter_mut().for_each(|v| *v *= gain);
            }
        }
        self.counts[1] += 1;
        let key = format!("sn{}", self.counts[1]);
        self.push_param(format!("{key}.tau"), vec![], vec![decay]);
        self.push_param(
            format!("{key}.v_th"),
            vec![],
            vec![LifForm::from_strict_threshold(threshold as f32)],
        );
        self.atoms.push("ALIF".into());
        self.binary = true;
        self.open_affine = None;
        Ok(())
    }
}

/// Reads a chain `Input -> ... -> Output` of the node types `docs/nir.md`
/// lists, with NIR's time constants at Euler step `dt`.
///
/// `image` is the dataset's `[C, H, W]`: a graph whose input is the image
/// already flattened (`[C * H * W]`, as exporters write a network that
/// starts with a fully connected layer) reads it channels first.
pub fn from_nir(graph: &Graph, dt: f64, image: [usize; 3]) -> Result<Imported> {
    let chain = graph.walk()?;
    let (first, Node::Input { shape }) = chain[0] else {
        return Err(Error::invalid(
            "NIR graph",
            "the chain does not start at an Input",
        ));
    };
    let flat = shape.len() == 1 && shape[0] == image.iter().product::<usize>();
    let input: [usize; 3] = if flat {
        image
    } else {
        shape.as_slice().try_into().map_err(|_| {
            refuse(
                first,
                format!("input of shape {shape:?}; images here are [C, H, W] (or flattened, {image:?} here)"),
            )
        })?
    };
    let mut r = Reader {
        dt,
        shape: if flat { shape.clone() } else { input.to_vec() },
        unflattened: flat.then_some(image),
        binary: false,
        atoms: Vec::new(),
        params: Vec::new(),
        open_affine: None,
        pending_pool: None,
        counts: [0; 3],
        any_bias: false,
    };
    for (name, node) in &chain {
        r.node(name, node)?;
    }
    if let Some((name, "SP", _)) = r.pending_pool {
        return Err(refuse(name, SUM_POOL_ALONE));
    }
    r.flush_pool();
    let classes: usize = r.shape.iter().product();
    if r.shape.iter().filter(|d| **d != 1).count() > 1 || r.atoms.is_empty() {
        return Err(Error::invalid(
            "NIR graph",
            format!("ends on a {:?} map, not a vector of class scores", r.shape),
        ));
    }
    if !r.any_bias {
        r.params.retain(|(k, _, _)| !k.ends_with(".bias"));
    }
    let time_steps = match graph.metadata.get("time_steps") {
        Some(Meta::Int(t)) if *t > 0 => Some(*t as usize),
        _ => None,
    };
    Ok(Imported {
        input,
        layers: r.atoms.join("-"),
        bias: r.any_bias,
        classes,
        time_steps,
        params: r.params,
    })
}
