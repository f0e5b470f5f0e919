//! Any text as a line of ftrace output.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ue_metrics_decode::fuzzing::trace_line(data);
});
