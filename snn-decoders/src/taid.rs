//! TAID, temporal attention image decoding (the paper's Eq. 2-3).
//!
//! ```text
//! X[t]  = mean of S[t] over (H, W)  ("hw", authors' code)  or (C, H, W) ("chw", paper text)
//! Z     = W X   with W a full T x T matrix ("full", authors' code: a 1x1 Conv1d
//!                over T channels, no bias) or diagonal per-step weights ("diagonal")
//! F     = sigmoid(Z)
//! image = sum_t F[t] * S[t]   ("sum", authors' code)   or mean over t ("mean", paper text)
//! ```
//!
//! The default is the authors' released variant (hw, full, sum); the
//! paper's text corresponds to `squeeze = "chw", mixing = "diagonal",
//! reduce = "mean"`. tanh, where wanted, is applied by the model.

use serde::{Deserialize, Serialize};
use snn_core::dfdx::prelude::*;
use snn_core::init::{self, Rng};
use snn_core::spec::{Decoder, DecoderInput, DecoderSpec};
use snn_core::{Error, ImgNhwc, ParamStore, Result, SeqImg, Tp};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Squeeze {
    /// Per-step, per-channel means over H and W.
    #[default]
    Hw,
    /// Per-step means over C, H and W.
    Chw,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mixing {
    /// Learnable T x T matrix mixing time steps.
    #[default]
    Full,
    /// One learnable weight per time step.
    Diagonal,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    #[default]
    Sum,
    Mean,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaidInit {
    /// PyTorch's Conv1d default: uniform in +-1/sqrt(fan_in).
    #[default]
    Torch,
    /// Identity matrix (full) or ones (diagonal).
    Identity,
    Zeros,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaidSpec {
    pub squeeze: Squeeze,
    pub mixing: Mixing,
    pub reduce: Reduce,
    pub init: TaidInit,
}

#[typetag::serde(name = "taid")]
impl DecoderSpec for TaidSpec {
    fn build(
        &self,
        name: &str,
        input: DecoderInput,
        store: &mut ParamStore,
        rng: &mut Rng,
    ) -> Result<Box<dyn Decoder>> {
        let t = input.time_steps;
        if t == 0 {
            return Err(Error::invalid("time_steps", "TAID needs at least one step"));
        }
        let (shape, fan_in) = match self.mixing {
            Mixing::Full => (vec![t, t], t),
            Mixing::Diagonal => (vec![t], 1),
        };
        let n: usize = shape.iter().product();
        let values = match self.init {
            TaidInit::Torch => init::torch_default(rng, n, fan_in),
            TaidInit::Zeros => vec![0.0; n],
            TaidInit::Identity => match self.mixing {
                Mixing::Full => (0..n).map(|k| (k / t == k % t) as u8 as f32).collect(),
                Mixing::Diagonal => vec![1.0; n],
            },
        };
        let key = format!("{name}.weight");
        store.insert(&key, &shape, values, true)?;
        Ok(Box::new(Taid {
            spec: self.clone(),
            key,
            time_steps: t,
        }))
    }

    fn about(&self) -> &'static str {
        "temporal attention image decoding (paper Eq. 2-3); default = authors' code variant"
    }
}

#[derive(Debug)]
pub struct Taid {
    spec: TaidSpec,
    key: String,
    time_steps: usize,
}

impl Decoder for Taid {
    fn forward(&self, s: SeqImg, store: &ParamStore) -> Result<ImgNhwc> {
        let shape = *s.shape();
        let (t, b, _, _, c) = shape;
        if t != self.time_steps {
            return Err(Error::shape(
                "TAID input",
                format!("{t} time steps, built for {}", self.time_steps),
            ));
        }
        let s_again = s.with_empty_tape();
        // X: [T, B * C'] with C' = C (hw) or 1 (chw).
        let x: Tensor<(usize, usize, usize), f32, _, Tp> = s.mean::<_, Axes2<2, 3>>();
        let (x, cols) = match self.spec.squeeze {
            Squeeze::Hw => (x.reshape_like(&(t, b * c)), c),
            Squeeze::Chw => (x.mean::<_, Axis<2>>().reshape_like(&(t, b)), 1),
        };
        let w = store.taped(&self.key)?;
        let z = match self.spec.mixing {
            Mixing::Full => w.reshape_like(&(t, t)).matmul(x),
            Mixing::Diagonal => w.broadcast_like::<_, Axis<1>>(&(t, b * cols)) * x,
        };
        let f = z.sigmoid();
        let f = match self.spec.squeeze {
            Squeeze::Hw => f
                .reshape_like(&(t, b, c))
                .broadcast_like::<_, Axes2<2, 3>>(&shape),
            Squeeze::Chw => f
                .reshape_like(&(t, b))
                .broadcast_like::<_, Axes3<2, 3, 4>>(&shape),
        };
        let weighted = f * s_again;
        Ok(match self.spec.reduce {
            Reduce::Sum => weighted.sum::<_, Axis<0>>(),
            Reduce::Mean => weighted.mean::<_, Axis<0>>(),
        })
    }
}
