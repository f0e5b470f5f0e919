//! Merging consecutive events of one export.

mod common;

use common::requests::counter;
use ue_metrics_decode::merge::{MergeOptions, Merger};
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_decode::{DecodeError, Record, SampleMeta};

fn record(pid: u32, request: ExportMetricsServiceRequest) -> Record {
    Record {
        meta: SampleMeta {
            pid: Some(pid),
            ..Default::default()
        },
        buffer_len: 10,
        result: Ok(request),
        original: None,
    }
}

fn points(r: &Record) -> usize {
    use ue_metrics_decode::proto::metrics::v1::metric::Data;
    let req = r.result.as_ref().unwrap();
    req.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| match &m.data {
            Some(Data::Sum(s)) => s.data_points.len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn chunks_of_one_export_become_one_request() {
    let mut merger = Merger::new();
    let mut out = Vec::new();
    out.extend(merger.push(record(1, counter("svc", 3, 1))));
    out.extend(merger.push(record(1, counter("svc", 2, 1))));
    // Another process: the first merge is complete.
    out.extend(merger.push(record(2, counter("svc", 1, 1))));
    out.extend(merger.flush());
    assert_eq!(out.len(), 2);
    assert_eq!(points(&out[0]), 5, "points of one metric are joined");
    assert_eq!(
        out[0].result.as_ref().unwrap().resource_metrics[0].scope_metrics[0]
            .metrics
            .len(),
        1
    );
    assert_eq!(out[0].buffer_len, 20);
    assert_eq!(out[1].meta.pid, Some(2));
    assert_eq!(merger.merged_records(), 1);
}

#[test]
fn failures_pass_through_at_once_and_a_lone_record_keeps_its_bytes() {
    let mut merger = Merger::new();
    let mut lone = record(1, counter("a", 1, 1));
    lone.original = Some(vec![1, 2, 3]);
    assert!(merger.push(lone).is_empty());
    let out = merger.push(Record {
        meta: SampleMeta::default(),
        buffer_len: 0,
        result: Err(DecodeError::EmptyBuffer { offset: 16 }),
        original: None,
    });
    assert_eq!(out.len(), 1);
    assert!(out[0].result.is_err());
    let out = merger.flush();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].original.as_deref(), Some(&[1u8, 2, 3][..]));
}

fn timed(pid: u32, tid: u32, time: u64, request: ExportMetricsServiceRequest) -> Record {
    let mut r = record(pid, request);
    r.meta.tid = Some(tid);
    r.meta.time = Some(time);
    r
}

#[test]
fn interleaved_writers_merge_separately_and_a_pause_ends_an_export() {
    let ms = 1_000_000;
    let mut merger = Merger::new();
    let mut out = Vec::new();
    // Two processes exporting at the same time, their events interleaved.
    out.extend(merger.push(timed(1, 1, 10 * ms, counter("p1", 2, 1))));
    out.extend(merger.push(timed(2, 2, 10 * ms, counter("p2", 1, 1))));
    out.extend(merger.push(timed(1, 1, 11 * ms, counter("p1", 3, 1))));
    out.extend(merger.push(timed(2, 2, 11 * ms, counter("p2", 4, 1))));
    assert!(out.is_empty());
    // One second later: the next export of process 1; both earlier ones are complete.
    out.extend(merger.push(timed(1, 1, 1011 * ms, counter("p1", 1, 1))));
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].meta.pid, points(&out[0])), (Some(1), 5));
    assert_eq!((out[1].meta.pid, points(&out[1])), (Some(2), 5));
    assert!(out.iter().all(|r| r.original.is_none()));
    let last = merger.flush();
    assert_eq!((last.len(), points(&last[0])), (1, 1));
    assert_eq!(merger.merged_records(), 2);
}

