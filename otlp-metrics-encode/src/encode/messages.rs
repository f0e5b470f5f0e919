//! The per-request, per-scope and per-metric parts of a request, written from the SDK's data:
//! shared by the in-place request writer (`request.rs`), the identity layout (`mod.rs`) and the
//! size-bounded writer (`chunk.rs`).

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, ExponentialHistogramDataPoint, GaugeDataPoint, HistogramDataPoint, Metric,
    MetricData, ResourceMetrics, SumDataPoint,
};
use opentelemetry_sdk::metrics::Temporality;

use super::attributes::{put_attributes, put_key_value};
use super::points::{
    put_exponential_histogram_point, put_histogram_point, put_number_point, to_nanos, Guesses,
    Number, Times,
};
use crate::wire::{
    copy_short, finish_len, put_str_field, reserve_len, tag, varint_len, Buf, SHORT, WIRE_LEN,
    WIRE_VARINT,
};

/// Field numbers of `Metric.data` members.
const METRIC_GAUGE: u8 = 5;
const METRIC_SUM: u8 = 7;
const METRIC_HISTOGRAM: u8 = 9;
const METRIC_EXPONENTIAL_HISTOGRAM: u8 = 10;

/// The length prefix widths the messages below the four outer ones needed in the previous
/// export, by position: the resource, each scope (by index) and the first data point and last
/// exemplar of each metric (by index). Reserving these, an export of the same shape as the
/// previous one moves no byte, as long as the points of each metric need the same width
/// (within a metric each point's guess is the width of the point before it).
#[derive(Debug, Default)]
pub(crate) struct Widths {
    resource: usize,
    scopes: Vec<usize>,
    metrics: Vec<Guesses>,
}

impl Widths {
    /// The remembered width of scope `index` (0 if none yet), to read and update.
    #[inline]
    pub(crate) fn scope(&mut self, index: usize) -> &mut usize {
        slot(&mut self.scopes, index)
    }

    /// The remembered point and exemplar widths of metric `index`, to read and update.
    #[inline]
    pub(crate) fn metric(&mut self, index: usize) -> &mut Guesses {
        slot(&mut self.metrics, index)
    }
}

/// `list[index]`, growing the list only on the first export of a larger shape.
#[inline]
pub(crate) fn slot<T: Default>(list: &mut Vec<T>, index: usize) -> &mut T {
    if index >= list.len() {
        list.resize_with(index + 1, T::default);
    }
    &mut list[index]
}

/// Reserves the remembered width (or `usual` the first time) for a length prefix at the end
/// of `buf`; returns where it starts and the width reserved. Close with [`close_len`].
#[inline(always)]
fn open_len(buf: &mut Buf, remembered: usize, usual: usize) -> (usize, usize) {
    let width = if remembered == 0 { usual } else { remembered };
    (reserve_len(buf, width), width)
}

/// Patches the prefix opened by [`open_len`] and remembers the width it needed.
#[inline(always)]
fn close_len(buf: &mut Buf, (at, width): (usize, usize), remembered: &mut usize) {
    let len = finish_len(buf, at, width);
    *remembered = varint_len(len as u64);
}

/// `ResourceMetrics.resource` (field 1): `Resource { attributes (1) }`, with key and length.
pub(crate) fn put_resource(buf: &mut Buf, rm: &ResourceMetrics, widths: &mut Widths) {
    buf.push(tag(1, WIRE_LEN));
    let open = open_len(buf, widths.resource, 2);
    for (key, value) in rm.resource().iter() {
        put_key_value(buf, 1, key.as_str(), value);
    }
    close_len(buf, open, &mut widths.resource);
}

/// `ScopeMetrics.scope` (field 1): `InstrumentationScope { name 1, version 2, attributes 3 }`;
/// `width` is the remembered width of its length prefix.
pub(crate) fn put_scope(buf: &mut Buf, scope: &InstrumentationScope, width: &mut usize) {
    buf.push(tag(1, WIRE_LEN));
    let open = open_len(buf, *width, 1);
    put_str_field(buf, 1, scope.name());
    put_str_field(buf, 2, scope.version().unwrap_or_default());
    put_attributes(buf, 3, scope.attributes());
    close_len(buf, open, width);
}

