//! Row-major f32 matrix products over slices, through the `gemm` crate, for
//! the project's own CPU kernels (layers and scoring networks).
//!
//! This is a newer `gemm` than the one inside dfdx's CPU matmul (0.15):
//! with its `x86-v4` feature it runs AVX-512 microkernels where the CPU has
//! them (AVX2 + FMA otherwise), 2-2.5x dfdx's rate on this project's
//! AVX-512 machine (`snn bench` prints the rate it measures).

use gemm::Parallelism;

/// Whether [`matmul`] runs on AVX-512 microkernels here (`gemm` picks
/// them at run time): about twice the AVX2 rate, which moves the point
/// where a spike kernel beats the dense product (`snn_nn::SpikeProduct`).
pub fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Allocates `gemm`'s per-thread packing buffer (`L2_SLAB`, the size of
/// the L2 cache: 2 MiB here) on the calling thread and every thread of the
/// rayon pool. `gemm` makes it lazily, on whichever thread first runs a
/// product of a certain form, so without this the memory estimate's
/// probes (`snn_train::memory`) saw 2 MiB more or less depending on how
/// rayon happened to split earlier work, and extrapolated it as a cost
/// per image.
pub fn warm_threads() {
    fn touch() {
        gemm_common::gemm::L2_SLAB.with(|_| ());
    }
    rayon::broadcast(|_| touch());
    touch();
}

/// A matrix operand as its slice holds it, row-major: `N(a)` holds the
/// operand itself, `T(a)` its transpose.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    N(&'a [f32]),
    T(&'a [f32]),
}

impl<'a> Op<'a> {
    /// `T(a)` when `transposed`, else `N(a)`.
    pub fn new(a: &'a [f32], transposed: bool) -> Self {
        if transposed {
            Op::T(a)
        } else {
            Op::N(a)
        }
    }

    fn parts(self) -> (&'a [f32], bool) {
        match self {
            Op::N(a) => (a, false),
            Op::T(a) => (a, true),
        }
    }
}

/// `c (+)= a * b` with `a` of shape `[m, k]` and `b` of shape `[k, n]`
/// (as [`Op`]s: each slice holds the operand or its transpose), `c`
/// `[m, n]` row-major; `accumulate` adds to `c` instead of overwriting it.
pub fn matmul([m, n, k]: [usize; 3], a: Op<'_>, b: Op<'_>, c: &mut [f32], accumulate: bool) {
    assert!(c.len() >= m * n);
    // SAFETY: `c` holds `m * n` initialised values, and does not alias `a`
    // or `b` (distinct borrows).
    unsafe { product([m, n, k], a, b, c.as_mut_ptr(), accumulate) }
}

/// A new row-major matrix of `rows` rows of `n` values, built by appending
/// products block of rows by block ([`Fresh::push_product`]) without
/// zero-filling it first: the products write every value (a layer's
/// output, computed a chunk of images at a time).
#[derive(Debug)]
pub struct Fresh {
    values: Vec<f32>,
    n: usize,
    /// `rows * n`.
    total: usize,
}

impl Fresh {
    pub fn new(rows: usize, n: usize) -> Self {
        Self {
            values: Vec::with_capacity(rows * n),
            n,
            total: rows * n,
        }
    }

    /// Appends the `m` rows `a * b` (`a` `[m, k]`, `b` `[k, n]`); returns
    /// them, for a pass over the block while it is in cache (a bias, say).
    pub fn push_product(&mut self, m: usize, k: usize, a: Op<'_>, b: Op<'_>) -> &mut [f32] {
        let (len, add) = (self.values.len(), m * self.n);
        assert!(
            self.total - len >= add,
            "Fresh: {m} more rows exceed the matrix"
        );
        // SAFETY: the capacity (at least `total`) holds `m * n` values
        // past `len` (the assert); the product writes every one of them
        // without reading (`accumulate` false: zeros where `k` is 0), so
        // all `len + add` are initialised before `set_len`. `values` is
        // owned, so it does not alias `a` or `b`.
        unsafe {
            let dst = self.values.as_mut_ptr().add(len);
            product([m, self.n, k], a, b, dst, false);
            self.values.set_len(len + add);
        }
        &mut self.values[len..]
    }

