//! A test-only OTLP/JSON reader: serde_json values into prost types, written from the OTLP
//! specification's JSON rules (independently of `ue_metrics_decode::json`, which it checks).
#![allow(dead_code)]

use serde_json::{Map, Value};
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

pub fn request(v: &Value) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: list(v, "resourceMetrics", resource_metrics),
    }
}

fn obj(v: &Value) -> &Map<String, Value> {
    v.as_object().expect("object")
}

fn list<T>(v: &Value, key: &str, f: impl Fn(&Value) -> T) -> Vec<T> {
    obj(v)
        .get(key)
        .map(|a| a.as_array().expect("array").iter().map(f).collect())
        .unwrap_or_default()
}

fn string(v: &Value, key: &str) -> String {
    obj(v)
        .get(key)
        .map(|s| s.as_str().expect("string").to_owned())
        .unwrap_or_default()
}

/// int64/uint64/fixed64: JSON string (or number, which readers must accept too).
fn u64_of(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().expect("u64 string"),
        n => n.as_u64().expect("u64"),
    }
}

fn i64_of(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().expect("i64 string"),
        n => n.as_i64().expect("i64"),
    }
}

fn f64_of(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "NaN" => f64::NAN,
        Value::String(s) if s == "Infinity" => f64::INFINITY,
        Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
        n => n.as_f64().expect("number"),
    }
}

fn u64_field(v: &Value, key: &str) -> u64 {
    obj(v).get(key).map(u64_of).unwrap_or_default()
}

fn i32_field(v: &Value, key: &str) -> i32 {
    obj(v)
        .get(key)
        .map(|n| n.as_i64().expect("int") as i32)
        .unwrap_or_default()
}

fn f64_field(v: &Value, key: &str) -> f64 {
    obj(v).get(key).map(f64_of).unwrap_or_default()
}

fn opt_f64(v: &Value, key: &str) -> Option<f64> {
    obj(v).get(key).map(f64_of)
}

fn hex(v: &Value, key: &str) -> Vec<u8> {
    let s = string(v, key);
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn base64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = acc << 6 | ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn resource_metrics(v: &Value) -> ResourceMetrics {
    ResourceMetrics {
        resource: obj(v).get("resource").map(|r| Resource {
            attributes: list(r, "attributes", key_value),
            dropped_attributes_count: i32_field(r, "droppedAttributesCount") as u32,
            entity_refs: list(r, "entityRefs", |e| EntityRef {
                schema_url: string(e, "schemaUrl"),
                r#type: string(e, "type"),
                id_keys: list(e, "idKeys", |s| s.as_str().unwrap().to_owned()),
                description_keys: list(e, "descriptionKeys", |s| s.as_str().unwrap().to_owned()),
            }),
        }),
        scope_metrics: list(v, "scopeMetrics", |sm| ScopeMetrics {
            scope: obj(sm).get("scope").map(|s| InstrumentationScope {
                name: string(s, "name"),
                version: string(s, "version"),
                attributes: list(s, "attributes", key_value),
                dropped_attributes_count: i32_field(s, "droppedAttributesCount") as u32,
            }),
            metrics: list(sm, "metrics", metric),
            schema_url: string(sm, "schemaUrl"),
        }),
        schema_url: string(v, "schemaUrl"),
    }
}

fn metric(v: &Value) -> Metric {
    let o = obj(v);
    let data = if let Some(g) = o.get("gauge") {
        Some(metric::Data::Gauge(Gauge {
            data_points: list(g, "dataPoints", number_point),
        }))
    } else if let Some(s) = o.get("sum") {
        Some(metric::Data::Sum(Sum {
            data_points: list(s, "dataPoints", number_point),
            aggregation_temporality: i32_field(s, "aggregationTemporality"),
            is_monotonic: obj(s)
                .get("isMonotonic")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }))
    } else if let Some(h) = o.get("histogram") {
        Some(metric::Data::Histogram(Histogram {
            data_points: list(h, "dataPoints", histogram_point),
            aggregation_temporality: i32_field(h, "aggregationTemporality"),
        }))
    } else if let Some(h) = o.get("exponentialHistogram") {
        Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: list(h, "dataPoints", exponential_point),
            aggregation_temporality: i32_field(h, "aggregationTemporality"),
        }))
    } else {
        o.get("summary").map(|s| {
            metric::Data::Summary(Summary {
                data_points: list(s, "dataPoints", summary_point),
            })
        })
    };
    Metric {
        name: string(v, "name"),
        description: string(v, "description"),
        unit: string(v, "unit"),
        metadata: list(v, "metadata", key_value),
        data,
    }
}

