//! The spiking classifier: a layer list in the paper's notation, the
//! configured neuron at every spiking layer, the configured decoder on the
//! output sequence.
//!
//! Direct encoding: the layers before the first spiking layer see the static
//! image once (`[B, ...]`); their output is repeated over `T` at the first
//! neuron, since it would be the same at every step.

// The fused spike + pool layer; its declaration is this crate's one gate of
// host kernels (see `snn_core::device`).
#[cfg(not(feature = "cuda"))]
mod fused;
mod nir;
pub mod nir_import;
pub mod notation;

use notation::Atom;
use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::init::{Rng, WeightInit};
use snn_core::spec::{
    Decoder, DecoderInput, Fanout, Forward, Model, ModelParts, ModelSpec, NeuronConstants,
    Objective,
};
use snn_core::{Error, Img, Mat, ParamStore, Result};
use snn_nn::{pool, BatchNorm, Conv2d, Conv2dConfig, Dropout, Linear, LinearConfig, Nhwc, Spiking};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierSpec {
    /// Layers in the paper's Table 8 notation.
    pub layers: String,
    /// Drop probability of every `DP`.
    pub dropout: f32,
    /// Bias terms in conv and FC layers (the paper uses none).
    pub bias: bool,
    /// Weight initialisation of conv and FC layers.
    pub init: WeightInit,
}

impl Default for ClassifierSpec {
    fn default() -> Self {
        Self {
            layers: "{c128k3s1-BN-ALIF-MPk2s2}*2-DP-FC2048-ALIF-DP-FC100-ALIF-APk10s10".into(),
            dropout: 0.5,
            bias: false,
            init: WeightInit::Torch,
        }
    }
}

#[derive(Debug)]
enum Layer {
    Conv(Conv2d),
    Bn(BatchNorm),
    Spike(Spiking),
    MaxPool(usize),
    AvgPool(usize),
    Vote(usize),
    Dropout(Dropout),
    Fc(Linear),
}

#[derive(Debug)]
pub struct Classifier {
    layers: Vec<Layer>,
    decoder: Box<dyn Decoder>,
    time_steps: usize,
    /// `[C, H, W]` of the images (NIR's input).
    input_shape: [usize; 3],
    classes: usize,
    loss: snn_core::loss::LossKind,
    summary: String,
}

