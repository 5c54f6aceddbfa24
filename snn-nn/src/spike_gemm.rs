//! Products with a binary (spike) operand by table lookup instead of
//! multiplication.
//!
//! A spike matrix `S` (`[m, k]`, entries 0 or one common value `s`) is
//! packed 8 columns per byte. For every group of 4 columns there are only
//! 16 possible bit patterns, so `S W` needs, per group, the 16 sums of
//! subsets of those 4 weight rows (a table built once per product, `k / 4 *
//! 16` rows, cheap next to the product), and then each output row is one
//! table row added per group: a quarter of the dense product's
//! multiply-adds, and no multiplications at all. The weight gradient
//! `S^T G` is the transpose trick: each row of `G` is added into the
//! bucket of its pattern, per group, and each weight row's gradient is the
//! sum of the 8 buckets whose pattern has its bit set. Both are
//! independent of the firing rate (dense spike maps cost the same as
//! sparse ones), which matters because in the paper's networks the inputs
//! of conv2 are ~80% ones after max pooling.
//!
//! Sums run in a different order from a dense GEMM, so results agree with
//! it to rounding (the tests hold them to 1e-5 relative), not bit for bit.

use rayon::prelude::*;

/// Output columns per task tile (the weight gradient's buckets: 8 AVX2
/// registers of accumulators).
pub(super) const TILE: usize = 64;
/// Groups per block of the weight gradient's buckets: 64 groups x 16
/// patterns x 256 B = 256 KiB, in L2.
const BLOCK: usize = 64;
/// The forward product's table block: 32 columns (4 AVX2 registers, so
/// even and odd groups can add into separate registers: one chain per
/// register waits on the add latency) by 32 groups (64 KiB). Each block
/// pass reads and writes every output row's 32 columns, so fewer, larger
/// blocks win until the table leaves L2; measured on conv2 at batch 64
/// (`examples/spike_gemm.rs`): 8 groups 96-103 ms, 16-32 groups 73-76 ms,
/// 64 groups 78 ms; the former 64 columns x 64 groups, 90 ms.
const LOOKUP_COLS: usize = 32;
const LOOKUP_GROUPS: usize = 32;
/// Output rows per pass of the forward product: their columns of the tile
/// (128 KiB) stay in L2 while every block of groups adds into them.
const ROWS: usize = 1024;

/// Whether a product with `rows` rows is worth a table: below this the
/// table's construction costs about what the lookups save (measured with
/// `examples/spike_gemm.rs`: parity for FC1 at 128 rows).
pub fn worthwhile(rows: usize) -> bool {
    rows >= 256
}

/// A binary matrix `[rows, k]` as bits (column `j` of a row is bit `j % 8`
/// of byte `j / 8`), every entry 0 or `scale`.
#[derive(Clone, Debug)]
pub struct SpikeMatrix {
    pub rows: usize,
    pub k: usize,
    /// Bytes per row: `ceil(k / 8)`.
    pub stride: usize,
    pub bits: Vec<u8>,
    pub scale: f32,
}

impl SpikeMatrix {
    /// Packs `x` (`[rows, k]`) if every entry is 0 or one common nonzero
    /// value (spikes, or spikes scaled by dropout); `None` otherwise.
    pub fn pack(x: &[f32], rows: usize, k: usize) -> Option<Self> {
        assert_eq!(x.len(), rows * k);
        let stride = k.div_ceil(8);
        let mut bits = vec![0u8; rows * stride];
        let scale = x.iter().copied().find(|v| *v != 0.0).unwrap_or(1.0);
        if scale.is_nan() {
            return None;
        }
        for (src, dst) in x
            .chunks_exact(k.max(1))
            .zip(bits.chunks_exact_mut(stride.max(1)))
        {
            if !pack_row(src, scale, dst) {
                return None;
            }
        }
        Some(Self {
            rows,
            k,
            stride,
            bits,
            scale,
        })
    }

