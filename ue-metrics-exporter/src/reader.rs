//! A reader that does not collect while nobody listens.
//!
//! With the SDK's `PeriodicReader` the SDK collects every interval whether or not anyone
//! listens; with Delta temporality each collection also resets the aggregates, so an interval
//! nobody listened to is gone for good. [`UserEventsReader`] checks the enable bit first and
//! skips the collection entirely while it is clear: idle costs one atomic load per interval,
//! the SDK keeps aggregating, and the first export after a listener attaches carries
//! everything since the previous export (its start time is the previous collection's time).
//! A listener that leaves in the middle of an export (after the enable check) does not take
//! the rest of that collection with it: the reader keeps the collection and finishes its
//! export, from the first unwritten event, when a listener is back, before collecting again.
//! The same holds when the export found the encoder busy, failed to write, or panicked: a
//! collection is only given up after [`UserEventsReader::MAX_EXPORT_ATTEMPTS`] failed
//! attempts, and then counted.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use opentelemetry::{otel_debug, otel_info, otel_warn, Context};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

use crate::error::ExportError;
use crate::exporter::{ExportReport, MetricsExporter};
use crate::panics::{self, FailureState};

/// Default time between two checks of the enable bit (and collections while listened to),
/// when neither [`UserEventsReaderBuilder::with_interval`] nor `OTEL_METRIC_EXPORT_INTERVAL`
/// sets one (the SDK's `PeriodicReader` default).
pub const DEFAULT_READER_INTERVAL: Duration = Duration::from_secs(60);

/// Default longest wait of `force_flush` and `shutdown` for an export already running on the
/// reader's thread, when neither [`UserEventsReaderBuilder::with_timeout`] nor
/// `OTEL_METRIC_EXPORT_TIMEOUT` sets one (the SDK's default export timeout).
pub const DEFAULT_READER_TIMEOUT: Duration = Duration::from_secs(30);

/// The interval in milliseconds, as the SDK's `PeriodicReader` reads it.
const INTERVAL_ENV: &str = "OTEL_METRIC_EXPORT_INTERVAL";
/// The timeout in milliseconds, as the SDK's async `PeriodicReader` reads it.
const TIMEOUT_ENV: &str = "OTEL_METRIC_EXPORT_TIMEOUT";

/// Builds a [`UserEventsReader`].
#[derive(Debug)]
pub struct UserEventsReaderBuilder {
    exporter: MetricsExporter,
    interval: Duration,
    timeout: Duration,
}

impl UserEventsReaderBuilder {
    /// Defaults, then `OTEL_METRIC_EXPORT_INTERVAL` and `OTEL_METRIC_EXPORT_TIMEOUT` as
    /// `lookup` gives them (`std::env::var` outside tests).
    fn from_env(exporter: MetricsExporter, lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            exporter,
            interval: env_millis(INTERVAL_ENV, lookup(INTERVAL_ENV))
                .unwrap_or(DEFAULT_READER_INTERVAL),
            timeout: env_millis(TIMEOUT_ENV, lookup(TIMEOUT_ENV)).unwrap_or(DEFAULT_READER_TIMEOUT),
        }
    }

    /// Time between two checks; overrides `OTEL_METRIC_EXPORT_INTERVAL` (default
    /// [`DEFAULT_READER_INTERVAL`]). Zero keeps what was there, like the SDK's `PeriodicReader`.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        if !interval.is_zero() {
            self.interval = interval;
        }
        self
    }

    /// Longest wait of `force_flush` and `shutdown` for an export already running on the
    /// reader's thread (a slow `Sink` or observable callback), and of `shutdown` for the
    /// thread to end; then they return `OTelSdkError::Timeout`. An export cannot be
    /// cancelled midway (it is a sequence of synchronous writes), so this bounds waiting, not
    /// the caller's own export. Overrides `OTEL_METRIC_EXPORT_TIMEOUT` (default
    /// [`DEFAULT_READER_TIMEOUT`]); zero keeps what was there, like the SDK.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        if !timeout.is_zero() {
            self.timeout = timeout;
        }
        self
    }

    /// Starts the reader's thread and returns the reader, to be passed to
    /// `SdkMeterProvider::builder().with_reader(..)`.
    pub fn build(self) -> UserEventsReader {
        UserEventsReader::start(self.exporter, self.interval, self.timeout)
    }
}

