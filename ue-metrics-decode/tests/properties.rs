//! Property tests: random requests survive every path through the decoder unchanged.

mod common;

use common::from_json;
use proptest::prelude::*;
use prost::Message as _;
use ue_metrics_decode::format::EXAMPLE_FORMAT;
use ue_metrics_decode::payload::encode_payload;
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_decode::proto::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use ue_metrics_decode::proto::metrics::v1::{
    exemplar, metric, number_data_point, Exemplar, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use ue_metrics_decode::proto::resource::v1::Resource;
use ue_metrics_decode::sample::encode_raw_sample;
use ue_metrics_decode::{decode_payload, decode_raw_sample, ftrace, json, RecordFormat};

fn any_value() -> impl Strategy<Value = AnyValue> {
    prop_oneof![
        ".{0,12}".prop_map(any_value::Value::StringValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        any::<f64>().prop_map(any_value::Value::DoubleValue),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(any_value::Value::BytesValue),
    ]
    .prop_map(|v| AnyValue { value: Some(v) })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(
        ("[a-z.]{1,8}", any_value()).prop_map(|(key, value)| KeyValue {
            key,
            value: Some(value),
            key_strindex: 0,
        }),
        0..4,
    )
}

fn number_point() -> impl Strategy<Value = NumberDataPoint> {
    (
        attributes(),
        any::<u64>(),
        any::<u64>(),
        prop_oneof![
            any::<f64>().prop_map(number_data_point::Value::AsDouble),
            any::<i64>().prop_map(number_data_point::Value::AsInt),
        ],
        proptest::collection::vec(
            (
                any::<u64>(),
                any::<i64>(),
                proptest::collection::vec(any::<u8>(), 8),
            )
                .prop_map(|(t, v, span)| Exemplar {
                    time_unix_nano: t,
                    value: Some(exemplar::Value::AsInt(v)),
                    span_id: span,
                    ..Default::default()
                }),
            0..2,
        ),
        0u32..2,
    )
        .prop_map(
            |(attributes, start, time, value, exemplars, flags)| NumberDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: time,
                value: Some(value),
                exemplars,
                flags,
            },
        )
}

fn histogram_point() -> impl Strategy<Value = HistogramDataPoint> {
    (
        attributes(),
        any::<u64>(),
        proptest::option::of(any::<f64>()),
        proptest::collection::vec(any::<u64>(), 0..5),
        proptest::collection::vec(any::<f64>(), 0..4),
        proptest::option::of(any::<f64>()),
    )
        .prop_map(
            |(attributes, count, sum, bucket_counts, explicit_bounds, min)| HistogramDataPoint {
                attributes,
                count,
                sum,
                bucket_counts,
                explicit_bounds,
                min,
                ..Default::default()
            },
        )
}

fn metric() -> impl Strategy<Value = Metric> {
    let data = prop_oneof![
        proptest::collection::vec(number_point(), 0..4)
            .prop_map(|data_points| metric::Data::Gauge(Gauge { data_points })),
        (
            proptest::collection::vec(number_point(), 0..4),
            0i32..3,
            any::<bool>()
        )
            .prop_map(|(data_points, aggregation_temporality, is_monotonic)| {
                metric::Data::Sum(Sum {
                    data_points,
                    aggregation_temporality,
                    is_monotonic,
                })
            }),
        (proptest::collection::vec(histogram_point(), 0..3), 0i32..3).prop_map(
            |(data_points, aggregation_temporality)| {
                metric::Data::Histogram(Histogram {
                    data_points,
                    aggregation_temporality,
                })
            }
        ),
    ];
    (
        "[a-z_.]{1,16}",
        ".{0,8}",
        "[a-zA-Z{}/]{0,4}",
        proptest::option::of(data),
    )
        .prop_map(|(name, description, unit, data)| Metric {
            name,
            description,
            unit,
            data,
            metadata: Vec::new(),
        })
}

fn request() -> impl Strategy<Value = ExportMetricsServiceRequest> {
    proptest::collection::vec(
        (
            attributes(),
            proptest::collection::vec(
                ("[a-z]{0,8}", proptest::collection::vec(metric(), 0..4)).prop_map(
                    |(name, metrics)| ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name,
                            ..Default::default()
                        }),
                        metrics,
                        schema_url: String::new(),
                    },
                ),
                0..3,
            ),
        )
            .prop_map(|(attributes, scope_metrics)| ResourceMetrics {
                resource: Some(Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_metrics,
                schema_url: String::new(),
            }),
        1..3,
    )
    .prop_map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Encoder output (prost) -> payload -> decoder -> the same request.
    #[test]
    fn payload_round_trip(request in request(), junk in proptest::collection::vec(any::<u8>(), 0..9)) {
        let buffer = request.encode_to_vec();
        prop_assume!(buffer.len() < 65536);
        let mut bytes = encode_payload(&buffer);
        bytes.extend_from_slice(&junk); // trailing bytes (padding) are ignored
        let payload = decode_payload(&bytes).unwrap();
        prop_assert_eq!(payload.buffer, &buffer[..]);
        prop_assert_eq!(payload.to_request().unwrap().encode_to_vec(), buffer);
    }

    /// The same through a whole raw record located by the kernel's format.
    #[test]
    fn raw_sample_round_trip(request in request(), pid in any::<i32>()) {
        let buffer = request.encode_to_vec();
        prop_assume!(buffer.len() < 65536);
        let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
        let raw = encode_raw_sample(&format, 1535, pid, &buffer).unwrap();
        let decoded = decode_raw_sample(&format, &raw).unwrap().to_request().unwrap();
        prop_assert_eq!(decoded.encode_to_vec(), buffer);
    }

    /// The same through the kernel's ftrace text form.
    #[test]
    fn trace_line_round_trip(request in request()) {
        let buffer = request.encode_to_vec();
        prop_assume!(!buffer.is_empty() && buffer.len() < 65536);
        let payload = encode_payload(&buffer);
        let line = ftrace::format_trace_line(" a-1 [000] ..... 1.000000", "otlp_metrics", &payload).unwrap();
        let parsed = ftrace::parse_trace_line(&line, "otlp_metrics").unwrap().unwrap();
        prop_assert_eq!(&parsed.payload, &payload);
        let decoded = parsed.to_record().result.unwrap();
        prop_assert_eq!(decoded.encode_to_vec(), buffer);
    }

    /// OTLP/JSON output reads back (with an independent reader) into the same request.
    #[test]
    fn json_round_trip(request in request()) {
        let line = json::to_json(&request);
        prop_assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        prop_assert_eq!(from_json::request(&value).encode_to_vec(), request.encode_to_vec());
    }

    /// Any bytes: decoding never panics and never points outside the input.
    #[test]
    fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        ue_metrics_decode::fuzzing::payload(&bytes);
    }
}