    /// Rows `r0..r1` as floats (0 or `scale`), into `out` (`[r1 - r0, k]`):
    /// the inverse of [`SpikeMatrix::pack`] (a `-0.0` entry comes back `0.0`).
    pub fn unpack_rows(&self, r0: usize, r1: usize, out: &mut [f32]) {
        let k = self.k.max(1);
        let rows = self.bits[r0 * self.stride..r1 * self.stride].chunks_exact(self.stride.max(1));
        for (src, dst) in rows.zip(out.chunks_exact_mut(k)) {
            for (byte, eight) in src.iter().zip(dst.chunks_mut(8)) {
                for (bit, v) in eight.iter_mut().enumerate() {
                    *v = if byte >> bit & 1 == 1 {
                        self.scale
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    /// How many entries are `scale`.
    pub fn ones(&self) -> usize {
        self.bits.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// The fraction of entries that are `scale` (0 for an empty matrix).
    pub fn density(&self) -> f64 {
        self.ones() as f64 / (self.rows * self.k).max(1) as f64
    }

    /// 4-bit pattern of group `g` (columns `4g..4g+4`) of row `r`.
    #[inline(always)]
    fn nibble(&self, r: usize, g: usize) -> usize {
        ((self.bits[r * self.stride + g / 2] >> ((g & 1) * 4)) & 15) as usize
    }

    fn groups(&self) -> usize {
        2 * self.stride
    }
}

/// Packs one row into `dst`; false if an entry is neither 0 nor `scale`.
fn pack_row(src: &[f32], scale: f32, dst: &mut [u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { pack_row_avx2(src, scale, dst) };
    }
    pack_row_portable(src, scale, dst)
}

fn pack_row_portable(src: &[f32], scale: f32, dst: &mut [u8]) -> bool {
    for (j, &v) in src.iter().enumerate() {
        if v == scale {
            dst[j / 8] |= 1 << (j % 8);
        } else if v != 0.0 {
            return false;
        }
    }
    true
}

/// Eight entries per step: two compares and two move-masks give the byte
/// and whether all eight were 0 or `scale`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pack_row_avx2(src: &[f32], scale: f32, dst: &mut [u8]) -> bool {
    use std::arch::x86_64::*;
    let full = src.len() / 8;
    let zero = _mm256_setzero_ps();
    let s = _mm256_set1_ps(scale);
    for (i, d) in dst.iter_mut().enumerate().take(full) {
        // SAFETY: i < len / 8, so the 8 floats at 8 i are inside `src`.
        let v = unsafe { _mm256_loadu_ps(src.as_ptr().add(8 * i)) };
        let ones = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(v, s));
        let zeros = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(v, zero));
        if ones | zeros != 0xFF {
            return false;
        }
        *d = ones as u8;
    }
    let tail = &src[8 * full..];
    pack_row_portable(tail, scale, &mut dst[full..])
}

/// Subset sums of weight rows `4g..4g+4` (rows past `k` count as zero),
/// for groups `g0..g1` and output columns `n0..n0 + width` of `w` (`[k,
/// n]`), into `table` (`[g1 - g0][16][LOOKUP_COLS]`).
fn build_table(
    w: &[f32],
    k: usize,
    n: usize,
    cols: (usize, usize),
    g0: usize,
    g1: usize,
    table: &mut [Entry],
) {
    let (n0, width) = cols;
    for (g, t) in (g0..g1).zip(table.chunks_exact_mut(16)) {
        t[0] = [0.0; LOOKUP_COLS];
        for p in 1..16usize {
            let row = 4 * g + p.trailing_zeros() as usize;
            let mut e = t[p & (p - 1)];
            if row < k {
                let src = &w[row * n + n0..row * n + n0 + width];
                e.iter_mut().zip(src).for_each(|(a, b)| *a += b);
            }
            t[p] = e;
        }
    }
}

/// One table entry: the sum of a subset of 4 weight rows, `LOOKUP_COLS` wide.
type Entry = [f32; LOOKUP_COLS];

/// `out = s * S W` for `w` `[k, n]`, `out` `[rows, n]`. Rows are split
/// between threads; each builds the table one cache block of groups at a
/// time (the whole table of a wide layer would not stay in cache).
pub fn matmul(a: &SpikeMatrix, w: &[f32], n: usize, out: &mut [f32]) {
    assert!(w.len() >= a.k * n && out.len() >= a.rows * n);
    if a.rows == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    if a.rows < threads * ROWS && n > TILE {
        return matmul_by_tiles(a, w, n, out);
    }
    let per_thread = a.rows.div_ceil(threads).max(1);
    let per_task = per_thread.min(ROWS);
    out[..a.rows * n]
        .par_chunks_mut(per_task * n)
        .enumerate()
        .for_each(|(chunk, out)| {
            let mut table = vec![[0.0f32; LOOKUP_COLS]; LOOKUP_GROUPS * 16];
            for n0 in (0..n).step_by(TILE) {
                let out = TileOut {
                    rows: out,
                    stride: n,
                    col0: n0,
                };
                column_tile(a, w, n, n0, &mut table, chunk * per_task, out);
            }
        });
}

/// [`matmul`] for few rows and many columns: threads take column tiles, so
/// each table entry is built once (split by rows, every thread would build
/// every table, which costs as much as the lookups at ~100 rows).
fn matmul_by_tiles(a: &SpikeMatrix, w: &[f32], n: usize, out: &mut [f32]) {
    by_column_tiles(a.rows, n, 1.0, out, |n0, width, cols| {
        let mut table = vec![[0.0f32; LOOKUP_COLS]; LOOKUP_GROUPS * 16];
        let out = TileOut {
            rows: cols,
            stride: width,
            col0: 0,
        };
        column_tile(a, w, n, n0, &mut table, 0, out);
    });
}

/// Fills `out` (`[rows, n]`) one tile of `TILE` columns per task:
/// `tile(n0, width, cols)` computes columns `n0..n0 + width` into `cols`
/// (`[rows, width]`), and they are copied into `out` times `scale`.
pub(super) fn by_column_tiles(
    rows: usize,
    n: usize,
    scale: f32,
    out: &mut [f32],
    tile: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let tiles: Vec<(usize, Vec<f32>)> = (0..n)
        .step_by(TILE)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|n0| {
            let width = TILE.min(n - n0);
            let mut cols = vec![0.0f32; rows * width];
            tile(n0, width, &mut cols);
            (n0, cols)
        })
        .collect();
    for (n0, cols) in tiles {
        let width = TILE.min(n - n0);
        for (dst, src) in out.chunks_exact_mut(n).zip(cols.chunks_exact(width)) {
            let dst = &mut dst[n0..n0 + width];
            dst.iter_mut().zip(src).for_each(|(d, v)| *d = scale * v);
        }
    }
}

/// Where a tile's results go: rows of `stride` floats, the tile starting
/// at column `col0`.
struct TileOut<'a> {
    rows: &'a mut [f32],
    stride: usize,
    col0: usize,
}

/// Output columns `n0..n0 + TILE` of spike rows `r0..` into `out`,
/// `LOOKUP_COLS` columns and one block of groups at a time: build the
/// block's table in `table`, add it into every row.
fn column_tile(
    a: &SpikeMatrix,
    w: &[f32],
    n: usize,
    n0: usize,
    table: &mut [Entry],
    r0: usize,
    out: TileOut<'_>,
) {
    let groups = a.groups();
    let tile = TILE.min(n - n0);
    for c0 in (0..tile).step_by(LOOKUP_COLS) {
        let width = LOOKUP_COLS.min(tile - c0);
        for g0 in (0..groups).step_by(LOOKUP_GROUPS) {
            let g1 = (g0 + LOOKUP_GROUPS).min(groups);
            build_table(w, a.k, n, (n0 + c0, width), g0, g1, table);
            let block = Block {
                g0,
                g1,
                n0: out.col0 + c0,
                width,
                last: g1 == groups,
            };
            lookup_rows(a, table, r0, &mut *out.rows, out.stride, block);
        }
    }
}

/// Which groups and output columns a table block covers.
#[derive(Clone, Copy)]
struct Block {
    g0: usize,
    g1: usize,
    n0: usize,
    width: usize,
    last: bool,
}

fn lookup_rows(a: &SpikeMatrix, table: &[Entry], r0: usize, out: &mut [f32], n: usize, b: Block) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { lookup_rows_avx2(a, table, r0, out, n, b) };
    }
    lookup_rows_portable(a, table, r0, out, n, b)
}

