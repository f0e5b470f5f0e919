//! Exports from one data point to W3 (10,000 points) arrive complete through perf, no record
//! lost, every event within the budget; events per export versus one event per point.

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::Temporality;
use otlp_metrics_encode::workloads::{self, InstrumentRecipe, Kind, Recipe, ScopeRecipe};
use ue_metrics_e2e::collector::Collector;
use ue_metrics_e2e::guest::measure;
use ue_metrics_e2e::reference::{reference_request, Canonical};
use ue_metrics_exporter::{ExportReport, DEFAULT_MAX_EVENT_BYTES};
use user_events_sys::PERF_MAX_PAYLOAD;

use crate::common::{assert_stats_match, exporter};

/// One u64 counter with `points` attribute sets.
fn counter_with_points(points: usize) -> ResourceMetrics {
    workloads::collect(&Recipe {
        resource: vec![KeyValue::new("service.name", "e2e-sizes")],
        resource_schema_url: None,
        temporality: Temporality::Cumulative,
        scopes: vec![ScopeRecipe {
            name: "sizes".into(),
            version: Some("1.0".into()),
            schema_url: None,
            attributes: vec![],
            instruments: vec![InstrumentRecipe {
                kind: Kind::U64Counter,
                name: "size.requests".into(),
                description: "requests".into(),
                unit: "{request}".into(),
                measurements: (0..points)
                    .map(|i| (1.0 + i as f64, vec![KeyValue::new("i", i as i64)]))
                    .collect(),
            }],
        }],
    })
}

#[test]
fn exports_from_one_point_to_w3_arrive_complete_through_perf() {
    let mut cases: Vec<(String, ResourceMetrics)> = vec![
        ("1".into(), counter_with_points(1)),
        ("10".into(), counter_with_points(10)),
    ];
    for w in [
        workloads::w1(),
        workloads::w2(),
        workloads::w2e(),
        workloads::w3(),
    ] {
        cases.push((w.name.to_owned(), w.metrics));
    }
    let budgets = [DEFAULT_MAX_EVENT_BYTES, PERF_MAX_PAYLOAD];
    let exporters: Vec<_> = budgets
        .iter()
        .map(|&max| exporter(&format!("e2e_sizes_{max}"), Temporality::Cumulative, max))
        .collect();
    let mut names = Vec::new();
    for (name, rm) in &cases {
        let expected = Canonical::of(&[reference_request(rm)]);
        let points = expected.points();
        measure(&format!("size_{name}_points"), points);
        measure(
            &format!("size_{name}_per_point_bytes"),
            expected.one_event_per_point_bytes(),
        );
        for (exporter, &max) in exporters.iter().zip(&budgets) {
            let what = format!("{name} at {max} bytes");
            // 4 MiB per CPU: W3 (about 1.2 MB) fits in one ring without draining.
            let mut collector =
                Collector::attach(exporter.event_name(), 1024).expect("perf listener");
            let before = exporter.stats();
            let report = exporter.export_metrics(rm).expect("export");
            let ExportReport::Written {
                events,
                bytes,
                points: written_points,
            } = report
            else {
                panic!("{what}: {report:?}")
            };
            let received = collector.take().expect("drain");
            assert_eq!(collector.lost(), 0, "{what}: perf lost records");
            drop(collector);
            assert_eq!(received.events(), events, "{what}: every event arrived");
            assert_eq!(received.payload_bytes(), bytes, "{what}: bytes");
            assert_eq!(written_points, points, "{what}: points written");
            let largest = received.largest_payload();
            assert!(largest <= max, "{what}: an event of {largest} bytes");
            let decoded = received.requests().expect("every record decodes");
            let agreement = Canonical::of(&decoded)
                .compare(&expected)
                .unwrap_or_else(|m| panic!("{what}: {m}"));
            assert_eq!(agreement.points, points, "{what}");
            let mut delta = exporter.stats();
            delta.events_written -= before.events_written;
            delta.bytes_written -= before.bytes_written;
            delta.points_encoded -= before.points_encoded;
            assert_stats_match(&delta, &received, &what);
            measure(&format!("size_{name}_{max}_events"), events);
            measure(&format!("size_{name}_{max}_bytes"), bytes);
            measure(&format!("size_{name}_{max}_largest"), largest);
        }
        names.push(name.clone());
    }
    measure("sizes", names.join(","));
    measure("sizes_budgets", budgets.map(|b| b.to_string()).join(","));
}
