//! Zero allocations in steady state: after the first export of a given shape, both modes
//! allocate nothing. Its own test binary because it installs a counting global allocator
//! (stats_alloc), and a single test so no other test allocates while a region is measured.
//! Also prints the reference transform's allocations per point for comparison.

use std::alloc::System;
use std::convert::Infallible;
use std::hint::black_box;

use otlp_metrics_encode::workloads;
use otlp_metrics_encode::{MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};
use prost::Message;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ROUNDS: usize = 5;

#[test]
fn steady_state_exports_allocate_nothing() {
    for w in workloads::all() {
        let mut encoder = MetricsEncoder::new();
        let chunks = |encoder: &mut MetricsEncoder| {
            encoder
                .encode_chunks(&w.metrics, DEFAULT_MAX_REQUEST_BYTES, |chunk| {
                    black_box(chunk);
                    Ok::<(), Infallible>(())
                })
                .unwrap_or_else(|never| match never {})
        };

        // First export of this shape: the buffers grow.
        let first = Region::new(GLOBAL);
        black_box(encoder.encode_request(&w.metrics));
        black_box(chunks(&mut encoder));
        let first = first.change();

        let region = Region::new(GLOBAL);
        for _ in 0..ROUNDS {
            black_box(encoder.encode_request(&w.metrics));
        }
        let request = region.change();
        let region = Region::new(GLOBAL);
        for _ in 0..ROUNDS {
            black_box(chunks(&mut encoder));
        }
        let chunked = region.change();

        let region = Region::new(GLOBAL);
        let reference =
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::from(
                &w.metrics,
            )
            .encode_to_vec();
        black_box(reference);
        let reference = region.change();

        println!(
            "{}: {} points; first export {} allocations; steady state per export: request {}, \
             chunks {}; reference transform + prost {} allocations ({:.1} per point)",
            w.name,
            w.points,
            first.allocations + first.reallocations,
            (request.allocations + request.reallocations) / ROUNDS,
            (chunked.allocations + chunked.reallocations) / ROUNDS,
            reference.allocations + reference.reallocations,
            (reference.allocations + reference.reallocations) as f64 / w.points as f64,
        );
        assert_eq!(
            (request.allocations, request.reallocations),
            (0, 0),
            "{}: mode (a) allocated in steady state",
            w.name
        );
        assert_eq!(
            (chunked.allocations, chunked.reallocations),
            (0, 0),
            "{}: mode (b) allocated in steady state",
            w.name
        );
        assert!(reference.allocations > w.points, "the counter counts");
    }
}
