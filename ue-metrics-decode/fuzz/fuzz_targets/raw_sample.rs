//! Any bytes as a raw tracepoint record (plain `__rel_loc`/`__data_loc` layouts and EventHeader).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ue_metrics_decode::fuzzing::raw_sample(data);
});
