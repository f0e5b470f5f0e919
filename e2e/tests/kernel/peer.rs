//! The upstream exporter (crates.io `opentelemetry-user-events-metrics` 0.14, in the
//! `ue-peer-upstream` app of `e2e/peer-upstream`) next to ours on the same event.

use std::process::{Command, Stdio};
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use ue_metrics_e2e::collector::{Collector, Received};
use ue_metrics_e2e::guest::{measure, packed_program, PEER_UPSTREAM};
use ue_metrics_e2e::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_e2e::reference::{compare, point_count, points_of, PointValue};
use ue_metrics_e2e::tee::TeeExporter;
use ue_metrics_exporter::MetricsExporter;
use user_events_sys::Tracefs;

use crate::common::{assert_stats_match, output_text};

/// What the peer app records (see e2e/peer-upstream/src/main.rs), recorded here through ours.
fn record_like_the_peer(meter: &Meter) {
    let requests = meter
        .u64_counter("peer.requests")
        .with_unit("{request}")
        .build();
    requests.add(3, &[KeyValue::new("route", "/a")]);
    requests.add(4, &[KeyValue::new("route", "/b")]);
    requests.add(1, &[KeyValue::new("route", "/a")]);
    let queue = meter.i64_up_down_counter("peer.queue.length").build();
    queue.add(10, &[]);
    queue.add(-3, &[]);
    let temperature = meter.f64_gauge("peer.temperature").with_unit("Cel").build();
    temperature.record(19.0, &[KeyValue::new("room", "lab")]);
    temperature.record(21.5, &[KeyValue::new("room", "lab")]);
    let latency = meter.f64_histogram("peer.latency").with_unit("s").build();
    for v in [0.5, 1.5, 2.0] {
        latency.record(v, &[KeyValue::new("route", "/a")]);
    }
}

/// Checks one `RECORDED <kind> <metric> <attributes> <value>` line against `decoded`.
fn check_recorded(decoded: &[ExportMetricsServiceRequest], line: &str) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [_, kind, metric, attributes, value] = words[..] else {
        return Err(format!("malformed line {line:?}"));
    };
    let points: Vec<_> = points_of(decoded, metric)
        .into_iter()
        .filter(|p| p.attributes == attributes)
        .collect();
    let [point] = &points[..] else {
        return Err(format!("{line}: {} matching points", points.len()));
    };
    let want = match kind {
        "histogram" => {
            let (count, sum) = value.split_once('/').ok_or(format!("bad value {value}"))?;
            PointValue::Histogram {
                count: count.parse().map_err(|e| format!("{e}"))?,
                sum: sum.parse().map_err(|e| format!("{e}"))?,
            }
        }
        _ if matches!(point.value, PointValue::Int(_)) => {
            PointValue::Int(value.parse().map_err(|e| format!("{e}"))?)
        }
        _ => PointValue::Double(value.parse().map_err(|e| format!("{e}"))?),
    };
    if point.value == want {
        Ok(())
    } else {
        Err(format!("{line}: decoded {:?}", point.value))
    }
}

fn requests(received: &Received) -> Vec<ExportMetricsServiceRequest> {
    received
        .requests()
        .unwrap_or_else(|e| panic!("our decoder decodes every event: {e}"))
}

#[test]
fn the_upstream_exporter_is_a_peer_on_the_same_event() {
    let peer = packed_program(PEER_UPSTREAM).unwrap_or_else(|e| panic!("{e}"));
    // Ours registers `otlp_metrics u32 protocol;char[8] version;__rel_loc u8[] buffer`.
    let ours = MetricsExporter::builder()
        .with_require_user_events(true)
        .build()
        .expect("our exporter");
    let mut collector = Collector::attach("otlp_metrics", 256).expect("perf listener");
    let tee = TeeExporter::new(ours.clone());
    let log = tee.log();
    let provider = SdkMeterProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_attributes([KeyValue::new("service.name", "ue-metrics-e2e")])
                .build(),
        )
        .with_reader(
            PeriodicReader::builder(tee)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();

    // The peer registers the same event with a trailing `;` and exports while ours does.
    let child = Command::new(&peer)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the peer");
    record_like_the_peer(&provider.meter("ue-metrics-e2e.peer"));
    provider.force_flush().expect("flush");
    let output = child.wait_with_output().expect("peer output");
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let peer_pid: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PEER-DONE pid="))
        .and_then(|p| p.trim().parse().ok())
        .expect(&text);
    let recorded: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("RECORDED "))
        .collect();
    assert!(!recorded.is_empty(), "{text}");
    assert!(ours.unavailable().is_none(), "no format conflict for ours");

    let received = collector.take().expect("drain");
    assert_eq!(collector.lost(), 0);
    drop(collector);
    provider.shutdown().expect("shutdown");
    let me = std::process::id();
    let pids = received.pids();
    assert!(
        pids.contains(&me) && pids.contains(&peer_pid),
        "the one listener received both producers: {pids:?} (ours {me}, peer {peer_pid})"
    );

    // The upstream events: our decoder reads every one; one event per data point; the values
    // the peer says it recorded.
    let theirs = received.from_pid(peer_pid);
    let theirs_decoded = requests(&theirs);
    for request in &theirs_decoded {
        assert_eq!(
            point_count(std::slice::from_ref(request)),
            1,
            "one point per event"
        );
    }
    for line in &recorded {
        check_recorded(&theirs_decoded, line).unwrap_or_else(|e| panic!("upstream: {e}"));
    }
    assert_eq!(
        theirs.events(),
        recorded.len(),
        "one event per recorded point"
    );

    // Ours: the same values in fewer events, equal to what the SDK produced.
    let mine = received.from_pid(me);
    let mine_decoded = requests(&mine);
    for line in &recorded {
        check_recorded(&mine_decoded, line).unwrap_or_else(|e| panic!("ours: {e}"));
    }
    let expected: Vec<_> = log.take().into_iter().map(|e| e.reference).collect();
    compare(&mine_decoded, &expected).unwrap_or_else(|m| panic!("{m}"));
    assert_stats_match(&ours.stats(), &mine, "ours next to the peer");
    let format = Tracefs::discover()
        .and_then(|t| t.event_format("user_events", "otlp_metrics"))
        .expect("one event, one format");
    assert!(format.contains("protocol") && format.contains("version") && format.contains("buffer"));

    measure("peer_points", theirs.points());
    measure("peer_upstream_events", theirs.events());
    measure("peer_upstream_bytes", theirs.payload_bytes());
    measure("peer_ours_events", mine.events());
    measure("peer_ours_bytes", mine.payload_bytes());
}
