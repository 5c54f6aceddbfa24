//! The plugin traits. A *spec* is the serde-deserialisable description read
//! from a config (registered by `type` name with typetag); `build` turns it
//! into the runtime object, registering its parameters in the store.
//!
//! A third-party crate adds a neuron by implementing [`NeuronSpec`] and
//! [`Neuron`] and annotating the impl with `#[typetag::serde(name = "...")]`;
//! linking the crate is enough for configs to find it.

use crate::init::Rng;
use crate::loss::LossKind;
use crate::{Error, Flat, Img, ImgNhwc, Mat, ParamStore, Result, Scalar, SeqImg};
use rand::Rng as _;
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

    /// The layer as a leaky neuron with a hard reset (for NIR export), at
    /// the store's parameter values; `None`, the default, when it is not one.
    fn lif_form(&self, store: &ParamStore) -> Result<Option<crate::nir::LifForm>> {
        let _ = store;
        Ok(None)
    }

    /// The neuron's time step on host memory, if it offers one. Models use
    /// it to fuse the time loop with what follows (a max-pool reads each
    /// step's spikes while they are in cache instead of after all `T`
    /// steps are written out): in passes without gradients always, and in
    /// training when the step also offers its backward pass
    /// ([`HostStep::param_keys`]). `None`, the default, keeps the model on
    /// [`Neuron::forward`], which is always correct; a host step only makes
    /// it faster.
    fn host_step(&self, store: &ParamStore) -> Result<Option<Box<dyn HostStep>>> {
        let _ = store;
        Ok(None)
    }
}

/// One time step of a neuron's dynamics on host memory, and optionally its
/// backward pass through time. A kernel calls [`HostStep::step`] once per
/// step for the same neurons in the same order of `x`, with state it
/// zeroed before the first step; it must produce exactly the spikes
/// [`Neuron::forward`] produces.
pub trait HostStep: Send + Sync {
    /// Floats of state per neuron (`state` holds `state_len() * x.len()`,
    /// laid out as the neuron likes).
    fn state_len(&self) -> usize {
        1
    }

    /// Advances the neurons by one step from input currents `x`, writing
    /// their spikes (0 or 1) into `spikes`.
    fn step(&self, x: &[f32], state: &mut [f32], spikes: &mut [f32]);

    /// The store keys of the parameters [`HostStep::backward`] returns
    /// gradients for, in its order; `None` (the default) when the step has
    /// no backward pass, and models train through [`Neuron::forward`].
    fn param_keys(&self) -> Option<Vec<String>> {
        None
    }

    /// Backpropagation through time for `n` neurons run `steps` steps from
    /// zero state on `x` (`[steps, n]`, or `[n]` for an input repeated at
    /// every step), given the loss gradient of their spikes `g_spikes`
    /// (`[steps, n]`): adds the input's gradient into `g_x` (the layout of
    /// `x`; a repeated input gets the sum over steps) and returns one
    /// gradient per [`HostStep::param_keys`] entry. It recomputes the
    /// forward pass itself, which costs less than storing it. Called only
    /// when `param_keys` is `Some`.
    fn backward(&self, x: &[f32], steps: usize, g_spikes: &[f32], g_x: &mut [f32]) -> Vec<f64> {
        let _ = (x, steps, g_spikes, g_x);
        Vec::new()
    }

