//! Helpers shared by the integration tests: an SDK pipeline we can collect from on demand,
//! payload parsing, and the reference decoding of the same data.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Stream,
    Temporality,
};
use opentelemetry_sdk::Resource;
use otlp_metrics_encode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use otlp_metrics_encode::proto::metrics::v1::Metric;
use prost::Message;

/// A ManualReader the test keeps a handle to after giving it to the provider.
#[derive(Debug, Clone)]
pub struct SharedReader(pub Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

impl SharedReader {
    pub fn collect_now(&self) -> ResourceMetrics {
        let mut rm = ResourceMetrics::default();
        self.0.collect(&mut rm).expect("collect");
        rm
    }
}

pub fn resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "exporter-tests"),
            KeyValue::new("host.name", "test-host"),
        ])
        .build()
}

/// A provider whose instruments named `*.expo` aggregate as base-2 exponential histograms.
pub fn pipeline(temporality: Temporality) -> (SdkMeterProvider, SharedReader) {
    let reader = SharedReader(Arc::new(
        ManualReader::builder()
            .with_temporality(temporality)
            .build(),
    ));
    let provider = SdkMeterProvider::builder()
        .with_resource(resource())
        .with_reader(reader.clone())
        .with_view(|i: &Instrument| {
            if i.name().ends_with(".expo") {
                Stream::builder()
                    .with_aggregation(Aggregation::Base2ExponentialHistogram {
                        max_size: 160,
                        max_scale: 20,
                        record_min_max: true,
                    })
                    .build()
                    .ok()
            } else {
                None
            }
        })
        .build();
    (provider, reader)
}

/// The three parts of one payload, checked against the layout.
pub struct Payload<'a> {
    pub protocol: u32,
    pub version: [u8; 8],
    pub buffer: &'a [u8],
}

/// Splits `u32 protocol, char[8] version, u32 rel_loc, buffer`; panics (test failure) when
/// the rel_loc does not describe exactly the rest of the payload.
pub fn parse_payload(payload: &[u8]) -> Payload<'_> {
    assert!(payload.len() >= 16, "payload of {} bytes", payload.len());
    let protocol = u32::from_ne_bytes(payload[0..4].try_into().unwrap());
    let version: [u8; 8] = payload[4..12].try_into().unwrap();
    let rel_loc = u32::from_ne_bytes(payload[12..16].try_into().unwrap());
    let (len, offset) = ((rel_loc >> 16) as usize, (rel_loc & 0xffff) as usize);
    assert_eq!(offset, 0, "rel_loc offset");
    assert_eq!(16 + len, payload.len(), "rel_loc length vs payload");
    Payload {
        protocol,
        version,
        buffer: &payload[16..],
    }
}

pub fn decode(buffer: &[u8]) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest::decode(buffer).expect("buffer is a valid request")
}

/// What opentelemetry-proto's transform makes of the same data, in our prost types.
pub fn reference(rm: &ResourceMetrics) -> ExportMetricsServiceRequest {
    let theirs =
        opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::from(rm);
    decode(&theirs.encode_to_vec())
}

/// Every metric of every request, merged by (scope name, metric name): the points of a metric
/// split over several events are put back together in order.
pub fn merge(requests: &[ExportMetricsServiceRequest]) -> BTreeMap<(String, String), Metric> {
    use otlp_metrics_encode::proto::metrics::v1::metric::Data;
    let mut out: BTreeMap<(String, String), Metric> = BTreeMap::new();
    for request in requests {
        for rm in &request.resource_metrics {
            for sm in &rm.scope_metrics {
                let scope = sm
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                for metric in &sm.metrics {
                    let key = (scope.clone(), metric.name.clone());
                    match out.get_mut(&key) {
                        None => {
                            out.insert(key, metric.clone());
                        }
                        Some(existing) => match (&mut existing.data, &metric.data) {
                            (Some(Data::Sum(a)), Some(Data::Sum(b))) => {
                                a.data_points.extend(b.data_points.iter().cloned())
                            }
                            (Some(Data::Gauge(a)), Some(Data::Gauge(b))) => {
                                a.data_points.extend(b.data_points.iter().cloned())
                            }
                            (Some(Data::Histogram(a)), Some(Data::Histogram(b))) => {
                                a.data_points.extend(b.data_points.iter().cloned())
                            }
                            (
                                Some(Data::ExponentialHistogram(a)),
                                Some(Data::ExponentialHistogram(b)),
                            ) => a.data_points.extend(b.data_points.iter().cloned()),
                            other => panic!("metric {:?} changed kind: {other:?}", metric.name),
                        },
                    }
                }
            }
        }
    }
    out
}

