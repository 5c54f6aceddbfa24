//! Which spike kernel multiplies a spike matrix by a weight: index lists
//! or table lookup, chosen from the measured density (or neither, where
//! the dense product is as fast).

/// Which spike kernel a product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpikeProduct {
    /// Index lists of the ones ([`crate::spike_sparse`]).
    Lists,
    /// Subset-sum tables over packed bits ([`crate::spike_gemm`]).
    Table,
}

impl SpikeProduct {
    /// The kernel for `bits` times a weight with `n` output columns, from
    /// the measured density; `None` where the dense product is as fast.
    /// Costs relative to the dense product, measured with
    /// `examples/spike_gemm.rs` at FC1's shape (forward and weight gradient
    /// alike): the lists ~2.2 x density (given at least two 64-column tiles
    /// per thread to spread the work), the table ~0.6 from 256 rows up.
    pub fn choose(bits: &crate::spike_gemm::SpikeMatrix, n: usize) -> Option<Self> {
        const LISTS_PER_DENSITY: f64 = 2.2;
        const TABLE: f64 = 0.6;
        let lists = if Self::lists_apply(n) {
            LISTS_PER_DENSITY * bits.density()
        } else {
            f64::INFINITY
        };
        let table = if crate::spike_gemm::worthwhile(bits.rows) {
            TABLE
        } else {
            f64::INFINITY
        };
        if lists < table.min(1.0) {
            Some(Self::Lists)
        } else if table < 1.0 {
            Some(Self::Table)
        } else {
            None
        }
    }

    /// Whether [`SpikeProduct::choose`] could pick a spike kernel for
    /// `rows` x `n` at some density: if not, the input need not be packed.
    pub fn any_applies(rows: usize, n: usize) -> bool {
        Self::lists_apply(n) || crate::spike_gemm::worthwhile(rows)
    }

    /// Lists need at least two column tiles per thread to spread the work.
    fn lists_apply(n: usize) -> bool {
        let threads = rayon::current_num_threads().max(1);
        n >= 2 * crate::spike_gemm::TILE * threads
    }
}
