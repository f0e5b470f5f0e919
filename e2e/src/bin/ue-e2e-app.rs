//! `ue-e2e-app`: an app for `perf record -e user_events:otlp_metrics -- ue-e2e-app ...`.
//!
//! It records known values in every instrument kind ([`ue_metrics_e2e::known`]) for a few
//! rounds, exports after each round through the SDK's `PeriodicReader` and ue-metrics'
//! exporter, shuts down, and writes what the SDK handed over in every export that wrote events
//! (reference OTLP, length-delimited protobuf) to the `--expect` file, so a test can compare it
//! with what `perf` recorded. Its last stdout line is
//! `APP-STATS exports=<n> events=<n> bytes=<n> points=<n> skipped_no_listener=<n> skipped_unavailable=<n>`.
//!
//! ```text
//! ue-e2e-app [--event NAME] [--rounds N] [--temporality delta|cumulative|low-memory]
//!            [--expect FILE] [--wait-listener SECONDS]
//! ue-e2e-app --load SECONDS [--interval-ms N] [--exports N] [--eventheader PROVIDER]
//!            [--event NAME] [--wait-listener SECONDS]
//! ```
//! Without `user_events` (or without permission) it still runs and exits 0: the exporter stays
//! inactive and the expect file is empty.
//!
//! `--load SECONDS` is the throughput test's producer: a load shaped like the demo app's
//! ([`ue_metrics_e2e::load`]) recorded and exported every `--interval-ms` (default 1000, the
//! demo's rate; 0: back to back, as fast as it can) for SECONDS or until `--exports N`; with
//! `--eventheader PROVIDER` it writes EventHeader events (`<PROVIDER>_L4K1`) instead of
//! `otlp_metrics`. Its `APP-STATS` line then also has `write_errors=` and `seconds=` (from the first
//! export to the end of the shutdown's).

use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};
use prost::Message;
use ue_metrics_e2e::known::{self, KnownInstruments};
use ue_metrics_e2e::load::DemoShapedLoad;
use ue_metrics_e2e::tee::TeeExporter;
use ue_metrics_exporter::{MetricsExporter, DEFAULT_EVENT_NAME};

struct Args {
    event: String,
    rounds: u64,
    temporality: Temporality,
    expect: Option<String>,
    wait_listener: Duration,
    load: Option<Load>,
}

/// The throughput test's load (`--load`).
struct Load {
    duration: Duration,
    interval: Duration,
    max_exports: Option<u64>,
    eventheader: Option<String>,
}

const USAGE: &str = "usage: ue-e2e-app [--event NAME] [--rounds N] \
                     [--temporality delta|cumulative|low-memory] [--expect FILE] \
                     [--wait-listener SECONDS]\n       \
                     ue-e2e-app --load SECONDS [--interval-ms N] [--exports N] \
                     [--eventheader PROVIDER] [--event NAME] [--wait-listener SECONDS]";

