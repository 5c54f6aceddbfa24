//! Row-major f32 matrix products over slices, through the `gemm` crate (the
//! same kernel dfdx's CPU matmul uses), for the project's own CPU kernels.

use gemm::Parallelism;

/// `c (+)= op(a) * op(b)` with `op(a)` of shape `[m, k]` and `op(b)` of
/// shape `[k, n]`, all row-major; `a_t` / `b_t` mean the slice holds the
/// transpose (`a` is stored `[k, m]`, `b` is stored `[n, k]`).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
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
    // SAFETY: the asserts above bound every index the strides reach, and
    // `c` does not alias `a` or `b` (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
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
                matmul(2, 2, 3, aa, a_t, bb, b_t, &mut c, false);
                assert_eq!(c, want, "a_t {a_t} b_t {b_t}");
                matmul(2, 2, 3, aa, a_t, bb, b_t, &mut c, true);
                assert_eq!(c, want.map(|v| 2.0 * v));
            }
        }
    }
}
