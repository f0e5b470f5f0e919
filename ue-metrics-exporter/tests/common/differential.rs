//! Shared by `tests/differential.rs` (host, several cycles) and `tests/kernel.rs` (VM, one
//! cycle): one provider with a `UserEventsReader` and the SDK's `PeriodicReader`, every
//! instrument kind, and the comparison of what the two wrote.
//!
//! Both readers sit on ONE provider, so every measurement reaches both pipelines, and one
//! `provider.force_flush()` makes both collect and export, back to back (lockstep). What still
//! differs between them is only the wall-clock time each pipeline read when it collected (the
//! SDK stamps every instrument with its own `SystemTime::now()`), so timestamps are compared by
//! their order, not their value: per stream, every distinct timestamp (start or time, over all
//! cycles) is replaced by its rank. A Delta start equal to the previous cycle's time keeps the
//! same rank on both sides; a Delta start taken as Cumulative (or the reverse) does not.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{decode, parse_payload};
use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, PeriodicReader, SdkMeterProvider, Stream,
};
use otlp_metrics_encode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use otlp_metrics_encode::proto::common::v1::KeyValue as ProtoKeyValue;
use otlp_metrics_encode::proto::metrics::v1::{metric::Data, Metric};
use ue_metrics_exporter::{MetricsExporter, UserEventsReader};

const NEVER: Duration = Duration::from_secs(3600);

/// Sync instruments, kept alive for the whole test.
pub struct Instruments {
    counters: (
        opentelemetry::metrics::Counter<u64>,
        opentelemetry::metrics::Counter<f64>,
    ),
    up_downs: (
        opentelemetry::metrics::UpDownCounter<i64>,
        opentelemetry::metrics::UpDownCounter<f64>,
    ),
    histograms: (
        opentelemetry::metrics::Histogram<u64>,
        opentelemetry::metrics::Histogram<f64>,
        opentelemetry::metrics::Histogram<f64>,
    ),
    gauges: (
        opentelemetry::metrics::Gauge<u64>,
        opentelemetry::metrics::Gauge<i64>,
        opentelemetry::metrics::Gauge<f64>,
    ),
}

pub fn instruments(meter: &Meter, cycle: &Arc<AtomicU64>) -> Instruments {
    // Observable instruments report what the current cycle says, so both pipelines' callbacks
    // (run once per pipeline per collection) observe the same values.
    let observe = |c: &Arc<AtomicU64>| {
        let c = c.clone();
        move || c.load(Ordering::Relaxed)
    };
    let at = observe(cycle);
    meter
        .u64_observable_counter("oc.u64")
        .with_callback(move |o| o.observe(10 * (at() + 1), &[KeyValue::new("k", "a")]))
        .build();
    let at = observe(cycle);
    meter
        .f64_observable_counter("oc.f64")
        .with_callback(move |o| o.observe(1.5 * (at() + 1) as f64, &[KeyValue::new("k", "a")]))
        .build();
    let at = observe(cycle);
    meter
        .i64_observable_up_down_counter("oud.i64")
        .with_callback(move |o| o.observe(5 - 3 * at() as i64, &[KeyValue::new("k", "a")]))
        .build();
    let at = observe(cycle);
    meter
        .f64_observable_up_down_counter("oud.f64")
        .with_callback(move |o| {
            let n = at();
            o.observe(0.5 * n as f64, &[KeyValue::new("k", "a")]);
            if n >= 1 {
                // A stream that appears later.
                o.observe(-(n as f64), &[KeyValue::new("k", "b")]);
            }
        })
        .build();
    let at = observe(cycle);
    meter
        .u64_observable_gauge("og.u64")
        .with_callback(move |o| o.observe(100 + at(), &[KeyValue::new("k", "a")]))
        .build();
    let at = observe(cycle);
    meter
        .i64_observable_gauge("og.i64")
        .with_callback(move |o| o.observe(-7 * at() as i64, &[KeyValue::new("k", "a")]))
        .build();
    let at = observe(cycle);
    meter
        .f64_observable_gauge("og.f64")
        .with_callback(move |o| o.observe(0.25 * at() as f64, &[KeyValue::new("k", "b")]))
        .build();
    Instruments {
        counters: (
            meter.u64_counter("c.u64").build(),
            meter.f64_counter("c.f64").build(),
        ),
        up_downs: (
            meter.i64_up_down_counter("ud.i64").build(),
            meter.f64_up_down_counter("ud.f64").build(),
        ),
        histograms: (
            meter
                .u64_histogram("h.u64")
                .with_boundaries(vec![10.0, 100.0])
                .build(),
            meter.f64_histogram("h.f64").build(),
            meter.f64_histogram("h.expo").build(),
        ),
        gauges: (
            meter.u64_gauge("g.u64").build(),
            meter.i64_gauge("g.i64").build(),
            meter.f64_gauge("g.f64").build(),
        ),
    }
}

