//! Optional merging: the events one export was split into (same process, same resource, same
//! collection time, one after another) become one request again, so fewer and larger requests
//! go downstream.
//!
//! Records merge when they come from the same `pid`, carry the same resource and their data
//! points have the same latest `time_unix_nano` (an export's points share the collection time).
//! Metrics split across events are put back together (same scope, name, unit, kind).

use prost::Message as _;

use crate::data::{self, DataView};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use crate::record::{Record, SampleMeta};

/// Identity of the export a record belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExportKey {
    pid: Option<u32>,
    resources: Vec<Vec<u8>>,
    time: u64,
}

fn export_key(meta: &SampleMeta, request: &ExportMetricsServiceRequest) -> ExportKey {
    ExportKey {
        pid: meta.pid,
        resources: request
            .resource_metrics
            .iter()
            .map(|rm| {
                rm.resource
                    .as_ref()
                    .map(|r| r.encode_to_vec())
                    .unwrap_or_default()
            })
            .collect(),
        time: latest_point_time(request),
    }
}

fn latest_point_time(request: &ExportMetricsServiceRequest) -> u64 {
    let mut latest = 0;
    for m in request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
    {
        let t = m
            .data
            .as_ref()
            .and_then(|d| DataView::of(d).points().map(|p| p.time_unix_nano()).max());
        latest = latest.max(t.unwrap_or(0));
    }
    latest
}

/// Merges consecutive records of one export. Feed records with [`Merger::push`]; failed
/// records pass through unchanged (after the pending merge).
#[derive(Debug, Default)]
pub struct Merger {
    pending: Option<Pending>,
    merged_records: u64,
}

#[derive(Debug)]
struct Pending {
    key: ExportKey,
    meta: SampleMeta,
    buffer_len: usize,
    request: ExportMetricsServiceRequest,
}

impl Merger {
    /// A merger with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records folded into an earlier one so far.
    pub fn merged_records(&self) -> u64 {
        self.merged_records
    }

    /// Adds a record; returns the records that are complete (zero, one or two).
    pub fn push(&mut self, record: Record) -> Vec<Record> {
        let request = match record.result {
            Ok(request) => request,
            Err(error) => {
                let mut out: Vec<Record> = self.flush().into_iter().collect();
                out.push(Record {
                    result: Err(error),
                    ..record
                });
                return out;
            }
        };
        let key = export_key(&record.meta, &request);
        if let Some(pending) = self.pending.as_mut().filter(|p| p.key == key) {
            merge_into(&mut pending.request, request);
            pending.buffer_len += record.buffer_len;
            self.merged_records += 1;
            return Vec::new();
        }
        let out = self.flush().into_iter().collect();
        self.pending = Some(Pending {
            key,
            meta: record.meta,
            buffer_len: record.buffer_len,
            request,
        });
        out
    }

    /// Hands out the pending merged record, if any (at the end of input or when idle).
    pub fn flush(&mut self) -> Option<Record> {
        self.pending.take().map(|p| Record {
            meta: p.meta,
            buffer_len: p.buffer_len,
            result: Ok(p.request),
        })
    }
}

/// Appends `source` to `target`, joining equal resources, scopes and metrics.
pub fn merge_into(target: &mut ExportMetricsServiceRequest, source: ExportMetricsServiceRequest) {
    for rm in source.resource_metrics {
        match target
            .resource_metrics
            .iter_mut()
            .find(|t| t.resource == rm.resource && t.schema_url == rm.schema_url)
        {
            Some(t) => merge_resource(t, rm),
            None => target.resource_metrics.push(rm),
        }
    }
}

fn merge_resource(target: &mut ResourceMetrics, source: ResourceMetrics) {
    for sm in source.scope_metrics {
        match target
            .scope_metrics
            .iter_mut()
            .find(|t| t.scope == sm.scope && t.schema_url == sm.schema_url)
        {
            Some(t) => merge_scope(t, sm),
            None => target.scope_metrics.push(sm),
        }
    }
}

fn merge_scope(target: &mut ScopeMetrics, source: ScopeMetrics) {
    for m in source.metrics {
        match target.metrics.iter_mut().find(|t| same_stream(t, &m)) {
            Some(t) => append_points(t, m),
            None => target.metrics.push(m),
        }
    }
}

fn same_stream(a: &Metric, b: &Metric) -> bool {
    let same_kind = match (&a.data, &b.data) {
        (Some(x), Some(y)) => DataView::of(x).same_kind(&DataView::of(y)),
        _ => false,
    };
    same_kind
        && a.name == b.name
        && a.unit == b.unit
        && a.description == b.description
        && a.metadata == b.metadata
}

fn append_points(target: &mut Metric, source: Metric) {
    if let (Some(t), Some(s)) = (&mut target.data, source.data) {
        // same_stream() checked the kinds: nothing is handed back.
        let _ = data::append_points(t, s);
    }
}
