//! The building block of the VAEs: one weight layer (conv, transposed conv
//! or linear), an optional batch norm (tdBN in the spiking VAE) and an
//! optional activation (a spiking neuron, or LeakyReLU in the ANN VAE).
//!
//! Spiking blocks see time folded into the batch, time-major: `[T * B, ...]`.

use snn_core::dfdx::prelude::*;
use snn_core::spec::{Fanout, Forward, HostStep, Neuron};
use snn_core::{Dev, ParamStore, Result};
use snn_nn::{BatchNorm, Conv2d, ConvTranspose2d, Linear, Nhwc, Spiking};

#[derive(Debug)]
pub enum Weights {
    Conv(Conv2d),
    ConvT(ConvTranspose2d),
    Fc(Linear),
}

#[derive(Debug)]
pub enum Activation {
    None,
    Spike(Spiking),
    /// LeakyReLU with this negative slope.
    Leaky(f32),
}

#[derive(Debug)]
pub struct Block {
    pub name: String,
    pub weights: Weights,
    pub bn: Option<BatchNorm>,
    pub act: Activation,
}

impl Block {
    /// The weight layer alone.
    fn weighted(&self, x: Nhwc, fwd: &mut Forward<'_>) -> Result<Nhwc> {
        if fwd.counts_ops() {
            self.record_synapses(&x, fwd)?;
        }
        match &self.weights {
            Weights::Conv(c) => c.forward(x, fwd.store),
            Weights::ConvT(c) => c.forward(x, fwd.store),
            Weights::Fc(l) => l.forward_image(x, fwd.store),
        }
    }

    /// What the weight layer receives, for operation counts.
    fn record_synapses(&self, x: &Nhwc, fwd: &mut Forward<'_>) -> Result<()> {
        let (_, h, w, c) = *x.shape();
        let (map, outputs) = match &self.weights {
            Weights::Conv(conv) => (conv.fan_out(h, w)?, conv.out_channels),
            Weights::ConvT(t) => (t.fan_out(h, w), t.conv.out_channels),
            Weights::Fc(l) => {
                fwd.record_synapses(&self.name, x, Fanout::Uniform(l.outputs));
                return Ok(());
            }
        };
        let fanout = Fanout::Pixels {
            map: &map,
            channels: c,
            outputs,
        };
        fwd.record_synapses(&self.name, x, fanout);
        Ok(())
    }

    /// Weight layer and batch norm: the input current of the activation.
    pub fn current(&self, x: Nhwc, fwd: &mut Forward<'_>) -> Result<Nhwc> {
        let y = self.weighted(x, fwd)?;
        match &self.bn {
            Some(bn) => bn.forward(y, fwd),
            None => Ok(y),
        }
    }

    /// The whole block on a time-major sequence `[T * B, H, W, C]`.
    pub fn forward(&self, x: Nhwc, steps: usize, fwd: &mut Forward<'_>) -> Result<Nhwc> {
        self.run(x, steps, true, fwd)
    }

    /// The block on a static input `[B, H, W, C]` (direct encoding): the
    /// weight layer and batch norm run once, the neuron repeats the current
    /// over `steps`. Returns `[steps * B, ...]` for a spiking block.
    pub fn forward_static(&self, x: Nhwc, steps: usize, fwd: &mut Forward<'_>) -> Result<Nhwc> {
        self.run(x, steps, false, fwd)
    }

    fn run(&self, x: Nhwc, steps: usize, timed: bool, fwd: &mut Forward<'_>) -> Result<Nhwc> {
        // Batch norm and a neuron go through one kernel where they can,
        // which keeps the currents once instead of twice.
        if let (Some(bn), Activation::Spike(sn)) = (&self.bn, &self.act) {
            let y = self.weighted(x, fwd)?;
            return bn.forward_spiking(y, sn, steps, timed, fwd);
        }
        let y = self.current(x, fwd)?;
        match &self.act {
            Activation::None => Ok(y),
            Activation::Leaky(slope) => Ok(leaky_relu(y, *slope)),
            Activation::Spike(sn) => sn.forward(y, steps, timed, fwd),
        }
    }

    /// The neuron of a spiking block.
    pub fn neuron(&self) -> Option<&dyn Neuron> {
        match &self.act {
            Activation::Spike(sn) => Some(sn.neuron.as_ref()),
            _ => None,
        }
    }
}

/// `max(x, 0) + slope * min(x, 0)`.
pub fn leaky_relu(x: Nhwc, slope: f32) -> Nhwc {
    let neg = x.with_empty_tape().negate().relu() * (-slope);
    x.relu() + neg
}

/// Runs a stack of spiking linear blocks one time step at a time, without
/// gradients, for autoregressive sampling. Batch norm uses its running
/// statistics, which makes the stack causal. A neuron that offers a host
/// step ([`Neuron::host_step`]) carries its state from step to step, so a
/// step costs one row of products and one neuron update: `O(T)` for the
/// sequence. A neuron without one is re-run over its currents so far (kept
/// per block), `O(T^2)` neuron updates but still one row of products.
pub struct Stepper<'s> {
    blocks: &'s [Block],
    batch: usize,
    layers: Vec<StepState>,
    steps: usize,
}

/// What a [`Stepper`] keeps of one block between steps.
enum StepState {
    /// A block without a neuron.
    Plain,
    /// The neuron's host step and its state, `state_len() * features`.
    Carried {
        step: Box<dyn HostStep>,
        state: Vec<f32>,
    },
    /// The currents of the steps so far, `[steps, batch * features]`.
    Replayed(Vec<f32>),
}

impl<'s> Stepper<'s> {
    pub fn new(blocks: &'s [Block], batch: usize, store: &ParamStore) -> Result<Self> {
        let layers = blocks
            .iter()
            .map(|block| {
                Ok(match block.neuron() {
                    None => StepState::Plain,
                    Some(neuron) => match neuron.host_step(store)? {
                        Some(step) => StepState::Carried {
                            step,
                            state: Vec::new(),
                        },
                        None => StepState::Replayed(Vec::new()),
                    },
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            blocks,
            batch,
            layers,
            steps: 0,
        })
    }

    /// Feeds one step's input `[batch, features]` (row-major) and returns
    /// the last block's output spikes at that step.
    pub fn step(&mut self, input: Vec<f32>, fwd: &mut Forward<'_>, dev: &Dev) -> Result<Vec<f32>> {
        let b = self.batch;
        let mut x = input;
        self.steps += 1;
        let t = self.steps;
        for (block, layer) in self.blocks.iter().zip(&mut self.layers) {
            let f = x.len() / b.max(1);
            let xt = dev
                .tensor_from_vec(x, (b, 1, 1, f))
                .traced(Gradients::leaky());
            let current = block.current(xt, fwd)?.retaped::<NoneTape>().as_vec();
            let m = current.len();
            x = match (layer, block.neuron()) {
                (StepState::Carried { step, state }, _) => {
                    // Zero state before the first step, as `forward` starts.
                    state.resize(step.state_len() * m, 0.0);
                    let mut spikes = vec![0.0; m];
                    step.step(&current, state, &mut spikes);
                    spikes
                }
                (StepState::Replayed(currents), Some(neuron)) => {
                    currents.extend_from_slice(&current);
                    let seq = dev
                        .tensor_from_vec(currents.clone(), (t, m))
                        .traced(Gradients::leaky());
                    let s = neuron
                        .forward(seq, fwd.store)?
                        .retaped::<NoneTape>()
                        .as_vec();
                    s[(t - 1) * m..].to_vec()
                }
                _ => current,
            };
        }
        Ok(x)
    }
}
