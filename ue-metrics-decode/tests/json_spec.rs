//! OTLP/JSON output checked against the specification's own example and a request that uses
//! every field the schema has.

mod common;

use common::from_json;
use serde_json::Value;
use ue_metrics_decode::json::to_json;
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

const SPEC_EXAMPLE: &str = include_str!("data/metrics.json");

/// Removes members that hold a proto3 default value and are not presence-tracked: the spec's
/// example spells out `"scale": 0` and `"zeroThreshold": 0`, which the proto3 JSON mapping lets
/// an emitter omit (and ours does).
fn drop_unpopulated_defaults(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for key in ["scale", "zeroThreshold"] {
                if map.get(key).and_then(Value::as_f64) == Some(0.0) {
                    map.remove(key);
                }
            }
            map.values_mut().for_each(drop_unpopulated_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_unpopulated_defaults),
        _ => {}
    }
}

#[test]
fn the_spec_example_reads_into_prost_and_writes_back_identically() {
    let mut expected: Value = serde_json::from_str(SPEC_EXAMPLE).unwrap();
    let request = from_json::request(&expected);
    assert_eq!(
        request.resource_metrics[0].scope_metrics[0].metrics.len(),
        4
    );
    let line = to_json(&request);
    assert!(!line.contains('\n'));
    let written: Value = serde_json::from_str(&line).unwrap();
    drop_unpopulated_defaults(&mut expected);
    assert_eq!(written, expected);
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

/// A request that sets every field of the schema at least once, with awkward values.
fn everything() -> ExportMetricsServiceRequest {
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

/// NaN != NaN, so compare the protobuf bytes instead of the structs.
fn same(a: &ExportMetricsServiceRequest, b: &ExportMetricsServiceRequest) -> bool {
    use prost::Message as _;
    a.encode_to_vec() == b.encode_to_vec()
}

#[test]
fn every_field_survives_json_and_back() {
    let request = everything();
    let line = to_json(&request);
    let value: Value = serde_json::from_str(&line).expect("valid JSON");
    let back = from_json::request(&value);
    if !same(&request, &back) {
        let (a, b) = (format!("{request:?}"), format!("{back:?}"));
        let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
        panic!(
            "round trip differs at {at}:\n{}\n{}",
            &a[at.saturating_sub(200)..(at + 100).min(a.len())],
            &b[at.saturating_sub(200)..(at + 100).min(b.len())]
        );
    }
}

#[test]
fn spec_specific_encodings() {
    let value: Value = serde_json::from_str(&to_json(&everything())).unwrap();
    let rm = &value["resourceMetrics"][0];
    let metrics = &rm["scopeMetrics"][0]["metrics"];
    let point = &metrics[0]["gauge"]["dataPoints"][0];
    // 64-bit integers are strings, 32-bit ones numbers, enums integers.
    assert_eq!(point["timeUnixNano"], "1700000000123456789");
    assert_eq!(point["flags"], 1);
    assert_eq!(metrics[1]["sum"]["aggregationTemporality"], 2);
    assert_eq!(
        metrics[1]["sum"]["dataPoints"][0]["asInt"],
        i64::MAX.to_string()
    );
    assert_eq!(
        metrics[2]["histogram"]["dataPoints"][0]["bucketCounts"][2],
        u64::MAX.to_string()
    );
    assert_eq!(
        metrics[3]["exponentialHistogram"]["dataPoints"][0]["positive"]["offset"],
        -3
    );
    // Trace and span ids are hex, other bytes base64.
    let ex = &point["exemplars"][0];
    assert_eq!(ex["spanId"], "deadbeef00010203");
    assert_eq!(ex["traceId"], "000102030405060708090a0b0c0d0e0f");
    assert_eq!(ex["asInt"], "-5");
    assert_eq!(point["exemplars"][1]["asDouble"], "NaN");
    let attrs = &rm["resource"]["attributes"];
    assert_eq!(attrs[4]["value"]["bytesValue"], "AAEC/v8=");
    assert_eq!(attrs[2]["value"]["intValue"], i64::MIN.to_string());
    // Oneof members are written even at their default value; plain defaults are not.
    assert_eq!(attrs[1]["value"]["boolValue"], false);
    assert_eq!(point.get("startTimeUnixNano").unwrap(), "1");
    assert_eq!(metrics[0]["gauge"]["dataPoints"][0]["asDouble"], 0);
    assert!(metrics[2]["histogram"]["dataPoints"][0]
        .get("flags")
        .is_none());
    assert!(metrics[2]["histogram"]["dataPoints"][0]
        .get("max")
        .is_none());
    assert_eq!(metrics[2]["histogram"]["dataPoints"][0]["sum"], 0);
    assert_eq!(metrics[5], serde_json::json!({"name": "no data"}));
}
