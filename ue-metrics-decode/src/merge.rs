//! Optional merging: the events one export was split into become one request again, and
//! producers that write one event per data point are batched, so fewer and larger requests go
//! downstream.
//!
//! An export is written by one thread, its events back to back; the next export of that thread
//! comes an export interval later. So records from the same writer (`pid`, `tid`) join while
//! each follows the previous one within [`MergeOptions::max_gap`] of sample time, and while the
//! merged request stays within [`MergeOptions::max_request_bytes`]. Writers are tracked
//! separately, so exports of different processes that interleave still merge. Metrics split
//! across events are put back together (same resource, scope, name, unit, kind); data points
//! are never changed.

use std::time::Duration;

use crate::data::{self, DataView};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};
use crate::record::{Record, SampleMeta};

/// Limits of a [`Merger`].
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Largest merged request, counted as the sum of the merged events' buffers (the merged
    /// encoding is smaller: shared resources and scopes are written once).
    pub max_request_bytes: usize,
    /// Longest pause between two events of one writer that still belong together. Events
    /// without a sample time join on size alone.
    pub max_gap: Duration,
    /// Writers with a pending merge; when one more arrives, the oldest merge is handed out.
    pub max_writers: usize,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            max_request_bytes: 1 << 20,
            max_gap: Duration::from_millis(100),
            max_writers: 64,
        }
    }
}

/// Who wrote a record: all processes share one event, threads export independently.
type Writer = (Option<u32>, Option<u32>);

/// Merges the consecutive records of each writer. Feed records with [`Merger::push`], and
/// call [`Merger::flush`] at the end of the input (or when the input is idle). Failed records
/// pass through at once.
#[derive(Debug, Default)]
pub struct Merger {
    options: MergeOptions,
    /// Pending merges, oldest first.
    pending: Vec<Pending>,
    merged_records: u64,
}

#[derive(Debug)]
struct Pending {
    writer: Writer,
    meta: SampleMeta,
    /// Sample time of the latest record merged.
    last_time: Option<u64>,
    buffer_len: usize,
    request: ExportMetricsServiceRequest,
    /// The single record's bytes until a second one joins.
    original: Option<Vec<u8>>,
}

impl Pending {
    fn into_record(self) -> Record {
        Record {
            meta: self.meta,
            buffer_len: self.buffer_len,
            result: Ok(self.request),
            original: self.original,
        }
    }
}

impl Merger {
    /// A merger with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// A merger with the given limits.
    pub fn with_options(options: MergeOptions) -> Self {
        Merger {
            options,
            ..Self::default()
        }
    }

    /// Records folded into an earlier one so far.
    pub fn merged_records(&self) -> u64 {
        self.merged_records
    }

    /// Adds a record; returns the records that are complete.
    pub fn push(&mut self, record: Record) -> Vec<Record> {
        let request = match record.result {
            Ok(request) => request,
            Err(error) => {
                return vec![Record {
                    result: Err(error),
                    ..record
                }]
            }
        };
        let mut out = Vec::new();
        let now = record.meta.time;
        // Writers that have been quiet for longer than the gap are done.
        if let Some(now) = now {
            let max_gap = duration_nanos(self.options.max_gap);
            self.hand_out(&mut out, |p| {
                p.last_time
                    .is_some_and(|last| now.saturating_sub(last) > max_gap)
            });
        }
        let writer = (record.meta.pid, record.meta.tid);
        let max_bytes = self.options.max_request_bytes;
        self.hand_out(&mut out, |p| {
            p.writer == writer && p.buffer_len.saturating_add(record.buffer_len) > max_bytes
        });
        if let Some(pending) = self.pending.iter_mut().find(|p| p.writer == writer) {
            merge_into(&mut pending.request, request);
            pending.buffer_len += record.buffer_len;
            pending.last_time = now.or(pending.last_time);
            pending.original = None;
            self.merged_records += 1;
            return out;
        }
        if self.pending.len() >= self.options.max_writers.max(1) {
            out.push(self.pending.remove(0).into_record());
        }
        self.pending.push(Pending {
            writer,
            meta: record.meta,
            last_time: now,
            buffer_len: record.buffer_len,
            request,
            original: record.original,
        });
        out
    }

    /// Hands out every pending merged record (at the end of input or when idle), oldest first.
    pub fn flush(&mut self) -> Vec<Record> {
        self.pending.drain(..).map(Pending::into_record).collect()
    }

    fn hand_out(&mut self, out: &mut Vec<Record>, done: impl Fn(&Pending) -> bool) {
        let mut i = 0;
        while i < self.pending.len() {
            if done(&self.pending[i]) {
                out.push(self.pending.remove(i).into_record());
            } else {
                i += 1;
            }
        }
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
