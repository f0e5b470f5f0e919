//! The exporter against an in-memory sink: exact payload bytes, every metric kind, and every
//! error path.

mod common;

use std::sync::Arc;

use common::{
    decode, merge, normalize, parse_payload, pipeline, point_count, record_every_kind, reference,
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use otlp_metrics_encode::proto::metrics::v1::{metric::Data, number_data_point::Value};
use otlp_metrics_encode::MetricsEncoder;
use ue_metrics_exporter::sink::CaptureSink;
use ue_metrics_exporter::{
    ExportError, ExportReport, MetricsExporter, OversizedIdentity, PAYLOAD_HEADER_BYTES,
};

fn exporter(sink: &CaptureSink) -> MetricsExporter {
    MetricsExporter::builder()
        .build_with_sink(sink.clone())
        .expect("default options are valid")
}

/// An exporter with 512-byte events, so that `many_chunks` needs many of them.
fn small_event_exporter(sink: &CaptureSink) -> MetricsExporter {
    MetricsExporter::builder()
        .with_max_event_bytes(512)
        .build_with_sink(sink.clone())
        .expect("512 is a valid event size")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("export must complete without waiting"),
    }
}

fn number(metric: &otlp_metrics_encode::proto::metrics::v1::Metric) -> Value {
    let point = match &metric.data {
        Some(Data::Sum(s)) => &s.data_points[0],
        Some(Data::Gauge(g)) => &g.data_points[0],
        other => panic!("{} is not a number metric: {other:?}", metric.name),
    };
    point.value.expect("value set")
}

