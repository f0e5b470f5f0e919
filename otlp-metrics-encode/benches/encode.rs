//! Encoding speed on the reference workloads W1, W2, W2e, W3 (see the workspace's DESIGN.md),
//! built with the real SDK. Three lines per workload, in one run:
//! - `reference`: opentelemetry-proto's transform + `prost::Message::encode_to_vec`;
//! - `ours_request`: [`MetricsEncoder::encode_request`] (mode a, one request);
//! - `ours_chunks`: [`MetricsEncoder::encode_chunks`] at [`DEFAULT_MAX_REQUEST_BYTES`] (mode b).
//!
//! Criterion's throughput is in points; after the run a table with ns/point, bytes and chunks
//! is printed from criterion's own estimates.
//!
//! `nice cargo bench -p otlp-metrics-encode -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::SystemTime;

use criterion::{Criterion, Throughput};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use otlp_metrics_encode::workloads::{self, Workload};
use otlp_metrics_encode::{MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};
use prost::Message;

const LINES: [&str; 3] = ["reference", "ours_request", "ours_chunks"];

/// Sizes of one workload's outputs, for the table.
struct Sizes {
    name: &'static str,
    points: usize,
    reference_bytes: usize,
    request_bytes: usize,
    chunk_bytes: usize,
    chunks: usize,
}

fn bench_workload(c: &mut Criterion, w: &Workload) -> Sizes {
    let mut encoder = MetricsEncoder::new();
    let reference_bytes = ExportMetricsServiceRequest::from(&w.metrics).encoded_len();
    let request_bytes = encoder.encode_request(&w.metrics).len();
    let summary = encoder
        .encode_chunks(&w.metrics, DEFAULT_MAX_REQUEST_BYTES, |_| {
            Ok::<(), Infallible>(())
        })
        .unwrap_or_else(|never| match never {});

    let mut group = c.benchmark_group(w.name);
    group.throughput(Throughput::Elements(w.points as u64));
    group.bench_function(LINES[0], |b| {
        b.iter(|| ExportMetricsServiceRequest::from(black_box(&w.metrics)).encode_to_vec())
    });
    group.bench_function(LINES[1], |b| {
        b.iter(|| encoder.encode_request(black_box(&w.metrics)).len())
    });
    group.bench_function(LINES[2], |b| {
        b.iter(|| {
            encoder
                .encode_chunks(black_box(&w.metrics), DEFAULT_MAX_REQUEST_BYTES, |chunk| {
                    black_box(chunk);
                    Ok::<(), Infallible>(())
                })
                .unwrap_or_else(|never| match never {})
        })
    });
    group.finish();

    Sizes {
        name: w.name,
        points: w.points,
        reference_bytes,
        request_bytes,
        chunk_bytes: summary.bytes,
        chunks: summary.chunks,
    }
}

/// Where criterion writes its estimates (same rules as criterion: CRITERION_HOME, then
/// CARGO_TARGET_DIR, then the workspace target directory).
fn criterion_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        dirs.push(PathBuf::from(home));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(target).join("criterion"));
    }
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"));
    dirs
}

/// Time per iteration in ns from criterion's `new/estimates.json`, if this run (started at
/// `since`) wrote one: the slope estimate criterion prints as "time", else the mean.
fn estimate_ns(group: &str, line: &str, since: SystemTime) -> Option<f64> {
    criterion_dirs().into_iter().find_map(|dir| {
        let path = dir.join(group).join(line).join("new/estimates.json");
        if std::fs::metadata(&path).ok()?.modified().ok()? < since {
            return None;
        }
        let text = std::fs::read_to_string(path).ok()?;
        let object = ["\"slope\":{", "\"mean\":{"]
            .iter()
            .find_map(|key| text.find(key))?;
        let rest = &text[object..];
        let value = &rest[rest.find("\"point_estimate\":")? + 17..];
        let end = value.find([',', '}'])?;
        value[..end].trim().parse().ok()
    })
}

fn print_table(rows: &[Sizes], since: SystemTime) {
    println!();
    println!("| workload | points | line | ns/point | x faster | bytes | chunks |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for row in rows {
        let per_point = |line| estimate_ns(row.name, line, since).map(|ns| ns / row.points as f64);
        let reference = per_point(LINES[0]);
        let cells = [
            (LINES[0], row.reference_bytes, 1),
            (LINES[1], row.request_bytes, 1),
            (LINES[2], row.chunk_bytes, row.chunks),
        ];
        for (line, bytes, chunks) in cells {
            let ns = per_point(line);
            let fmt = |v: Option<f64>, digits: usize| {
                v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
            };
            let speedup = match (reference, ns) {
                (Some(r), Some(n)) if n > 0.0 => Some(r / n),
                _ => None,
            };
            println!(
                "| {} | {} | {line} | {} | {} | {bytes} | {chunks} |",
                row.name,
                row.points,
                fmt(ns, 1),
                fmt(speedup, 1),
            );
        }
    }
}

fn main() {
    let started = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    let rows: Vec<Sizes> = workloads::all()
        .iter()
        .map(|w| bench_workload(&mut criterion, w))
        .collect();
    criterion.final_summary();
    print_table(&rows, started);
}
