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
//! ```
//! Without `user_events` (or without permission) it still runs and exits 0: the exporter stays
//! inactive and the expect file is empty.

use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{PeriodicReader, Temporality};
use prost::Message;
use ue_metrics_e2e::known::{self, KnownInstruments};
use ue_metrics_e2e::tee::TeeExporter;
use ue_metrics_exporter::{MetricsExporter, DEFAULT_EVENT_NAME};

struct Args {
    event: String,
    rounds: u64,
    temporality: Temporality,
    expect: Option<String>,
    wait_listener: Duration,
}

const USAGE: &str = "usage: ue-e2e-app [--event NAME] [--rounds N] \
                     [--temporality delta|cumulative|low-memory] [--expect FILE] \
                     [--wait-listener SECONDS]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        event: DEFAULT_EVENT_NAME.into(),
        rounds: 3,
        temporality: Temporality::Delta,
        expect: None,
        wait_listener: Duration::from_secs(5),
    };
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
            "--wait-listener" => {
                let v = value()?;
                let seconds: f64 = v.parse().map_err(|e| format!("--wait-listener {v}: {e}"))?;
                args.wait_listener = Duration::from_secs_f64(seconds.max(0.0));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
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

    let deadline = Instant::now() + args.wait_listener;
    while exporter.unavailable().is_none()
        && !exporter.listener_attached()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
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
