//! Mode (a) against opentelemetry-proto's transform (`ExportMetricsServiceRequest::from`) for
//! every metric kind, value type and temporality the SDK produces, built with the real SDK.
//! The two prost type sets are bridged through bytes: the reference is encoded with its own
//! types and decoded with ours.

use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::Temporality;
use otlp_metrics_encode::check::{decode, roundtrip};
use otlp_metrics_encode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use otlp_metrics_encode::proto::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality,
};
use otlp_metrics_encode::workloads::{self, collect, InstrumentRecipe, Kind, Recipe, ScopeRecipe};
use otlp_metrics_encode::MetricsEncoder;
use prost::Message;

fn reference(rm: &ResourceMetrics) -> Vec<u8> {
    opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::from(rm)
        .encode_to_vec()
}

/// Attributes with every `opentelemetry::Value` type, arrays included.
fn every_value_type(i: usize) -> Vec<KeyValue> {
    vec![
        KeyValue::new("string", format!("value-{i}")),
        KeyValue::new("empty.string", ""),
        KeyValue::new("i64", -(i as i64) * 1_000_000_007),
        KeyValue::new("f64", 0.5 + i as f64),
        KeyValue::new("bool", i % 2 == 0),
        KeyValue::new("array.bool", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new("array.i64", Value::Array(Array::I64(vec![-1, 0, i64::MAX]))),
        KeyValue::new(
            "array.f64",
            Value::Array(Array::F64(vec![f64::MIN_POSITIVE, -2.5])),
        ),
        KeyValue::new(
            "array.string",
            Value::Array(Array::String(vec![
                StringValue::from("a"),
                StringValue::from(""),
            ])),
        ),
        KeyValue::new("array.empty", Value::Array(Array::I64(vec![]))),
        KeyValue::new("", "empty key"),
    ]
}

fn all_kinds() -> Vec<Kind> {
    vec![
        Kind::U64Counter,
        Kind::F64Counter,
        Kind::I64UpDownCounter,
        Kind::F64UpDownCounter,
        Kind::U64Gauge,
        Kind::I64Gauge,
        Kind::F64Gauge,
        Kind::U64Histogram {
            bounds: None,
            record_min_max: true,
        },
        Kind::U64Histogram {
            bounds: Some(vec![]),
            record_min_max: false,
        },
        Kind::F64Histogram {
            bounds: Some(vec![-1.0, 0.0, 1.5, 1e9]),
            record_min_max: true,
        },
        Kind::F64Histogram {
            bounds: None,
            record_min_max: false,
        },
        Kind::U64ExponentialHistogram {
            max_size: 160,
            max_scale: 20,
        },
        Kind::F64ExponentialHistogram {
            max_size: 160,
            max_scale: 20,
        },
        Kind::F64ExponentialHistogram {
            max_size: 4,
            max_scale: -3,
        },
    ]
}

fn recipe(temporality: Temporality, kinds: &[Kind]) -> Recipe {
    let instruments = kinds
        .iter()
        .map(|kind| InstrumentRecipe {
            kind: kind.clone(),
            name: "instrument".to_owned(),
            description: "what it measures".to_owned(),
            unit: "ms".to_owned(),
            measurements: (0..3)
                .flat_map(|i| {
                    [-7.25, 0.0, 3.0, 1e6].map(|v| (v * (i + 1) as f64, every_value_type(i)))
                })
                .collect(),
        })
        .collect();
    Recipe {
        resource: every_value_type(9),
        resource_schema_url: Some("https://opentelemetry.io/schemas/1.26.0".to_owned()),
        temporality,
        scopes: vec![
            ScopeRecipe {
                name: "full.scope".to_owned(),
                version: Some("1.2.3".to_owned()),
                schema_url: Some("https://opentelemetry.io/schemas/1.24.0".to_owned()),
                attributes: every_value_type(1),
                instruments,
            },
            ScopeRecipe {
                name: "bare.scope".to_owned(),
                version: None,
                schema_url: None,
                attributes: vec![],
                instruments: vec![InstrumentRecipe {
                    kind: Kind::U64Counter,
                    name: "bare".to_owned(),
                    description: String::new(),
                    unit: String::new(),
                    measurements: vec![(1.0, vec![])],
                }],
            },
        ],
    }
}

fn data_kinds(request: &ExportMetricsServiceRequest) -> Vec<&'static str> {
    request.resource_metrics[0]
        .scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(_)) => "gauge",
            Some(Data::Sum(s)) if s.is_monotonic => "monotonic sum",
            Some(Data::Sum(_)) => "sum",
            Some(Data::Histogram(_)) => "histogram",
            Some(Data::ExponentialHistogram(_)) => "exponential histogram",
            Some(Data::Summary(_)) => "summary",
            None => "none",
        })
        .collect()
}

