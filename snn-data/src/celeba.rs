//! CelebA, aligned and cropped: `img_align_celeba/*.jpg` (178 x 218) with
//! `list_eval_partition.txt` (`name split` per line; 0 train, 1 valid,
//! 2 test). As FSVAE: centre-crop 148 x 148, resize to `size` (Pillow's bilinear),
//! RGB. Unlabelled (every label is 0).

use crate::{Dataset, Split};
use snn_core::{Error, Result};
use std::path::Path;

pub const CROP: u32 = 148;

/// Reads the partition file: the image names of `split`.
pub fn partition(root: &Path, split: Split) -> Result<Vec<String>> {
    let path = root.join("list_eval_partition.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::data(
            &path,
            format!("cannot read the partition file ({e}); CelebA needs list_eval_partition.txt beside img_align_celeba/"),
        )
    })?;
    let want = match split {
        Split::Train => "0",
        Split::Test => "2",
    };
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(name), Some(part), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::data(
                &path,
                format!(
                    "line {}: expected `<image name> <0|1|2>`, got `{line}`",
                    i + 1
                ),
            ));
        };
        if !matches!(part, "0" | "1" | "2") {
            return Err(Error::data(
                &path,
                format!("line {}: split `{part}` is not 0, 1 or 2", i + 1),
            ));
        }
        if part == want {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Loads the `split` images, at most `limit` of them (0 = all).
pub fn load(root: &Path, split: Split, size: u32, limit: usize) -> Result<Dataset> {
    let mut names = partition(root, split)?;
    if limit > 0 {
        names.truncate(limit);
    }
    let size = if size == 0 { 64 } else { size };
    let dir = root.join("img_align_celeba");
    let plane = (size * size) as usize;
    let mut images = Vec::with_capacity(names.len() * 3 * plane);
    for name in &names {
        let path = dir.join(name);
        let img = image::open(&path)
            .map_err(|e| Error::data(&path, format!("unreadable image: {e}")))?
            .to_rgb8();
        let (w, h) = img.dimensions();
        if w < CROP || h < CROP {
            return Err(Error::data(
                &path,
                format!("image is {w}x{h}, smaller than the {CROP}x{CROP} centre crop"),
            ));
        }
        let crop =
            image::imageops::crop_imm(&img, (w - CROP) / 2, (h - CROP) / 2, CROP, CROP).to_image();
        // Pillow's bilinear resize of each channel (torchvision's
        // `Resize(64)` on the PIL image, antialiased when shrinking).
        let (c, s) = (CROP as usize, size as usize);
        for ch in 0..3 {
            let plane: Vec<u8> = crop.pixels().map(|p| p.0[ch]).collect();
            let small = crate::resample::resize_u8(
                &plane,
                [c, c],
                [s, s],
                crate::resample::Filter::Bilinear,
            );
            images.extend(small.iter().map(|&b| b as f32 / 255.0));
        }
    }
    if names.is_empty() {
        return Err(Error::data(
            root.join("list_eval_partition.txt"),
            format!("no images in the {split:?} split"),
        ));
    }
    Ok(Dataset {
        labels: vec![0; names.len()],
        images,
        shape: [3, size as usize, size as usize],
        classes: 1,
    })
}
