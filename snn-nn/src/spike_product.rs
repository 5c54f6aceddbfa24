//! Which kernel multiplies a spike matrix by a weight: index lists, table
//! lookup or the dense GEMM, chosen from the measured density and the
//! GEMM's speed on this CPU.

/// Which kernel a product with a spike input runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpikeProduct {
    /// Index lists of the ones ([`crate::spike_sparse`]).
    Lists,
    /// Subset-sum tables over packed bits ([`crate::spike_gemm`]).
    Table,
    /// The dense GEMM, the spikes kept as bits for the weight gradient
    /// ([`crate::spike_gemm::weight_grad_dense`]).
    Dense,
}

impl SpikeProduct {
    /// The kernel for `bits` times a weight with `n` output columns, from
    /// the measured density.
    ///
    /// Costs relative to the dense product (forward and weight gradient
    /// together), measured with `examples/spike_gemm.rs` at FC1's shape:
    /// with AVX2 GEMM microkernels (gemm 0.15 then) the lists ~2.2 x
    /// density (given at least two 64-column tiles per thread to spread
    /// the work) and the table ~0.6 from 256 rows up; with AVX-512 ones,
    /// twice as fast, the lists 4.4-7.5 x density (batch 16 and 64,
    /// densities 0.1-0.8) and the table 1.8-2.5 (forward 1.0-1.6, weight
    /// gradient 2.3-3.6), so only inputs sparser than ~0.15-0.2 leave the
    /// GEMM there.
    pub fn choose(bits: &crate::spike_gemm::SpikeMatrix, n: usize) -> Self {
        let (lists_per_density, table) = if snn_core::gemm::wide() {
            (5.5, 2.0)
        } else {
            (2.2, 0.6)
        };
        let lists = if Self::lists_apply(n) {
            lists_per_density * bits.density()
        } else {
            f64::INFINITY
        };
        let table = if crate::spike_gemm::worthwhile(bits.rows) {
            table
        } else {
            f64::INFINITY
        };
        if lists < table.min(1.0) {
            Self::Lists
        } else if table < 1.0 {
            Self::Table
        } else {
            Self::Dense
        }
    }

    /// Lists need at least two column tiles per thread to spread the work.
    fn lists_apply(n: usize) -> bool {
        let threads = rayon::current_num_threads().max(1);
        n >= 2 * crate::spike_gemm::TILE * threads
    }
}
