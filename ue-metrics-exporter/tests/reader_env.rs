//! `OTEL_METRIC_EXPORT_INTERVAL` sets `UserEventsReader`'s interval, like the SDK's
//! `PeriodicReader`. Its own test binary: the variable is process-wide.

mod common;

use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use ue_metrics_exporter::sink::CaptureSink;
use ue_metrics_exporter::{MetricsExporter, UserEventsReader};

#[test]
fn the_interval_comes_from_otel_metric_export_interval() {
    std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "20");
    let sink = CaptureSink::new();
    let exporter = MetricsExporter::builder()
        .build_with_sink(sink.clone())
        .unwrap();
    // No `with_interval`: without the variable, the first tick would come after 60 s.
    let reader = UserEventsReader::builder(exporter.clone()).build();
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    provider.meter("app").u64_counter("c").build().add(1, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while exporter.stats().collections < 3 {
        assert!(Instant::now() < deadline, "{:?}", exporter.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!sink.take().is_empty());
    provider.shutdown().unwrap();
}
