//! CIFAR-10's binary version: records of 1 label byte + 3072 pixel bytes
//! (1024 R, 1024 G, 1024 B, each row-major 32 x 32).

use crate::Dataset;
use snn_core::{Error, Result};
use std::path::{Path, PathBuf};

pub const RECORD: usize = 1 + 3 * 32 * 32;

pub fn parse(bytes: &[u8], path: &Path, ds: &mut Dataset) -> Result<()> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(Error::data(
            path,
            format!(
                "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (truncated or not CIFAR-10 binary)",
                bytes.len()
            ),
        ));
    }
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(Error::data(
                path,
                format!("record {i}: label {} outside 0..10", rec[0]),
            ));
        }
        ds.labels.push(rec[0]);
        ds.images.extend(rec[1..].iter().map(|p| *p as f32 / 255.0));
    }
    Ok(())
}

/// Loads and concatenates the given batch files.
pub fn load(files: &[PathBuf]) -> Result<Dataset> {
    let mut ds = Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        shape: [3, 32, 32],
        classes: 10,
    };
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
        parse(&bytes, f, &mut ds)?;
    }
    Ok(ds)
}
