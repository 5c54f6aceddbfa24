//! One run per output folder: `snn train` holds `LOCK_FILE` in its run
//! folder while it runs, naming its process. A second run into the same
//! folder is refused while the holder lives; a lock left by a process that
//! died (killed, power loss) is detected and taken over with a warning.

use snn_core::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "run.lock";

/// The held lock; dropping it releases the folder.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

/// `pid start-time` of this process (the start time tells a live holder
/// from a new process that reused its pid).
fn identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (start time), counted after the parenthesised command name.
    let rest = &stat[stat.rfind(')')? + 1..];
    let start = rest.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

impl RunLock {
    /// Takes `dir`'s lock (creating `dir`). Returns the lock and, where a
    /// dead process's lock was taken over, a warning to show.
    pub fn acquire(dir: &Path) -> Result<(Self, Option<String>)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let me = identity(std::process::id())
            .unwrap_or_else(|| format!("{} unknown", std::process::id()));
        let mut warning = None;
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(format!("{me}\n").as_bytes())
                        .and_then(|_| f.sync_all())
                        .map_err(|e| Error::io(&path, e))?;
                    let lock = Self { path };
                    // Held alone now: a file a killed run was writing is an
                    // orphan (the target it was meant for is still whole).
                    let removed = snn_core::fsutil::remove_partial_writes(dir)?;
                    if removed > 0 {
                        let note = format!(
                            "removed {removed} unfinished file(s) a killed run was writing in {}",
                            dir.display()
                        );
                        warning = Some(match warning {
                            Some(w) => format!("{w}; {note}"),
                            None => format!("warning: {note}"),
                        });
                    }
                    return Ok((lock, warning));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let held = std::fs::read_to_string(&path).unwrap_or_default();
                    let held = held.trim();
                    let pid: Option<u32> = held.split(' ').next().and_then(|p| p.parse().ok());
                    let alive = match pid {
                        // Without /proc nothing can be checked: assume alive.
                        Some(pid) if Path::new("/proc/self").exists() => {
                            identity(pid).is_some_and(|id| held.ends_with("unknown") || id == held)
                        }
                        Some(_) => true,
                        None => false,
                    };
                    if alive {
                        return Err(Error::data(
                            &path,
                            format!(
                                "{} is in use by a running snn (pid {}); wait for it, stop it, \
                                 or train into another --out",
                                dir.display(),
                                pid.unwrap_or(0)
                            ),
                        ));
                    }
                    warning = Some(format!(
                        "warning: {} was locked by process {} which is no longer running; taking it over",
                        dir.display(),
                        pid.map_or_else(|| "?".to_string(), |p| p.to_string())
                    ));
                    std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::data(
            &path,
            "another process took the lock while a stale one was removed; try again",
        ))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_refused_released_and_stale_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, warning) = RunLock::acquire(dir.path()).unwrap();
        assert!(warning.is_none());
        let e = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(e.contains("in use by a running snn"), "{e}");
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        // A lock naming a process that is not running (pid 0 is never a
        // user process).
        std::fs::write(dir.path().join(LOCK_FILE), "0 12345\n").unwrap();
        // ... and the checkpoint file it was writing when it died.
        let partial = format!("{}abc123", snn_core::fsutil::PARTIAL_PREFIX);
        std::fs::write(dir.path().join(&partial), b"torn").unwrap();
        let (_lock, warning) = RunLock::acquire(dir.path()).unwrap();
        let warning = warning.unwrap();
        assert!(warning.contains("no longer running"), "{warning}");
        assert!(warning.contains("removed 1 unfinished file"), "{warning}");
        assert!(!dir.path().join(&partial).exists());
    }
}
