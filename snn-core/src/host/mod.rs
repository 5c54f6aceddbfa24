//! Host-memory access for the project's CPU kernels (custom tape ops).
//!
//! Tensors handed to these functions must be contiguous: call
//! `reshape_like` with their own shape first, which copies only when needed.

pub mod adam;

use crate::Dev;
use dfdx::prelude::*;

/// The values of a contiguous tensor, copied with one `memcpy` (dfdx's
/// `as_vec` walks an element iterator, several times slower).
pub fn read<S: Shape, T>(t: &Tensor<S, f32, Dev, T>) -> Vec<f32> {
    let mut v = vec![0.0f32; t.shape().num_elements()];
    t.copy_into(&mut v);
    v
}

/// Moves a gradient out of its accumulator slot without copying it.
///
/// Only for an op's *own output*: when its backward runs, every consumer of
/// the output has already added its share, and nothing reads that gradient
/// afterwards (the accumulator keeps an empty buffer in its place).
///
/// Backward ops fetch slots by a *ghost* of the tensor (`t.ghost()`:
/// dfdx's handle with the tensor's id and length, not its data), e.g.
/// `take_grad(grads.get_or_alloc_mut(&out_ghost)?)`. Holding the tensor
/// itself would keep its values alive until backward: an op's output and
/// input would then stay in memory beside whatever host copy (or spike
/// bits) the op keeps for its gradient, twice or three times the
/// activations a training step needs.
pub fn take_grad(slot: &mut Vec<f32>) -> Vec<f32> {
    std::mem::take(slot)
}

/// Adds `src` into a gradient slot (see [`take_grad`] for how to get one).
pub fn add_grad(slot: &mut [f32], src: &[f32]) {
    for (a, b) in slot.iter_mut().zip(src) {
        *a += b;
    }
}

/// Adds an owned gradient `src` into a slot: the buffer itself becomes the
/// slot when nothing was added there yet (a tensor read by one op), so a
/// full-size gradient is not held twice while the sum is made.
///
/// A slot that is still all zeros is replaced, not added to: the same
/// values, except that a `-0.0` of `src` stays `-0.0`.
pub fn add_grad_owned(slot: &mut Vec<f32>, src: Vec<f32>) {
    if slot.len() == src.len() && all_zero(slot) {
        *slot = src;
    } else {
        add_grad(slot, &src);
    }
}

/// Whether every value is `0.0` or `-0.0`: the bits of 64 values at a
/// time, sign dropped, OR-ed together (a loop that vectorises, where a
/// comparison per value with an early exit did not; a slot being scanned
/// is usually all zeros, so the early exit rarely helps within a block).
/// Slices of 64 Ki values are scanned in parallel: a gradient slot can be
/// hundreds of megabytes, and the op that scans it has nothing else to do.
fn all_zero(v: &[f32]) -> bool {
    use rayon::prelude::*;
    v.par_chunks(64 * 1024).all(|part| {
        part.chunks(64)
            .all(|block| block.iter().fold(0u32, |acc, x| acc | (x.to_bits() << 1)) == 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_in_any_parallel_part_of_a_large_slot_is_seen() {
        // 200,000 values: three parts of 64 Ki and a partial fourth.
        let mut slot = vec![0.0f32; 200_000];
        assert!(all_zero(&slot));
        for at in [0, 65_535, 65_536, 131_072, 199_999] {
            slot[at] = -1e-30;
            assert!(!all_zero(&slot), "value at {at}");
            slot[at] = -0.0;
            assert!(all_zero(&slot), "-0.0 at {at}");
        }
    }

    #[test]
    fn a_zero_slot_becomes_the_gradient_and_any_other_is_added_to() {
        // 130 values: two full blocks of 64 and a partial one.
        let mut slot = vec![0.0f32; 130];
        slot[7] = -0.0;
        let src: Vec<f32> = (0..130).map(|i| i as f32).collect();
        let ptr = src.as_ptr();
        add_grad_owned(&mut slot, src);
        assert_eq!(slot.as_ptr(), ptr, "moved, not copied");
        assert_eq!(slot[129], 129.0);
        // A value anywhere, however small (or NaN), means the slot holds a
        // gradient already: add.
        for (at, v) in [
            (129, f32::from_bits(1)),
            (64, 1.0),
            (0, f32::NAN),
            (5, -2.0),
        ] {
            let mut slot = vec![0.0f32; 130];
            slot[at] = v;
            add_grad_owned(&mut slot, vec![1.0; 130]);
            assert_eq!(slot[at].to_bits(), (v + 1.0).to_bits(), "at {at}");
            assert_eq!(slot[(at + 1) % 130], 1.0);
        }
    }
}
