//! Real tools on the guest: Debian's `perf record` captures the app, and everything that reads
//! the perf.data file agrees: ue-metrics-decode's library and CLI give back exactly what the
//! app's SDK produced, `perf script` shows our fixed fields, Microsoft's `tracepoint_perf` /
//! `tracepoint_decode` find our fields by name.
//!
//! One `perf record` run (made by whichever test comes first) serves all four tests.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use tracepoint_decode::{PerfEventHeaderType, PerfFieldArray};
use tracepoint_perf::{PerfDataFileEventOrder, PerfDataFileReader};
use ue_metrics_decode::{json, PerfDataSource, Record};
use ue_metrics_e2e::guest::{measure, packed_program, perf_available, DECODE_CLI, PERF};
use ue_metrics_e2e::known::{expected_counter, INSTRUMENTS};
use ue_metrics_e2e::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_e2e::reference::{compare, metric_names, points_of, PointValue};
use ue_metrics_exporter::MetricsExporter;

use crate::common::{output_text, read_expect_file, AppStats, APP};

const EVENT: &str = "otlp_metrics";
const ROUNDS: u64 = 3;

/// What the one `perf record` run left.
struct PerfRun {
    data: PathBuf,
    app_stats: AppStats,
    expected: Vec<ExportMetricsServiceRequest>,
    records: Vec<Record>,
    lost: u64,
}

/// The one `perf record` run, or `None` (the test reports `UE-SKIP` and returns) in a guest of
/// an architecture for which the host has no `perf` to pack.
fn perf_run(test: &str) -> Option<&'static PerfRun> {
    static RUN: OnceLock<PerfRun> = OnceLock::new();
    if !perf_available(test) {
        return None;
    }
    Some(RUN.get_or_init(record_the_app))
}

/// `perf record --no-bpf-event -e user_events:otlp_metrics -o F -- ue-e2e-app ...`. perf
/// refuses a tracepoint that does not exist, so this process keeps a registration of the event
/// for the run. (Checking that it exists is not enough: the kernel removes an event nobody
/// references a moment after the last reference goes, so an event another test just used can
/// still be listed and then vanish before perf opens it.)
fn record_the_app() -> PerfRun {
    let _registration = MetricsExporter::builder()
        .with_require_user_events(true)
        .build()
        .expect("register otlp_metrics for perf");
    let data = PathBuf::from("/tmp/e2e-perf.data");
    let expect = PathBuf::from("/tmp/e2e-perf.expect");
    let output = Command::new(PERF)
        .args([
            "record",
            "--no-bpf-event",
            "-e",
            "user_events:otlp_metrics",
            "-o",
        ])
        .arg(&data)
        .args(["--", APP, "--rounds", &ROUNDS.to_string(), "--expect"])
        .arg(&expect)
        .env("PAGER", "cat")
        .env("PERF_PAGER", "cat")
        .output()
        .expect("run perf (packed by cargo xtask e2e from the host's linux-perf)");
    let text = output_text(&output);
    assert!(output.status.success(), "perf record: {text}");
    let app_stats = AppStats::parse(&String::from_utf8_lossy(&output.stdout)).expect(&text);
    let mut source = PerfDataSource::open(&data).expect("open perf.data");
    let mut records = Vec::new();
    source
        .for_each(|r| records.push(r))
        .expect("read perf.data");
    let lost = source.stats().lost;
    PerfRun {
        data,
        app_stats,
        expected: read_expect_file(&expect),
        records,
        lost,
    }
}

fn decoded(run: &PerfRun) -> Vec<ExportMetricsServiceRequest> {
    run.records
        .iter()
        .map(|r| r.result.clone().expect("every record decodes"))
        .collect()
}

#[test]
fn perf_record_of_the_app_decodes_to_exactly_what_it_recorded() {
    let Some(run) =
        perf_run("perf_tool::perf_record_of_the_app_decodes_to_exactly_what_it_recorded")
    else {
        return;
    };
    assert_eq!(run.lost, 0, "perf lost records");
    assert!(!run.records.is_empty(), "perf recorded nothing");
    let decoded = decoded(run);
    let agreement = compare(&decoded, &run.expected).unwrap_or_else(|m| panic!("{m}"));
    // The app's own counters against the file.
    let bytes: u64 = run.records.iter().map(|r| 16 + r.buffer_len as u64).sum();
    assert_eq!(
        (
            run.app_stats.events,
            run.app_stats.bytes,
            run.app_stats.points
        ),
        (run.records.len() as u64, bytes, agreement.points as u64),
        "app stats vs perf.data"
    );
    // The values the app recorded: every instrument, c.u64{k=a} once per round.
    assert_eq!(metric_names(&decoded).len(), INSTRUMENTS.len());
    let mut counter: Vec<_> = points_of(&decoded, "c.u64")
        .into_iter()
        .filter(|p| p.attributes == "k=a")
        .collect();
    counter.sort_by_key(|p| p.time);
    let want: Vec<_> = (1..=ROUNDS)
        .map(|r| {
            PointValue::Int(
                expected_counter(opentelemetry_sdk::metrics::Temporality::Delta, r) as i64,
            )
        })
        .collect();
    assert_eq!(
        counter.iter().map(|p| p.value.clone()).collect::<Vec<_>>(),
        want
    );
    let pids: Vec<_> = run.records.iter().filter_map(|r| r.meta.pid).collect();
    assert!(
        pids.iter()
            .all(|&p| p == pids[0] && p != std::process::id()),
        "every record comes from the app: {pids:?}"
    );
    measure("perf_records", run.records.len());
    measure("perf_exports", run.app_stats.exports);
    measure("perf_points_equal", agreement.points);
}

