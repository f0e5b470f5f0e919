//! Round-trip and chunking checks shared by the unit tests, the property tests and the fuzz
//! entry [`fuzz_one`]. Test support behind the `workloads` feature: these functions panic with
//! a description when an invariant does not hold.

use std::convert::Infallible;

use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::Temporality;
use prost::Message;

use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::metrics::v1::{
    metric::Data, ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics as PbResourceMetrics, ScopeMetrics, SummaryDataPoint,
};
use crate::workloads::{collect, InstrumentRecipe, Kind, Recipe, ScopeRecipe};
use crate::{ChunkSummary, MetricsEncoder, OversizeCause};

pub use crate::wire::moves::Moves;

/// Runs `f` and returns what it returned with the bytes the encoder moved inside its buffers
/// meanwhile (on this thread).
pub fn count_moves<T>(f: impl FnOnce() -> T) -> (T, Moves) {
    crate::wire::moves::take();
    let result = f();
    (result, crate::wire::moves::take())
}

/// Decodes one request, panicking with the error if it is not a valid request.
pub fn decode(bytes: &[u8]) -> ExportMetricsServiceRequest {
    match ExportMetricsServiceRequest::decode(bytes) {
        Ok(request) => request,
        Err(e) => panic!(
            "not a valid ExportMetricsServiceRequest ({} bytes): {e}",
            bytes.len()
        ),
    }
}

/// Decodes `bytes` and checks they are the canonical encoding of what they decode to (prost
/// re-encodes them byte for byte).
pub fn decode_canonical(bytes: &[u8]) -> ExportMetricsServiceRequest {
    let request = decode(bytes);
    assert!(
        request.encode_to_vec() == bytes,
        "the encoding is not canonical: prost re-encodes the decoded request differently"
    );
    request
}

/// Mode (a) then decode: the one round-trip helper.
pub fn roundtrip(
    encoder: &mut MetricsEncoder,
    rm: &ResourceMetrics,
) -> ExportMetricsServiceRequest {
    decode_canonical(encoder.encode_request(rm))
}

/// One data point of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Point {
    /// Gauge or Sum point.
    Number(NumberDataPoint),
    /// Histogram point.
    Histogram(HistogramDataPoint),
    /// Exponential histogram point.
    Exponential(ExponentialHistogramDataPoint),
    /// Summary point (never written by the encoder).
    Summary(SummaryDataPoint),
}

/// One data point with everything that identifies it: the unit that chunking must deliver
/// exactly once. Scopes without metrics and metrics without points are items too.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The ResourceMetrics without its scopes.
    pub resource: PbResourceMetrics,
    /// The ScopeMetrics without its metrics.
    pub scope: ScopeMetrics,
    /// The Metric with no data points (None for an empty scope).
    pub metric: Option<Metric>,
    /// The point (None for an empty metric or scope).
    pub point: Option<Point>,
}

/// Takes the points out of `metric`, leaving its identity (kind, temporality, monotonic).
fn take_points(metric: &mut Metric) -> Vec<Point> {
    match metric.data.as_mut() {
        Some(Data::Gauge(g)) => g.data_points.drain(..).map(Point::Number).collect(),
        Some(Data::Sum(s)) => s.data_points.drain(..).map(Point::Number).collect(),
        Some(Data::Histogram(h)) => h.data_points.drain(..).map(Point::Histogram).collect(),
        Some(Data::ExponentialHistogram(h)) => {
            h.data_points.drain(..).map(Point::Exponential).collect()
        }
        Some(Data::Summary(s)) => s.data_points.drain(..).map(Point::Summary).collect(),
        None => Vec::new(),
    }
}

fn push_point(metric: &mut Metric, point: Point) {
    match (metric.data.as_mut(), point) {
        (Some(Data::Gauge(g)), Point::Number(p)) => g.data_points.push(p),
        (Some(Data::Sum(s)), Point::Number(p)) => s.data_points.push(p),
        (Some(Data::Histogram(h)), Point::Histogram(p)) => h.data_points.push(p),
        (Some(Data::ExponentialHistogram(h)), Point::Exponential(p)) => h.data_points.push(p),
        (Some(Data::Summary(s)), Point::Summary(p)) => s.data_points.push(p),
        (data, point) => panic!("point {point:?} does not belong in {data:?}"),
    }
}

