//! `UserEventsReader` against the SDK's own `PeriodicReader` (what `with_periodic_exporter`
//! builds): with the same exporter configuration, both must write the same OTLP for every
//! instrument kind, every temporality preference, over several collection cycles. How the two
//! are driven in lockstep and compared: `common/differential.rs`.

mod common;
#[path = "common/differential.rs"]
mod differential;

use opentelemetry_sdk::metrics::Temporality;
use ue_metrics_exporter::sink::CaptureSink;
use ue_metrics_exporter::MetricsExporter;

const CYCLES: u64 = 4;

fn both_readers_write_the_same(temporality: Temporality) {
    let build = |sink: &CaptureSink| {
        MetricsExporter::builder()
            .with_temporality(temporality)
            .build_with_sink(sink.clone())
            .expect("valid options")
    };
    let (ours_sink, sdk_sink) = (CaptureSink::new(), CaptureSink::new());
    let (provider, ours) = differential::two_readers(build(&ours_sink), build(&sdk_sink));
    let (ours_cycles, sdk_cycles) =
        differential::run_cycles(&provider, CYCLES, || (ours_sink.take(), sdk_sink.take()));
    assert_eq!(ours.exporter().stats().collections, CYCLES);
    differential::assert_same(ours_cycles, sdk_cycles, &format!("{temporality:?}"));
    provider.shutdown().expect("shutdown");
}

#[test]
fn under_a_delta_preference_both_readers_write_the_same() {
    both_readers_write_the_same(Temporality::Delta);
}

#[test]
fn under_a_cumulative_preference_both_readers_write_the_same() {
    both_readers_write_the_same(Temporality::Cumulative);
}

#[test]
fn under_a_low_memory_preference_both_readers_write_the_same() {
    both_readers_write_the_same(Temporality::LowMemory);
}
