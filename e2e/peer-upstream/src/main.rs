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

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::Resource;

fn main() {
    let exporter = opentelemetry_user_events_metrics::MetricsExporter::new();
    let provider = SdkMeterProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_attributes([KeyValue::new("service.name", "ue-peer-upstream")])
                .build(),
        )
        .with_periodic_exporter(exporter)
        .build();
    let meter = provider.meter("ue-peer-upstream");

    let requests = meter.u64_counter("peer.requests").with_unit("{request}").build();
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