    /// The matrix; every row must have been appended.
    pub fn finish(self) -> Vec<f32> {
        assert_eq!(self.values.len(), self.total, "Fresh: rows missing");
        self.values
    }
}

/// `c (+)= a * b` into `m * n` values at `c`.
///
/// # Safety
/// `c` must be valid for writes of `m * n` values, and for reads of them
/// when `accumulate`; it must not overlap `a` or `b`. Without
/// `accumulate`, `c` is only written (`gemm` with `read_dst` false sets
/// its `alpha` to zero and never loads the destination), so it may be
/// uninitialised.
unsafe fn product([m, n, k]: [usize; 3], a: Op<'_>, b: Op<'_>, c: *mut f32, accumulate: bool) {
    let ((a, a_t), (b, b_t)) = (a.parts(), b.parts());
    assert!(a.len() >= m * k && b.len() >= k * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            // SAFETY: the caller's contract: `m * n` values writable at `c`.
            unsafe { std::ptr::write_bytes(c, 0, m * n) };
        }
        return;
    }
    // (column stride, row stride) of each operand as seen by op().
    let (a_cs, a_rs) = if a_t {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (b_cs, b_rs) = if b_t {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let par = if m * n * k >= 1 << 18 && threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the assert above bounds every index the strides reach in `a`
    // and `b`; the caller's contract covers `c`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_matrices_are_the_products_of_their_blocks() {
        // Rows of [[1, 2], [3, 4], [5, 6]] times [[1, 0, 2], [0, 1, 1]],
        // appended as blocks of 2 and 1 rows; then k = 0 blocks are zeros.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 2.0, 0.0, 1.0, 1.0];
        let mut m = Fresh::new(3, 3);
        assert_eq!(
            m.push_product(2, 2, Op::N(&a[..4]), Op::N(&b)),
            [1.0, 2.0, 4.0, 3.0, 4.0, 10.0]
        );
        m.push_product(1, 2, Op::N(&a[4..]), Op::N(&b));
        assert_eq!(m.finish(), [1.0, 2.0, 4.0, 3.0, 4.0, 10.0, 5.0, 6.0, 16.0]);
        let mut z = Fresh::new(2, 3);
        z.push_product(2, 0, Op::N(&[]), Op::N(&[]));
        assert_eq!(z.finish(), [0.0; 6]);
    }

    #[test]
    #[should_panic(expected = "rows missing")]
    fn a_fresh_matrix_with_rows_missing_is_refused() {
        let mut m = Fresh::new(2, 1);
        m.push_product(1, 1, Op::N(&[2.0]), Op::N(&[3.0]));
        let _ = m.finish();
    }

    #[test]
    #[should_panic(expected = "exceed the matrix")]
    fn a_fresh_matrix_takes_no_more_rows_than_it_has() {
        let mut m = Fresh::new(1, 1);
        m.push_product(2, 1, Op::N(&[2.0, 1.0]), Op::N(&[3.0]));
    }

    #[test]
    fn all_transpose_combinations_match_the_definition() {
        // a = [[1, 2, 3], [4, 5, 6]] (2x3), b = [[1, 0], [2, 1], [0, 3]] (3x2)
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let at = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let b = [1.0, 0.0, 2.0, 1.0, 0.0, 3.0];
        let bt = [1.0, 2.0, 0.0, 0.0, 1.0, 3.0];
        let want = [5.0, 11.0, 14.0, 23.0];
        for (aa, a_t) in [(&a, false), (&at, true)] {
            for (bb, b_t) in [(&b, false), (&bt, true)] {
                let mut c = [1.0f32; 4];
                matmul([2, 2, 3], Op::new(aa, a_t), Op::new(bb, b_t), &mut c, false);
                assert_eq!(c, want, "a_t {a_t} b_t {b_t}");
                matmul([2, 2, 3], Op::new(aa, a_t), Op::new(bb, b_t), &mut c, true);
                assert_eq!(c, want.map(|v| 2.0 * v));
            }
        }
    }
}
