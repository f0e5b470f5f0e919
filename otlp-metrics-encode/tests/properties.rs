//! Property tests: random resources, scopes, instruments and measurements recorded with the
//! real SDK, random limits from tiny to unlimited. For each case, `check_chunks` verifies:
//! every chunk <= limit and decodes alone (canonically) with its resource/scope/metric
//! identity; the chunks' points, in order, are the single request's points minus exactly the
//! reported oversized ones (nothing lost, none twice); every chunk is full; the summary adds up.
//! Mode (a) is also compared with the reference transform.

use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::Temporality;
use otlp_metrics_encode::check::{check_chunks, decode, fuzz_one, roundtrip};
use otlp_metrics_encode::workloads::{collect, InstrumentRecipe, Kind, Recipe, ScopeRecipe};
use otlp_metrics_encode::{ChunkSummary, MetricsEncoder};
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;

fn text(max: usize) -> impl Strategy<Value = String> {
    // Mostly short ASCII, sometimes multi-byte, sometimes long enough to be oversized.
    prop_oneof![
        8 => proptest::string::string_regex(&format!("[a-z0-9._/ -]{{0,{max}}}")).unwrap(),
        1 => proptest::string::string_regex("[éß漢字🙂]{0,6}").unwrap(),
        1 => (0usize..3000).prop_map(|n| "L".repeat(n)),
        // Around the inline copy's limit (32 bytes) and a length prefix's second byte (128).
        1 => proptest::string::string_regex("[a-z]{30,34}").unwrap(),
        1 => proptest::string::string_regex("[a-z]{124,130}").unwrap(),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<f64>().prop_map(Value::F64),
        text(20).prop_map(|s| Value::String(s.into())),
        vec(any::<bool>(), 0..4).prop_map(|v| Value::Array(Array::Bool(v))),
        vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
        vec(any::<f64>(), 0..4).prop_map(|v| Value::Array(Array::F64(v))),
        vec(text(8), 0..4).prop_map(|v| {
            Value::Array(Array::String(
                v.into_iter().map(StringValue::from).collect(),
            ))
        }),
    ]
}

fn key() -> impl Strategy<Value = String> {
    // Mostly short; sometimes around the inline copy's limit (32 bytes) or past 128.
    prop_oneof![
        8 => "[a-z.]{0,12}",
        1 => "[a-z.]{30,34}",
        1 => "[a-z]{126,130}",
    ]
}

fn attributes(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
    vec((key(), value()), 0..max)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
}

fn kind() -> impl Strategy<Value = Kind> {
    let bounds = proptest::option::of(vec(-1e3f64..1e6, 0..20).prop_map(|mut b| {
        b.sort_by(f64::total_cmp);
        b.dedup();
        b
    }));
    prop_oneof![
        Just(Kind::U64Counter),
        Just(Kind::F64Counter),
        Just(Kind::I64UpDownCounter),
        Just(Kind::F64UpDownCounter),
        Just(Kind::U64Gauge),
        Just(Kind::I64Gauge),
        Just(Kind::F64Gauge),
        (bounds.clone(), any::<bool>()).prop_map(|(bounds, record_min_max)| Kind::U64Histogram {
            bounds,
            record_min_max
        }),
        (bounds, any::<bool>()).prop_map(|(bounds, record_min_max)| Kind::F64Histogram {
            bounds,
            record_min_max
        }),
        (2u32..200, -10i8..=20).prop_map(|(max_size, max_scale)| {
            Kind::U64ExponentialHistogram {
                max_size,
                max_scale,
            }
        }),
        (2u32..200, -10i8..=20).prop_map(|(max_size, max_scale)| {
            Kind::F64ExponentialHistogram {
                max_size,
                max_scale,
            }
        }),
    ]
}

fn instrument() -> impl Strategy<Value = InstrumentRecipe> {
    (
        kind(),
        "[a-z][a-z0-9_.]{0,20}",
        text(30),
        "[a-zA-Z{}/]{0,8}",
        vec(attributes(5), 1..5),
        vec((-1e9f64..1e9, any::<prop::sample::Index>()), 0..25),
    )
        .prop_map(
            |(kind, name, description, unit, sets, values)| InstrumentRecipe {
                kind,
                name,
                description,
                unit,
                measurements: values
                    .into_iter()
                    .map(|(v, i)| (v, sets[i.index(sets.len())].clone()))
                    .collect(),
            },
        )
}

fn scope() -> impl Strategy<Value = ScopeRecipe> {
    (
        "[a-z.]{1,16}",
        proptest::option::of(text(10)),
        proptest::option::of("https://[a-z.]{1,20}/[0-9.]{1,6}"),
        attributes(4),
        vec(instrument(), 1..6),
    )
        .prop_map(
            |(name, version, schema_url, attributes, instruments)| ScopeRecipe {
                name,
                version,
                schema_url,
                attributes,
                instruments,
            },
        )
}

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        attributes(8),
        proptest::option::of("https://[a-z.]{1,20}/[0-9.]{1,6}"),
        any::<bool>(),
        vec(scope(), 0..4),
    )
        .prop_map(|(resource, resource_schema_url, delta, scopes)| Recipe {
            resource,
            resource_schema_url,
            temporality: if delta {
                Temporality::Delta
            } else {
                Temporality::Cumulative
            },
            scopes,
        })
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..300,
        300usize..2_000,
        2_000usize..20_000,
        Just(otlp_metrics_encode::DEFAULT_MAX_REQUEST_BYTES),
        Just(usize::MAX),
    ]
}

/// The requests `encoder` makes of `rm` in size-bounded mode, and its summary.
fn chunks(
    encoder: &mut MetricsEncoder,
    rm: &ResourceMetrics,
    limit: usize,
) -> (Vec<Vec<u8>>, ChunkSummary) {
    let mut chunks = Vec::new();
    let summary = encoder
        .encode_chunks(rm, limit, |chunk| {
            chunks.push(chunk.to_vec());
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|never| match never {});
    (chunks, summary)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn chunks_keep_every_invariant(recipe in recipe(), limits in vec(limit(), 1..4)) {
        let rm = collect(&recipe);
        let mut encoder = MetricsEncoder::new();
        for limit in limits {
            check_chunks(&mut encoder, &rm, limit);
        }
    }

    #[test]
    fn single_request_matches_the_reference_transform(recipe in recipe()) {
        let rm = collect(&recipe);
        let ours = roundtrip(&mut MetricsEncoder::new(), &rm);
        let reference = opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::from(&rm)
            .encode_to_vec();
        // Values are below i64::MAX here, so there is no documented difference to mask.
        prop_assert_eq!(ours, decode(&reference));
    }

    /// An exporter keeps one encoder for its whole life while the metrics change from one
    /// export to the next (new series, other sizes, metrics that come and go): the length
    /// widths and headers it remembers from the previous export must never show in the bytes.
    #[test]
    fn one_encoder_over_changing_exports_writes_what_a_fresh_one_writes(
        recipes in vec(recipe(), 2..5),
        limit in limit(),
    ) {
        let mut kept = MetricsEncoder::new();
        for recipe in &recipes {
            let rm = collect(recipe);
            let fresh = MetricsEncoder::new().encode_request(&rm).to_vec();
            prop_assert_eq!(kept.encode_request(&rm), &fresh[..]);
            let fresh = chunks(&mut MetricsEncoder::new(), &rm, limit);
            prop_assert_eq!(chunks(&mut kept, &rm, limit), fresh);
        }
    }

    #[test]
    fn the_fuzz_entry_holds_for_random_bytes(data in vec(any::<u8>(), 0..400)) {
        fuzz_one(&data);
    }
}
