//! The IDX format of MNIST and Fashion-MNIST, plain or gzipped: big-endian
//! magic `0x00000803` (u8 images, 3 dims) or `0x00000801` (u8 labels, 1 dim),
//! then each dimension as a big-endian u32, then the data.

use crate::Dataset;
use flate2::read::GzDecoder;
use snn_core::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The most data an IDX header may promise: 4 GiB (the largest real
/// file, MNIST's training images, holds 47 MB).
const MAX_DATA: usize = 4 << 30;

/// An IDX array's header: its dimensions, its length in bytes, and how
/// many data bytes it promises.
struct Header {
    dims: Vec<usize>,
    len: usize,
    data: usize,
}

impl Header {
    /// Reads the header from the start of `bytes` (at least its length).
    fn parse(bytes: &[u8], path: &Path, expect_dims: u8) -> Result<Self> {
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
        let len = 4 + 4 * expect_dims as usize;
        if bytes.len() < len {
            return Err(Error::data(path, "truncated IDX header"));
        }
        let dims: Vec<usize> = (0..expect_dims as usize)
            .map(|i| {
                let o = 4 + 4 * i;
                u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
            })
            .collect();
        // Checked: a corrupt header may claim more than usize can count.
        let data = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::data(path, format!("header dimensions {dims:?} overflow")))?;
        if data > MAX_DATA {
            return Err(Error::data(
                path,
                format!("header dimensions {dims:?} promise {data} bytes, more than an IDX file here holds (4 GiB)"),
            ));
        }
        Ok(Self { dims, len, data })
    }

    /// The error for `have` data bytes where the header promised others.
    fn mismatch(&self, path: &Path, have: usize) -> Error {
        let (need, dims) = (self.data, &self.dims);
        if have < need {
            Error::data(
                path,
                format!(
                    "truncated: header promises {need} bytes of data ({dims:?}), file has {have}"
                ),
            )
        } else {
            Error::data(
                path,
                format!("{} unexpected bytes after the data ({dims:?})", have - need),
            )
        }
    }
}

/// Reads an IDX u8 array (plain or gzipped) streaming: the header first,
/// then exactly the bytes it promises. A plain file whose size disagrees
/// with its header is refused before its data is read, a gzipped one as
/// soon as its stream ends early or runs on; nothing beyond what the
/// header justifies is ever buffered.
pub fn read(path: &Path, expect_dims: u8) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    read_from(std::io::BufReader::new(file), Some(size), path, expect_dims)
}

/// [`read`] on bytes already in memory (the fuzzing harness's entry).
pub fn read_bytes(bytes: &[u8], path: &Path, expect_dims: u8) -> Result<(Vec<usize>, Vec<u8>)> {
    read_from(bytes, Some(bytes.len() as u64), path, expect_dims)
}

fn read_from(
    mut raw: impl Read,
    size: Option<u64>,
    path: &Path,
    expect_dims: u8,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut magic = [0u8; 2];
    raw.read_exact(&mut magic)
        .map_err(|_| Error::data(path, "file too short for an IDX header"))?;
    let gz = magic == [0x1f, 0x8b];
    let rest = std::io::Cursor::new(magic).chain(raw);
    let mut reader: Box<dyn Read + '_> = if gz {
        Box::new(GzDecoder::new(rest))
    } else {
        Box::new(rest)
    };
    let corrupt =
        |e: std::io::Error| Error::data(path, format!("corrupt or truncated gzip data: {e}"));
    let mut head = vec![0u8; 4 + 4 * expect_dims as usize];
    let got = read_up_to(&mut reader, &mut head).map_err(corrupt)?;
    let header = Header::parse(&head[..got], path, expect_dims)?;
    if let (false, Some(size)) = (gz, size) {
        let have = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .saturating_sub(header.len);
        if have != header.data {
            return Err(header.mismatch(path, have));
        }
    }
    let mut data = Vec::with_capacity(header.data.min(64 << 20));
    reader
        .by_ref()
        .take(header.data as u64)
        .read_to_end(&mut data)
        .map_err(corrupt)?;
    if data.len() < header.data {
        return Err(header.mismatch(path, data.len()));
    }
    let mut extra = [0u8; 1];
    if read_up_to(&mut reader, &mut extra).map_err(corrupt)? > 0 {
        // How much more, without buffering it.
        let more =
            std::io::copy(&mut reader.take(MAX_DATA as u64), &mut std::io::sink()).unwrap_or(0);
        return Err(header.mismatch(path, header.data + 1 + more as usize));
    }
    Ok((header.dims, data))
}

/// Fills `buf` as far as the stream goes; the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
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

/// Loads an image file and its label file into a dataset.
pub fn load_pair(images: &Path, labels: &Path, classes: usize) -> Result<Dataset> {
    let (idims, pixels) = read(images, 3)?;
    let (ldims, labs) = read(labels, 1)?;
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
