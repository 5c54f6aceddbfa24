#![no_main]
//! Any text as a run config: an error or a config, never a panic (see
//! snn_tests::fuzz_inputs).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        snn_tests::fuzz_inputs::config(text);
    }
});