/// Milliseconds from an environment variable, read like the SDK's readers read it (a whole
/// number of milliseconds; anything else is ignored). Zero is ignored too, with the rest:
/// the SDK's `PeriodicReader` would collect in a busy loop, and its timeout would expire at
/// once.
fn env_millis(name: &str, value: Option<String>) -> Option<Duration> {
    let value = value?;
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
        _ => {
            otel_warn!(
                name: "UserEventsReader.InvalidEnvironmentValue",
                variable = name.to_owned(),
                value = value.clone(),
                message = "not a positive number of milliseconds: the default is used"
            );
            None
        }
    }
}

/// A metric reader driven by its own thread that collects only while someone listens.
///
/// Use it instead of `with_periodic_exporter(exporter)` when listeners come and go (an agent
/// that attaches on demand, `perf record` now and then) and no interval may be lost, or when
/// idle processes must cost nothing. Use `with_periodic_exporter` when you want the SDK's
/// standard reader (e.g. next to other exporters sharing one provider's behaviour), accepting
/// that intervals without a listener are collected and dropped.
///
/// Both write the same data: the temporality of each instrument kind is the SDK's mapping of
/// the exporter's preference, and each export carries what the SDK's `PeriodicReader` would
/// send for the same collection (`tests/differential.rs` compares the two).
///
/// A collection is never thrown away because its export could not run: when the export finds
/// the encoder busy (another clone exporting), a sink error, or a panic, the reader keeps the
/// collection and finishes its export, from the first unwritten event, before collecting
/// again. An export that keeps failing is tried [`Self::MAX_EXPORT_ATTEMPTS`] times, then
/// counted in [`crate::ExporterStats::collections_dropped`]. Panics below the thread (a
/// `Sink`, the encoder, an observable callback) are caught, counted in
/// [`crate::ExporterStats::panics`] and logged once; the thread keeps running. Limitation of
/// the SDK (0.33): it runs observable callbacks under its pipeline lock, which a panicking
/// callback poisons, so every later collection of that provider fails (counted in
/// [`crate::ExporterStats::collections_failed`], logged once when collections start failing
/// and once if they recover).
///
/// ```no_run
/// use opentelemetry_sdk::metrics::SdkMeterProvider;
/// use std::time::Duration;
/// use ue_metrics_exporter::{MetricsExporter, UserEventsReader};
///
/// let exporter = MetricsExporter::builder().build()?;
/// let reader = UserEventsReader::builder(exporter)
///     .with_interval(Duration::from_secs(10))
///     .build();
/// let provider = SdkMeterProvider::builder().with_reader(reader).build();
/// # drop(provider);
/// # Ok::<(), ue_metrics_exporter::BuildError>(())
/// ```
#[derive(Clone)]
pub struct UserEventsReader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    collector: ManualReader,
    exporter: MetricsExporter,
    timeout: Duration,
    /// Reused between collections; also serialises collect + export.
    collected: Mutex<Collected>,
    shut_down: AtomicBool,
    /// Dropping it tells the thread to stop.
    stop: Mutex<Option<Sender<()>>>,
    /// Disconnects when the thread ends (its sender lives on the thread).
    ended: Mutex<Option<Receiver<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    panics: FailureState,
    /// Whether the last collection was refused by the SDK (logged on change).
    collect_failures: FailureState,
    dropping: AtomicBool,
}

impl UserEventsReader {
    /// How many times the export of one collection is tried when it fails (write errors,
    /// panics) before that collection is given up and counted in
    /// [`crate::ExporterStats::collections_dropped`]. A collection whose listener left, or
    /// that found the encoder busy, waits without limit: that is not a failure of the data.
    pub const MAX_EXPORT_ATTEMPTS: u32 = 3;

    /// Starts configuring a reader for `exporter`; reads `OTEL_METRIC_EXPORT_INTERVAL` and
    /// `OTEL_METRIC_EXPORT_TIMEOUT` (milliseconds), which the builder's own settings override.
    pub fn builder(exporter: MetricsExporter) -> UserEventsReaderBuilder {
        UserEventsReaderBuilder::from_env(exporter, |name| std::env::var(name).ok())
    }

