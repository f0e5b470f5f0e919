//! `KeyValue` and `AnyValue` (opentelemetry.proto.common.v1), written with exact sizes
//! computed up front from string lengths, so they never need a length backpatch.

use opentelemetry::{Array, KeyValue, Value};

use crate::wire::{
    len_field_size, put_fixed64_field, put_len_key, put_str_field, put_varint_field,
    str_field_size, tag, varint_len, WIRE_LEN,
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

/// Writes an AnyValue body (no key, no length).
fn put_any_value_body(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(v) => put_varint_field(buf, ANY_BOOL, u64::from(*v)),
        Value::I64(v) => put_varint_field(buf, ANY_INT, *v as u64),
        Value::F64(v) => put_fixed64_field(buf, ANY_DOUBLE, v.to_bits()),
        Value::String(s) => {
            put_len_key(buf, ANY_STRING, s.as_str().len());
            buf.extend_from_slice(s.as_str().as_bytes());
        }
        Value::Array(array) => {
            put_len_key(buf, ANY_ARRAY, array_value_len(array));
            put_array_value_body(buf, array);
        }
        _ => {}
    }
}

fn put_array_value_body(buf: &mut Vec<u8>, array: &Array) {
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
pub(crate) fn put_key_value(buf: &mut Vec<u8>, field: u8, key: &str, value: &Value) {
    let value_len = any_value_len(value);
    put_len_key(
        buf,
        field,
        str_field_size(key.len()) + len_field_size(value_len),
    );
    put_str_field(buf, KV_KEY, key);
    put_len_key(buf, KV_VALUE, value_len);
    put_any_value_body(buf, value);
}

/// Writes every attribute as a repeated `KeyValue` field `field`.
#[inline]
pub(crate) fn put_attributes<'a>(
    buf: &mut Vec<u8>,
    field: u8,
    attributes: impl Iterator<Item = &'a KeyValue>,
) {
    for kv in attributes {
        put_key_value(buf, field, kv.key.as_str(), &kv.value);
    }
}