#[test]
fn every_kind_and_value_type_matches_the_reference_transform_byte_for_byte() {
    let mut encoder = MetricsEncoder::new();
    for temporality in [Temporality::Cumulative, Temporality::Delta] {
        let rm = collect(&recipe(temporality, &all_kinds()));
        let ours = roundtrip(&mut encoder, &rm);
        let theirs = decode(&reference(&rm));
        assert_eq!(ours, theirs, "{temporality:?}: decoded requests differ");
        assert_eq!(
            encoder.encode_request(&rm),
            reference(&rm),
            "{temporality:?}: bytes differ"
        );

        // The input really covers what it claims to: 14 instruments x 3 attribute sets + 1.
        let points = otlp_metrics_encode::check::flatten(ours.clone()).len();
        assert_eq!(points, all_kinds().len() * 3 + 1, "{temporality:?}");
        let kinds = data_kinds(&ours);
        for expected in [
            "gauge",
            "monotonic sum",
            "sum",
            "histogram",
            "exponential histogram",
        ] {
            assert!(
                kinds.contains(&expected),
                "{temporality:?}: no {expected} in {kinds:?}"
            );
        }
        assert_eq!(ours.resource_metrics[0].scope_metrics.len(), 2);
        let expected_temporality = match temporality {
            Temporality::Delta => AggregationTemporality::Delta,
            _ => AggregationTemporality::Cumulative,
        } as i32;
        for metric in ours.resource_metrics[0]
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
        {
            let written = match &metric.data {
                Some(Data::Sum(s)) => s.aggregation_temporality,
                Some(Data::Histogram(h)) => h.aggregation_temporality,
                Some(Data::ExponentialHistogram(h)) => h.aggregation_temporality,
                _ => continue,
            };
            // Up-down counters stay cumulative under a delta reader (SDK temporality rules).
            assert!(
                written == expected_temporality
                    || written == AggregationTemporality::Cumulative as i32,
                "{}: temporality {written}",
                metric.name
            );
        }
    }
}

#[test]
fn temporality_is_the_otlp_enum_value() {
    let mut encoder = MetricsEncoder::new();
    for (temporality, expected) in [(Temporality::Cumulative, 2), (Temporality::Delta, 1)] {
        let rm = collect(&recipe(temporality, &[Kind::U64Counter]));
        let request = roundtrip(&mut encoder, &rm);
        let Some(Data::Sum(sum)) = &request.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("a counter is a Sum");
        };
        assert_eq!(sum.aggregation_temporality, expected, "{temporality:?}");
        assert!(sum.is_monotonic);
    }
}

#[test]
fn the_reference_workloads_match_the_reference_transform() {
    let mut encoder = MetricsEncoder::new();
    for w in workloads::all() {
        let ours = encoder.encode_request(&w.metrics).to_vec();
        assert_eq!(decode(&ours), decode(&reference(&w.metrics)), "{}", w.name);
        assert_eq!(ours, reference(&w.metrics), "{}", w.name);
        let points = otlp_metrics_encode::check::flatten(decode(&ours)).len();
        assert_eq!(points, w.points, "{}", w.name);
    }
}

/// Documented deviation: OTLP has no unsigned integers. The reference writes 0 for a u64 above
/// `i64::MAX`; we clamp to `i64::MAX`, so a monotonic counter never appears to reset.
#[test]
fn u64_values_above_i64_max_are_clamped_not_zeroed() {
    let big = recipe(Temporality::Cumulative, &[]);
    let mut big = big;
    big.scopes.truncate(1);
    big.scopes[0].instruments = vec![InstrumentRecipe {
        kind: Kind::U64Gauge,
        name: "big".to_owned(),
        description: String::new(),
        unit: String::new(),
        measurements: vec![(1.6e19, vec![])],
    }];
    let rm = collect(&big);
    let ours = roundtrip(&mut MetricsEncoder::new(), &rm);
    let theirs = decode(&reference(&rm));
    let value = |r: &ExportMetricsServiceRequest| match &r.resource_metrics[0].scope_metrics[0]
        .metrics[0]
        .data
    {
        Some(Data::Gauge(g)) => g.data_points[0].value,
        other => panic!("expected a gauge, got {other:?}"),
    };
    assert_eq!(
        value(&ours),
        Some(number_data_point::Value::AsInt(i64::MAX))
    );
    assert_eq!(value(&theirs), Some(number_data_point::Value::AsInt(0)));
}

