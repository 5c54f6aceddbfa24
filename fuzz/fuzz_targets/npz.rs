#![no_main]
//! Any bytes: an error or a value, never a panic (see snn_tests::fuzz_inputs).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    snn_tests::fuzz_inputs::npz(data);
});