/// [`lookup_rows_portable`] with the 32 accumulators in 4 registers,
/// loaded from and stored to the output row directly when the block is
/// `LOOKUP_COLS` wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lookup_rows_avx2(
    a: &SpikeMatrix,
    table: &[Entry],
    r0: usize,
    out: &mut [f32],
    n: usize,
    b: Block,
) {
    use std::arch::x86_64::*;
    const REGS: usize = LOOKUP_COLS / 8;
    assert!(table.len() >= (b.g1 - b.g0) * 16);
    let t = table.as_ptr() as *const f32;
    let scale = _mm256_set1_ps(a.scale);
    for (i, row) in out.chunks_exact_mut(n).enumerate() {
        let bits = &a.bits[(r0 + i) * a.stride..(r0 + i + 1) * a.stride];
        let dst = &mut row[b.n0..b.n0 + b.width];
        let mut buf = [0.0f32; LOOKUP_COLS];
        let full = b.width == LOOKUP_COLS;
        if !full && b.g0 > 0 {
            buf[..b.width].copy_from_slice(dst);
        }
        let acc_ptr = if full {
            dst.as_mut_ptr()
        } else {
            buf.as_mut_ptr()
        };
        // SAFETY: `acc_ptr` points at LOOKUP_COLS floats (the full-width
        // slice of the row, or `buf`); 8 j < LOOKUP_COLS.
        let mut acc: [__m256; REGS] = std::array::from_fn(|j| {
            if b.g0 == 0 {
                _mm256_setzero_ps()
            } else {
                unsafe { _mm256_loadu_ps(acc_ptr.add(8 * j)) }
            }
        });
        // Even and odd groups add into separate registers: one chain of
        // dependent adds per register would wait on the add latency (3
        // cycles) where the two loads per cycle allow twice the rate.
        let mut odd = [_mm256_setzero_ps(); REGS];
        // SAFETY: g - g0 < g1 - g0 and p < 16 index inside `table`
        // (asserted above), whose entries are LOOKUP_COLS floats.
        let entry = |g: usize| unsafe {
            let p = ((bits[g / 2] >> ((g & 1) * 4)) & 15) as usize;
            t.add(((g - b.g0) * 16 + p) * LOOKUP_COLS)
        };
        for g in (b.g0..b.g1).step_by(2) {
            let e = entry(g);
            for (j, r) in acc.iter_mut().enumerate() {
                *r = _mm256_add_ps(*r, unsafe { _mm256_loadu_ps(e.add(8 * j)) });
            }
            if g + 1 < b.g1 {
                let e = entry(g + 1);
                for (j, r) in odd.iter_mut().enumerate() {
                    *r = _mm256_add_ps(*r, unsafe { _mm256_loadu_ps(e.add(8 * j)) });
                }
            }
        }
        for (j, r) in acc.iter().enumerate() {
            let r = _mm256_add_ps(*r, odd[j]);
            let v = if b.last { _mm256_mul_ps(r, scale) } else { r };
            // SAFETY: as for the loads above.
            unsafe { _mm256_storeu_ps(acc_ptr.add(8 * j), v) };
        }
        if !full {
            dst.copy_from_slice(&buf[..b.width]);
        }
    }
}

