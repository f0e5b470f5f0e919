//! Helpers shared by the guest tests.
#![allow(dead_code)] // not every module uses every helper

use std::time::Duration;

use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use prost::Message;
use ue_metrics_e2e::collector::Received;
use ue_metrics_e2e::known;
use ue_metrics_e2e::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_e2e::tee::TeeExporter;
use ue_metrics_exporter::{ExporterStats, MetricsExporter};

/// An exporter of `event` that must be active (root in the VM).
pub fn exporter(event: &str, temporality: Temporality, max_event_bytes: usize) -> MetricsExporter {
    MetricsExporter::builder()
        .with_event_name(event)
        .with_temporality(temporality)
        .with_max_event_bytes(max_event_bytes)
        .with_require_user_events(true)
        .build()
        .unwrap_or_else(|e| panic!("exporter for {event}: {e}"))
}

/// The known app's provider exporting through `tee` with the SDK's `PeriodicReader`; exports
/// happen on `force_flush` (and at shutdown) only, so the test decides when.
pub fn provider_with(tee: TeeExporter) -> SdkMeterProvider {
    let reader = PeriodicReader::builder(tee)
        .with_interval(Duration::from_secs(3600))
        .build();
    known::provider_builder().with_reader(reader).build()
}

/// The exporter's counters must equal what the listener received: events, payload bytes,
/// data points; and nothing may have failed.
pub fn assert_stats_match(stats: &ExporterStats, received: &Received, what: &str) {
    assert_eq!(
        (
            stats.events_written,
            stats.bytes_written,
            stats.points_encoded
        ),
        (
            received.events() as u64,
            received.payload_bytes() as u64,
            received.points() as u64
        ),
        "{what}: exporter stats (events, bytes, points) vs collector; stats {stats:?}"
    );
    assert_eq!(
        (
            stats.write_errors,
            stats.exports_failed,
            stats.points_dropped_oversized
        ),
        (0, 0, 0),
        "{what}: {stats:?}"
    );
}

/// The `APP-STATS` line `ue-e2e-app` prints last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppStats {
    pub exports: u64,
    pub events: u64,
    pub bytes: u64,
    pub points: u64,
    pub skipped_no_listener: u64,
    pub skipped_unavailable: u64,
}

impl AppStats {
    /// Finds and parses the `APP-STATS` line in `stdout`.
    pub fn parse(stdout: &str) -> Option<AppStats> {
        let line = stdout.lines().find_map(|l| l.strip_prefix("APP-STATS "))?;
        let mut stats = AppStats::default();
        for pair in line.split_whitespace() {
            let (key, value) = pair.split_once('=')?;
            let value: u64 = value.parse().ok()?;
            match key {
                "exports" => stats.exports = value,
                "events" => stats.events = value,
                "bytes" => stats.bytes = value,
                "points" => stats.points = value,
                "skipped_no_listener" => stats.skipped_no_listener = value,
                "skipped_unavailable" => stats.skipped_unavailable = value,
                _ => {}
            }
        }
        Some(stats)
    }

    /// These counters must equal what the listener received.
    pub fn assert_match(&self, received: &Received, what: &str) {
        assert_eq!(
            (self.events, self.bytes, self.points),
            (
                received.events() as u64,
                received.payload_bytes() as u64,
                received.points() as u64
            ),
            "{what}: app stats (events, bytes, points) vs collector"
        );
    }
}

/// The app binary of this package (packed at its host path by `cargo xtask e2e`).
pub const APP: &str = env!("CARGO_BIN_EXE_ue-e2e-app");

/// Reads the `--expect` file of `ue-e2e-app`: length-delimited reference requests.
pub fn read_expect_file(path: &std::path::Path) -> Vec<ExportMetricsServiceRequest> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rest = bytes.as_slice();
    let mut requests = Vec::new();
    while !rest.is_empty() {
        requests.push(
            ExportMetricsServiceRequest::decode_length_delimited(&mut rest)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        );
    }
    requests
}

/// Text of a finished command's output, for messages.
pub fn output_text(output: &std::process::Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
