//! The real encoder's output (`otlp-metrics-encode`, both modes, SDK data from random recipes and
//! the reference workloads) through the decoder: identical requests come back.

use otlp_metrics_encode::check;
use otlp_metrics_encode::workloads::{self, collect};
use otlp_metrics_encode::{MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};
use proptest::prelude::*;
use ue_metrics_decode::format::EXAMPLE_FORMAT;
use ue_metrics_decode::merge::Merger;
use ue_metrics_decode::payload::encode_payload;
use ue_metrics_decode::sample::encode_raw_sample;
use ue_metrics_decode::{decode_payload, Record, RecordFormat, SampleDecoder, SampleMeta};

/// Mode (b): every chunk through a raw record and back; then merged, the items of the whole
/// export come back exactly once.
fn check_chunks(rm: &opentelemetry_sdk_metrics::ResourceMetrics) {
    let mut encoder = MetricsEncoder::new();
    let full = check::roundtrip(&mut encoder, rm);
    let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    let decoder = SampleDecoder::new(&format).unwrap();
    let mut chunks = Vec::new();
    encoder
        .encode_chunks(rm, DEFAULT_MAX_REQUEST_BYTES, |chunk| {
            chunks.push(chunk.to_vec());
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
    let mut merger = Merger::new();
    let mut merged = Vec::new();
    for chunk in &chunks {
        let raw = encode_raw_sample(&format, 1535, 7, chunk).unwrap();
        let payload = decoder.decode(&raw).unwrap();
        assert_eq!(payload.buffer, &chunk[..]);
        let request = payload.to_request().unwrap();
        assert_eq!(request, check::decode(chunk));
        merged.extend(merger.push(Record {
            meta: SampleMeta {
                pid: Some(7),
                ..Default::default()
            },
            buffer_len: chunk.len(),
            result: Ok(request),
            original: None,
        }));
    }
    merged.extend(merger.flush());
    let mut items = Vec::new();
    for record in merged {
        items.extend(check::flatten(record.result.unwrap()));
    }
    let mut expected = check::flatten(full);
    let key = |i: &check::Item| format!("{i:?}");
    items.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(items.len(), expected.len());
    assert!(
        items == expected,
        "merged chunks differ from the whole export"
    );
}

mod opentelemetry_sdk_metrics {
    pub use opentelemetry_sdk::metrics::data::ResourceMetrics;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Mode (a): one request per export, through a payload.
    #[test]
    fn encoder_request_through_payload(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let rm = collect(&check::recipe_from_bytes(&bytes));
        let mut encoder = MetricsEncoder::new();
        let encoded = encoder.encode_request(&rm).to_vec();
        prop_assume!(encoded.len() < 65536 && !encoded.is_empty());
        let payload = encode_payload(&encoded);
        let decoded = decode_payload(&payload).unwrap().to_request().unwrap();
        prop_assert_eq!(decoded, check::decode(&encoded));
    }

    /// Mode (b): size-bounded chunks through raw records, merged back.
    #[test]
    fn encoder_chunks_through_raw_records(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_chunks(&collect(&check::recipe_from_bytes(&bytes)));
    }
}

#[test]
fn reference_workloads_w1_w2() {
    for w in [workloads::w1(), workloads::w2()] {
        check_chunks(&w.metrics);
    }
}
