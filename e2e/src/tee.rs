//! An exporter in front of ours that remembers what the SDK handed over.
//!
//! [`TeeExporter`] goes where an app puts its exporter (`with_periodic_exporter`, a
//! `PeriodicReader`); it passes every export to the wrapped [`MetricsExporter`] through the
//! SDK's own trait, and whenever that export wrote events it keeps the reference OTLP of the
//! same `ResourceMetrics` ([`crate::reference::reference_request`]). The test then compares
//! what a listener decoded with exactly what the SDK produced in those exports.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use ue_metrics_exporter::{ExporterStats, MetricsExporter};

use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::reference::reference_request;

/// One export that wrote events.
#[derive(Debug, Clone, PartialEq)]
pub struct TeeExport {
    /// What the SDK handed over, as reference OTLP.
    pub reference: ExportMetricsServiceRequest,
    /// Events our exporter wrote for it.
    pub events: u64,
    /// False when the export stopped early (the listener left, or a write failed): then only
    /// a prefix of `reference` was written.
    pub complete: bool,
}

/// The shared list of exports a [`TeeExporter`] saw (clone it before handing the tee over).
#[derive(Debug, Clone, Default)]
pub struct TeeLog(Arc<Mutex<Vec<TeeExport>>>);

impl TeeLog {
    /// Takes the exports recorded so far.
    pub fn take(&self) -> Vec<TeeExport> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn push(&self, export: TeeExport) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(export);
    }
}

/// Forwards to a [`MetricsExporter`] and logs the reference of every export that wrote events.
#[derive(Debug, Clone)]
pub struct TeeExporter {
    inner: MetricsExporter,
    log: TeeLog,
}

impl TeeExporter {
    /// Wraps `inner` (its clones share the counters, so keep one for [`MetricsExporter::stats`]).
    pub fn new(inner: MetricsExporter) -> Self {
        TeeExporter {
            inner,
            log: TeeLog::default(),
        }
    }

    /// The log to read the exports from.
    pub fn log(&self) -> TeeLog {
        self.log.clone()
    }

    /// The wrapped exporter's counters.
    pub fn stats(&self) -> ExporterStats {
        self.inner.stats()
    }
}

impl PushMetricExporter for TeeExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let before = self.inner.stats();
        let result = self.inner.export(metrics).await;
        let after = self.inner.stats();
        let events = after.events_written - before.events_written;
        if events > 0 {
            self.log.push(TeeExport {
                reference: reference_request(metrics),
                events,
                complete: after.exports_interrupted == before.exports_interrupted
                    && after.exports_failed == before.exports_failed,
            });
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
