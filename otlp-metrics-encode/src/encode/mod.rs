//! First stage: every leaf of the request encoded once, from the SDK's data, into two reusable
//! buffers. `meta` holds the per-request, per-scope and per-metric fields (resource, scope,
//! metric name/description/unit, temporality); `points` holds every data point, complete with
//! its `data_points` key and length, back to back in input order. The second stage
//! (`chunk.rs`) assembles one or more requests from these byte ranges.

mod attributes;
mod points;

use std::ops::Range;

use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::Temporality;

use crate::wire::{finish_len, put_str_field, put_varint_field, reserve_len, tag, Buf, WIRE_LEN};
use attributes::{put_attributes, put_key_value};
use points::{
    put_exponential_histogram_point, put_histogram_point, put_number_point, to_nanos, Number, Times,
};

/// Field numbers of `Metric.data` members.
pub(crate) const METRIC_GAUGE: u8 = 5;
pub(crate) const METRIC_SUM: u8 = 7;
pub(crate) const METRIC_HISTOGRAM: u8 = 9;
pub(crate) const METRIC_EXPONENTIAL_HISTOGRAM: u8 = 10;

/// One scope of the input.
#[derive(Debug, Clone)]
pub(crate) struct ScopeLayout {
    /// `ScopeMetrics.scope` (field 1) with key and length, in `meta`.
    pub scope: Range<usize>,
    /// `ScopeMetrics.schema_url` (field 3) with key and length, in `meta`; empty when unset.
    pub schema_url: Range<usize>,
    /// Indices into [`Layout::metrics`].
    pub metrics: Range<usize>,
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
    /// Indices of this metric's points (see [`Layout::point_range`]).
    pub points: Range<usize>,
}

/// The encoded leaves of one `ResourceMetrics`. All buffers are kept between exports, so an
/// export of the same shape as a previous one allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    pub meta: Buf,
    pub points: Buf,
    /// End offset in `points` of every point, in input order.
    pub point_ends: Vec<usize>,
    /// `ResourceMetrics.resource` (field 1) with key and length, in `meta`.
    pub resource: Range<usize>,
    /// `ResourceMetrics.schema_url` (field 3) with key and length, in `meta`; empty when unset.
    pub resource_schema_url: Range<usize>,
    pub scopes: Vec<ScopeLayout>,
    pub metrics: Vec<MetricLayout>,
}

impl Layout {
    /// Byte range in `points` of point `index` (key and length included).
    #[inline]
    pub fn point_range(&self, index: usize) -> Range<usize> {
        let start = if index == 0 {
            0
        } else {
            self.point_ends[index - 1]
        };
        start..self.point_ends[index]
    }

    /// Byte range in `points` of all points of `metric`.
    #[inline]
    pub fn metric_points_bytes(&self, metric: &MetricLayout) -> Range<usize> {
        if metric.points.is_empty() {
            let at = if metric.points.start == 0 {
                0
            } else {
                self.point_ends[metric.points.start - 1]
            };
            return at..at;
        }
        self.point_range(metric.points.start).start..self.point_ends[metric.points.end - 1]
    }

    /// Encodes every leaf of `rm`, replacing what the buffers held.
    pub fn build(&mut self, rm: &ResourceMetrics) {
        self.meta.clear();
        self.points.clear();
        self.point_ends.clear();
        self.scopes.clear();
        self.metrics.clear();

        // ResourceMetrics.resource (1): Resource { attributes (1) }.
        let start = self.meta.len();
        self.meta.push(tag(1, WIRE_LEN));
        let at = reserve_len(&mut self.meta, 2);
        for (key, value) in rm.resource().iter() {
            put_key_value(&mut self.meta, 1, key.as_str(), value);
        }
        finish_len(&mut self.meta, at, 2);
        self.resource = start..self.meta.len();
        self.resource_schema_url = self.put_schema_url(rm.resource().schema_url());

        for sm in rm.scope_metrics() {
            let scope = sm.scope();
            // ScopeMetrics.scope (1): InstrumentationScope { name 1, version 2, attributes 3 }.
            let start = self.meta.len();
            self.meta.push(tag(1, WIRE_LEN));
            let at = reserve_len(&mut self.meta, 1);
            put_str_field(&mut self.meta, 1, scope.name());
            put_str_field(&mut self.meta, 2, scope.version().unwrap_or_default());
            put_attributes(&mut self.meta, 3, scope.attributes());
            finish_len(&mut self.meta, at, 1);
            let scope_field = start..self.meta.len();
            let schema_url = self.put_schema_url(scope.schema_url());

            let first_metric = self.metrics.len();
            for metric in sm.metrics() {
                self.put_metric(metric);
            }
            self.scopes.push(ScopeLayout {
                scope: scope_field,
                schema_url,
                metrics: first_metric..self.metrics.len(),
            });
        }
    }

