//! Inputs kept from fuzzing (`tests/fuzz_regressions/<target>/`): crashes found by the fuzz
//! targets (named `crash-*`, each with what it broke) and seeds, run through exactly the
//! code of the fuzz targets.
//!
//! - `raw_sample/crash-eventheader-both-array-flags`: an EventHeader field encoding with both
//!   array flags tripped a debug assertion inside `tracepoint_decode` 0.5.0; now rejected first.
//! - `raw_sample/crash-eventheader-empty-struct`: a struct field with zero fields, same.

use std::path::Path;

use ue_metrics_decode::fuzzing;

fn run_all(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        count += 1;
    }
    count
}

#[test]
fn payload_inputs() {
    assert!(run_all("payload", fuzzing::payload) > 0);
}

#[test]
fn format_inputs() {
    assert!(run_all("format", fuzzing::format) > 0);
}

#[test]
fn raw_sample_inputs() {
    assert!(run_all("raw_sample", fuzzing::raw_sample) >= 2);
}

#[test]
fn trace_line_inputs() {
    assert!(run_all("trace_line", fuzzing::trace_line) > 0);
}

#[test]
fn the_eventheader_crashes_are_errors_now() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions/raw_sample/crash-eventheader-both-array-flags");
    let data = std::fs::read(path).unwrap();
    let format = ue_metrics_decode::RecordFormat::parse(fuzzing::EVENTHEADER_FORMAT).unwrap();
    let decoder = match ue_metrics_decode::EventDecoder::for_format(&format) {
        Some(Ok(d)) => d,
        _ => panic!("EventHeader format not recognised"),
    };
    let mut context = tracepoint_decode::EventHeaderEnumeratorContext::new();
    let err = decoder.decode(&mut context, &data[1..]).unwrap_err();
    assert!(err.to_string().contains("both array flags"), "{err}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions/raw_sample/crash-eventheader-empty-struct");
    let data = std::fs::read(path).unwrap();
    let err = decoder.decode(&mut context, &data[1..]).unwrap_err();
    assert!(err.to_string().contains("no fields"), "{err}");
}