/// The measurements of cycle `n`: values change per cycle, a stream starts in cycle 1, and in
/// cycle 2 the sync instruments record nothing (Delta then has no point for them).
pub fn record(i: &Instruments, n: u64) {
    if n == 2 {
        return;
    }
    let a = [KeyValue::new("k", "a")];
    let b = [KeyValue::new("k", "b")];
    let x = n as f64;
    i.counters.0.add(3 + n, &a);
    i.counters.1.add(0.5 + x, &a);
    i.up_downs.0.add(10 - 4 * n as i64, &a);
    i.up_downs.1.add(-1.5 * x, &a);
    for v in [1.0 + x, 7.0, 30.0 * (x + 1.0)] {
        i.histograms.1.record(v, &a);
        i.histograms.2.record(v, &a);
    }
    i.histograms.0.record(50 + n, &a);
    i.gauges.0.record(42 + n, &a);
    i.gauges.1.record(-42 * n as i64, &a);
    i.gauges.2.record(0.25 + x, &a);
    if n >= 1 {
        i.counters.0.add(1, &b);
        i.up_downs.0.add(-1, &b);
        i.histograms.0.record(5, &b);
        i.histograms.2.record(0.125, &b);
    }
}

/// One provider with two readers: ours over `ours`, the SDK's `PeriodicReader` (what
/// `with_periodic_exporter` builds) over `sdk`; instruments named `h.expo` aggregate as
/// base-2 exponential histograms. Neither reader exports on its own: `force_flush` drives both.
pub fn two_readers(
    ours: MetricsExporter,
    sdk: MetricsExporter,
) -> (SdkMeterProvider, UserEventsReader) {
    let ours = UserEventsReader::builder(ours).with_interval(NEVER).build();
    let sdk = PeriodicReader::builder(sdk).with_interval(NEVER).build();
    let provider = SdkMeterProvider::builder()
        .with_resource(crate::common::resource())
        .with_reader(ours.clone())
        .with_reader(sdk)
        .with_view(|i: &Instrument| {
            (i.name() == "h.expo").then(|| {
                Stream::builder()
                    .with_aggregation(Aggregation::Base2ExponentialHistogram {
                        max_size: 160,
                        max_scale: 20,
                        record_min_max: true,
                    })
                    .build()
                    .expect("valid stream")
            })
        })
        .build();
    (provider, ours)
}

/// (resource, scope, metric name) -> the metric with all its points of one cycle.
pub type Cycle = BTreeMap<(String, String, String), Metric>;

pub fn cycle(events: &[Vec<u8>]) -> Cycle {
    let requests: Vec<ExportMetricsServiceRequest> = events
        .iter()
        .map(|e| decode(parse_payload(e).buffer))
        .collect();
    let mut out = Cycle::new();
    for request in requests {
        for rm in request.resource_metrics {
            // Attribute order comes from a hash map: sort it, it carries no meaning.
            let mut resource = rm.resource.unwrap_or_default();
            resource.attributes.sort_by(|a, b| a.key.cmp(&b.key));
            let resource = format!("{resource:?} {}", rm.schema_url);
            for sm in rm.scope_metrics {
                let scope = format!("{:?} {}", sm.scope, sm.schema_url);
                for metric in sm.metrics {
                    let key = (resource.clone(), scope.clone(), metric.name.clone());
                    match out.get_mut(&key) {
                        None => {
                            out.insert(key, metric);
                        }
                        Some(existing) => append_points(existing, metric),
                    }
                }
            }
        }
    }
    for metric in out.values_mut() {
        sort_points(metric);
    }
    out
}

fn append_points(into: &mut Metric, from: Metric) {
    match (&mut into.data, from.data) {
        (Some(Data::Sum(a)), Some(Data::Sum(b))) => a.data_points.extend(b.data_points),
        (Some(Data::Gauge(a)), Some(Data::Gauge(b))) => a.data_points.extend(b.data_points),
        (Some(Data::Histogram(a)), Some(Data::Histogram(b))) => a.data_points.extend(b.data_points),
        (Some(Data::ExponentialHistogram(a)), Some(Data::ExponentialHistogram(b))) => {
            a.data_points.extend(b.data_points)
        }
        (a, b) => panic!("{} changed kind: {a:?} vs {b:?}", into.name),
    }
}

fn attrs_key(attrs: &[ProtoKeyValue]) -> String {
    format!("{attrs:?}")
}

