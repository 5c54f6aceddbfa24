//! Training-time augmentation of a batch, as torchvision's transforms the
//! authors' code uses: `RandomAffine` (rotation, whole-pixel translation,
//! scale; nearest neighbour, filled with the background), `RandomCrop`
//! with zero padding, `RandomHorizontalFlip`.
//!
//! Every image's draws come from a generator seeded by the run's seed, the
//! epoch and the image's index in the dataset, so an image is augmented
//! the same whatever batch (or slice of a batch, on whatever rank) it is
//! in: a resumed run, or one on another number of ranks, gets the images
//! it would have had.

use crate::config::Augment;
use crate::Batch;
use rand::Rng as _;
use snn_core::init;

/// The generator of dataset image `image` in `epoch`.
pub fn image_rng(seed: u64, epoch: u64, image: u64) -> init::Rng {
    let mix = epoch
        .wrapping_mul(0xA24B_AED4_963E_E407)
        .wrapping_add(image.wrapping_mul(0x9FB2_1C65_1E98_DF25));
    init::rng(seed ^ 0x5851_F42D_4C95_7F2D ^ mix)
}

/// Which draws an augmented batch gets: the run's seed, the epoch, and the
/// dataset index of each of the batch's images.
#[derive(Clone, Copy, Debug)]
pub struct Keys<'a> {
    pub seed: u64,
    pub epoch: u64,
    pub images: &'a [usize],
}

/// Augments every image of `batch` (`[B, C, H, W]`) in place, image `i`
/// with the generator of `keys.images[i]`. `fill[c]` is channel c's
/// background (a 0 pixel in the model's range: 0, -1 for [-1, 1] data,
/// `-mean / std` when normalised), used where a transform uncovers the
/// border.
pub fn augment_batch(
    batch: &mut Batch,
    [c, h, w]: [usize; 3],
    cfg: &Augment,
    fill: &[f32],
    keys: Keys<'_>,
) {
    if !cfg.is_active() {
        return;
    }
    let mut scratch = vec![0.0f32; c * h * w];
    let images = batch.images.chunks_exact_mut(c * h * w);
    for (img, &index) in images.zip(keys.images) {
        let rng = &mut image_rng(keys.seed, keys.epoch, index as u64);
        if cfg.is_affine() {
            let t = Affine::draw(cfg, [h, w], rng);
            t.apply(img, &mut scratch, [c, h, w], fill);
            img.copy_from_slice(&scratch);
        }
        if cfg.crop_padding > 0 {
            let p = cfg.crop_padding as isize;
            let dy = rng.gen_range(0..=2 * p) - p;
            let dx = rng.gen_range(0..=2 * p) - p;
            shift(img, &mut scratch, [c, h, w], [dy, dx], fill);
            img.copy_from_slice(&scratch);
        }
        if cfg.hflip && rng.gen_bool(0.5) {
            for row in img.chunks_exact_mut(w) {
                row.reverse();
            }
        }
    }
}

/// Output pixel `(y, x)` reads input pixel `(y + dy, x + dx)`, or the fill
/// outside: a crop of the zero-padded image at offset `(p + dy, p + dx)`.
fn shift(src: &[f32], dst: &mut [f32], [c, h, w]: [usize; 3], [dy, dx]: [isize; 2], fill: &[f32]) {
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = (y as isize + dy, x as isize + dx);
                let inside = sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w;
                dst[(ch * h + y) * w + x] = if inside {
                    plane[sy as usize * w + sx as usize]
                } else {
                    fill[ch.min(fill.len() - 1)]
                };
            }
        }
    }
}

/// One draw of `RandomAffine`: angle (degrees, counter-clockwise), whole-
/// pixel translation and scale, about the image centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub angle: f32,
    pub tx: f32,
    pub ty: f32,
    pub scale: f32,
}

impl Affine {
    /// Draws as torchvision's `RandomAffine.get_params`: angle uniform in
    /// `[-rotate, rotate]`, shifts `round(uniform(-t w, t w))`, scale
    /// uniform in the range.
    pub fn draw(cfg: &Augment, [h, w]: [usize; 2], rng: &mut init::Rng) -> Self {
        let uniform = |rng: &mut init::Rng, lo: f32, hi: f32| {
            if hi > lo {
                rng.gen_range(lo..hi)
            } else {
                lo
            }
        };
        let angle = uniform(rng, -cfg.rotate, cfg.rotate);
        let (mx, my) = (cfg.translate * w as f32, cfg.translate * h as f32);
        let tx = uniform(rng, -mx, mx).round();
        let ty = uniform(rng, -my, my).round();
        let scale = cfg.scale.map_or(1.0, |[lo, hi]| uniform(rng, lo, hi));
        Self {
            angle,
            tx,
            ty,
            scale,
        }
    }

