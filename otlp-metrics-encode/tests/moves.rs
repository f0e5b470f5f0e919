//! No byte moves in steady state: once the encoder has seen an export of a given shape, every
//! length prefix it reserves has the right width (no body is moved to make room or close a
//! gap), in both modes. Prints the counts of the first and of a steady-state export.

use std::convert::Infallible;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::Temporality;
use otlp_metrics_encode::check::{count_moves, Moves};
use otlp_metrics_encode::workloads::{self, InstrumentRecipe, Kind, Recipe, ScopeRecipe};
use otlp_metrics_encode::{MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};

fn chunks(encoder: &mut MetricsEncoder, w: &workloads::Workload) -> usize {
    encoder
        .encode_chunks(&w.metrics, DEFAULT_MAX_REQUEST_BYTES, |_| {
            Ok::<(), Infallible>(())
        })
        .unwrap_or_else(|never| match never {})
        .chunks
}

fn show(moves: Moves) -> String {
    format!(
        "{} length fixes ({} bytes), {} carried points ({} bytes)",
        moves.length_fixes, moves.length_fix_bytes, moves.carries, moves.carry_bytes
    )
}

#[test]
fn steady_state_exports_move_no_body_in_either_mode() {
    let mut failures = Vec::new();
    for w in workloads::all() {
        let mut encoder = MetricsEncoder::new();
        let (_, first_request) = count_moves(|| encoder.encode_request(&w.metrics).len());
        let (_, steady_request) = count_moves(|| encoder.encode_request(&w.metrics).len());
        let (_, first_chunks) = count_moves(|| chunks(&mut encoder, &w));
        let (_, steady_chunks) = count_moves(|| chunks(&mut encoder, &w));
        println!(
            "{}: request: first {}, steady {}; chunks: first {}, steady {}",
            w.name,
            show(first_request),
            show(steady_request),
            show(first_chunks),
            show(steady_chunks)
        );
        if steady_request.length_fixes != 0 || steady_chunks.length_fixes != 0 {
            failures.push(w.name);
        }
    }
    assert!(
        failures.is_empty(),
        "steady-state exports moved bodies: {failures:?}"
    );
}

/// A recipe whose resource and scope need other length widths than the usual guesses (a
/// resource below 128 or above 16 KiB, a scope above 128 bytes), with long points.
fn unusual_widths(resource_value_bytes: usize) -> Recipe {
    let long = |n: usize| KeyValue::new(format!("k{n}"), "v".repeat(40));
    Recipe {
        resource: vec![KeyValue::new("r", "x".repeat(resource_value_bytes))],
        resource_schema_url: None,
        temporality: Temporality::Cumulative,
        scopes: vec![ScopeRecipe {
            name: "scope".to_owned(),
            version: Some("1.0.0".to_owned()),
            schema_url: None,
            attributes: (0..5).map(long).collect(),
            instruments: vec![InstrumentRecipe {
                kind: Kind::F64Counter,
                name: "long.points".to_owned(),
                description: String::new(),
                unit: String::new(),
                measurements: (0..4)
                    .map(|i: usize| (i as f64, (0..4).map(|k| long(k + 10 * i)).collect()))
                    .collect(),
            }],
        }],
    }
}

#[test]
fn resource_and_scope_widths_are_remembered_too() {
    for resource_value_bytes in [1, 20_000] {
        let rm = workloads::collect(&unusual_widths(resource_value_bytes));
        let mut encoder = MetricsEncoder::new();
        let chunks = |encoder: &mut MetricsEncoder| {
            encoder
                .encode_chunks(&rm, usize::MAX, |_| Ok::<(), Infallible>(()))
                .unwrap_or_else(|never| match never {})
        };
        let (_, first_request) = count_moves(|| encoder.encode_request(&rm).len());
        let (_, first_chunks) = count_moves(|| chunks(&mut encoder));
        assert!(
            first_request.length_fixes > 0 && first_chunks.length_fixes > 0,
            "the usual guesses are wrong here: {first_request:?} {first_chunks:?}"
        );
        let (_, steady_request) = count_moves(|| encoder.encode_request(&rm).len());
        let (_, steady_chunks) = count_moves(|| chunks(&mut encoder));
        assert_eq!(
            (steady_request.length_fixes, steady_chunks.length_fixes),
            (0, 0),
            "resource value {resource_value_bytes} bytes"
        );
    }
}
