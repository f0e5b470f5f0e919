//! The inputs the benches and `examples/agent_loop.rs` share: a workload as the exporter writes
//! it (the encoder's size-bounded events) and as perf hands it to the agent (raw tracepoint
//! samples), and the agent's per-record step.

use otlp_metrics_encode::workloads::Workload;
use otlp_metrics_encode::{MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};
use ue_metrics_decode::enrich::add_process_pid_to_record;
use ue_metrics_decode::format::EXAMPLE_FORMAT;
use ue_metrics_decode::sample::encode_raw_sample;
use ue_metrics_decode::{Record, RecordFormat, SampleDecoder, SampleMeta};

/// The events `ue-metrics-exporter` writes for a workload: the encoder's size-bounded chunks.
pub fn event_buffers(workload: &Workload) -> Vec<Vec<u8>> {
    let mut encoder = MetricsEncoder::new();
    let mut events = Vec::new();
    encoder
        .encode_chunks(&workload.metrics, DEFAULT_MAX_REQUEST_BYTES, |chunk| {
            events.push(chunk.to_vec());
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|never| match never {});
    events
}

/// Each buffer as a raw tracepoint sample of the example format, with the decoder of that
/// format.
pub fn raw_samples(buffers: &[Vec<u8>]) -> (Vec<Vec<u8>>, SampleDecoder) {
    let format = RecordFormat::parse(EXAMPLE_FORMAT).expect("the example format parses");
    let raws = buffers
        .iter()
        .map(|b| encode_raw_sample(&format, 1535, 1, b).expect("a raw sample"))
        .collect();
    (raws, SampleDecoder::new(&format).expect("a decoder"))
}

/// The sample metadata perf gives: a writer's pid.
pub const META: SampleMeta = SampleMeta {
    time: None,
    pid: Some(4242),
    tid: None,
    cpu: None,
};

/// What the agent does with each sample before its outputs: the record (request decoded,
/// producer's bytes kept) with `process.pid` added to both.
pub fn agent_record(decoder: &SampleDecoder, raw: &[u8]) -> Record {
    let mut record = Record::from_payload(META, decoder.decode(raw));
    add_process_pid_to_record(&mut record);
    record
}
