//! `KeyValue` and `AnyValue` (opentelemetry.proto.common.v1), written with exact sizes
//! computed up front from string lengths, so they never need a length backpatch.

use opentelemetry::{Array, KeyValue, Value};

use crate::wire::{
    len_field_size, put_fixed64_field, put_len_key, put_varint_field, str_field_size, tag,
    varint_len, Buf, Tail, SHORT, WIRE_I64, WIRE_LEN, WIRE_VARINT,
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
#[inline]
pub(crate) fn put_key_value(buf: &mut Buf, field: u8, key: &str, value: &Value) {
    let key = key.as_bytes();
    let short_value = match value {
        Value::String(s) => s.as_str().len() <= SHORT,
        Value::Array(_) => false,
        _ => true,
    };
    if key.len() <= SHORT && short_value {
        put_short_key_value(buf, field, key, value);
    } else {
        put_long_key_value(buf, field, key, value);
    }
}

/// Room a short KeyValue needs: key + length (1 + 1 + 1 + 1) + key (32) + value key and
/// length (1 + 1) + AnyValue (string: 1 + 1 + 32; i64: 1 + 10), rounded up.
const SHORT_KEY_VALUE_ROOM: usize = 80;

/// The common case: key and string value of at most [`SHORT`] bytes, every length one byte,
/// all written through one [`Tail`] with inlined copies.
#[inline(always)]
fn put_short_key_value(buf: &mut Buf, field: u8, key: &[u8], value: &Value) {
    let value_len = any_value_len(value);
    let mut t = Tail::open_with(buf, SHORT_KEY_VALUE_ROOM);
    t.byte(tag(field, WIRE_LEN));
    t.varint((str_field_size(key.len()) + len_field_size(value_len)) as u64);
    if !key.is_empty() {
        t.byte(tag(KV_KEY, WIRE_LEN));
        t.byte(key.len() as u8);
        t.short_bytes(key);
    }
    t.byte(tag(KV_VALUE, WIRE_LEN));
    t.byte(value_len as u8);
    match value {
        Value::Bool(b) => {
            t.byte(tag(ANY_BOOL, WIRE_VARINT));
            t.byte(u8::from(*b));
        }
        Value::I64(i) => {
            t.byte(tag(ANY_INT, WIRE_VARINT));
            t.varint(*i as u64);
        }
        Value::F64(f) => {
            t.byte(tag(ANY_DOUBLE, WIRE_I64));
            t.fixed64(f.to_bits());
        }
        Value::String(s) => {
            let s = s.as_str().as_bytes();
            t.byte(tag(ANY_STRING, WIRE_LEN));
            t.byte(s.len() as u8);
            t.short_bytes(s);
        }
        _ => {}
    }
    t.close();
}

/// Any KeyValue: long keys or strings, arrays.
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
#[inline]
pub(crate) fn put_attributes<'a>(
    buf: &mut Buf,
    field: u8,
    attributes: impl Iterator<Item = &'a KeyValue>,
) {
    for kv in attributes {
        put_key_value(buf, field, kv.key.as_str(), &kv.value);
    }
}
