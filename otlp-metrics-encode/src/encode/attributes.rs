//! `KeyValue` and `AnyValue` (opentelemetry.proto.common.v1), written with exact sizes
//! computed up front from string lengths, so they never need a length backpatch.

use opentelemetry::{Array, KeyValue, Value};

use crate::wire::{
    copy_short, len_field_size, put_fixed64_field, put_len_key, put_varint_field, put_varint_into,
    str_field_size, tag, varint_len, Buf, Tail, SHORT, WIRE_I64, WIRE_LEN, WIRE_VARINT,
};

// AnyValue fields.
const ANY_STRING: u8 = 1;
const ANY_BOOL: u8 = 2;
const ANY_INT: u8 = 3;
const ANY_DOUBLE: u8 = 4;
const ANY_ARRAY: u8 = 5;
// ArrayValue.values and KeyValue fields.
const ARRAY_VALUES: u8 = 1;
const KV_KEY: u8 = 1;
const KV_VALUE: u8 = 2;

/// Size of an AnyValue body holding `value`. Value kinds added to `opentelemetry` after this
/// crate was written are encoded as an AnyValue with no value set (never a panic).
#[inline]
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => 2,
        Value::I64(v) => 1 + varint_len(*v as u64),
        Value::F64(_) => 9,
        Value::String(s) => len_field_size(s.as_str().len()),
        Value::Array(array) => len_field_size(array_value_len(array)),
        _ => 0,
    }
}

/// Size of the ArrayValue body for `array`: one AnyValue field per element.
fn array_value_len(array: &Array) -> usize {
    match array {
        // Element AnyValue is `bool` (2 bytes): key + length + 2.
        Array::Bool(values) => values.len() * 4,
        Array::I64(values) => values
            .iter()
            .map(|v| len_field_size(1 + varint_len(*v as u64)))
            .sum(),
        // Element AnyValue is `double` (9 bytes): key + length + 9.
        Array::F64(values) => values.len() * 11,
        Array::String(values) => values
            .iter()
            .map(|s| len_field_size(len_field_size(s.as_str().len())))
            .sum(),
        _ => 0,
    }
}

fn put_array_value_body(buf: &mut Buf, array: &Array) {
    const ELEMENT_KEY: u8 = tag(ARRAY_VALUES, WIRE_LEN);
    match array {
        Array::Bool(values) => {
            for v in values {
                buf.extend_from_slice(&[ELEMENT_KEY, 2, tag(ANY_BOOL, 0), u8::from(*v)]);
            }
        }
        Array::I64(values) => {
            for v in values {
                put_len_key(buf, ARRAY_VALUES, 1 + varint_len(*v as u64));
                put_varint_field(buf, ANY_INT, *v as u64);
            }
        }
        Array::F64(values) => {
            for v in values {
                buf.extend_from_slice(&[ELEMENT_KEY, 9]);
                put_fixed64_field(buf, ANY_DOUBLE, v.to_bits());
            }
        }
        Array::String(values) => {
            for s in values {
                let s = s.as_str();
                put_len_key(buf, ARRAY_VALUES, len_field_size(s.len()));
                put_len_key(buf, ANY_STRING, s.len());
                buf.extend_from_slice(s.as_bytes());
            }
        }
        _ => {}
    }
}

/// Writes one `KeyValue` as field `field` of the enclosing message. The `value` field is always
/// present (as opentelemetry-proto's transform sets it), the key only when non-empty (proto3).
///
/// The common case (a non-empty key and a string value of at most [`SHORT`] bytes each, or a
/// scalar value) is written by [`put_short_key_value`] into one room check; everything else
/// takes [`put_long_key_value`].
#[inline(always)]
pub(crate) fn put_key_value(buf: &mut Buf, field: u8, key: &str, value: &Value) {
    let room = buf.spare(SHORT_KEY_VALUE_ROOM);
    let room = room
        .first_chunk_mut()
        .expect("spare returns the room asked for");
    match put_short_key_value(room, field, key.as_bytes(), value) {
        Some(written) => buf.advance(written),
        None => put_long_key_value(buf, field, key.as_bytes(), value),
    }
}

/// Writes attributes as repeated `KeyValue` fields `field` straight into `room` (the spare
/// room of the output buffer), as long as each is of the common short kind (see
/// [`put_short_key_value`]) and [`SHORT_KEY_VALUE_ROOM`] bytes of room are left: one length
/// comparison per attribute, no buffer bookkeeping. Returns the bytes written and the first
/// attribute it did not write; the caller counts the bytes as written and writes that
/// attribute and the rest of `attributes` with [`put_key_value`].
#[inline(always)]
pub(crate) fn put_short_attributes<'a>(
    room: &mut [u8],
    field: u8,
    attributes: &mut impl Iterator<Item = &'a KeyValue>,
) -> (usize, Option<&'a KeyValue>) {
    let total = room.len();
    let mut rest = room;
    for kv in attributes {
        let Some(window) = rest.first_chunk_mut() else {
            return (total - rest.len(), Some(kv));
        };
        let Some(written) =
            put_short_key_value(window, field, kv.key.as_str().as_bytes(), &kv.value)
        else {
            return (total - rest.len(), Some(kv));
        };
        rest = &mut std::mem::take(&mut rest)[written..];
    }
    (total - rest.len(), None)
}

