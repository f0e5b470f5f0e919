//! The per-request, per-scope and per-metric parts of a request, written from the SDK's data:
//! shared by the in-place request writer (`request.rs`) and the leaf layout (`mod.rs`).

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::Temporality;

use super::attributes::{put_attributes, put_key_value};
use super::points::{
    put_exponential_histogram_point, put_histogram_point, put_number_point, to_nanos, Number, Times,
};
use crate::wire::{finish_len, put_str_field, put_varint_field, reserve_len, tag, Buf, WIRE_LEN};

/// Field numbers of `Metric.data` members.
const METRIC_GAUGE: u8 = 5;
const METRIC_SUM: u8 = 7;
const METRIC_HISTOGRAM: u8 = 9;
const METRIC_EXPONENTIAL_HISTOGRAM: u8 = 10;

/// `ResourceMetrics.resource` (field 1): `Resource { attributes (1) }`, with key and length.
pub(crate) fn put_resource(buf: &mut Buf, rm: &ResourceMetrics) {
    buf.push(tag(1, WIRE_LEN));
    let at = reserve_len(buf, 2);
    for (key, value) in rm.resource().iter() {
        put_key_value(buf, 1, key.as_str(), value);
    }
    finish_len(buf, at, 2);
}

/// `ScopeMetrics.scope` (field 1): `InstrumentationScope { name 1, version 2, attributes 3 }`.
pub(crate) fn put_scope(buf: &mut Buf, scope: &InstrumentationScope) {
    buf.push(tag(1, WIRE_LEN));
    let at = reserve_len(buf, 1);
    put_str_field(buf, 1, scope.name());
    put_str_field(buf, 2, scope.version().unwrap_or_default());
    put_attributes(buf, 3, scope.attributes());
    finish_len(buf, at, 1);
}

/// `schema_url` (field 3 of both ResourceMetrics and ScopeMetrics), omitted when unset or
/// empty.
pub(crate) fn put_schema_url(buf: &mut Buf, url: Option<&str>) {
    put_str_field(buf, 3, url.unwrap_or_default());
}

/// `Metric` fields 1-3: name, description, unit.
pub(crate) fn put_metric_head(buf: &mut Buf, metric: &Metric) {
    put_str_field(buf, 1, metric.name());
    put_str_field(buf, 2, metric.description());
    put_str_field(buf, 3, metric.unit());
}

/// Field number of the `Metric.data` member `metric` is written as.
pub(crate) fn data_field(metric: &Metric) -> u8 {
    fn field<T>(data: &MetricData<T>) -> u8 {
        match data {
            MetricData::Gauge(_) => METRIC_GAUGE,
            MetricData::Sum(_) => METRIC_SUM,
            MetricData::Histogram(_) => METRIC_HISTOGRAM,
            MetricData::ExponentialHistogram(_) => METRIC_EXPONENTIAL_HISTOGRAM,
        }
    }
    match metric.data() {
        AggregatedMetrics::F64(data) => field(data),
        AggregatedMetrics::U64(data) => field(data),
        AggregatedMetrics::I64(data) => field(data),
    }
}

/// Writes every data point of `metric` (each as a complete `data_points` field) and calls
/// `on_point` with the buffer length after each.
pub(crate) fn put_points(buf: &mut Buf, metric: &Metric, on_point: impl FnMut(usize)) {
    match metric.data() {
        AggregatedMetrics::F64(data) => put_data_points(buf, data, on_point),
        AggregatedMetrics::U64(data) => put_data_points(buf, data, on_point),
        AggregatedMetrics::I64(data) => put_data_points(buf, data, on_point),
    }
}

fn put_data_points<T: Number>(
    buf: &mut Buf,
    data: &MetricData<T>,
    mut on_point: impl FnMut(usize),
) {
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
                on_point(buf.len());
            }
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
                on_point(buf.len());
            }
        }
        MetricData::Histogram(hist) => {
            let times = Times::new(to_nanos(hist.start_time()), to_nanos(hist.time()));
            let mut guess = 2;
            for p in hist.data_points() {
                put_histogram_point(buf, &mut guess, &times, p);
                on_point(buf.len());
            }
        }
        MetricData::ExponentialHistogram(hist) => {
            let times = Times::new(to_nanos(hist.start_time()), to_nanos(hist.time()));
            let mut guess = 2;
            for p in hist.data_points() {
                put_exponential_histogram_point(buf, &mut guess, &times, p);
                on_point(buf.len());
            }
        }
    }
}

/// The fields after `data_points` in the data message: temporality (2) and, for sums,
/// is_monotonic (3).
pub(crate) fn put_data_tail(buf: &mut Buf, metric: &Metric) {
    fn tail<T>(buf: &mut Buf, data: &MetricData<T>) {
        match data {
            MetricData::Gauge(_) => {}
            MetricData::Sum(sum) => {
                put_temporality(buf, sum.temporality());
                if sum.is_monotonic() {
                    put_varint_field(buf, 3, 1);
                }
            }
            MetricData::Histogram(hist) => put_temporality(buf, hist.temporality()),
            MetricData::ExponentialHistogram(hist) => put_temporality(buf, hist.temporality()),
        }
    }
    match metric.data() {
        AggregatedMetrics::F64(data) => tail(buf, data),
        AggregatedMetrics::U64(data) => tail(buf, data),
        AggregatedMetrics::I64(data) => tail(buf, data),
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