/// `schema_url` (field 3 of both ResourceMetrics and ScopeMetrics), omitted when unset or
/// empty.
pub(crate) fn put_schema_url(buf: &mut Buf, url: Option<&str>) {
    put_str_field(buf, 3, url.unwrap_or_default());
}

/// `Metric` fields 1-3: name, description, unit.
pub(crate) fn put_metric_head(buf: &mut Buf, metric: &Metric) {
    let (name, description, unit) = (metric.name(), metric.description(), metric.unit());
    if name.len() <= SHORT && description.len() <= SHORT && unit.len() <= SHORT {
        // The usual short strings: one room check for all three, each stored at a running
        // offset with a one-byte length (instead of a room check and a copy per field).
        let room: &mut [u8; 3 * (2 + SHORT)] = buf
            .spare(3 * (2 + SHORT))
            .first_chunk_mut()
            .expect("room asked for");
        // (`min`: the offsets are within those bounds anyway; saying so spares the compiler's
        // bounds checks.)
        let at = store_short_str_field(room, 0, 1, name);
        let at = store_short_str_field(room, at.min(2 + SHORT), 2, description);
        let at = store_short_str_field(room, at.min(2 * (2 + SHORT)), 3, unit);
        buf.advance(at);
        return;
    }
    put_str_field(buf, 1, name);
    put_str_field(buf, 2, description);
    put_str_field(buf, 3, unit);
}