#[test]
fn perf_script_shows_protocol_and_version_for_each_record() {
    let Some(run) = perf_run("perf_tool::perf_script_shows_protocol_and_version_for_each_record")
    else {
        return;
    };
    let output = Command::new(PERF)
        .args(["script", "-i"])
        .arg(&run.data)
        .env("PAGER", "cat")
        .env("PERF_PAGER", "cat")
        .output()
        .expect("run perf script");
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<_> = stdout
        .lines()
        .filter(|l| l.contains("user_events:otlp_metrics:"))
        .collect();
    assert_eq!(lines.len(), run.records.len(), "{text}");
    for line in &lines {
        assert!(
            line.contains("protocol=0") && line.contains("version=v0.19.00"),
            "{line}"
        );
    }
    println!("perf script, first line: {}", lines[0]);
    measure("perf_script_lines", lines.len());
}

#[test]
fn the_decoder_cli_reads_the_perf_data_file() {
    let Some(run) = perf_run("perf_tool::the_decoder_cli_reads_the_perf_data_file") else {
        return;
    };
    let cli = packed_program(DECODE_CLI).unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(&cli)
        .arg("perf-data")
        .arg(&run.data)
        .output()
        .expect("run ue-metrics-decode");
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    // One OTLP/JSON line per record, in file order: the library's records, written as JSON.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let want: Vec<String> = decoded(run).iter().map(json::to_json).collect();
    assert_eq!(lines, want, "{text}");
    let summary = Command::new(&cli)
        .args(["perf-data", "--format", "summary"])
        .arg(&run.data)
        .output()
        .expect("run ue-metrics-decode");
    let summary_text = output_text(&summary);
    assert!(summary.status.success(), "{summary_text}");
    for name in INSTRUMENTS {
        assert!(summary_text.contains(name), "{name} in {summary_text}");
    }
    measure("decode_cli_json_lines", lines.len());
}

#[test]
fn microsoft_tracepoint_perf_finds_our_fields_by_name() {
    let Some(run) = perf_run("perf_tool::microsoft_tracepoint_perf_finds_our_fields_by_name")
    else {
        return;
    };
    let mut reader = PerfDataFileReader::new();
    reader
        .open_file(run.data.to_str().unwrap(), PerfDataFileEventOrder::File)
        .expect("tracepoint_perf opens the file");
    let byte_reader = reader.byte_reader();
    let mut samples = 0;
    let mut via_sample_info = 0;
    let mut rel_loc_read_right = 0;
    while reader
        .move_next_event()
        .expect("tracepoint_perf reads the file")
    {
        let event = reader.current_event();
        if event.header.ty != PerfEventHeaderType::Sample {
            continue;
        }
        // tracepoint_perf finds the sample's event through its sample id; perf files of a
        // single event carry none, so fall back to the only event description.
        let (format, raw) = match reader.get_sample_event_info(&event) {
            Ok(info) => {
                via_sample_info += 1;
                (info.event_desc.format_arc().cloned(), info.raw_data())
            }
            Err(_) => {
                let desc = reader
                    .event_desc_list()
                    .iter()
                    .find(|d| d.name().ends_with(EVENT))
                    .expect("the event in the file");
                let (_, raw) =
                    ue_metrics_decode::perf_data::parse_sample(desc.attr().sample_type, event.data)
                        .expect("sample layout");
                (desc.format_arc().cloned(), raw)
            }
        };
        let format = format.expect("tracepoint_perf read the event's format from the file");
        assert_eq!(format.name(), EVENT);
        assert_eq!(format.system_name(), "user_events");
        let field = |name: &str| {
            format
                .fields()
                .iter()
                .find(|f| f.name() == name)
                .unwrap_or_else(|| panic!("tracepoint_decode finds no field {name}"))
        };
        let (protocol, version, buffer) = (field("protocol"), field("version"), field("buffer"));
        assert_eq!(protocol.size(), 4);
        assert_eq!(version.size(), 8);
        assert_eq!(buffer.size(), 4);
        assert_eq!(buffer.array(), PerfFieldArray::RelLoc4);
        let protocol_bytes = protocol
            .get_field_bytes(raw, byte_reader)
            .expect("protocol");
        assert_eq!(byte_reader.read_u32(protocol_bytes), 0);
        assert_eq!(
            version.get_field_bytes(raw, byte_reader).expect("version"),
            b"v0.19.00"
        );
        // The rel_loc word as tracepoint_decode locates it; its length and offset (from the
        // end of the word) lead to the buffer our decoder decoded.
        let end = usize::from(buffer.offset()) + 4;
        let word = byte_reader.read_u32(&raw[usize::from(buffer.offset())..end]);
        let (len, offset) = ((word >> 16) as usize, (word & 0xffff) as usize);
        let bytes = &raw[end + offset..end + offset + len];
        let ours = &run.records[samples];
        assert_eq!(len, ours.buffer_len);
        let request = <ExportMetricsServiceRequest as prost::Message>::decode(bytes)
            .expect("the buffer is a request");
        assert_eq!(Some(&request), ours.result.as_ref().ok());
        // tracepoint_decode 0.5's own helper (DESIGN.md: it reads a 4-byte __rel_loc as a
        // __data_loc, i.e. from the record start): count how often it is right.
        if buffer.get_field_bytes(raw, byte_reader) == Some(bytes) {
            rel_loc_read_right += 1;
        }
        samples += 1;
    }
    assert_eq!(samples, run.records.len());
    measure("tracepoint_perf_samples", samples);
    measure("tracepoint_perf_sample_info", via_sample_info);
    measure("tracepoint_decode_rel_loc4_right", rel_loc_read_right);
}
