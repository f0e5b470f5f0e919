//! `ue-peer-upstream`: a tiny app that records a few known metrics through the crates.io
//! `opentelemetry-user-events-metrics` exporter (the upstream exporter ue-metrics is compared
//! with), then shuts its provider down, which exports once.
//!
//! The e2e suite runs it in the VM next to ue-metrics' own exporter: both register
//! `user_events:otlp_metrics` (upstream with a trailing `;`), the same perf listener receives
//! both, and ue-metrics-decode decodes the upstream events.
//!
//! It prints one line per value it recorded, for the test to compare with what it decoded:
//! `RECORDED <kind> <metric> <attributes> <value>` where `<attributes>` is `k=v[,k=v]` or `-`,
//! `<kind>` is `sum`, `gauge` or `histogram` (value `count/sum`). The last line is
//! `PEER-DONE pid=<pid>`. Exit code 0, or 1 when the provider's shutdown failed.
//!
//! `ue-peer-upstream --load SECONDS [--interval-ms N]` is the throughput test's producer: it
//! records the same values and exports them every N ms (default 1000; 0: back to back) for
//! SECONDS, then prints `PEER-LOAD exports=<n> points=<n> failed_exports=<n> ticks=<n>
//! seconds=<s>`: the data points of the exports the upstream exporter reported done, each one
//! event (it writes one event per point, when a listener is attached; the test keeps one
//! attached throughout).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;

/// What the counting exporter saw.
#[derive(Default)]
struct Counts {
    exports: AtomicU64,
    points: AtomicU64,
    failed_exports: AtomicU64,
}

/// Passes every export to the upstream exporter and counts the data points of those it
/// reported done.
struct Counting<E> {
    inner: E,
    counts: Arc<Counts>,
}

fn points_of<T>(data: &MetricData<T>) -> u64 {
    let n = match data {
        MetricData::Gauge(g) => g.data_points().count(),
        MetricData::Sum(s) => s.data_points().count(),
        MetricData::Histogram(h) => h.data_points().count(),
        MetricData::ExponentialHistogram(e) => e.data_points().count(),
    };
    n as u64
}

impl<E: PushMetricExporter> PushMetricExporter for Counting<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if result.is_ok() {
            let points: u64 = metrics
                .scope_metrics()
                .flat_map(|scope| scope.metrics())
                .map(|metric| match metric.data() {
                    AggregatedMetrics::F64(d) => points_of(d),
                    AggregatedMetrics::U64(d) => points_of(d),
                    AggregatedMetrics::I64(d) => points_of(d),
                })
                .sum();
            self.counts.exports.fetch_add(1, Ordering::Relaxed);
            self.counts.points.fetch_add(points, Ordering::Relaxed);
        } else {
            self.counts.failed_exports.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// `--load SECONDS [--interval-ms N]`, or `None` for the one-export run.
fn parse_load() -> Result<Option<(Duration, Duration)>, String> {
    let mut load = None;
    let mut interval = Duration::from_secs(1);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--load" => {
                let seconds: f64 = value.parse().map_err(|e| format!("--load {value}: {e}"))?;
                load = Some(
                    Duration::try_from_secs_f64(seconds)
                        .map_err(|e| format!("--load {value}: {e}"))?,
                );
            }
            "--interval-ms" => {
                let ms: u64 = value
                    .parse()
                    .map_err(|e| format!("--interval-ms {value}: {e}"))?;
                interval = Duration::from_millis(ms);
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: ue-peer-upstream [--load SECONDS \
                     [--interval-ms N]]"
                ))
            }
        }
    }
    Ok(load.map(|seconds| (seconds, interval)))
}

