//! The Prometheus endpoint's costs: accumulating the reference workload W2 (1000 points; as the
//! encoder cuts it into events) into the series state, next to a bare prost decode of the same
//! bytes, and rendering one scrape of 100,000 series.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use otlp_metrics_encode::workloads;
use prost::Message as _;
use ue_metrics_decode::prometheus::{render, PrometheusOptions, PrometheusState};
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_decode::proto::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use ue_metrics_decode::proto::metrics::v1::{
    metric, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use ue_metrics_decode::proto::resource::v1::Resource;

mod common;
use common::{agent_record, event_buffers, raw_samples};

fn string_kv(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// One request with `metrics` metrics of `sets` attribute sets each: 45% counters, 45% gauges,
/// 10% histograms with the SDK's 15 default bounds.
fn large_request(metrics: usize, sets: usize) -> ExportMetricsServiceRequest {
    let attributes = |i: usize| {
        vec![
            string_kv("http.route", format!("/api/v1/items/{i}")),
            string_kv("http.method", "GET".into()),
            string_kv("http.status_code", (200 + i % 5).to_string()),
            string_kv("cache.hit", (i % 2 == 0).to_string()),
        ]
    };
    let number = |i: usize| NumberDataPoint {
        attributes: attributes(i),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        value: Some(number_data_point::Value::AsInt(i as i64)),
        ..Default::default()
    };
    let bounds = workloads::default_bounds();
    let metrics = (0..metrics)
        .map(|m| {
            let data = match m % 20 {
                0..=8 => metric::Data::Sum(Sum {
                    data_points: (0..sets).map(number).collect(),
                    aggregation_temporality: 2,
                    is_monotonic: true,
                }),
                9..=17 => metric::Data::Gauge(Gauge {
                    data_points: (0..sets).map(number).collect(),
                }),
                _ => metric::Data::Histogram(Histogram {
                    data_points: (0..sets)
                        .map(|i| HistogramDataPoint {
                            attributes: attributes(i),
                            start_time_unix_nano: 1,
                            time_unix_nano: 2,
                            count: 16,
                            sum: Some(1234.5),
                            bucket_counts: vec![1; bounds.len() + 1],
                            explicit_bounds: bounds.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    aggregation_temporality: 2,
                }),
            };
            Metric {
                name: format!("app.metric.{m}"),
                description: "A metric".into(),
                unit: "ms".into(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    string_kv("service.name", "checkout".into()),
                    string_kv("service.instance.id", "6f9c1e2a-3b4d-4e5f".into()),
                    string_kv("host.name", "web-frontend-07".into()),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "checkout".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Resident memory in bytes (Linux `/proc/self/statm`), 0 elsewhere.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// CPU time (user + system) this thread used so far, from `/proc/thread-self/stat` (clock
/// ticks of 10 ms): on a loaded machine, wall-clock figures stretch with the load; this does not.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Prints the CPU time per call of `f`, over enough calls for at least 2 s of CPU.
fn report_cpu_time(what: &str, elements: u64, mut f: impl FnMut()) {
    let Some(start) = thread_cpu_time() else {
        return;
    };
    let mut calls = 0u64;
    let mut used = Duration::ZERO;
    while used < Duration::from_secs(2) {
        f();
        calls += 1;
        used = thread_cpu_time().unwrap_or(start + Duration::from_secs(3)) - start;
    }
    let per_call = used / calls as u32;
    eprintln!(
        "cpu time: {what}: {:.3} ms per call, {:.2} M elements per CPU second ({calls} calls)",
        per_call.as_secs_f64() * 1e3,
        elements as f64 / per_call.as_secs_f64() / 1e6
    );
}

fn bench(c: &mut Criterion) {
    let workload = workloads::w2();
    let buffers = event_buffers(&workload);
    let requests: Vec<ExportMetricsServiceRequest> = buffers
        .iter()
        .map(|b| ExportMetricsServiceRequest::decode(&b[..]).unwrap())
        .collect();
    let points = workload.points as u64;
    eprintln!(
        "{}: {} events, {points} points",
        workload.name,
        buffers.len()
    );

    let mut group = c.benchmark_group("prometheus_w2_points");
    group.throughput(Throughput::Elements(points));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("prost_decode", |b| {
        b.iter(|| {
            for buf in &buffers {
                std::hint::black_box(ExportMetricsServiceRequest::decode(&buf[..]).unwrap());
            }
        })
    });
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    group.bench_function("accumulate", |b| {
        b.iter(|| {
            for request in &requests {
                state.add_request(request, now);
            }
        })
    });
    group.bench_function("decode_and_accumulate", |b| {
        b.iter(|| {
            for buf in &buffers {
                let request = ExportMetricsServiceRequest::decode(&buf[..]).unwrap();
                state.add_request(&request, now);
            }
        })
    });
    // The whole per-record path of `live --prometheus`: record from the raw sample, enriched
    // with the writer's pid, accumulated.
    let (raws, decoder) = raw_samples(&buffers);
    group.bench_function("record_enrich_accumulate", |b| {
        b.iter(|| {
            for raw in &raws {
                if let Ok(request) = &agent_record(&decoder, raw).result {
                    state.add_request(request, now);
                }
            }
        })
    });
    group.finish();
    report_cpu_time("W2 prost_decode", points, || {
        for buf in &buffers {
            std::hint::black_box(ExportMetricsServiceRequest::decode(&buf[..]).unwrap());
        }
    });
    report_cpu_time("W2 accumulate", points, || {
        for request in &requests {
            state.add_request(request, now);
        }
    });
    report_cpu_time("W2 record_enrich_accumulate", points, || {
        for raw in &raws {
            if let Ok(request) = &agent_record(&decoder, raw).result {
                state.add_request(request, now);
            }
        }
    });

    // 100,000 series: 200 metrics x 500 attribute sets.
    let request = large_request(200, 500);
    let before = rss_bytes();
    let mut state = PrometheusState::new(PrometheusOptions::default());
    state.add_request(&request, Instant::now());
    let after = rss_bytes();
    let mut text = String::new();
    render(&state, &mut text);
    eprintln!(
        "render: {} series, {} lines, {} bytes per scrape; state RSS growth {:.1} MiB",
        state.series(),
        text.lines().count(),
        text.len(),
        after.saturating_sub(before) as f64 / (1 << 20) as f64
    );
    let mut group = c.benchmark_group("prometheus_scrape");
    group.throughput(Throughput::Elements(state.series() as u64));
    group.sample_size(20);
    // As the endpoint does: one buffer reused from scrape to scrape.
    let mut out = String::with_capacity(text.len());
    group.bench_function("render_100k_series", |b| {
        b.iter(|| {
            out.clear();
            render(&state, &mut out);
        })
    });
    group.finish();
    report_cpu_time("render 100k series", state.series() as u64, || {
        out.clear();
        render(&state, &mut out);
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
