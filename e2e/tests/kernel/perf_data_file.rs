//! A perf.data file recorded in this guest without Debian's `perf` (which is an x86_64 program
//! on the build host): the suite's own recorder opens `user_events:otlp_metrics` with
//! `perf_event_open` (user_events-sys's `PerfSession`) while the known app exports, and writes
//! the samples with `tracepoint_perf`'s `PerfDataFileWriter`, in this machine's byte order and
//! laid out as `perf record` lays them out. The decoder must read it back to exactly what the
//! SDK produced. The file and its decoded content go to the host as artifacts
//! (`<arch>-otlp_metrics.perf.data`, `<arch>-otlp_metrics.expected.json`): the one from the
//! big-endian s390x guest is the decoder's cross-byte-order fixture
//! (`ue-metrics-decode/tests/data/`).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::Temporality;
use tracepoint_decode::{
    PerfEventAttr, PerfEventAttrSampleType as SampleType, PerfEventAttrSize, PerfEventAttrType,
    PerfEventFormat,
};
use tracepoint_perf::PerfDataFileWriter;
use ue_metrics_decode::{json, PerfDataSource};
use ue_metrics_e2e::guest::{artifact, measure};
use ue_metrics_e2e::known::{self, KnownInstruments};
use ue_metrics_e2e::reference::compare;
use ue_metrics_e2e::tee::TeeExporter;
use ue_metrics_exporter::DEFAULT_MAX_EVENT_BYTES;
use user_events_sys::perf::{PerfOptions, PerfRecord, PerfSession};
use user_events_sys::Tracefs;

use crate::common::{exporter, provider_with};

/// The event collectors record (`perf record -e user_events:otlp_metrics`).
const EVENT: &str = "otlp_metrics";
const ROUNDS: u64 = 2;

/// One sample as the ring gave it.
struct Sample {
    pid: u32,
    tid: u32,
    time: u64,
    cpu: u32,
    raw: Vec<u8>,
}

/// `PERF_RECORD_SAMPLE` laid out for Tid | Time | Cpu | Raw, native byte order: what `perf
/// record -e <tracepoint>` writes (the raw area, u32 size + data, padded to 8 bytes).
fn sample_record(sample: &Sample) -> Vec<u8> {
    let mut raw = sample.raw.clone();
    while (raw.len() + 4) % 8 != 0 {
        raw.push(0);
    }
    let mut body = Vec::new();
    body.extend_from_slice(&sample.pid.to_ne_bytes());
    body.extend_from_slice(&sample.tid.to_ne_bytes());
    body.extend_from_slice(&sample.time.to_ne_bytes());
    body.extend_from_slice(&sample.cpu.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&(raw.len() as u32).to_ne_bytes());
    body.extend_from_slice(&raw);
    const PERF_RECORD_SAMPLE: u32 = 9;
    let mut record = PERF_RECORD_SAMPLE.to_ne_bytes().to_vec();
    record.extend_from_slice(&0u16.to_ne_bytes()); // misc
    record.extend_from_slice(&((8 + body.len()) as u16).to_ne_bytes());
    record.extend_from_slice(&body);
    record
}

