//! An OpenTelemetry metrics exporter that writes OTLP to Linux `user_events`.
#![forbid(unsafe_code)]
