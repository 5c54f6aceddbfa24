//! NIR, the Neuromorphic Intermediate Representation, for snn-rs runs:
//! `run` maps a trained classifier run to a graph ([`snn_core::nir`]) and a
//! graph to a classifier run; `file` reads and writes `.nir` files (HDF5,
//! the layout Python `nir.write` produces), with the feature `hdf5`.

pub mod file;
pub mod run;
