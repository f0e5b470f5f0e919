//! Decode throughput: our payload and raw-record decoding into prost types next to plain
//! `prost::Message::decode` of the same buffers, in the same run.
//!
//! The buffers are W2-like requests (counters, gauges and histograms with 4 attributes per
//! point) cut into events of at most 4048 bytes, the size that reaches every listener.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message as _;
use ue_metrics_decode::format::EXAMPLE_FORMAT;
use ue_metrics_decode::payload::encode_payload;
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_decode::proto::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use ue_metrics_decode::proto::metrics::v1::{
    metric, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use ue_metrics_decode::proto::resource::v1::Resource;
use ue_metrics_decode::sample::encode_raw_sample;
use ue_metrics_decode::{decode_payload, RecordFormat, SampleDecoder};

const EVENT_BUDGET: usize = 4048;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn attrs(i: usize) -> Vec<KeyValue> {
    use any_value::Value as V;
    vec![
        kv("http.route", V::StringValue(format!("/api/v1/items/{i}"))),
        kv("shard", V::IntValue(i as i64)),
        kv("ok", V::BoolValue(i % 2 == 0)),
        kv("ratio", V::DoubleValue(i as f64 / 7.0)),
    ]
}

/// One metric with 20 attribute sets.
fn metric(kind: usize, index: usize) -> Metric {
    let time = 1_700_000_000_000_000_000u64;
    let number = |i: usize, value| NumberDataPoint {
        attributes: attrs(i),
        start_time_unix_nano: time,
        time_unix_nano: time + 10_000_000_000,
        value: Some(value),
        ..Default::default()
    };
    let data = match kind {
        0 => metric::Data::Sum(Sum {
            data_points: (0..20)
                .map(|i| number(i, number_data_point::Value::AsInt(i as i64 * 100)))
                .collect(),
            aggregation_temporality: 2,
            is_monotonic: true,
        }),
        1 => metric::Data::Gauge(Gauge {
            data_points: (0..20)
                .map(|i| number(i, number_data_point::Value::AsDouble(i as f64 * 1.5)))
                .collect(),
        }),
        _ => metric::Data::Histogram(Histogram {
            data_points: (0..20)
                .map(|i| HistogramDataPoint {
                    attributes: attrs(i),
                    start_time_unix_nano: time,
                    time_unix_nano: time + 10_000_000_000,
                    count: 100,
                    sum: Some(1234.5),
                    bucket_counts: (0..16).collect(),
                    explicit_bounds: vec![
                        0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0,
                        2500.0, 5000.0, 7500.0, 10000.0,
                    ],
                    min: Some(0.5),
                    max: Some(9000.0),
                    ..Default::default()
                })
                .collect(),
            aggregation_temporality: 2,
        }),
    };
    Metric {
        name: format!("workload.metric.{index}"),
        unit: "1".into(),
        description: "benchmark metric".into(),
        data: Some(data),
        metadata: Vec::new(),
    }
}

fn request_with(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    use any_value::Value as V;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", V::StringValue("bench".into())),
                    kv("service.version", V::StringValue("1.2.3".into())),
                    kv("host.name", V::StringValue("host-1".into())),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "bench".into(),
                    version: "0.1".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// W2-like: 20 counters, 20 gauges, 10 histograms; one point per metric per event is split
/// off until an event would exceed the budget.
fn event_buffers() -> Vec<Vec<u8>> {
    let metrics: Vec<Metric> = (0..50)
        .map(|i| {
            metric(
                if i < 20 {
                    0
                } else if i < 40 {
                    1
                } else {
                    2
                },
                i,
            )
        })
        .collect();
    let mut events = Vec::new();
    for m in metrics {
        // Split the metric's points into events that fit the budget.
        let points = match &m.data {
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            _ => 0,
        };
        let mut start = 0;
        while start < points {
            let mut end = points;
            loop {
                let part = slice_points(&m, start, end);
                let bytes = request_with(vec![part]).encode_to_vec();
                if bytes.len() <= EVENT_BUDGET || end == start + 1 {
                    events.push(bytes);
                    break;
                }
                end -= 1;
            }
            start = end;
        }
    }
    events
}

fn slice_points(m: &Metric, start: usize, end: usize) -> Metric {
    let mut part = m.clone();
    match &mut part.data {
        Some(metric::Data::Sum(s)) => s.data_points = s.data_points[start..end].to_vec(),
        Some(metric::Data::Gauge(g)) => g.data_points = g.data_points[start..end].to_vec(),
        Some(metric::Data::Histogram(h)) => h.data_points = h.data_points[start..end].to_vec(),
        _ => {}
    }
    part
}

fn bench(c: &mut Criterion) {
    let buffers = event_buffers();
    let payloads: Vec<Vec<u8>> = buffers.iter().map(|b| encode_payload(b)).collect();
    let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    let raws: Vec<Vec<u8>> = buffers
        .iter()
        .map(|b| encode_raw_sample(&format, 1535, 1, b).unwrap())
        .collect();
    let decoder = SampleDecoder::new(&format).unwrap();
    let bytes: usize = buffers.iter().map(Vec::len).sum();
    eprintln!(
        "{} events, {} OTLP bytes, {:.0} bytes/event",
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
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
