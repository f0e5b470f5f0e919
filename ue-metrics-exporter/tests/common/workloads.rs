//! The reference workloads of DESIGN.md (W1, W2, W3), produced by the real SDK with a
//! ManualReader and cumulative temporality. Shared by the allocation test and the benchmark.
#![allow(dead_code)] // each user needs a different subset

use std::sync::Arc;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;

fn resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "workload"),
            KeyValue::new("service.version", "1.2.3"),
            KeyValue::new("host.name", "bench-host-01"),
            KeyValue::new("deployment.environment", "production"),
            KeyValue::new("process.pid", 4242_i64),
        ])
        .build()
}

/// Records through `record`, then collects once.
fn collect(record: impl FnOnce(&SdkMeterProvider)) -> ResourceMetrics {
    #[derive(Debug, Clone)]
    struct Shared(Arc<ManualReader>);
    impl MetricReader for Shared {
        fn register_pipeline(&self, p: std::sync::Weak<opentelemetry_sdk::metrics::Pipeline>) {
            self.0.register_pipeline(p)
        }
        fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.collect(rm)
        }
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.force_flush()
        }
        fn shutdown_with_timeout(
            &self,
            t: std::time::Duration,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.shutdown_with_timeout(t)
        }
        fn temporality(
            &self,
            kind: opentelemetry_sdk::metrics::InstrumentKind,
        ) -> opentelemetry_sdk::metrics::Temporality {
            self.0.temporality(kind)
        }
    }
    let reader = Shared(Arc::new(ManualReader::builder().build()));
    let provider = SdkMeterProvider::builder()
        .with_resource(resource())
        .with_reader(reader.clone())
        .build();
    record(&provider);
    let mut rm = ResourceMetrics::default();
    reader.0.collect(&mut rm).expect("collect");
    rm
}

/// W1: 10 u64 counters x 10 attribute sets of 3 attributes (100 points).
pub fn w1() -> ResourceMetrics {
    collect(|p| {
        let meter = p.meter("w1");
        for i in 0..10 {
            let c = meter.u64_counter(format!("w1.counter.{i}")).build();
            for j in 0..10_i64 {
                c.add(
                    (j + 1) as u64,
                    &[
                        KeyValue::new("region", format!("region-{j}")),
                        KeyValue::new("shard", j),
                        KeyValue::new("healthy", j % 2 == 0),
                    ],
                );
            }
        }
    })
}

fn attrs4(j: i64) -> [KeyValue; 4] {
    [
        KeyValue::new("endpoint", format!("/api/v1/resource/{j}")),
        KeyValue::new("status", 200 + j),
        KeyValue::new("cached", j % 3 == 0),
        KeyValue::new("weight", j as f64 * 0.5),
    ]
}

/// W2: 20 u64 counters + 20 f64 gauges + 10 f64 histograms (default bounds), each with 20
/// attribute sets of 4 attributes (1000 points).
pub fn w2() -> ResourceMetrics {
    collect(|p| {
        let meter = p.meter("w2");
        for i in 0..20 {
            let c = meter.u64_counter(format!("w2.counter.{i}")).build();
            let g = meter.f64_gauge(format!("w2.gauge.{i}")).build();
            for j in 0..20 {
                c.add(j as u64 + 1, &attrs4(j));
                g.record(j as f64 * 1.25, &attrs4(j));
            }
        }
        for i in 0..10 {
            let h = meter.f64_histogram(format!("w2.histogram.{i}")).build();
            for j in 0..20 {
                for v in [0.5, 3.0, 12.0, 80.0, 400.0] {
                    h.record(v * (j + 1) as f64, &attrs4(j));
                }
            }
        }
    })
}

/// W3: 1000 u64 counters x 10 attribute sets x 3 attributes (10,000 points).
pub fn w3() -> ResourceMetrics {
    collect(|p| {
        let meter = p.meter("w3");
        for i in 0..1000 {
            let c = meter.u64_counter(format!("w3.counter.{i}")).build();
            for j in 0..10_i64 {
                c.add(
                    (i + 1) as u64,
                    &[
                        KeyValue::new("region", format!("region-{j}")),
                        KeyValue::new("shard", j),
                        KeyValue::new("healthy", j % 2 == 0),
                    ],
                );
            }
        }
    })
}

/// Data points in a collection.
pub fn points(rm: &ResourceMetrics) -> usize {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics as A, MetricData as D};
    fn n<T>(d: &D<T>) -> usize {
        match d {
            D::Gauge(g) => g.data_points().count(),
            D::Sum(s) => s.data_points().count(),
            D::Histogram(h) => h.data_points().count(),
            D::ExponentialHistogram(e) => e.data_points().count(),
        }
    }
    rm.scope_metrics()
        .flat_map(|s| s.metrics())
        .map(|m| match m.data() {
            A::F64(d) => n(d),
            A::U64(d) => n(d),
            A::I64(d) => n(d),
        })
        .sum()
}
