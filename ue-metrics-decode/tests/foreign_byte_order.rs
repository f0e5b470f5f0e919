//! A perf.data file recorded on a big-endian machine, decoded on this host.
//!
//! `tests/data/s390x-otlp_metrics.perf.data` was recorded in the s390x guest of `cargo xtask
//! e2e --arch s390x` (big-endian, Linux 6.12 with user_events): the e2e suite's own recorder
//! (`e2e/tests/kernel/perf_data_file.rs`: `perf_event_open` on `user_events:otlp_metrics` while
//! the known app exported, written with `tracepoint_perf`'s writer in the machine's byte order).
//! `s390x-otlp_metrics.expected.json` is what the decoder made of the file on s390x itself,
//! one OTLP/JSON request per record, after checking there that it equals what the SDK produced.
//! Re-record both with `cargo xtask e2e --arch s390x` (they land in
//! `target/vm-run/e2e-s390x/artifacts/`).

use std::path::PathBuf;

use ue_metrics_decode::{json, PerfDataSource};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(name)
}

const FILE: &str = "s390x-otlp_metrics.perf.data";
const EXPECTED: &str = "s390x-otlp_metrics.expected.json";

#[test]
fn the_s390x_fixture_is_a_big_endian_perf_data_file_with_its_expected_content() {
    let bytes = std::fs::read(data(FILE)).unwrap();
    // perf's magic is the u64 "PERFILE2" in the writer's byte order: reversed when big-endian.
    assert_eq!(&bytes[..8], b"2ELIFREP", "not a big-endian perf.data file");
    let header_size = u64::from_be_bytes(bytes[8..16].try_into().unwrap());
    assert_eq!(header_size, 104, "perf_file_header size, read big-endian");
    let expected = std::fs::read_to_string(data(EXPECTED)).unwrap();
    assert!(expected.lines().count() >= 2, "one request per record");
    for line in expected.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value.get("resourceMetrics").is_some(), "{line}");
    }
}

#[test]
fn a_perf_data_file_recorded_on_big_endian_s390x_decodes_to_what_s390x_decoded() {
    let mut source = PerfDataSource::open(data(FILE)).expect("open the big-endian file");
    let mut decoded = Vec::new();
    source
        .for_each(|record| {
            let request = record.result.expect("every record decodes");
            decoded.push(json::to_json(&request));
        })
        .expect("read to the end");
    let expected = std::fs::read_to_string(data(EXPECTED)).unwrap();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(decoded, expected);
    assert_eq!(source.stats().lost, 0);
    assert_eq!(source.stats().failed, 0);
}