    /// Each output pixel centre, mapped back through the inverse transform
    /// (rotation and scale about the centre, then the shift), reads the
    /// nearest input pixel, or the fill outside.
    pub fn apply(&self, src: &[f32], dst: &mut [f32], [c, h, w]: [usize; 3], fill: &[f32]) {
        let (sin, cos) = (-self.angle.to_radians()).sin_cos();
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        for y in 0..h {
            for x in 0..w {
                // Output point relative to the centre, shift undone.
                let px = x as f32 + 0.5 - cx - self.tx;
                let py = y as f32 + 0.5 - cy - self.ty;
                // Inverse rotation (image y points down, so a positive
                // angle turns counter-clockwise on screen) and scale.
                let sx = (cos * px + sin * py) / self.scale + cx;
                let sy = (-sin * px + cos * py) / self.scale + cy;
                let (ix, iy) = (sx.floor() as isize, sy.floor() as isize);
                let inside = ix >= 0 && iy >= 0 && (ix as usize) < w && (iy as usize) < h;
                for ch in 0..c {
                    dst[(ch * h + y) * w + x] = if inside {
                        src[(ch * h + iy as usize) * w + ix as usize]
                    } else {
                        fill[ch.min(fill.len() - 1)]
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(c: usize, h: usize, w: usize) -> Vec<f32> {
        (0..c * h * w).map(|i| i as f32).collect()
    }

    #[test]
    fn identity_affine_keeps_the_image() {
        let src = numbered(2, 5, 4);
        let mut dst = vec![0.0; src.len()];
        let id = Affine {
            angle: 0.0,
            tx: 0.0,
            ty: 0.0,
            scale: 1.0,
        };
        id.apply(&src, &mut dst, [2, 5, 4], &[-1.0]);
        assert_eq!(dst, src);
    }

    #[test]
    fn quarter_turn_and_shift_by_hand() {
        // 3x3, rotated 90 degrees counter-clockwise: the top row becomes
        // the left column read bottom-up.
        let src = numbered(1, 3, 3);
        let mut dst = vec![0.0; 9];
        let turn = Affine {
            angle: 90.0,
            tx: 0.0,
            ty: 0.0,
            scale: 1.0,
        };
        turn.apply(&src, &mut dst, [1, 3, 3], &[-1.0]);
        assert_eq!(dst, vec![2.0, 5.0, 8.0, 1.0, 4.0, 7.0, 0.0, 3.0, 6.0]);
        // Shift right by one pixel: column 0 is background.
        let right = Affine {
            angle: 0.0,
            tx: 1.0,
            ty: 0.0,
            scale: 1.0,
        };
        right.apply(&src, &mut dst, [1, 3, 3], &[-1.0]);
        assert_eq!(dst, vec![-1.0, 0.0, 1.0, -1.0, 3.0, 4.0, -1.0, 6.0, 7.0]);
    }

    #[test]
    fn crop_with_padding_shifts_and_fills_per_channel() {
        let src = numbered(2, 2, 3);
        let mut dst = vec![0.0; src.len()];
        shift(&src, &mut dst, [2, 2, 3], [1, -1], &[-1.0, -2.0]);
        // Output (y, x) reads (y + 1, x - 1).
        assert_eq!(
            dst,
            vec![-1.0, 3.0, 4.0, -1.0, -1.0, -1.0, -2.0, 9.0, 10.0, -2.0, -2.0, -2.0]
        );
    }

    #[test]
    fn same_seed_same_batch_other_batch_other_draws() {
        let cfg = Augment {
            rotate: 30.0,
            translate: 0.15,
            scale: Some([0.85, 1.11]),
            crop_padding: 0,
            hflip: true,
        };
        // Four copies of one image: what differs between them is the draws.
        let images: Vec<f32> = (0..4 * 28 * 28)
            .map(|i| ((i % (28 * 28) * 7) % 13) as f32)
            .collect();
        let run = |index: usize| {
            let mut b = Batch {
                images: images.clone(),
                labels: vec![0; 4],
            };
            let keys = Keys {
                seed: 5,
                epoch: 2,
                images: &[index, index + 1, index + 2, index + 3],
            };
            augment_batch(&mut b, [1, 28, 28], &cfg, &[0.0], keys);
            b.images
        };
        let per = 28 * 28;
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        assert_ne!(run(3), images);
        // An image's draws are its own: image 4 (second of the batch that
        // starts at 3, first of the one at 4) is augmented the same in both.
        assert_eq!(run(3)[per..2 * per], run(4)[..per]);
        // Off: untouched.
        let mut b = Batch {
            images: images.clone(),
            labels: vec![0; 4],
        };
        let keys = Keys {
            seed: 5,
            epoch: 2,
            images: &[0, 1, 2, 3],
        };
        augment_batch(&mut b, [1, 28, 28], &Augment::default(), &[0.0], keys);
        assert_eq!(b.images, images);
    }
}