/// Each row's sum of one table entry per group of the block, added to what
/// earlier blocks left in the row (written by the first block), times the
/// spike value after the last block.
fn lookup_rows_portable(
    a: &SpikeMatrix,
    table: &[Entry],
    r0: usize,
    out: &mut [f32],
    n: usize,
    b: Block,
) {
    for (i, row) in out.chunks_exact_mut(n).enumerate() {
        let mut acc = [0.0f32; LOOKUP_COLS];
        let dst = &mut row[b.n0..b.n0 + b.width];
        if b.g0 > 0 {
            acc[..b.width].copy_from_slice(dst);
        }
        for g in b.g0..b.g1 {
            let e = &table[(g - b.g0) * 16 + a.nibble(r0 + i, g)];
            acc.iter_mut().zip(e).for_each(|(x, y)| *x += y);
        }
        if b.last {
            acc.iter_mut().for_each(|x| *x *= a.scale);
        }
        dst.copy_from_slice(&acc[..b.width]);
    }
}

/// `dw += s * S^T G` for `g` `[rows, n]`, `dw` `[k, n]`. Tasks are (column
/// tile, block of groups) pairs: each owns distinct rows of `dw`, so no
/// thread's partial sums need adding to another's.
pub fn weight_grad(a: &SpikeMatrix, g: &[f32], n: usize, dw: &mut [f32]) {
    assert!(g.len() >= a.rows * n && dw.len() >= a.k * n);
    let groups = a.groups();
    let tasks: Vec<Block> = (0..n)
        .step_by(TILE)
        .flat_map(|n0| {
            (0..groups).step_by(BLOCK).map(move |g0| Block {
                g0,
                g1: (g0 + BLOCK).min(groups),
                n0,
                width: TILE.min(n - n0),
                last: false,
            })
        })
        .collect();
    let parts: Vec<(Block, Vec<f32>)> = tasks
        .into_par_iter()
        .map(|b| {
            let mut buckets = vec![[0.0f32; TILE]; (b.g1 - b.g0) * 16];
            bucket_rows(a, g, n, b, &mut buckets);
            // Weight row 4 grp + j: the buckets whose pattern has bit j.
            let mut rows = vec![0.0f32; 4 * (b.g1 - b.g0) * b.width];
            for (i, dst) in rows.chunks_exact_mut(b.width).enumerate() {
                let (grp, bit) = (i / 4, i % 4);
                for p in (1..16usize).filter(|p| p & (1 << bit) != 0) {
                    let src = &buckets[grp * 16 + p];
                    dst.iter_mut().zip(src).for_each(|(d, x)| *d += x);
                }
            }
            (b, rows)
        })
        .collect();
    for (b, rows) in parts {
        for (i, src) in rows.chunks_exact(b.width).enumerate() {
            let row = 4 * b.g0 + i;
            if row >= a.k {
                break;
            }
            let dst = &mut dw[row * n + b.n0..row * n + b.n0 + b.width];
            dst.iter_mut().zip(src).for_each(|(d, x)| *d += a.scale * x);
        }
    }
}