    /// `schema_url` (field 3 of both ResourceMetrics and ScopeMetrics), omitted when unset or
    /// empty.
    fn put_schema_url(&mut self, url: Option<&str>) -> Range<usize> {
        let start = self.meta.len();
        put_str_field(&mut self.meta, 3, url.unwrap_or_default());
        start..self.meta.len()
    }

    fn put_metric(&mut self, metric: &Metric) {
        let start = self.meta.len();
        put_str_field(&mut self.meta, 1, metric.name());
        put_str_field(&mut self.meta, 2, metric.description());
        put_str_field(&mut self.meta, 3, metric.unit());
        let head = start..self.meta.len();
        let first_point = self.point_ends.len();
        let data_field = match metric.data() {
            AggregatedMetrics::F64(data) => self.put_data(data),
            AggregatedMetrics::U64(data) => self.put_data(data),
            AggregatedMetrics::I64(data) => self.put_data(data),
        };
        let tail_start = head.end;
        self.metrics.push(MetricLayout {
            head,
            data_field,
            tail: tail_start..self.meta.len(),
            points: first_point..self.point_ends.len(),
        });
    }

    /// Writes the points of one metric into `points` and the data message's trailing fields
    /// into `meta`; returns the `Metric.data` field number.
    fn put_data<T: Number>(&mut self, data: &MetricData<T>) -> u8 {
        let buf = &mut self.points;
        let ends = &mut self.point_ends;
        match data {
            MetricData::Gauge(gauge) => {
                let start = gauge.start_time().map(to_nanos).unwrap_or(0);
                let times = Times::new(start, to_nanos(gauge.time()));
                let mut guess = 1;
                for p in gauge.data_points() {
                    put_number_point(
                        buf,
                        &mut guess,
                        &times,
                        p.value(),
                        p.attributes(),
                        p.exemplars(),
                    );
                    ends.push(buf.len());
                }
                METRIC_GAUGE
            }
            MetricData::Sum(sum) => {
                let times = Times::new(to_nanos(sum.start_time()), to_nanos(sum.time()));
                let mut guess = 1;
                for p in sum.data_points() {
                    put_number_point(
                        buf,
                        &mut guess,
                        &times,
                        p.value(),
                        p.attributes(),
                        p.exemplars(),
                    );
                    ends.push(buf.len());
                }
                put_temporality(&mut self.meta, sum.temporality());
                if sum.is_monotonic() {
                    put_varint_field(&mut self.meta, 3, 1);
                }
                METRIC_SUM
            }
            MetricData::Histogram(hist) => {
                let times = Times::new(to_nanos(hist.start_time()), to_nanos(hist.time()));
                let mut guess = 2;
                for p in hist.data_points() {
                    put_histogram_point(buf, &mut guess, &times, p);
                    ends.push(buf.len());
                }
                put_temporality(&mut self.meta, hist.temporality());
                METRIC_HISTOGRAM
            }
            MetricData::ExponentialHistogram(hist) => {
                let times = Times::new(to_nanos(hist.start_time()), to_nanos(hist.time()));
                let mut guess = 2;
                for p in hist.data_points() {
                    put_exponential_histogram_point(buf, &mut guess, &times, p);
                    ends.push(buf.len());
                }
                put_temporality(&mut self.meta, hist.temporality());
                METRIC_EXPONENTIAL_HISTOGRAM
            }
        }
    }
}

/// `aggregation_temporality` (field 2 of Sum, Histogram, ExponentialHistogram) as the OTLP enum
/// value: DELTA = 1, CUMULATIVE = 2. Never the SDK enum's position (which would turn Cumulative
/// into 0, "unspecified"). `LowMemory` is a reader preference the SDK resolves to Delta or
/// Cumulative before data exists; if it ever reaches data it is written as Cumulative, like
/// the reference transform does with unknown values.
fn put_temporality(buf: &mut Buf, temporality: Temporality) {
    let value = match temporality {
        Temporality::Delta => 1,
        _ => 2,
    };
    put_varint_field(buf, 2, value);
}
