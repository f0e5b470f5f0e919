//! An OpenTelemetry metrics exporter that writes OTLP protobuf to Linux `user_events`.
//!
//! ```no_run
//! use opentelemetry_sdk::metrics::SdkMeterProvider;
//!
//! let exporter = ue_metrics_exporter::MetricsExporter::builder().build()?;
//! let provider = SdkMeterProvider::builder().with_periodic_exporter(exporter).build();
//! # drop(provider);
//! # Ok::<(), ue_metrics_exporter::BuildError>(())
//! ```
//!
//! Each export checks the tracepoint's enable bit first (nobody listening: nothing is
//! encoded), then encodes the metrics into complete `ExportMetricsServiceRequest`s that each
//! fit one event, and writes each as one event with the payload
//! `u32 protocol = 0, char[8] version, u32 rel_loc = len << 16, u8 buffer[len]` in one
//! `writev` (the buffer is not copied). The event is registered as
//! `otlp_metrics u32 protocol;char[8] version;__rel_loc u8[] buffer`.
//!
//! Without `user_events` (no tracefs, an old kernel, no permission, a conflicting event)
//! `build` still succeeds: one internal warning names the remedy, and every export returns at
//! once. [`MetricsExporter::export_metrics`] then returns [`ExportError::Unavailable`];
//! through the SDK (`PushMetricExporter::export`) that is `Ok(())`, counted in
//! [`ExporterStats::exports_skipped_unavailable`], so the SDK does not log an error every
//! interval.
//!
//! [`UserEventsReader`] is a reader that skips collection while nobody listens, so no Delta
//! interval is lost; see its docs for when to prefer it over `with_periodic_exporter`.
#![forbid(unsafe_code)]

mod builder;
mod error;
#[cfg(feature = "eventheader")]
mod eventheader;
mod exporter;
mod panics;
mod reader;
pub mod sink;
mod stats;

pub use builder::{
    MetricsExporterBuilder, DEFAULT_EVENT_NAME, DEFAULT_MAX_EVENT_BYTES, DEFAULT_PROTOCOL_VERSION,
    MAX_EVENT_BYTES_LIMIT, MAX_EVENT_NAME_LEN, MIN_MAX_EVENT_BYTES, PAYLOAD_HEADER_BYTES,
};
pub use error::{BuildError, ExportError, OversizedIdentity, Unavailable, UnavailableKind};
pub use exporter::{ExportReport, MetricsExporter};
pub use reader::{
    UserEventsReader, UserEventsReaderBuilder, DEFAULT_READER_INTERVAL, DEFAULT_READER_TIMEOUT,
};
pub use sink::{Sink, SinkError};
pub use stats::ExporterStats;
