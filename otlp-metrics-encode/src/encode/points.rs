//! Data points and exemplars (opentelemetry.proto.metrics.v1). Fields are written in field
//! number order with proto3 defaults omitted, exactly as prost orders them, so the output is
//! the canonical encoding of the message it decodes to.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{
    Exemplar, ExponentialBucket, ExponentialHistogramDataPoint, HistogramDataPoint,
};

use super::attributes::{
    put_attributes, put_key_value, put_short_attributes, SHORT_KEY_VALUE_ROOM,
};
use crate::wire::{
    finish_len, patch_len, put_fixed64_field, put_len_key, put_packed_fixed64, put_varint_field,
    reserve_len, str_field_size, tag, varint_len, zigzag32, Buf, Room, WIRE_I64, WIRE_LEN,
};

/// Nanoseconds since the Unix epoch; times before the epoch become 0 (as in the reference
/// transform) and times after year 2554 saturate instead of wrapping.
#[inline]
pub(crate) fn to_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The SDK's three value types, as OTLP stores them.
pub(crate) trait Number: Copy {
    /// The value as the `as_double` or `as_int` member of a oneof: the field number of the
    /// two that applies, and the 8 bytes (fixed64 wire type) to write.
    fn oneof_value(self, double_field: u8, int_field: u8) -> (u8, u64);

    /// Writes the value as the `as_double` or `as_int` member of a oneof.
    #[inline]
    fn put_value(self, buf: &mut Buf, double_field: u8, int_field: u8) {
        let (field, bits) = self.oneof_value(double_field, int_field);
        put_fixed64_field(buf, field, bits);
    }
    /// The value as a double (histogram sum, min and max are doubles in OTLP).
    fn to_f64(self) -> f64;
}

