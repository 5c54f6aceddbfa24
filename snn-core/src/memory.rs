//! Memory accounting: a global-allocator wrapper that counts the bytes in
//! use (and their peak), and refuses, with one clear message instead of
//! Rust's abort and backtrace, any request that would take the process past
//! the machine's memory. The `snn` binary installs it
//! (`#[global_allocator] static A: Guard<MiMalloc> = Guard(MiMalloc)`);
//! the peak-memory estimate of `snn check` / `snn train` measures small
//! training steps with its counters.
//!
//! Counting costs two relaxed atomic additions per allocation (a training
//! step makes a few thousand), not measurable beside the step's work.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Bytes the process may hold at once (0 = no limit, until [`set_limit`]).
static LIMIT: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most `LIVE` has been since the last [`reset_peak`].
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Set while the estimate measures its probe steps: a refusal then says
/// that the config was being measured, not run.
static PROBING: AtomicBool = AtomicBool::new(false);

/// The wrapped allocator. Every request is forwarded unchanged; only its
/// size is counted and checked.
pub struct Guard<A>(pub A);

/// Memory this process may use: the machine's physical memory
/// (`MemTotal`), or the cgroup's limit where that is lower (a container,
/// a systemd slice). `None` where neither can be read (not Linux).
pub fn machine_bytes() -> Option<u64> {
    let total = crate::procfs::kib("/proc/meminfo", "MemTotal").map(|kb| kb * 1024);
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// Memory the kernel says it could give now (`MemAvailable`), bytes.
pub fn available_bytes() -> Option<u64> {
    crate::procfs::kib("/proc/meminfo", "MemAvailable").map(|kb| kb * 1024)
}

/// Refuse requests past `bytes` in use (0 = no limit).
pub fn set_limit(bytes: u64) {
    LIMIT.store(
        usize::try_from(bytes).unwrap_or(usize::MAX),
        Ordering::Relaxed,
    );
}

/// Bytes in use now, or `None` when the counting allocator is not installed
/// (library tests, other binaries): nothing is counted then.
pub fn live() -> Option<u64> {
    let n = LIVE.load(Ordering::Relaxed);
    (n > 0).then_some(n as u64)
}

/// The peak since the last [`reset_peak`], bytes.
pub fn peak() -> u64 {
    PEAK.load(Ordering::Relaxed) as u64
}

/// Starts a new peak from what is in use now.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Marks the probe steps of the estimate (see [`PROBING`]).
pub fn set_probing(on: bool) {
    PROBING.store(on, Ordering::Relaxed);
}

const GIB: f64 = (1u64 << 30) as f64;

/// Writes the message without allocating (we are inside the allocator) and
/// exits with status 1.
#[cold]
fn refuse(size: usize, live: usize, limit: usize) -> ! {
    use std::io::Write;
    struct Buf {
        bytes: [u8; 480],
        len: usize,
    }
    impl std::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let n = s.len().min(self.bytes.len() - self.len);
            self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
    let mut b = Buf {
        bytes: [0; 480],
        len: 0,
    };
    let gib = |n: usize| n as f64 / GIB;
    let when = if PROBING.load(Ordering::Relaxed) {
        "estimating the config's peak memory (a training step at a small batch): "
    } else {
        ""
    };
    let what = if size > limit {
        format_args!("one tensor would need {:.1} GiB", gib(size))
    } else {
        format_args!(
            "{:.1} GiB would be in use at once ({:.1} GiB held, {:.1} GiB more asked)",
            gib(live.saturating_add(size)),
            gib(live),
            gib(size)
        )
    };
    let _ = std::fmt::write(
        &mut b,
        format_args!(
            "error: {when}{what}, more than this machine's {:.1} GiB of memory; \
             lower the config's batch size, time steps or layer sizes\n",
            gib(limit)
        ),
    );
    let _ = std::io::stderr().write_all(&b.bytes[..b.len]);
    std::process::exit(1)
}

/// Counts `size` more bytes in use, refusing past the limit.
#[inline]
fn take(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed);
    let limit = LIMIT.load(Ordering::Relaxed);
    let now = live.saturating_add(size);
    if limit > 0 && now > limit {
        LIVE.fetch_sub(size, Ordering::Relaxed);
        refuse(size, live, limit);
    }
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[inline]
fn give(size: usize) {
    LIVE.fetch_sub(size, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the wrapped allocator; the
// counters only observe sizes.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Guard<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        take(layout.size());
        // SAFETY: forwarded unchanged.
        let p = unsafe { self.0.alloc(layout) };
        if p.is_null() {
            give(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        take(layout.size());
        // SAFETY: forwarded unchanged.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if p.is_null() {
            give(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        give(layout.size());
        // SAFETY: forwarded unchanged.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old {
            take(new_size - old);
        }
        // SAFETY: forwarded unchanged.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                give(new_size - old);
            }
        } else if new_size < old {
            give(old - new_size);
        }
        p
    }
}

/// Bytes as GiB for messages.
pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB
}
