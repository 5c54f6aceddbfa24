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
            let img =
                image::open(&f).map_err(|e| Error::data(&f, format!("unreadable image: {e}")))?;
            let (w, h) = (img.width() as usize, img.height() as usize);
            let gray = img.color().channel_count() < 3;
            let c = if gray { 1 } else { 3 };
            if ds.shape == [0, 0, 0] {
                ds.shape = [c, h, w];
            } else if ds.shape != [c, h, w] {
                return Err(Error::data(
                    &f,
                    format!(
                        "image is {c}x{h}x{w}, the folder's first image is {:?}",
                        ds.shape
                    ),
                ));
            }
            if gray {
                ds.images
                    .extend(img.to_luma8().pixels().map(|p| p.0[0] as f32 / 255.0));
            } else {
                let rgb = img.to_rgb8();
                for ch in 0..3 {
                    ds.images
                        .extend(rgb.pixels().map(|p| p.0[ch] as f32 / 255.0));
                }
            }
            ds.labels.push(label as u8);
        }
    }
    if ds.is_empty() {
        return Err(Error::data(root, "no images found"));
    }
    Ok(ds)
}