/// Number of data points in a merged view.
pub fn point_count(merged: &BTreeMap<(String, String), Metric>) -> usize {
    use otlp_metrics_encode::proto::metrics::v1::metric::Data;
    merged
        .values()
        .map(|m| match &m.data {
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(e)) => e.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum()
}

/// Sorts every metric's points by their attributes so two views compare regardless of the
/// order the SDK iterated its hash maps in.
pub fn normalize(merged: &mut BTreeMap<(String, String), Metric>) {
    use otlp_metrics_encode::proto::metrics::v1::metric::Data;
    fn key(attrs: &[otlp_metrics_encode::proto::common::v1::KeyValue]) -> String {
        format!("{attrs:?}")
    }
    for m in merged.values_mut() {
        match &mut m.data {
            Some(Data::Sum(s)) => s.data_points.sort_by_key(|p| key(&p.attributes)),
            Some(Data::Gauge(g)) => g.data_points.sort_by_key(|p| key(&p.attributes)),
            Some(Data::Histogram(h)) => h.data_points.sort_by_key(|p| key(&p.attributes)),
            Some(Data::ExponentialHistogram(e)) => {
                e.data_points.sort_by_key(|p| key(&p.attributes))
            }
            _ => {}
        }
    }
}

/// Records a known value in every kind of instrument.
pub fn record_every_kind(provider: &opentelemetry_sdk::metrics::SdkMeterProvider) {
    let meter = provider.meter("kinds");
    let a = [KeyValue::new("k", "a")];
    let b = [KeyValue::new("k", "b")];
    meter.u64_counter("c.u64").build().add(7, &a);
    meter.f64_counter("c.f64").build().add(2.5, &a);
    let up = meter.i64_up_down_counter("ud.i64").build();
    up.add(10, &a);
    up.add(-3, &a);
    meter.f64_up_down_counter("ud.f64").build().add(-1.5, &b);
    let h = meter.f64_histogram("h.f64").build();
    for v in [1.0, 7.0, 30.0] {
        h.record(v, &a);
    }
    meter
        .u64_histogram("h.u64")
        .with_boundaries(vec![10.0, 100.0])
        .build()
        .record(50, &b);
    let e = meter.f64_histogram("h.expo").build();
    for v in [1.0, 2.0, 4.0, 8.0] {
        e.record(v, &a);
    }
    meter.u64_gauge("g.u64").build().record(42, &a);
    meter.i64_gauge("g.i64").build().record(-42, &a);
    meter.f64_gauge("g.f64").build().record(0.25, &b);
    meter
        .u64_observable_counter("oc.u64")
        .with_callback(|o| o.observe(99, &[KeyValue::new("k", "a")]))
        .build();
    meter
        .i64_observable_up_down_counter("oud.i64")
        .with_callback(|o| o.observe(-5, &[KeyValue::new("k", "a")]))
        .build();
    meter
        .f64_observable_gauge("og.f64")
        .with_callback(|o| o.observe(3.75, &[KeyValue::new("k", "b")]))
        .build();
}

/// Records the names of the internal log events (`otel_warn!` etc.) of the current thread.
#[derive(Clone, Default)]
pub struct LogNames(Arc<std::sync::Mutex<Vec<String>>>);

impl LogNames {
    pub fn count(&self, name: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|n| *n == name).count()
    }
}

impl tracing::Subscriber for LogNames {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let name = event.metadata().name().to_owned();
        self.0.lock().unwrap().push(name);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
