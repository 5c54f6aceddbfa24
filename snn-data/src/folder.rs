//! An image folder: `root/<class>/<image>`, classes in sorted name order,
//! every image decoded and required to have the first image's size.

use crate::Dataset;
use snn_core::{Error, Result};
use std::path::Path;

/// How many files [`load`] would read under `root/<class>/`, without
/// decoding them.
pub fn count(root: &Path) -> Result<usize> {
    let mut n = 0;
    for class in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let dir = class.map_err(|e| Error::io(root, e))?.path();
        if dir.is_dir() {
            n += std::fs::read_dir(&dir)
                .map_err(|e| Error::io(&dir, e))?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .count();
        }
    }
    Ok(n)
}

pub fn load(root: &Path) -> Result<Dataset> {
    let mut classes: Vec<_> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::data(
            root,
            "no class folders (expected root/<class>/<image>)",
        ));
    }
    let mut ds = Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        shape: [0, 0, 0],
        classes: classes.len(),
    };
    for (label, dir) in classes.iter().enumerate() {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
            let (shape, pixels) = decode(&bytes, &f)?;
            if ds.shape == [0, 0, 0] {
                ds.shape = shape;
            } else if ds.shape != shape {
                return Err(Error::data(
                    &f,
                    format!(
                        "image is {}x{}x{}, the folder's first image is {}x{}x{} \
                         (every image of a folder must have one size)",
                        shape[0], shape[1], shape[2], ds.shape[0], ds.shape[1], ds.shape[2]
                    ),
                ));
            }
            ds.images.extend(pixels);
            ds.labels.push(label as u8);
        }
    }
    if ds.is_empty() {
        return Err(Error::data(root, "no images found"));
    }
    Ok(ds)
}

/// Decodes one image file's bytes (PNG or JPEG, told by content, not by
/// name) to `[c, h, w]` (c = 1 for grey, 3 otherwise) and its pixels in
/// [0, 1], channel-major. The decoder's default limits refuse a header
/// claiming more than 512 MiB of pixels before anything that large exists.
pub fn decode(bytes: &[u8], path: &Path) -> Result<([usize; 3], Vec<f32>)> {
    let unreadable = |e: image::ImageError| Error::data(path, format!("unreadable image: {e}"));
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(unreadable)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if img.color().channel_count() < 3 {
        let pixels = img
            .to_luma8()
            .pixels()
            .map(|p| p.0[0] as f32 / 255.0)
            .collect();
        return Ok(([1, h, w], pixels));
    }
    let rgb = img.to_rgb8();
    let mut pixels = Vec::with_capacity(3 * h * w);
    for ch in 0..3 {
        pixels.extend(rgb.pixels().map(|p| p.0[ch] as f32 / 255.0));
    }
    Ok(([3, h, w], pixels))
}