/// Room of the AnyValue body in [`put_short_key_value`]: a string of [`SHORT`] bytes with its
/// key and length (a varint or double needs less).
const SHORT_ANY_ROOM: usize = 2 + SHORT;
/// Room [`put_short_key_value`] writes into: KeyValue key and length, key field (key, length,
/// [`SHORT`] bytes), value key and length, AnyValue body. Also the most it writes.
pub(crate) const SHORT_KEY_VALUE_ROOM: usize = 2 + 2 + SHORT + 2 + SHORT_ANY_ROOM;

/// Writes a KeyValue at the start of `room` if it is of the common short kind: a key of 1 to
/// [`SHORT`] bytes and a string value of at most [`SHORT`] bytes or a scalar value. Every
/// length is then below 128, so one byte, and every header is at a fixed offset from the key's
/// end; the strings are copied with [`copy_short`]. Returns the bytes written, or `None`
/// (nothing meaningful written) for any other KeyValue.
#[inline(always)]
fn put_short_key_value(
    room: &mut [u8; SHORT_KEY_VALUE_ROOM],
    field: u8,
    key: &[u8],
    value: &Value,
) -> Option<usize> {
    if key.is_empty() || key.len() > SHORT {
        return None;
    }
    let value_room = &mut room[4 + key.len()..][..2 + SHORT_ANY_ROOM];
    let (value_head, any) = value_room.split_at_mut(2);
    let any_len = match value {
        Value::String(s) => {
            let s = s.as_str().as_bytes();
            if s.len() > SHORT {
                return None;
            }
            any[0] = tag(ANY_STRING, WIRE_LEN);
            any[1] = s.len() as u8;
            copy_short(&mut any[2..2 + SHORT], s);
            2 + s.len()
        }
        Value::I64(i) => {
            any[0] = tag(ANY_INT, WIRE_VARINT);
            let v = *i as u64;
            if v < 1 << 14 {
                // The usual small integers (counts, status codes): one or two bytes, stored
                // without a loop (the second byte is past the end when unused).
                let long = u8::from(v >= 1 << 7);
                any[1] = (v as u8 & 0x7F) | (long << 7);
                any[2] = (v >> 7) as u8;
                2 + usize::from(long)
            } else {
                1 + put_varint_into(&mut any[1..11], v)
            }
        }
        Value::Bool(b) => {
            any[0] = tag(ANY_BOOL, WIRE_VARINT);
            any[1] = u8::from(*b);
            2
        }
        Value::F64(f) => {
            any[0] = tag(ANY_DOUBLE, WIRE_I64);
            any[1..9].copy_from_slice(&f.to_bits().to_le_bytes());
            9
        }
        _ => return None,
    };
    value_head[0] = tag(KV_VALUE, WIRE_LEN);
    value_head[1] = any_len as u8;
    let key_value_len = 2 + key.len() + 2 + any_len;
    room[0] = tag(field, WIRE_LEN);
    room[1] = key_value_len as u8;
    room[2] = tag(KV_KEY, WIRE_LEN);
    room[3] = key.len() as u8;
    copy_short(&mut room[4..4 + SHORT], key);
    Some(2 + key_value_len)
}

/// Any KeyValue: empty or long keys, long strings, arrays.
#[inline(never)]
fn put_long_key_value(buf: &mut Buf, field: u8, key: &[u8], value: &Value) {
    let value_len = any_value_len(value);
    let mut head = Tail::open(buf);
    head.byte(tag(field, WIRE_LEN));
    head.varint((str_field_size(key.len()) + len_field_size(value_len)) as u64);
    if !key.is_empty() {
        head.byte(tag(KV_KEY, WIRE_LEN));
        head.varint(key.len() as u64);
    }
    head.close();
    buf.extend_from_slice(key);

    let mut v = Tail::open(buf);
    v.byte(tag(KV_VALUE, WIRE_LEN));
    v.varint(value_len as u64);
    match value {
        Value::Bool(b) => {
            v.byte(tag(ANY_BOOL, WIRE_VARINT));
            v.byte(u8::from(*b));
        }
        Value::I64(i) => {
            v.byte(tag(ANY_INT, WIRE_VARINT));
            v.varint(*i as u64);
        }
        Value::F64(f) => {
            v.byte(tag(ANY_DOUBLE, WIRE_I64));
            v.fixed64(f.to_bits());
        }
        Value::String(s) => {
            let s = s.as_str();
            v.byte(tag(ANY_STRING, WIRE_LEN));
            v.varint(s.len() as u64);
            v.close();
            buf.extend_from_slice(s.as_bytes());
            return;
        }
        Value::Array(array) => {
            v.close();
            put_len_key(buf, ANY_ARRAY, array_value_len(array));
            put_array_value_body(buf, array);
            return;
        }
        _ => {}
    }
    v.close();
}

/// Writes every attribute as a repeated `KeyValue` field `field`.
#[inline(always)]
pub(crate) fn put_attributes<'a>(
    buf: &mut Buf,
    field: u8,
    attributes: impl Iterator<Item = &'a KeyValue>,
) {
    for kv in attributes {
        put_key_value(buf, field, kv.key.as_str(), &kv.value);
    }
}