#[typetag::serde(name = "classifier")]
impl ModelSpec for ClassifierSpec {
    fn build(
        &self,
        parts: &ModelParts<'_>,
        store: &mut ParamStore,
        rng: &mut Rng,
    ) -> Result<Box<dyn Model>> {
        let atoms = notation::parse(&self.layers)?;
        let [mut c, mut h, mut w] = parts.input_shape;
        let mut lines = vec![format!("input {c}x{h}x{w}, T = {}", parts.time_steps)];
        let mut layers = Vec::new();
        let mut counts = [0usize; 4]; // conv, bn, spike, fc
        let mut next = |i: usize| {
            counts[i] += 1;
            counts[i]
        };
        for atom in atoms {
            let layer = match atom {
                Atom::Conv {
                    out,
                    kernel,
                    stride,
                    padding,
                } => {
                    let name = format!("conv{}", next(0));
                    let conv = Conv2dConfig {
                        in_channels: c,
                        out_channels: out,
                        kernel,
                        stride,
                        padding,
                        bias: self.bias,
                        weight_init: self.init,
                    }
                    .init(&mut store.scope(&name), rng)?;
                    (h, w) = conv.out_size(h, w)?;
                    c = out;
                    Layer::Conv(conv)
                }
                Atom::BatchNorm => {
                    let name = format!("bn{}", next(1));
                    Layer::Bn(BatchNorm::new(&mut store.scope(&name), c)?)
                }
                Atom::Spike => {
                    let name = format!("sn{}", next(2));
                    let neuron = parts.neuron("classifier")?.build(&name, store)?;
                    Layer::Spike(Spiking { name, neuron })
                }
                Atom::MaxPool { kernel, stride } | Atom::AvgPool { kernel, stride } => {
                    if kernel != stride {
                        return Err(Error::invalid(
                            "model.layers",
                            format!("pooling needs window = stride, got k{kernel}s{stride}"),
                        ));
                    }
                    let max = matches!(atom, Atom::MaxPool { .. });
                    if h == 1 && w == 1 && !max {
                        if c % kernel != 0 {
                            return Err(Error::invalid(
                                "model.layers",
                                format!("voting layer APk{kernel}: {c} features not divisible by {kernel}"),
                            ));
                        }
                        c /= kernel;
                        Layer::Vote(kernel)
                    } else {
                        if h % kernel != 0 || w % kernel != 0 {
                            return Err(Error::invalid(
                                "model.layers",
                                format!("pooling k{kernel} on a {h}x{w} map: size not divisible"),
                            ));
                        }
                        h /= kernel;
                        w /= kernel;
                        if max {
                            Layer::MaxPool(kernel)
                        } else {
                            Layer::AvgPool(kernel)
                        }
                    }
                }
                Atom::Dropout => Layer::Dropout(Dropout::new(self.dropout)?),
                Atom::Fc { out } => {
                    let name = format!("fc{}", next(3));
                    let fc = LinearConfig {
                        inputs: c * h * w,
                        outputs: out,
                        bias: self.bias,
                        weight_init: self.init,
                    }
                    .init(&mut store.scope(&name), rng)?;
                    (c, h, w) = (out, 1, 1);
                    Layer::Fc(fc)
                }
            };
            lines.push(format!("{atom:?} -> {c}x{h}x{w}"));
            layers.push(layer);
        }
        if h != 1 || w != 1 {
            return Err(Error::invalid(
                "model.layers",
                format!(
                    "the network ends on a {c}x{h}x{w} map; end with FC or pooling to a vector"
                ),
            ));
        }
        if c != parts.classes {
            return Err(Error::invalid(
                "model.layers",
                format!(
                    "the network ends with {c} outputs, the dataset has {} classes",
                    parts.classes
                ),
            ));
        }
        let input = DecoderInput {
            time_steps: parts.time_steps,
            channels: c,
        };
        let decoder = parts
            .decoder("classifier")?
            .build("decoder", input, store, rng)?;
        Ok(Box::new(Classifier {
            layers,
            decoder,
            time_steps: parts.time_steps,
            input_shape: parts.input_shape,
            classes: c,
            loss: parts.loss,
            summary: lines.join("\n"),
        }))
    }

    fn about(&self) -> &'static str {
        "spiking classifier; layers in the paper's Table 8 notation, direct encoding"
    }
}

/// `conv1` of the store key `conv1.weight`.
fn layer_name(weight_key: &str) -> &str {
    weight_key.strip_suffix(".weight").unwrap_or(weight_key)
}

/// Repeats a static `[B, H, W, C]` activation over `T` steps (time-major).
fn repeat_over_time(x: Nhwc, steps: usize) -> Nhwc {
    let (b, h, w, c) = *x.shape();
    x.reshape_like(&(b, h * w * c))
        .broadcast_like::<_, Axis<0>>(&(steps, b, h * w * c))
        .reshape_like(&(steps * b, h, w, c))
}

impl Classifier {
    /// The window of a max-pool directly after layer `i`.
    fn pool_after(&self, i: usize) -> Option<usize> {
        match self.layers.get(i + 1) {
            Some(Layer::MaxPool(k)) => Some(*k),
            _ => None,
        }
    }

    /// A spiking layer followed by a max-pool starting at layer `i`, with
    /// the batch norm before it when layer `i` is one (on the CPU kernels):
    /// the layers one fused kernel can run.
    fn spike_pool_at(&self, i: usize) -> Option<(&Spiking, Option<&BatchNorm>, usize)> {
        match (&self.layers[i], self.layers.get(i + 1)) {
            (Layer::Spike(sn), _) => Some((sn, None, self.pool_after(i)?)),
            (Layer::Bn(bn), Some(Layer::Spike(sn))) if bn.kernel_impl.host() => {
                Some((sn, Some(bn), self.pool_after(i + 1)?))
            }
            _ => None,
        }
    }
}