fn sort_points(metric: &mut Metric) {
    match &mut metric.data {
        Some(Data::Sum(s)) => s.data_points.sort_by_key(|p| attrs_key(&p.attributes)),
        Some(Data::Gauge(g)) => g.data_points.sort_by_key(|p| attrs_key(&p.attributes)),
        Some(Data::Histogram(h)) => h.data_points.sort_by_key(|p| attrs_key(&p.attributes)),
        Some(Data::ExponentialHistogram(e)) => {
            e.data_points.sort_by_key(|p| attrs_key(&p.attributes))
        }
        other => panic!("unexpected data {other:?}"),
    }
}

/// Calls `f(attributes, start, time)` for every point of `metric`.
fn each_point(metric: &mut Metric, mut f: impl FnMut(&[ProtoKeyValue], &mut u64, &mut u64)) {
    match &mut metric.data {
        Some(Data::Sum(s)) => s.data_points.iter_mut().for_each(|p| {
            f(
                &p.attributes,
                &mut p.start_time_unix_nano,
                &mut p.time_unix_nano,
            )
        }),
        Some(Data::Gauge(g)) => g.data_points.iter_mut().for_each(|p| {
            f(
                &p.attributes,
                &mut p.start_time_unix_nano,
                &mut p.time_unix_nano,
            )
        }),
        Some(Data::Histogram(h)) => h.data_points.iter_mut().for_each(|p| {
            f(
                &p.attributes,
                &mut p.start_time_unix_nano,
                &mut p.time_unix_nano,
            )
        }),
        Some(Data::ExponentialHistogram(e)) => e.data_points.iter_mut().for_each(|p| {
            f(
                &p.attributes,
                &mut p.start_time_unix_nano,
                &mut p.time_unix_nano,
            )
        }),
        _ => {}
    }
}

/// Replaces each timestamp by its rank among all timestamps of its stream (metric +
/// attributes) over all cycles, after checking that no point starts after its time.
pub fn rank_timestamps(cycles: &mut [Cycle]) {
    let mut stamps: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for cycle in cycles.iter_mut() {
        for (key, metric) in cycle.iter_mut() {
            each_point(metric, |attrs, start, time| {
                assert!(*start <= *time, "{key:?} {attrs:?}: start after time");
                let stream = stamps
                    .entry((format!("{key:?}"), attrs_key(attrs)))
                    .or_default();
                stream.extend([*start, *time]);
            });
        }
    }
    for stream in stamps.values_mut() {
        stream.sort_unstable();
        stream.dedup();
    }
    for cycle in cycles.iter_mut() {
        for (key, metric) in cycle.iter_mut() {
            each_point(metric, |attrs, start, time| {
                let stream = &stamps[&(format!("{key:?}"), attrs_key(attrs))];
                let rank = |t: u64| stream.binary_search(&t).expect("seen above") as u64;
                (*start, *time) = (rank(*start), rank(*time));
            });
        }
    }
}

/// Runs `cycles` collection cycles (measurements, then one `force_flush` of the provider);
/// `take` returns what each reader wrote in that cycle as (ours, sdk) payloads.
pub fn run_cycles(
    provider: &SdkMeterProvider,
    cycles: u64,
    mut take: impl FnMut() -> (Vec<Vec<u8>>, Vec<Vec<u8>>),
) -> (Vec<Cycle>, Vec<Cycle>) {
    use opentelemetry::metrics::MeterProvider as _;
    let cycle_no = Arc::new(AtomicU64::new(0));
    let instruments = instruments(&provider.meter("differential"), &cycle_no);
    let (mut ours_cycles, mut sdk_cycles) = (Vec::new(), Vec::new());
    for n in 0..cycles {
        cycle_no.store(n, Ordering::Relaxed);
        record(&instruments, n);
        provider.force_flush().expect("both readers flush");
        let (ours, sdk) = take();
        ours_cycles.push(cycle(&ours));
        sdk_cycles.push(cycle(&sdk));
    }
    (ours_cycles, sdk_cycles)
}

/// Asserts that both readers wrote the same metrics, cycle by cycle (timestamps by rank).
pub fn assert_same(mut ours_cycles: Vec<Cycle>, mut sdk_cycles: Vec<Cycle>, label: &str) {
    assert_eq!(ours_cycles.len(), sdk_cycles.len());
    rank_timestamps(&mut ours_cycles);
    rank_timestamps(&mut sdk_cycles);
    for (n, (ours, sdk)) in ours_cycles.iter().zip(&sdk_cycles).enumerate() {
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            sdk.keys().collect::<Vec<_>>(),
            "{label} cycle {n}: the same metrics"
        );
        // The 7 observable instruments report every cycle (sync ones skip cycle 2 in Delta).
        assert!(ours.len() >= 7, "{label} cycle {n}: {} metrics", ours.len());
        for (key, metric) in ours {
            assert_eq!(
                metric, &sdk[key],
                "{label} cycle {n}: {key:?} differs between UserEventsReader (left) \
                 and PeriodicReader (right)"
            );
        }
    }
}