impl Number for f64 {
    #[inline]
    fn oneof_value(self, double_field: u8, _int_field: u8) -> (u8, u64) {
        (double_field, self.to_bits())
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

impl Number for i64 {
    #[inline]
    fn oneof_value(self, _double_field: u8, int_field: u8) -> (u8, u64) {
        (int_field, self as u64)
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Number for u64 {
    /// OTLP has no unsigned integer: values above `i64::MAX` are clamped to `i64::MAX` (the
    /// reference transform writes 0 for them, which breaks monotonic counters).
    #[inline]
    fn oneof_value(self, _double_field: u8, int_field: u8) -> (u8, u64) {
        (int_field, self.min(i64::MAX as u64))
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// What the encoder reads from an exemplar. Implemented for the SDK's [`Exemplar`]; a trait so
/// the encoding can be tested with exemplars built by hand (the SDK 0.33 neither produces
/// exemplars nor lets other crates construct them).
pub(crate) trait ExemplarSource<T: Number> {
    fn filtered_attributes(&self) -> impl Iterator<Item = &KeyValue>;
    fn time(&self) -> SystemTime;
    fn value(&self) -> T;
    fn span_id(&self) -> &[u8; 8];
    fn trace_id(&self) -> &[u8; 16];
}

impl<T: Number> ExemplarSource<T> for Exemplar<T> {
    fn filtered_attributes(&self) -> impl Iterator<Item = &KeyValue> {
        Exemplar::filtered_attributes(self)
    }
    fn time(&self) -> SystemTime {
        Exemplar::time(self)
    }
    fn value(&self) -> T {
        self.value
    }
    fn span_id(&self) -> &[u8; 8] {
        Exemplar::span_id(self)
    }
    fn trace_id(&self) -> &[u8; 16] {
        Exemplar::trace_id(self)
    }
}

/// Writes one exemplar as field `field`, reserving `*guess` bytes for its length and updating
/// the guess from the real length. All-zero span and trace ids mean "no span" in the SDK and
/// are omitted, as the OTLP spec asks (the reference transform writes the zero bytes).
pub(crate) fn put_exemplar<T: Number>(
    buf: &mut Buf,
    field: u8,
    guess: &mut usize,
    ex: &impl ExemplarSource<T>,
) {
    const TIME: u8 = 2;
    const AS_DOUBLE: u8 = 3;
    const SPAN_ID: u8 = 4;
    const TRACE_ID: u8 = 5;
    const AS_INT: u8 = 6;
    const FILTERED_ATTRIBUTES: u8 = 7;
    buf.push(tag(field, crate::wire::WIRE_LEN));
    let at = reserve_len(buf, *guess);
    let time = to_nanos(ex.time());
    if time != 0 {
        put_fixed64_field(buf, TIME, time);
    }
    ex.value().put_value(buf, AS_DOUBLE, AS_INT);
    if ex.span_id().iter().any(|&b| b != 0) {
        crate::wire::put_bytes_field(buf, SPAN_ID, ex.span_id());
    }
    if ex.trace_id().iter().any(|&b| b != 0) {
        crate::wire::put_bytes_field(buf, TRACE_ID, ex.trace_id());
    }
    put_attributes(buf, FILTERED_ATTRIBUTES, ex.filtered_attributes());
    let len = finish_len(buf, at, *guess);
    *guess = varint_len(len as u64);
}

/// Length prefix widths to reserve for the next data point and the next exemplar of a metric:
/// the widths the previous ones needed (0: none yet, use the kind's usual width).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Guesses {
    pub point: usize,
    pub exemplar: usize,
}

impl Guesses {
    /// These guesses with the unknown ones replaced by `point` for points and 1 for exemplars.
    #[inline]
    pub(crate) fn or_usual(self, point: usize) -> Self {
        Self {
            point: if self.point == 0 { point } else { self.point },
            exemplar: self.exemplar.max(1),
        }
    }
}

/// The `start_time_unix_nano` (2) and `time_unix_nano` (3) fields shared by every point of one
/// metric, pre-encoded once per metric and copied into each point.
#[derive(Clone, Copy)]
pub(crate) struct Times {
    bytes: [u8; 18],
    len: usize,
}

impl Times {
    pub(crate) fn new(start: u64, time: u64) -> Self {
        let mut bytes = [0u8; 18];
        let mut len = 0;
        for (field, value) in [(2u8, start), (3u8, time)] {
            if value != 0 {
                bytes[len] = tag(field, WIRE_I64);
                bytes[len + 1..len + 9].copy_from_slice(&value.to_le_bytes());
                len += 9;
            }
        }
        Times { bytes, len }
    }

    /// Appends the fields: one fixed-size copy, then the unused tail is cut off.
    #[inline(always)]
    fn put(&self, buf: &mut Buf) {
        buf.spare(self.bytes.len()).copy_from_slice(&self.bytes);
        buf.advance(self.len);
    }

    /// Stores the fields into `room` (the same way).
    #[inline(always)]
    fn store(&self, room: &mut Room<'_>) {
        *room.window() = self.bytes;
        room.advance(self.len);
    }

    /// Stores the fields and then a fixed64 field at the start of `room`; returns the bytes
    /// stored.
    #[inline(always)]
    fn store_then_fixed64(&self, room: &mut [u8; 18 + 9], (field, value): (u8, u64)) -> usize {
        room[..18].copy_from_slice(&self.bytes);
        // `len` is 0, 9 or 18: saying it is at most 18 spares the bounds checks.
        let len = self.len.min(18);
        let fixed: &mut [u8; 9] = room[len..].first_chunk_mut().expect("27 bytes");
        fixed[0] = tag(field, WIRE_I64);
        fixed[1..].copy_from_slice(&value.to_le_bytes());
        len + 9
    }

    /// Appends the fields and then a fixed64 field, with one room check.
    #[inline(always)]
    fn put_then_fixed64(&self, buf: &mut Buf, field_value: (u8, u64)) {
        let room = buf.spare(18 + 9).first_chunk_mut().expect("room asked for");
        let written = self.store_then_fixed64(room, field_value);
        buf.advance(written);
    }
}

/// Writes one point as field 1 (`data_points`) of its Gauge/Sum/Histogram message, reserving
/// `*guess` bytes for its length and updating the guess from the real length.
#[inline(always)]
fn put_point(buf: &mut Buf, guess: &mut usize, body: impl FnOnce(&mut Buf)) {
    const DATA_POINTS: u8 = 1;
    buf.push(tag(DATA_POINTS, crate::wire::WIRE_LEN));
    let at = reserve_len(buf, *guess);
    body(buf);
    let len = finish_len(buf, at, *guess);
    *guess = varint_len(len as u64);
}

/// Most attributes a point's room is reserved for at once (more take a room check each).
const ROOM_KEY_VALUES: usize = 32;

/// A `NumberDataPoint` (Gauge and Sum).
///
/// Fast path (no exemplars, a length prefix guess of 1 or 2 bytes): one room check for the
/// key, length prefix, times, value and the short attributes; the point's fields are stored
/// into that room at offsets, and only counted as written at the end.
#[inline(always)]
pub(crate) fn put_number_point<'a, T: Number + 'a, X: Iterator<Item = &'a Exemplar<T>>>(
    buf: &mut Buf,
    guess: &mut Guesses,
    times: &Times,
    value: T,
    attributes: impl Iterator<Item = &'a KeyValue>,
    // A function rather than the iterator: the fast path only asks whether there are any,
    // and does not build what only the general path needs.
    exemplars: impl Fn() -> X,
) {
    const DATA_POINTS: u8 = 1;
    const ATTRIBUTES: u8 = 7;
    /// Key, a length prefix of at most 2 bytes, times and value.
    const HEAD_ROOM: usize = 1 + 2 + 18 + 9;
    let width = guess.point;
    if width.wrapping_sub(1) >= 2 {
        return put_number_point_in_general(buf, guess, times, value, attributes, exemplars());
    }
    if exemplars().size_hint().1 != Some(0) {
        return put_number_point_in_general(buf, guess, times, value, attributes, exemplars());
    }
    let mut attributes = attributes;
    let key_values = attributes.size_hint().0.min(ROOM_KEY_VALUES);
    let at = buf.len();
    let room = buf.spare(HEAD_ROOM + key_values * SHORT_KEY_VALUE_ROOM);
    let (head, body) = room.split_at_mut(1 + width);
    head[0] = tag(DATA_POINTS, WIRE_LEN);
    let fixed = body.first_chunk_mut().expect("room asked for");
    let fixed_len = times.store_then_fixed64(fixed, value.oneof_value(4, 6));
    let (written, stopped) =
        put_short_attributes(&mut body[fixed_len..], ATTRIBUTES, &mut attributes);
    let body_len = fixed_len + written;
    if stopped.is_none() && patch_len(&mut head[1..], body_len) {
        // The usual case: the whole point in the room, the guessed width right.
        buf.advance(1 + width + body_len);
        return;
    }
    buf.advance(1 + width + body_len);
    finish_number_point(buf, guess, at, stopped, attributes);
}

/// [`put_number_point`] when its fast path does not apply (exemplars, an unusual length
/// prefix width): out of line, so that the fast path, inlined into the loop over the points,
/// keeps its registers.
#[inline(never)]
fn put_number_point_in_general<'a, T: Number + 'a>(
    buf: &mut Buf,
    guess: &mut Guesses,
    times: &Times,
    value: T,
    attributes: impl Iterator<Item = &'a KeyValue>,
    exemplars: impl Iterator<Item = &'a Exemplar<T>>,
) {
    const ATTRIBUTES: u8 = 7;
    put_point(buf, &mut guess.point, |buf| {
        times.put_then_fixed64(buf, value.oneof_value(4, 6));
        for ex in exemplars {
            put_exemplar(buf, 5, &mut guess.exemplar, ex);
        }
        put_attributes(buf, ATTRIBUTES, attributes);
    });
}

/// The end of [`put_number_point`]'s fast path for a point (starting at `at`) with an
/// attribute that did not fit the room or a length prefix that needs another width: out of
/// line too, like [`put_number_point_in_general`].
#[inline(never)]
fn finish_number_point<'a>(
    buf: &mut Buf,
    guess: &mut Guesses,
    at: usize,
    stopped: Option<&'a KeyValue>,
    attributes: impl Iterator<Item = &'a KeyValue>,
) {
    const ATTRIBUTES: u8 = 7;
    if let Some(kv) = stopped {
        put_key_value(buf, ATTRIBUTES, kv.key.as_str(), &kv.value);
        put_attributes(buf, ATTRIBUTES, attributes);
    }
    let len = finish_len(buf, at + 1, guess.point);
    guess.point = varint_len(len as u64);
}

/// A `HistogramDataPoint`.
///
/// Fast path (no exemplars, a length prefix guess of 1 or 2 bytes): like
/// [`put_number_point`], one room check for the whole point.
#[inline(always)]
pub(crate) fn put_histogram_point<T: Number>(
    buf: &mut Buf,
    guess: &mut Guesses,
    times: &Times,
    point: &HistogramDataPoint<T>,
) {
    const DATA_POINTS: u8 = 1;
    const ATTRIBUTES: u8 = 9;
    let width = guess.point;
    if !(width == 1 || width == 2) || point.exemplars().size_hint().1 != Some(0) {
        return put_point(buf, &mut guess.point, |buf| {
            times.put(buf);
            if point.count() != 0 {
                put_fixed64_field(buf, 4, point.count());
            }
            put_fixed64_field(buf, 5, point.sum().to_f64().to_bits());
            let n = point.bucket_counts().count();
            put_packed_fixed64(buf, 6, n, point.bucket_counts());
            let n = point.bounds().count();
            put_packed_fixed64(buf, 7, n, point.bounds().map(f64::to_bits));
            for ex in point.exemplars() {
                put_exemplar(buf, 8, &mut guess.exemplar, ex);
            }
            put_attributes(buf, ATTRIBUTES, point.attributes());
            put_min_max(buf, point, 11);
        });
    }
    let counts = point.bucket_counts().count();
    let bounds = point.bounds().count();
    let mut attributes = point.attributes();
    let key_values = attributes.size_hint().0.min(ROOM_KEY_VALUES);
    let at = buf.len();
    // Times, count, sum, the two packed arrays, min and max, the attributes.
    let room = 18 + 9 + 9 + (11 + 8 * counts) + (11 + 8 * bounds) + 2 * 9;
    let room = buf.spare(1 + width + room + key_values * SHORT_KEY_VALUE_ROOM);
    let (head, body) = room.split_at_mut(1 + width);
    head[0] = tag(DATA_POINTS, WIRE_LEN);
    let mut body = Room::new(body);
    times.store(&mut body);
    if point.count() != 0 {
        body.fixed64_field(4, point.count());
    }
    body.fixed64_field(5, point.sum().to_f64().to_bits());
    body.packed_fixed64(6, counts, point.bucket_counts());
    body.packed_fixed64(7, bounds, point.bounds().map(f64::to_bits));
    let (written, stopped) = put_short_attributes(body.rest(), ATTRIBUTES, &mut attributes);
    body.advance(written);
    if stopped.is_none() && body.rest().len() >= 2 * 9 {
        store_min_max(&mut body, point, 11);
        let body_len = body.written();
        if patch_len(&mut head[1..], body_len) {
            // The usual case: the whole point in the room, the guessed width right.
            buf.advance(1 + width + body_len);
            return;
        }
        buf.advance(1 + width + body_len);
    } else {
        let body_len = body.written();
        buf.advance(1 + width + body_len);
        if let Some(kv) = stopped {
            put_key_value(buf, ATTRIBUTES, kv.key.as_str(), &kv.value);
            put_attributes(buf, ATTRIBUTES, attributes);
        }
        put_min_max(buf, point, 11);
    }
    let len = finish_len(buf, at + 1, width);
    guess.point = varint_len(len as u64);
}

/// Stores a histogram point's `min` and `max` (fields `field` and `field + 1`), when
/// recorded, into `room` (18 bytes).
#[inline(always)]
fn store_min_max<T: Number>(room: &mut Room<'_>, point: &HistogramDataPoint<T>, field: u8) {
    if let Some(min) = point.min() {
        room.fixed64_field(field, min.to_f64().to_bits());
    }
    if let Some(max) = point.max() {
        room.fixed64_field(field + 1, max.to_f64().to_bits());
    }
}

/// Appends a histogram point's `min` and `max` (see [`store_min_max`]).
#[inline(always)]
fn put_min_max<T: Number>(buf: &mut Buf, point: &HistogramDataPoint<T>, field: u8) {
    let mut room = Room::new(buf.spare(2 * 9));
    store_min_max(&mut room, point, field);
    let written = room.written();
    buf.advance(written);
}

/// An `ExponentialHistogramDataPoint`. `positive` and `negative` are always written (possibly
/// empty), as the reference transform sets both.
pub(crate) fn put_exponential_histogram_point<T: Number>(
    buf: &mut Buf,
    guess: &mut Guesses,
    times: &Times,
    point: &ExponentialHistogramDataPoint<T>,
) {
    put_point(buf, &mut guess.point, |buf| {
        put_attributes(buf, 1, point.attributes());
        times.put(buf);
        if point.count() != 0 {
            put_fixed64_field(buf, 4, point.count() as u64);
        }
        put_fixed64_field(buf, 5, point.sum().to_f64().to_bits());
        if point.scale() != 0 {
            put_varint_field(buf, 6, zigzag32(i32::from(point.scale())));
        }
        if point.zero_count() != 0 {
            put_fixed64_field(buf, 7, point.zero_count());
        }
        put_buckets(buf, 8, point.positive_bucket());
        put_buckets(buf, 9, point.negative_bucket());
        for ex in point.exemplars() {
            put_exemplar(buf, 11, &mut guess.exemplar, ex);
        }
        if let Some(min) = point.min() {
            put_fixed64_field(buf, 12, min.to_f64().to_bits());
        }
        if let Some(max) = point.max() {
            put_fixed64_field(buf, 13, max.to_f64().to_bits());
        }
        if point.zero_threshold() != 0.0 {
            put_fixed64_field(buf, 14, point.zero_threshold().to_bits());
        }
    });
}

/// `ExponentialHistogramDataPoint.Buckets`: sint32 offset (1), packed uint64 counts (2).
/// When every count is below 128 (one byte each: the common case, and cheap to check with a
/// vectorized OR of all counts) the counts are narrowed in one pass; otherwise the packed size is summed
/// first and the varints stored into room made in one step.
fn put_buckets(buf: &mut Buf, field: u8, bucket: &ExponentialBucket) {
    let offset = zigzag32(bucket.offset());
    let offset_size = if offset == 0 {
        0
    } else {
        1 + varint_len(offset)
    };
    let one_byte_each = bucket.counts().fold(0, |all, count| all | count) < 0x80;
    let packed: usize = if one_byte_each {
        bucket.counts().count()
    } else {
        bucket.counts().map(varint_len).sum()
    };
    put_len_key(buf, field, offset_size + str_field_size(packed));
    if offset != 0 {
        put_varint_field(buf, 1, offset);
    }
    if packed == 0 {
        return;
    }
    put_len_key(buf, 2, packed);
    let out = buf.append(packed);
    if one_byte_each {
        for (slot, count) in out.iter_mut().zip(bucket.counts()) {
            *slot = count as u8;
        }
        return;
    }
    let mut at = 0;
    for mut count in bucket.counts() {
        while count >= 0x80 {
            out[at] = (count as u8) | 0x80;
            count >>= 7;
            at += 1;
        }
        out[at] = count as u8;
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::{KeyValue, Value};
    use prost::Message;

    use super::*;
    use crate::proto::common::v1::{any_value, AnyValue, KeyValue as PbKeyValue};
    use crate::proto::metrics::v1::{exemplar, Exemplar as PbExemplar, NumberDataPoint};
    use crate::wire::SHORT;

    /// An exemplar built by hand: the SDK 0.33 cannot produce or construct one.
    struct TestExemplar<T> {
        attributes: Vec<KeyValue>,
        time: SystemTime,
        value: T,
        span_id: [u8; 8],
        trace_id: [u8; 16],
    }

    impl<T: Number> ExemplarSource<T> for TestExemplar<T> {
        fn filtered_attributes(&self) -> impl Iterator<Item = &KeyValue> {
            self.attributes.iter()
        }
        fn time(&self) -> SystemTime {
            self.time
        }
        fn value(&self) -> T {
            self.value
        }
        fn span_id(&self) -> &[u8; 8] {
            &self.span_id
        }
        fn trace_id(&self) -> &[u8; 16] {
            &self.trace_id
        }
    }

    /// Encodes the exemplars as field 5 of a NumberDataPoint and decodes them back.
    fn roundtrip<T: Number>(exemplars: &[TestExemplar<T>]) -> Vec<PbExemplar> {
        let mut buf = Buf::default();
        for ex in exemplars {
            put_exemplar(&mut buf, 5, &mut 1, ex);
        }
        let point = NumberDataPoint::decode(buf.as_slice()).expect("valid NumberDataPoint");
        assert_eq!(point.encode_to_vec(), buf.as_slice(), "canonical encoding");
        point.exemplars
    }

    fn at(nanos: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }

    #[test]
    fn exemplars_carry_attributes_time_value_and_ids() {
        let exemplars = [
            TestExemplar {
                attributes: vec![KeyValue::new("user", "alice"), KeyValue::new("n", 3)],
                time: at(1_700_000_000_123_456_789),
                value: 2.5f64,
                span_id: [1, 2, 3, 4, 5, 6, 7, 8],
                trace_id: [9; 16],
            },
            TestExemplar {
                attributes: vec![],
                time: UNIX_EPOCH,
                value: 0.0f64,
                span_id: [0; 8],
                trace_id: [0; 16],
            },
        ];
        let decoded = roundtrip(&exemplars);
        assert_eq!(
            decoded,
            vec![
                PbExemplar {
                    filtered_attributes: vec![
                        PbKeyValue {
                            key: "user".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue("alice".into())),
                            }),
                            key_strindex: 0,
                        },
                        PbKeyValue {
                            key: "n".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(3)),
                            }),
                            key_strindex: 0,
                        },
                    ],
                    time_unix_nano: 1_700_000_000_123_456_789,
                    span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                    trace_id: vec![9; 16],
                    value: Some(exemplar::Value::AsDouble(2.5)),
                },
                // All-zero ids mean "no span": omitted (deviation from the reference, which
                // writes zero bytes). A zero value is still written: it is a oneof member.
                PbExemplar {
                    value: Some(exemplar::Value::AsDouble(0.0)),
                    ..Default::default()
                },
            ]
        );
    }

    #[test]
    fn integer_exemplars_use_as_int_and_clamp_u64() {
        let ex = |value| TestExemplar {
            attributes: vec![KeyValue::new("big", Value::I64(i64::MIN))],
            time: at(5),
            value,
            span_id: [0; 8],
            trace_id: [1; 16],
        };
        let decoded = roundtrip(&[ex(7u64), ex(u64::MAX)]);
        assert_eq!(decoded[0].value, Some(exemplar::Value::AsInt(7)));
        assert_eq!(decoded[1].value, Some(exemplar::Value::AsInt(i64::MAX)));
        assert!(decoded[0].span_id.is_empty());
        assert_eq!(decoded[0].trace_id, vec![1; 16]);
        let ints = roundtrip(&[TestExemplar {
            attributes: vec![],
            time: at(5),
            value: -3i64,
            span_id: [0; 8],
            trace_id: [0; 16],
        }]);
        assert_eq!(ints[0].value, Some(exemplar::Value::AsInt(-3)));
        assert_eq!(ints[0].time_unix_nano, 5);
    }

    #[test]
    fn exemplar_widths_carry_over_so_long_exemplars_move_once() {
        let long = TestExemplar {
            attributes: (0..4)
                .map(|i| KeyValue::new(format!("key{i}"), "v".repeat(40)))
                .collect(),
            time: at(5),
            value: 1.5f64,
            span_id: [1; 8],
            trace_id: [2; 16],
        };
        let mut buf = Buf::default();
        let mut guess = 1;
        crate::wire::moves::take();
        for _ in 0..3 {
            put_exemplar(&mut buf, 5, &mut guess, &long);
        }
        let moves = crate::wire::moves::take();
        assert_eq!(guess, 2, "the width the exemplars need");
        assert_eq!(moves.length_fixes, 1, "only the first guess is wrong");
        let point = NumberDataPoint::decode(buf.as_slice()).expect("valid NumberDataPoint");
        assert_eq!(point.exemplars.len(), 3);
        assert_eq!(point.encode_to_vec(), buf.as_slice(), "canonical encoding");
    }

    /// The attribute `kv` as prost decodes it (arrays by length only).
    fn decoded_value(kv: &KeyValue) -> (String, Option<any_value::Value>) {
        use opentelemetry::Array;
        let value = match &kv.value {
            Value::Bool(b) => any_value::Value::BoolValue(*b),
            Value::I64(i) => any_value::Value::IntValue(*i),
            Value::F64(f) => any_value::Value::DoubleValue(*f),
            Value::String(s) => any_value::Value::StringValue(s.as_str().to_owned()),
            Value::Array(Array::I64(values)) => {
                any_value::Value::ArrayValue(crate::proto::common::v1::ArrayValue {
                    values: values
                        .iter()
                        .map(|i| AnyValue {
                            value: Some(any_value::Value::IntValue(*i)),
                        })
                        .collect(),
                })
            }
            other => panic!("test attribute {other:?}"),
        };
        (kv.key.as_str().to_owned(), Some(value))
    }

    #[test]
    fn number_points_write_every_attribute_whatever_the_path() {
        use crate::proto::metrics::v1::{number_data_point, Gauge};
        let short = |i: usize| KeyValue::new(format!("key{i}"), format!("value{i}"));
        let cases: Vec<Vec<KeyValue>> = vec![
            vec![],
            (0..3).map(short).collect(),
            // More than the room reserved at once: the last ones take a room check each.
            (0..ROOM_KEY_VALUES + 8).map(short).collect(),
            // A long value, an empty key, an array and a 32-byte key between short ones.
            vec![
                short(0),
                KeyValue::new("long", "v".repeat(SHORT + 1)),
                short(1),
                KeyValue::new("", 3),
                KeyValue::new("ints", Value::Array(vec![1i64, -1, 300].into())),
                KeyValue::new("k".repeat(SHORT), "x".repeat(SHORT)),
                KeyValue::new("k".repeat(SHORT + 1), false),
                KeyValue::new("i", i64::MIN),
                KeyValue::new("f", -0.5),
            ],
            // Integers at the edges of one- and two-byte varints, and beyond.
            [0i64, 1, 127, 128, 300, 16_383, 16_384, -1, i64::MAX]
                .into_iter()
                .enumerate()
                .map(|(i, v)| KeyValue::new(format!("n{i}"), v))
                .collect(),
        ];
        let times = Times::new(7, 9);
        for attributes in &cases {
            // Every length prefix guess: the fast path (1, 2) and the general one.
            for width in [1, 2, 3] {
                let mut buf = Buf::default();
                let mut guess = Guesses {
                    point: width,
                    exemplar: 1,
                };
                for value in [5u64, 6] {
                    let no_exemplars = std::iter::empty::<&Exemplar<u64>>;
                    put_number_point(
                        &mut buf,
                        &mut guess,
                        &times,
                        value,
                        attributes.iter(),
                        no_exemplars,
                    );
                }
                let gauge = Gauge::decode(buf.as_slice()).expect("valid Gauge");
                assert_eq!(gauge.encode_to_vec(), buf.as_slice(), "canonical encoding");
                assert_eq!(gauge.data_points.len(), 2);
                for (point, value) in gauge.data_points.iter().zip([5, 6]) {
                    assert_eq!(point.value, Some(number_data_point::Value::AsInt(value)));
                    assert_eq!((point.start_time_unix_nano, point.time_unix_nano), (7, 9));
                    let decoded: Vec<_> = point
                        .attributes
                        .iter()
                        .map(|kv| {
                            let value = kv.value.clone().and_then(|v| v.value);
                            (kv.key.clone(), value)
                        })
                        .collect();
                    let expected: Vec<_> = attributes.iter().map(decoded_value).collect();
                    assert_eq!(decoded, expected, "width {width}");
                }
                assert_eq!(
                    guess.point,
                    varint_len(gauge.data_points[1].encoded_len() as u64)
                );
            }
        }
    }

    #[test]
    fn times_before_the_epoch_are_zero_and_far_future_saturates() {
        assert_eq!(to_nanos(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(to_nanos(at(42)), 42);
        assert_eq!(
            to_nanos(UNIX_EPOCH + Duration::from_secs(u64::MAX / 1_000_000_000 + 10)),
            u64::MAX
        );
    }
}