#[test]
fn every_metric_kind_arrives_with_the_exact_payload_layout_and_values() {
    for temporality in [Temporality::Delta, Temporality::Cumulative] {
        let (provider, reader) = pipeline(temporality);
        record_every_kind(&provider);
        let rm = reader.collect_now();
        let sink = CaptureSink::new();
        let report = exporter(&sink).export_metrics(&rm).expect("export");
        let events = sink.take();
        let ExportReport::Written {
            events: n,
            bytes,
            points,
        } = report
        else {
            panic!("unexpected {report:?}");
        };
        assert_eq!(n, events.len());
        assert_eq!(bytes, events.iter().map(Vec::len).sum::<usize>());
        assert_eq!(points, 13, "one point per instrument");

        // Exact bytes: the fixed fields, then the encoder's own chunks unchanged.
        let mut expected_chunks = Vec::new();
        MetricsEncoder::new()
            .encode_chunks(&rm, otlp_metrics_encode::DEFAULT_MAX_REQUEST_BYTES, |c| {
                expected_chunks.push(c.to_vec());
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(events.len(), expected_chunks.len());
        let mut requests = Vec::new();
        for (payload, chunk) in events.iter().zip(&expected_chunks) {
            let mut header = vec![0u8, 0, 0, 0];
            header.extend_from_slice(b"v0.19.00");
            header.extend_from_slice(&((chunk.len() as u32) << 16).to_ne_bytes());
            assert_eq!(&payload[..16], &header[..]);
            assert_eq!(&payload[16..], &chunk[..]);
            let p = parse_payload(payload);
            assert_eq!((p.protocol, &p.version), (0, b"v0.19.00"));
            assert!(payload.len() <= user_events_sys::MAX_PAYLOAD_ALL_LISTENERS);
            requests.push(decode(p.buffer));
        }

        // Same content as opentelemetry-proto's transform of the same data.
        let mut ours = merge(&requests);
        let mut theirs = merge(&[reference(&rm)]);
        normalize(&mut ours);
        normalize(&mut theirs);
        assert_eq!(ours, theirs, "{temporality:?}");

        // And the values recorded.
        let get = |name: &str| &ours[&("kinds".to_owned(), name.to_owned())];
        assert_eq!(number(get("c.u64")), Value::AsInt(7));
        assert_eq!(number(get("c.f64")), Value::AsDouble(2.5));
        assert_eq!(number(get("ud.i64")), Value::AsInt(7));
        assert_eq!(number(get("ud.f64")), Value::AsDouble(-1.5));
        assert_eq!(number(get("g.u64")), Value::AsInt(42));
        assert_eq!(number(get("g.i64")), Value::AsInt(-42));
        assert_eq!(number(get("g.f64")), Value::AsDouble(0.25));
        assert_eq!(number(get("oc.u64")), Value::AsInt(99));
        assert_eq!(number(get("oud.i64")), Value::AsInt(-5));
        assert_eq!(number(get("og.f64")), Value::AsDouble(3.75));
        let Some(Data::Histogram(h)) = &get("h.f64").data else {
            panic!("h.f64 is a histogram")
        };
        let p = &h.data_points[0];
        assert_eq!(
            (p.count, p.sum, p.min, p.max),
            (3, Some(38.0), Some(1.0), Some(30.0))
        );
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 3);
        let Some(Data::Histogram(h)) = &get("h.u64").data else {
            panic!("h.u64 is a histogram")
        };
        assert_eq!(h.data_points[0].explicit_bounds, vec![10.0, 100.0]);
        assert_eq!(h.data_points[0].bucket_counts, vec![0, 1, 0]);
        let Some(Data::ExponentialHistogram(e)) = &get("h.expo").data else {
            panic!("h.expo is an exponential histogram")
        };
        assert_eq!(
            (e.data_points[0].count, e.data_points[0].sum),
            (4, Some(15.0))
        );
        let Some(Data::Sum(s)) = &get("c.u64").data else {
            panic!("c.u64 is a sum")
        };
        assert!(s.is_monotonic);
        let expected_temporality = match temporality {
            Temporality::Delta => 1,
            _ => 2,
        };
        assert_eq!(s.aggregation_temporality, expected_temporality);
    }
}

#[test]
fn nobody_listening_means_nothing_encoded_or_written() {
    let (provider, reader) = pipeline(Temporality::Delta);
    record_every_kind(&provider);
    let rm = reader.collect_now();
    let sink = CaptureSink::new();
    sink.set_enabled(false);
    let exporter = exporter(&sink);
    for _ in 0..3 {
        assert_eq!(
            exporter.export_metrics(&rm).unwrap(),
            ExportReport::NoListener
        );
    }
    assert!(sink.take().is_empty());
    let stats = exporter.stats();
    assert_eq!(stats.exports, 3);
    assert_eq!(stats.exports_skipped_no_listener, 3);
    assert_eq!((stats.points_encoded, stats.events_written), (0, 0));
    assert_eq!(
        sink.enabled_checks(),
        3,
        "one check per export, nothing else"
    );
    // Through the SDK interface it is a success.
    assert!(block_on(exporter.export(&rm)).is_ok());
}

/// Many small chunks: 300 counters with 10 attribute sets each and a 512-byte event budget.
fn many_chunks() -> (opentelemetry_sdk::metrics::data::ResourceMetrics, usize) {
    let (provider, reader) = pipeline(Temporality::Delta);
    let meter = provider.meter("bulk");
    for i in 0..300 {
        let c = meter.u64_counter(format!("bulk.counter.{i}")).build();
        for j in 0..10_i64 {
            c.add(
                (i * 10 + j) as u64 + 1,
                &[KeyValue::new("set", j), KeyValue::new("host", "h1")],
            );
        }
    }
    (reader.collect_now(), 3000)
}

#[test]
fn a_large_export_is_split_into_complete_events_within_the_budget() {
    let (rm, points) = many_chunks();
    let sink = CaptureSink::new();
    let exporter = small_event_exporter(&sink);
    let report = exporter.export_metrics(&rm).unwrap();
    let events = sink.take();
    assert!(events.len() > 50, "{} events", events.len());
    assert!(
        matches!(report, ExportReport::Written { events: n, points: p, .. } if n == events.len() && p == points)
    );
    let requests: Vec<_> = events
        .iter()
        .map(|e| {
            assert!(e.len() <= 512, "event of {} bytes", e.len());
            // Each event stands alone: resource, scope and metric identity included.
            let r = decode(parse_payload(e).buffer);
            let rm = &r.resource_metrics[0];
            assert!(rm
                .resource
                .as_ref()
                .is_some_and(|res| !res.attributes.is_empty()));
            assert_eq!(rm.scope_metrics[0].scope.as_ref().unwrap().name, "bulk");
            r
        })
        .collect();
    let merged = merge(&requests);
    assert_eq!(point_count(&merged), points);
    assert_eq!(merged.len(), 300);
}

#[test]
fn a_listener_leaving_mid_export_stops_the_writes() {
    let (rm, _) = many_chunks();
    let sink = CaptureSink::new();
    let exporter = small_event_exporter(&sink);
    sink.disable_after(3);
    let report = exporter.export_metrics(&rm).unwrap();
    assert!(
        matches!(report, ExportReport::ListenerLeft { events: 3, .. }),
        "{report:?}"
    );
    assert_eq!(sink.take().len(), 3);
    let stats = exporter.stats();
    assert_eq!(
        (
            stats.exports_interrupted,
            stats.events_written,
            stats.write_errors
        ),
        (1, 3, 0)
    );
    // The listener is gone: the next export is skipped before encoding.
    assert_eq!(
        exporter.export_metrics(&rm).unwrap(),
        ExportReport::NoListener
    );
}

#[test]
fn a_failed_write_is_counted_and_named_and_the_next_export_recovers() {
    let (rm, _) = many_chunks();
    let sink = CaptureSink::new();
    let exporter = small_event_exporter(&sink);
    sink.fail_write(2);
    let err = exporter.export_metrics(&rm).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::WriteFailed {
                failed_event: 2,
                events_written: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("writing event 2 failed") && text.contains("refused by the test"),
        "{text}"
    );
    let stats = exporter.stats();
    assert_eq!(
        (
            stats.write_errors,
            stats.exports_failed,
            stats.events_written
        ),
        (1, 1, 1)
    );
    // Through the SDK: an InternalFailure carrying the same text.
    sink.take();
    sink.fail_write(1);
    match block_on(exporter.export(&rm)) {
        Err(OTelSdkError::InternalFailure(msg)) => {
            assert!(msg.contains("writing event 1 failed"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    sink.take();
    assert!(matches!(
        exporter.export_metrics(&rm),
        Ok(ExportReport::Written { .. })
    ));
}

#[test]
fn oversized_points_are_dropped_counted_and_named_while_the_rest_is_written() {
    let (provider, reader) = pipeline(Temporality::Delta);
    let meter = provider.meter("sizes");
    let huge = "x".repeat(5000);
    meter
        .u64_counter("fits")
        .build()
        .add(1, &[KeyValue::new("k", "v")]);
    meter
        .u64_counter("too.big")
        .build()
        .add(1, &[KeyValue::new("blob", huge)]);
    let rm = reader.collect_now();
    let sink = CaptureSink::new();
    let exporter = exporter(&sink);
    let err = exporter.export_metrics(&rm).unwrap_err();
    match &err {
        ExportError::OversizedPoints {
            count,
            metric,
            point_bytes,
            limit,
            events_written,
        } => {
            assert_eq!(
                (*count, metric.as_str(), *events_written),
                (1, "too.big", 1)
            );
            assert!(
                *point_bytes > 5000 && *limit == otlp_metrics_encode::DEFAULT_MAX_REQUEST_BYTES
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("too.big"));
    let events = sink.take();
    assert_eq!(events.len(), 1);
    let merged = merge(&[decode(parse_payload(&events[0]).buffer)]);
    assert!(merged.contains_key(&("sizes".to_owned(), "fits".to_owned())));
    assert!(!merged.contains_key(&("sizes".to_owned(), "too.big".to_owned())));
    assert_eq!(exporter.stats().points_dropped_oversized, 1);
}

#[test]
fn a_resource_larger_than_an_event_is_reported_as_the_resource_not_as_points() {
    // 30 Kubernetes-style resource attributes (about 5 KB) at the default event size.
    let reader = common::SharedReader(Arc::new(
        opentelemetry_sdk::metrics::ManualReader::builder().build(),
    ));
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_attributes(otlp_metrics_encode::workloads::kubernetes_resource())
                .build(),
        )
        .with_reader(reader.clone())
        .build();
    let counter = provider.meter("app").u64_counter("requests").build();
    let sink = CaptureSink::new();
    let exporter = exporter(&sink);
    for round in 0..2 {
        counter.add(1, &[KeyValue::new("route", "/a")]);
        counter.add(1, &[KeyValue::new("route", "/b")]);
        let err = exporter.export_metrics(&reader.collect_now()).unwrap_err();
        match &err {
            ExportError::IdentityTooLarge {
                part: OversizedIdentity::Resource,
                bytes,
                limit,
                points_dropped: 2,
                events_written: 0,
            } => assert!(
                *bytes > *limit && *limit == otlp_metrics_encode::DEFAULT_MAX_REQUEST_BYTES,
                "{bytes} {limit}"
            ),
            other => panic!("round {round}: {other:?}"),
        }
        let text = err.to_string();
        for remedy in ["resource attributes", "with_max_event_bytes", "perf"] {
            assert!(text.contains(remedy), "{remedy}: {text}");
        }
        assert!(!text.contains("requests"), "not blamed on a metric: {text}");
    }
    assert!(sink.take().is_empty());
    assert_eq!(exporter.stats().points_dropped_oversized, 4);
}

#[test]
fn shutdown_unregisters_once_and_later_exports_are_refused() {
    let (provider, reader) = pipeline(Temporality::Delta);
    record_every_kind(&provider);
    let rm = reader.collect_now();
    let sink = CaptureSink::new();
    let exporter = exporter(&sink);
    assert!(exporter.force_flush().is_ok());
    assert!(exporter.shutdown().is_ok());
    assert!(exporter.shutdown().is_ok(), "idempotent");
    assert_eq!(sink.close_calls(), 1);
    assert!(matches!(
        exporter.export_metrics(&rm),
        Err(ExportError::Shutdown)
    ));
    assert!(matches!(
        block_on(exporter.export(&rm)),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert!(sink.take().is_empty());
}

#[test]
fn temporality_defaults_to_delta_and_is_configurable() {
    let sink = CaptureSink::new();
    assert_eq!(exporter(&sink).temporality(), Temporality::Delta);
    let cumulative = MetricsExporter::builder()
        .with_temporality(Temporality::Cumulative)
        .build_with_sink(sink)
        .unwrap();
    assert_eq!(cumulative.temporality(), Temporality::Cumulative);
}

#[test]
fn a_custom_version_string_is_written_as_given() {
    let (provider, reader) = pipeline(Temporality::Delta);
    provider.meter("v").u64_counter("c").build().add(1, &[]);
    let rm = reader.collect_now();
    let sink = CaptureSink::new();
    MetricsExporter::builder()
        .with_protocol_version("v1.02.03")
        .build_with_sink(sink.clone())
        .unwrap()
        .export_metrics(&rm)
        .unwrap();
    let events = sink.take();
    assert_eq!(&parse_payload(&events[0]).version, b"v1.02.03");
}

#[test]
fn several_exporters_in_one_process_write_independently() {
    let (provider, reader) = pipeline(Temporality::Delta);
    record_every_kind(&provider);
    let rm = Arc::new(reader.collect_now());
    let sinks: Vec<CaptureSink> = (0..4).map(|_| CaptureSink::new()).collect();
    let exporters: Vec<MetricsExporter> = sinks
        .iter()
        .enumerate()
        .map(|(i, s)| {
            MetricsExporter::builder()
                .with_event_name(format!("tenant_{i}"))
                .build_with_sink(s.clone())
                .unwrap()
        })
        .collect();
    sinks[2].set_enabled(false);
    std::thread::scope(|scope| {
        for exporter in &exporters {
            let rm = rm.clone();
            scope.spawn(move || {
                for _ in 0..10 {
                    exporter.export_metrics(&rm).unwrap();
                }
            });
        }
    });
    let per_export = sinks[0].take().len() / 10;
    assert!(per_export >= 1);
    for (i, sink) in sinks.iter().enumerate() {
        let expected = if i == 2 { 0 } else { per_export * 10 };
        if i != 0 {
            assert_eq!(sink.take().len(), expected, "sink {i}");
        }
        assert_eq!(exporters[i].stats().exports, 10);
    }
    assert_eq!(exporters[2].stats().exports_skipped_no_listener, 10);
}

#[test]
fn the_budget_constants_agree_across_crates() {
    assert_eq!(
        otlp_metrics_encode::DEFAULT_MAX_REQUEST_BYTES + PAYLOAD_HEADER_BYTES,
        user_events_sys::MAX_PAYLOAD_ALL_LISTENERS
    );
    assert_eq!(
        MetricsExporter::builder()
            .build_with_sink(CaptureSink::new())
            .unwrap()
            .max_request_bytes(),
        otlp_metrics_encode::DEFAULT_MAX_REQUEST_BYTES
    );
}

fn empty_tracefs(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ue-exporter-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn without_user_events_build_succeeds_and_exports_are_skipped_and_counted() {
    // An empty directory is no tracefs at all.
    let dir = empty_tracefs("notracefs");
    let none = MetricsExporter::builder()
        .with_tracefs_root(&dir)
        .build()
        .unwrap();
    let why = none.unavailable().expect("no tracefs");
    assert_eq!(why.kind(), ue_metrics_exporter::UnavailableKind::NoTracefs);
    assert!(why.to_string().contains("mount -t tracefs"), "{why}");
    std::fs::remove_dir_all(&dir).unwrap();

    // A tracefs without user_events_data: a kernel without user_events.
    let dir = empty_tracefs("nouser");
    std::fs::write(dir.join("trace"), "").unwrap();
    let exporter = MetricsExporter::builder()
        .with_tracefs_root(&dir)
        .build()
        .expect("build never fails because the kernel lacks user_events");
    let why = exporter
        .unavailable()
        .expect("no user_events_data in an empty dir");
    assert_eq!(
        why.kind(),
        ue_metrics_exporter::UnavailableKind::NoUserEvents
    );
    assert!(why.to_string().contains("CONFIG_USER_EVENTS"), "{why}");
    assert!(!exporter.listener_attached());

    let (provider, reader) = pipeline(Temporality::Delta);
    record_every_kind(&provider);
    let rm = reader.collect_now();
    // Typed: Unavailable. Through the SDK: Ok, counted (documented choice).
    assert!(matches!(exporter.export_metrics(&rm), Err(ExportError::Unavailable(u)) if u == *why));
    assert!(block_on(exporter.export(&rm)).is_ok());
    let stats = exporter.stats();
    assert_eq!((stats.exports, stats.exports_skipped_unavailable), (2, 2));
    assert_eq!(stats.points_encoded, 0);
    assert!(exporter.shutdown().is_ok());

    let strict = MetricsExporter::builder()
        .with_tracefs_root(&dir)
        .with_require_user_events(true)
        .build()
        .unwrap_err();
    assert!(
        matches!(strict, ue_metrics_exporter::BuildError::Unavailable(ref u) if u.kind() == ue_metrics_exporter::UnavailableKind::NoUserEvents)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn build_with_discovery_succeeds_on_any_kernel() {
    // On a kernel with user_events this registers; elsewhere it must still build.
    let exporter = MetricsExporter::builder()
        .with_event_name("ue_exporter_host_probe")
        .build()
        .expect("build succeeds");
    if let Some(why) = exporter.unavailable() {
        assert!(!why.detail().is_empty());
    }
    assert!(exporter.shutdown().is_ok());
}