/// The items of a request, in order.
pub fn flatten(request: ExportMetricsServiceRequest) -> Vec<Item> {
    let mut items = Vec::new();
    for mut rm in request.resource_metrics {
        let scopes = std::mem::take(&mut rm.scope_metrics);
        for mut sm in scopes {
            let metrics = std::mem::take(&mut sm.metrics);
            if metrics.is_empty() {
                items.push(Item {
                    resource: rm.clone(),
                    scope: sm.clone(),
                    metric: None,
                    point: None,
                });
            }
            for mut metric in metrics {
                let points = take_points(&mut metric);
                if points.is_empty() {
                    items.push(Item {
                        resource: rm.clone(),
                        scope: sm.clone(),
                        metric: Some(metric.clone()),
                        point: None,
                    });
                }
                for point in points {
                    items.push(Item {
                        resource: rm.clone(),
                        scope: sm.clone(),
                        metric: Some(metric.clone()),
                        point: Some(point),
                    });
                }
            }
        }
    }
    items
}

/// The request made of `items`, grouping consecutive items of equal resource, scope and metric
/// (as the encoder groups consecutive points).
pub fn unflatten(items: &[Item]) -> ExportMetricsServiceRequest {
    let mut request = ExportMetricsServiceRequest::default();
    let mut last: Option<&Item> = None;
    for item in items {
        let same_resource = last.is_some_and(|l| l.resource == item.resource);
        let same_scope = same_resource && last.is_some_and(|l| l.scope == item.scope);
        let same_metric =
            same_scope && item.metric.is_some() && last.is_some_and(|l| l.metric == item.metric);
        if !same_resource {
            request.resource_metrics.push(item.resource.clone());
        }
        let rm = request.resource_metrics.last_mut().expect("pushed above");
        if !same_scope {
            rm.scope_metrics.push(item.scope.clone());
        }
        let sm = rm.scope_metrics.last_mut().expect("pushed above");
        if let Some(metric) = &item.metric {
            if !same_metric {
                sm.metrics.push(metric.clone());
            }
            if let Some(point) = &item.point {
                push_point(sm.metrics.last_mut().expect("pushed above"), point.clone());
            }
        }
        last = Some(item);
    }
    request
}

/// Size of the smallest request carrying `item`.
pub fn alone_size(item: &Item) -> usize {
    unflatten(std::slice::from_ref(item)).encoded_len()
}

/// Why `item` does not fit in `limit` bytes, measured with prost: the smallest part of its
/// identity (resource; resource and scope; those and the metric) that alone is over the limit,
/// else the point itself.
pub fn oversize_cause(item: &Item, limit: usize) -> OversizeCause {
    let resource_only = ExportMetricsServiceRequest {
        resource_metrics: vec![item.resource.clone()],
    }
    .encoded_len();
    if resource_only > limit {
        return OversizeCause::Resource {
            bytes: resource_only,
        };
    }
    let identity = |metric: Option<Metric>| Item {
        metric,
        point: None,
        ..item.clone()
    };
    let with_scope = alone_size(&identity(None));
    if with_scope > limit {
        let scope = item.scope.scope.as_ref().map(|s| s.name.clone());
        return OversizeCause::Scope {
            scope: scope.unwrap_or_default(),
            bytes: with_scope,
        };
    }
    if item.metric.is_some() {
        let with_metric = alone_size(&identity(item.metric.clone()));
        if with_metric > limit {
            return OversizeCause::Metric { bytes: with_metric };
        }
    }
    OversizeCause::DataPoint
}

/// What [`check_chunks`] saw.
#[derive(Debug, Clone)]
pub struct ChunkCheck {
    /// The summary `encode_chunks` returned.
    pub summary: ChunkSummary,
    /// Every chunk handed to the sink.
    pub chunks: Vec<Vec<u8>>,
    /// The items of the mode (a) request.
    pub items: usize,
}

