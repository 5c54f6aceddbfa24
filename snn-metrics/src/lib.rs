//! Generation metrics: Gaussian fits of feature sets, the Frechet distance
//! between two fits (FID on Inception features, FAD on autoencoder latents),
//! the Inception Score of class probabilities, and the FID Inception-v3.

mod conv;
pub mod fad;
pub mod frechet;
pub mod inception;
pub mod inception_score;
pub mod resize;

pub use frechet::{frechet_distance, Gaussian};
pub use inception::{Embedding, Graph, Inception, Input};
pub use inception_score::inception_score;
pub use resize::Resize;