    fn start(exporter: MetricsExporter, interval: Duration, timeout: Duration) -> Self {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (ended_tx, ended_rx) = mpsc::channel::<()>();
        let inner = Arc::new(ReaderInner {
            collector: ManualReader::builder()
                .with_temporality(exporter.temporality())
                .build(),
            exporter,
            timeout,
            collected: Mutex::new(Collected::default()),
            shut_down: AtomicBool::new(false),
            stop: Mutex::new(Some(stop_tx)),
            ended: Mutex::new(Some(ended_rx)),
            thread: Mutex::new(None),
            panics: FailureState::default(),
            collect_failures: FailureState::default(),
            dropping: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&inner);
        let spawned = thread::Builder::new()
            .name("ue-metrics-reader".to_owned())
            .spawn(move || {
                let _ended = ended_tx;
                run(&weak, &stop_rx, interval)
            });
        match spawned {
            Ok(handle) => *lock(&inner.thread) = Some(handle),
            Err(e) => {
                otel_warn!(
                    name: "UserEventsReader.ThreadStartFailed",
                    message = "metrics will only be exported on force_flush and shutdown",
                    error = e.to_string()
                );
            }
        }
        Self { inner }
    }

    /// The exporter this reader drives (a clone sharing its counters).
    pub fn exporter(&self) -> &MetricsExporter {
        &self.inner.exporter
    }

    /// Collects and exports now if a listener is attached (what each interval does); first
    /// finishes the export of a kept collection, if there is one.
    pub fn tick(&self) -> Result<Option<ExportReport>, ExportError> {
        self.inner.tick()
    }
}

/// The interval thread: holds only a weak reference, so dropping the provider ends it.
fn run(reader: &Weak<ReaderInner>, stop: &mpsc::Receiver<()>, interval: Duration) {
    // Our own exports must not produce telemetry that feeds back into the SDK.
    let _suppress = Context::enter_telemetry_suppressed_scope();
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {
                let Some(reader) = reader.upgrade() else {
                    return;
                };
                // Errors are counted and logged (on change) by the exporter; panics are
                // caught inside the tick, and once more here, so that nothing below (a bug
                // of ours included) can end the thread.
                if let Err(message) = panics::catch(|| reader.tick()) {
                    reader.exporter.stats_counters().panic();
                    if reader.panics.failed() {
                        otel_warn!(name: "UserEventsReader.Panicked", message = message.clone());
                    }
                }
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The last collection, and what is left of its export.
#[derive(Default)]
struct Collected {
    metrics: ResourceMetrics,
    /// The export of `metrics` did not finish; the rest goes out before the next collection
    /// (which would overwrite it).
    unfinished: Option<Unfinished>,
}

/// Where to resume an export, and how often it failed.
#[derive(Debug, Clone, Copy, Default)]
struct Unfinished {
    /// Events of `metrics` already written.
    written: usize,
    /// Attempts that failed with a write error or a panic.
    failures: u32,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Locks `mutex`, waiting at most until `deadline`. Only `force_flush` and `shutdown` wait
/// with a deadline, and only while the interval thread exports, so a short sleep between
/// attempts costs nothing that matters and keeps this simple.
fn lock_until<T>(mutex: &Mutex<T>, deadline: Instant) -> Option<MutexGuard<'_, T>> {
    loop {
        match mutex.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) if Instant::now() >= deadline => return None,
            Err(TryLockError::WouldBlock) => thread::sleep(Duration::from_millis(1)),
        }
    }
}

impl ReaderInner {
    fn tick(&self) -> Result<Option<ExportReport>, ExportError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ExportError::Shutdown);
        }
        if !self.listened_to() {
            return Ok(None);
        }
        let mut collected = lock(&self.collected);
        // Shutdown may have run its last export while we waited for the lock: collecting now
        // would reset Delta state for an export that can no longer happen.
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ExportError::Shutdown);
        }
        self.tick_locked(&mut collected).map(Some)
    }

    /// True when someone listens; counts the skipped collection otherwise.
    fn listened_to(&self) -> bool {
        let listened = self.exporter.listener_attached();
        if !listened {
            self.exporter
                .stats_counters()
                .collection_skipped_no_listener();
        }
        listened
    }

    /// Collects and exports, catching panics from below (callbacks run inside `collect`).
    fn tick_locked(&self, collected: &mut Collected) -> Result<ExportReport, ExportError> {
        match panics::catch(|| self.collect_and_export(collected)) {
            Ok(report) => {
                if !matches!(report, Err(ExportError::Panicked { .. })) && self.panics.ran_clean() {
                    otel_info!(name: "UserEventsReader.PanicsStopped");
                }
                report
            }
            Err(message) => {
                // The exporter catches its own panics, so this one came from collecting (an
                // observable callback): nothing of this collection was exported.
                self.exporter.stats_counters().panic();
                self.exporter.stats_counters().collection_failed();
                if self.panics.failed() {
                    otel_warn!(
                        name: "UserEventsReader.Panicked",
                        message = message.clone()
                    );
                }
                Err(ExportError::Panicked {
                    message,
                    events_written: 0,
                })
            }
        }
    }

    fn collect_and_export(&self, collected: &mut Collected) -> Result<ExportReport, ExportError> {
        if let Some(unfinished) = collected.unfinished {
            let report = self
                .exporter
                .resume_export(&collected.metrics, unfinished.written);
            collected.unfinished = self.settle(&report, unfinished);
            if collected.unfinished.is_some() {
                // Not through yet: keep the data, collect nothing new (the SDK keeps
                // aggregating, so the next collection still has everything since).
                return report;
            }
        }
        if let Err(e) = self.collector.collect(&mut collected.metrics) {
            self.exporter.stats_counters().collection_failed();
            if self.collect_failures.failed() {
                // E.g. an observable callback panicked once: the SDK (0.33) poisoned its
                // pipeline lock and refuses every later collection of this provider.
                otel_warn!(
                    name: "UserEventsReader.CollectionsFailing",
                    message = "the SDK refuses to collect: nothing is exported until it \
                               collects again (counted in collections_failed)",
                    error = e.to_string()
                );
            } else {
                otel_debug!(name: "UserEventsReader.CollectFailed", error = e.to_string());
            }
            return Err(ExportError::CollectFailed(e));
        }
        if self.collect_failures.ran_clean() {
            otel_info!(name: "UserEventsReader.CollectionsRecovered");
        }
        self.exporter.stats_counters().collection();
        let report = self.exporter.export_metrics(&collected.metrics);
        collected.unfinished = self.settle(&report, Unfinished::default());
        report
    }

    /// What is left of an export that started at `before`, given how it ended.
    fn settle(
        &self,
        report: &Result<ExportReport, ExportError>,
        before: Unfinished,
    ) -> Option<Unfinished> {
        let waiting = |events: usize| Unfinished {
            written: before.written + events,
            failures: before.failures,
        };
        let failed = |events: usize| Unfinished {
            written: before.written + events,
            failures: before.failures + 1,
        };
        let left = match report {
            // Nothing wrong with the data: wait for a listener, or for the other export.
            Ok(ExportReport::NoListener) | Err(ExportError::Busy) => waiting(0),
            Ok(ExportReport::ListenerLeft { events, .. }) => waiting(*events),
            Err(ExportError::WriteFailed { events_written, .. })
            | Err(ExportError::Panicked { events_written, .. }) => failed(*events_written),
            // Done: written (oversized points are dropped by design and counted), or
            // nowhere to write any more.
            _ => {
                if self.dropping.swap(false, Ordering::Relaxed) {
                    otel_info!(name: "UserEventsReader.CollectionsDeliveredAgain");
                }
                return None;
            }
        };
        if left.failures < UserEventsReader::MAX_EXPORT_ATTEMPTS {
            return Some(left);
        }
        self.give_up(
            left,
            "the export of one collection failed every time: the rest of it is dropped and \
             counted in collections_dropped",
        );
        None
    }

    /// Gives up the rest of a collection's export: counted in `collections_dropped`, logged
    /// (once until a collection is delivered again).
    fn give_up(&self, left: Unfinished, why: &'static str) {
        self.exporter.stats_counters().collection_dropped();
        if !self.dropping.swap(true, Ordering::Relaxed) {
            otel_warn!(
                name: "UserEventsReader.CollectionDropped",
                attempts = left.failures,
                events_written = left.written,
                message = why
            );
        }
    }

    /// Ends the interval thread, waiting until `deadline`; false when it is still running
    /// (inside a slow export; it holds only a weak reference and exits after it).
    fn stop_thread(&self, deadline: Instant) -> bool {
        // Dropping the sender wakes the thread at once.
        lock(&self.stop).take();
        let Some(ended) = lock(&self.ended).take() else {
            return true;
        };
        let on_the_thread = lock(&self.thread)
            .as_ref()
            .is_some_and(|h| h.thread().id() == thread::current().id());
        if on_the_thread {
            // Shut down from a callback on our own thread: it ends after this tick.
            return true;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        match ended.recv_timeout(remaining) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(handle) = lock(&self.thread).take() {
                    let _ = handle.join();
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
        }
    }
}

