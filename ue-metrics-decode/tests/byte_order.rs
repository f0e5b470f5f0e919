//! perf.data files recorded on a machine of either byte order (normal and pipe mode), with
//! our field layout and the C++ exporter's length-prefixed layout (as a multi-format event).
//!
//! The files are written here byte by byte in the chosen order, as `perf record` on that
//! machine writes them: the `PERFILE2` magic, the headers, the attrs and the records in the
//! recorder's order, the tracing data flagged with it.

mod common;

use common::perf_file::temp_path;
use common::requests::{counter, everything};
use prost::Message as _;
use ue_metrics_decode::format::EXAMPLE_FORMAT;
use ue_metrics_decode::layout::{encode_length_prefixed, LENGTH_PREFIXED_FORMAT};
use ue_metrics_decode::sample::encode_raw_sample_in;
use ue_metrics_decode::{ByteOrder, PerfDataSource, RecordFormat, SampleMeta};

const OURS_ID: u16 = 1535;
const CPP_ID: u16 = 1536;
const OTHER_ID: u16 = 300;
const SAMPLE_TID: u64 = 1 << 1;
const SAMPLE_TIME: u64 = 1 << 2;
const SAMPLE_CPU: u64 = 1 << 7;
const SAMPLE_RAW: u64 = 1 << 10;
const SAMPLE_IDENTIFIER: u64 = 1 << 16;
const HEADER_TRACING_DATA: u64 = 1;

/// The C++ exporter's event, registered next to ours through `USER_EVENT_REG_MULTI_FORMAT`.
fn cpp_format() -> String {
    LENGTH_PREFIXED_FORMAT.replace("name: otlp_metrics\n", "name: otlp_metrics.1f\n")
}

const OTHER_FORMAT: &str = "name: sched_other\nID: 300\nformat:\n\
    \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
    \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
    \tfield:u32 protocol;\toffset:8;\tsize:4;\tsigned:0;\n\nprint fmt: \"x\"\n";

/// Writes values in the recording machine's order.
struct Out {
    order: ByteOrder,
    bytes: Vec<u8>,
}

impl Out {
    fn new(order: ByteOrder) -> Out {
        Out {
            order,
            bytes: Vec::new(),
        }
    }
    fn u16(&mut self, v: u16) -> &mut Out {
        self.bytes.extend_from_slice(&self.order.u16_bytes(v));
        self
    }
    fn u32(&mut self, v: u32) -> &mut Out {
        self.bytes.extend_from_slice(&self.order.u32_bytes(v));
        self
    }
    fn u64(&mut self, v: u64) -> &mut Out {
        self.bytes.extend_from_slice(&self.order.u64_bytes(v));
        self
    }
    fn raw(&mut self, v: &[u8]) -> &mut Out {
        self.bytes.extend_from_slice(v);
        self
    }
}

fn magic(order: ByteOrder) -> [u8; 8] {
    // perf writes the u64 whose little-endian bytes spell PERFILE2, in its own order.
    order.u64_bytes(u64::from_le_bytes(*b"PERFILE2"))
}

/// A perf event record: header (type, misc, size) and body.
fn record(order: ByteOrder, ty: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Out::new(order);
    out.u32(ty).u16(0).u16((8 + body.len()) as u16).raw(body);
    out.bytes
}

fn sample_type(with_id: bool) -> u64 {
    SAMPLE_TID | SAMPLE_TIME | SAMPLE_CPU | SAMPLE_RAW | if with_id { SAMPLE_IDENTIFIER } else { 0 }
}

/// perf_event_attr, PERF_ATTR_SIZE_VER0 (64 bytes), of a tracepoint.
fn attr(order: ByteOrder, config: u64, with_id: bool) -> Vec<u8> {
    let mut a = Out::new(order);
    a.u32(2)
        .u32(64)
        .u64(config)
        .u64(1)
        .u64(sample_type(with_id));
    a.u64(0).u64(0).u32(0).u32(0).u64(0);
    assert_eq!(a.bytes.len(), 64);
    a.bytes
}

/// The tracing data section (`perf record`'s `tracing_data_get`), flagged with `order`.
fn tracing_data(order: ByteOrder, formats: &[(&str, String)]) -> Vec<u8> {
    let mut t = Out::new(order);
    t.raw(b"\x17\x08\x44tracing0.6\0");
    t.raw(&[u8::from(order == ByteOrder::Big), 8]).u32(4096);
    t.raw(b"header_page\0").u64(0);
    t.raw(b"header_event\0").u64(0);
    t.u32(0); // ftrace formats
    let mut systems: Vec<&str> = formats.iter().map(|(s, _)| *s).collect();
    systems.dedup();
    t.u32(systems.len() as u32);
    for system in systems {
        t.raw(system.as_bytes()).raw(&[0]);
        let texts: Vec<&String> = formats
            .iter()
            .filter(|(s, _)| *s == system)
            .map(|(_, text)| text)
            .collect();
        t.u32(texts.len() as u32);
        for text in texts {
            t.u64(text.len() as u64).raw(text.as_bytes());
        }
    }
    t.u32(0).u32(0).u64(0); // kallsyms, printk, saved cmdlines
    t.bytes
}

