//! The exporter: enable bit first, then encode into size-bounded chunks, one event each.

use std::fmt;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use opentelemetry::{otel_debug, otel_info, otel_warn};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use otlp_metrics_encode::MetricsEncoder;

use crate::builder::{MetricsExporterBuilder, PAYLOAD_HEADER_BYTES};
use crate::error::{ExportError, OversizeLog, Unavailable};
use crate::panics::{self, FailureState};
use crate::sink::{Sink, SinkError};
use crate::stats::{ExporterStats, Stats};

/// Protocol id of protobuf-encoded OTLP in the `protocol` field.
const PROTOCOL_PROTOBUF: u32 = 0;

/// Exports OpenTelemetry metrics as OTLP protobuf events to Linux `user_events`.
///
/// Cheap to clone: clones share the registration, the encoder and the counters, so keep one
/// to read [`Self::stats`] after handing the exporter to the SDK.
#[derive(Clone)]
pub struct MetricsExporter {
    inner: Arc<Inner>,
}

struct Inner {
    event_name: String,
    temporality: Temporality,
    max_request_bytes: usize,
    framing: Framing,
    target: Target,
    /// Reused protobuf buffers; `try_lock`ed so an export never waits for another.
    encoder: Mutex<MetricsEncoder>,
    stats: Stats,
    shut_down: AtomicBool,
    log: LogState,
}

/// Where events go.
enum Target {
    Sink(Box<dyn Sink>),
    Unavailable(Unavailable),
}

/// How the OTLP buffer is wrapped into an event payload.
#[derive(Clone, Copy)]
enum Framing {
    /// `u32 protocol, char[8] version` (this version) then `u32 rel_loc` then the buffer.
    Plain { version: [u8; 8] },
    /// The sink frames the buffer itself (EventHeader).
    #[cfg_attr(not(feature = "eventheader"), allow(dead_code))]
    BySink,
}

/// What one export did when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportReport {
    /// Nobody listened: nothing was encoded or written.
    NoListener,
    /// Every chunk was written.
    Written {
        /// Events written.
        events: usize,
        /// Payload bytes written (fixed fields included).
        bytes: usize,
        /// Data points encoded.
        points: usize,
    },
    /// The last listener detached during the export: the remaining chunks were not written.
    ListenerLeft {
        /// Events written before the listener left.
        events: usize,
        /// Payload bytes of those events.
        bytes: usize,
    },
}

/// Why the chunk loop stopped early.
enum Stop {
    ListenerLeft,
    Write(SinkError),
}

/// Which conditions were last logged, so logs come on changes, not every cycle.
#[derive(Default)]
struct LogState {
    /// 0 = not known yet, 1 = a listener is attached, 2 = nobody listens.
    listening: AtomicU8,
    writes_failing: AtomicBool,
    oversize: OversizeLog,
    panics: FailureState,
    /// Panics of `Sink::enabled`, logged apart from those of exports.
    enabled_panics: FailureState,
}

const LISTENING: u8 = 1;
const IDLE: u8 = 2;

impl MetricsExporter {
    /// Starts configuring an exporter; every option has a working default.
    pub fn builder() -> MetricsExporterBuilder {
        MetricsExporterBuilder::default()
    }

    pub(crate) fn new(config: MetricsExporterBuilder, sink: Box<dyn Sink>) -> Self {
        otel_debug!(
            name: "UserEventsMetricsExporter.Registered",
            event_name = config.event_name.clone(),
            max_request_bytes = config.max_request_bytes()
        );
        Self::with_target(config, Target::Sink(sink))
    }

    pub(crate) fn new_unavailable(
        config: MetricsExporterBuilder,
        unavailable: Unavailable,
    ) -> Self {
        otel_warn!(
            name: "UserEventsMetricsExporter.Unavailable",
            message = format!(
                "metrics will not be exported to user_events event {:?}: {unavailable}",
                config.event_name
            )
        );
        Self::with_target(config, Target::Unavailable(unavailable))
    }

