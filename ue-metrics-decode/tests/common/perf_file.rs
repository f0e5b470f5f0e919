//! Builds perf.data files for tests: normal mode with `tracepoint_perf`'s writer, pipe mode by
//! hand (the writer only writes normal mode).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracepoint_decode::{
    PerfEventAttr, PerfEventAttrSampleType as SampleType, PerfEventAttrSize, PerfEventAttrType,
    PerfEventFormat,
};
use tracepoint_perf::{
    PerfDataFileEventOrder, PerfDataFileReader, PerfDataFileWriter, PerfHeaderIndex,
};

pub const SAMPLE_ID: u64 = 77;

/// A unique temporary path for one test (under cargo's per-target temporary directory).
pub fn temp_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ue-metrics-decode-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// One sample to write.
pub struct Sample {
    pub pid: u32,
    pub tid: u32,
    pub time: u64,
    pub cpu: u32,
    /// The raw tracepoint record (trace_entry first).
    pub raw: Vec<u8>,
}

pub fn sample_type(with_id: bool) -> SampleType {
    let mut bits = SampleType::Tid.0 | SampleType::Time.0 | SampleType::Cpu.0 | SampleType::Raw.0;
    if with_id {
        bits |= SampleType::Identifier.0;
    }
    SampleType(bits)
}

/// A PERF_RECORD_SAMPLE laid out for `sample_type(with_id)`.
pub fn sample_bytes(s: &Sample, with_id: bool) -> Vec<u8> {
    let mut raw = s.raw.clone();
    // The raw area (u32 size + data) is padded to 8 bytes; the size includes the padding.
    while (raw.len() + 4) % 8 != 0 {
        raw.push(0);
    }
    let mut body = Vec::new();
    if with_id {
        body.extend_from_slice(&SAMPLE_ID.to_ne_bytes());
    }
    body.extend_from_slice(&s.pid.to_ne_bytes());
    body.extend_from_slice(&s.tid.to_ne_bytes());
    body.extend_from_slice(&s.time.to_ne_bytes());
    body.extend_from_slice(&s.cpu.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&(raw.len() as u32).to_ne_bytes());
    body.extend_from_slice(&raw);
    record(9, &body)
}

/// PERF_RECORD_LOST for our id.
pub fn lost_bytes(lost: u64) -> Vec<u8> {
    let mut body = SAMPLE_ID.to_ne_bytes().to_vec();
    body.extend_from_slice(&lost.to_ne_bytes());
    record(2, &body)
}

fn record(ty: u32, body: &[u8]) -> Vec<u8> {
    let mut out = ty.to_ne_bytes().to_vec();
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&((8 + body.len()) as u16).to_ne_bytes());
    out.extend_from_slice(body);
    out
}

fn attr(config: u64, with_id: bool) -> PerfEventAttr {
    PerfEventAttr {
        attr_type: PerfEventAttrType::Tracepoint,
        size: PerfEventAttrSize(64),
        config,
        sample_time: 1,
        sample_type: sample_type(with_id),
        ..Default::default()
    }
}

/// Writes a normal-mode perf.data file with the given tracepoint formats (system, format text)
/// and records (already encoded: samples and lost records).
pub fn write_normal(path: &Path, formats: &[(&str, &str)], with_id: bool, records: &[Vec<u8>]) {
    let mut writer = PerfDataFileWriter::new();
    writer.create_file(path.to_str().unwrap()).unwrap();
    writer.set_tracing_data_required(8, 4096);
    for (i, (system, text)) in formats.iter().enumerate() {
        let format = Arc::new(PerfEventFormat::parse(true, system, text).expect("format parses"));
        let name = format!("{system}:{}", format.name());
        // perf lists the ids in the attr section even when samples do not carry them.
        let ids = [SAMPLE_ID + i as u64];
        assert!(writer.add_tracepoint_event_desc(
            &ids,
            &attr(u64::from(format.id()), with_id),
            &name,
            &format
        ));
    }
    for r in records {
        writer.write_event_data(r).unwrap();
    }
    writer.finalize_and_close().unwrap();
}

/// Writes a pipe-mode perf.data stream: header, HEADER_ATTR, HEADER_TRACING_DATA, records.
pub fn write_pipe(path: &Path, formats: &[(&str, &str)], records: &[Vec<u8>]) {
    // Let the writer build the tracing data, then take it out of a normal-mode file.
    let scratch = path.with_extension("normal");
    write_normal(&scratch, formats, true, &[]);
    let mut reader = PerfDataFileReader::new();
    reader
        .open_file(scratch.to_str().unwrap(), PerfDataFileEventOrder::File)
        .unwrap();
    let mut tracing_data = reader.header(PerfHeaderIndex::TracingData).to_vec();
    assert!(!tracing_data.is_empty());
    while tracing_data.len() % 8 != 0 {
        tracing_data.push(0);
    }

    let mut out = Vec::new();
    out.extend_from_slice(b"PERFILE2");
    out.extend_from_slice(&16u64.to_ne_bytes());
    for (i, (system, text)) in formats.iter().enumerate() {
        let id = PerfEventFormat::parse(true, system, text).unwrap().id();
        let mut body = attr_bytes(u64::from(id), sample_type(true).0);
        body.extend_from_slice(&(SAMPLE_ID + i as u64).to_ne_bytes());
        out.extend_from_slice(&record(64, &body));
    }
    let mut body = (tracing_data.len() as u32).to_ne_bytes().to_vec();
    body.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&record(66, &body));
    out.extend_from_slice(&tracing_data);
    for r in records {
        out.extend_from_slice(r);
    }
    std::fs::write(path, out).unwrap();
}

/// perf_event_attr, PERF_ATTR_SIZE_VER0 (64 bytes).
fn attr_bytes(config: u64, sample_type: u64) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&2u32.to_ne_bytes()); // PERF_TYPE_TRACEPOINT
    a.extend_from_slice(&64u32.to_ne_bytes());
    a.extend_from_slice(&config.to_ne_bytes());
    a.extend_from_slice(&1u64.to_ne_bytes()); // sample_period
    a.extend_from_slice(&sample_type.to_ne_bytes());
    a.extend_from_slice(&0u64.to_ne_bytes()); // read_format
    a.extend_from_slice(&0u64.to_ne_bytes()); // flags
    a.extend_from_slice(&0u32.to_ne_bytes()); // wakeup_events
    a.extend_from_slice(&0u32.to_ne_bytes()); // bp_type
    a.extend_from_slice(&0u64.to_ne_bytes()); // config1
    assert_eq!(a.len(), 64);
    a
}