struct Sample {
    id: u64,
    meta: (u32, u32, u64, u32),
    raw: Vec<u8>,
}

fn sample_bytes(order: ByteOrder, s: &Sample, with_id: bool) -> Vec<u8> {
    let mut raw = s.raw.clone();
    while (raw.len() + 4) % 8 != 0 {
        raw.push(0);
    }
    let (pid, tid, time, cpu) = s.meta;
    let mut body = Out::new(order);
    if with_id {
        body.u64(s.id);
    }
    body.u32(pid).u32(tid).u64(time).u32(cpu).u32(0);
    body.u32(raw.len() as u32).raw(&raw);
    record(order, 9, &body.bytes)
}

fn lost_bytes(order: ByteOrder, lost: u64) -> Vec<u8> {
    let mut body = Out::new(order);
    body.u64(100).u64(lost);
    record(order, 2, &body.bytes)
}

fn formats() -> Vec<(&'static str, String)> {
    vec![
        ("user_events", EXAMPLE_FORMAT.to_owned()),
        ("user_events_multi", cpp_format()),
        ("sched", OTHER_FORMAT.to_owned()),
    ]
}

fn ids(formats: &[(&str, String)]) -> Vec<u64> {
    (0..formats.len() as u64).map(|i| 100 + i).collect()
}

fn samples(order: ByteOrder) -> Vec<Sample> {
    let ours = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    let mut other = order.u16_bytes(OTHER_ID).to_vec();
    other.resize(12, 0);
    vec![
        Sample {
            id: 100,
            meta: (10, 11, 1_000, 1),
            raw: encode_raw_sample_in(
                order,
                &ours,
                OURS_ID,
                10,
                &counter("a", 3, 5).encode_to_vec(),
            )
            .unwrap(),
        },
        Sample {
            id: 101,
            meta: (20, 21, 2_000, 0),
            raw: encode_length_prefixed(order, CPP_ID, 20, &everything().encode_to_vec()),
        },
        Sample {
            id: 102,
            meta: (30, 30, 3_000, 2),
            raw: other,
        },
    ]
}

/// `perf record` in normal mode: header, attrs with their id arrays, data, feature sections.
fn write_normal(path: &std::path::Path, order: ByteOrder, with_id: bool) {
    let formats = formats();
    let ids = ids(&formats);
    let mut data = Vec::new();
    for s in samples(order) {
        data.extend(sample_bytes(order, &s, with_id));
    }
    data.extend(lost_bytes(order, 4));
    let tracing = tracing_data(order, &formats);

    const HEADER: u64 = 104;
    let attr_entry = 64 + 16;
    let attrs_size = attr_entry * formats.len() as u64;
    let ids_at = HEADER + attrs_size;
    let data_at = ids_at + 8 * formats.len() as u64;
    let features_at = data_at + data.len() as u64;
    let tracing_at = features_at + 16;

    let mut f = Out::new(order);
    f.raw(&magic(order)).u64(HEADER).u64(attr_entry);
    f.u64(HEADER).u64(attrs_size);
    f.u64(data_at).u64(data.len() as u64);
    f.u64(0).u64(0); // event_types
    f.u64(1 << HEADER_TRACING_DATA).u64(0).u64(0).u64(0);
    assert_eq!(f.bytes.len() as u64, HEADER);
    for (i, (_, text)) in formats.iter().enumerate() {
        let id = RecordFormat::parse(text).unwrap().id().unwrap();
        f.raw(&attr(order, u64::from(id), with_id));
        f.u64(ids_at + 8 * i as u64).u64(8);
    }
    for id in &ids {
        f.u64(*id);
    }
    f.raw(&data);
    f.u64(tracing_at).u64(tracing.len() as u64);
    f.raw(&tracing);
    std::fs::write(path, &f.bytes).unwrap();
}

/// `perf record -o -`: pipe header, HEADER_ATTR and HEADER_TRACING_DATA records, then data.
fn write_pipe(path: &std::path::Path, order: ByteOrder) {
    let formats = formats();
    let ids = ids(&formats);
    let mut f = Out::new(order);
    f.raw(&magic(order)).u64(16);
    for (i, (_, text)) in formats.iter().enumerate() {
        let id = RecordFormat::parse(text).unwrap().id().unwrap();
        let mut body = attr(order, u64::from(id), true);
        body.extend_from_slice(&order.u64_bytes(ids[i]));
        f.raw(&record(order, 64, &body));
    }
    let mut tracing = tracing_data(order, &formats);
    while tracing.len() % 8 != 0 {
        tracing.push(0);
    }
    let mut body = Out::new(order);
    body.u32(tracing.len() as u32).u32(0);
    f.raw(&record(order, 66, &body.bytes)).raw(&tracing);
    for s in samples(order) {
        f.raw(&sample_bytes(order, &s, true));
    }
    f.raw(&lost_bytes(order, 4));
    std::fs::write(path, &f.bytes).unwrap();
}

