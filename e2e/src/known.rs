//! An app that records known values in every instrument the SDK offers, with every value type
//! it offers for that instrument: 18 instruments, one per (kind, value type).
//!
//! Instruments whose name ends in `.expo` aggregate as base-2 exponential histograms through a
//! View (the SDK has no exponential histogram instrument). Observable instruments report a
//! value derived from the round number at collection time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{Aggregation, Instrument, MeterProviderBuilder, Stream};
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;

/// The scope (meter) name the known instruments live in.
pub const SCOPE: &str = "ue-metrics-e2e.known";

/// The 18 instruments [`KnownInstruments`] records: every SDK instrument kind with every value
/// type the SDK offers for it.
pub const INSTRUMENTS: [&str; 18] = [
    "c.u64",
    "c.f64",
    "ud.i64",
    "ud.f64",
    "h.u64",
    "h.f64",
    "h.u64.expo",
    "h.f64.expo",
    "g.u64",
    "g.i64",
    "g.f64",
    "oc.u64",
    "oc.f64",
    "oud.i64",
    "oud.f64",
    "og.u64",
    "og.i64",
    "og.f64",
];

/// The resource of the known app.
pub fn resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "ue-metrics-e2e"),
            KeyValue::new("service.instance.id", "vm-1"),
            KeyValue::new("host.arch", "x86_64"),
        ])
        .build()
}

/// A provider builder with the known resource and the View that makes `*.expo` instruments
/// base-2 exponential histograms (max_size 160, max_scale 20).
pub fn provider_builder() -> MeterProviderBuilder {
    SdkMeterProvider::builder()
        .with_resource(resource())
        .with_view(|i: &Instrument| {
            if i.name().ends_with(".expo") {
                Stream::builder()
                    .with_aggregation(Aggregation::Base2ExponentialHistogram {
                        max_size: 160,
                        max_scale: 20,
                        record_min_max: true,
                    })
                    .build()
                    .ok()
            } else {
                None
            }
        })
}

/// The synchronous instruments (the observable ones live in the provider's callbacks).
pub struct KnownInstruments {
    round: Arc<AtomicU64>,
    c_u64: Counter<u64>,
    c_f64: Counter<f64>,
    ud_i64: UpDownCounter<i64>,
    ud_f64: UpDownCounter<f64>,
    h_u64: Histogram<u64>,
    h_f64: Histogram<f64>,
    e_u64: Histogram<u64>,
    e_f64: Histogram<f64>,
    g_u64: Gauge<u64>,
    g_i64: Gauge<i64>,
    g_f64: Gauge<f64>,
}

fn a() -> [KeyValue; 1] {
    [KeyValue::new("k", "a")]
}

fn b() -> [KeyValue; 2] {
    [KeyValue::new("k", "b"), KeyValue::new("n", 7)]
}

impl KnownInstruments {
    /// Creates the 18 instruments in `meter`.
    pub fn register(meter: &Meter) -> KnownInstruments {
        let round = Arc::new(AtomicU64::new(0));
        let r = |round: &Arc<AtomicU64>| {
            let round = round.clone();
            move || round.load(Ordering::Relaxed)
        };
        let now = r(&round);
        meter
            .u64_observable_counter("oc.u64")
            .with_description("observable counter of u64")
            .with_callback(move |o| o.observe(100 * now(), &a()))
            .build();
        let now = r(&round);
        meter
            .f64_observable_counter("oc.f64")
            .with_unit("s")
            .with_callback(move |o| o.observe(1.5 * now() as f64, &b()))
            .build();
        let now = r(&round);
        meter
            .i64_observable_up_down_counter("oud.i64")
            .with_callback(move |o| o.observe(-5 * now() as i64, &a()))
            .build();
        let now = r(&round);
        meter
            .f64_observable_up_down_counter("oud.f64")
            .with_callback(move |o| o.observe(2.5 * now() as f64, &a()))
            .build();
        let now = r(&round);
        meter
            .u64_observable_gauge("og.u64")
            .with_callback(move |o| o.observe(7 * now(), &b()))
            .build();
        let now = r(&round);
        meter
            .i64_observable_gauge("og.i64")
            .with_callback(move |o| o.observe(-7 * now() as i64, &a()))
            .build();
        let now = r(&round);
        meter
            .f64_observable_gauge("og.f64")
            .with_unit("Cel")
            .with_callback(move |o| o.observe(3.75 * now() as f64, &a()))
            .build();
        KnownInstruments {
            round,
            c_u64: meter
                .u64_counter("c.u64")
                .with_description("requests")
                .with_unit("{request}")
                .build(),
            c_f64: meter.f64_counter("c.f64").with_unit("By").build(),
            ud_i64: meter.i64_up_down_counter("ud.i64").build(),
            ud_f64: meter.f64_up_down_counter("ud.f64").build(),
            h_u64: meter
                .u64_histogram("h.u64")
                .with_boundaries(vec![10.0, 100.0])
                .build(),
            h_f64: meter.f64_histogram("h.f64").with_unit("ms").build(),
            e_u64: meter.u64_histogram("h.u64.expo").build(),
            e_f64: meter.f64_histogram("h.f64.expo").build(),
            g_u64: meter.u64_gauge("g.u64").build(),
            g_i64: meter.i64_gauge("g.i64").build(),
            g_f64: meter.f64_gauge("g.f64").build(),
        }
    }

    /// Records round `round` (1, 2, ...): values that differ per round, so Delta and
    /// Cumulative exports differ too. The observable instruments report from this round on.
    pub fn record_round(&self, round: u64) {
        self.round.store(round, Ordering::Relaxed);
        let r = round as f64;
        self.c_u64.add(round, &a());
        self.c_u64.add(1, &b());
        self.c_f64.add(0.5 * r, &a());
        self.ud_i64.add(10 * round as i64, &a());
        self.ud_i64.add(-3, &a());
        self.ud_f64.add(-1.5 * r, &b());
        for v in [5 * round, 50 * round] {
            self.h_u64.record(v, &a());
        }
        for v in [1.0, 7.0 * r, 30.0] {
            self.h_f64.record(v, &a());
        }
        for v in [round, 2 * round, 4 * round] {
            self.e_u64.record(v, &a());
        }
        for v in [r, 2.5, 8.0] {
            self.e_f64.record(v, &b());
        }
        self.g_u64.record(40 + round, &a());
        self.g_i64.record(-40 - round as i64, &a());
        self.g_f64.record(0.25 * r, &b());
    }
}

/// The value `c.u64{k=a}` must export after round `round` (rounds 1..=round recorded, one
/// export after each): the round's own increment for Delta (and LowMemory, which is Delta for
/// counters), the running total for Cumulative.
pub fn expected_counter(temporality: Temporality, round: u64) -> u64 {
    match temporality {
        Temporality::Cumulative => round * (round + 1) / 2,
        _ => round,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_expectations_follow_the_temporality() {
        assert_eq!(
            (1..=3)
                .map(|r| expected_counter(Temporality::Cumulative, r))
                .collect::<Vec<_>>(),
            [1, 3, 6]
        );
        assert_eq!(
            (1..=3)
                .map(|r| expected_counter(Temporality::Delta, r))
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(expected_counter(Temporality::LowMemory, 2), 2);
    }
}
