//! Inputs built with the real SDK (a `SdkMeterProvider` with a `ManualReader`): the reference
//! workloads W1, W2, W2e, W3 of the workspace's `DESIGN.md`, and [`Recipe`]s, a plain
//! description of resources, scopes, instruments and measurements that property tests and the
//! fuzz entry generate at random. Test and benchmark support, behind the `workloads` feature.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Stream,
    Temporality,
};
use opentelemetry_sdk::Resource;

/// A description of everything one collection should contain.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// Resource attributes (the SDK keeps the last value of a repeated key).
    pub resource: Vec<KeyValue>,
    /// Resource schema URL.
    pub resource_schema_url: Option<String>,
    /// Reader temporality (Cumulative or Delta).
    pub temporality: Temporality,
    /// One meter per scope.
    pub scopes: Vec<ScopeRecipe>,
}

/// One meter.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeRecipe {
    /// Scope name (made unique by the builder, which appends the scope's index).
    pub name: String,
    /// Scope version.
    pub version: Option<String>,
    /// Scope schema URL.
    pub schema_url: Option<String>,
    /// Scope attributes.
    pub attributes: Vec<KeyValue>,
    /// Instruments of this meter.
    pub instruments: Vec<InstrumentRecipe>,
}

/// One instrument and what is recorded on it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstrumentRecipe {
    /// Which SDK instrument, and so which OTLP kind and value type.
    pub kind: Kind,
    /// Instrument name: must satisfy the SDK's name rules; the builder appends an index.
    pub name: String,
    /// Description.
    pub description: String,
    /// Unit (ASCII, at most 63 bytes).
    pub unit: String,
    /// Measurements: a value (converted to the instrument's type; made non-negative for
    /// counters and u64 instruments) and its attributes.
    pub measurements: Vec<(f64, Vec<KeyValue>)>,
}

/// The instruments the recipes use: every data kind and value type the SDK produces.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Monotonic Sum of u64.
    U64Counter,
    /// Monotonic Sum of f64.
    F64Counter,
    /// Non-monotonic Sum of i64.
    I64UpDownCounter,
    /// Non-monotonic Sum of f64.
    F64UpDownCounter,
    /// Gauge of u64.
    U64Gauge,
    /// Gauge of i64.
    I64Gauge,
    /// Gauge of f64.
    F64Gauge,
    /// Histogram of u64 with these bounds (None: SDK default) and min/max recording.
    U64Histogram {
        /// Explicit bounds, or the SDK's default 15.
        bounds: Option<Vec<f64>>,
        /// Whether min and max are recorded.
        record_min_max: bool,
    },
    /// Histogram of f64.
    F64Histogram {
        /// Explicit bounds, or the SDK's default 15.
        bounds: Option<Vec<f64>>,
        /// Whether min and max are recorded.
        record_min_max: bool,
    },
    /// Base-2 exponential histogram of u64.
    U64ExponentialHistogram {
        /// Maximum number of buckets.
        max_size: u32,
        /// Maximum scale (-10..=20).
        max_scale: i8,
    },
    /// Base-2 exponential histogram of f64.
    F64ExponentialHistogram {
        /// Maximum number of buckets.
        max_size: u32,
        /// Maximum scale (-10..=20).
        max_scale: i8,
    },
}

/// A `ManualReader` the test keeps a handle to after giving it to the provider (clone it into
/// `SdkMeterProvider::builder().with_reader(..)`, then `collect` from the clone kept), for tests
/// that collect one pipeline several times.
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