    /// [`HostStep::backward`] for a sequence, in place: `x` is `[steps, n]`
    /// and `g` its `steps` rows of `n`, holding the spikes' gradient on
    /// entry and the input's on return, wherever the rows lie (a fused
    /// kernel hands over one chunk of neurons of its output gradient's
    /// rows, which become the input gradient without a copy). The default
    /// gathers the rows, runs `backward` and scatters the result back; a
    /// step overrides it to skip those copies.
    fn backward_in_place(&self, x: &[f32], g: &mut [&mut [f32]]) -> Vec<f64> {
        let (steps, n) = (g.len(), g.first().map_or(0, |r| r.len()));
        let g_spikes = g.concat();
        let mut g_x = vec![0.0f32; steps * n];
        let g_params = self.backward(x, steps, &g_spikes, &mut g_x);
        for (row, src) in g.iter_mut().zip(g_x.chunks_exact(n.max(1))) {
            row.copy_from_slice(src);
        }
        g_params
    }
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

/// Turns a channels-last sequence `[T, B, H, W, C]` into a channels-last
/// image `[B, H, W, C]` (or, with `H = W = 1`, `[B, C]` class scores): the
/// layout the layers compute in, so neither side permutes.
pub trait Decoder: Debug + Send + Sync {
    fn forward(&self, x: SeqImg, store: &ParamStore) -> Result<ImgNhwc>;

    /// How a NIR export describes this readout (it stays outside the
    /// graph, which outputs spikes); `None`, the default, refuses export.
    fn nir_readout(&self) -> Option<&'static str> {
        None
    }
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
    /// The config's `[neuron]` table, if it has one.
    pub neuron: Option<&'a dyn NeuronSpec>,
    /// The config's `[decoder]` table, if it has one.
    pub decoder: Option<&'a dyn DecoderSpec>,
    /// Shape of one input image `[C, H, W]`.
    pub input_shape: [usize; 3],
    pub classes: usize,
    pub time_steps: usize,
    /// The classification loss (`train.loss`); models with an objective of
    /// their own ignore it.
    pub loss: LossKind,
}

impl<'a> ModelParts<'a> {
    /// The neuron spec, or an error saying that `model` needs one.
    pub fn neuron(&self, model: &str) -> Result<&'a dyn NeuronSpec> {
        self.neuron.ok_or_else(|| {
            Error::invalid(
                "neuron",
                format!(
                    "model `{model}` has spiking layers: add a [neuron] table (see `snn list`)"
                ),
            )
        })
    }

    /// The decoder spec, or an error saying that `model` needs one.
    pub fn decoder(&self, model: &str) -> Result<&'a dyn DecoderSpec> {
        self.decoder.ok_or_else(|| {
            Error::invalid(
                "decoder",
                format!("model `{model}` decodes a spike sequence: add a [decoder] table (see `snn list`)"),
            )
        })
    }
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
    /// When counting operations (`Some`): what each synaptic layer call
    /// of this pass received ([`Forward::record_synapses`]).
    pub synapse_calls: Option<Vec<SynapseCall>>,
    /// Fraction of training done before this step, in [0, 1] (1 when
    /// evaluating): models with
    /// schedules of their own (FSVAE's scheduled sampling) read it.
    pub progress: f32,
    /// Where the pass's random draws come from (see [`Draws`]); `None`:
    /// from `rng`, each draw site keyed by a word taken from it.
    pub draws: Option<Draws>,
}

impl<'a> Forward<'a> {
    pub fn new(store: &'a ParamStore, train: bool, rng: &'a mut Rng) -> Self {
        Self {
            store,
            train,
            rng,
            updates: Vec::new(),
            rates: Vec::new(),
            synapse_calls: None,
            progress: 0.0,
            draws: None,
        }
    }

    /// One generator per image of a batch of `count`, for one draw site
    /// (a dropout layer, a latent sampler): keyed by each image's own key
    /// when the pass has [`Draws`] for `count` images, so that an image
    /// gets the same draws in whatever slice of a batch (on whatever rank)
    /// it is computed; else seeded from `rng`.
    pub fn image_rngs(&mut self, count: usize) -> Vec<Rng> {
        match &mut self.draws {
            Some(d) if d.images.len() == count => {
                let site = d.next_site();
                d.images.iter().map(|k| keyed_rng(*k, site)).collect()
            }
            _ => (0..count)
                .map(|_| crate::init::rng(self.rng.gen::<u64>()))
                .collect(),
        }
    }

