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
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
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
    // Read to the end, one record not decoded: exit status 3 (a stdout failure's 1 wins over
    // it, see `write_errors_on_stdout_exit_1`).
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
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
    assert!(
        err.contains("exit status 3: 1 records failed, 0 lost"),
        "{err}"
    );
    // The same records without the bad one: 0.
    let clean = perf_file_of(
        "cli-json-clean.data",
        &[counter("a", 3, 7), counter("b", 1, 9)],
    );
    let out = run(&["perf-data", clean.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("exit status"));
}

/// A LOST count comes from the input and may be as large as u64::MAX: the exit status must
/// not add it to the failed records (that overflowed: a panic in a debug build, a wrapped 0
/// and exit status 0 in a release build).
#[test]
fn the_largest_lost_count_and_a_failed_record_still_exit_3() {
    let bad = ue_metrics_decode::ftrace::format_trace_line(
        "  app-12  [000] .....  5.000001",
        "otlp_metrics",
        &encode_payload(&[0xff, 0xff]),
    )
    .unwrap();
    let input = format!("CPU:0 [LOST {} EVENTS]\n{bad}\n", u64::MAX);
    let out = run(&["trace", "-"], input.as_bytes());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "exit status 3: 1 records failed, {} lost",
            u64::MAX
        )),
        "{err}"
    );
}

/// Records lost, then an input that breaks off: the run failed (1), and stderr does not claim
/// a 3 first.
#[test]
fn a_damaged_stream_after_lost_records_exits_1_without_claiming_3() {
    let path = perf_file::temp_path("cli-lost-then-junk.data");
    let records = vec![
        perf_file::sample_bytes(&sample(1, &counter("a", 1, 2).encode_to_vec()), true),
        perf_file::lost_bytes(4),
    ];
    perf_file::write_pipe(&path, &[("user_events", EXAMPLE_FORMAT)], &records);
    let mut bytes = std::fs::read(&path).unwrap();
    // A record header whose size (4 bytes) is below the header's own 8.
    bytes.extend_from_slice(&[9, 0, 0, 0, 0, 0, 4, 0]);
    std::fs::write(&path, &bytes).unwrap();
    let out = run(&["perf-data", path.to_str().unwrap()], b"");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("4 lost"), "the counts are still shown: {err}");
    assert!(!err.contains("exit status 3"), "{err}");
}

/// A file name that is not UTF-8 (Latin-1 "café"): a usage error that says why (exit 2), not
/// the panic of `std::env::args` (exit 101).
#[test]
fn an_argument_that_is_not_utf8_is_a_usage_error() {
    use std::os::unix::ffi::OsStrExt as _;
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.data");
    let out = Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
        .arg("perf-data")
        .arg(name)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("invalid unicode") && !err.contains("panicked"),
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

/// A sample of our event (the example format) from `pid` carrying `buffer`.
fn sample(pid: u32, buffer: &[u8]) -> Sample {
    let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    Sample {
        pid,
        tid: pid,
        time: 1,
        cpu: 0,
        raw: encode_raw_sample(&format, 1535, pid as i32, buffer).unwrap(),
    }
}

/// A perf.data file (under `name`) of one sample per request, all from pid 5.
fn perf_file_of(name: &str, requests: &[ExportMetricsServiceRequest]) -> std::path::PathBuf {
    let records: Vec<Vec<u8>> = requests
        .iter()
        .map(|r| perf_file::sample_bytes(&sample(5, &r.encode_to_vec()), true))
        .collect();
    let path = perf_file::temp_path(name);
    perf_file::write_normal(&path, &[("user_events", EXAMPLE_FORMAT)], true, &records);
    path
}

#[test]
fn merge_joins_the_chunks_of_one_export() {
    let path = perf_file_of("merge.data", &[counter("m", 2, 1), counter("m", 3, 1)]);
    let out = run(&["perf-data", path.to_str().unwrap(), "--merge"], b"");
    assert_eq!(text(&out.stdout).lines().count(), 1);
    assert!(text(&out.stderr).contains("merged 1 records"));
}

#[test]
fn trace_lines_that_are_not_utf8_are_skipped_and_counted() {
    let first = counter("first", 1, 1);
    let last = counter("last", 1, 2);
    let line = |prefix: &str, request: &ExportMetricsServiceRequest| {
        ue_metrics_decode::ftrace::format_trace_line(
            prefix,
            "otlp_metrics",
            &encode_payload(&request.encode_to_vec()),
        )
        .unwrap()
    };
    let mut input = Vec::new();
    input.extend_from_slice(line("  app-12  [000] .....  5.000001", &first).as_bytes());
    // Another event whose printed data is not UTF-8.
    input.extend_from_slice(b"\n  app-12 [000] 5.1: other_event: name=\xff\xfe\n");
    // Our event written by a task whose name is not UTF-8 (Latin-1 "été"): still ours.
    let ours = line("  XtX-13  [001] .....  5.200000", &last);
    input.extend(ours.bytes().map(|b| if b == b'X' { 0xe9 } else { b }));
    input.push(b'\n');
    let out = run(&["trace", "-"], &input);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        text(&out.stdout),
        format!("{}\n{}\n", to_json(&first), to_json(&last)),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 records: 2 decoded, 0 failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 samples of other events ignored"),
        "{stderr}"
    );
}

#[test]
fn write_errors_on_stdout_exit_1() {
    let path = perf_file_with_bad_record("cli-full.data");
    for format in ["json", "summary"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
            .args(["perf-data", path.to_str().unwrap(), "--format", format])
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--format {format}: {err}");
        assert!(err.contains("cannot write to stdout"), "{err}");
    }
    for args in [&["--help"][..], &["--version"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
}

#[test]
fn a_closed_stdout_pipe_ends_the_run_with_0_as_documented() {
    // More output than a pipe buffer holds: the write fails even if another test's child
    // briefly inherited the read end.
    let path = perf_file_of("cli-pipe.data", &vec![counter("p", 20, 1); 500]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
        .args(["perf-data", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is written
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("stdout was closed"), "{err}");
    let usage = text(&run(&["--help"], b"").stdout);
    assert!(usage.contains("closed by its reader"), "{usage}");
}

#[test]
fn summary_escapes_control_characters_in_metric_names() {
    let mut request = counter("svc", 1, 5);
    request.resource_metrics[0].scope_metrics[0].metrics[0].name =
        "evil\x1b[2J\nfake  counter  1  1  666".into();
    let path = perf_file_of("cli-escape.data", &[request]);
    let out = run(
        &["perf-data", path.to_str().unwrap(), "--format", "summary"],
        b"",
    );
    let stdout = text(&out.stdout);
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.contains(r"evil\u{1b}[2J\nfake"), "{stdout}");
}

#[test]
fn a_damaged_format_in_perf_data_exits_1_with_the_reason() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions/perf_data/crash-format-not-ascii");
    let out = run(&["perf-data", path.to_str().unwrap()], b"");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is damaged") && !err.contains("panicked"),
        "{err}"
    );
}
