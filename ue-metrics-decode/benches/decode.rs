//! Decode throughput: our payload and raw-record decoding into prost types next to plain
//! `prost::Message::decode` of the same buffers, in the same run.
//!
//! The buffers are the reference workload W2 (20 u64 counters, 20 f64 gauges, 10 histograms,
//! 20 attribute sets of 4 attributes each: 1000 points) as the encoder cuts it into events of
//! at most 4048 bytes, the size that reaches every listener.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use otlp_metrics_encode::workloads;
use prost::Message as _;
use ue_metrics_decode::payload::encode_payload;
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_decode::{decode_payload, Record, SampleMeta};

mod common;
use common::{agent_record, event_buffers, raw_samples};

fn bench(c: &mut Criterion) {
    let workload = workloads::w2();
    let buffers = event_buffers(&workload);
    let payloads: Vec<Vec<u8>> = buffers.iter().map(|b| encode_payload(b)).collect();
    let (raws, decoder) = raw_samples(&buffers);
    let bytes: usize = buffers.iter().map(Vec::len).sum();
    eprintln!(
        "{}: {} events, {} OTLP bytes, {:.0} bytes/event",
        workload.name,
        buffers.len(),
        bytes,
        bytes as f64 / buffers.len() as f64
    );

    for (group_name, throughput) in [
        ("decode_bytes", Throughput::Bytes(bytes as u64)),
        ("decode_records", Throughput::Elements(buffers.len() as u64)),
    ] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(throughput);
        group.measurement_time(Duration::from_secs(4));
        group.bench_function("prost_decode", |b| {
            b.iter(|| {
                for buf in &buffers {
                    std::hint::black_box(ExportMetricsServiceRequest::decode(&buf[..]).unwrap());
                }
            })
        });
        group.bench_function("decode_payload", |b| {
            b.iter(|| {
                for p in &payloads {
                    std::hint::black_box(decode_payload(p).unwrap().to_request().unwrap());
                }
            })
        });
        group.bench_function("decode_raw_sample", |b| {
            b.iter(|| {
                for raw in &raws {
                    std::hint::black_box(decoder.decode(raw).unwrap().to_request().unwrap());
                }
            })
        });
        // What every source does per record: the request plus a copy of the producer's bytes
        // (forwarded as they are).
        group.bench_function("record_from_raw_sample", |b| {
            b.iter(|| {
                for raw in &raws {
                    let payload = decoder.decode(raw).unwrap();
                    std::hint::black_box(Record::from_payload(SampleMeta::default(), Ok(payload)));
                }
            })
        });
        // The agent's forward path per record: the record as above, then `process.pid` added
        // to its request and spliced into the bytes it forwards (`live --forward`, default
        // enrichment on). Target: at most 1.3x `prost_decode`.
        group.bench_function("agent_forward_path", |b| {
            b.iter(|| {
                for raw in &raws {
                    std::hint::black_box(agent_record(&decoder, raw));
                }
            })
        });
        group.finish();
    }
}

/// The decoder's own work without the protobuf decode: validating the fixed fields and
/// locating the buffer (what it adds on top of prost), per record.
fn locate_only(c: &mut Criterion) {
    let buffers = event_buffers(&workloads::w2());
    let payloads: Vec<Vec<u8>> = buffers.iter().map(|b| encode_payload(b)).collect();
    let (raws, decoder) = raw_samples(&buffers);
    let mut group = c.benchmark_group("locate_only");
    group.throughput(Throughput::Elements(buffers.len() as u64));
    group.bench_function("decode_payload", |b| {
        b.iter(|| {
            for p in &payloads {
                std::hint::black_box(decode_payload(std::hint::black_box(p)).unwrap());
            }
        })
    });
    group.bench_function("decode_raw_sample", |b| {
        b.iter(|| {
            for raw in &raws {
                std::hint::black_box(decoder.decode(std::hint::black_box(raw)).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench, locate_only);
criterion_main!(benches);
