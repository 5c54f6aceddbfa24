//! `cargo fuzz run config`: see fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    snn_tests::hostile::config(data);
});
