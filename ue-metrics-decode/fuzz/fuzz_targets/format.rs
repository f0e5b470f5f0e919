//! Any text as a tracefs `format` file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ue_metrics_decode::fuzzing::format(data);
});