    fn with_target(config: MetricsExporterBuilder, target: Target) -> Self {
        let framing = if uses_eventheader(&config) {
            Framing::BySink
        } else {
            let mut version = [0u8; 8];
            // The builder checked: exactly 8 ASCII bytes.
            version.copy_from_slice(&config.protocol_version.as_bytes()[..8]);
            Framing::Plain { version }
        };
        Self {
            inner: Arc::new(Inner {
                max_request_bytes: config.max_request_bytes(),
                event_name: config.event_name,
                temporality: config.temporality,
                framing,
                target,
                encoder: Mutex::new(MetricsEncoder::new()),
                stats: Stats::default(),
                shut_down: AtomicBool::new(false),
                log: LogState::default(),
            }),
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ExporterStats {
        self.inner.stats.snapshot()
    }

    /// Why this exporter cannot write, if it cannot (decided once, at `build`).
    pub fn unavailable(&self) -> Option<&Unavailable> {
        match &self.inner.target {
            Target::Unavailable(u) => Some(u),
            Target::Sink(_) => None,
        }
    }

    /// True when at least one listener is attached right now (one relaxed load).
    pub fn listener_attached(&self) -> bool {
        match &self.inner.target {
            Target::Sink(sink) => {
                self.inner.sink_listening(sink.as_ref())
                    && !self.inner.shut_down.load(Ordering::Relaxed)
            }
            Target::Unavailable(_) => false,
        }
    }

    /// The largest OTLP buffer written in one event.
    pub fn max_request_bytes(&self) -> usize {
        self.inner.max_request_bytes
    }

    /// The registered event name.
    pub fn event_name(&self) -> &str {
        &self.inner.event_name
    }

    pub(crate) fn stats_counters(&self) -> &Stats {
        &self.inner.stats
    }

    /// Exports `metrics` now and says exactly what happened.
    ///
    /// This is what [`PushMetricExporter::export`] runs; the SDK only sees its errors as
    /// text, and it treats [`ExportError::Unavailable`] as success (see the crate docs).
    pub fn export_metrics(&self, metrics: &ResourceMetrics) -> Result<ExportReport, ExportError> {
        self.inner.export(metrics, 0)
    }

    /// Finishes an export of `metrics` that stopped after `events_written` events
    /// ([`ExportReport::ListenerLeft`], or an error that reports `events_written`, such as
    /// [`ExportError::WriteFailed`] or [`ExportError::Panicked`]): encodes the same data again
    /// (the encoder splits the same data the same way) and writes only the events from there
    /// on, so nothing is sent twice. `metrics` must be unchanged since that export.
    pub fn resume_export(
        &self,
        metrics: &ResourceMetrics,
        events_written: usize,
    ) -> Result<ExportReport, ExportError> {
        self.inner.export(metrics, events_written)
    }

    /// Unregisters the event (idempotent). Later exports return [`ExportError::Shutdown`].
    pub fn shutdown_now(&self) -> Result<(), SinkError> {
        self.inner.shutdown()
    }
}

#[cfg(feature = "eventheader")]
fn uses_eventheader(config: &MetricsExporterBuilder) -> bool {
    config.eventheader_provider.is_some()
}

#[cfg(not(feature = "eventheader"))]
fn uses_eventheader(_config: &MetricsExporterBuilder) -> bool {
    false
}

impl Inner {
    /// `sink.enabled()`, the only way this crate asks it: a panic there (user code) is caught,
    /// counted in `panics`, logged when it starts and stops, and read as "nobody listens", so
    /// no caller's thread (the reader's, the SDK's `PeriodicReader`'s, the app's) ends.
    fn sink_listening(&self, sink: &dyn Sink) -> bool {
        match panics::catch(|| sink.enabled()) {
            Ok(enabled) => {
                if self.log.enabled_panics.ran_clean() {
                    otel_info!(
                        name: "UserEventsMetricsExporter.EnabledPanicsStopped",
                        event_name = self.event_name.clone()
                    );
                }
                enabled
            }
            Err(message) => {
                self.stats.panic();
                if self.log.enabled_panics.failed() {
                    otel_warn!(
                        name: "UserEventsMetricsExporter.EnabledPanicked",
                        event_name = self.event_name.clone(),
                        message = format!(
                            "Sink::enabled panicked: {message}; treated as no listener"
                        )
                    );
                }
                false
            }
        }
    }

    /// Exports `metrics`, not writing its first `skip_events` events (see `resume_export`).
    fn export(
        &self,
        metrics: &ResourceMetrics,
        skip_events: usize,
    ) -> Result<ExportReport, ExportError> {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(ExportError::Shutdown);
        }
        let sink = match &self.target {
            Target::Sink(sink) => sink,
            Target::Unavailable(unavailable) => {
                self.stats.export_skipped_unavailable();
                return Err(ExportError::Unavailable(unavailable.clone()));
            }
        };
        // The cheap check first: nobody listening means nothing to encode.
        if !self.sink_listening(sink.as_ref()) {
            self.stats.export_skipped_no_listener();
            self.log.listening(false, &self.event_name);
            return Ok(ExportReport::NoListener);
        }
        self.stats.export_with_listener();
        self.log.listening(true, &self.event_name);
        let mut encoder = match self.encoder.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                self.stats.export_failed();
                return Err(ExportError::Busy);
            }
        };
        // Shutdown may have closed the sink while we waited for nothing (try_lock) but after
        // the first check: it takes the same lock, so checking again under it is exact.
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(ExportError::Shutdown);
        }
        self.write_chunks(&mut encoder, sink.as_ref(), metrics, skip_events)
    }

    fn write_chunks(
        &self,
        encoder: &mut MutexGuard<'_, MetricsEncoder>,
        sink: &dyn Sink,
        metrics: &ResourceMetrics,
        skip_events: usize,
    ) -> Result<ExportReport, ExportError> {
        let mut events = 0usize;
        let mut bytes = 0usize;
        let mut skipped = 0usize;
        let framing = self.framing;
        let write_chunk = |chunk: &[u8]| {
            if skipped < skip_events {
                // Written by the export this one resumes.
                skipped += 1;
                return Ok(());
            }
            // A listener can leave mid-export: stop writing (and encoding) when it does.
            if events > 0 && !self.sink_listening(sink) {
                return Err(Stop::ListenerLeft);
            }
            let written = match framing {
                Framing::Plain { version } => {
                    let header = payload_header(ByteOrder::NATIVE, &version, chunk.len());
                    sink.write(&[IoSlice::new(&header), IoSlice::new(chunk)])
                        .map(|()| PAYLOAD_HEADER_BYTES + chunk.len())
                }
                Framing::BySink => sink.write(&[IoSlice::new(chunk)]).map(|()| chunk.len()),
            };
            match written {
                Ok(n) => {
                    events += 1;
                    bytes += n;
                    Ok(())
                }
                Err(SinkError::NoListener) => Err(Stop::ListenerLeft),
                Err(e) => Err(Stop::Write(e)),
            }
        };
        // A panicking sink (user code) or encoder must not take the caller's thread down.
        let caught =
            panics::catch(|| encoder.encode_chunks(metrics, self.max_request_bytes, write_chunk));
        self.stats.events(events as u64, bytes as u64);
        let result = match caught {
            Ok(result) => {
                if self.log.panics.ran_clean() {
                    otel_info!(name: "UserEventsMetricsExporter.PanicsStopped");
                }
                result
            }
            Err(message) => {
                // The encoder may have stopped midway through its buffers: start afresh.
                **encoder = MetricsEncoder::new();
                self.stats.panic();
                self.stats.export_failed();
                if self.log.panics.failed() {
                    otel_warn!(
                        name: "UserEventsMetricsExporter.Panicked",
                        event_name = self.event_name.clone(),
                        message = message.clone()
                    );
                }
                return Err(ExportError::Panicked {
                    message,
                    events_written: events,
                });
            }
        };
        match result {
            Ok(summary) => {
                self.log.writes_ok(&self.event_name);
                self.stats
                    .points(summary.points as u64, summary.oversized_points as u64);
                match summary.first_oversized {
                    Some(first) if summary.oversized_points > 0 => {
                        self.stats.export_failed();
                        let error = ExportError::oversized(first, summary.oversized_points, events);
                        self.log.oversized(Some(&error));
                        Err(error)
                    }
                    _ => {
                        self.log.oversized(None);
                        Ok(ExportReport::Written {
                            events,
                            bytes,
                            points: summary.points,
                        })
                    }
                }
            }
            Err(Stop::ListenerLeft) => {
                self.stats.export_interrupted();
                self.log.listening(false, &self.event_name);
                Ok(ExportReport::ListenerLeft { events, bytes })
            }
            Err(Stop::Write(source)) => {
                self.stats.write_error();
                self.stats.export_failed();
                self.log.writes_failed(&self.event_name, &source);
                Err(ExportError::WriteFailed {
                    failed_event: events + 1,
                    events_written: events,
                    source,
                })
            }
        }
    }

    fn shutdown(&self) -> Result<(), SinkError> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Wait for a running export to finish its writes before unregistering.
        let _encoder = self.encoder.lock().unwrap_or_else(|p| p.into_inner());
        match &self.target {
            Target::Sink(sink) => sink.close(),
            Target::Unavailable(_) => Ok(()),
        }
    }
}

