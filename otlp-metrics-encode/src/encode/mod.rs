//! Writing from the SDK's data. `request.rs` writes a whole request in place (mode a);
//! `messages.rs`, `points.rs` and `attributes.rs` write its parts, shared with the
//! size-bounded mode. For that mode, [`Layout`] encodes the per-request, per-scope and
//! per-metric fields (resource, scope, metric name/description/unit, temporality) once per
//! export into `meta`, from which `chunk.rs` copies them into every request that needs them and
//! computes request sizes; the data points are written by [`put_points`] straight into the
//! open request.

mod attributes;
mod messages;
mod points;
mod request;

use std::ops::Range;

use opentelemetry_sdk::metrics::data::{Metric, ResourceMetrics, ScopeMetrics};

use crate::wire::{tag, Buf, WIRE_LEN};
use messages::{data_field, data_tail, put_metric_head, put_resource, put_schema_url, put_scope};
pub(crate) use messages::{put_points, slot, Widths, DATA_TAIL};
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
    /// Key of the `Metric.data` member (gauge, sum, histogram, exponential_histogram).
    pub data_key: u8,
    /// The fields after `data_points` in the data message (temporality, monotonic): kept
    /// here rather than in `meta` so that closing a metric section writes them with one
    /// fixed-size store.
    pub tail: [u8; DATA_TAIL],
    /// How many of `tail` are used.
    pub tail_len: usize,
}

/// The identity parts of one `ResourceMetrics` (resource, scopes, metric fields), encoded once
/// per export into `meta`, from which the size-bounded mode copies them into each request
/// that needs them and computes request sizes (`chunk.rs`). The buffers are kept between
/// exports, so an export of the same shape as a previous one allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// Resource, scope and metric fields of the whole export (small).
    pub meta: Buf,
    /// `ResourceMetrics.resource` (field 1) with key and length, in `meta`.
    pub resource: Range<usize>,
    /// `ResourceMetrics.schema_url` (field 3) with key and length, in `meta`; empty when unset.
    pub resource_schema_url: Range<usize>,
    pub scopes: Vec<ScopeLayout>,
    pub metrics: Vec<MetricLayout>,
}

impl Layout {
    /// Starts a new export: forgets everything and encodes the resource.
    pub fn begin(&mut self, rm: &ResourceMetrics, widths: &mut Widths) {
        self.meta.clear();
        self.scopes.clear();
        self.metrics.clear();
        let start = self.meta.len();
        put_resource(&mut self.meta, rm, widths);
        self.resource = start..self.meta.len();
        put_schema_url(&mut self.meta, rm.resource().schema_url());
        self.resource_schema_url = self.resource.end..self.meta.len();
    }

    /// Encodes the fields of one scope; returns its index.
    pub fn push_scope(&mut self, sm: &ScopeMetrics, widths: &mut Widths) -> usize {
        let start = self.meta.len();
        put_scope(&mut self.meta, sm.scope(), widths.scope(self.scopes.len()));
        let scope = start..self.meta.len();
        put_schema_url(&mut self.meta, sm.scope().schema_url());
        let schema_url = scope.end..self.meta.len();
        self.scopes.push(ScopeLayout { scope, schema_url });
        self.scopes.len() - 1
    }

    /// Encodes the fields of one metric (not its points); returns its index.
    pub fn push_metric(&mut self, metric: &Metric) -> usize {
        let start = self.meta.len();
        put_metric_head(&mut self.meta, metric);
        let head = start..self.meta.len();
        let (tail, tail_len) = data_tail(metric);
        self.metrics.push(MetricLayout {
            head,
            data_key: tag(data_field(metric), WIRE_LEN),
            tail,
            tail_len,
        });
        self.metrics.len() - 1
    }
}