fn parse_seconds(flag: &str, v: &str) -> Result<Duration, String> {
    let seconds: f64 = v.parse().map_err(|e| format!("{flag} {v}: {e}"))?;
    Duration::try_from_secs_f64(seconds.max(0.0)).map_err(|e| format!("{flag} {v}: {e}"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        event: DEFAULT_EVENT_NAME.into(),
        rounds: 3,
        temporality: Temporality::Delta,
        expect: None,
        wait_listener: Duration::from_secs(5),
        load: None,
    };
    let mut load_duration = None;
    let mut interval = Duration::from_secs(1);
    let mut max_exports = None;
    let mut eventheader = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--event" => args.event = value()?,
            "--rounds" => {
                let v = value()?;
                args.rounds = v.parse().map_err(|e| format!("--rounds {v}: {e}"))?;
            }
            "--temporality" => {
                args.temporality = match value()?.as_str() {
                    "delta" => Temporality::Delta,
                    "cumulative" => Temporality::Cumulative,
                    "low-memory" => Temporality::LowMemory,
                    other => return Err(format!("unknown temporality {other:?}")),
                }
            }
            "--expect" => args.expect = Some(value()?),
            "--wait-listener" => args.wait_listener = parse_seconds(&flag, &value()?)?,
            "--load" => load_duration = Some(parse_seconds(&flag, &value()?)?),
            "--interval-ms" => {
                let v = value()?;
                let ms: u64 = v.parse().map_err(|e| format!("--interval-ms {v}: {e}"))?;
                interval = Duration::from_millis(ms);
            }
            "--exports" => {
                let v = value()?;
                max_exports = Some(v.parse().map_err(|e| format!("--exports {v}: {e}"))?);
            }
            "--eventheader" => eventheader = Some(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    match load_duration {
        Some(duration) => {
            args.load = Some(Load {
                duration,
                interval,
                max_exports,
                eventheader,
            })
        }
        None if eventheader.is_some() || max_exports.is_some() => {
            return Err(format!(
                "--eventheader and --exports are options of --load\n{USAGE}"
            ))
        }
        None => {}
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Some(load) = &args.load {
        run_load(&args, load);
        return;
    }
    let exporter = match MetricsExporter::builder()
        .with_event_name(args.event.clone())
        .with_temporality(args.temporality)
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("ue-e2e-app: invalid exporter options: {e}");
            std::process::exit(2);
        }
    };
    if let Some(why) = exporter.unavailable() {
        eprintln!("ue-e2e-app: metrics are not exported: {why}");
    }
    let tee = TeeExporter::new(exporter.clone());
    let log = tee.log();
    // Exports happen on force_flush only (and at shutdown), so the test knows how many.
    let reader = PeriodicReader::builder(tee)
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = known::provider_builder().with_reader(reader).build();
    let instruments = KnownInstruments::register(&provider.meter(known::SCOPE));

    wait_for_listener(&exporter, args.wait_listener);
    for round in 1..=args.rounds {
        instruments.record_round(round);
        if let Err(e) = provider.force_flush() {
            eprintln!("ue-e2e-app: flush after round {round}: {e}");
        }
    }
    if let Err(e) = provider.shutdown() {
        eprintln!("ue-e2e-app: shutdown: {e}");
    }

    let exports = log.take();
    if let Some(path) = &args.expect {
        let mut bytes = Vec::new();
        for export in &exports {
            export
                .reference
                .encode_length_delimited(&mut bytes)
                .expect("a Vec grows");
        }
        if let Err(e) = std::fs::write(path, bytes) {
            eprintln!("ue-e2e-app: cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
    let s = exporter.stats();
    println!(
        "APP-STATS exports={} events={} bytes={} points={} skipped_no_listener={} \
         skipped_unavailable={}",
        exports.len(),
        s.events_written,
        s.bytes_written,
        s.points_encoded,
        s.exports_skipped_no_listener,
        s.exports_skipped_unavailable
    );
}

/// Waits up to `limit` for a listener (no wait when the exporter is inactive).
fn wait_for_listener(exporter: &MetricsExporter, limit: Duration) {
    let deadline = Instant::now() + limit;
    while exporter.unavailable().is_none()
        && !exporter.listener_attached()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `--load`: the demo-shaped load, one export per tick, at a fixed rate (ticks that fall
/// behind are not made up) or back to back.
fn run_load(args: &Args, load: &Load) {
    let mut builder = MetricsExporter::builder()
        .with_event_name(args.event.clone())
        .with_temporality(args.temporality);
    if let Some(provider) = &load.eventheader {
        builder = builder.with_eventheader_provider(provider.clone());
    }
    let exporter = match builder.build() {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("ue-e2e-app: invalid exporter options: {e}");
            std::process::exit(2);
        }
    };
    if let Some(why) = exporter.unavailable() {
        eprintln!("ue-e2e-app: metrics are not exported: {why}");
    }
    let reader = PeriodicReader::builder(exporter.clone())
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = known::provider_builder().with_reader(reader).build();
    let instruments = DemoShapedLoad::register(&provider.meter(known::SCOPE));
    wait_for_listener(&exporter, args.wait_listener);

    let started = Instant::now();
    let mut next = started;
    let mut tick = 0;
    while started.elapsed() < load.duration && load.max_exports.is_none_or(|n| tick < n) {
        tick += 1;
        instruments.record_tick(tick);
        if let Err(e) = provider.force_flush() {
            eprintln!("ue-e2e-app: flush after tick {tick}: {e}");
        }
        next += load.interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    // The shutdown exports once more (the observable and cumulative series): counted and
    // timed like the rest.
    if let Err(e) = provider.shutdown() {
        eprintln!("ue-e2e-app: shutdown: {e}");
    }
    let seconds = started.elapsed().as_secs_f64();
    let s = exporter.stats();
    println!(
        "APP-STATS exports={} events={} bytes={} points={} skipped_no_listener={} \
         skipped_unavailable={} write_errors={} ticks={tick} seconds={seconds:.3}",
        s.exports,
        s.events_written,
        s.bytes_written,
        s.points_encoded,
        s.exports_skipped_no_listener,
        s.exports_skipped_unavailable,
        s.write_errors,
    );
}