/// Byte order of the `u32` fields of the payload header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    /// The CPU's: the kernel reads `protocol` and `__rel_loc` as native `u32`s
    /// (`trace_events_user.c`), so a big-endian host (s390x, powerpc64) needs big-endian
    /// fields or every write fails with `EFAULT`.
    const NATIVE: ByteOrder = if cfg!(target_endian = "big") {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };

    fn u32_bytes(self, value: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => value.to_le_bytes(),
            ByteOrder::Big => value.to_be_bytes(),
        }
    }
}

/// The 16 fixed bytes in `order`: `u32 protocol` (protobuf), `char[8] version`, then
/// `u32 rel_loc = len << 16` (offset 0: the buffer starts right after the loc field).
fn payload_header(order: ByteOrder, version: &[u8; 8], len: usize) -> [u8; PAYLOAD_HEADER_BYTES] {
    let mut header = [0u8; PAYLOAD_HEADER_BYTES];
    header[..4].copy_from_slice(&order.u32_bytes(PROTOCOL_PROTOBUF));
    header[4..12].copy_from_slice(version);
    // `len` < 65536: the builder caps events at the perf limit (8 KiB).
    let rel_loc = (len as u32) << 16;
    header[12..].copy_from_slice(&order.u32_bytes(rel_loc));
    header
}