/// Runs mode (a) and mode (b) with `limit` on `rm` and checks every chunking invariant: each
/// chunk is a canonical, independently decodable request of at most `limit` bytes with its
/// resource, scope and metric identity; the chunks' items, in order, are the request's items
/// minus exactly the reported oversized ones (nothing lost, nothing twice); each chunk is full
/// (the next chunk's first item would not have fit); the summary adds up.
pub fn check_chunks(
    encoder: &mut MetricsEncoder,
    rm: &ResourceMetrics,
    limit: usize,
) -> ChunkCheck {
    let expected = flatten(roundtrip(encoder, rm));
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let summary = encoder
        .encode_chunks(rm, limit, |chunk| {
            chunks.push(chunk.to_vec());
            Ok::<(), Infallible>(())
        })
        .unwrap_or_else(|never| match never {});

    let mut per_chunk: Vec<Vec<Item>> = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        assert!(
            chunk.len() <= limit,
            "chunk {i} has {} bytes, limit {limit}",
            chunk.len()
        );
        let request = decode_canonical(chunk);
        assert_eq!(
            request.resource_metrics.len(),
            1,
            "chunk {i}: one ResourceMetrics"
        );
        let rm = &request.resource_metrics[0];
        assert!(rm.resource.is_some(), "chunk {i} carries its resource");
        for sm in &rm.scope_metrics {
            assert!(sm.scope.is_some(), "chunk {i} carries its scope");
            for m in &sm.metrics {
                assert!(
                    m.data.is_some(),
                    "chunk {i}: metric {} carries its kind",
                    m.name
                );
            }
        }
        let items = flatten(request);
        assert!(!items.is_empty(), "chunk {i} is empty");
        per_chunk.push(items);
    }
    for (i, pair) in per_chunk.windows(2).enumerate() {
        let mut grown = pair[0].clone();
        grown.push(pair[1][0].clone());
        let size = unflatten(&grown).encoded_len();
        assert!(
            size > limit,
            "chunk {i} is not full: the next item fits ({size} <= {limit})"
        );
    }

    let got: Vec<&Item> = per_chunk.iter().flatten().collect();
    let mut removed: Vec<&Item> = Vec::new();
    let mut next = 0;
    for item in &expected {
        if next < got.len() && *got[next] == *item {
            next += 1;
        } else {
            removed.push(item);
        }
    }
    assert_eq!(
        next,
        got.len(),
        "the chunks hold items that are not in the request, twice, or out of order"
    );
    assert_eq!(
        removed.len(),
        summary.oversized_points,
        "reported oversized count"
    );
    for item in &removed {
        let size = alone_size(item);
        assert!(
            size > limit,
            "an item that fits alone ({size} <= {limit}) was not delivered"
        );
    }
    match (removed.first(), &summary.first_oversized) {
        (None, None) => {}
        (Some(item), Some(reported)) => {
            let name = item.metric.as_ref().map(|m| m.name.as_str()).unwrap_or("");
            assert_eq!(reported.metric, name, "first oversized metric name");
            assert_eq!(
                reported.point_bytes,
                alone_size(item),
                "first oversized size"
            );
            assert_eq!(reported.limit, limit);
            assert_eq!(
                reported.cause,
                oversize_cause(item, limit),
                "oversize cause"
            );
        }
        (removed, reported) => {
            panic!("first oversized: removed {removed:?}, reported {reported:?}")
        }
    }
    assert_eq!(summary.chunks, chunks.len(), "summary.chunks");
    assert_eq!(
        summary.bytes,
        chunks.iter().map(Vec::len).sum::<usize>(),
        "summary.bytes"
    );
    let points = got.iter().filter(|item| item.point.is_some()).count();
    assert_eq!(summary.points, points, "summary.points");

    ChunkCheck {
        summary,
        chunks,
        items: expected.len(),
    }
}

