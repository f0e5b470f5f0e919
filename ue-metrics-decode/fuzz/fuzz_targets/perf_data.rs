//! Any bytes as a whole perf.data file, normal or pipe mode (seeds of both in
//! `tests/fuzz_regressions/perf_data`): no panic, every record delivered is counted.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ue_metrics_decode::fuzzing::perf_data(data);
});
