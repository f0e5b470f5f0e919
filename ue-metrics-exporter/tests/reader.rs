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

/// A sink for the failure paths: captures like `CaptureSink`, and on request panics in its
/// next write, or blocks in its next write until the test lets it go.
#[derive(Clone, Default)]
struct TroubleSink {
    capture: CaptureSink,
    trouble: std::sync::Arc<Trouble>,
}

#[derive(Default)]
struct Trouble {
    panics_left: std::sync::atomic::AtomicUsize,
    /// The next calls of `enabled` that panic.
    enabled_panics_left: std::sync::atomic::AtomicUsize,
    /// (tell the test the write is blocked, wait for the test's release)
    gate: std::sync::Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
    /// The same for the next call of `enabled`.
    enabled_gate: std::sync::Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

use std::sync::mpsc;

impl TroubleSink {
    /// The next `n` writes panic.
    fn panic_next(&self, n: usize) {
        self.trouble
            .panics_left
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The next `n` calls of `enabled` panic.
    fn panic_in_enabled_next(&self, n: usize) {
        self.trouble
            .enabled_panics_left
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The next call of `enabled` blocks: returns (entered, release).
    fn block_next_enabled(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        *self.trouble.enabled_gate.lock().unwrap() = Some((entered_tx, release_rx));
        (entered_rx, release_tx)
    }

    /// The next write blocks: returns (entered, release).
    fn block_next(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        *self.trouble.gate.lock().unwrap() = Some((entered_tx, release_rx));
        (entered_rx, release_tx)
    }
}

impl ue_metrics_exporter::Sink for TroubleSink {
    fn enabled(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let left = self.trouble.enabled_panics_left.load(Relaxed);
        if left > 0 {
            self.trouble.enabled_panics_left.store(left - 1, Relaxed);
            panic!("the test sink's enabled() panics on purpose");
        }
        let gate = self.trouble.enabled_gate.lock().unwrap().take();
        if let Some((entered, release)) = gate {
            entered.send(()).unwrap();
            let _ = release.recv();
        }
        self.capture.enabled()
    }

    fn write(&self, parts: &[std::io::IoSlice<'_>]) -> Result<(), ue_metrics_exporter::SinkError> {
        use std::sync::atomic::Ordering::Relaxed;
        let left = self.trouble.panics_left.load(Relaxed);
        if left > 0 {
            self.trouble.panics_left.store(left - 1, Relaxed);
            panic!("the test sink panics on purpose");
        }
        let gate = self.trouble.gate.lock().unwrap().take();
        if let Some((entered, release)) = gate {
            entered.send(()).unwrap();
            let _ = release.recv();
        }
        self.capture.write(parts)
    }
}

fn trouble_setup(
    interval: Duration,
) -> (
    TroubleSink,
    MetricsExporter,
    UserEventsReader,
    SdkMeterProvider,
) {
    let sink = TroubleSink::default();
    let exporter = MetricsExporter::builder()
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

/// Holds the exporter's encoder from another thread: a direct export through a clone of the
/// exporter, blocked in its first write. Returns the release handle and the thread.
fn hold_the_encoder(
    sink: &TroubleSink,
    exporter: &MetricsExporter,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (other_provider, other_reader) =
        common::pipeline(opentelemetry_sdk::metrics::Temporality::Delta);
    other_provider
        .meter("other")
        .u64_counter("x")
        .build()
        .add(1, &[]);
    let rm = other_reader.collect_now();
    let (entered, release) = sink.block_next();
    let clone = exporter.clone();
    let thread = std::thread::spawn(move || {
        clone.export_metrics(&rm).expect("the direct export");
    });
    entered.recv().unwrap();
    (release, thread)
}

/// Values of counter `name` over the captured events (one per collection that carried it).
fn counter_values(events: &[Vec<u8>], name: &str) -> Vec<u64> {
    let mut values = Vec::new();
    for event in events {
        for rm in decode(parse_payload(event).buffer).resource_metrics {
            for sm in rm.scope_metrics {
                for m in sm.metrics.into_iter().filter(|m| m.name == name) {
                    let Some(Data::Sum(sum)) = m.data else {
                        panic!("{name} is a sum")
                    };
                    for p in sum.data_points {
                        let Some(Value::AsInt(v)) = p.value else {
                            panic!("integer value")
                        };
                        values.push(v as u64);
                    }
                }
            }
        }
    }
    values
}

#[test]
fn an_interval_whose_export_finds_the_encoder_busy_is_not_lost() {
    let (sink, exporter, reader, provider) = trouble_setup(NEVER);
    let counter = provider.meter("app").u64_counter("busy").build();
    counter.add(5, &[]);
    let (release, other) = hold_the_encoder(&sink, &exporter);
    let result = reader.tick();
    assert!(
        matches!(result, Err(ue_metrics_exporter::ExportError::Busy)),
        "{result:?}"
    );
    release.send(()).unwrap();
    other.join().unwrap();
    sink.capture.take();

    counter.add(2, &[]);
    reader.tick().unwrap();
    // The kept interval first, then the new one: nothing lost, nothing merged twice.
    assert_eq!(counter_values(&sink.capture.take(), "busy"), [5, 2]);
}

#[test]
fn force_flush_that_finds_the_encoder_busy_keeps_the_interval() {
    let (sink, exporter, _reader, provider) = trouble_setup(NEVER);
    let counter = provider.meter("app").u64_counter("flush.busy").build();
    counter.add(4, &[]);
    let (release, other) = hold_the_encoder(&sink, &exporter);
    assert!(provider.force_flush().is_err(), "busy is reported");
    release.send(()).unwrap();
    other.join().unwrap();
    sink.capture.take();

    provider.force_flush().unwrap();
    assert_eq!(counter_values(&sink.capture.take(), "flush.busy"), [4]);
}

#[test]
fn an_interval_whose_write_fails_is_sent_with_the_next_export() {
    let (sink, exporter, reader, provider) = setup(NEVER);
    let counter = provider.meter("app").u64_counter("write.fails").build();
    counter.add(6, &[]);
    sink.fail_write(1);
    let result = reader.tick();
    assert!(
        matches!(
            result,
            Err(ue_metrics_exporter::ExportError::WriteFailed { .. })
        ),
        "{result:?}"
    );
    assert!(sink.take().is_empty());

    counter.add(1, &[]);
    reader.tick().unwrap();
    assert_eq!(counter_values(&sink.take(), "write.fails"), [6, 1]);
    assert_eq!(exporter.stats().write_errors, 1);
}

#[test]
fn a_panicking_sink_is_caught_counted_and_its_interval_kept() {
    let (sink, exporter, reader, provider) = trouble_setup(NEVER);
    let counter = provider.meter("app").u64_counter("sink.panics").build();
    counter.add(9, &[]);
    sink.panic_next(1);
    let result = reader.tick();
    assert!(
        matches!(
            result,
            Err(ue_metrics_exporter::ExportError::Panicked { .. })
        ),
        "{result:?}"
    );
    assert_eq!(exporter.stats().panics, 1);

    counter.add(1, &[]);
    reader.tick().unwrap();
    assert_eq!(counter_values(&sink.capture.take(), "sink.panics"), [9, 1]);
}

/// The interval thread (20 ms) meets `panics` panics armed by `arm`, then still exports the
/// counter `name`'s 3, once; every panic is counted.
fn the_interval_thread_exports_after_panics(
    name: &'static str,
    panics: u64,
    arm: impl FnOnce(&TroubleSink),
) {
    let (sink, exporter, _reader, provider) = trouble_setup(Duration::from_millis(20));
    let counter = provider.meter("app").u64_counter(name).build();
    arm(&sink);
    counter.add(3, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut values = Vec::new();
    while values.iter().sum::<u64>() < 3 {
        assert!(
            Instant::now() < deadline,
            "no export after the panics: {:?}",
            exporter.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
        values.extend(counter_values(&sink.capture.take(), name));
    }
    assert_eq!(values, [3]);
    assert_eq!(exporter.stats().panics, panics);
    provider.shutdown().unwrap();
}

#[test]
fn the_interval_thread_survives_a_panicking_sink_and_keeps_exporting() {
    the_interval_thread_exports_after_panics("thread.panics", 2, |sink| sink.panic_next(2));
}

#[test]
fn the_interval_thread_survives_a_panicking_enabled_check_and_keeps_exporting() {
    the_interval_thread_exports_after_panics("enabled.panics", 3, |sink| {
        sink.panic_in_enabled_next(3)
    });
}

#[test]
fn a_panicking_enabled_check_is_caught_by_every_caller_and_means_nobody_listens() {
    let (sink, exporter, reader, provider) = trouble_setup(NEVER);
    let counter = provider.meter("app").u64_counter("enabled.callers").build();
    counter.add(2, &[]);
    // The exporter's own check (what the SDK's PeriodicReader calls), then the reader's.
    let (other_provider, other_reader) =
        common::pipeline(opentelemetry_sdk::metrics::Temporality::Delta);
    other_provider
        .meter("other")
        .u64_counter("x")
        .build()
        .add(1, &[]);
    sink.panic_in_enabled_next(1);
    assert_eq!(
        exporter
            .export_metrics(&other_reader.collect_now())
            .unwrap(),
        ExportReport::NoListener
    );
    sink.panic_in_enabled_next(1);
    assert!(!exporter.listener_attached());
    sink.panic_in_enabled_next(1);
    assert!(reader.tick().unwrap().is_none());
    sink.panic_in_enabled_next(1);
    provider.force_flush().unwrap();
    assert_eq!(exporter.stats().panics, 4);
    assert!(sink.capture.take().is_empty());

    // Listening again: the interval was kept.
    reader.tick().unwrap();
    assert_eq!(counter_values(&sink.capture.take(), "enabled.callers"), [2]);
}

#[test]
fn the_interval_thread_survives_a_panicking_callback() {
    let (_sink, exporter, _reader, provider) = setup(Duration::from_millis(20));
    provider
        .meter("app")
        .u64_observable_gauge("flaky")
        .with_callback(|_| panic!("the callback panics on purpose"))
        .build();
    // The SDK (0.33) runs callbacks under its pipeline's lock, which the panic poisons: every
    // later collection of this provider fails ("Failed to lock pipeline"); its own
    // PeriodicReader's thread would be gone. Ours counts the panic once and keeps ticking.
    let deadline = Instant::now() + Duration::from_secs(20);
    while exporter.stats().collections_failed < 3 {
        assert!(
            Instant::now() < deadline,
            "the thread stopped: {:?}",
            exporter.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(exporter.stats().panics, 1);
}

#[test]
fn collections_that_the_sdk_refuses_are_logged_once_when_they_start_failing() {
    let logs = common::LogNames::default();
    tracing::subscriber::with_default(logs.clone(), || {
        let (_sink, exporter, reader, provider) = setup(NEVER);
        provider
            .meter("app")
            .u64_observable_gauge("flaky")
            .with_callback(|_| panic!("the callback panics on purpose"))
            .build();
        // The panic, then collections the poisoned SDK pipeline refuses.
        for _ in 0..4 {
            assert!(reader.tick().is_err());
        }
        assert_eq!(exporter.stats().collections_failed, 4);
    });
    assert_eq!(logs.count("UserEventsReader.Panicked"), 1);
    assert_eq!(logs.count("UserEventsReader.CollectionsFailing"), 1);
}

#[test]
fn a_panicking_callback_is_reported_by_tick() {
    let (_sink, exporter, reader, provider) = setup(NEVER);
    provider
        .meter("app")
        .u64_observable_gauge("flaky")
        .with_callback(|_| panic!("the callback panics on purpose"))
        .build();
    let result = reader.tick();
    assert!(
        matches!(
            result,
            Err(ue_metrics_exporter::ExportError::Panicked {
                events_written: 0,
                ..
            })
        ),
        "{result:?}"
    );
    let stats = exporter.stats();
    assert_eq!((stats.panics, stats.collections_failed), (1, 1));
}

#[test]
fn a_collection_whose_export_keeps_failing_is_dropped_after_the_last_attempt_and_counted() {
    let (sink, exporter, reader, provider) = trouble_setup(NEVER);
    let counter = provider.meter("app").u64_counter("poison").build();
    counter.add(1, &[]);
    sink.panic_next(UserEventsReader::MAX_EXPORT_ATTEMPTS as usize);
    for attempt in 1..UserEventsReader::MAX_EXPORT_ATTEMPTS {
        let result = reader.tick();
        assert!(
            matches!(
                result,
                Err(ue_metrics_exporter::ExportError::Panicked { .. })
            ),
            "attempt {attempt}: {result:?}"
        );
        counter.add(10, &[]);
    }
    // The last attempt fails too: that collection is given up, the next one goes out.
    let report = reader.tick().unwrap();
    assert!(
        matches!(report, Some(ExportReport::Written { .. })),
        "{report:?}"
    );
    let stats = exporter.stats();
    assert_eq!(
        (stats.collections_dropped, stats.panics, stats.collections),
        (1, 3, 2)
    );
    let expected = 10 * (UserEventsReader::MAX_EXPORT_ATTEMPTS as u64 - 1);
    assert_eq!(counter_values(&sink.capture.take(), "poison"), [expected]);
}

#[test]
fn a_kept_collection_that_shutdown_cannot_finish_is_counted_as_dropped() {
    use opentelemetry_sdk::metrics::reader::MetricReader as _;
    // Nobody listens at shutdown, or the listener leaves again during shutdown's last export.
    for listener_back_for_one_event in [false, true] {
        let (sink, exporter, reader, provider) = setup_with_event_bytes(NEVER, 300);
        let meter = provider.meter("app");
        for i in 0..20u64 {
            meter.u64_counter(format!("c{i}")).build().add(i + 1, &[]);
        }
        sink.disable_after(2);
        let report = reader.tick().unwrap();
        assert!(
            matches!(report, Some(ExportReport::ListenerLeft { events: 2, .. })),
            "{report:?}"
        );
        if listener_back_for_one_event {
            sink.set_enabled(true);
            sink.disable_after(1);
        }
        reader.shutdown().unwrap();
        let stats = exporter.stats();
        assert_eq!(
            stats.collections_dropped, 1,
            "listener back: {listener_back_for_one_event}: {stats:?}"
        );
        let written = if listener_back_for_one_event { 3 } else { 2 };
        assert_eq!(sink.take().len(), written);
    }
}

#[test]
fn a_tick_that_started_before_shutdown_does_nothing_after_it() {
    use opentelemetry_sdk::metrics::reader::MetricReader as _;
    const NOT_STUCK: Duration = Duration::from_secs(20);
    let (sink, exporter, reader, provider) = trouble_setup(NEVER);
    provider
        .meter("app")
        .u64_counter("late")
        .build()
        .add(1, &[]);
    let spawn = |f: fn(&UserEventsReader) -> String| {
        let reader = reader.clone();
        std::thread::spawn(move || f(&reader))
    };
    // A flush holds the collection lock, blocked in its write.
    let (flush_entered, release_flush) = sink.block_next();
    let flush = spawn(|r| format!("{:?}", r.force_flush()));
    flush_entered
        .recv_timeout(NOT_STUCK)
        .expect("flush reached its gate");
    // A tick passes its shutdown check (it is in the enable check after it), then waits
    // for the lock.
    let (tick_entered, release_tick) = sink.block_next_enabled();
    let late = spawn(|r| format!("{:?}", r.tick()));
    tick_entered
        .recv_timeout(NOT_STUCK)
        .expect("tick reached its gate");
    release_tick.send(()).unwrap();
    // Shutdown starts (it is in its enable check, after marking the reader shut down); then
    // the flush ends, and the tick and shutdown's last export take the lock in either order.
    let (shutdown_entered, release_shutdown) = sink.block_next_enabled();
    let shutdown = spawn(|r| format!("{:?}", r.shutdown()));
    shutdown_entered
        .recv_timeout(NOT_STUCK)
        .expect("shutdown reached its gate");
    release_shutdown.send(()).unwrap();
    release_flush.send(()).unwrap();
    assert_eq!(flush.join().unwrap(), "Ok(())");
    assert_eq!(shutdown.join().unwrap(), "Ok(())");
    assert_eq!(late.join().unwrap(), "Err(Shutdown)");
    let stats = exporter.stats();
    // The flush's collection and shutdown's last one; the late tick collected nothing.
    assert_eq!(
        (stats.collections, stats.collections_failed),
        (2, 0),
        "{stats:?}"
    );
    assert_eq!(counter_values(&sink.capture.take(), "late"), [1]);
}

#[test]
fn after_shutdown_force_flush_and_shutdown_say_already_shut_down() {
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::metrics::reader::MetricReader as _;
    let (_sink, _exporter, reader, provider) = setup(NEVER);
    provider.shutdown().unwrap();
    assert!(matches!(
        reader.force_flush(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert!(matches!(
        reader.shutdown(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert!(matches!(
        reader.tick(),
        Err(ue_metrics_exporter::ExportError::Shutdown)
    ));
}

#[test]
fn force_flush_and_shutdown_wait_at_most_the_timeout_for_a_stuck_export() {
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::metrics::reader::MetricReader as _;
    let sink = TroubleSink::default();
    let exporter = MetricsExporter::builder()
        .build_with_sink(sink.clone())
        .unwrap();
    let timeout = Duration::from_millis(100);
    let reader = UserEventsReader::builder(exporter)
        .with_interval(Duration::from_millis(10))
        .with_timeout(timeout)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader.clone())
        .build();
    provider
        .meter("app")
        .u64_counter("stuck")
        .build()
        .add(1, &[]);
    // The interval thread's export blocks in the sink.
    let (entered, release) = sink.block_next();
    entered.recv().unwrap();

    let started = Instant::now();
    assert!(matches!(reader.force_flush(), Err(OTelSdkError::Timeout(t)) if t == timeout));
    assert!(matches!(reader.shutdown(), Err(OTelSdkError::Timeout(t)) if t == timeout));
    // Bounded: two waits of about `timeout` each (generous margin for a loaded machine).
    assert!(started.elapsed() < Duration::from_secs(10));

    release.send(()).unwrap();
    assert_eq!(
        counter_values(&wait_for_events(&sink.capture), "stuck"),
        [1]
    );
}

fn wait_for_events(sink: &CaptureSink) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = sink.take();
        if !events.is_empty() {
            return events;
        }
        assert!(Instant::now() < deadline, "no events");
        std::thread::sleep(Duration::from_millis(10));
    }
}
