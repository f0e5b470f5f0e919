//! The reference workloads of DESIGN.md (W1, W2, W3), built by the real SDK. One definition for
//! the whole workspace: otlp-metrics-encode's `workloads` feature, so the exporter's numbers
//! compare directly with the encoder's.
#![allow(dead_code)] // each user needs a different subset

use opentelemetry_sdk::metrics::data::ResourceMetrics;
use otlp_metrics_encode::workloads;

/// W1: 10 u64 counters x 10 attribute sets (100 points).
pub fn w1() -> ResourceMetrics {
    workloads::w1().metrics
}

/// W2: counters, gauges and histograms x 20 attribute sets of 4 attributes (1000 points).
pub fn w2() -> ResourceMetrics {
    workloads::w2().metrics
}

/// W3: 1000 u64 counters x 10 attribute sets (10,000 points).
pub fn w3() -> ResourceMetrics {
    workloads::w3().metrics
}

/// Data points in `rm`.
pub fn points(rm: &ResourceMetrics) -> usize {
    workloads::count_points(rm)
}
