//! The global allocator: mimalloc, behind a guard that turns a request for
//! more memory than the machine has into one clear error instead of
//! Rust's abort with a backtrace (`memory allocation of 12544000000000
//! bytes failed`). Such requests come from configs whose sizes multiply
//! past the machine (`time_steps = 100000000`, a layer `FC2000000000`,
//! `--batch 100000000`); every big tensor is one allocation, so the
//! first oversized one names the problem.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// mimalloc with a size limit (0 = none, until [`set_limit_from_meminfo`]).
pub struct Guarded;

static LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Sets the limit to the machine's physical memory (`MemTotal` of
/// `/proc/meminfo`); where that cannot be read there is no limit.
pub fn set_limit_from_meminfo() {
    let total = snn_core::procfs::kib("/proc/meminfo", "MemTotal")
        .map_or(0, |kb| (kb as usize).saturating_mul(1024));
    LIMIT.store(total, Ordering::Relaxed);
}

/// Writes the message without allocating (we are inside the allocator)
/// and exits.
#[cold]
fn refuse(size: usize, limit: usize) -> ! {
    use std::io::Write;
    struct Buf {
        bytes: [u8; 400],
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
        bytes: [0; 400],
        len: 0,
    };
    let gib = |n: usize| n as f64 / (1u64 << 30) as f64;
    let _ = std::fmt::write(
        &mut b,
        format_args!(
            "error: one tensor would need {:.1} GiB, more than this machine's {:.1} GiB of memory; \
             lower the config's batch size, time steps or layer sizes\n",
            gib(size),
            gib(limit)
        ),
    );
    let _ = std::io::stderr().write_all(&b.bytes[..b.len]);
    std::process::exit(1)
}

unsafe impl GlobalAlloc for Guarded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let limit = LIMIT.load(Ordering::Relaxed);
        if limit > 0 && layout.size() > limit {
            refuse(layout.size(), limit);
        }
        // SAFETY: forwarded unchanged.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let limit = LIMIT.load(Ordering::Relaxed);
        if limit > 0 && layout.size() > limit {
            refuse(layout.size(), limit);
        }
        // SAFETY: forwarded unchanged.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let limit = LIMIT.load(Ordering::Relaxed);
        if limit > 0 && new_size > limit {
            refuse(new_size, limit);
        }
        // SAFETY: forwarded unchanged.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}
