//! Seeded random number generation and weight initialisers.

use rand::distributions::{Distribution, Uniform};
use rand::SeedableRng;

/// The generator behind every random choice (weights, shuffling, dropout).
/// ChaCha is portable: the same seed gives the same stream on every machine.
pub type Rng = rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// `n` values uniform in `[lo, hi)`.
pub fn uniform(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    if hi <= lo {
        return vec![lo; n];
    }
    let d = Uniform::new(lo, hi);
    (0..n).map(|_| d.sample(rng)).collect()
}

/// PyTorch's default for linear and conv weights: Kaiming-uniform with
/// `a = sqrt(5)`, which is uniform in `+-1/sqrt(fan_in)`.
pub fn torch_default(rng: &mut Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
    uniform(rng, n, -bound, bound)
}

/// Kaiming (He) uniform for ReLU-like units: `+-sqrt(6 / fan_in)`.
pub fn kaiming_uniform(rng: &mut Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let bound = (6.0 / fan_in.max(1) as f32).sqrt();
    uniform(rng, n, -bound, bound)
}

/// Weight initialisation of conv and linear layers, chosen in the config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightInit {
    /// PyTorch's default, uniform in `+-1/sqrt(fan_in)`.
    #[default]
    Torch,
    /// Kaiming (He) uniform, `+-sqrt(6/fan_in)`: unit-variance outputs for
    /// unit-variance inputs, so layers without batch norm start in the
    /// surrogate's window.
    Kaiming,
}

impl WeightInit {
    pub fn sample(self, rng: &mut Rng, n: usize, fan_in: usize) -> Vec<f32> {
        match self {
            WeightInit::Torch => torch_default(rng, n, fan_in),
            WeightInit::Kaiming => kaiming_uniform(rng, n, fan_in),
        }
    }
}
