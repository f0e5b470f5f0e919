//! What the SDK produced, as OTLP, and how decoded requests are compared with it.
//!
//! The reference is `opentelemetry-proto`'s transform of the same `ResourceMetrics`
//! (`ExportMetricsServiceRequest::from(&rm)`), re-read into the decoder's prost types: code
//! this project did not write, so a bug in our encoder cannot hide in both sides.
//!
//! Our exporter splits a large export over several events; each event repeats its resource,
//! scope and metric identity. So requests are compared point by point: every data point
//! becomes a request of its own ([`single_point_requests`]) carrying the point's resource,
//! scope and metric identity, and the two sides must hold the same multiset of those
//! ([`compare`]). That is also exactly what a one-event-per-point exporter writes, which gives
//! the per-point cost ([`one_event_per_point_bytes`]).

use std::collections::BTreeSet;
use std::fmt;

use opentelemetry_sdk::metrics::data::ResourceMetrics;
use prost::Message;

use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::{any_value, KeyValue};
use crate::proto::metrics::v1::{
    self as metrics, metric::Data, number_data_point, Metric, ResourceMetrics as OtlpResource,
    ScopeMetrics,
};

/// The payload bytes before the OTLP buffer in every event (protocol, version, rel_loc).
pub const PAYLOAD_HEADER_BYTES: usize = 16;

/// `opentelemetry-proto`'s transform of `rm`, in the decoder's prost types.
pub fn reference_request(rm: &ResourceMetrics) -> ExportMetricsServiceRequest {
    let theirs =
        opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::from(rm);
    ExportMetricsServiceRequest::decode(theirs.encode_to_vec().as_slice())
        .expect("prost reads back what prost wrote")
}

/// Every data point of `requests` as a request of its own, with the point's resource, scope
/// and metric identity (name, description, unit, metadata, kind, temporality, monotonic).
pub fn single_point_requests(
    requests: &[ExportMetricsServiceRequest],
) -> Vec<ExportMetricsServiceRequest> {
    let mut out = Vec::new();
    for request in requests {
        for rm in &request.resource_metrics {
            for sm in &rm.scope_metrics {
                for metric in &sm.metrics {
                    for one in split_metric(metric) {
                        out.push(ExportMetricsServiceRequest {
                            resource_metrics: vec![OtlpResource {
                                resource: rm.resource.clone(),
                                schema_url: rm.schema_url.clone(),
                                scope_metrics: vec![ScopeMetrics {
                                    scope: sm.scope.clone(),
                                    schema_url: sm.schema_url.clone(),
                                    metrics: vec![one],
                                }],
                            }],
                        });
                    }
                }
            }
        }
    }
    out
}

/// `metric` once per data point, each copy holding one point. (Built field by field: cloning
/// the whole metric per point would copy all its points each time.)
fn split_metric(metric: &Metric) -> Vec<Metric> {
    let with = |data: Data| Metric {
        name: metric.name.clone(),
        description: metric.description.clone(),
        unit: metric.unit.clone(),
        metadata: metric.metadata.clone(),
        data: Some(data),
    };
    // One metric per point, its data built around that point alone by `data`.
    fn each<P: Clone>(points: &[P], data: impl Fn(Vec<P>) -> Data) -> Vec<Data> {
        points.iter().map(|p| data(vec![p.clone()])).collect()
    }
    let data: Vec<Data> = match &metric.data {
        None => Vec::new(),
        Some(Data::Sum(s)) => each(&s.data_points, |data_points| {
            Data::Sum(metrics::Sum {
                data_points,
                aggregation_temporality: s.aggregation_temporality,
                is_monotonic: s.is_monotonic,
            })
        }),
        Some(Data::Gauge(g)) => each(&g.data_points, |data_points| {
            Data::Gauge(metrics::Gauge { data_points })
        }),
        Some(Data::Histogram(h)) => each(&h.data_points, |data_points| {
            Data::Histogram(metrics::Histogram {
                data_points,
                aggregation_temporality: h.aggregation_temporality,
            })
        }),
        Some(Data::ExponentialHistogram(h)) => each(&h.data_points, |data_points| {
            Data::ExponentialHistogram(metrics::ExponentialHistogram {
                data_points,
                aggregation_temporality: h.aggregation_temporality,
            })
        }),
        Some(Data::Summary(s)) => each(&s.data_points, |data_points| {
            Data::Summary(metrics::Summary { data_points })
        }),
    };
    data.into_iter().map(with).collect()
}

