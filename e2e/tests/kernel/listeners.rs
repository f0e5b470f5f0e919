//! Listeners that come and go while the app runs, and the exporter's counters against what a
//! collector received.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use ue_metrics_e2e::collector::{Collector, Received};
use ue_metrics_e2e::guest::measure;
use ue_metrics_e2e::known::{self, KnownInstruments};
use ue_metrics_e2e::reference::{compare, points_of, PointValue};
use ue_metrics_e2e::tee::TeeExporter;
use ue_metrics_exporter::{UserEventsReader, DEFAULT_MAX_EVENT_BYTES};

use crate::common::{assert_stats_match, exporter, provider_with};

/// Runs `f` while no tick of the reader can run.
fn under_lock<T>(lock: &Mutex<()>, f: impl FnOnce() -> T) -> T {
    let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
    f()
}

/// Keeps draining `collector` for `time` (as a collector process would), returns what came.
fn listen_for(collector: &mut Collector, time: Duration) -> Received {
    let end = Instant::now() + time;
    while Instant::now() < end {
        collector.drain().expect("drain");
        thread::sleep(Duration::from_millis(20));
    }
    collector.take().expect("drain")
}

#[test]
fn a_listener_attaching_and_detaching_mid_run_loses_no_delta() {
    let event = "e2e_attach";
    let exporter = exporter(event, Temporality::Delta, DEFAULT_MAX_EVENT_BYTES);
    // Our own ticker drives the reader (every 25 ms) so that a detach never falls between a
    // tick's "listener attached?" check and its write: the collection taken then would have
    // nowhere to go (the exporter counts it in exports_skipped_no_listener).
    let reader = UserEventsReader::builder(exporter.clone())
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(known::resource())
        .with_reader(reader.clone())
        .build();
    let counter = provider
        .meter("e2e.attach")
        .u64_counter("attach.ticks")
        .build();
    let stop = Arc::new(AtomicBool::new(false));
    let recorded = Arc::new(AtomicU64::new(0));
    let app = {
        let (stop, recorded) = (stop.clone(), recorded.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                counter.add(1, &[KeyValue::new("phase", "run")]);
                recorded.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let tick_lock = Arc::new(Mutex::new(()));
    let ticker = {
        let (stop, lock, reader) = (stop.clone(), tick_lock.clone(), reader.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                {
                    let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    reader.tick().expect("tick");
                }
                thread::sleep(Duration::from_millis(25));
            }
        })
    };

    // Phase 1: nobody listens.
    thread::sleep(Duration::from_millis(300));
    let idle = exporter.stats();
    assert_eq!(idle.events_written, 0, "no listener, no event");
    assert!(idle.collections_skipped_no_listener > 0, "{idle:?}");

    // Phase 2: a listener attaches mid-run.
    let mut first = under_lock(&tick_lock, || {
        Collector::attach(event, 256).expect("attach")
    });
    assert!(
        exporter.listener_attached(),
        "perf attach sets the enable bit"
    );
    let mut received = listen_for(&mut first, Duration::from_millis(400));
    assert!(received.events() > 0, "the first listener received exports");

    // Phase 3: it detaches (after reading its ring, with no tick in between); the app goes on
    // recording; nothing is written.
    let tail = under_lock(&tick_lock, move || {
        let tail = first.take().expect("drain");
        drop(first);
        tail
    });
    received.extend(tail);
    assert!(
        !exporter.listener_attached(),
        "perf close clears the enable bit"
    );
    let at_detach = exporter.stats();
    thread::sleep(Duration::from_millis(300));
    let detached = exporter.stats();
    assert_eq!(
        detached.events_written, at_detach.events_written,
        "nothing written"
    );
    let skipped =
        detached.collections_skipped_no_listener - at_detach.collections_skipped_no_listener;
    assert!(skipped > 0, "collections skipped while detached");

    // Phase 4: another listener attaches; the app stops; shutdown exports the rest.
    let mut second = under_lock(&tick_lock, || {
        Collector::attach(event, 256).expect("attach")
    });
    let during = listen_for(&mut second, Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    app.join().expect("app thread");
    ticker.join().expect("ticker thread");
    provider.shutdown().expect("shutdown exports the rest");
    received.extend(during);
    received.extend(second.take().expect("drain"));
    assert_eq!(second.lost(), 0);
    drop(second);

    // Every increment arrived exactly once, and no delta overlaps another: the export
    // after the gap carries everything recorded while nobody listened.
    let decoded = received.requests().expect("every record decodes");
    let mut points = points_of(&decoded, "attach.ticks");
    points.sort_by_key(|p| p.time);
    let total: i64 = points
        .iter()
        .map(|p| match p.value {
            PointValue::Int(v) => v,
            ref other => panic!("{other:?}"),
        })
        .sum();
    let recorded = recorded.load(Ordering::Relaxed);
    assert_eq!(
        total as u64, recorded,
        "sum of decoded deltas = increments recorded"
    );
    // No two deltas overlap. They are usually back to back; a collection in which the app
    // thread recorded nothing (it happens under the emulated VM's slow clock) emits no point
    // for the stream, so the next delta starts at that collection instead: a gap in which
    // nothing was recorded, not a lost interval (the sum above counts every increment).
    for pair in points.windows(2) {
        assert!(
            pair[1].start_time >= pair[0].time,
            "a delta starts at or after the end of the previous one: {:?} then {:?}",
            (pair[0].start_time, pair[0].time),
            (pair[1].start_time, pair[1].time)
        );
    }
    let stats = exporter.stats();
    assert_stats_match(&stats, &received, "attach/detach");
    measure("attach_detach_recorded", recorded);
    measure("attach_detach_decoded", total);
    measure("attach_detach_exports", points.len());
    measure(
        "attach_detach_skipped_collections",
        stats.collections_skipped_no_listener,
    );
}

#[test]
fn exporter_stats_equal_what_the_collector_received() {
    let event = "e2e_stats";
    let exporter = exporter(event, Temporality::Delta, DEFAULT_MAX_EVENT_BYTES);
    let tee = TeeExporter::new(exporter.clone());
    let log = tee.log();
    let provider = provider_with(tee);
    let meter = provider.meter("e2e.stats");
    let instruments = KnownInstruments::register(&provider.meter(known::SCOPE));
    let wide = meter.f64_counter("stats.wide").with_unit("By").build();
    let mut collector = Collector::attach(event, 256).expect("perf listener");
    let mut received = Received::default();
    // Exports of growing size: 18 instruments plus 0, 150, 300, ... attribute sets.
    for round in 1..=8u64 {
        instruments.record_round(round);
        for i in 0..(round - 1) * 150 {
            wide.add(
                i as f64 + 0.5,
                &[
                    KeyValue::new("set", i as i64),
                    KeyValue::new("round.parity", round % 2 == 0),
                ],
            );
        }
        provider.force_flush().expect("flush");
        received.extend(collector.take().expect("drain"));
    }
    assert_eq!(collector.lost(), 0);
    drop(collector);
    provider.shutdown().expect("shutdown");
    let stats = exporter.stats();
    assert_stats_match(&stats, &received, "8 exports");
    // The 9th, at shutdown, found nobody listening.
    assert_eq!(
        (stats.exports, stats.exports_skipped_no_listener),
        (9, 1),
        "{stats:?}"
    );
    let exports = log.take();
    let expected: Vec<_> = exports.iter().map(|e| e.reference.clone()).collect();
    let decoded = received.requests().expect("decodes");
    compare(&decoded, &expected).unwrap_or_else(|m| panic!("{m}"));
    measure(
        "stats_exports",
        stats.exports - stats.exports_skipped_no_listener,
    );
    measure("stats_events", stats.events_written);
    measure("stats_bytes", stats.bytes_written);
    measure("stats_points", stats.points_encoded);
    measure("collector_events", received.events());
    measure("collector_bytes", received.payload_bytes());
    measure("collector_points", received.points());
}