impl LogState {
    fn listening(&self, now: bool, event_name: &str) {
        let state = if now { LISTENING } else { IDLE };
        if self.listening.load(Ordering::Relaxed) == state
            || self.listening.swap(state, Ordering::Relaxed) == state
        {
            return;
        }
        if now {
            otel_info!(
                name: "UserEventsMetricsExporter.ListenerAttached",
                event_name = event_name.to_owned()
            );
        } else {
            otel_info!(
                name: "UserEventsMetricsExporter.NoListener",
                event_name = event_name.to_owned(),
                message = "exports are skipped until a listener attaches"
            );
        }
    }

    fn writes_failed(&self, event_name: &str, error: &SinkError) {
        if !self.writes_failing.swap(true, Ordering::Relaxed) {
            otel_warn!(
                name: "UserEventsMetricsExporter.WriteFailed",
                event_name = event_name.to_owned(),
                error = error.to_string()
            );
        }
    }

    fn writes_ok(&self, event_name: &str) {
        if self.writes_failing.load(Ordering::Relaxed)
            && self.writes_failing.swap(false, Ordering::Relaxed)
        {
            otel_info!(
                name: "UserEventsMetricsExporter.WritesRecovered",
                event_name = event_name.to_owned()
            );
        }
    }

    /// Logs the oversize condition of an export (`None`: nothing dropped) when it changed.
    fn oversized(&self, now: Option<&ExportError>) {
        if !self.oversize.changed(now) {
            return;
        }
        if let Some(error) = now {
            otel_warn!(
                name: "UserEventsMetricsExporter.OversizedPoints",
                message = error.to_string()
            );
        } else {
            otel_info!(name: "UserEventsMetricsExporter.OversizedPointsStopped");
        }
    }
}