    /// One generator for a draw the whole batch shares (a per-step coin of
    /// scheduled sampling): the same on every rank when the pass has
    /// [`Draws`]; else seeded from `rng`.
    pub fn batch_rng(&mut self) -> Rng {
        match &mut self.draws {
            Some(d) => {
                let site = d.next_site();
                keyed_rng(d.batch, site)
            }
            None => crate::init::rng(self.rng.gen::<u64>()),
        }
    }

    /// Records the mean firing rate of a spike tensor under `name`.
    pub fn record_rate<S: dfdx::shapes::Shape>(
        &mut self,
        name: &str,
        spikes: &dfdx::tensor::Tensor<S, f32, crate::Dev, crate::Tp>,
    ) {
        use dfdx::prelude::*;
        let plain = spikes.retaped::<NoneTape>();
        let n = plain.shape().num_elements();
        // dfdx's own reduction: `as_vec` walks an element iterator, 5x slower.
        let total = plain.reshape_like(&(n,)).sum::<Rank0, _>().array();
        let rate = total / n.max(1) as f32;
        self.rates.push((name.to_string(), rate));
    }

    /// Whether this pass counts operations ([`Forward::record_synapses`]).
    pub fn counts_ops(&self) -> bool {
        self.synapse_calls.is_some()
    }

    /// Records, when the pass counts operations, what synaptic layer
    /// `name` receives in one call: its input `x` (`[rows, H, W, C]`,
    /// rows = images x the passes folded into them) and how many synapses
    /// each input value feeds.
    pub fn record_synapses(&mut self, name: &str, x: &crate::ImgNhwc, fanout: Fanout<'_>) {
        use dfdx::prelude::*;
        let Some(calls) = self.synapse_calls.as_mut() else {
            return;
        };
        let rows = x.shape().0;
        let v = x.retaped::<NoneTape>().as_vec();
        let feeds = |i: usize| match fanout {
            Fanout::Uniform(n) => n as f64,
            Fanout::Pixels {
                map,
                channels,
                outputs,
            } => (map[(i / channels.max(1)) % map.len().max(1)] as usize * outputs) as f64,
        };
        let dense = (0..v.len()).map(feeds).sum::<f64>();
        let effective = v
            .iter()
            .enumerate()
            .filter(|(_, x)| **x != 0.0)
            .map(|(i, _)| feeds(i))
            .sum();
        let spikes = v.iter().all(|x| *x == 0.0 || *x == 1.0);
        calls.push(SynapseCall {
            layer: name.to_string(),
            rows,
            dense,
            effective,
            spikes,
        });
    }

    /// Records the firing rate of a layer whose kernel counted its spikes:
    /// `fired` of `neurons` (neurons x time steps).
    pub fn record_fired(&mut self, name: &str, fired: usize, neurons: usize) {
        let rate = fired as f64 / neurons.max(1) as f64;
        self.rates.push((name.to_string(), rate as f32));
    }

    /// Writes the recorded buffer updates into `store`.
    pub fn apply_updates(updates: Vec<(String, Flat)>, store: &mut ParamStore) -> Result<()> {
        for (name, value) in updates {
            store.set_tensor(&name, value)?;
        }
        Ok(())
    }
}

/// The keys of a forward pass's random draws: one for the batch as a
/// whole and one per image (the trainer derives them from the seed, the
/// epoch and the image's index in the dataset). Draw sites are numbered in
/// the order the pass reaches them, the same on every rank.
#[derive(Clone, Debug)]
pub struct Draws {
    pub batch: u64,
    pub images: Vec<u64>,
    site: u64,
}

impl Draws {
    pub fn new(batch: u64, images: Vec<u64>) -> Self {
        Self {
            batch,
            images,
            site: 0,
        }
    }

    fn next_site(&mut self) -> u64 {
        self.site += 1;
        self.site
    }
}

/// A generator keyed by `key` and a draw site (splitmix64 of both, so
/// nearby keys give unrelated streams).
fn keyed_rng(key: u64, site: u64) -> Rng {
    crate::init::rng(mix64(key ^ mix64(site.wrapping_mul(0x9E37_79B9_7F4A_7C15))))
}

