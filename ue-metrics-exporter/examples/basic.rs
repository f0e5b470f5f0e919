//! A small "web service" that records every kind of instrument and exports to user_events
//! every second.
//!
//! ```text
//! cargo run -p ue-metrics-exporter --example basic -- [--seconds N] [--periodic] [--event-name NAME]
//! ```
//! `--seconds N` stops after N seconds (default: run until killed); `--periodic` uses the SDK's
//! `PeriodicReader` instead of `UserEventsReader`. At the end it prints the exporter's stats.
//! Watch it with `ue-metrics-decode live` or `perf record -e user_events:otlp_metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use ue_metrics_exporter::{MetricsExporter, UserEventsReader};

struct Args {
    seconds: Option<u64>,
    periodic: bool,
    event_name: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: None,
        periodic: false,
        event_name: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a number")?;
                args.seconds = Some(v.parse().map_err(|e| format!("--seconds {v}: {e}"))?);
            }
            "--periodic" => args.periodic = true,
            "--event-name" => args.event_name = Some(it.next().ok_or("--event-name needs a name")?),
            "-h" | "--help" => {
                return Err("usage: basic [--seconds N] [--periodic] [--event-name NAME]".into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// A tiny xorshift generator: the example needs plausible noise, not a rand dependency.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let mut builder = MetricsExporter::builder();
    if let Some(name) = &args.event_name {
        builder = builder.with_event_name(name.clone());
    }
    let exporter = match builder.build() {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("invalid exporter options: {e}");
            std::process::exit(2);
        }
    };
    if let Some(why) = exporter.unavailable() {
        eprintln!("note: metrics are not exported: {why}");
    }
    let handle = exporter.clone();
    let resource = Resource::builder()
        .with_service_name("basic-example")
        .with_attribute(KeyValue::new("service.version", "1.0.0"))
        .build();
    let interval = Duration::from_secs(1);
    let provider = if args.periodic {
        let reader = PeriodicReader::builder(exporter)
            .with_interval(interval)
            .build();
        SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .build()
    } else {
        let reader = UserEventsReader::builder(exporter)
            .with_interval(interval)
            .build();
        SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .build()
    };

    let meter = provider.meter("basic-example");
    let requests = meter
        .u64_counter("http.server.requests")
        .with_description("Requests handled")
        .build();
    let bytes_sent = meter
        .f64_counter("http.server.response.body.size")
        .with_unit("By")
        .build();
    let active = meter
        .i64_up_down_counter("http.server.active_requests")
        .build();
    let latency = meter
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .build();
    let payload = meter
        .u64_histogram("http.server.request.body.size")
        .with_unit("By")
        .with_boundaries(vec![64.0, 256.0, 1024.0, 4096.0, 16384.0])
        .build();
    let temperature = meter
        .f64_gauge("system.cpu.temperature")
        .with_unit("Cel")
        .build();
    let workers = meter.i64_gauge("app.workers").build();
    let pool_hits = meter.u64_gauge("app.cache.entries").build();

    // Observable instruments read shared state in their callbacks at collection time.
    let started = Instant::now();
    let queue_len = Arc::new(AtomicI64::new(0));
    let handled = Arc::new(AtomicU64::new(0));
    let _uptime = meter
        .f64_observable_counter("process.uptime")
        .with_unit("s")
        .with_callback(move |o| o.observe(started.elapsed().as_secs_f64(), &[]))
        .build();
    let handled_cb = handled.clone();
    let _handled = meter
        .u64_observable_counter("app.jobs.completed")
        .with_callback(move |o| o.observe(handled_cb.load(Ordering::Relaxed), &[]))
        .build();
    let queue_cb = queue_len.clone();
    let _queue = meter
        .i64_observable_up_down_counter("app.queue.length")
        .with_callback(move |o| o.observe(queue_cb.load(Ordering::Relaxed), &[]))
        .build();
    let _memory = meter
        .f64_observable_gauge("process.memory.usage_ratio")
        .with_callback(|o| o.observe(0.42, &[KeyValue::new("kind", "heap")]))
        .build();
    let _threads = meter
        .u64_observable_gauge("process.threads")
        .with_callback(|o| o.observe(4, &[]))
        .build();
    let _fds = meter
        .i64_observable_gauge("process.open_fds")
        .with_callback(|o| o.observe(17, &[]))
        .build();

    let routes = ["/", "/login", "/api/items", "/api/orders", "/health"];
    let methods = ["GET", "POST"];
    let statuses = [200_i64, 201, 404, 500];
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let deadline = args.seconds.map(|s| started + Duration::from_secs(s));
    let mut tick = 0u64;
    while deadline.is_none_or(|d| Instant::now() < d) {
        for _ in 0..50 {
            let route = routes[noise.below(routes.len() as u64) as usize];
            let method = methods[noise.below(2) as usize];
            let status = statuses[noise.below(statuses.len() as u64) as usize];
            let attrs = [
                KeyValue::new("http.route", route),
                KeyValue::new("http.request.method", method),
                KeyValue::new("http.response.status_code", status),
            ];
            active.add(1, &attrs[..2]);
            requests.add(1, &attrs);
            latency.record(noise.below(2_000) as f64 / 1000.0, &attrs);
            payload.record(noise.below(20_000), &attrs[..2]);
            bytes_sent.add(noise.below(10_000) as f64, &attrs);
            active.add(-1, &attrs[..2]);
            handled.fetch_add(1, Ordering::Relaxed);
        }
        queue_len.store(noise.below(32) as i64, Ordering::Relaxed);
        temperature.record(
            40.0 + noise.below(300) as f64 / 10.0,
            &[KeyValue::new("cpu", 0)],
        );
        workers.record(4 + (tick % 3) as i64, &[]);
        pool_hits.record(1000 + noise.below(100), &[KeyValue::new("cache", "items")]);
        tick += 1;
        std::thread::sleep(Duration::from_millis(100));
    }

    if let Err(e) = provider.shutdown() {
        eprintln!("shutdown: {e}");
    }
    let s = handle.stats();
    println!(
        "stats: exports={} skipped_no_listener={} skipped_unavailable={} collections={} \
         collections_skipped={} events={} bytes={} points={} oversized={} write_errors={} \
         interrupted={} failed={}",
        s.exports,
        s.exports_skipped_no_listener,
        s.exports_skipped_unavailable,
        s.collections,
        s.collections_skipped_no_listener,
        s.events_written,
        s.bytes_written,
        s.points_encoded,
        s.points_dropped_oversized,
        s.write_errors,
        s.exports_interrupted,
        s.exports_failed
    );
}
