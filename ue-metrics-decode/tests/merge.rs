//! Merging consecutive events of one export.

mod common;

use common::requests::counter;
use ue_metrics_decode::merge::Merger;
use ue_metrics_decode::{DecodeError, Record, SampleMeta};

fn record(
    pid: u32,
    request: ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest,
) -> Record {
    Record {
        meta: SampleMeta {
            pid: Some(pid),
            ..Default::default()
        },
        buffer_len: 10,
        result: Ok(request),
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
fn other_resources_and_failures_are_not_merged() {
    let mut merger = Merger::new();
    let mut out = Vec::new();
    out.extend(merger.push(record(1, counter("a", 1, 1))));
    out.extend(merger.push(record(1, counter("b", 1, 1))));
    out.extend(merger.push(Record {
        meta: SampleMeta::default(),
        buffer_len: 0,
        result: Err(DecodeError::EmptyBuffer { offset: 16 }),
    }));
    out.extend(merger.flush());
    assert_eq!(out.len(), 3);
    assert!(out[2].result.is_err());
}
