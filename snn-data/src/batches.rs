//! Seeded shuffling and batching. The order of epoch `e` depends only on the
//! seed and `e`, so a resumed run sees exactly the batches it would have.

use crate::Dataset;
use rand::seq::SliceRandom;
use snn_core::init;

/// One batch on the host: `[B, C, H, W]` images and labels.
#[derive(Clone, Debug)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
pub enum BatchOrder {
    Sequential,
    /// Shuffled with `(seed, epoch)`.
    Shuffled {
        seed: u64,
        epoch: u64,
    },
}

impl Dataset {
    /// The sample indices of each batch of an epoch (the last may be short).
    pub fn batch_indices(&self, batch: usize, order: BatchOrder) -> Vec<Vec<usize>> {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        if let BatchOrder::Shuffled { seed, epoch } = order {
            let mut rng = init::rng(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            idx.shuffle(&mut rng);
        }
        idx.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
    }

    pub fn gather(&self, indices: &[usize]) -> Batch {
        let len = self.image_len();
        let mut images = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            images.extend_from_slice(&self.images[i * len..(i + 1) * len]);
        }
        Batch {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}
