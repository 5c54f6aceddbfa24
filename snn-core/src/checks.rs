//! Tests whose check needs a file that is fetched, not committed (the FID
//! network's weights, the full test sets): one rule for all of them, so
//! that a check never passes silently without running.
//!
//! - The file is there: the check runs.
//! - It is not, and the variable that requires it is set (`.ci/run` sets
//!   `SNN_REQUIRE_INCEPTION` and `SNN_REQUIRE_DATA` after fetching): the
//!   test fails, naming the check, the file and how to fetch it.
//! - It is not, and nothing requires it (a developer's `cargo test`): the
//!   test returns early, says so on stderr, and appends the check's name
//!   to the file `SNN_SKIPPED_FILE` names, from which `scripts/test.sh`
//!   prints the list of skipped checks as its last line.

use std::io::Write as _;
use std::path::Path;

/// Whether `check` can run: `path` exists. Panics instead of skipping
/// when the variable `require` is set (see the module docs).
pub fn needs_file(check: &str, path: &Path, require: &str, fetch: &str) -> bool {
    if path.exists() {
        return true;
    }
    if std::env::var_os(require).is_some_and(|v| !v.is_empty()) {
        panic!(
            "check `{check}` cannot run: {} is missing ({fetch}), and {require} is set",
            path.display()
        );
    }
    eprintln!(
        "skipped check `{check}`: {} not fetched ({fetch})",
        path.display()
    );
    if let Some(list) = std::env::var_os("SNN_SKIPPED_FILE") {
        let line = format!("{check}\n");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&list);
        // A failed note must not fail the test: the skip is on stderr too.
        let _ = file.and_then(|mut f| f.write_all(line.as_bytes()));
    }
    false
}