/// The number of data points in `requests`.
pub fn point_count(requests: &[ExportMetricsServiceRequest]) -> usize {
    metrics_of(requests)
        .map(|m| match &m.data {
            None => 0,
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
        })
        .sum()
}

/// Payload bytes a one-event-per-point exporter (such as the upstream
/// `opentelemetry-user-events-metrics`) would write for the points of `requests`: one event
/// per point, each with the 16 fixed bytes and a request carrying that point alone.
pub fn one_event_per_point_bytes(requests: &[ExportMetricsServiceRequest]) -> usize {
    single_point_requests(requests)
        .iter()
        .map(|r| PAYLOAD_HEADER_BYTES + r.encoded_len())
        .sum()
}

/// The names of the metrics in `requests`.
pub fn metric_names(requests: &[ExportMetricsServiceRequest]) -> BTreeSet<String> {
    metrics_of(requests).map(|m| m.name.clone()).collect()
}

fn metrics_of(requests: &[ExportMetricsServiceRequest]) -> impl Iterator<Item = &Metric> {
    requests
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
}

/// Two sides agree: the number of points they both hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// Data points on each side.
    pub points: usize,
}

/// Two sides differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Points decoded.
    pub decoded_points: usize,
    /// Points expected.
    pub expected_points: usize,
    /// Points only in the decoded side (up to 3, as single-point requests).
    pub only_decoded: Vec<ExportMetricsServiceRequest>,
    /// Points only in the expected side (up to 3).
    pub only_expected: Vec<ExportMetricsServiceRequest>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "decoded {} points, expected {}",
            self.decoded_points, self.expected_points
        )?;
        for r in &self.only_decoded {
            writeln!(f, "only decoded: {r:?}")?;
        }
        for r in &self.only_expected {
            writeln!(f, "only expected: {r:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Mismatch {}

/// Requests in canonical form: every data point as an encoded single-point request
/// ([`single_point_requests`]), sorted. Two sets of requests hold the same data exactly when
/// their canonical forms are equal, however the points were split over requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical(Vec<Vec<u8>>);

impl Canonical {
    /// The canonical form of `requests`.
    pub fn of(requests: &[ExportMetricsServiceRequest]) -> Canonical {
        let mut encoded: Vec<Vec<u8>> = single_point_requests(requests)
            .iter()
            .map(Message::encode_to_vec)
            .collect();
        encoded.sort_unstable();
        Canonical(encoded)
    }

    /// Number of data points.
    pub fn points(&self) -> usize {
        self.0.len()
    }

    /// Payload bytes if every point were an event of its own (see
    /// [`one_event_per_point_bytes`]).
    pub fn one_event_per_point_bytes(&self) -> usize {
        self.0.iter().map(|r| PAYLOAD_HEADER_BYTES + r.len()).sum()
    }

    /// Compares `self` (decoded) with `expected`.
    pub fn compare(&self, expected: &Canonical) -> Result<Agreement, Mismatch> {
        if self == expected {
            return Ok(Agreement {
                points: self.points(),
            });
        }
        // Multiset differences, by walking the two sorted lists.
        let decode = |bytes: &Vec<u8>| {
            ExportMetricsServiceRequest::decode(bytes.as_slice()).unwrap_or_default()
        };
        let (ours, theirs) = (&self.0, &expected.0);
        let (mut only_decoded, mut only_expected) = (Vec::new(), Vec::new());
        let (mut i, mut j) = (0, 0);
        while i < ours.len() || j < theirs.len() {
            let order = match (ours.get(i), theirs.get(j)) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Less => {
                    if only_decoded.len() < 3 {
                        only_decoded.push(decode(&ours[i]));
                    }
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    if only_expected.len() < 3 {
                        only_expected.push(decode(&theirs[j]));
                    }
                    j += 1;
                }
            }
        }
        Err(Mismatch {
            decoded_points: ours.len(),
            expected_points: theirs.len(),
            only_decoded,
            only_expected,
        })
    }
}

/// Compares two sets of requests point by point, whatever their split over requests: equal
/// when they hold the same data points with the same resource, scope and metric identity.
pub fn compare(
    decoded: &[ExportMetricsServiceRequest],
    expected: &[ExportMetricsServiceRequest],
) -> Result<Agreement, Mismatch> {
    Canonical::of(decoded).compare(&Canonical::of(expected))
}

/// One data point's value, reduced to what tests check against recorded values.
#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    /// A Sum or Gauge point holding an integer.
    Int(i64),
    /// A Sum or Gauge point holding a double.
    Double(f64),
    /// A histogram (explicit or exponential): count and sum.
    Histogram {
        /// Number of measurements.
        count: u64,
        /// Their sum (0 when the SDK did not record it).
        sum: f64,
    },
}

