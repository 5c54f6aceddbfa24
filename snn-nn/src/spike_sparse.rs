//! Products with a sparse spike operand by index lists: only the ones are
//! visited.
//!
//! For a spike matrix `S` (`[m, k]`, entries 0 or `s`) with density `d`,
//! `S W` is, per row, the sum of the weight rows at the row's ones: `d k`
//! row additions against the dense product's `k` multiply-adds, and the
//! table-lookup kernel's `k / 4` ([`super::spike_gemm`]). Below a density of
//! about a quarter (0.45 where the table is not worth building) this is
//! the cheapest of the three, which is where the
//! paper's FC layers sit in training (max-pooled spikes, then dropout).
//! The weight gradient `S^T G` is the same walk transposed: weight row `j`
//! gathers the gradient rows of the inputs whose column `j` fired.
//!
//! Sums run in a different order from a dense GEMM, so results agree with
//! it to rounding, not bit for bit.

// Output columns per pass (the table kernel's tile): 8 AVX2 registers.
use super::spike_gemm::{by_column_tiles, SpikeMatrix, TILE};
use rayon::prelude::*;

/// Weight rows per cache block: 1024 rows of one 64-column tile are 256
/// KiB, which stay in L2 while every output row of a task adds from them.
const K_BLOCK: usize = 256;

/// The ones of a spike matrix as sorted column indices per row (CSR without
/// values: every value is `scale`).
#[derive(Clone, Debug)]
pub struct SpikeLists {
    pub rows: usize,
    pub k: usize,
    /// Row `r`'s columns are `cols[starts[r]..starts[r + 1]]`.
    pub starts: Vec<usize>,
    pub cols: Vec<u32>,
    pub scale: f32,
}

impl SpikeLists {
    pub fn from_bits(a: &SpikeMatrix) -> Self {
        let mut starts = Vec::with_capacity(a.rows + 1);
        let mut cols = Vec::with_capacity(a.ones());
        starts.push(0);
        for r in 0..a.rows {
            let row = &a.bits[r * a.stride..(r + 1) * a.stride];
            for (b, &byte) in row.iter().enumerate() {
                let mut bits = byte;
                while bits != 0 {
                    cols.push((8 * b) as u32 + bits.trailing_zeros());
                    bits &= bits - 1;
                }
            }
            starts.push(cols.len());
        }
        Self {
            rows: a.rows,
            k: a.k,
            starts,
            cols,
            scale: a.scale,
        }
    }

    fn row(&self, r: usize) -> &[u32] {
        &self.cols[self.starts[r]..self.starts[r + 1]]
    }

    /// The transpose: for each column, the rows where it fired.
    fn transpose(&self) -> Self {
        let mut counts = vec![0usize; self.k + 1];
        for &j in &self.cols {
            counts[j as usize + 1] += 1;
        }
        for j in 0..self.k {
            counts[j + 1] += counts[j];
        }
        let starts = counts.clone();
        let mut next = counts;
        let mut cols = vec![0u32; self.cols.len()];
        for r in 0..self.rows {
            for &j in self.row(r) {
                cols[next[j as usize]] = r as u32;
                next[j as usize] += 1;
            }
        }
        Self {
            rows: self.k,
            k: self.rows,
            starts,
            cols,
            scale: self.scale,
        }
    }
}

/// `out = s * S W` for `w` `[k, n]`, `out` `[rows, n]`. Threads take
/// column tiles, so each weight is read from memory once (split by rows,
/// every thread would stream the whole weight matrix); each tile walks all
/// rows once per block of weight rows, which stays in cache meanwhile.
pub fn matmul(a: &SpikeLists, w: &[f32], n: usize, out: &mut [f32]) {
    assert!(w.len() >= a.k * n && out.len() >= a.rows * n);
    if a.rows == 0 || n == 0 {
        return;
    }
    by_column_tiles(a.rows, n, a.scale, out, |n0, width, cols| {
        let mut cursor = a.starts[..a.rows].to_vec();
        let mut block = vec![0.0f32; K_BLOCK * width];
        for k0 in (0..a.k).step_by(K_BLOCK) {
            let k1 = (k0 + K_BLOCK).min(a.k);
            // The block's weights, packed contiguous: in place, rows of a
            // wide layer sit one page apart and evict each other.
            for (dst, j) in block.chunks_exact_mut(width).zip(k0..k1) {
                dst.copy_from_slice(&w[j * n + n0..j * n + n0 + width]);
            }
            for (r, acc) in cols.chunks_exact_mut(width).enumerate() {
                // Lists are sorted: the block's part starts at the cursor
                // and ends at the first column past the block.
                let (from, end) = (cursor[r], a.starts[r + 1]);
                let mut to = from;
                while to < end && (a.cols[to] as usize) < k1 {
                    to += 1;
                }
                add_rows(&a.cols[from..to], k0, &block[..(k1 - k0) * width], acc);
                cursor[r] = to;
            }
        }
    });
}

