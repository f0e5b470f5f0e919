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
use otlp_metrics_encode::{MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};
use prost::Message as _;
use ue_metrics_decode::enrich::add_process_pid_to_record;
use ue_metrics_decode::format::EXAMPLE_FORMAT;
use ue_metrics_decode::prometheus::{PrometheusOptions, PrometheusState};
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_decode::sample::encode_raw_sample;
use ue_metrics_decode::{Record, RecordFormat, SampleDecoder, SampleMeta};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: agent_loop prost|forward|accumulate|prometheus ITERATIONS";
    let [_, mode, iterations] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let iterations: usize = iterations.parse().expect(usage);
    let workload = workloads::w2();
    let mut buffers = Vec::new();
    MetricsEncoder::new()
        .encode_chunks(&workload.metrics, DEFAULT_MAX_REQUEST_BYTES, |chunk| {
            buffers.push(chunk.to_vec());
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|never| match never {});
    let format = RecordFormat::parse(EXAMPLE_FORMAT).expect("example format");
    let raws: Vec<Vec<u8>> = buffers
        .iter()
        .map(|b| encode_raw_sample(&format, 1535, 1, b).expect("raw sample"))
        .collect();
    let decoder = SampleDecoder::new(&format).expect("decoder");
    let requests: Vec<ExportMetricsServiceRequest> = buffers
        .iter()
        .map(|b| ExportMetricsServiceRequest::decode(&b[..]).expect("W2 decodes"))
        .collect();
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    let meta = SampleMeta {
        pid: Some(4242),
        ..SampleMeta::default()
    };
    let record = |raw: &[u8]| {
        let mut record = Record::from_payload(meta, decoder.decode(raw));
        add_process_pid_to_record(&mut record);
        record
    };
    for _ in 0..iterations {
        match mode.as_str() {
            "prost" => buffers.iter().for_each(|b| {
                black_box(ExportMetricsServiceRequest::decode(&b[..]).ok());
            }),
            "forward" => raws.iter().for_each(|raw| {
                black_box(record(raw));
            }),
            "accumulate" => requests
                .iter()
                .for_each(|request| state.add_request(request, now)),
            "prometheus" => raws.iter().for_each(|raw| {
                if let Ok(request) = &record(raw).result {
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
