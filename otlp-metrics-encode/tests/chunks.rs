//! Mode (b) on the reference workloads and on edge limits.

use std::convert::Infallible;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::Temporality;
use otlp_metrics_encode::check::{
    alone_size, check_chunks, decode, flatten, fuzz_one, roundtrip, Item, Point,
};
use otlp_metrics_encode::workloads::{self, InstrumentRecipe, Kind, Recipe, ScopeRecipe};
use otlp_metrics_encode::{MetricsEncoder, OversizeCause, DEFAULT_MAX_REQUEST_BYTES};

#[test]
fn workloads_split_at_the_default_limit() {
    let mut encoder = MetricsEncoder::new();
    for w in workloads::all() {
        let check = check_chunks(&mut encoder, &w.metrics, DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(
            check.summary.points, w.points,
            "{}: every point delivered",
            w.name
        );
        assert_eq!(check.summary.oversized_points, 0, "{}", w.name);
        let full = encoder.encode_request(&w.metrics).len();
        assert!(
            check.summary.chunks >= full.div_ceil(DEFAULT_MAX_REQUEST_BYTES),
            "{}",
            w.name
        );
    }
}

#[test]
fn an_unlimited_budget_gives_exactly_the_single_request() {
    let mut encoder = MetricsEncoder::new();
    for w in workloads::all() {
        let full = encoder.encode_request(&w.metrics).to_vec();
        let mut chunks = Vec::new();
        let summary = encoder
            .encode_chunks(&w.metrics, usize::MAX, |c| {
                chunks.push(c.to_vec());
                Ok::<(), Infallible>(())
            })
            .unwrap_or_else(|never| match never {});
        assert_eq!(chunks, vec![full], "{}", w.name);
        assert_eq!(summary.chunks, 1);
    }
}

#[test]
fn every_limit_from_tiny_to_large_keeps_the_invariants() {
    let w = workloads::w2();
    let mut encoder = MetricsEncoder::new();
    for limit in [
        0, 1, 100, 150, 200, 300, 400, 512, 700, 1000, 1500, 4048, 8168, 65_536,
    ] {
        check_chunks(&mut encoder, &w.metrics, limit);
    }
}

#[test]
fn points_that_cannot_fit_alone_are_reported_and_the_rest_continues() {
    let w = workloads::w2();
    let mut encoder = MetricsEncoder::new();
    // A limit between the largest counter/gauge point and the smallest histogram point (each
    // measured as the smallest request carrying it) must drop exactly the histogram points.
    let items = flatten(roundtrip(&mut encoder, &w.metrics));
    let is_histogram = |item: &Item| matches!(item.point, Some(Point::Histogram(_)));
    let largest_other = items
        .iter()
        .filter(|i| !is_histogram(i))
        .map(alone_size)
        .max();
    let smallest_histogram = items
        .iter()
        .filter(|i| is_histogram(i))
        .map(alone_size)
        .min();
    let (largest_other, smallest_histogram) = (largest_other.unwrap(), smallest_histogram.unwrap());
    assert!(
        largest_other < smallest_histogram,
        "{largest_other} {smallest_histogram}"
    );
    let limit = largest_other;
    let check = check_chunks(&mut encoder, &w.metrics, limit);
    assert_eq!(
        check.summary.oversized_points, 200,
        "the 10 x 20 histogram points"
    );
    assert_eq!(check.summary.points, 800, "the counters and gauges");
    let first = check.summary.first_oversized.expect("reported");
    assert!(first.metric.starts_with("w2.duration"), "{}", first.metric);
    assert!(first.point_bytes > limit && first.limit == limit);
    assert!(first.to_string().contains("w2.duration"), "{first}");
    // Nothing fits at all at a limit below the resource's own size.
    let check = check_chunks(&mut encoder, &w.metrics, 100);
    assert_eq!(
        (check.summary.chunks, check.summary.oversized_points),
        (0, w.points)
    );
}

#[test]
fn a_sink_error_stops_the_export_and_is_returned() {
    let w = workloads::w3();
    let mut encoder = MetricsEncoder::new();
    let mut seen = 0;
    let result = encoder.encode_chunks(&w.metrics, DEFAULT_MAX_REQUEST_BYTES, |chunk| {
        decode(chunk);
        seen += 1;
        if seen == 3 {
            Err("disk full")
        } else {
            Ok(())
        }
    });
    assert_eq!(result, Err("disk full"));
    assert_eq!(seen, 3, "no chunk after the error");

    // The export stopped in the middle of a request: the next one starts clean.
    let collect = |encoder: &mut MetricsEncoder| {
        let mut chunks = Vec::new();
        encoder
            .encode_chunks(&w.metrics, DEFAULT_MAX_REQUEST_BYTES, |c| {
                chunks.push(c.to_vec());
                Ok::<(), Infallible>(())
            })
            .unwrap_or_else(|never| match never {});
        chunks
    };
    assert_eq!(collect(&mut encoder), collect(&mut MetricsEncoder::new()));
}

#[test]
fn the_fuzz_entry_accepts_any_bytes() {
    let seeds: [&[u8]; 6] = [
        b"",
        b"\x00",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        b"otlp metrics encode fuzz seed with some length to it",
        &[7; 200],
        &[
            0x80, 0x01, 0x7f, 0x33, 0x99, 0x10, 0x02, 0xfe, 0x45, 0x07, 0x07, 0x31, 0x00, 0x64,
        ],
    ];
    for seed in seeds {
        fuzz_one(seed);
    }
}

#[test]
fn a_reused_encoder_gives_the_same_bytes_as_a_fresh_one() {
    // Largest first, so later exports run over stale bytes of a bigger one and over length
    // prefix widths remembered too wide; then smallest first, so the widths are too narrow.
    let mut shapes = workloads::all();
    shapes.reverse();
    let mut reused = MetricsEncoder::new();
    for pass in 0..2 {
        for w in &shapes {
            let fresh = MetricsEncoder::new().encode_request(&w.metrics).to_vec();
            assert_eq!(
                reused.encode_request(&w.metrics),
                fresh,
                "{} pass {pass}",
                w.name
            );
            let mut fresh_chunks = Vec::new();
            MetricsEncoder::new()
                .encode_chunks(&w.metrics, 1000, |c| {
                    fresh_chunks.push(c.to_vec());
                    Ok::<(), Infallible>(())
                })
                .unwrap_or_else(|never| match never {});
            let mut reused_chunks = Vec::new();
            reused
                .encode_chunks(&w.metrics, 1000, |c| {
                    reused_chunks.push(c.to_vec());
                    Ok::<(), Infallible>(())
                })
                .unwrap_or_else(|never| match never {});
            assert_eq!(reused_chunks, fresh_chunks, "{} pass {pass}", w.name);
        }
        shapes.reverse();
    }
}

/// One scope `app` with two counters of three points each; `description` for both.
fn small_scope(attributes: Vec<KeyValue>, description: &str) -> ScopeRecipe {
    let counter = |name: &str| InstrumentRecipe {
        kind: Kind::U64Counter,
        name: name.to_owned(),
        description: description.to_owned(),
        unit: "{request}".to_owned(),
        measurements: (0..3)
            .map(|i| (1.0, vec![KeyValue::new("route", format!("/r{i}"))]))
            .collect(),
    };
    ScopeRecipe {
        name: "app".to_owned(),
        version: None,
        schema_url: None,
        attributes,
        instruments: vec![counter("requests"), counter("errors")],
    }
}

fn recipe(resource: Vec<KeyValue>, scopes: Vec<ScopeRecipe>) -> Recipe {
    Recipe {
        resource,
        resource_schema_url: None,
        temporality: Temporality::Delta,
        scopes,
    }
}

#[test]
fn a_resource_larger_than_the_budget_is_reported_as_the_resource() {
    let resource = workloads::kubernetes_resource();
    assert_eq!(resource.len(), 30);
    let rm = workloads::collect(&recipe(resource, vec![small_scope(vec![], "")]));
    let mut encoder = MetricsEncoder::new();
    let check = check_chunks(&mut encoder, &rm, DEFAULT_MAX_REQUEST_BYTES);
    assert_eq!(
        (check.summary.chunks, check.summary.oversized_points),
        (0, 6)
    );
    let first = check.summary.first_oversized.expect("reported");
    let OversizeCause::Resource { bytes } = first.cause else {
        panic!("reported as {:?}", first.cause);
    };
    assert!(
        (4500..6000).contains(&bytes) && bytes < first.point_bytes,
        "{bytes}"
    );
    let text = first.to_string();
    assert!(
        text.contains("resource") && text.contains(&bytes.to_string()),
        "{text}"
    );
    assert!(!text.contains("data point of metric"), "{text}");
}

#[test]
fn a_scope_or_metric_identity_larger_than_the_budget_is_reported_as_such() {
    let big = |n| vec![KeyValue::new("blob", "x".repeat(n))];
    // The first scope fits; the second's attributes alone exceed the budget.
    let mut second = small_scope(big(3000), "");
    second.name = "heavy".to_owned();
    let rm = workloads::collect(&recipe(
        vec![KeyValue::new("service.name", "a")],
        vec![small_scope(vec![], ""), second],
    ));
    let mut encoder = MetricsEncoder::new();
    let check = check_chunks(&mut encoder, &rm, 2000);
    assert_eq!(
        (check.summary.points, check.summary.oversized_points),
        (6, 6)
    );
    let first = check.summary.first_oversized.expect("reported");
    match &first.cause {
        OversizeCause::Scope { scope, bytes } => {
            assert!(
                scope.starts_with("heavy") && *bytes > 3000,
                "{scope} {bytes}"
            )
        }
        other => panic!("reported as {other:?}"),
    }
    assert!(first.to_string().contains("heavy"), "{first}");

    // A metric description longer than the budget: only that identity is to blame.
    let rm = workloads::collect(&recipe(
        vec![KeyValue::new("service.name", "a")],
        vec![small_scope(vec![], &"d".repeat(3000))],
    ));
    let check = check_chunks(&mut encoder, &rm, 2000);
    let first = check.summary.first_oversized.expect("reported");
    assert!(
        matches!(first.cause, OversizeCause::Metric { bytes } if bytes > 3000),
        "{:?}",
        first.cause
    );
    assert!(first.to_string().contains("description"), "{first}");

    // A point whose own attributes are too big stays a data point.
    let w = workloads::w2();
    let check = check_chunks(&mut encoder, &w.metrics, 300);
    let first = check.summary.first_oversized.expect("reported");
    assert_eq!(first.cause, OversizeCause::DataPoint);
}

#[test]
fn metric_identities_longer_than_the_inline_copies_split_like_short_ones() {
    // A name, description and unit of more than 2 x 32 bytes together take another path when
    // a request opens the metric's section; a mix of both kinds, across request boundaries.
    let sets: Vec<Vec<KeyValue>> = (0..30).map(|i| vec![KeyValue::new("k", i)]).collect();
    let instrument = |name: &str, description: String| InstrumentRecipe {
        kind: Kind::F64Counter,
        name: name.to_owned(),
        description,
        unit: "{thing}".to_owned(),
        measurements: sets
            .iter()
            .enumerate()
            .map(|(i, attributes)| (i as f64, attributes.clone()))
            .collect(),
    };
    let rm = workloads::collect(&Recipe {
        resource: vec![KeyValue::new("service.name", "identities")],
        resource_schema_url: None,
        temporality: Temporality::Cumulative,
        scopes: vec![ScopeRecipe {
            name: "scope".to_owned(),
            version: None,
            schema_url: None,
            attributes: vec![],
            instruments: vec![
                instrument("short", "d".to_owned()),
                instrument("long", "x".repeat(70)),
                instrument("longer", "y".repeat(200)),
                instrument("short.again", String::new()),
            ],
        }],
    });
    let mut encoder = MetricsEncoder::new();
    for limit in [400, 700, 1000, DEFAULT_MAX_REQUEST_BYTES] {
        // Twice: the second export reserves the widths the first one needed.
        for _ in 0..2 {
            let check = check_chunks(&mut encoder, &rm, limit);
            assert_eq!(check.summary.points, 4 * 30, "limit {limit}");
        }
    }
}
