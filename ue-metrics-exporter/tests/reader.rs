//! UserEventsReader: no collection while nobody listens, nothing lost when someone attaches.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{decode, merge, parse_payload};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use otlp_metrics_encode::proto::metrics::v1::{metric::Data, number_data_point::Value};
use ue_metrics_exporter::sink::CaptureSink;
use ue_metrics_exporter::{ExportReport, MetricsExporter, UserEventsReader};

const NEVER: Duration = Duration::from_secs(3600);

fn setup(
    interval: Duration,
) -> (
    CaptureSink,
    MetricsExporter,
    UserEventsReader,
    SdkMeterProvider,
) {
    setup_with_event_bytes(interval, ue_metrics_exporter::DEFAULT_MAX_EVENT_BYTES)
}

fn setup_with_event_bytes(
    interval: Duration,
    max_event_bytes: usize,
) -> (
    CaptureSink,
    MetricsExporter,
    UserEventsReader,
    SdkMeterProvider,
) {
    let sink = CaptureSink::new();
    let exporter = MetricsExporter::builder()
        .with_max_event_bytes(max_event_bytes)
        .build_with_sink(sink.clone())
        .unwrap();
    let reader = UserEventsReader::builder(exporter.clone())
        .with_interval(interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(common::resource())
        .with_reader(reader.clone())
        .build();
    (sink, exporter, reader, provider)
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// (value, start, time) of the only point of counter `name` in the captured events.
fn counter_point(events: &[Vec<u8>], name: &str) -> (u64, u64, u64) {
    let requests: Vec<_> = events
        .iter()
        .map(|e| decode(parse_payload(e).buffer))
        .collect();
    let merged = merge(&requests);
    let metric = &merged[&("app".to_owned(), name.to_owned())];
    let Some(Data::Sum(sum)) = &metric.data else {
        panic!("{name} is a sum")
    };
    assert_eq!(sum.data_points.len(), 1);
    let p = &sum.data_points[0];
    let Some(Value::AsInt(v)) = p.value else {
        panic!("integer value")
    };
    (v as u64, p.start_time_unix_nano, p.time_unix_nano)
}

#[test]
fn while_nobody_listens_nothing_is_collected_and_no_delta_is_lost() {
    let (sink, exporter, reader, provider) = setup(NEVER);
    sink.set_enabled(false);
    let before = nanos(SystemTime::now());
    let counter = provider.meter("app").u64_counter("requests").build();
    let collected = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = collected.clone();
    provider
        .meter("app")
        .u64_observable_gauge("callback.runs")
        .with_callback(move |o| {
            o.observe(
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u64 + 1,
                &[],
            )
        })
        .build();

    for (i, add) in [1u64, 2, 4].into_iter().enumerate() {
        counter.add(add, &[KeyValue::new("route", "/")]);
        assert_eq!(reader.tick().unwrap(), None, "interval {i}: skipped");
    }
    let stats = exporter.stats();
    assert_eq!(
        (stats.collections_skipped_no_listener, stats.collections),
        (3, 0)
    );
    assert_eq!(
        collected.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no callback ran"
    );

    // A listener attaches: the next interval carries everything since the start.
    sink.set_enabled(true);
    let report = reader.tick().unwrap();
    assert!(
        matches!(report, Some(ExportReport::Written { .. })),
        "{report:?}"
    );
    let (value, start, time) = counter_point(&sink.take(), "requests");
    assert_eq!(value, 7);
    assert!(
        start >= before && start <= time,
        "start {start} before {before} or after {time}"
    );

    // The next delta starts where the previous one ended.
    counter.add(8, &[KeyValue::new("route", "/")]);
    reader.tick().unwrap();
    let (value2, start2, time2) = counter_point(&sink.take(), "requests");
    assert_eq!(value2, 8);
    assert_eq!(start2, time, "delta windows are contiguous");
    assert!(time2 >= start2);
    assert_eq!(exporter.stats().collections, 2);
    assert_eq!(collected.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[test]
fn the_reader_thread_exports_on_its_interval_only_while_listened_to() {
    let (sink, exporter, _reader, provider) = setup(Duration::from_millis(20));
    sink.set_enabled(false);
    let counter = provider.meter("app").u64_counter("ticks").build();
    counter.add(3, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while exporter.stats().collections_skipped_no_listener < 3 {
        assert!(Instant::now() < deadline, "the thread never ticked");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(exporter.stats().collections, 0);
    assert!(sink.take().is_empty());

    sink.set_enabled(true);
    let mut events = Vec::new();
    while events.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no export after the listener attached"
        );
        std::thread::sleep(Duration::from_millis(10));
        events = sink.take();
    }
    assert_eq!(counter_point(&events, "ticks").0, 3);
    provider.shutdown().unwrap();
}

#[test]
fn shutdown_exports_what_is_left_and_unregisters() {
    let (sink, exporter, _reader, provider) = setup(NEVER);
    provider
        .meter("app")
        .u64_counter("last")
        .build()
        .add(5, &[]);
    provider.shutdown().unwrap();
    assert_eq!(counter_point(&sink.take(), "last").0, 5);
    assert_eq!(sink.close_calls(), 1);
    assert!(!exporter.listener_attached());
}

#[test]
fn force_flush_exports_now_when_listened_to() {
    let (sink, _exporter, _reader, provider) = setup(NEVER);
    provider
        .meter("app")
        .u64_counter("flushed")
        .build()
        .add(2, &[]);
    provider.force_flush().unwrap();
    assert_eq!(counter_point(&sink.take(), "flushed").0, 2);
    sink.set_enabled(false);
    provider
        .meter("app")
        .u64_counter("flushed")
        .build()
        .add(2, &[]);
    provider.force_flush().unwrap();
    assert!(sink.take().is_empty());
}

#[test]
fn without_user_events_the_reader_never_collects() {
    let dir = std::env::temp_dir().join(format!("ue-exporter-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("trace"), "").unwrap();
    let exporter = MetricsExporter::builder()
        .with_tracefs_root(&dir)
        .build()
        .expect("build succeeds without user_events");
    assert!(exporter.unavailable().is_some());
    let reader = UserEventsReader::builder(exporter.clone())
        .with_interval(NEVER)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader.clone())
        .build();
    provider.meter("app").u64_counter("c").build().add(1, &[]);
    assert_eq!(reader.tick().unwrap(), None);
    assert_eq!(exporter.stats().collections, 0);
    assert_eq!(exporter.stats().collections_skipped_no_listener, 1);
    provider.shutdown().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_listener_leaving_mid_export_loses_nothing_and_duplicates_nothing() {
    let (sink, exporter, reader, provider) = setup_with_event_bytes(NEVER, 300);
    let meter = provider.meter("app");
    let counters: Vec<_> = (0..20)
        .map(|i| meter.u64_counter(format!("c{i}")).build())
        .collect();
    for (i, c) in counters.iter().enumerate() {
        c.add(i as u64 + 1, &[]);
    }

    // The only listener leaves after two events of a many-event export.
    sink.disable_after(2);
    let report = reader.tick().unwrap();
    assert!(
        matches!(report, Some(ExportReport::ListenerLeft { events: 2, .. })),
        "{report:?}"
    );
    let first = sink.take();
    assert_eq!(first.len(), 2);

    // Nobody listens for a while: nothing is collected, the unfinished export waits.
    sink.set_enabled(false);
    assert_eq!(reader.tick().unwrap(), None);
    for (i, c) in counters.iter().enumerate() {
        c.add(100 * (i as u64 + 1), &[]);
    }

    // A listener attaches: the rest of the first collection, then a new one.
    sink.set_enabled(true);
    let report = reader.tick().unwrap();
    assert!(
        matches!(report, Some(ExportReport::Written { .. })),
        "{report:?}"
    );
    let rest = sink.take();
    let all: Vec<_> = first.iter().chain(&rest).collect();
    let mut seen = std::collections::BTreeMap::<String, Vec<(u64, u64, u64)>>::new();
    for event in all {
        for rm in decode(parse_payload(event).buffer).resource_metrics {
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    let Some(Data::Sum(sum)) = m.data else {
                        panic!("{} is a sum", m.name)
                    };
                    for p in sum.data_points {
                        let Some(Value::AsInt(v)) = p.value else {
                            panic!("integer value")
                        };
                        seen.entry(m.name.clone()).or_default().push((
                            v as u64,
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(seen.len(), 20, "every counter arrived: {:?}", seen.keys());
    for i in 0..20u64 {
        let points = &seen[&format!("c{i}")];
        let values: Vec<u64> = points.iter().map(|p| p.0).collect();
        // Once per collection, in order, each delta once: nothing lost, nothing twice.
        assert_eq!(values, [i + 1, 100 * (i + 1)], "c{i}");
        assert_eq!(points[1].1, points[0].2, "c{i}: contiguous delta windows");
    }
    assert_eq!(exporter.stats().collections, 2);
}