/// Records `recipe` with a fresh SDK pipeline and collects it once.
pub fn collect(recipe: &Recipe) -> ResourceMetrics {
    let reader = SharedReader(Arc::new(
        ManualReader::builder()
            .with_temporality(recipe.temporality)
            .build(),
    ));
    let resource = match &recipe.resource_schema_url {
        Some(url) => Resource::builder_empty()
            .with_schema_url(recipe.resource.clone(), url.clone())
            .build(),
        None => Resource::builder_empty()
            .with_attributes(recipe.resource.clone())
            .build(),
    };
    // Aggregations that need a view, by instrument name.
    let mut views: HashMap<String, Aggregation> = HashMap::new();
    for (s, scope) in recipe.scopes.iter().enumerate() {
        for (i, inst) in scope.instruments.iter().enumerate() {
            let aggregation = match &inst.kind {
                Kind::U64Histogram {
                    bounds,
                    record_min_max: false,
                }
                | Kind::F64Histogram {
                    bounds,
                    record_min_max: false,
                } => Aggregation::ExplicitBucketHistogram {
                    boundaries: bounds.clone().unwrap_or_else(default_bounds),
                    record_min_max: false,
                },
                Kind::U64ExponentialHistogram {
                    max_size,
                    max_scale,
                }
                | Kind::F64ExponentialHistogram {
                    max_size,
                    max_scale,
                } => Aggregation::Base2ExponentialHistogram {
                    max_size: *max_size,
                    max_scale: *max_scale,
                    record_min_max: true,
                },
                _ => continue,
            };
            views.insert(instrument_name(inst, s, i), aggregation);
        }
    }
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader.clone())
        .with_view(move |instrument: &Instrument| {
            let aggregation = views.get(instrument.name())?.clone();
            Stream::builder().with_aggregation(aggregation).build().ok()
        })
        .build();

    for (s, scope) in recipe.scopes.iter().enumerate() {
        let mut builder = InstrumentationScope::builder(format!("{}{s}", scope.name))
            .with_attributes(scope.attributes.clone());
        if let Some(version) = &scope.version {
            builder = builder.with_version(version.clone());
        }
        if let Some(url) = &scope.schema_url {
            builder = builder.with_schema_url(url.clone());
        }
        let meter = provider.meter_with_scope(builder.build());
        for (i, inst) in scope.instruments.iter().enumerate() {
            let name = instrument_name(inst, s, i);
            let description = inst.description.clone();
            let unit = inst.unit.clone();
            let ms = &inst.measurements;
            macro_rules! record {
                ($builder:ident, $method:ident, $convert:expr) => {{
                    let instrument = meter
                        .$builder(name)
                        .with_description(description)
                        .with_unit(unit)
                        .build();
                    for (value, attributes) in ms {
                        instrument.$method($convert(*value), attributes);
                    }
                }};
            }
            match &inst.kind {
                Kind::U64Counter => record!(u64_counter, add, to_u64),
                Kind::F64Counter => record!(f64_counter, add, f64::abs),
                Kind::I64UpDownCounter => record!(i64_up_down_counter, add, to_i64),
                Kind::F64UpDownCounter => record!(f64_up_down_counter, add, std::convert::identity),
                Kind::U64Gauge => record!(u64_gauge, record, to_u64),
                Kind::I64Gauge => record!(i64_gauge, record, to_i64),
                Kind::F64Gauge => record!(f64_gauge, record, std::convert::identity),
                Kind::U64Histogram { bounds, .. } => {
                    let mut b = meter
                        .u64_histogram(name)
                        .with_description(description)
                        .with_unit(unit);
                    if let Some(bounds) = bounds {
                        b = b.with_boundaries(bounds.clone());
                    }
                    let h = b.build();
                    for (value, attributes) in ms {
                        h.record(to_u64(*value), attributes);
                    }
                }
                Kind::F64Histogram { bounds, .. } => {
                    let mut b = meter
                        .f64_histogram(name)
                        .with_description(description)
                        .with_unit(unit);
                    if let Some(bounds) = bounds {
                        b = b.with_boundaries(bounds.clone());
                    }
                    let h = b.build();
                    for (value, attributes) in ms {
                        h.record(*value, attributes);
                    }
                }
                Kind::U64ExponentialHistogram { .. } => record!(u64_histogram, record, to_u64),
                Kind::F64ExponentialHistogram { .. } => {
                    record!(f64_histogram, record, std::convert::identity)
                }
            }
        }
    }

    let mut rm = ResourceMetrics::default();
    // A collect error leaves `rm` empty; the callers compare against the same `rm`.
    let _ = reader.collect(&mut rm);
    drop(provider);
    rm
}

fn instrument_name(inst: &InstrumentRecipe, scope: usize, index: usize) -> String {
    format!("{}.{scope}.{index}", inst.name)
}

fn to_u64(value: f64) -> u64 {
    value.abs() as u64
}

fn to_i64(value: f64) -> i64 {
    value as i64
}

/// The SDK's default explicit bucket bounds (15 bounds).
pub fn default_bounds() -> Vec<f64> {
    vec![
        0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
        7500.0, 10000.0,
    ]
}

/// A reference workload: its name, the collected metrics and the number of data points.
#[derive(Debug)]
pub struct Workload {
    /// "W1", "W2", "W2e" or "W3".
    pub name: &'static str,
    /// What one collection returned.
    pub metrics: ResourceMetrics,
    /// Number of data points in `metrics`.
    pub points: usize,
}