/// How the SDK sees an export's outcome.
fn to_sdk(result: Result<Option<ExportReport>, ExportError>) -> OTelSdkResult {
    match result {
        Ok(_) | Err(ExportError::Unavailable(_)) => Ok(()),
        Err(ExportError::Shutdown) => Err(OTelSdkError::AlreadyShutdown),
        Err(e) => Err(OTelSdkError::InternalFailure(e.to_string())),
    }
}

impl MetricReader for UserEventsReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.inner.collector.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.inner.collector.collect(rm)
    }

    /// Collects and exports now when a listener is attached (after finishing a kept
    /// collection); otherwise nothing to flush. Waits at most the reader's timeout for an
    /// export running on the reader's thread.
    fn force_flush(&self) -> OTelSdkResult {
        let inner = &self.inner;
        if inner.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        if !inner.listened_to() {
            return Ok(());
        }
        let Some(mut collected) = lock_until(&inner.collected, Instant::now() + inner.timeout)
        else {
            return Err(OTelSdkError::Timeout(inner.timeout));
        };
        // As in `tick`: shutdown may have run its last export while we waited.
        if inner.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        to_sdk(inner.tick_locked(&mut collected).map(Some))
    }

    /// Stops the thread, exports what is left if someone listens, and unregisters. Waits at
    /// most the shorter of `timeout` and the reader's timeout for the thread's running export.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let inner = &self.inner;
        if inner.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let wait = timeout.min(inner.timeout);
        let deadline = Instant::now() + wait;
        // The thread's next tick sees `shut_down` and does nothing; a running one finishes.
        if !inner.stop_thread(deadline) {
            return Err(OTelSdkError::Timeout(wait));
        }
        let listened = inner.listened_to();
        let Some(mut collected) = lock_until(&inner.collected, deadline) else {
            return Err(OTelSdkError::Timeout(wait));
        };
        let last = if listened {
            inner.tick_locked(&mut collected).map(Some)
        } else {
            Ok(None)
        };
        // A kept collection that the last export could not finish (nobody listens) has
        // nowhere to go after this: give it up like one that failed too often, counted.
        if let Some(left) = collected.unfinished.take() {
            inner.give_up(
                left,
                "shutdown found the export of a collection unfinished (no listener): the \
                 rest of it is dropped and counted in collections_dropped",
            );
        }
        drop(collected);
        let closed = inner.exporter.shutdown_now();
        let _ = inner.collector.shutdown();
        match (to_sdk(last), closed) {
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(OTelSdkError::InternalFailure(format!(
                "unregistering failed: {e}"
            ))),
            _ => Ok(()),
        }
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        // What the SDK's PeriodicReader and ManualReader answer: the exporter's preference
        // mapped per instrument kind (UpDownCounters stay Cumulative under Delta, LowMemory
        // makes only Counters and Histograms Delta). The ManualReader was built with the
        // exporter's preference, so asking it is that mapping, kept in one place: the SDK.
        self.inner.collector.temporality(kind)
    }
}