#[test]
fn an_empty_collection_is_one_resource_without_scopes() {
    let rm = ResourceMetrics::default();
    let mut encoder = MetricsEncoder::new();
    assert_eq!(roundtrip(&mut encoder, &rm), decode(&reference(&rm)));
    let chunks = encoder
        .encode_chunks(&rm, 4048, |_| Err("no chunk expected"))
        .expect("an empty collection produces no chunk");
    assert_eq!(chunks.chunks, 0);
}

/// Bucket counts of 128 and more take multi-byte varints (exponential histograms) and large
/// fixed64 counts; zero counts and negative buckets appear too.
#[test]
fn large_bucket_counts_match_the_reference_transform() {
    let mut recipe = recipe(Temporality::Cumulative, &[]);
    recipe.scopes.truncate(1);
    let values: Vec<(f64, Vec<KeyValue>)> = (0..2000)
        .map(|i| (f64::from(i % 7) * 3.5 - 7.0, vec![KeyValue::new("k", "v")]))
        .collect();
    recipe.scopes[0].instruments = [
        Kind::F64ExponentialHistogram {
            max_size: 160,
            max_scale: 20,
        },
        Kind::U64ExponentialHistogram {
            max_size: 8,
            max_scale: 5,
        },
        Kind::F64Histogram {
            bounds: None,
            record_min_max: true,
        },
    ]
    .into_iter()
    .map(|kind| InstrumentRecipe {
        kind,
        name: "busy".to_owned(),
        description: String::new(),
        unit: String::new(),
        measurements: values.clone(),
    })
    .collect();
    let rm = collect(&recipe);
    let mut encoder = MetricsEncoder::new();
    let ours = roundtrip(&mut encoder, &rm);
    assert_eq!(encoder.encode_request(&rm), reference(&rm));
    let metrics = &ours.resource_metrics[0].scope_metrics[0].metrics;
    let Some(Data::ExponentialHistogram(h)) = &metrics[0].data else {
        panic!("an exponential histogram");
    };
    let point = &h.data_points[0];
    let positive = point.positive.as_ref().expect("positive buckets");
    let negative = point.negative.as_ref().expect("negative buckets");
    assert!(
        positive.bucket_counts.iter().any(|&c| c >= 128),
        "{positive:?}"
    );
    assert!(!negative.bucket_counts.is_empty(), "{negative:?}");
    assert!(point.zero_count >= 128, "zero count {}", point.zero_count);
}

/// Points with more attributes than the encoder reserves room for at once (32), short and long
/// ones mixed, of every kind: each attribute is written whichever way it takes.
#[test]
fn points_with_many_attributes_match_the_reference_transform() {
    let many = |i: usize| -> Vec<KeyValue> {
        let mut attributes: Vec<KeyValue> = (0..40)
            .map(|k| KeyValue::new(format!("attribute.{k:02}"), format!("value-{i}-{k}")))
            .collect();
        attributes.push(KeyValue::new("attribute.long", "l".repeat(100 + i)));
        attributes.push(KeyValue::new("attribute.number", i as i64));
        attributes
    };
    let mut recipe = recipe(Temporality::Cumulative, &all_kinds());
    for instrument in &mut recipe.scopes[0].instruments {
        for (i, (_, attributes)) in instrument.measurements.iter_mut().enumerate() {
            *attributes = many(i % 3);
        }
    }
    let rm = collect(&recipe);
    let mut encoder = MetricsEncoder::new();
    let ours = roundtrip(&mut encoder, &rm);
    assert_eq!(ours, decode(&reference(&rm)));
    for _ in 0..2 {
        assert_eq!(encoder.encode_request(&rm), reference(&rm));
    }
    // Every point but the bare scope's carries all 42 attributes, in every kind (the SDK
    // orders scopes as it likes).
    let metrics = ours.resource_metrics[0]
        .scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .filter(|m| !m.name.starts_with("bare"));
    let mut checked = 0;
    for metric in metrics {
        checked += 1;
        let counts: Vec<usize> = match &metric.data {
            Some(Data::Gauge(g)) => g.data_points.iter().map(|p| p.attributes.len()).collect(),
            Some(Data::Sum(s)) => s.data_points.iter().map(|p| p.attributes.len()).collect(),
            Some(Data::Histogram(h)) => h.data_points.iter().map(|p| p.attributes.len()).collect(),
            Some(Data::ExponentialHistogram(h)) => {
                h.data_points.iter().map(|p| p.attributes.len()).collect()
            }
            other => panic!("unexpected data {other:?}"),
        };
        assert_eq!(counts, [42; 3], "{}", metric.name);
    }
    assert_eq!(checked, all_kinds().len());
}
