//! Generation metrics: Gaussian fits of feature sets, the Frechet distance
//! between two fits (FID on Inception features, FAD on autoencoder latents)
//! and the Inception Score of class probabilities.

pub mod frechet;
pub mod inception_score;

pub use frechet::{frechet_distance, Gaussian};
pub use inception_score::inception_score;
