//! Decode `user_events:otlp_metrics` records back into OTLP.
//!
//! The event (see the workspace's DESIGN.md) is registered as
//! `otlp_metrics u32 protocol;char[8] version;__rel_loc u8[] buffer`; its buffer is one complete
//! protobuf `ExportMetricsServiceRequest`. This crate reads those records from every place they
//! end up and hands back prost types, OTLP/JSON or OTLP/HTTP requests:
//!
//! - [`decode_payload`]: the bytes a producer wrote (after the write index);
//! - [`decode_raw_sample`] / [`SampleDecoder`]: a whole tracepoint record (`trace_entry` first),
//!   fields located through the tracefs `format` ([`RecordFormat`]);
//!
//! Decoding borrows: a [`Payload`] points into the record until [`Payload::to_request`] turns it
//! into an owned [`ExportMetricsServiceRequest`](proto::collector::metrics::v1::ExportMetricsServiceRequest).
//! Bad input never panics: every function returns a [`DecodeError`] with the byte offset.
#![forbid(unsafe_code)]

pub mod data;
pub mod enrich;
mod error;
pub mod event;
pub mod eventheader;
pub mod format;
#[cfg(feature = "cli")]
pub mod forward;
pub mod ftrace;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod layout;
pub mod live;
pub mod merge;
pub mod payload;
pub mod perf_data;
mod perf_reframe;
pub mod prometheus;
pub mod record;
pub mod sample;
#[cfg(feature = "cli")]
pub mod summary;
mod tracing_data;

pub use error::DecodeError;
pub use event::EventDecoder;
pub use format::{FieldFormat, FieldKind, RecordFormat};
pub use layout::ByteOrder;
pub use payload::{decode_payload, decode_payload_in, decode_request, FieldLayout, Payload};
pub use perf_data::{PerfDataError, PerfDataSource};
pub use record::{DecodeStats, Record, SampleMeta};
pub use sample::{decode_raw_sample, SampleDecoder};

/// The prost types of the OTLP metrics export request (re-exported from `otlp-metrics-encode`).
pub use otlp_metrics_encode::proto;