fn check(path: &std::path::Path, order: ByteOrder) {
    let mut source = PerfDataSource::open(path).unwrap_or_else(|e| panic!("{order} file: {e}"));
    assert_eq!(source.byte_order(), order);
    let mut seen = Vec::new();
    source.for_each(|r| seen.push(r)).unwrap();
    assert_eq!(seen.len(), 2, "{order}: {seen:?}");
    assert_eq!(
        seen[0].meta,
        SampleMeta {
            time: Some(1_000),
            pid: Some(10),
            tid: Some(11),
            cpu: Some(1)
        }
    );
    assert_eq!(seen[0].result.as_ref().unwrap(), &counter("a", 3, 5));
    assert_eq!(seen[1].meta.pid, Some(20));
    assert_eq!(
        seen[1].result.as_ref().unwrap().encode_to_vec(),
        everything().encode_to_vec(),
        "{order}: the C++ layout's length read in the recorder's order"
    );
    let stats = source.stats();
    assert_eq!((stats.records, stats.decoded, stats.lost), (2, 2, 4));
}

#[test]
fn normal_mode_files_of_both_byte_orders() {
    for order in [ByteOrder::Little, ByteOrder::Big] {
        for with_id in [true, false] {
            let path = temp_path(&format!("order-{order}-{with_id}.data"));
            write_normal(&path, order, with_id);
            check(&path, order);
        }
    }
}

#[test]
fn pipe_mode_streams_of_both_byte_orders() {
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let path = temp_path(&format!("order-{order}.pipe"));
        write_pipe(&path, order);
        check(&path, order);
    }
}

#[test]
fn selected_events_only() {
    let path = temp_path("order-select.data");
    write_normal(&path, ByteOrder::Big, true);
    let mut source = PerfDataSource::open(&path).unwrap();
    source.select_events(vec!["otlp_metrics".into()]);
    let mut seen = 0;
    source.for_each(|_| seen += 1).unwrap();
    assert_eq!(
        seen, 2,
        "otlp_metrics selects the multi-format otlp_metrics.1f too"
    );
    let mut source = PerfDataSource::open(&path).unwrap();
    source.select_events(vec!["otlp_metrics.1f".into()]);
    let mut seen = Vec::new();
    source.for_each(|r| seen.push(r)).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].meta.pid, Some(20));
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_payload_takes_the_writers_byte_order() {
    use ue_metrics_decode::payload::encode_payload_in;
    let request = counter("be", 2, 9);
    let foreign = match ByteOrder::NATIVE {
        ByteOrder::Little => ByteOrder::Big,
        ByteOrder::Big => ByteOrder::Little,
    };
    let path = temp_path("foreign.payload");
    std::fs::write(&path, encode_payload_in(&request.encode_to_vec(), foreign)).unwrap();
    let path = path.to_str().unwrap();
    let name = match foreign {
        ByteOrder::Little => "little",
        ByteOrder::Big => "big",
    };
    let out = cli(&["payload", path, "--byte-order", name]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.contains("\"be\""), "{stdout}");
    // The default is the machine's own order: the foreign rel_loc points outside the payload.
    let out = cli(&["payload", path]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("buffer location"));
    let out = cli(&["payload", path, "--byte-order", "native"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn cli_reads_a_big_endian_perf_data_file_and_selects_events() {
    let path = temp_path("cli-big.data");
    write_normal(&path, ByteOrder::Big, true);
    let path = path.to_str().unwrap();
    // The file ends with a LOST record of 4 samples: every record was read, not every one
    // decoded, and the exit status says so (3).
    let out = cli(&["perf-data", path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exit status 3: 0 records failed, 4 lost")
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let out = cli(&["perf-data", path, "--event", "otlp_metrics.1f"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[test]
fn damaged_big_endian_files_are_errors_not_panics() {
    let path = temp_path("order-damaged-src.data");
    write_normal(&path, ByteOrder::Big, true);
    let good = std::fs::read(&path).unwrap();
    let damaged = temp_path("order-damaged.data");
    let mut outcomes = [0usize; 2];
    // Cut anywhere, or set any one header/attr byte to 0xff.
    let cuts = (17..good.len()).step_by(7).map(|n| good[..n].to_vec());
    let flips = (8..300.min(good.len())).map(|i| {
        let mut bytes = good.clone();
        bytes[i] = 0xff;
        bytes
    });
    for bytes in cuts.chain(flips) {
        std::fs::write(&damaged, &bytes).unwrap();
        let opened = PerfDataSource::open(&damaged).map(|mut source| source.for_each(|_| {}));
        outcomes[usize::from(matches!(opened, Ok(Ok(()))))] += 1;
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