fn main() {
    let load = match parse_load() {
        Ok(load) => load,
        Err(message) => {
            eprintln!("ue-peer-upstream: {message}");
            std::process::exit(2);
        }
    };
    let counts = Arc::new(Counts::default());
    let exporter = Counting {
        inner: opentelemetry_user_events_metrics::MetricsExporter::new(),
        counts: counts.clone(),
    };
    let provider = SdkMeterProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_attributes([KeyValue::new("service.name", "ue-peer-upstream")])
                .build(),
        )
        .with_periodic_exporter(exporter)
        .build();
    let meter = provider.meter("ue-peer-upstream");
    if let Some((duration, interval)) = load {
        let instruments = Instruments::new(&meter);
        let started = Instant::now();
        let mut next = started;
        let mut ticks = 0u64;
        while started.elapsed() < duration {
            ticks += 1;
            instruments.record();
            if let Err(e) = provider.force_flush() {
                eprintln!("ue-peer-upstream: flush after tick {ticks}: {e}");
            }
            next += interval;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        let code = match provider.shutdown() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ue-peer-upstream: shutdown failed: {e}");
                1
            }
        };
        println!(
            "PEER-LOAD exports={} points={} failed_exports={} ticks={ticks} seconds={:.3}",
            counts.exports.load(Ordering::Relaxed),
            counts.points.load(Ordering::Relaxed),
            counts.failed_exports.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64()
        );
        println!("PEER-DONE pid={}", std::process::id());
        std::process::exit(code);
    }

    let requests = meter
        .u64_counter("peer.requests")
        .with_unit("{request}")
        .build();
    requests.add(3, &[KeyValue::new("route", "/a")]);
    requests.add(4, &[KeyValue::new("route", "/b")]);
    requests.add(1, &[KeyValue::new("route", "/a")]);
    println!("RECORDED sum peer.requests route=/a 4");
    println!("RECORDED sum peer.requests route=/b 4");

    let queue = meter.i64_up_down_counter("peer.queue.length").build();
    queue.add(10, &[]);
    queue.add(-3, &[]);
    println!("RECORDED sum peer.queue.length - 7");

    let temperature = meter.f64_gauge("peer.temperature").with_unit("Cel").build();
    temperature.record(19.0, &[KeyValue::new("room", "lab")]);
    temperature.record(21.5, &[KeyValue::new("room", "lab")]);
    println!("RECORDED gauge peer.temperature room=lab 21.5");

    let latency = meter.f64_histogram("peer.latency").with_unit("s").build();
    for v in [0.5, 1.5, 2.0] {
        latency.record(v, &[KeyValue::new("route", "/a")]);
    }
    println!("RECORDED histogram peer.latency route=/a 3/4");

    // The periodic reader exports one last time on shutdown (if a listener is attached: the
    // upstream exporter checks its enable bit first).
    let code = match provider.shutdown() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ue-peer-upstream: shutdown failed: {e}");
            1
        }
    };
    println!("PEER-DONE pid={}", std::process::id());
    std::process::exit(code);
}

/// The instruments of the load: the same values as the one-export run, every tick.
struct Instruments {
    requests: opentelemetry::metrics::Counter<u64>,
    queue: opentelemetry::metrics::UpDownCounter<i64>,
    temperature: opentelemetry::metrics::Gauge<f64>,
    latency: opentelemetry::metrics::Histogram<f64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Instruments {
        Instruments {
            requests: meter
                .u64_counter("peer.requests")
                .with_unit("{request}")
                .build(),
            queue: meter.i64_up_down_counter("peer.queue.length").build(),
            temperature: meter.f64_gauge("peer.temperature").with_unit("Cel").build(),
            latency: meter.f64_histogram("peer.latency").with_unit("s").build(),
        }
    }

    /// Five series: two request routes, the queue, the temperature, the latency.
    fn record(&self) {
        self.requests.add(3, &[KeyValue::new("route", "/a")]);
        self.requests.add(4, &[KeyValue::new("route", "/b")]);
        self.queue.add(1, &[]);
        self.temperature
            .record(21.5, &[KeyValue::new("room", "lab")]);
        self.latency.record(0.5, &[KeyValue::new("route", "/a")]);
    }
}
