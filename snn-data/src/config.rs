//! Where the images come from and how they are prepared (the `[data]`
//! table of a run config).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the images come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `mnist`, `fmnist`, `cifar10` or `folder`.
    pub dataset: String,
    /// Folder holding the dataset files.
    pub root: PathBuf,
    /// Use at most this many training / test images (0 = all).
    pub train_limit: usize,
    pub test_limit: usize,
    /// Subtract the dataset mean and divide by its std per channel.
    pub normalize: bool,
    /// Side of the images fed to the model: MNIST-like sets are brought to
    /// it by `resize`, CelebA is resized to it (default 64); 0 keeps the
    /// native size.
    pub image_size: usize,
    /// How MNIST-like and folder images reach `image_size`.
    pub resize: ImageResize,
    /// Scale pixels to [-1, 1] instead of [0, 1] (FSVAE, VAEs with tanh).
    pub symmetric: bool,
    /// Random transforms of each training batch (off by default).
    pub augment: Augment,
}

/// Training-time augmentation, drawn per image from a generator seeded by
/// the run's seed, the epoch and the batch's index in it: the same config
/// gives the same augmented batches, and a resumed run the ones it would
/// have had. Test images are never augmented.
///
/// The authors' classification code: `rotate = 30`, `translate = 0.15`,
/// `scale = [0.85, 1.11]` on MNIST; `crop_padding = 4`, `hflip = true` on
/// CIFAR-10. The FSVAE code flips CIFAR-10 and CelebA (`hflip = true`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Rotation in degrees, uniform in `[-rotate, rotate]` (0 = none).
    pub rotate: f32,
    /// Shift by up to this fraction of the width / height, rounded to
    /// whole pixels (torchvision's `RandomAffine(translate=...)`).
    pub translate: f32,
    /// Zoom factor range `[min, max]` (none = 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<[f32; 2]>,
    /// Random crop back to the image size after zero padding by this many
    /// pixels on every side (torchvision's `RandomCrop(size, padding)`).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
}

impl Augment {
    /// True when some transform is on.
    pub fn is_active(&self) -> bool {
        self.rotate != 0.0
            || self.translate != 0.0
            || self.scale.is_some()
            || self.crop_padding > 0
            || self.hflip
    }

    /// The affine part (rotation, translation, scale) is on.
    pub fn is_affine(&self) -> bool {
        self.rotate != 0.0 || self.translate != 0.0 || self.scale.is_some()
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: "mnist".into(),
            root: PathBuf::from("data/mnist"),
            train_limit: 0,
            test_limit: 0,
            normalize: false,
            image_size: 0,
            resize: ImageResize::Bilinear,
            symmetric: false,
            augment: Augment::default(),
        }
    }
}

/// How a dataset's images are brought to `data.image_size`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageResize {
    /// Pillow's bilinear resize of the 8-bit image (torchvision
    /// `Resize((32, 32))`, what the FSVAE code does to MNIST).
    #[default]
    Bilinear,
    /// Centred zero padding (only grows the image).
    Pad,
}
