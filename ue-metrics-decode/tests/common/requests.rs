//! Requests used by several tests.

use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_decode::proto::common::v1::{
    any_value, AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use ue_metrics_decode::proto::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use ue_metrics_decode::proto::resource::v1::Resource;

/// A small request: one counter `requests` with `points` data points, value `i` each, for
/// service `service`.
pub fn counter(service: &str, points: usize, value: i64) -> ExportMetricsServiceRequest {
    let data_points = (0..points)
        .map(|i| NumberDataPoint {
            attributes: vec![kv("route", any_value::Value::StringValue(format!("/r{i}")))],
            start_time_unix_nano: 1_700_000_000_000_000_000,
            time_unix_nano: 1_700_000_010_000_000_000,
            value: Some(number_data_point::Value::AsInt(value)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue(service.into()),
                )],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "test".into(),
                    ..Default::default()
                }),
                metrics: vec![Metric {
                    name: "requests".into(),
                    unit: "1".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: 2,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

pub fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

/// A request that sets every field of the schema at least once, with awkward values.
pub fn everything() -> ExportMetricsServiceRequest {
    use any_value::Value as V;
    let attrs = vec![
        kv(
            "s",
            V::StringValue("quote\" backslash\\ newline\n tab\t é 🦀".into()),
        ),
        kv("b", V::BoolValue(false)),
        kv("i", V::IntValue(i64::MIN)),
        kv("d", V::DoubleValue(-0.0)),
        kv("bytes", V::BytesValue(vec![0, 1, 2, 0xfe, 0xff])),
        kv(
            "arr",
            V::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(V::IntValue(0)),
                    },
                    AnyValue {
                        value: Some(V::StringValue(String::new())),
                    },
                    AnyValue { value: None },
                ],
            }),
        ),
        kv(
            "kv",
            V::KvlistValue(KeyValueList {
                values: vec![kv("nested", V::DoubleValue(1.5e-300))],
            }),
        ),
        kv("idx", V::StringValueStrindex(7)),
        KeyValue {
            key: String::new(),
            value: None,
            key_strindex: 3,
        },
    ];
    let ex = |value| Exemplar {
        filtered_attributes: attrs[..2].to_vec(),
        time_unix_nano: u64::MAX,
        span_id: vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3],
        trace_id: (0..16).collect(),
        value: Some(value),
    };
    let number = |value| NumberDataPoint {
        attributes: attrs.clone(),
        start_time_unix_nano: 1,
        time_unix_nano: 1_700_000_000_123_456_789,
        exemplars: vec![
            ex(exemplar::Value::AsInt(-5)),
            ex(exemplar::Value::AsDouble(f64::NAN)),
        ],
        flags: 1,
        value: Some(value),
    };
    let metrics = vec![
        Metric {
            name: "gauge".into(),
            description: "d".into(),
            unit: "ms".into(),
            metadata: attrs[..1].to_vec(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![
                    number(number_data_point::Value::AsDouble(0.0)),
                    number(number_data_point::Value::AsDouble(f64::INFINITY)),
                ],
            })),
        },
        Metric {
            name: "sum".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![number(number_data_point::Value::AsInt(i64::MAX))],
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "hist".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: attrs.clone(),
                    start_time_unix_nano: 5,
                    time_unix_nano: 6,
                    count: u64::MAX,
                    sum: Some(0.0),
                    bucket_counts: vec![0, 1, u64::MAX],
                    explicit_bounds: vec![-1.5, 1e100],
                    exemplars: vec![ex(exemplar::Value::AsDouble(2.0))],
                    flags: 0,
                    min: Some(f64::NEG_INFINITY),
                    max: None,
                }],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        },
        Metric {
            name: "exp".into(),
            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    count: 3,
                    sum: None,
                    scale: -4,
                    zero_count: 9,
                    positive: Some(Buckets {
                        offset: -3,
                        bucket_counts: vec![1, 2],
                    }),
                    negative: Some(Buckets::default()),
                    flags: 1,
                    min: Some(0.5),
                    max: Some(7.25),
                    zero_threshold: 1e-9,
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        },
        Metric {
            name: "summary".into(),
            data: Some(metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    count: 4,
                    sum: 12.5,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.0,
                            value: 1.0,
                        },
                        ValueAtQuantile {
                            quantile: 1.0,
                            value: 9.0,
                        },
                    ],
                    ..Default::default()
                }],
            })),
            ..Default::default()
        },
        Metric {
            name: "no data".into(),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: attrs.clone(),
                dropped_attributes_count: 2,
                entity_refs: vec![EntityRef {
                    schema_url: "https://e".into(),
                    r#type: "service".into(),
                    id_keys: vec!["service.name".into()],
                    description_keys: vec!["a".into(), "b".into()],
                }],
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "scope".into(),
                    version: "1.0".into(),
                    attributes: attrs[..3].to_vec(),
                    dropped_attributes_count: 1,
                }),
                metrics,
                schema_url: "https://s".into(),
            }],
            schema_url: "https://r".into(),
        }],
    }
}