impl Model for Classifier {
    fn forward(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Mat> {
        let (b, c, h, w) = *x.shape();
        let steps = self.time_steps;
        // [B, C, H, W] -> channels-last once.
        let mut x: Nhwc = x
            .permute::<_, Axes4<0, 2, 3, 1>>()
            .reshape_like(&(b, h, w, c));
        let mut timed = false;
        let mut skip = 0;
        for (i, layer) in self.layers.iter().enumerate() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            // A spiking layer and the max-pool after it run fused where
            // the neuron offers a host step: its `T` full-size spike maps
            // (and in training their gradient) never exist. A batch norm
            // just before them joins in: the currents are then never
            // stored, only batch norm's input.
            if let Some((sn, bn, k)) = self.spike_pool_at(i) {
                snn_core::host_kernels! {
                    if let Some(step) = snn_nn::spiking::fusable_step(sn.neuron.as_ref(), fwd.store)? {
                        let shape = fused::geometry(&x, timed, steps, k);
                        x = fused::spike_pool(step, x, shape, fwd, (sn, bn))?;
                        timed = true;
                        skip = if bn.is_some() { 2 } else { 1 };
                        continue;
                    }
                }
                // Read only by the host kernels; a CUDA build compiles them out.
                let _ = (sn, bn, k);
            }
            x = match layer {
                Layer::Conv(conv) => {
                    if fwd.counts_ops() {
                        let (_, h, w, c) = *x.shape();
                        let map = conv.fan_out(h, w)?;
                        let outputs = conv.out_channels;
                        let fanout = Fanout::Pixels {
                            map: &map,
                            channels: c,
                            outputs,
                        };
                        fwd.record_synapses(layer_name(&conv.weight), &x, fanout);
                    }
                    conv.forward(x, fwd.store)?
                }
                Layer::Bn(bn) => bn.forward(x, fwd)?,
                Layer::Spike(sn) => {
                    let y = sn.forward(x, steps, timed, fwd)?;
                    timed = true;
                    y
                }
                Layer::MaxPool(k) => pool::max_pool(x, *k, snn_core::Impl::Auto)?,
                Layer::AvgPool(k) => pool::avg_pool(x, *k)?,
                Layer::Vote(k) => {
                    let (n, _, _, c) = *x.shape();
                    pool::vote(x.reshape_like(&(n, c)), *k)?.reshape_like(&(n, 1, 1, c / k))
                }
                Layer::Dropout(dp) => {
                    if timed {
                        dp.forward(x, steps, fwd)?
                    } else {
                        dp.forward(x, 1, fwd)?
                    }
                }
                Layer::Fc(fc) => {
                    let fanout = Fanout::Uniform(fc.outputs);
                    fwd.record_synapses(layer_name(&fc.weight), &x, fanout);
                    fc.forward_image(x, fwd.store)?
                }
            };
        }
        if !timed {
            x = repeat_over_time(x, steps);
        }
        let k = self.classes;
        let seq = x.reshape_like(&(steps, b, 1, 1, k));
        let out = self.decoder.forward(seq, fwd.store)?;
        Ok(out.reshape_like(&(b, k)))
    }

    fn objective(&self, x: Img, labels: &[u8], fwd: &mut Forward<'_>) -> Result<Objective> {
        let out = self.forward(x, fwd)?;
        let predictions =
            snn_core::loss::predictions(&out.retaped::<NoneTape>().as_vec(), labels.len());
        Ok(Objective {
            loss: snn_core::loss::loss(self.loss, out, labels),
            terms: Vec::new(),
            predictions: Some(predictions),
        })
    }

    fn neuron_layers(&self) -> Vec<String> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                Layer::Spike(sn) => Some(sn.name.clone()),
                _ => None,
            })
            .collect()
    }

    fn neuron_constants(&self, store: &ParamStore) -> Result<Vec<(String, NeuronConstants)>> {
        let mut out = Vec::new();
        for l in &self.layers {
            if let Layer::Spike(sn) = l {
                out.push((sn.name.clone(), sn.neuron.constants(store)?));
            }
        }
        Ok(out)
    }

    fn summary(&self) -> String {
        self.summary.clone()
    }

    fn to_nir(
        &self,
        store: &ParamStore,
        options: &snn_core::nir::ExportOptions,
    ) -> Result<snn_core::nir::Graph> {
        self.export(store, options)
    }
}