fn number_point(v: &Value) -> NumberDataPoint {
    let o = obj(v);
    NumberDataPoint {
        attributes: list(v, "attributes", key_value),
        start_time_unix_nano: u64_field(v, "startTimeUnixNano"),
        time_unix_nano: u64_field(v, "timeUnixNano"),
        exemplars: list(v, "exemplars", exemplar),
        flags: i32_field(v, "flags") as u32,
        value: if let Some(d) = o.get("asDouble") {
            Some(number_data_point::Value::AsDouble(f64_of(d)))
        } else {
            o.get("asInt")
                .map(|i| number_data_point::Value::AsInt(i64_of(i)))
        },
    }
}

fn histogram_point(v: &Value) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: list(v, "attributes", key_value),
        start_time_unix_nano: u64_field(v, "startTimeUnixNano"),
        time_unix_nano: u64_field(v, "timeUnixNano"),
        count: u64_field(v, "count"),
        sum: opt_f64(v, "sum"),
        bucket_counts: list(v, "bucketCounts", u64_of),
        explicit_bounds: list(v, "explicitBounds", f64_of),
        exemplars: list(v, "exemplars", exemplar),
        flags: i32_field(v, "flags") as u32,
        min: opt_f64(v, "min"),
        max: opt_f64(v, "max"),
    }
}

fn exponential_point(v: &Value) -> ExponentialHistogramDataPoint {
    let buckets = |b: &Value| Buckets {
        offset: i32_field(b, "offset"),
        bucket_counts: list(b, "bucketCounts", u64_of),
    };
    ExponentialHistogramDataPoint {
        attributes: list(v, "attributes", key_value),
        start_time_unix_nano: u64_field(v, "startTimeUnixNano"),
        time_unix_nano: u64_field(v, "timeUnixNano"),
        count: u64_field(v, "count"),
        sum: opt_f64(v, "sum"),
        scale: i32_field(v, "scale"),
        zero_count: u64_field(v, "zeroCount"),
        positive: obj(v).get("positive").map(buckets),
        negative: obj(v).get("negative").map(buckets),
        flags: i32_field(v, "flags") as u32,
        exemplars: list(v, "exemplars", exemplar),
        min: opt_f64(v, "min"),
        max: opt_f64(v, "max"),
        zero_threshold: f64_field(v, "zeroThreshold"),
    }
}

fn summary_point(v: &Value) -> SummaryDataPoint {
    SummaryDataPoint {
        attributes: list(v, "attributes", key_value),
        start_time_unix_nano: u64_field(v, "startTimeUnixNano"),
        time_unix_nano: u64_field(v, "timeUnixNano"),
        count: u64_field(v, "count"),
        sum: f64_field(v, "sum"),
        quantile_values: list(v, "quantileValues", |q| ValueAtQuantile {
            quantile: f64_field(q, "quantile"),
            value: f64_field(q, "value"),
        }),
        flags: i32_field(v, "flags") as u32,
    }
}

fn exemplar(v: &Value) -> Exemplar {
    let o = obj(v);
    Exemplar {
        filtered_attributes: list(v, "filteredAttributes", key_value),
        time_unix_nano: u64_field(v, "timeUnixNano"),
        span_id: hex(v, "spanId"),
        trace_id: hex(v, "traceId"),
        value: if let Some(d) = o.get("asDouble") {
            Some(exemplar::Value::AsDouble(f64_of(d)))
        } else {
            o.get("asInt").map(|i| exemplar::Value::AsInt(i64_of(i)))
        },
    }
}

fn key_value(v: &Value) -> KeyValue {
    KeyValue {
        key: string(v, "key"),
        value: obj(v).get("value").map(any_value),
        key_strindex: i32_field(v, "keyStrindex"),
    }
}

fn any_value(v: &Value) -> AnyValue {
    let (key, inner) = match obj(v).iter().next() {
        Some(kv) => kv,
        None => return AnyValue { value: None },
    };
    let value = match key.as_str() {
        "stringValue" => any_value::Value::StringValue(inner.as_str().unwrap().to_owned()),
        "boolValue" => any_value::Value::BoolValue(inner.as_bool().unwrap()),
        "intValue" => any_value::Value::IntValue(i64_of(inner)),
        "doubleValue" => any_value::Value::DoubleValue(f64_of(inner)),
        "arrayValue" => any_value::Value::ArrayValue(ArrayValue {
            values: list(inner, "values", any_value),
        }),
        "kvlistValue" => any_value::Value::KvlistValue(KeyValueList {
            values: list(inner, "values", key_value),
        }),
        "bytesValue" => any_value::Value::BytesValue(base64(inner.as_str().unwrap())),
        "stringValueStrindex" => {
            any_value::Value::StringValueStrindex(inner.as_i64().unwrap() as i32)
        }
        other => panic!("unknown AnyValue member {other}"),
    };
    AnyValue { value: Some(value) }
}