#[test]
fn own_recorder_writes_a_perf_data_file_the_decoder_reads_back() {
    let tracefs = Tracefs::discover().expect("tracefs");
    let exporter = exporter(EVENT, Temporality::Delta, DEFAULT_MAX_EVENT_BYTES);
    let tee = TeeExporter::new(exporter.clone());
    let log = tee.log();
    let provider = provider_with(tee);
    let instruments = KnownInstruments::register(&provider.meter(known::SCOPE));

    let id = tracefs.event_id("user_events", EVENT).expect("event id");
    let format_text = tracefs
        .event_format("user_events", EVENT)
        .expect("event format");
    let mut session = PerfSession::open_tracepoint(
        id,
        &PerfOptions {
            pages_per_cpu: 64,
            ..PerfOptions::default()
        },
    )
    .expect("perf_event_open on the tracepoint");
    let mut samples = Vec::new();
    let mut lost = 0;
    let mut take = |session: &mut PerfSession| {
        session
            .drain(|record| match record {
                PerfRecord::Sample(s) => samples.push(Sample {
                    pid: s.pid,
                    tid: s.tid,
                    time: s.time,
                    cpu: s.cpu,
                    raw: s.raw.to_vec(),
                }),
                PerfRecord::Lost { lost: n } => lost += n,
            })
            .expect("drain the rings")
    };
    for round in 1..=ROUNDS {
        instruments.record_round(round);
        provider.force_flush().expect("flush");
        take(&mut session);
    }
    while session.wait(Duration::from_millis(100)).expect("poll") {
        take(&mut session);
    }
    take(&mut session);
    drop(session);
    provider.shutdown().expect("shutdown");
    assert_eq!(lost, 0, "the kernel dropped samples");
    assert!(!samples.is_empty(), "nothing recorded");
    // perf writes the rounds of all CPUs in time order.
    samples.sort_by_key(|s| s.time);

    let path = std::path::Path::new("/tmp/e2e-own-recorder.perf.data");
    let long_size = std::mem::size_of::<usize>() as u8;
    let format = Arc::new(
        PerfEventFormat::parse(long_size == 8, "user_events", &format_text)
            .expect("the kernel's format parses"),
    );
    let attr = PerfEventAttr {
        attr_type: PerfEventAttrType::Tracepoint,
        size: PerfEventAttrSize(64),
        config: id,
        sample_time: 1,
        sample_type: SampleType(
            SampleType::Tid.0 | SampleType::Time.0 | SampleType::Cpu.0 | SampleType::Raw.0,
        ),
        ..Default::default()
    };
    let mut writer = PerfDataFileWriter::new();
    writer.create_file(path.to_str().unwrap()).expect("create");
    let page = |name: &str| std::fs::read(tracefs.root().join("events").join(name)).ok();
    // The page size only describes the ring pages in the tracing data; every guest here runs
    // 4 KiB pages (user_events-sys's kernel tests measure it).
    writer.set_tracing_data_required(long_size, 4096);
    if let Some(header) = page("header_page") {
        writer.set_tracing_data_header_page(&header);
    }
    if let Some(header) = page("header_event") {
        writer.set_tracing_data_header_event(&header);
    }
    writer.set_utsname_headers(b"ue-vm", b"6.12", std::env::consts::ARCH.as_bytes());
    assert!(writer.add_tracepoint_event_desc(
        &[id],
        &attr,
        &format!("user_events:{EVENT}"),
        &format
    ));
    for sample in &samples {
        writer
            .write_event_data(&sample_record(sample))
            .expect("write");
    }
    writer.set_sample_time_header(samples[0].time, samples[samples.len() - 1].time);
    writer.finalize_and_close().expect("finalize");

    // The decoder reads it back, in this machine's byte order.
    let mut source = PerfDataSource::open(path).expect("open the perf.data file");
    let mut records = Vec::new();
    source.for_each(|r| records.push(r)).expect("read");
    assert_eq!(records.len(), samples.len());
    let decoded: Vec<_> = records
        .iter()
        .map(|r| r.result.clone().expect("every record decodes"))
        .collect();
    let expected: Vec<_> = log.take().into_iter().map(|e| e.reference).collect();
    assert_eq!(expected.len() as u64, ROUNDS);
    let agreement = compare(&decoded, &expected).unwrap_or_else(|m| panic!("{m}"));

    let arch = std::env::consts::ARCH;
    let bytes = std::fs::read(path).unwrap();
    measure("own_recorder_perf_data_bytes", bytes.len());
    measure("own_recorder_records", records.len());
    measure("own_recorder_points", agreement.points);
    let mut expected_json = String::new();
    for request in &decoded {
        expected_json.push_str(&json::to_json(request));
        expected_json.push('\n');
    }
    artifact(&format!("{arch}-{EVENT}.perf.data"), &bytes);
    artifact(
        &format!("{arch}-{EVENT}.expected.json"),
        expected_json.as_bytes(),
    );
}
