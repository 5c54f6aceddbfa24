//! `cargo fuzz run safetensors`: see fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    snn_tests::hostile::safetensors(data);
});
