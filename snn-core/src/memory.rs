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
use std::path::{Path, PathBuf};
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
/// (`MemTotal`), or its cgroup's limit where that is lower (a container,
/// a systemd slice, a batch job). `None` where neither can be read (not
/// Linux).
pub fn machine_bytes() -> Option<u64> {
    let total = crate::procfs::kib("/proc/meminfo", "MemTotal").map(|kb| kb * 1024);
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let cgroup = cgroup_limit(&own, Path::new("/sys/fs/cgroup"));
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// The lowest memory limit on the way from this process's own cgroup
/// (`cgroup`: the text of `/proc/self/cgroup`) up to the hierarchy's root
/// under `mount`: cgroup v2's `memory.max` (in `mount`, or `mount/unified`
/// on a hybrid system) and v1's `memory.limit_in_bytes` (in
/// `mount/memory`). A cgroup path the mount does not show (a container
/// sees its own cgroup as the root) is read from the root.
pub fn cgroup_limit(cgroup: &str, mount: &Path) -> Option<u64> {
    let mut dirs = Vec::new();
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            for root in [mount.to_path_buf(), mount.join("unified")] {
                dirs.push((root, rel.to_string(), "memory.max"));
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            dirs.push((
                mount.join("memory"),
                rel.to_string(),
                "memory.limit_in_bytes",
            ));
        }
    }
    let read = |file: PathBuf| -> Option<u64> {
        std::fs::read_to_string(file)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    let mut lowest: Option<u64> = None;
    for (root, rel, file) in dirs {
        let own = root.join(&rel);
        let mut at = if own.is_dir() { own } else { root.clone() };
        loop {
            if let Some(v) = read(at.join(file)) {
                lowest = Some(lowest.map_or(v, |l| l.min(v)));
            }
            if at == root || !at.pop() || !at.starts_with(&root) {
                break;
            }
        }
    }
    lowest
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

#[cfg(test)]
mod tests {
    use super::cgroup_limit;
    use std::path::Path;

    fn write(dir: &Path, file: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn a_cgroup_limit_is_read_from_the_process_own_cgroup_and_its_ancestors() {
        let mount = std::env::temp_dir().join(format!("snn-cgroup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&mount);
        // v1, as on this project's machines: the memory controller's own
        // cgroup is unlimited, its parent holds 8 GiB.
        let v1 = mount.join("memory");
        write(&v1, "memory.limit_in_bytes", "9223372036854771712\n");
        write(&v1.join("jobs"), "memory.limit_in_bytes", "8589934592\n");
        write(
            &v1.join("jobs/b2f"),
            "memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        let own = "4:memory:/jobs/b2f\n3:cpuset:/\n0::/\n";
        assert_eq!(cgroup_limit(own, &mount), Some(8 << 30));
        // v2: the process's slice says 2 GiB, the root "max".
        write(&mount, "memory.max", "max\n");
        write(&mount.join("user.slice/run"), "memory.max", "2147483648\n");
        assert_eq!(cgroup_limit("0::/user.slice/run\n", &mount), Some(2 << 30));
        // A container sees its cgroup as the root: the named path is absent.
        assert_eq!(cgroup_limit("0::/elsewhere\n", &mount), None);
        assert_eq!(cgroup_limit("", &mount), None);
        std::fs::remove_dir_all(&mount).unwrap();
    }
}
