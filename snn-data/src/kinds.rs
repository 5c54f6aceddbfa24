//! The dataset kinds a config's `data.dataset` may name, in one table:
//! what [`crate::load`] and [`crate::image_count`] dispatch on, where the
//! input shape of a config comes from without decoding images (`snn bench`,
//! `snn check`, the memory estimate), and what `snn list` prints. A new
//! dataset is one entry in [`KINDS`] beside its reader module.

use crate::config::DataConfig;
use crate::{celeba, cifar, find, folder, idx, split_limit, Dataset, Split};
use snn_core::{Error, Result};
use std::path::PathBuf;

/// One kind of dataset and how to read it.
pub struct DatasetKind {
    /// The `data.dataset` value.
    pub name: &'static str,
    /// One line for `snn list`: files, layout, what is in them.
    pub about: &'static str,
    /// `([C, H, W], classes)` as stored, where the format fixes them;
    /// `None` when only the files tell (an image folder).
    pub native: Option<([usize; 3], usize)>,
    /// One split as stored (before `*_limit`, resizing and scaling, except
    /// where the reader applies them itself while decoding).
    read: fn(&DataConfig, Split) -> Result<Dataset>,
    /// How many images one split holds, without decoding any.
    count: fn(&DataConfig, Split) -> Result<usize>,
}

impl DatasetKind {
    pub fn read(&self, cfg: &DataConfig, split: Split) -> Result<Dataset> {
        (self.read)(cfg, split)
    }

    pub fn count(&self, cfg: &DataConfig, split: Split) -> Result<usize> {
        (self.count)(cfg, split)
    }
}

/// Every kind, in the order `snn list` shows them.
pub const KINDS: &[DatasetKind] = &[
    DatasetKind {
        name: "mnist",
        about: "MNIST digits: IDX files (plain or .gz) in data.root, 1x28x28, 10 classes",
        native: Some(([1, 28, 28], 10)),
        read: read_idx,
        count: count_idx,
    },
    DatasetKind {
        name: "fmnist",
        about: "Fashion-MNIST: IDX files (plain or .gz) in data.root, 1x28x28, 10 classes",
        native: Some(([1, 28, 28], 10)),
        read: read_idx,
        count: count_idx,
    },
    DatasetKind {
        name: "cifar10",
        about: "CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin), 3x32x32, 10 classes",
        native: Some(([3, 32, 32], 10)),
        read: |cfg, split| cifar::load(&cifar_files(cfg, split)),
        count: count_cifar,
    },
    DatasetKind {
        name: "celeba",
        about: "CelebA aligned JPEGs + list_eval_partition.txt; centre crop 148, resized to \
                data.image_size (default 64), 3 channels, unlabelled",
        native: Some(([3, 64, 64], 1)),
        read: |cfg, split| {
            let limit = split_limit(cfg, split);
            celeba::load(&cfg.root, split, cfg.image_size as u32, limit)
        },
        count: |cfg, split| Ok(celeba::partition(&cfg.root, split)?.len()),
    },
    DatasetKind {
        name: "folder",
        about: "image folders data.root/{train,test}/<class>/<image>, classes in name order, \
                all images the size of the first",
        native: None,
        read: |cfg, split| folder::load(&cfg.root.join(folder_split(split))),
        count: |cfg, split| folder::count(&cfg.root.join(folder_split(split))),
    },
];

/// The kind named `name`, or an error listing the accepted names.
pub fn kind(name: &str) -> Result<&'static DatasetKind> {
    KINDS.iter().find(|k| k.name == name).ok_or_else(|| {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        Error::invalid(
            "data.dataset",
            format!("unknown dataset `{name}`; accepted: {}", names.join(", ")),
        )
    })
}

/// `[C, H, W]` and the class count of the images `cfg` yields: the kind's
/// native shape brought to `data.image_size`, or for a folder, read from
/// its test split.
pub fn input_shape(cfg: &DataConfig) -> Result<([usize; 3], usize)> {
    match kind(&cfg.dataset)?.native {
        Some(([c, _, _], classes)) if cfg.image_size > 0 => {
            Ok(([c, cfg.image_size, cfg.image_size], classes))
        }
        Some(native) => Ok(native),
        None => {
            let ds = crate::load(cfg, Split::Test)?;
            Ok((ds.shape, ds.classes))
        }
    }
}

fn idx_files(cfg: &DataConfig, split: Split, what: &str) -> Result<PathBuf> {
    let prefix = if split == Split::Train {
        "train"
    } else {
        "t10k"
    };
    find(&cfg.root, &format!("{prefix}-{what}"))
}

fn read_idx(cfg: &DataConfig, split: Split) -> Result<Dataset> {
    let images = idx_files(cfg, split, "images-idx3-ubyte")?;
    let labels = idx_files(cfg, split, "labels-idx1-ubyte")?;
    idx::load_pair(&images, &labels, 10)
}

fn count_idx(cfg: &DataConfig, split: Split) -> Result<usize> {
    idx::count(&idx_files(cfg, split, "labels-idx1-ubyte")?)
}

fn cifar_files(cfg: &DataConfig, split: Split) -> Vec<PathBuf> {
    match split {
        Split::Train => (1..=5)
            .map(|i| cfg.root.join(format!("data_batch_{i}.bin")))
            .collect(),
        Split::Test => vec![cfg.root.join("test_batch.bin")],
    }
}

fn count_cifar(cfg: &DataConfig, split: Split) -> Result<usize> {
    let mut n = 0;
    for f in cifar_files(cfg, split) {
        let len = std::fs::metadata(&f).map_err(|e| Error::io(&f, e))?.len();
        n += (len / cifar::RECORD as u64) as usize;
    }
    Ok(n)
}

fn folder_split(split: Split) -> &'static str {
    if split == Split::Train {
        "train"
    } else {
        "test"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_unknown_ones_list_them_all() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
        let err = kind("imagenet").err().expect("not a kind").to_string();
        assert!(
            err.contains("data.dataset") && err.contains("`imagenet`"),
            "{err}"
        );
        for k in KINDS {
            assert!(err.contains(k.name), "{err} lacks {}", k.name);
        }
    }

    #[test]
    fn the_input_shape_is_the_native_one_brought_to_image_size() {
        let mut cfg = DataConfig {
            dataset: "mnist".into(),
            ..DataConfig::default()
        };
        assert_eq!(input_shape(&cfg).expect("mnist"), ([1, 28, 28], 10));
        cfg.image_size = 32;
        assert_eq!(input_shape(&cfg).expect("mnist"), ([1, 32, 32], 10));
        cfg.dataset = "celeba".into();
        cfg.image_size = 0;
        assert_eq!(input_shape(&cfg).expect("celeba"), ([3, 64, 64], 1));
    }
}
