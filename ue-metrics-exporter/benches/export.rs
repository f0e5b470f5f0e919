//! `export()` cost per data point on the reference workloads, next to the per-point
//! reference path (opentelemetry-proto transform + prost, one event per point, as the
//! reference user_events exporter does), plus the cost of an export nobody listens to.
//!
//! `cargo bench -p ue-metrics-exporter --bench export`

#[path = "../tests/common/workloads.rs"]
mod workloads;

use std::future::Future;
use std::hint::black_box;
use std::io::IoSlice;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, Metric, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_sdk::metrics::data;
use prost::Message;
use ue_metrics_exporter::sink::{DiscardSink, NoListenerSink};
use ue_metrics_exporter::{ExportReport, MetricsExporter};

/// The metric with only its `i`-th point.
fn with_one_point(metric: &Metric, i: usize) -> Metric {
    let data = metric.data.as_ref().map(|d| match d {
        Data::Gauge(g) => {
            let mut g2 = g.clone();
            g2.data_points = vec![g.data_points[i].clone()];
            Data::Gauge(g2)
        }
        Data::Sum(s) => {
            let mut s2 = s.clone();
            s2.data_points = vec![s.data_points[i].clone()];
            Data::Sum(s2)
        }
        Data::Histogram(h) => {
            let mut h2 = h.clone();
            h2.data_points = vec![h.data_points[i].clone()];
            Data::Histogram(h2)
        }
        Data::ExponentialHistogram(e) => {
            let mut e2 = e.clone();
            e2.data_points = vec![e.data_points[i].clone()];
            Data::ExponentialHistogram(e2)
        }
        Data::Summary(s) => {
            let mut s2 = s.clone();
            s2.data_points = vec![s.data_points[i].clone()];
            Data::Summary(s2)
        }
    });
    Metric {
        name: metric.name.clone(),
        description: metric.description.clone(),
        unit: metric.unit.clone(),
        metadata: metric.metadata.clone(),
        data,
    }
}

fn points_of(metric: &Metric) -> usize {
    match &metric.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(e)) => e.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// The reference path: transform, then one request + one event per data point. Returns the
/// number of events.
fn reference_export(rm: &data::ResourceMetrics) -> usize {
    let request = ExportMetricsServiceRequest::from(rm);
    let mut events = 0;
    for resource_metrics in &request.resource_metrics {
        for scope_metrics in &resource_metrics.scope_metrics {
            for metric in &scope_metrics.metrics {
                for i in 0..points_of(metric) {
                    let one = ExportMetricsServiceRequest {
                        resource_metrics: vec![ResourceMetrics {
                            resource: resource_metrics.resource.clone(),
                            scope_metrics: vec![ScopeMetrics {
                                scope: scope_metrics.scope.clone(),
                                metrics: vec![with_one_point(metric, i)],
                                schema_url: scope_metrics.schema_url.clone(),
                            }],
                            schema_url: resource_metrics.schema_url.clone(),
                        }],
                    };
                    let bytes = one.encode_to_vec();
                    let header = [0u8; 16];
                    // What the reference exporter hands to writev, discarded here.
                    black_box([IoSlice::new(&header), IoSlice::new(&bytes)]);
                    events += 1;
                }
            }
        }
    }
    events
}

fn workloads() -> Vec<(&'static str, data::ResourceMetrics)> {
    vec![
        ("W1", workloads::w1()),
        ("W2", workloads::w2()),
        ("W3", workloads::w3()),
    ]
}

fn print_events_per_export() {
    for (name, rm) in workloads() {
        let reference = reference_export(&rm);
        for (budget, max) in [
            ("", ue_metrics_exporter::DEFAULT_MAX_EVENT_BYTES),
            ("_perf_budget", ue_metrics_exporter::MAX_EVENT_BYTES_LIMIT),
        ] {
            let exporter = MetricsExporter::builder()
                .with_max_event_bytes(max)
                .build_with_sink(DiscardSink)
                .unwrap();
            let Ok(ExportReport::Written {
                events,
                bytes,
                points,
            }) = exporter.export_metrics(&rm)
            else {
                panic!("export failed");
            };
            println!(
                "UE-MEASURE events_per_export_{name}{budget}={events} (per-point path: \
                 {reference}, ratio 1/{:.1}; {points} points, {bytes} bytes, {max}-byte events)",
                reference as f64 / events as f64
            );
        }
    }
}

fn bench_export(c: &mut Criterion) {
    let mut group = c.benchmark_group("export");
    for (name, rm) in workloads() {
        let points = workloads::points(&rm) as u64;
        group.throughput(Throughput::Elements(points));
        let exporter = MetricsExporter::builder()
            .build_with_sink(DiscardSink)
            .unwrap();
        group.bench_with_input(BenchmarkId::new("ue-metrics", name), &rm, |b, rm| {
            b.iter(|| exporter.export_metrics(black_box(rm)))
        });
        group.bench_with_input(
            BenchmarkId::new("per-point-reference", name),
            &rm,
            |b, rm| b.iter(|| reference_export(black_box(rm))),
        );
    }
    group.finish();
}

fn bench_disabled(c: &mut Criterion) {
    let rm = workloads::w2();
    let exporter = MetricsExporter::builder()
        .build_with_sink(NoListenerSink)
        .unwrap();
    c.bench_function("disabled/export_metrics", |b| {
        b.iter(|| exporter.export_metrics(black_box(&rm)))
    });
    // Through the SDK trait: builds and polls the ready future.
    let waker = std::task::Waker::noop();
    c.bench_function("disabled/PushMetricExporter::export", |b| {
        use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
        b.iter(|| {
            let mut cx = std::task::Context::from_waker(waker);
            let mut fut = std::pin::pin!(exporter.export(black_box(&rm)));
            fut.as_mut().poll(&mut cx)
        })
    });
}

criterion_group!(benches, bench_export, bench_disabled);

fn main() {
    print_events_per_export();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
