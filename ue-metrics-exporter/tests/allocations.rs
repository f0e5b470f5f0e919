//! Steady-state exports allocate nothing (checked with a counting global allocator).
//!
//! One test function only: the allocator counts the whole process, so no other test may run
//! next to it.

#[path = "common/workloads.rs"]
mod workloads;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

use ue_metrics_exporter::sink::{DiscardSink, NoListenerSink};
use ue_metrics_exporter::{ExportReport, MetricsExporter};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations_during(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    let change = region.change();
    change.allocations + change.reallocations
}

#[test]
fn steady_state_and_disabled_exports_allocate_nothing() {
    for (name, rm) in [
        ("W1", workloads::w1()),
        ("W2", workloads::w2()),
        ("W3", workloads::w3()),
    ] {
        let exporter = MetricsExporter::builder()
            .build_with_sink(DiscardSink)
            .unwrap();
        // Warm up: the encoder sizes its buffers once.
        for _ in 0..3 {
            let report = exporter.export_metrics(&rm);
            assert!(
                matches!(report, Ok(ExportReport::Written { .. })),
                "{report:?}"
            );
        }
        let n = allocations_during(|| {
            for _ in 0..10 {
                let _ = std::hint::black_box(exporter.export_metrics(&rm));
            }
        });
        assert_eq!(n, 0, "{name}: {n} allocations in 10 exports");
        assert_eq!(
            exporter.stats().points_encoded,
            13 * workloads::points(&rm) as u64
        );
    }

    let rm = workloads::w1();
    let exporter = MetricsExporter::builder()
        .build_with_sink(NoListenerSink)
        .unwrap();
    let n = allocations_during(|| {
        for _ in 0..100 {
            let _ = std::hint::black_box(exporter.export_metrics(&rm));
        }
    });
    assert_eq!(n, 0, "disabled path: {n} allocations");
    assert_eq!(exporter.stats().exports_skipped_no_listener, 100);
}