#[test]
fn merged_requests_stay_within_the_size_limit() {
    let mut merger = Merger::with_options(MergeOptions {
        max_request_bytes: 25,
        ..MergeOptions::default()
    });
    // buffer_len 10 each: two fit, the third starts a new request.
    let out = merge_all(
        &mut merger,
        (0..5).map(|_| record(1, counter("s", 1, 1))).collect(),
    );
    let sizes: Vec<usize> = out.iter().map(|r| r.buffer_len).collect();
    assert_eq!(sizes, [20, 20, 10]);
}

/// The records of one export as the SDK exporter writes them: one writer, back to back.
fn w3_records() -> (Vec<Record>, Vec<otlp_metrics_encode::check::Item>) {
    use otlp_metrics_encode::{check, workloads, MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};
    let w = workloads::w3();
    let mut encoder = MetricsEncoder::new();
    let expected = check::flatten(check::roundtrip(&mut encoder, &w.metrics));
    let mut records = Vec::new();
    encoder
        .encode_chunks(&w.metrics, DEFAULT_MAX_REQUEST_BYTES, |chunk| {
            records.push(Record {
                meta: SampleMeta {
                    time: Some(5_000_000_000 + records.len() as u64 * 20_000),
                    pid: Some(7),
                    tid: Some(8),
                    cpu: Some(0),
                },
                buffer_len: chunk.len(),
                result: Ok(check::decode(chunk)),
                original: Some(chunk.to_vec()),
            });
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
    (records, expected)
}

fn merge_all(merger: &mut Merger, records: Vec<Record>) -> Vec<Record> {
    let mut out = Vec::new();
    for r in records {
        out.extend(merger.push(r));
    }
    out.extend(merger.flush());
    out
}

fn sorted_items(records: &[Record]) -> Vec<String> {
    let mut items: Vec<String> = records
        .iter()
        .flat_map(|r| otlp_metrics_encode::check::flatten(r.result.clone().unwrap()))
        .map(|i| format!("{i:?}"))
        .collect();
    items.sort();
    items
}

#[test]
fn one_w3_export_becomes_at_most_three_requests_with_every_point() {
    let (records, expected) = w3_records();
    let events = records.len();
    assert!(events > 200, "{events} chunks");
    let merged = merge_all(&mut Merger::new(), records);
    eprintln!("W3: {events} events -> {} requests", merged.len());
    assert!(merged.len() <= 3, "{} requests", merged.len());
    let mut expected: Vec<String> = expected.iter().map(|i| format!("{i:?}")).collect();
    expected.sort();
    assert_eq!(expected.len(), 10_000);
    assert!(sorted_items(&merged) == expected, "points changed");
}

#[test]
fn one_point_per_event_producers_are_batched_into_bounded_requests() {
    // The upstream exporter writes one event per data point: W3's 10,000 points as 10,000
    // single-point requests, each with the resource and scope.
    use otlp_metrics_encode::check;
    let (records, expected) = w3_records();
    let requests: Vec<ExportMetricsServiceRequest> = records
        .into_iter()
        .flat_map(|r| check::flatten(r.result.unwrap()))
        .map(|item| check::unflatten(std::slice::from_ref(&item)))
        .collect();
    assert_eq!(requests.len(), 10_000);
    let records: Vec<Record> = requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let mut r = timed(7, 7, 1_000_000 + i as u64 * 5_000, request);
            r.buffer_len = prost::Message::encoded_len(r.result.as_ref().unwrap());
            r
        })
        .collect();
    let total: usize = records.iter().map(|r| r.buffer_len).sum();
    let limit = MergeOptions::default().max_request_bytes;
    let merged = merge_all(&mut Merger::new(), records);
    eprintln!(
        "10,000 one-point events, {total} bytes -> {} requests",
        merged.len()
    );
    assert_eq!(merged.len(), total.div_ceil(limit), "{total} bytes");
    assert!(merged.iter().all(|r| r.buffer_len <= limit));
    let mut expected: Vec<String> = expected.iter().map(|i| format!("{i:?}")).collect();
    expected.sort();
    assert!(sorted_items(&merged) == expected, "points changed");
}
