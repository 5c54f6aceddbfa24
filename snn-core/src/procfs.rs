//! Readings from Linux's `/proc` (none elsewhere): memory figures that
//! benchmarks report and limits are set from.

/// The value of `key:` in a `/proc` file of `key: value kB` lines (e.g.
/// `MemTotal` of `/proc/meminfo`, `VmHWM` of `/proc/self/status`), in KiB.
pub fn kib(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find(|l| l.split(':').next() == Some(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
