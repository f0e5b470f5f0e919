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

use std::fmt;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use opentelemetry::{otel_debug, otel_warn, Context};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

use crate::error::ExportError;
use crate::exporter::{ExportReport, MetricsExporter};

/// Default time between two checks of the enable bit (and collections while listened to).
pub const DEFAULT_READER_INTERVAL: Duration = Duration::from_secs(60);

/// Builds a [`UserEventsReader`].
#[derive(Debug)]
pub struct UserEventsReaderBuilder {
    exporter: MetricsExporter,
    interval: Duration,
}

impl UserEventsReaderBuilder {
    /// Time between two checks (default [`DEFAULT_READER_INTERVAL`]); zero keeps the default.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        if !interval.is_zero() {
            self.interval = interval;
        }
        self
    }

    /// Starts the reader's thread and returns the reader, to be passed to
    /// `SdkMeterProvider::builder().with_reader(..)`.
    pub fn build(self) -> UserEventsReader {
        UserEventsReader::start(self.exporter, self.interval)
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
    /// Reused between collections; also serialises collect + export.
    collected: Mutex<Collected>,
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl UserEventsReader {
    /// Starts configuring a reader for `exporter`.
    pub fn builder(exporter: MetricsExporter) -> UserEventsReaderBuilder {
        UserEventsReaderBuilder {
            exporter,
            interval: DEFAULT_READER_INTERVAL,
        }
    }

    fn start(exporter: MetricsExporter, interval: Duration) -> Self {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let inner = Arc::new(ReaderInner {
            collector: ManualReader::builder()
                .with_temporality(exporter.temporality())
                .build(),
            exporter,
            collected: Mutex::new(Collected::default()),
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(None),
        });
        let weak = Arc::downgrade(&inner);
        let spawned = thread::Builder::new()
            .name("ue-metrics-reader".to_owned())
            .spawn(move || run(&weak, &stop_rx, interval));
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

    /// Collects and exports now if a listener is attached (what each interval does).
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
                // Errors are counted and logged (on change) by the exporter.
                let _ = reader.tick();
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The last collection, and how much of it is still to be written.
#[derive(Default)]
struct Collected {
    metrics: ResourceMetrics,
    /// `Some(n)`: the export of `metrics` stopped after `n` events because the last listener
    /// left; the rest goes out before the next collection (which would overwrite it).
    unfinished_after: Option<usize>,
}

impl Collected {
    /// Notes how the export of `metrics` ended: an export whose listener left (or that found
    /// none) stays to be finished; anything else is done (a write error would only repeat).
    fn record(&mut self, report: &Result<ExportReport, ExportError>, already_written: usize) {
        self.unfinished_after = match report {
            Ok(ExportReport::NoListener) => Some(already_written),
            Ok(ExportReport::ListenerLeft { events, .. }) => Some(already_written + events),
            _ => None,
        };
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReaderInner {
    fn tick(&self) -> Result<Option<ExportReport>, ExportError> {
        if !self.exporter.listener_attached() {
            self.exporter
                .stats_counters()
                .collection_skipped_no_listener();
            return Ok(None);
        }
        self.collect_and_export().map(Some)
    }

    fn collect_and_export(&self) -> Result<ExportReport, ExportError> {
        let mut collected = lock(&self.collected);
        if let Some(written) = collected.unfinished_after {
            let report = self.exporter.resume_export(&collected.metrics, written);
            collected.record(&report, written);
            if collected.unfinished_after.is_some() {
                // The listener is gone again: keep the data, collect nothing new.
                return report;
            }
        }
        if let Err(e) = self.collector.collect(&mut collected.metrics) {
            otel_debug!(name: "UserEventsReader.CollectFailed", error = e.to_string());
            return Err(ExportError::CollectFailed(e));
        }
        self.exporter.stats_counters().collection();
        let report = self.exporter.export_metrics(&collected.metrics);
        collected.record(&report, 0);
        report
    }

    fn stop_thread(&self) {
        // Dropping the sender wakes the thread at once.
        lock(&self.stop).take();
        if let Some(handle) = lock(&self.thread).take() {
            if handle.thread().id() != thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

impl MetricReader for UserEventsReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.inner.collector.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.inner.collector.collect(rm)
    }

    /// Collects and exports now when a listener is attached; otherwise nothing to flush.
    fn force_flush(&self) -> OTelSdkResult {
        match self.inner.tick() {
            Ok(_) | Err(ExportError::Unavailable(_)) => Ok(()),
            Err(ExportError::Shutdown) => Err(OTelSdkError::AlreadyShutdown),
            Err(e) => Err(OTelSdkError::InternalFailure(e.to_string())),
        }
    }

    /// Stops the thread, exports what is left if someone listens, and unregisters.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.inner.stop_thread();
        let last = self.inner.tick();
        let closed = self.inner.exporter.shutdown_now();
        let _ = self.inner.collector.shutdown();
        match (last, closed) {
            (Err(ExportError::Shutdown), _) => Err(OTelSdkError::AlreadyShutdown),
            (Err(e), _) if !matches!(e, ExportError::Unavailable(_)) => {
                Err(OTelSdkError::InternalFailure(e.to_string()))
            }
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