impl fmt::Debug for UserEventsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserEventsReader")
            .field("exporter", &self.inner.exporter)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::CaptureSink;

    fn builder(env: &[(&str, &str)]) -> UserEventsReaderBuilder {
        let exporter = MetricsExporter::builder()
            .build_with_sink(CaptureSink::new())
            .unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        UserEventsReaderBuilder::from_env(exporter, move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn interval_and_timeout_come_from_the_environment_in_milliseconds() {
        let b = builder(&[(INTERVAL_ENV, "1500"), (TIMEOUT_ENV, "250")]);
        assert_eq!(b.interval, Duration::from_millis(1500));
        assert_eq!(b.timeout, Duration::from_millis(250));
        let b = builder(&[]);
        assert_eq!(
            (b.interval, b.timeout),
            (DEFAULT_READER_INTERVAL, DEFAULT_READER_TIMEOUT)
        );
    }

    #[test]
    fn explicit_settings_win_over_the_environment_and_zero_keeps_it() {
        let b = builder(&[(INTERVAL_ENV, "1500"), (TIMEOUT_ENV, "250")])
            .with_interval(Duration::from_secs(7))
            .with_timeout(Duration::from_secs(3));
        assert_eq!(
            (b.interval, b.timeout),
            (Duration::from_secs(7), Duration::from_secs(3))
        );
        let b = builder(&[(INTERVAL_ENV, "1500")])
            .with_interval(Duration::ZERO)
            .with_timeout(Duration::ZERO);
        assert_eq!(
            (b.interval, b.timeout),
            (Duration::from_millis(1500), DEFAULT_READER_TIMEOUT)
        );
    }

    #[test]
    fn values_that_are_not_positive_milliseconds_give_the_default() {
        for bad in ["", "abc", "1.5", "-3", "0", "10s"] {
            let b = builder(&[(INTERVAL_ENV, bad), (TIMEOUT_ENV, bad)]);
            assert_eq!(
                (b.interval, b.timeout),
                (DEFAULT_READER_INTERVAL, DEFAULT_READER_TIMEOUT),
                "{bad:?}"
            );
        }
    }
}