/// `dw += s * S^T G` for `g` `[rows, n]`, `dw` `[k, n]`. Weight rows are
/// split between threads; each gathers, per column tile, the gradient rows
/// of the inputs where its column fired.
pub fn weight_grad(a: &SpikeLists, g: &[f32], n: usize, dw: &mut [f32]) {
    assert!(g.len() >= a.rows * n && dw.len() >= a.k * n);
    if a.k == 0 || n == 0 {
        return;
    }
    let by_column = a.transpose();
    // The gradient in column tiles, each `[rows, width]` contiguous, so a
    // tile stays in cache while the weight rows gather from it.
    let tiles: Vec<(usize, Vec<f32>)> = (0..n)
        .step_by(TILE)
        .map(|n0| {
            let width = TILE.min(n - n0);
            let mut t = Vec::with_capacity(a.rows * width);
            for r in 0..a.rows {
                t.extend_from_slice(&g[r * n + n0..r * n + n0 + width]);
            }
            (n0, t)
        })
        .collect();
    let tasks = 8 * rayon::current_num_threads().max(1);
    let per_task = a.k.div_ceil(tasks).max(1);
    dw[..a.k * n]
        .par_chunks_mut(per_task * n)
        .enumerate()
        .for_each(|(chunk, dw)| {
            let j0 = chunk * per_task;
            let mut acc = [0.0f32; TILE];
            for &(n0, ref tile) in &tiles {
                let width = TILE.min(n - n0);
                for (i, dst) in dw.chunks_exact_mut(n).enumerate() {
                    acc[..width].fill(0.0);
                    add_rows(by_column.row(j0 + i), 0, tile, &mut acc[..width]);
                    let dst = &mut dst[n0..n0 + width];
                    dst.iter_mut()
                        .zip(&acc)
                        .for_each(|(d, x)| *d += a.scale * x);
                }
            }
        });
}

/// `acc += sum of rows (list - first) of m`, whose rows are `acc.len()`
/// floats.
fn add_rows(list: &[u32], first: usize, m: &[f32], acc: &mut [f32]) {
    let width = acc.len();
    #[cfg(target_arch = "x86_64")]
    if width == TILE && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { add_rows_avx2(list, first, m, acc) };
    }
    for &j in list {
        let src = &m[(j as usize - first) * width..][..width];
        acc.iter_mut().zip(src).for_each(|(a, b)| *a += b);
    }
}

/// [`add_rows`] for a full tile, the 64 sums in 8 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_rows_avx2(list: &[u32], first: usize, m: &[f32], acc: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(acc.len() == TILE);
    let rows = m.len() / TILE;
    assert!(list
        .iter()
        .all(|&j| (j as usize) >= first && (j as usize) - first < rows));
    // SAFETY: 8 floats at 8 r < TILE = acc.len().
    let mut sums: [__m256; 8] =
        std::array::from_fn(|r| unsafe { _mm256_loadu_ps(acc.as_ptr().add(8 * r)) });
    for &j in list {
        // SAFETY: row j - first < m.len() / TILE (asserted above).
        let src = unsafe { m.as_ptr().add((j as usize - first) * TILE) };
        for (r, s) in sums.iter_mut().enumerate() {
            *s = _mm256_add_ps(*s, unsafe { _mm256_loadu_ps(src.add(8 * r)) });
        }
    }
    for (r, s) in sums.iter().enumerate() {
        // SAFETY: as for the loads.
        unsafe { _mm256_storeu_ps(acc.as_mut_ptr().add(8 * r), *s) };
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::check_products;
    use super::*;

    #[test]
    fn products_match_the_dense_definition_at_every_density_and_odd_sizes() {
        // k over two weight blocks and not a multiple of 8; n over two
        // full tiles and a partial one.
        check_products(
            37,
            2 * K_BLOCK + 45,
            150,
            |s, w, n, out| matmul(&SpikeLists::from_bits(s), w, n, out),
            |s, g, n, dw| weight_grad(&SpikeLists::from_bits(s), g, n, dw),
        );
    }

    #[test]
    fn lists_and_their_transpose_hold_the_ones_in_order() {
        // Row 0: columns 1, 2, 9; row 1: none; row 2: columns 0, 9.
        let mut x = vec![0.0f32; 30];
        for i in [1, 2, 9, 20, 29] {
            x[i] = 1.0;
        }
        let l = SpikeLists::from_bits(&SpikeMatrix::pack(&x, 3, 10).unwrap());
        assert_eq!(
            (l.starts.clone(), l.cols.clone()),
            (vec![0, 3, 3, 5], vec![1, 2, 9, 0, 9])
        );
        let t = l.transpose();
        assert_eq!(t.starts, vec![0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 5]);
        assert_eq!(t.cols, vec![2, 0, 0, 0, 2]);
    }
}