/// One data point of a metric, for value checks.
#[derive(Debug, Clone, PartialEq)]
pub struct PointView {
    /// Attributes as `k=v` joined by `,` in their order (`-` when there are none).
    pub attributes: String,
    /// Start time (ns since the epoch; 0 when absent).
    pub start_time: u64,
    /// Time of the point (ns since the epoch).
    pub time: u64,
    /// The value.
    pub value: PointValue,
}

/// The points of the metric named `name` in `requests`, in order.
pub fn points_of(requests: &[ExportMetricsServiceRequest], name: &str) -> Vec<PointView> {
    let mut out = Vec::new();
    for m in metrics_of(requests).filter(|m| m.name == name) {
        match &m.data {
            Some(Data::Sum(metrics::Sum { data_points, .. }))
            | Some(Data::Gauge(metrics::Gauge { data_points })) => {
                out.extend(data_points.iter().map(|p| PointView {
                    attributes: render_attributes(&p.attributes),
                    start_time: p.start_time_unix_nano,
                    time: p.time_unix_nano,
                    value: match p.value {
                        Some(number_data_point::Value::AsInt(v)) => PointValue::Int(v),
                        Some(number_data_point::Value::AsDouble(v)) => PointValue::Double(v),
                        None => PointValue::Double(f64::NAN),
                    },
                }))
            }
            Some(Data::Histogram(h)) => out.extend(h.data_points.iter().map(|p| PointView {
                attributes: render_attributes(&p.attributes),
                start_time: p.start_time_unix_nano,
                time: p.time_unix_nano,
                value: PointValue::Histogram {
                    count: p.count,
                    sum: p.sum.unwrap_or(0.0),
                },
            })),
            Some(Data::ExponentialHistogram(h)) => {
                out.extend(h.data_points.iter().map(|p| PointView {
                    attributes: render_attributes(&p.attributes),
                    start_time: p.start_time_unix_nano,
                    time: p.time_unix_nano,
                    value: PointValue::Histogram {
                        count: p.count,
                        sum: p.sum.unwrap_or(0.0),
                    },
                }))
            }
            Some(Data::Summary(_)) | None => {}
        }
    }
    out
}

/// `k=v` joined by `,` (`-` for none); values in their plain text form.
pub fn render_attributes(attributes: &[KeyValue]) -> String {
    if attributes.is_empty() {
        return "-".into();
    }
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            format!("{}={value}", kv.key)
        })
        .collect::<Vec<_>>()
        .join(",")
}
