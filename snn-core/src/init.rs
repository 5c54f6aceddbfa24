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
