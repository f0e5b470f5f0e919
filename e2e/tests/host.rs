//! Host checks of the suite's own tools (no kernel needed): the whole pipeline with the
//! exporter's in-memory sink in place of the kernel, the canonical comparison, and the app
//! binary on a machine without user_events.

use std::process::Command;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};
use ue_metrics_decode::decode_payload;
use ue_metrics_e2e::known::{self, expected_counter, KnownInstruments, INSTRUMENTS};
use ue_metrics_e2e::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_e2e::proto::common::v1::{any_value, AnyValue, KeyValue as OtlpKeyValue};
use ue_metrics_e2e::reference::{
    compare, metric_names, one_event_per_point_bytes, point_count, points_of, render_attributes,
    single_point_requests, Canonical, PointValue,
};
use ue_metrics_e2e::tee::TeeExporter;
use ue_metrics_exporter::sink::CaptureSink;
use ue_metrics_exporter::MetricsExporter;

/// The known app through the SDK, our exporter (at `max_event_bytes`) and a capture sink; the
/// payloads decoded again. Returns (decoded, what the SDK produced, events written).
fn run_known_app(
    temporality: Temporality,
    max_event_bytes: usize,
) -> (
    Vec<ExportMetricsServiceRequest>,
    Vec<ExportMetricsServiceRequest>,
    u64,
) {
    let sink = CaptureSink::new();
    let exporter = MetricsExporter::builder()
        .with_temporality(temporality)
        .with_max_event_bytes(max_event_bytes)
        .build_with_sink(sink.clone())
        .expect("exporter");
    let tee = TeeExporter::new(exporter.clone());
    let log = tee.log();
    let reader = PeriodicReader::builder(tee)
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = known::provider_builder().with_reader(reader).build();
    let instruments = KnownInstruments::register(&provider.meter(known::SCOPE));
    for round in 1..=2 {
        instruments.record_round(round);
        provider.force_flush().expect("flush");
    }
    sink.set_enabled(false);
    provider.shutdown().expect("shutdown");
    let decoded = sink
        .take()
        .iter()
        .map(|p| {
            decode_payload(p)
                .expect("payload")
                .to_request()
                .expect("request")
        })
        .collect();
    let exports = log.take();
    assert!(exports.iter().all(|e| e.complete));
    let expected = exports.into_iter().map(|e| e.reference).collect();
    (decoded, expected, exporter.stats().events_written)
}

#[test]
fn the_known_app_round_trips_through_a_capture_sink() {
    for temporality in [
        Temporality::Delta,
        Temporality::Cumulative,
        Temporality::LowMemory,
    ] {
        let (decoded, expected, events) = run_known_app(temporality, 4064);
        let agreement = compare(&decoded, &expected).unwrap_or_else(|m| panic!("{m}"));
        assert_eq!(decoded.len() as u64, events);
        assert_eq!(agreement.points, point_count(&expected));
        assert_eq!(metric_names(&decoded).len(), INSTRUMENTS.len());
        let mut counter: Vec<_> = points_of(&decoded, "c.u64")
            .into_iter()
            .filter(|p| p.attributes == "k=a")
            .collect();
        counter.sort_by_key(|p| p.time);
        assert_eq!(
            counter.iter().map(|p| p.value.clone()).collect::<Vec<_>>(),
            [1, 2].map(|r| PointValue::Int(expected_counter(temporality, r) as i64))
        );
    }
}

#[test]
fn splitting_over_many_events_keeps_the_same_canonical_form() {
    let (big, big_expected, big_events) = run_known_app(Temporality::Cumulative, 4064);
    let (small, small_expected, small_events) = run_known_app(Temporality::Cumulative, 512);
    assert!(small_events > big_events, "{small_events} vs {big_events}");
    compare(&small, &small_expected).unwrap_or_else(|m| panic!("{m}"));
    compare(&big, &big_expected).unwrap_or_else(|m| panic!("{m}"));
    // Split or not, each decodes to as many points as the SDK produced.
    assert_eq!(point_count(&small), point_count(&big));
}

#[test]
fn a_changed_point_is_reported_with_both_versions() {
    let (decoded, expected, _) = run_known_app(Temporality::Delta, 4064);
    let mut tampered = decoded.clone();
    let sum = tampered[0].resource_metrics[0].scope_metrics[0]
        .metrics
        .iter_mut()
        .find_map(|m| match &mut m.data {
            Some(ue_metrics_e2e::proto::metrics::v1::metric::Data::Sum(s)) => Some(s),
            _ => None,
        })
        .expect("a sum");
    sum.data_points[0].time_unix_nano += 1;
    let mismatch = compare(&tampered, &expected).expect_err("one point differs");
    assert_eq!(mismatch.decoded_points, mismatch.expected_points);
    assert_eq!(
        (mismatch.only_decoded.len(), mismatch.only_expected.len()),
        (1, 1)
    );
    // A missing point too.
    let mut fewer = decoded;
    fewer.pop();
    let mismatch = compare(&fewer, &expected).expect_err("points missing");
    assert!(mismatch.decoded_points < mismatch.expected_points);
    assert!(mismatch.to_string().contains("only expected"));
}

