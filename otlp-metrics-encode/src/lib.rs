//! OpenTelemetry SDK metrics to OTLP protobuf bytes, split into size-bounded events.
#![forbid(unsafe_code)]

pub mod proto;
