//! End-to-end checks of ue-metrics on a real `user_events` kernel.
//!
//! The guest suite (`tests/kernel.rs`, feature `kernel-tests`, run in the VM by
//! `cargo xtask e2e`) drives the whole path: an app records with the OpenTelemetry SDK, the
//! SDK's reader hands the data to `ue-metrics-exporter`, the kernel delivers the events to a
//! perf listener (or a `perf record` file), and `ue-metrics-decode` turns them back into OTLP.
//! This library holds what those tests and the `ue-e2e-app` binary share:
//!
//! - [`reference`]: what the SDK produced, as OTLP, through `opentelemetry-proto`'s transform
//!   (code this project did not write), and the canonical comparison of requests that ignores
//!   how points were split over events ([`reference::single_point_requests`]);
//! - [`tee`]: an exporter that remembers that reference for every export our exporter wrote;
//! - [`known`]: an app that records known values in every instrument kind;
//! - [`load`]: a load shaped like the demo app's, for the throughput test;
//! - [`collector`]: a perf listener (the decoder's live source) that keeps what it received;
//! - [`guest`]: where the guest finds packed programs, and the `UE-MEASURE` lines.
#![forbid(unsafe_code)]

pub mod collector;
pub mod guest;
pub mod known;
pub mod load;
pub mod reference;
pub mod tee;

/// The prost types of OTLP (the ones the decoder returns).
pub use ue_metrics_decode::proto;