/// [`weight_grad`] by the dense GEMM: the spikes unpacked to floats a
/// chunk of rows at a time (`ROWS`, so the unpacked block stays small) and
/// multiplied, `dw += S^T G`. Where the GEMM runs fast enough (AVX-512),
/// this beats the buckets despite doing every multiply-add.
pub fn weight_grad_dense(a: &SpikeMatrix, g: &[f32], n: usize, dw: &mut [f32]) {
    use snn_core::gemm::{matmul, Op};
    assert!(g.len() >= a.rows * n && dw.len() >= a.k * n);
    let mut block = vec![0.0f32; ROWS.min(a.rows) * a.k];
    for r0 in (0..a.rows).step_by(ROWS) {
        let r1 = (r0 + ROWS).min(a.rows);
        let s = &mut block[..(r1 - r0) * a.k];
        a.unpack_rows(r0, r1, s);
        matmul(
            [a.k, n, r1 - r0],
            Op::T(s),
            Op::N(&g[r0 * n..r1 * n]),
            dw,
            true,
        );
    }
}

fn bucket_rows(a: &SpikeMatrix, g: &[f32], n: usize, b: Block, buckets: &mut [[f32; TILE]]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { bucket_rows_avx2(a, g, n, b, buckets) };
    }
    bucket_rows_portable(a, g, n, b, buckets)
}

