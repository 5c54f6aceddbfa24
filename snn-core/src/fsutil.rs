//! Atomic file writes: a killed process leaves either the old file or the new
//! one, never a torn one.

use crate::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Name prefix of a file [`atomic_write`] has not finished: a process
/// killed mid-write leaves one behind (never under the target's name).
pub const PARTIAL_PREFIX: &str = ".partial-";

/// Writes `bytes` to `path` through a temporary file in the same folder,
/// flushed to disk and renamed over the target.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    // tempfile creates 0600; results are ordinary files, readable as usual.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o644);
        tmp.as_file()
            .set_permissions(perms)
            .map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Removes the unfinished writes ([`PARTIAL_PREFIX`]) a killed process left
/// in `dir`; returns how many. Only for a folder this process holds alone
/// (a live writer's file would be removed under it).
pub fn remove_partial_writes(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(PARTIAL_PREFIX)
        {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        atomic_write(&path, b"old").unwrap();
        atomic_write(&path, b"new contents").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new contents");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.bin")]);
    }

    #[test]
    fn only_partial_writes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // What a write killed before its rename leaves, beside real files.
        std::fs::write(dir.path().join(format!("{PARTIAL_PREFIX}x1y2")), b"torn").unwrap();
        std::fs::write(dir.path().join("state.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("partial-notes.txt"), b"keep").unwrap();
        assert_eq!(remove_partial_writes(dir.path()).unwrap(), 1);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["partial-notes.txt", "state.json"]);
        assert_eq!(remove_partial_writes(dir.path()).unwrap(), 0);
    }
}
