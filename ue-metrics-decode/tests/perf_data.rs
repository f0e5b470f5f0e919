//! perf.data files, normal and pipe mode, built on the host.

mod common;

use common::perf_file::{self, Sample};
use common::requests::{counter, everything};
use prost::Message as _;
use ue_metrics_decode::format::EXAMPLE_FORMAT;
use ue_metrics_decode::sample::encode_raw_sample;
use ue_metrics_decode::{DecodeError, PerfDataSource, RecordFormat, SampleMeta};

/// Another tracepoint in the same file, which must be skipped.
const OTHER_FORMAT: &str = "name: sched_other\nID: 300\nformat:\n\
    \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
    \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
    \tfield:u32 protocol;\toffset:8;\tsize:4;\tsigned:0;\n\nprint fmt: \"x\"\n";

fn otlp_sample(pid: u32, time: u64, buffer: &[u8]) -> Sample {
    let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    Sample {
        pid,
        tid: pid + 1,
        time,
        cpu: 1,
        raw: encode_raw_sample(&format, 1535, pid as i32, buffer).unwrap(),
    }
}

fn records(with_id: bool) -> Vec<Vec<u8>> {
    let mut bad_protocol = otlp_sample(30, 300, &counter("c", 1, 1).encode_to_vec());
    bad_protocol.raw[8] = 7;
    let other = Sample {
        pid: 5,
        tid: 5,
        time: 250,
        cpu: 0,
        raw: {
            let mut raw = vec![0u8; 12];
            raw[..2].copy_from_slice(&300u16.to_ne_bytes());
            raw
        },
    };
    vec![
        perf_file::sample_bytes(
            &otlp_sample(10, 100, &counter("a", 3, 5).encode_to_vec()),
            with_id,
        ),
        perf_file::sample_bytes(
            &otlp_sample(20, 200, &everything().encode_to_vec()),
            with_id,
        ),
        perf_file::sample_bytes(&other, with_id),
        perf_file::sample_bytes(&bad_protocol, with_id),
        perf_file::lost_bytes(4),
    ]
}

fn check(path: &std::path::Path) {
    let mut source = PerfDataSource::open(path).unwrap();
    let mut seen = Vec::new();
    source.for_each(|r| seen.push(r)).unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen[0].meta,
        SampleMeta {
            time: Some(100),
            pid: Some(10),
            tid: Some(11),
            cpu: Some(1)
        }
    );
    assert_eq!(seen[0].result.as_ref().unwrap(), &counter("a", 3, 5));
    assert_eq!(seen[1].meta.pid, Some(20));
    assert_eq!(
        seen[1].result.as_ref().unwrap().encode_to_vec(),
        everything().encode_to_vec()
    );
    assert_eq!(seen[2].meta.pid, Some(30));
    assert_eq!(
        seen[2].result,
        Err(DecodeError::UnknownProtocol {
            offset: 8,
            protocol: 7
        })
    );
    let stats = source.stats();
    assert_eq!((stats.records, stats.decoded, stats.failed), (3, 2, 1));
    assert_eq!(
        stats.other_events, 1,
        "the sched_other sample is counted apart"
    );
    assert_eq!(stats.lost, 4);
    assert_eq!(stats.errors.get("unknown-protocol"), Some(&1));
}

#[test]
fn normal_mode_file_with_sample_ids() {
    let path = perf_file::temp_path("normal.data");
    perf_file::write_normal(
        &path,
        &[("user_events", EXAMPLE_FORMAT), ("sched", OTHER_FORMAT)],
        true,
        &records(true),
    );
    check(&path);
}

#[test]
fn normal_mode_file_without_sample_ids() {
    let path = perf_file::temp_path("no-id.data");
    perf_file::write_normal(
        &path,
        &[("user_events", EXAMPLE_FORMAT), ("sched", OTHER_FORMAT)],
        false,
        &records(false),
    );
    check(&path);
}

#[test]
fn pipe_mode_stream() {
    let path = perf_file::temp_path("pipe.data");
    perf_file::write_pipe(
        &path,
        &[("user_events", EXAMPLE_FORMAT), ("sched", OTHER_FORMAT)],
        &records(true),
    );
    check(&path);
}

/// perf writes each CPU's buffer into the file in turn: one writer that moved between CPUs
/// has its samples out of order in the file (CPU 0's first, then CPU 1's).
fn samples_of_two_cpus() -> Vec<Vec<u8>> {
    [(100, 0), (300, 0), (200, 1), (400, 1)]
        .into_iter()
        .map(|(time, cpu)| {
            let buffer = counter("ordered", 1, time as i64).encode_to_vec();
            let sample = Sample {
                cpu,
                ..otlp_sample(10, time, &buffer)
            };
            perf_file::sample_bytes(&sample, true)
        })
        .collect()
}