#[test]
fn single_point_requests_carry_their_identity() {
    let (decoded, _, _) = run_known_app(Temporality::Delta, 4064);
    let singles = single_point_requests(&decoded);
    assert_eq!(singles.len(), point_count(&decoded));
    for single in &singles {
        assert_eq!(point_count(std::slice::from_ref(single)), 1);
        let rm = &single.resource_metrics[0];
        assert!(rm.resource.is_some());
        assert_eq!(
            rm.scope_metrics[0].scope.as_ref().map(|s| s.name.as_str()),
            Some(known::SCOPE)
        );
    }
    let canonical = Canonical::of(&decoded);
    assert_eq!(canonical.points(), singles.len());
    assert_eq!(
        canonical.one_event_per_point_bytes(),
        one_event_per_point_bytes(&decoded)
    );
    // One event per point costs more than the packed events.
    let packed: usize = decoded
        .iter()
        .map(|r| 16 + prost::Message::encoded_len(r))
        .sum();
    assert!(canonical.one_event_per_point_bytes() > packed);
}

#[test]
fn attributes_render_as_text() {
    let kv = |k: &str, v: any_value::Value| OtlpKeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..OtlpKeyValue::default()
    };
    assert_eq!(render_attributes(&[]), "-");
    assert_eq!(
        render_attributes(&[
            kv("route", any_value::Value::StringValue("/a".into())),
            kv("n", any_value::Value::IntValue(7)),
            kv("ok", any_value::Value::BoolValue(true)),
        ]),
        "route=/a,n=7,ok=true"
    );
}

#[test]
fn the_app_runs_to_its_end_without_user_events() {
    // This host has no user_events (or this user no access): the exporter stays inactive and
    // the app still records, exports (skipped) and exits 0.
    let expect = std::env::temp_dir().join(format!("e2e-host-{}.expect", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_ue-e2e-app"))
        .args(["--rounds", "2", "--wait-listener", "0", "--expect"])
        .arg(&expect)
        .output()
        .expect("run the app");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("APP-STATS "))
        .expect("stats line");
    let written = std::fs::read(&expect).expect("expect file");
    let _ = std::fs::remove_file(&expect);
    let field = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {line}"))
    };
    if field("events") == 0 {
        // No user_events, no access, or nobody listening: every export was skipped.
        assert!(written.is_empty(), "nothing exported, nothing expected");
        assert_eq!(field("exports"), 0, "{line}");
        assert!(
            field("skipped_unavailable") + field("skipped_no_listener") >= 2,
            "{line}"
        );
    } else {
        // A host with user_events and a listener: the file holds what was exported.
        assert!(!written.is_empty(), "{line}");
    }
}

#[test]
fn the_app_rejects_bad_arguments() {
    let output = Command::new(env!("CARGO_BIN_EXE_ue-e2e-app"))
        .args(["--temporality", "sideways"])
        .output()
        .expect("run the app");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("sideways"));
}

#[test]
fn one_tick_of_the_load_is_about_the_demo_apps_export() {
    let sink = CaptureSink::new();
    let exporter = MetricsExporter::builder()
        .build_with_sink(sink.clone())
        .expect("exporter");
    let tee = TeeExporter::new(exporter.clone());
    let log = tee.log();
    let reader = PeriodicReader::builder(tee)
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = known::provider_builder().with_reader(reader).build();
    let load = ue_metrics_e2e::load::DemoShapedLoad::register(&provider.meter("load"));
    for tick in 1..=2 {
        load.record_tick(tick);
        provider.force_flush().expect("flush");
    }
    sink.set_enabled(false);
    provider.shutdown().expect("shutdown");
    let exports = log.take();
    assert_eq!(exports.len(), 2);
    for export in &exports {
        // Every tick touches every series: 3 request instruments x 40 sets, and the known
        // instruments (the demo app exports some 150 points a second).
        let points = point_count(std::slice::from_ref(&export.reference));
        assert!((3 * 40 + 18..=3 * 40 + 40).contains(&points), "{points}");
        assert!(
            export.events >= 2,
            "several events per export, as the demo's"
        );
    }
    assert_eq!(
        exporter.stats().events_written,
        exports.iter().map(|e| e.events).sum::<u64>()
    );
}
