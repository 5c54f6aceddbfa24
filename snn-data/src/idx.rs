//! The IDX format of MNIST and Fashion-MNIST, plain or gzipped: big-endian
//! magic `0x00000803` (u8 images, 3 dims) or `0x00000801` (u8 labels, 1 dim),
//! then each dimension as a big-endian u32, then the data.

use crate::Dataset;
use flate2::read::GzDecoder;
use snn_core::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The most a gzipped IDX file may inflate to.
const MAX_INFLATED: u64 = 4 << 30;

/// Reads a whole file, gunzipping when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    inflate(raw, path)
}

/// `raw` gunzipped when it starts with the gzip magic, else unchanged;
/// `path` names it in errors.
pub fn inflate(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        // Bounded: a corrupt or hostile stream cannot inflate without end
        // (the largest real file, MNIST's training images, is 47 MB).
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, format!("corrupt or truncated gzip data: {e}")))?;
        if out.len() as u64 > MAX_INFLATED {
            return Err(Error::data(
                path,
                format!(
                    "gzip data inflates beyond {} GiB; not an IDX file",
                    MAX_INFLATED >> 30
                ),
            ));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// The first dimension of an IDX file (its item count), from the header
/// alone: a gzipped file is inflated only as far as the header.
pub fn count(path: &Path) -> Result<usize> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut raw = std::io::BufReader::new(file);
    let mut magic = [0u8; 2];
    raw.read_exact(&mut magic)
        .map_err(|_| Error::data(path, "shorter than an IDX header (8 bytes)"))?;
    let rest = std::io::Cursor::new(magic).chain(raw);
    let mut reader: Box<dyn Read> = if magic == [0x1f, 0x8b] {
        Box::new(GzDecoder::new(rest))
    } else {
        Box::new(rest)
    };
    let mut header = [0u8; 8];
    reader
        .read_exact(&mut header)
        .map_err(|_| Error::data(path, "shorter than an IDX header (8 bytes)"))?;
    if header[..2] != [0, 0] || header[2] != 0x08 || header[3] == 0 {
        return Err(Error::data(
            path,
            "not an IDX file of bytes (magic 0x0000080N expected)",
        ));
    }
    Ok(u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize)
}

/// Parses an IDX u8 array and returns its dimensions and data.
pub fn parse(bytes: &[u8], path: &Path, expect_dims: u8) -> Result<(Vec<usize>, Vec<u8>)> {
    let expected_magic = 0x0800 | expect_dims as u32;
    if bytes.len() < 4 {
        return Err(Error::data(path, "file too short for an IDX header"));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(Error::data(
            path,
            format!("wrong IDX magic number 0x{magic:08x}; expected 0x{expected_magic:08x} (u8 data, {expect_dims} dimensions)"),
        ));
    }
    let header = 4 + 4 * expect_dims as usize;
    if bytes.len() < header {
        return Err(Error::data(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..expect_dims as usize)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    // Checked: a corrupt header may claim more than usize can count.
    let need = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::data(path, format!("header dimensions {dims:?} overflow")))?;
    let have = bytes.len() - header;
    if have < need {
        return Err(Error::data(
            path,
            format!("truncated: header promises {need} bytes of data ({dims:?}), file has {have}"),
        ));
    }
    if have > need {
        return Err(Error::data(
            path,
            format!("{} unexpected bytes after the data ({dims:?})", have - need),
        ));
    }
    Ok((dims, bytes[header..].to_vec()))
}

/// Loads an image file and its label file into a dataset.
pub fn load_pair(images: &Path, labels: &Path, classes: usize) -> Result<Dataset> {
    let (idims, pixels) = parse(&read_maybe_gz(images)?, images, 3)?;
    let (ldims, labs) = parse(&read_maybe_gz(labels)?, labels, 1)?;
    if idims[0] != ldims[0] {
        return Err(Error::data(
            labels,
            format!(
                "{} labels, but {} holds {} images",
                ldims[0],
                images.display(),
                idims[0]
            ),
        ));
    }
    if let Some(bad) = labs.iter().find(|l| **l as usize >= classes) {
        return Err(Error::data(
            labels,
            format!("label {bad} outside 0..{classes}"),
        ));
    }
    Ok(Dataset {
        images: pixels.iter().map(|p| *p as f32 / 255.0).collect(),
        labels: labs,
        shape: [1, idims[1], idims[2]],
        classes,
    })
}
