//! Any bytes as a user payload: decode never panics, errors stay inside the input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ue_metrics_decode::fuzzing::payload(data);
});
