//! The plugin traits. A *spec* is the serde-deserialisable description read
//! from a config (registered by `type` name with typetag); `build` turns it
//! into the runtime object, registering its parameters in the store.
//!
//! A third-party crate adds a neuron by implementing [`NeuronSpec`] and
//! [`Neuron`] and annotating the impl with `#[typetag::serde(name = "...")]`;
//! linking the crate is enough for configs to find it.

use crate::init::Rng;
use crate::{Flat, Img, Mat, ParamStore, Result, SeqImg};
use std::fmt::Debug;

/// A spiking neuron layer, multi-step: it sees the whole time sequence.
pub trait Neuron: Debug + Send + Sync {
    /// `x` is the input current `[T, M]` (time-major, `M` = batch x features
    /// flattened). Returns the spike train `[T, M]`, values in {0, 1}.
    /// State starts at zero on every call: nothing leaks between batches.
    fn forward(&self, x: Mat, store: &ParamStore) -> Result<Mat>;

    /// The same for an input that is identical at every step (direct
    /// encoding): `x` is `[1, M]`, the result `[steps, M]`. The default
    /// repeats the row; a kernel can avoid the copy.
    fn forward_static(&self, x: Mat, steps: usize, store: &ParamStore) -> Result<Mat> {
        self.forward(repeat_rows(x, steps)?, store)
    }

    /// Current values of the neuron's scalar constants (learned or not), by
    /// name, for metrics: e.g. `[("tau", 0.25), ("v_th", 0.2)]`.
    fn constants(&self, store: &ParamStore) -> Result<NeuronConstants>;
}

/// Repeats a `[1, M]` row `steps` times: `[steps, M]`.
pub fn repeat_rows(x: Mat, steps: usize) -> Result<Mat> {
    use dfdx::prelude::*;
    let (rows, m) = *x.shape();
    if rows != 1 {
        return Err(crate::Error::shape(
            "static input",
            format!("expected 1 row, got {rows}"),
        ));
    }
    Ok(x.reshape_like(&(m,))
        .broadcast_like::<_, Axis<0>>(&(steps, m)))
}

/// Config-side description of a neuron.
#[typetag::serde(tag = "type")]
pub trait NeuronSpec: Debug + Send + Sync {
    /// Builds one neuron layer whose parameters live under `name.` in `store`.
    fn build(&self, name: &str, store: &mut ParamStore) -> Result<Box<dyn Neuron>>;

    /// One line for `snn list`.
    fn about(&self) -> &'static str {
        ""
    }
}

/// Static facts a decoder needs to size its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderInput {
    pub time_steps: usize,
    pub channels: usize,
}

/// Turns a `[T, B, C, H, W]` sequence into a `[B, C, H, W]` image (or, with
/// `H = W = 1`, a `[B, C]` vector of class scores).
pub trait Decoder: Debug + Send + Sync {
    fn forward(&self, x: SeqImg, store: &ParamStore) -> Result<Img>;
}

/// Config-side description of a decoder.
#[typetag::serde(tag = "type")]
pub trait DecoderSpec: Debug + Send + Sync {
    fn build(
        &self,
        name: &str,
        input: DecoderInput,
        store: &mut ParamStore,
        rng: &mut Rng,
    ) -> Result<Box<dyn Decoder>>;

    fn about(&self) -> &'static str {
        ""
    }
}

/// What a model is built from, besides its own spec.
pub struct ModelParts<'a> {
    pub neuron: &'a dyn NeuronSpec,
    pub decoder: &'a dyn DecoderSpec,
    /// Shape of one input image `[C, H, W]`.
    pub input_shape: [usize; 3],
    pub classes: usize,
    pub time_steps: usize,
}

/// Named scalar constants of one neuron layer, e.g. `[("tau", 0.25)]`.
pub type NeuronConstants = Vec<(String, f32)>;

/// State of one forward pass: the parameters, the mode, randomness, and
/// what the pass observed.
pub struct Forward<'a> {
    pub store: &'a ParamStore,
    /// Training mode: dropout on, batch norm uses (and updates) batch stats.
    pub train: bool,
    pub rng: &'a mut Rng,
    /// Buffer values to write back after the step (batch norm running
    /// statistics); the forward pass itself never mutates the store.
    pub updates: Vec<(String, Flat)>,
    /// Mean firing rate of each spiking layer in this pass.
    pub rates: Vec<(String, f32)>,
}

impl<'a> Forward<'a> {
    pub fn new(store: &'a ParamStore, train: bool, rng: &'a mut Rng) -> Self {
        Self {
            store,
            train,
            rng,
            updates: Vec::new(),
            rates: Vec::new(),
        }
    }

    /// Writes the recorded buffer updates into `store`.
    pub fn apply_updates(updates: Vec<(String, Flat)>, store: &mut ParamStore) -> Result<()> {
        for (name, value) in updates {
            store.set_tensor(&name, value)?;
        }
        Ok(())
    }
}

/// A trainable network. The training loop is generic over this trait.
pub trait Model: Debug + Send + Sync {
    /// Runs a batch `[B, C, H, W]` and returns its `[B, K]` output (class
    /// scores for a classifier).
    fn forward(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Mat>;

    /// Names of the spiking layers, in order (for metrics).
    fn neuron_layers(&self) -> Vec<String>;

    /// Learned or fixed neuron constants per spiking layer.
    fn neuron_constants(&self, store: &ParamStore) -> Result<Vec<(String, NeuronConstants)>>;

    /// Human-readable layer summary.
    fn summary(&self) -> String;
}

/// Config-side description of a model.
#[typetag::serde(tag = "type")]
pub trait ModelSpec: Debug + Send + Sync {
    fn build(
        &self,
        parts: &ModelParts<'_>,
        store: &mut ParamStore,
        rng: &mut Rng,
    ) -> Result<Box<dyn Model>>;

    fn about(&self) -> &'static str {
        ""
    }
}