/// The resource every workload uses: 5 attributes.
fn workload_resource() -> Vec<KeyValue> {
    vec![
        KeyValue::new("service.name", "checkout"),
        KeyValue::new("service.version", "1.42.0"),
        KeyValue::new(
            "service.instance.id",
            "6f9c1e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
        ),
        KeyValue::new("host.name", "web-frontend-07"),
        KeyValue::new("deployment.environment", "production"),
    ]
}

/// 30 resource attributes as a Kubernetes deployment sets them (pod, node, labels, image,
/// cloud and process detectors): about 5 KB encoded, more than [`crate::DEFAULT_MAX_REQUEST_BYTES`].
pub fn kubernetes_resource() -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("service.name", "checkout"),
        KeyValue::new("service.namespace", "shop-production-eu-west-1"),
        KeyValue::new(
            "service.instance.id",
            "6f9c1e2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
        ),
        KeyValue::new("k8s.namespace.name", "shop-production"),
        KeyValue::new("k8s.pod.name", "checkout-7d9f8b6c5d-x2k4p"),
        KeyValue::new("k8s.pod.uid", "0b3c0f6e-8e5d-4b7a-9c1f-2d4e6a8b0c2e"),
        KeyValue::new("k8s.deployment.name", "checkout"),
        KeyValue::new("k8s.replicaset.name", "checkout-7d9f8b6c5d"),
        KeyValue::new(
            "k8s.node.name",
            "ip-10-42-17-203.eu-west-1.compute.internal",
        ),
        KeyValue::new(
            "k8s.cluster.name",
            "prod-eu-west-1-general-purpose-cluster-03",
        ),
        KeyValue::new("container.name", "checkout-service"),
        KeyValue::new(
            "container.id",
            "4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0",
        ),
        KeyValue::new(
            "container.image.name",
            "registry.example.com/platform/shop/checkout-service",
        ),
        KeyValue::new("container.image.tag", "2026.11.28-build.4711-g3f2a1b9c"),
        KeyValue::new("cloud.provider", "aws"),
        KeyValue::new("cloud.platform", "aws_eks"),
        KeyValue::new("cloud.region", "eu-west-1"),
        KeyValue::new("cloud.availability_zone", "eu-west-1b"),
        KeyValue::new("cloud.account.id", "123456789012"),
        KeyValue::new("host.name", "ip-10-42-17-203.eu-west-1.compute.internal"),
        KeyValue::new("host.id", "i-0a1b2c3d4e5f67890"),
        KeyValue::new("host.type", "m6i.2xlarge"),
        KeyValue::new("os.type", "linux"),
        KeyValue::new("process.pid", 1),
        KeyValue::new("process.executable.name", "checkout-service"),
        KeyValue::new(
            "process.command_line",
            format!(
                "/usr/local/bin/checkout-service --config /etc/checkout/config.yaml {}",
                (0..12)
                    .map(|i| format!("--feature-flag=checkout.experiment-{i}=enabled"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
    ];
    // Pod labels and annotations that the k8s attributes processor copies.
    for (key, value) in [
        ("app.kubernetes.io/part-of", "shop"),
        ("app.kubernetes.io/managed-by", "argocd"),
        ("kubectl.kubernetes.io/last-applied-configuration", ""),
        ("deployment.kubernetes.io/revision", "4711"),
    ] {
        let value = if value.is_empty() {
            // An annotation carrying a JSON manifest excerpt, as kubectl writes it.
            format!(
                "{{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{{{}}}}}",
                (0..150)
                    .map(|i| format!("\"label-{i}\":\"value-{i}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        } else {
            value.to_owned()
        };
        attributes.push(KeyValue::new(format!("k8s.pod.annotation.{key}"), value));
    }
    attributes
}

/// `sets` attribute sets of 3 attributes (string, i64, bool).
fn attribute_sets_3(sets: usize) -> Vec<Vec<KeyValue>> {
    (0..sets)
        .map(|i| {
            vec![
                KeyValue::new("http.route", format!("/api/v1/items/{i}")),
                KeyValue::new("http.status_code", 200 + (i as i64 % 5)),
                KeyValue::new("cache.hit", i % 2 == 0),
            ]
        })
        .collect()
}

/// `sets` attribute sets of 4 attributes (string, i64, bool, f64).
fn attribute_sets_4(sets: usize) -> Vec<Vec<KeyValue>> {
    (0..sets)
        .map(|i| {
            vec![
                KeyValue::new("http.route", format!("/api/v1/items/{i}")),
                KeyValue::new("http.status_code", 200 + (i as i64 % 5)),
                KeyValue::new("cache.hit", i % 2 == 0),
                KeyValue::new("sample.ratio", 0.25 * (i % 4) as f64),
            ]
        })
        .collect()
}

fn counter(name: &str, sets: &[Vec<KeyValue>], kind: Kind) -> InstrumentRecipe {
    InstrumentRecipe {
        kind,
        name: name.to_owned(),
        description: "Number of requests handled".to_owned(),
        unit: "{request}".to_owned(),
        measurements: sets
            .iter()
            .enumerate()
            .map(|(i, attrs)| (1.0 + i as f64, attrs.clone()))
            .collect(),
    }
}

/// Histogram measurements: several values per attribute set, spread over the default bounds.
fn histogram(name: &str, sets: &[Vec<KeyValue>], kind: Kind) -> InstrumentRecipe {
    let mut measurements = Vec::new();
    for (i, attrs) in sets.iter().enumerate() {
        for v in [0.5, 3.0, 12.0, 40.0, 90.0, 300.0, 800.0, 4000.0] {
            measurements.push((v * (1.0 + i as f64 / 10.0), attrs.clone()));
        }
    }
    InstrumentRecipe {
        kind,
        name: name.to_owned(),
        description: "Request duration".to_owned(),
        unit: "ms".to_owned(),
        measurements,
    }
}

fn single_scope(name: &str, instruments: Vec<InstrumentRecipe>) -> Recipe {
    Recipe {
        resource: workload_resource(),
        resource_schema_url: None,
        temporality: Temporality::Cumulative,
        scopes: vec![ScopeRecipe {
            name: name.to_owned(),
            version: Some("0.1.0".to_owned()),
            schema_url: None,
            attributes: vec![],
            instruments,
        }],
    }
}

fn workload(name: &'static str, recipe: &Recipe) -> Workload {
    let metrics = collect(recipe);
    let points = count_points(&metrics);
    Workload {
        name,
        metrics,
        points,
    }
}

/// Number of data points in `rm`.
pub fn count_points(rm: &ResourceMetrics) -> usize {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    fn count<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    rm.scope_metrics()
        .flat_map(|s| s.metrics())
        .map(|m| match m.data() {
            AggregatedMetrics::F64(d) => count(d),
            AggregatedMetrics::U64(d) => count(d),
            AggregatedMetrics::I64(d) => count(d),
        })
        .sum()
}

/// W1 (small): 10 u64 counters x 10 attribute sets x 3 attributes = 100 points.
pub fn w1() -> Workload {
    let sets = attribute_sets_3(10);
    let instruments = (0..10)
        .map(|_| counter("w1.requests", &sets, Kind::U64Counter))
        .collect();
    workload("W1", &single_scope("w1", instruments))
}

fn w2_recipe(exponential: bool) -> Recipe {
    let sets = attribute_sets_4(20);
    let mut instruments = Vec::new();
    for _ in 0..20 {
        instruments.push(counter("w2.requests", &sets, Kind::U64Counter));
    }
    for _ in 0..20 {
        let mut gauge = counter("w2.queue.depth", &sets, Kind::F64Gauge);
        gauge.description = "Items waiting".to_owned();
        gauge.unit = "{item}".to_owned();
        instruments.push(gauge);
    }
    for _ in 0..10 {
        let kind = if exponential {
            Kind::F64ExponentialHistogram {
                max_size: 160,
                max_scale: 20,
            }
        } else {
            Kind::F64Histogram {
                bounds: None,
                record_min_max: true,
            }
        };
        instruments.push(histogram("w2.duration", &sets, kind));
    }
    single_scope("w2", instruments)
}

/// W2 (typical): 20 u64 counters + 20 f64 gauges + 10 f64 histograms (default 15 bounds),
/// 20 attribute sets of 4 attributes each = 1000 points.
pub fn w2() -> Workload {
    workload("W2", &w2_recipe(false))
}

/// W2e: W2 with base-2 exponential histograms (max_size 160, max_scale 20).
pub fn w2e() -> Workload {
    workload("W2e", &w2_recipe(true))
}

/// W3 (large): 1000 u64 counters x 10 attribute sets x 3 attributes = 10,000 points.
pub fn w3() -> Workload {
    let sets = attribute_sets_3(10);
    let instruments = (0..1000)
        .map(|_| counter("w3.requests", &sets, Kind::U64Counter))
        .collect();
    workload("W3", &single_scope("w3", instruments))
}

/// All four reference workloads.
pub fn all() -> Vec<Workload> {
    vec![w1(), w2(), w2e(), w3()]
}
