//! One run per output folder: `snn train` holds an exclusive advisory lock
//! (`flock`) on `LOCK_FILE` in its run folder while it runs, and writes its
//! process into the file for messages. The kernel decides who holds the
//! lock, atomically, and releases it when the holder's process ends however
//! it ends, so there is no stale lock to judge and no window between
//! creating the file and claiming it. A second run into the folder is
//! refused while the holder lives; a lock file still naming a process
//! (left by a killed run) is taken over with a warning.
//!
//! The file is never removed: a process that opened it just before a
//! removal would lock the removed file while a third locked a new one.
//! Released, it is emptied instead (an empty file: nobody was killed).

use snn_core::{Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

pub const LOCK_FILE: &str = "run.lock";

/// The held lock; dropping it empties the file and releases the folder.
#[derive(Debug)]
pub struct RunLock {
    file: File,
}

/// `pid start-time` of this process (the start time tells the holder from
/// a new process that reused its pid, in messages).
fn identity(pid: u32) -> String {
    let start = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Field 22 (start time), counted after the parenthesised command name.
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().nth(19).map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{pid} {start}")
}

/// The pid a lock file names, for messages ("?" when it names none).
fn named_pid(text: &str) -> String {
    let pid = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u32>().ok());
    pid.map_or_else(|| "?".into(), |p| p.to_string())
}

impl RunLock {
    /// Takes `dir`'s lock (creating `dir`). Returns the lock and, where a
    /// killed process's lock file was taken over, a warning to show.
    pub fn acquire(dir: &Path) -> Result<(Self, Option<String>)> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let io = |e| Error::io(&path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let held = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(Error::data(
                    &path,
                    format!(
                        "{} is in use by a running snn (pid {}); wait for it, stop it, \
                         or train into another --out",
                        dir.display(),
                        named_pid(&held)
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Held: what the file says is a previous holder's, which ended
        // without releasing (killed), or nothing.
        let mut before = String::new();
        let _ = file.read_to_string(&mut before);
        let mut warning = (!before.trim().is_empty()).then(|| {
            format!(
                "warning: {} was locked by process {} which is no longer running; taking it over",
                dir.display(),
                named_pid(&before)
            )
        });
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        let me = identity(std::process::id());
        file.write_all(format!("{me}\n").as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(io)?;
        // Held alone now: a file a killed run was writing is an orphan (the
        // target it was meant for is still whole).
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
        Ok((Self { file }, warning))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Emptied while still held, then released by closing the file.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
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
        let held = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(
            held.starts_with(&format!("{} ", std::process::id())),
            "{held}"
        );
        let e = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(e.contains("in use by a running snn"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(lock);
        // Released: the file stays, empty, and a new run takes it silently.
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
            ""
        );
        let (lock, warning) = RunLock::acquire(dir.path()).unwrap();
        assert!(warning.is_none(), "{warning:?}");
        drop(lock);
        // A lock file naming a process that ended without releasing (a
        // kill -9 leaves its text; the kernel dropped its lock) ...
        std::fs::write(dir.path().join(LOCK_FILE), "4242 12345\n").unwrap();
        // ... and the checkpoint file it was writing when it died.
        let partial = format!("{}abc123", snn_core::fsutil::PARTIAL_PREFIX);
        std::fs::write(dir.path().join(&partial), b"torn").unwrap();
        let (_lock, warning) = RunLock::acquire(dir.path()).unwrap();
        let warning = warning.unwrap();
        assert!(
            warning.contains("process 4242 which is no longer running"),
            "{warning}"
        );
        assert!(warning.contains("removed 1 unfinished file"), "{warning}");
        assert!(!dir.path().join(&partial).exists());
    }

    /// Many takers released at the same instant, again and again: exactly
    /// one holds the lock each round. (Each `acquire` opens the file anew,
    /// and `flock` locks belong to an open file, so threads of one process
    /// contend as processes do.)
    #[test]
    fn simultaneous_takers_get_one_lock() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..50 {
            let takers = 8;
            let start = std::sync::Barrier::new(takers);
            let held: Vec<Option<RunLock>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..takers)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            RunLock::acquire(dir.path()).ok().map(|(l, _)| l)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let holders = held.iter().filter(|l| l.is_some()).count();
            assert_eq!(holders, 1, "round {round}: {holders} holders");
        }
    }
}
