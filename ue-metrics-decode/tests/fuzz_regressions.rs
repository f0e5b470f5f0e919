//! Inputs kept from fuzzing (`tests/fuzz_regressions/<target>/`): crashes found by the fuzz
//! targets (named `crash-*`, each with what it broke) and seeds, run through exactly the
//! code of the fuzz targets.
//!
//! - `raw_sample/crash-eventheader-both-array-flags`: an EventHeader field encoding with both
//!   array flags tripped a debug assertion inside `tracepoint_decode` 0.5.0; now rejected first.
//! - `raw_sample/crash-eventheader-empty-struct`: a struct field with zero fields, same.
//! - `perf_data/crash-format-not-ascii` (normal mode): one byte of an event format text set to
//!   0xff made `tracepoint_decode`'s format parser panic (a slice inside a character); now
//!   refused before the reader parses it.
//! - `perf_data/crash-format-number-overflow` (pipe mode): an array length past `u32::MAX` in
//!   a field line overflowed in the same parser (debug assertions); refused the same way.
//! - `perf_data/crash-format-two-sections` (pipe mode, found by the fuzz target): a format text
//!   with two `format:` sections made the parser index past its fields (it clears them but
//!   keeps counting the common ones); refused the same way.
//! - `perf_data/crash-format-reserved-feature-bit` (normal mode, found by the fuzz target): the
//!   reserved feature bit 0 set, so the reader takes its tracing data from the second section
//!   entry, whose format text is not ASCII; the check now counts the sections as the reader does.
//! - `perf_data/crash-format-unnamed-header-event` (pipe mode, found by the fuzz target in CI):
//!   the `header_event` section's name erased, so the reader reads on from there and meets an
//!   array length past `u32::MAX` that the check, which stopped at the unexpected name, missed.
//! - `perf_data/crash-field-past-the-record` (found by the fuzz target as a release build): a
//!   format whose length field lies at byte 4096 of a 180-byte sample; the error said
//!   "truncated at byte 4096", an offset past its input (now: at byte 180, the input's end).
//! - `perf_data/seed-normal`, `perf_data/seed-pipe`: valid files of two records and a lost count.

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
fn perf_data_inputs() {
    assert!(run_all("perf_data", fuzzing::perf_data) >= 6);
}

#[test]
fn damaged_formats_in_perf_data_are_refused_with_the_reason() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/perf_data");
    for (name, reason) in [
        ("crash-format-not-ascii", "0xff"),
        ("crash-format-number-overflow", "9735928559"),
        ("crash-format-two-sections", "second `format:`"),
        ("crash-format-reserved-feature-bit", "not ASCII"),
        ("crash-format-unnamed-header-event", "9735928559"),
    ] {
        let err = ue_metrics_decode::PerfDataSource::open(dir.join(name)).unwrap_err();
        assert!(
            matches!(err, ue_metrics_decode::PerfDataError::DamagedFormat { .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(reason) && text.contains("user_events"),
            "{text}"
        );
    }
    for seed in ["seed-normal", "seed-pipe"] {
        let mut source = ue_metrics_decode::PerfDataSource::open(dir.join(seed)).unwrap();
        source.for_each(|_| {}).unwrap();
        assert_eq!((source.stats().decoded, source.stats().lost), (2, 1));
    }
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