#[test]
fn samples_of_several_cpus_come_out_in_time_order() {
    let formats = [("user_events", EXAMPLE_FORMAT)];
    let normal = perf_file::temp_path("two-cpus.data");
    perf_file::write_normal(&normal, &formats, true, &samples_of_two_cpus());
    let pipe = perf_file::temp_path("two-cpus-pipe.data");
    perf_file::write_pipe(&pipe, &formats, &samples_of_two_cpus());
    for path in [normal, pipe] {
        let mut source = PerfDataSource::open(&path).unwrap();
        let mut seen = Vec::new();
        source
            .for_each(|r| seen.push((r.meta.time, r.meta.cpu)))
            .unwrap();
        assert_eq!(
            seen,
            [(100, 0), (200, 1), (300, 0), (400, 1)].map(|(t, c)| (Some(t), Some(c))),
            "{}",
            path.display()
        );
    }
}

#[test]
fn unusable_files_are_reported_with_the_path() {
    let path = perf_file::temp_path("garbage.data");
    std::fs::write(&path, b"this is not a perf.data file at all").unwrap();
    let err = PerfDataSource::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("garbage.data") && err.contains("perf record"),
        "{err}"
    );
    let err = PerfDataSource::open(perf_file::temp_path("missing.data")).unwrap_err();
    assert!(err.to_string().contains("missing.data"), "{err}");
}

#[test]
fn a_truncated_file_delivers_what_came_before() {
    let path = perf_file::temp_path("cut.data");
    perf_file::write_pipe(
        &path,
        &[("user_events", EXAMPLE_FORMAT)],
        &records(true)[..2],
    );
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 10);
    let cut = perf_file::temp_path("cut2.data");
    std::fs::write(&cut, bytes).unwrap();
    let mut source = PerfDataSource::open(&cut).unwrap();
    let mut seen = 0;
    let result = source.for_each(|_| seen += 1);
    assert_eq!(seen, 1);
    assert!(result.is_err());
}

/// Samples the container reader hands over but that are damaged: every one must show up in the
/// counts, as a failed record with its reason.
fn damaged_records(with_id: bool) -> Vec<Vec<u8>> {
    // Offset of the raw size field: header, [id], pid/tid, time, cpu/res.
    let size_at = if with_id { 40 } else { 32 };
    let mut one_byte = perf_file::sample_bytes(&otlp_sample(1, 10, b"x"), with_id);
    one_byte[size_at..size_at + 4].copy_from_slice(&1u32.to_ne_bytes());
    let mut oversized = perf_file::sample_bytes(&otlp_sample(2, 20, b"y"), with_id);
    oversized[size_at..size_at + 4].copy_from_slice(&4096u32.to_ne_bytes());
    let other = Sample {
        pid: 5,
        tid: 5,
        time: 30,
        cpu: 0,
        raw: 300u16.to_ne_bytes().repeat(6),
    };
    vec![
        perf_file::sample_bytes(
            &otlp_sample(10, 5, &counter("a", 1, 5).encode_to_vec()),
            with_id,
        ),
        one_byte,
        oversized,
        perf_file::sample_bytes(&other, with_id),
    ]
}

fn check_damaged(path: &std::path::Path) {
    let mut source = PerfDataSource::open(path).unwrap();
    let mut seen = Vec::new();
    source.for_each(|r| seen.push(r)).unwrap();
    let stats = source.stats();
    assert_eq!(
        (
            stats.records,
            stats.decoded,
            stats.failed,
            stats.other_events
        ),
        (3, 1, 2, 1),
        "{stats:?} {seen:?}"
    );
    assert_eq!(seen.len(), 3);
    let reasons: Vec<String> = seen[1..]
        .iter()
        .map(|r| r.result.as_ref().unwrap_err().to_string())
        .collect();
    assert!(reasons[0].contains("truncated"), "{reasons:?}");
    assert!(reasons[1].contains("4096"), "{reasons:?}");
}

#[test]
fn damaged_samples_are_counted_in_every_mode() {
    for with_id in [true, false] {
        let path = perf_file::temp_path(&format!("damaged-{with_id}.data"));
        perf_file::write_normal(
            &path,
            &[("user_events", EXAMPLE_FORMAT), ("sched", OTHER_FORMAT)],
            with_id,
            &damaged_records(with_id),
        );
        check_damaged(&path);
    }
    let path = perf_file::temp_path("damaged-pipe.data");
    perf_file::write_pipe(
        &path,
        &[("user_events", EXAMPLE_FORMAT), ("sched", OTHER_FORMAT)],
        &damaged_records(true),
    );
    check_damaged(&path);
}

/// A pipe-mode stream read from a FIFO cannot be checked ahead: a damaged format in it ends
/// the read with an error instead of a panic.
#[test]
fn a_damaged_format_in_a_pipe_stream_is_an_error() {
    let path = perf_file::temp_path("damaged-format-pipe.data");
    perf_file::write_pipe(
        &path,
        &[("user_events", EXAMPLE_FORMAT)],
        &records(true)[..1],
    );
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(9).position(|w| w == b"protocol;").unwrap();
    bytes[at + 2] = 0xff;
    let fifo = perf_file::temp_path("damaged-format.fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            // The reader may stop early: a broken pipe here is expected.
            let _ = std::fs::write(&fifo, bytes);
        })
    };
    let mut source = PerfDataSource::open(&fifo).unwrap();
    let err = source.for_each(|_| {}).unwrap_err().to_string();
    assert!(err.contains("event format"), "{err}");
    drop(source);
    writer.join().unwrap();
}
