//! Runs one of the agent's per-record paths over the reference workload W2 many times, for
//! instruction counts with callgrind (timings on a shared machine are noisy; instruction
//! counts are not):
//!
//! ```text
//! cargo build --profile bench -p ue-metrics-decode --example agent_loop
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/agent_loop forward 100
//! ```
//! Run it with two iteration counts and divide the difference in instructions by the extra
//! iterations and the workload's 1000 points: the setup cancels out. The paths are the ones
//! `benches/decode.rs` and `benches/prometheus.rs` time: `prost` (bare decode of the OTLP
//! buffers), `forward` (record from the raw sample, `process.pid` added to the request and to
//! the forwarded bytes), `accumulate` (already decoded requests into the Prometheus state) and
//! `prometheus` (record from the raw sample, enriched, accumulated).

use std::hint::black_box;
use std::time::Instant;

use otlp_metrics_encode::workloads;
use prost::Message as _;
use ue_metrics_decode::prometheus::{PrometheusOptions, PrometheusState};
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;

#[path = "../benches/common/mod.rs"]
mod common;
use common::{agent_record, event_buffers, raw_samples};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: agent_loop prost|forward|accumulate|prometheus ITERATIONS";
    let [_, mode, iterations] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let iterations: usize = iterations.parse().expect(usage);
    let workload = workloads::w2();
    let buffers = event_buffers(&workload);
    let (raws, decoder) = raw_samples(&buffers);
    let requests: Vec<ExportMetricsServiceRequest> = buffers
        .iter()
        .map(|b| ExportMetricsServiceRequest::decode(&b[..]).expect("W2 decodes"))
        .collect();
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    for _ in 0..iterations {
        match mode.as_str() {
            "prost" => buffers.iter().for_each(|b| {
                black_box(ExportMetricsServiceRequest::decode(&b[..]).ok());
            }),
            "forward" => raws.iter().for_each(|raw| {
                black_box(agent_record(&decoder, raw));
            }),
            "accumulate" => requests
                .iter()
                .for_each(|request| state.add_request(request, now)),
            "prometheus" => raws.iter().for_each(|raw| {
                if let Ok(request) = &agent_record(&decoder, raw).result {
                    state.add_request(request, now);
                }
            }),
            _ => panic!("{usage}"),
        }
    }
    println!(
        "{} points x {iterations} ({mode}); {} series",
        workload.points,
        state.series()
    );
}