impl PushMetricExporter for MetricsExporter {
    /// Runs [`MetricsExporter::export_metrics`] before returning a ready future.
    ///
    /// `Unavailable` becomes `Ok(())` (counted in `exports_skipped_unavailable`) so the SDK
    /// does not log an error every interval for a condition logged once at `build`.
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let result = match self.export_metrics(metrics) {
            Ok(_) | Err(ExportError::Unavailable(_)) => Ok(()),
            Err(ExportError::Shutdown) => Err(OTelSdkError::AlreadyShutdown),
            Err(error) => Err(OTelSdkError::InternalFailure(error.to_string())),
        };
        std::future::ready(result)
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.shutdown_now()
            .map_err(|e| OTelSdkError::InternalFailure(format!("unregistering failed: {e}")))
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality
    }
}

impl fmt::Debug for MetricsExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsExporter")
            .field("event_name", &self.inner.event_name)
            .field("temporality", &self.inner.temporality)
            .field("max_request_bytes", &self.inner.max_request_bytes)
            .field("unavailable", &self.unavailable())
            .field("shut_down", &self.inner.shut_down.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::CaptureSink;

    fn exporter(sink: &CaptureSink) -> MetricsExporter {
        MetricsExporter::builder()
            .build_with_sink(sink.clone())
            .unwrap()
    }

    #[test]
    fn the_disabled_path_never_touches_the_encoder() {
        let sink = CaptureSink::new();
        sink.set_enabled(false);
        let exporter = exporter(&sink);
        // Hold the encoder: an export that wanted to encode would report Busy.
        let _held = exporter.inner.encoder.lock().unwrap();
        let report = exporter.export_metrics(&ResourceMetrics::default());
        assert_eq!(report.unwrap(), ExportReport::NoListener);
    }

    #[test]
    fn a_concurrent_export_is_skipped_as_busy_instead_of_waiting() {
        let sink = CaptureSink::new();
        let exporter = exporter(&sink);
        let held = exporter.inner.encoder.lock().unwrap();
        let err = exporter
            .export_metrics(&ResourceMetrics::default())
            .unwrap_err();
        assert!(matches!(err, ExportError::Busy), "{err:?}");
        drop(held);
        assert_eq!(exporter.stats().exports_failed, 1);
        assert!(exporter.export_metrics(&ResourceMetrics::default()).is_ok());
    }

    #[test]
    fn the_header_is_protocol_version_and_rel_loc_in_either_byte_order() {
        let little = payload_header(ByteOrder::Little, b"v0.19.00", 0x0fd0);
        assert_eq!(&little[..4], &[0, 0, 0, 0]);
        assert_eq!(&little[4..12], b"v0.19.00");
        assert_eq!(&little[12..], &[0, 0, 0xd0, 0x0f]);

        let big = payload_header(ByteOrder::Big, b"v0.19.00", 0x0fd0);
        assert_eq!(&big[..4], &[0, 0, 0, 0]);
        assert_eq!(&big[4..12], b"v0.19.00");
        assert_eq!(&big[12..], &[0x0f, 0xd0, 0, 0]);
    }

    #[test]
    fn events_use_the_cpu_byte_order() {
        assert_eq!(
            ByteOrder::NATIVE.u32_bytes(0x0102_0304),
            0x0102_0304u32.to_ne_bytes()
        );
    }
}