/// splitmix64's finaliser: a bijection of u64 that scrambles every bit.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One batch's training objective, as a model defines it.
pub struct Objective {
    /// The scalar the optimizer minimises (on the tape).
    pub loss: Scalar,
    /// Named parts of the loss and other per-batch figures (reconstruction
    /// loss, prior/posterior distance), averaged per epoch into the metrics.
    pub terms: Vec<(String, f32)>,
    /// The predicted class of each image, for models that classify.
    pub predictions: Option<Vec<usize>>,
}

/// A trainable network. The training loop is generic over this trait.
pub trait Model: Debug + Send + Sync {
    /// Runs a batch `[B, C, H, W]` and returns its `[B, K]` output: class
    /// scores for a classifier, the flattened reconstruction `[B, C*H*W]`
    /// for an autoencoder.
    fn forward(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Mat>;

    /// The loss to minimise on a batch with its labels.
    fn objective(&self, x: Img, labels: &[u8], fwd: &mut Forward<'_>) -> Result<Objective>;

    /// Constrains the parameters after each optimizer step (FSVAE clips
    /// every weight to a range). The default does nothing.
    fn after_step(&self, _store: &mut ParamStore) -> Result<()> {
        Ok(())
    }

    /// The model's generative side, if it has one.
    fn generator(&self) -> Option<&dyn Generator> {
        None
    }

    /// The model's feature map for image metrics (the FAD autoencoder's
    /// latent), if it has one.
    fn embedder(&self) -> Option<&dyn Embedder> {
        None
    }

    /// Names of the spiking layers, in order (for metrics); none by default
    /// (ANN models).
    fn neuron_layers(&self) -> Vec<String> {
        Vec::new()
    }

    /// Learned or fixed neuron constants per spiking layer.
    fn neuron_constants(&self, _store: &ParamStore) -> Result<Vec<(String, NeuronConstants)>> {
        Ok(Vec::new())
    }

    /// Human-readable layer summary.
    fn summary(&self) -> String;

    /// The trained network as a NIR graph, for neuromorphic toolchains and
    /// other frameworks. The default refuses: most generative models hold
    /// parts NIR has no node for.
    fn to_nir(
        &self,
        store: &ParamStore,
        options: &crate::nir::ExportOptions,
    ) -> Result<crate::nir::Graph> {
        let _ = (store, options);
        Err(Error::invalid(
            "model",
            "this model has no NIR form (export supports the spiking classifier)",
        ))
    }
}

/// How many synapses each value of a layer's input feeds.
#[derive(Clone, Copy, Debug)]
pub enum Fanout<'a> {
    /// The same for every value (a fully connected layer: its outputs).
    Uniform(usize),
    /// Per pixel (a convolution: border pixels feed fewer outputs than
    /// central ones): `map` `[H * W]` output positions per pixel, of a
    /// channels-last input with `channels`, each feeding `outputs` channels.
    Pixels {
        map: &'a [u32],
        channels: usize,
        outputs: usize,
    },
}

/// What one call of a synaptic layer received, for operation counts.
#[derive(Clone, Debug, PartialEq)]
pub struct SynapseCall {
    pub layer: String,
    /// Rows of the input: images x the time steps folded into them.
    pub rows: usize,
    /// Synaptic operations of the call done densely, and those with a
    /// non-zero input.
    pub dense: f64,
    pub effective: f64,
    /// Every input value was 0 or 1.
    pub spikes: bool,
}

/// A model that draws new images and reconstructs given ones. Images are
/// `[B, C, H, W]` in the model's pixel range.
pub trait Generator {
    /// Draws `count` images from the model's prior.
    fn sample(&self, count: usize, fwd: &mut Forward<'_>) -> Result<Img>;

    /// Encodes and decodes `x`.
    fn reconstruct(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Img>;
}

/// A model that maps images `[B, C, H, W]` to feature vectors `[B, D]`.
pub trait Embedder {
    fn embed(&self, x: Img, fwd: &mut Forward<'_>) -> Result<Mat>;
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