/// Reads bytes as a stream of small decisions; zeros once exhausted.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        match self.0.split_first() {
            Some((first, rest)) => {
                self.0 = rest;
                *first
            }
            None => 0,
        }
    }
    fn below(&mut self, n: u8) -> usize {
        usize::from(self.next() % n)
    }
    fn string(&mut self, max: u8) -> String {
        let len = self.below(max.max(1));
        (0..len)
            .map(|i| char::from(b'a' + ((i as u8).wrapping_add(self.next()) % 26)))
            .collect()
    }
    fn value(&mut self) -> Value {
        match self.below(10) {
            0 => Value::Bool(self.next() % 2 == 0),
            1 => Value::I64(i64::from(self.next() as i8) * 1_000_003),
            2 => Value::F64(f64::from(self.next()) / 3.0 - 40.0),
            3 => Value::Array(Array::Bool(
                (0..self.below(4)).map(|i| i % 2 == 0).collect(),
            )),
            4 => Value::Array(Array::I64(
                (0..self.below(4)).map(|i| -(i as i64)).collect(),
            )),
            5 => Value::Array(Array::F64(
                (0..self.below(4)).map(|i| i as f64 * 0.5).collect(),
            )),
            6 => {
                let n = self.below(4);
                Value::Array(Array::String(
                    (0..n).map(|_| StringValue::from(self.string(12))).collect(),
                ))
            }
            // Long values make oversized points at small limits.
            7 => Value::String(("x".repeat(50 * self.below(20))).into()),
            _ => Value::String(self.string(24).into()),
        }
    }
    fn attributes(&mut self, max: u8) -> Vec<KeyValue> {
        (0..self.below(max))
            .map(|i| KeyValue::new(format!("k{i}{}", self.string(6)), self.value()))
            .collect()
    }
}

/// Builds a [`Recipe`] from arbitrary bytes (every input gives a valid recipe).
pub fn recipe_from_bytes(data: &[u8]) -> Recipe {
    let mut b = Bytes(data);
    let resource = b.attributes(6);
    let resource_schema_url =
        (b.next() % 2 == 1).then(|| "https://opentelemetry.io/schemas/1.26.0".to_owned());
    let temporality = if b.next() % 2 == 0 {
        Temporality::Cumulative
    } else {
        Temporality::Delta
    };
    let scopes = (0..1 + b.below(3))
        .map(|_| ScopeRecipe {
            name: format!("scope{}", b.string(8)),
            version: (b.next() % 2 == 0).then(|| "1.0.0".to_owned()),
            schema_url: (b.next() % 3 == 0)
                .then(|| "https://opentelemetry.io/schemas/1.24.0".to_owned()),
            attributes: b.attributes(3),
            instruments: (0..1 + b.below(4))
                .map(|_| {
                    let kind = match b.below(11) {
                        0 => Kind::U64Counter,
                        1 => Kind::F64Counter,
                        2 => Kind::I64UpDownCounter,
                        3 => Kind::F64UpDownCounter,
                        4 => Kind::U64Gauge,
                        5 => Kind::I64Gauge,
                        6 => Kind::F64Gauge,
                        7 => Kind::U64Histogram {
                            bounds: (b.next() % 2 == 0).then(|| vec![1.0, 10.0, 100.0]),
                            record_min_max: b.next() % 2 == 0,
                        },
                        8 => Kind::F64Histogram {
                            bounds: None,
                            record_min_max: b.next() % 2 == 0,
                        },
                        9 => Kind::U64ExponentialHistogram {
                            max_size: 4 + b.below(160) as u32,
                            max_scale: 20 - b.below(30) as i8,
                        },
                        _ => Kind::F64ExponentialHistogram {
                            max_size: 4 + b.below(160) as u32,
                            max_scale: 20 - b.below(30) as i8,
                        },
                    };
                    let sets: Vec<Vec<KeyValue>> =
                        (0..1 + b.below(4)).map(|_| b.attributes(4)).collect();
                    InstrumentRecipe {
                        kind,
                        name: format!("m{}", b.string(10)),
                        description: b.string(40),
                        unit: ["", "ms", "By", "{request}"][b.below(4)].to_owned(),
                        measurements: (0..b.below(10))
                            .map(|_| {
                                let value = (f64::from(b.next()) - 100.0) * 1.5;
                                (value, sets[b.below(sets.len() as u8)].clone())
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();
    Recipe {
        resource,
        resource_schema_url,
        temporality,
        scopes,
    }
}

/// The fuzz entry: any bytes become SDK metrics, which are encoded in both modes with a few
/// limits (one of them chosen by the input) and checked with [`check_chunks`].
pub fn fuzz_one(data: &[u8]) {
    let rm = collect(&recipe_from_bytes(data));
    let mut encoder = MetricsEncoder::new();
    let small = 40 + usize::from(data.last().copied().unwrap_or(0)) * 8;
    for limit in [small, crate::DEFAULT_MAX_REQUEST_BYTES, usize::MAX] {
        check_chunks(&mut encoder, &rm, limit);
    }
}