/// [`bucket_rows_portable`] with the gradient row in 8 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bucket_rows_avx2(
    a: &SpikeMatrix,
    g: &[f32],
    n: usize,
    b: Block,
    buckets: &mut [[f32; TILE]],
) {
    use std::arch::x86_64::*;
    assert!(buckets.len() >= (b.g1 - b.g0) * 16);
    let base = buckets.as_mut_ptr() as *mut f32;
    for r in 0..a.rows {
        let mut row = [0.0f32; TILE];
        row[..b.width].copy_from_slice(&g[r * n + b.n0..r * n + b.n0 + b.width]);
        // SAFETY: 8 floats at 8 j < TILE.
        let v: [__m256; 8] =
            std::array::from_fn(|j| unsafe { _mm256_loadu_ps(row.as_ptr().add(8 * j)) });
        let bits = &a.bits[r * a.stride..(r + 1) * a.stride];
        for grp in b.g0..b.g1 {
            let p = ((bits[grp / 2] >> ((grp & 1) * 4)) & 15) as usize;
            if p == 0 {
                continue;
            }
            // SAFETY: grp - g0 < g1 - g0 and p < 16 index inside `buckets`
            // (asserted above), whose entries are TILE = 64 floats.
            let e = unsafe { base.add(((grp - b.g0) * 16 + p) * TILE) };
            for (j, x) in v.iter().enumerate() {
                unsafe {
                    let q = e.add(8 * j);
                    _mm256_storeu_ps(q, _mm256_add_ps(_mm256_loadu_ps(q), *x));
                }
            }
        }
    }
}

/// Adds each row of `g` (the block's columns) into the bucket of its
/// pattern, per group; pattern 0 feeds no weight row and is skipped.
fn bucket_rows_portable(
    a: &SpikeMatrix,
    g: &[f32],
    n: usize,
    b: Block,
    buckets: &mut [[f32; TILE]],
) {
    for r in 0..a.rows {
        let src = &g[r * n + b.n0..r * n + b.n0 + b.width];
        for grp in b.g0..b.g1 {
            let p = a.nibble(r, grp);
            if p != 0 {
                let e = &mut buckets[(grp - b.g0) * 16 + p];
                e.iter_mut().zip(src).for_each(|(x, y)| *x += y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::check_products;
    use super::*;

    #[test]
    fn products_match_the_dense_definition_at_every_density_and_odd_sizes() {
        // k not a multiple of 4 or 8, n over two tiles and not a multiple of 64.
        check_products(37, 45, 150, matmul, weight_grad);
    }

    #[test]
    fn many_rows_and_several_table_blocks_match_the_dense_definition() {
        // Over 2 x ROWS rows (the row-split path, last chunk partial), 36
        // groups (two table blocks, the second partial) and 70 columns (a
        // full tile, then a sub-tile of 6).
        check_products(2 * ROWS + 52, 141, 70, matmul, weight_grad);
        // The dense weight gradient over the same chunks of ROWS rows.
        check_products(2 * ROWS + 52, 141, 70, matmul, weight_grad_dense);
    }

    #[test]
    fn packing_accepts_zero_and_one_common_value_only() {
        let s =
            SpikeMatrix::pack(&[0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0], 1, 10).unwrap();
        assert_eq!(s.scale, 2.0);
        assert_eq!(s.bits, vec![0b0000_0110, 0b10]);
        let mut back = [9.0f32; 10];
        s.unpack_rows(0, 1, &mut back);
        assert_eq!(back, [0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]);
        assert!(SpikeMatrix::pack(&[1.0, 0.5], 1, 2).is_none());
        assert!(SpikeMatrix::pack(&[1.0, -1.0], 2, 1).is_none());
        assert_eq!(SpikeMatrix::pack(&[0.0; 4], 2, 2).unwrap().scale, 1.0);
        assert_eq!((s.ones(), s.density()), (3, 0.3));
    }
}
