//! First stage of the size-bounded mode: every leaf of the request encoded once, from the SDK's
//! data, into two reusable buffers. `meta` holds the per-request, per-scope and per-metric
//! fields (resource, scope, metric name/description/unit, temporality); `points` holds every
//! data point, complete with its `data_points` key and length, back to back in input order.
//! The second stage (`chunk.rs`) assembles requests from these byte ranges. A single request
//! (mode a) is written in place by `request.rs` instead.

mod attributes;
mod messages;
mod points;
mod request;

use std::ops::Range;

use opentelemetry_sdk::metrics::data::{Metric, ResourceMetrics, ScopeMetrics};

use crate::wire::Buf;
use messages::{
    data_field, put_data_tail, put_metric_head, put_points, put_resource, put_schema_url,
    put_scope, Widths,
};
pub(crate) use request::RequestWriter;

/// One scope of the input.
#[derive(Debug, Clone)]
pub(crate) struct ScopeLayout {
    /// `ScopeMetrics.scope` (field 1) with key and length, in `meta`.
    pub scope: Range<usize>,
    /// `ScopeMetrics.schema_url` (field 3) with key and length, in `meta`; empty when unset.
    pub schema_url: Range<usize>,
}

/// One metric of the input.
#[derive(Debug, Clone)]
pub(crate) struct MetricLayout {
    /// `Metric` fields 1-3 (name, description, unit), in `meta`.
    pub head: Range<usize>,
    /// Field number of the `Metric.data` member (gauge, sum, histogram, exponential_histogram).
    pub data_field: u8,
    /// The fields after `data_points` in the data message (temporality, monotonic), in `meta`.
    pub tail: Range<usize>,
}

/// The encoded leaves of one `ResourceMetrics`, built scope by scope and metric by metric so
/// the size-bounded mode can place each metric's points and send full requests while the
/// bytes are still in cache. All buffers are kept between exports, so an export of the same
/// shape as a previous one allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// Resource, scope and metric fields of the whole export (small).
    pub meta: Buf,
    /// Data points, each a complete `data_points` field; bytes that were sent are dropped by
    /// [`Layout::compact`].
    pub points: Buf,
    /// Where the last metric's points start in `points`, and where each one ends.
    last_points_start: usize,
    last_point_ends: Vec<usize>,
    /// `ResourceMetrics.resource` (field 1) with key and length, in `meta`.
    pub resource: Range<usize>,
    /// `ResourceMetrics.schema_url` (field 3) with key and length, in `meta`; empty when unset.
    pub resource_schema_url: Range<usize>,
    pub scopes: Vec<ScopeLayout>,
    pub metrics: Vec<MetricLayout>,
    /// Length prefix widths of the previous export, reserved again.
    widths: Widths,
}

/// Points bytes kept before [`Layout::compact`] moves the unsent ones to the front: large
/// enough that the move is rare, small enough to stay in the L2 cache.
const COMPACT_AT: usize = 32 * 1024;

impl Layout {
    /// Starts a new export: forgets everything and encodes the resource.
    pub fn begin(&mut self, rm: &ResourceMetrics) {
        self.meta.clear();
        self.points.clear();
        self.last_point_ends.clear();
        self.scopes.clear();
        self.metrics.clear();
        let start = self.meta.len();
        put_resource(&mut self.meta, rm, &mut self.widths);
        self.resource = start..self.meta.len();
        put_schema_url(&mut self.meta, rm.resource().schema_url());
        self.resource_schema_url = self.resource.end..self.meta.len();
    }

    /// Encodes the fields of one scope; returns its index.
    pub fn push_scope(&mut self, sm: &ScopeMetrics) -> usize {
        let start = self.meta.len();
        put_scope(
            &mut self.meta,
            sm.scope(),
            self.widths.scope(self.scopes.len()),
        );
        let scope = start..self.meta.len();
        put_schema_url(&mut self.meta, sm.scope().schema_url());
        let schema_url = scope.end..self.meta.len();
        self.scopes.push(ScopeLayout { scope, schema_url });
        self.scopes.len() - 1
    }

    /// Encodes one metric: its fields into `meta`, its points into `points`. Returns its index
    /// and the number of points; [`Layout::point_range`] gives their bytes until the next call.
    pub fn push_metric(&mut self, metric: &Metric) -> (usize, usize) {
        let start = self.meta.len();
        put_metric_head(&mut self.meta, metric);
        let head = start..self.meta.len();
        put_data_tail(&mut self.meta, metric);
        let tail = head.end..self.meta.len();
        self.metrics.push(MetricLayout {
            head,
            data_field: data_field(metric),
            tail,
        });
        self.last_points_start = self.points.len();
        self.last_point_ends.clear();
        let ends = &mut self.last_point_ends;
        let widths = self.widths.metric(self.metrics.len() - 1);
        put_points(&mut self.points, metric, widths, |end| ends.push(end));
        (self.metrics.len() - 1, self.last_point_ends.len())
    }

    /// Byte range in `points` of point `index` of the last metric (key and length included).
    #[inline]
    pub fn point_range(&self, index: usize) -> Range<usize> {
        let start = match index {
            0 => self.last_points_start,
            _ => self.last_point_ends[index - 1],
        };
        start..self.last_point_ends[index]
    }

    /// Where the next metric's points will start (for a metric without points).
    #[inline]
    pub fn points_end(&self) -> usize {
        self.points.len()
    }

    /// Drops the points bytes before `keep_from` (already sent) once there are enough of them,
    /// moving the rest to the front; returns by how much offsets moved down (0 if nothing).
    pub fn compact(&mut self, keep_from: usize) -> usize {
        if keep_from < COMPACT_AT {
            return 0;
        }
        let len = self.points.len();
        #[cfg(feature = "workloads")]
        crate::wire::moves::record_compaction(len - keep_from);
        self.points.copy_within(keep_from..len, 0);
        self.points.truncate(len - keep_from);
        keep_from
    }
}
