//! Every instrument kind, value type and temporality: app -> SDK -> exporter -> kernel ->
//! perf -> decoder, compared with what the SDK produced.

use std::collections::BTreeSet;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::Temporality;
use ue_metrics_e2e::collector::Collector;
use ue_metrics_e2e::guest::measure;
use ue_metrics_e2e::known::{self, expected_counter, KnownInstruments, INSTRUMENTS};
use ue_metrics_e2e::proto::metrics::v1::metric::Data;
use ue_metrics_e2e::reference::{compare, metric_names, points_of, PointValue};
use ue_metrics_e2e::tee::TeeExporter;
use ue_metrics_exporter::DEFAULT_MAX_EVENT_BYTES;

use crate::common::{assert_stats_match, exporter, provider_with};

/// A budget small enough that the 18 instruments need many events.
const SMALL_EVENT_BYTES: usize = 512;
const ROUNDS: u64 = 2;

#[test]
fn every_instrument_kind_value_type_and_temporality_round_trips() {
    let event = "e2e_kinds";
    let mut points = 0;
    let mut temporalities = Vec::new();
    for (temporality, tag, otlp_value) in [
        (Temporality::Delta, "delta", 1),
        (Temporality::Cumulative, "cumulative", 2),
        (Temporality::LowMemory, "low-memory", 1),
    ] {
        for max in [DEFAULT_MAX_EVENT_BYTES, SMALL_EVENT_BYTES] {
            let what = format!("{tag}, {max}-byte events");
            let exporter = exporter(event, temporality, max);
            let tee = TeeExporter::new(exporter.clone());
            let log = tee.log();
            let provider = provider_with(tee);
            let instruments = KnownInstruments::register(&provider.meter(known::SCOPE));
            let mut collector = Collector::attach(event, 256).expect("perf listener");
            for round in 1..=ROUNDS {
                instruments.record_round(round);
                provider.force_flush().expect("flush");
            }
            let received = collector.take().expect("drain");
            assert_eq!(collector.lost(), 0, "{what}");
            drop(collector);
            provider.shutdown().expect("shutdown");

            let exports = log.take();
            assert_eq!(exports.len() as u64, ROUNDS, "{what}: one export per flush");
            assert!(exports.iter().all(|e| e.complete), "{what}");
            let expected: Vec<_> = exports.iter().map(|e| e.reference.clone()).collect();
            let decoded = received.requests().expect("every record decodes");
            let agreement = compare(&decoded, &expected).unwrap_or_else(|m| panic!("{what}: {m}"));
            assert_eq!(
                metric_names(&decoded),
                INSTRUMENTS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<BTreeSet<_>>(),
                "{what}: every instrument arrived"
            );
            assert!(received.largest_payload() <= max, "{what}");
            assert_stats_match(&exporter.stats(), &received, &what);

            // The recorded values, read back: c.u64{k=a} per export, in time order.
            let mut counter: Vec<_> = points_of(&decoded, "c.u64")
                .into_iter()
                .filter(|p| p.attributes == "k=a")
                .collect();
            counter.sort_by_key(|p| p.time);
            let values: Vec<_> = counter.iter().map(|p| p.value.clone()).collect();
            let want: Vec<_> = (1..=ROUNDS)
                .map(|r| PointValue::Int(expected_counter(temporality, r) as i64))
                .collect();
            assert_eq!(values, want, "{what}: c.u64 as recorded");
            // And the temporality on the wire (OTLP: DELTA = 1, CUMULATIVE = 2).
            let temporality_on_wire = decoded
                .iter()
                .flat_map(|r| &r.resource_metrics)
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .find_map(|m| match &m.data {
                    Some(Data::Sum(s)) if m.name == "c.u64" => Some(s.aggregation_temporality),
                    _ => None,
                });
            assert_eq!(temporality_on_wire, Some(otlp_value), "{what}");

            points += agreement.points;
            let events = received.events();
            measure(&format!("kinds_events_{tag}_{max}"), events);
            if !temporalities.contains(&tag) {
                temporalities.push(tag);
            }
        }
    }
    measure("kinds_instruments", INSTRUMENTS.len());
    measure("kinds_temporalities", temporalities.join(","));
    measure("kinds_points_equal", points);
}
