//! The process group a run trains in: which rank this process is, how many
//! there are, and the few reductions data-parallel training needs.
//!
//! Training code calls [`group()`] and never names MPI: one process is a
//! group of one whose reductions are no-ops, and a binary built with MPI
//! installs its communicator once at start ([`install`]). Batch norm sums
//! its statistics here (synchronised batch norm), the training step sums
//! its gradients here. Every rank must make the same calls in the same
//! order with the same lengths: the model's code path is the same on every
//! rank, so it does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// A group of processes that each hold the whole model and a slice of
/// every batch. Reductions are collective: all ranks call them, and each
/// gets the same result.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Element-wise sum over ranks, in place.
    fn sum_f64(&self, values: &mut [f64]);
    /// Element-wise sum over ranks, in place.
    fn sum_f32(&self, values: &mut [f32]);
    /// Rank 0's bytes, on every rank (`bytes` is replaced).
    fn broadcast(&self, bytes: &mut Vec<u8>);
    /// What this group is, for logs (`"MPI (Open MPI v4.1.4), 2 ranks"`).
    fn describe(&self) -> String;
}

/// The group of one process.
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f64(&self, _: &mut [f64]) {}
    fn sum_f32(&self, _: &mut [f32]) {}
    fn broadcast(&self, _: &mut Vec<u8>) {}
    fn describe(&self) -> String {
        "one process".into()
    }
}

static GROUP: OnceLock<Box<dyn Collective>> = OnceLock::new();
/// Nanoseconds spent inside reductions since the last [`take_seconds`].
static WAITED_NS: AtomicU64 = AtomicU64::new(0);
/// Reductions made since the last [`take_seconds`].
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Makes `group` the process's group. Only the first call counts (returns
/// false after); call it before anything trains.
pub fn install(group: Box<dyn Collective>) -> bool {
    GROUP.set(group).is_ok()
}

thread_local! {
    /// Set inside [`alone`]: this thread's calls see a group of one.
    static ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The process's group: the installed one, else a group of one (also
/// inside [`alone`]).
pub fn group() -> &'static dyn Collective {
    if ALONE.with(|a| a.get()) {
        return &Single;
    }
    GROUP.get().map_or(&Single, |g| g.as_ref())
}

/// Runs `f` as if this process were alone: for work one rank does for
/// itself (the memory estimate's probe steps, a rank's own evaluation of
/// one image), whose batch norms must not wait for the other ranks.
pub fn alone<R>(f: impl FnOnce() -> R) -> R {
    let before = ALONE.with(|a| a.replace(true));
    let out = f();
    ALONE.with(|a| a.set(before));
    out
}

/// True when more than one rank trains.
pub fn is_distributed() -> bool {
    group().size() > 1
}

/// Sums over ranks (a no-op for one), timing the wait.
pub fn sum_f64(values: &mut [f64]) {
    timed(|g| g.sum_f64(values));
}

/// Sums over ranks (a no-op for one), timing the wait.
pub fn sum_f32(values: &mut [f32]) {
    timed(|g| g.sum_f32(values));
}

/// Rank 0's bytes on every rank (a no-op for one).
pub fn broadcast(bytes: &mut Vec<u8>) {
    timed(|g| g.broadcast(bytes));
}

fn timed(f: impl FnOnce(&dyn Collective)) {
    let g = group();
    if g.size() == 1 {
        return;
    }
    let t0 = Instant::now();
    f(g);
    WAITED_NS.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    CALLS.fetch_add(1, Ordering::Relaxed);
}

/// Seconds spent in reductions since the last call (communication plus
/// waiting for slower ranks) and how many there were; resets both.
pub fn take_seconds() -> (f64, u64) {
    let ns = WAITED_NS.swap(0, Ordering::Relaxed);
    (ns as f64 * 1e-9, CALLS.swap(0, Ordering::Relaxed))
}

/// The contiguous slice of `len` items that rank `rank` of `size` takes:
/// the first `len % size` ranks take one more, in rank order, so the
/// slices laid end to end are the items in their order.
pub fn shard(len: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let size = size.max(1);
    let (base, extra) = (len / size, len % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// A 64-bit FNV-1a hash: what ranks compare to find out that they were
/// started with different configs or binaries (no cryptographic need).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Checks that every rank holds the same `bytes` (a config, a binary, the
/// parameters): rank 0's fingerprint is broadcast, each rank compares its
/// own, and the ranks that differ are summed so that all ranks return the
/// same answer. `Err` names them and `what`.
pub fn agree(what: &str, bytes: &[u8]) -> Result<(), String> {
    let g = group();
    if g.size() == 1 {
        return Ok(());
    }
    let mine = fingerprint(bytes).to_le_bytes().to_vec();
    let mut first = mine.clone();
    broadcast(&mut first);
    let mut differs = vec![0.0f64; g.size()];
    differs[g.rank()] = (first != mine) as u8 as f64;
    sum_f64(&mut differs);
    let odd: Vec<String> = (0..g.size())
        .filter(|r| differs[*r] > 0.0)
        .map(|r| r.to_string())
        .collect();
    if odd.is_empty() {
        return Ok(());
    }
    Err(format!(
        "rank{} {} of {} hold{} different {what} from rank 0",
        if odd.len() > 1 { "s" } else { "" },
        odd.join(", "),
        g.size(),
        if odd.len() > 1 { "" } else { "s" },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_tile_the_batch_in_order() {
        for len in [0, 1, 5, 16, 250] {
            for size in 1..=5 {
                let mut next = 0;
                for rank in 0..size {
                    let r = shard(len, rank, size);
                    assert_eq!(r.start, next, "len {len} size {size} rank {rank}");
                    assert!(r.len() == len / size || r.len() == len / size + 1);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
        assert_eq!(shard(250, 0, 3), 0..84);
        assert_eq!(shard(250, 1, 3), 84..167);
        assert_eq!(shard(250, 2, 3), 167..250);
    }

    #[test]
    fn one_process_reduces_nothing() {
        let mut v = [1.5f32, -2.0];
        sum_f32(&mut v);
        assert_eq!(v, [1.5, -2.0]);
        assert_eq!(group().size(), 1);
        assert_eq!(fingerprint(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }
}
