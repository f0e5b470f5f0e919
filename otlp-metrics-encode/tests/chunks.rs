//! Mode (b) on the reference workloads and on edge limits.

use std::convert::Infallible;

use otlp_metrics_encode::check::{
    alone_size, check_chunks, decode, flatten, fuzz_one, roundtrip, Item, Point,
};
use otlp_metrics_encode::workloads;
use otlp_metrics_encode::{MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};

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
