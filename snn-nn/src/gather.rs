//! Every rank's rows, for a loss that couples the images of a batch.
//!
//! Data-parallel training gives each rank a slice of the batch and sums
//! the gradients of each slice's share of the loss (`snn_train::step`).
//! A loss over every pair of images (ESVAE's MMD) is no sum over slices:
//! each rank needs the whole batch's rows. [`gather_rows`] hands every
//! rank all of them, in rank order (the batch's own order), and its
//! backward gives the rank's own rows their gradient divided by the rank's
//! share, so that after the share scaling and the sum over ranks the
//! parameters get exactly the one-process gradient of the whole-batch
//! loss. In one process it is the identity (no op on the tape).

use snn_core::{collective, Error, Result};

use crate::Rows;

/// All ranks' `[b_r, F]` rows as `[sum b_r, F]` on every rank.
pub fn gather_rows(x: Rows) -> Result<Rows> {
    if !collective::is_distributed() {
        return Ok(x);
    }
    snn_core::host_kernels! {
        return Ok(crate::host::gather::gather_rows(x));
    }
    #[allow(unreachable_code)]
    Err(Error::invalid(
        "ranks",
        "a loss over the whole batch (ESVAE's MMD) gathers rows across ranks in host memory: train it under MPI with the CPU build",
    ))
}