/// Stores string field `field` (at most [`SHORT`] bytes; nothing when empty) at `at` in
/// `room`, which has [`SHORT`] + 2 bytes of room there; returns where it ends.
#[inline(always)]
fn store_short_str_field(room: &mut [u8], at: usize, field: u8, s: &str) -> usize {
    if s.is_empty() {
        return at;
    }
    let window: &mut [u8; 2 + SHORT] = room[at..].first_chunk_mut().expect("room");
    window[0] = tag(field, WIRE_LEN);
    window[1] = s.len() as u8;
    copy_short(&mut window[2..], s.as_bytes());
    at + 2 + s.len()
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

/// Writes every data point of `metric` (each as a complete `data_points` field at the end of
/// `buf`) and calls `on_point` after the first one, and after each one that ends past the
/// length `on_point` returned last time, with the position where the point starts; it may
/// rearrange `buf` as long as it leaves room to append the next point; an error from it stops
/// the writing and is returned. (The size-bounded mode returns the length up to which points
/// fit its open request unchanged: those cost a comparison in this loop.) Returns the
/// number of points. `remembered` holds the widths of the metric at this position in the
/// previous export, and is updated.
pub(crate) fn put_points<E>(
    buf: &mut Buf,
    metric: &Metric,
    remembered: &mut Guesses,
    on_point: impl FnMut(&mut Buf, usize) -> Result<usize, E>,
) -> Result<usize, E> {
    match metric.data() {
        AggregatedMetrics::F64(data) => put_data_points(buf, data, remembered, on_point),
        AggregatedMetrics::U64(data) => put_data_points(buf, data, remembered, on_point),
        AggregatedMetrics::I64(data) => put_data_points(buf, data, remembered, on_point),
    }
}

/// Calls `put` for each point with the running guesses: the first point's from `remembered`
/// (or `usual`), each next one's from the point before; then `on_point`. Remembers the first
/// point's width and the last exemplar's. Returns the number of points.
#[inline(always)]
fn each_point<P, E>(
    buf: &mut Buf,
    points: impl Iterator<Item = P>,
    remembered: &mut Guesses,
    usual: usize,
    mut put: impl FnMut(&mut Buf, &mut Guesses, P),
    mut on_point: impl FnMut(&mut Buf, usize) -> Result<usize, E>,
) -> Result<usize, E> {
    let mut guess = remembered.or_usual(usual);
    let mut count = 0;
    // Up to this output length, a point needs no call (0: the first one always does).
    let mut quiet_until = 0;
    // One call site of `put`, so that it is inlined into the loop.
    for point in points {
        let start = buf.len();
        put(buf, &mut guess, point);
        if count == 0 {
            remembered.point = guess.point;
        }
        if buf.len() > quiet_until {
            quiet_until = on_point(buf, start)?;
        }
        count += 1;
    }
    if count > 0 {
        remembered.exemplar = guess.exemplar;
    }
    Ok(count)
}

fn put_data_points<T: Number, E>(
    buf: &mut Buf,
    data: &MetricData<T>,
    remembered: &mut Guesses,
    on_point: impl FnMut(&mut Buf, usize) -> Result<usize, E>,
) -> Result<usize, E> {
    match data {
        MetricData::Gauge(gauge) => {
            let start = gauge.start_time().map(to_nanos).unwrap_or(0);
            let times = Times::new(start, to_nanos(gauge.time()));
            let put = |buf: &mut Buf, guess: &mut Guesses, p: &GaugeDataPoint<T>| {
                let (value, attributes) = (p.value(), p.attributes());
                put_number_point(buf, guess, &times, value, attributes, || p.exemplars());
            };
            each_point(buf, gauge.data_points(), remembered, 1, put, on_point)
        }
        MetricData::Sum(sum) => {
            let times = Times::new(to_nanos(sum.start_time()), to_nanos(sum.time()));
            let put = |buf: &mut Buf, guess: &mut Guesses, p: &SumDataPoint<T>| {
                let (value, attributes) = (p.value(), p.attributes());
                put_number_point(buf, guess, &times, value, attributes, || p.exemplars());
            };
            each_point(buf, sum.data_points(), remembered, 1, put, on_point)
        }
        MetricData::Histogram(hist) => {
            let times = Times::new(to_nanos(hist.start_time()), to_nanos(hist.time()));
            let put = |buf: &mut Buf, guess: &mut Guesses, p: &HistogramDataPoint<T>| {
                put_histogram_point(buf, guess, &times, p);
            };
            each_point(buf, hist.data_points(), remembered, 2, put, on_point)
        }
        MetricData::ExponentialHistogram(hist) => {
            let times = Times::new(to_nanos(hist.start_time()), to_nanos(hist.time()));
            let put = |buf: &mut Buf, guess: &mut Guesses, p: &ExponentialHistogramDataPoint<T>| {
                put_exponential_histogram_point(buf, guess, &times, p);
            };
            each_point(buf, hist.data_points(), remembered, 2, put, on_point)
        }
    }
}

/// Most bytes [`data_tail`] makes: two one-byte keys with one-byte values.
pub(crate) const DATA_TAIL: usize = 4;

/// The fields after `data_points` in the data message: temporality (2) and, for sums,
/// is_monotonic (3). Returned as bytes (the first `len` of them) rather than written: the
/// size-bounded mode repeats them in every request that closes the metric's section.
pub(crate) fn data_tail(metric: &Metric) -> ([u8; DATA_TAIL], usize) {
    /// `aggregation_temporality` as the OTLP enum value: DELTA = 1, CUMULATIVE = 2. Never
    /// the SDK enum's position (which would turn Cumulative into 0, "unspecified").
    /// `LowMemory` is a reader preference the SDK resolves to Delta or Cumulative before data
    /// exists; if it ever reaches data it is written as Cumulative, like the reference
    /// transform does with unknown values.
    fn temporality(temporality: Temporality) -> u8 {
        match temporality {
            Temporality::Delta => 1,
            _ => 2,
        }
    }
    fn tail<T>(data: &MetricData<T>) -> ([u8; DATA_TAIL], usize) {
        const TEMPORALITY: u8 = tag(2, WIRE_VARINT);
        const MONOTONIC: u8 = tag(3, WIRE_VARINT);
        match data {
            MetricData::Gauge(_) => ([0; DATA_TAIL], 0),
            MetricData::Sum(sum) => {
                let bytes = [TEMPORALITY, temporality(sum.temporality()), MONOTONIC, 1];
                (bytes, if sum.is_monotonic() { 4 } else { 2 })
            }
            MetricData::Histogram(hist) => {
                ([TEMPORALITY, temporality(hist.temporality()), 0, 0], 2)
            }
            MetricData::ExponentialHistogram(hist) => {
                ([TEMPORALITY, temporality(hist.temporality()), 0, 0], 2)
            }
        }
    }
    match metric.data() {
        AggregatedMetrics::F64(data) => tail(data),
        AggregatedMetrics::U64(data) => tail(data),
        AggregatedMetrics::I64(data) => tail(data),
    }
}

/// Appends the [`data_tail`] of `metric`.
pub(crate) fn put_data_tail(buf: &mut Buf, metric: &Metric) {
    let (bytes, len) = data_tail(metric);
    *buf.spare(DATA_TAIL)
        .first_chunk_mut()
        .expect("room asked for") = bytes;
    buf.advance(len);
}
