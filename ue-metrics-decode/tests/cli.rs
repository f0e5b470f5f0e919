//! The `ue-metrics-decode` binary end to end (everything but `live`, which needs the kernel).

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::perf_file::{self, Sample};
use common::requests::counter;
use prost::Message as _;
use ue_metrics_decode::format::EXAMPLE_FORMAT;
use ue_metrics_decode::json::to_json;
use ue_metrics_decode::payload::encode_payload;
use ue_metrics_decode::sample::encode_raw_sample;
use ue_metrics_decode::RecordFormat;

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn payload_file_and_stdin_give_one_json_line() {
    let request = counter("svc", 2, 42);
    let payload = encode_payload(&request.encode_to_vec());
    let path = perf_file::temp_path("one.payload");
    std::fs::write(&path, &payload).unwrap();
    let expected = format!("{}\n", to_json(&request));
    let out = run(&["payload", path.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected);
    let out = run(&["payload", "-"], &payload);
    assert_eq!(text(&out.stdout), expected);
    assert!(text(&out.stderr).contains("1 records: 1 decoded, 0 failed"));
}

#[test]
fn unusable_payload_exits_1_with_the_reason() {
    let out = run(&["payload"], b"short");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("not a usable payload") && err.contains("truncated"),
        "{err}"
    );
    let mut payload = encode_payload(&[0x0a, 0x05]);
    payload[0] = 9;
    let out = run(&["payload", "-"], &payload);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown protocol 9"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&[], b"").status.code(), Some(2));
    let out = run(&["payload", "--bogus"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown option --bogus"));
    assert!(run(&["--help"], b"").status.success());
}

/// Writes the file under `name`: tests run in parallel threads of one process, so each needs
/// its own file.
fn perf_file_with_bad_record(name: &str) -> std::path::PathBuf {
    let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    let sample = |pid: u32, buffer: &[u8]| Sample {
        pid,
        tid: pid,
        time: 1,
        cpu: 0,
        raw: encode_raw_sample(&format, 1535, pid as i32, buffer).unwrap(),
    };
    let records = vec![
        perf_file::sample_bytes(&sample(1, &counter("a", 3, 7).encode_to_vec()), true),
        perf_file::sample_bytes(&sample(2, &[0xff, 0xff]), true),
        perf_file::sample_bytes(&sample(3, &counter("b", 1, 9).encode_to_vec()), true),
    ];
    let path = perf_file::temp_path(name);
    perf_file::write_normal(&path, &[("user_events", EXAMPLE_FORMAT)], true, &records);
    path
}

#[test]
fn perf_data_json_skips_and_counts_bad_records() {
    let path = perf_file_with_bad_record("cli-json.data");
    let out = run(&["perf-data", path.to_str().unwrap()], b"");
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [to_json(&counter("a", 3, 7)), to_json(&counter("b", 1, 9))]
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("skipped a record (pid 2, cpu 0): invalid protobuf"),
        "{err}"
    );
    assert!(
        err.contains("3 records: 2 decoded, 1 failed (protobuf: 1)"),
        "{err}"
    );
}

#[test]
fn perf_data_summary_table() {
    let path = perf_file_with_bad_record("cli-summary.data");
    let out = run(
        &["perf-data", path.to_str().unwrap(), "--format", "summary"],
        b"",
    );
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("metric") && header.contains("last value"),
        "{stdout}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row, ["requests", "counter", "3", "4", "9"], "{stdout}");
}

#[test]
fn perf_data_errors_exit_1() {
    let out = run(&["perf-data", "/nonexistent/perf.data"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/perf.data"));
}

#[test]
fn trace_text_from_stdin() {
    let request = counter("t", 1, 3);
    let line = ue_metrics_decode::ftrace::format_trace_line(
        "  app-12  [000] .....  5.000001",
        "otlp_metrics",
        &encode_payload(&request.encode_to_vec()),
    )
    .unwrap();
    let input = format!("# tracer: nop\n{line}\n  app-12 [000] 5.1: other_event: x=1\n");
    let out = run(&["trace", "-"], input.as_bytes());
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), format!("{}\n", to_json(&request)));
    assert!(text(&out.stderr).contains("1 samples of other events ignored"));
}

#[test]
fn merge_joins_the_chunks_of_one_export() {
    let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    let records: Vec<Vec<u8>> = [counter("m", 2, 1), counter("m", 3, 1)]
        .iter()
        .map(|r| {
            let raw = encode_raw_sample(&format, 1535, 5, &r.encode_to_vec()).unwrap();
            perf_file::sample_bytes(
                &Sample {
                    pid: 5,
                    tid: 5,
                    time: 1,
                    cpu: 0,
                    raw,
                },
                true,
            )
        })
        .collect();
    let path = perf_file::temp_path("merge.data");
    perf_file::write_normal(&path, &[("user_events", EXAMPLE_FORMAT)], true, &records);
    let out = run(&["perf-data", path.to_str().unwrap(), "--merge"], b"");
    assert_eq!(text(&out.stdout).lines().count(), 1);
    assert!(text(&out.stderr).contains("merged 1 records"));
}
