//! OTLP/JSON: the OTLP specification's JSON encoding of an `ExportMetricsServiceRequest`.
//!
//! The rules the spec adds to the proto3 JSON mapping: field names in lowerCamelCase, trace and
//! span ids as lowercase hex (not base64), enums as integers; and from proto3 JSON itself:
//! 64-bit integers as decimal strings, other `bytes` as base64, `NaN`/`Infinity` as strings,
//! fields holding their default value omitted (oneof members and `optional` fields are written
//! whenever they are set). One request is one line, the form the OpenTelemetry Collector's
//! `otlpjsonfile` receiver reads.

use std::fmt::Write as _;

use crate::data::{DataView, Points};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::{any_value, AnyValue, EntityRef, InstrumentationScope, KeyValue};
use crate::proto::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, number_data_point, Exemplar,
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, SummaryDataPoint,
};
use crate::proto::resource::v1::Resource;

/// The request as one line of OTLP/JSON, without the trailing newline.
pub fn to_json(request: &ExportMetricsServiceRequest) -> String {
    let mut out = String::new();
    write_json(request, &mut out);
    out
}

/// Appends the request as one line of OTLP/JSON (no trailing newline) to `out`.
pub fn write_json(request: &ExportMetricsServiceRequest, out: &mut String) {
    let mut o = Obj::new(out);
    o.list(
        "resourceMetrics",
        &request.resource_metrics,
        resource_metrics,
    );
    o.end();
}

/// Writes a JSON object member by member, inserting commas and skipping default values.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, name: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(name);
        self.out.push_str("\":");
        self.out
    }

    fn end(self) {
        self.out.push('}');
    }

    fn str(&mut self, name: &str, value: &str) {
        if !value.is_empty() {
            let out = self.key(name);
            string(out, value);
        }
    }

    fn bool(&mut self, name: &str, value: bool) {
        if value {
            self.key(name).push_str("true");
        }
    }

    fn int(&mut self, name: &str, value: i64) {
        if value != 0 {
            let _ = write!(self.key(name), "{value}");
        }
    }

    fn u64_str(&mut self, name: &str, value: u64) {
        if value != 0 {
            let _ = write!(self.key(name), "\"{value}\"");
        }
    }

    fn f64(&mut self, name: &str, value: f64) {
        // -0.0 is not the default value: write it.
        if value != 0.0 || value.is_sign_negative() {
            double(self.key(name), value);
        }
    }

    fn opt_f64(&mut self, name: &str, value: Option<f64>) {
        if let Some(value) = value {
            double(self.key(name), value);
        }
    }

    fn hex(&mut self, name: &str, value: &[u8]) {
        if !value.is_empty() {
            let out = self.key(name);
            out.push('"');
            for b in value {
                let _ = write!(out, "{b:02x}");
            }
            out.push('"');
        }
    }

    fn obj(&mut self, name: &str, write: impl FnOnce(&mut Obj<'_>)) {
        let mut inner = Obj::new(self.key(name));
        write(&mut inner);
        inner.end();
    }

    fn list<T>(&mut self, name: &str, items: &[T], write: impl Fn(&mut Obj<'_>, &T)) {
        if items.is_empty() {
            return;
        }
        let out = self.key(name);
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let mut inner = Obj::new(out);
            write(&mut inner, item);
            inner.end();
        }
        out.push(']');
    }

    fn scalars<T: Copy>(&mut self, name: &str, items: &[T], write: impl Fn(&mut String, T)) {
        if items.is_empty() {
            return;
        }
        let out = self.key(name);
        out.push('[');
        for (i, &item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write(out, item);
        }
        out.push(']');
    }

    fn strings(&mut self, name: &str, items: &[String]) {
        if items.is_empty() {
            return;
        }
        let out = self.key(name);
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, item);
        }
        out.push(']');
    }
}

fn resource_metrics(o: &mut Obj<'_>, rm: &ResourceMetrics) {
    if let Some(r) = &rm.resource {
        o.obj("resource", |o| resource(o, r));
    }
    o.list("scopeMetrics", &rm.scope_metrics, scope_metrics);
    o.str("schemaUrl", &rm.schema_url);
}

fn resource(o: &mut Obj<'_>, r: &Resource) {
    o.list("attributes", &r.attributes, key_value);
    o.int("droppedAttributesCount", r.dropped_attributes_count.into());
    o.list("entityRefs", &r.entity_refs, entity_ref);
}

fn entity_ref(o: &mut Obj<'_>, e: &EntityRef) {
    o.str("schemaUrl", &e.schema_url);
    o.str("type", &e.r#type);
    o.strings("idKeys", &e.id_keys);
    o.strings("descriptionKeys", &e.description_keys);
}

fn scope_metrics(o: &mut Obj<'_>, sm: &ScopeMetrics) {
    if let Some(s) = &sm.scope {
        o.obj("scope", |o| scope(o, s));
    }
    o.list("metrics", &sm.metrics, metric);
    o.str("schemaUrl", &sm.schema_url);
}

fn scope(o: &mut Obj<'_>, s: &InstrumentationScope) {
    o.str("name", &s.name);
    o.str("version", &s.version);
    o.list("attributes", &s.attributes, key_value);
    o.int("droppedAttributesCount", s.dropped_attributes_count.into());
}

fn metric(o: &mut Obj<'_>, m: &Metric) {
    o.str("name", &m.name);
    o.str("description", &m.description);
    o.str("unit", &m.unit);
    if let Some(data) = &m.data {
        let view = DataView::of(data);
        o.obj(view.json_name, |o| {
            match view.points {
                Points::Number(p) => o.list("dataPoints", p, number_point),
                Points::Histogram(p) => o.list("dataPoints", p, histogram_point),
                Points::ExponentialHistogram(p) => o.list("dataPoints", p, exponential_point),
                Points::Summary(p) => o.list("dataPoints", p, summary_point),
            }
            if let Some(temporality) = view.temporality {
                o.int("aggregationTemporality", temporality.into());
            }
            if let Some(monotonic) = view.is_monotonic {
                o.bool("isMonotonic", monotonic);
            }
        });
    }
    o.list("metadata", &m.metadata, key_value);
}

fn number_point(o: &mut Obj<'_>, p: &NumberDataPoint) {
    o.list("attributes", &p.attributes, key_value);
    o.u64_str("startTimeUnixNano", p.start_time_unix_nano);
    o.u64_str("timeUnixNano", p.time_unix_nano);
    match p.value {
        Some(number_data_point::Value::AsDouble(v)) => double(o.key("asDouble"), v),
        Some(number_data_point::Value::AsInt(v)) => {
            let _ = write!(o.key("asInt"), "\"{v}\"");
        }
        None => {}
    }
    o.list("exemplars", &p.exemplars, exemplar);
    o.int("flags", p.flags.into());
}

fn histogram_point(o: &mut Obj<'_>, p: &HistogramDataPoint) {
    o.list("attributes", &p.attributes, key_value);
    o.u64_str("startTimeUnixNano", p.start_time_unix_nano);
    o.u64_str("timeUnixNano", p.time_unix_nano);
    o.u64_str("count", p.count);
    o.opt_f64("sum", p.sum);
    o.scalars("bucketCounts", &p.bucket_counts, |out, v| {
        let _ = write!(out, "\"{v}\"");
    });
    o.scalars("explicitBounds", &p.explicit_bounds, double);
    o.list("exemplars", &p.exemplars, exemplar);
    o.int("flags", p.flags.into());
    o.opt_f64("min", p.min);
    o.opt_f64("max", p.max);
}

fn exponential_point(o: &mut Obj<'_>, p: &ExponentialHistogramDataPoint) {
    o.list("attributes", &p.attributes, key_value);
    o.u64_str("startTimeUnixNano", p.start_time_unix_nano);
    o.u64_str("timeUnixNano", p.time_unix_nano);
    o.u64_str("count", p.count);
    o.opt_f64("sum", p.sum);
    o.int("scale", p.scale.into());
    o.u64_str("zeroCount", p.zero_count);
    if let Some(b) = &p.positive {
        o.obj("positive", |o| buckets(o, b));
    }
    if let Some(b) = &p.negative {
        o.obj("negative", |o| buckets(o, b));
    }
    o.int("flags", p.flags.into());
    o.list("exemplars", &p.exemplars, exemplar);
    o.opt_f64("min", p.min);
    o.opt_f64("max", p.max);
    o.f64("zeroThreshold", p.zero_threshold);
}

fn buckets(o: &mut Obj<'_>, b: &Buckets) {
    o.int("offset", b.offset.into());
    o.scalars("bucketCounts", &b.bucket_counts, |out, v| {
        let _ = write!(out, "\"{v}\"");
    });
}

fn summary_point(o: &mut Obj<'_>, p: &SummaryDataPoint) {
    o.list("attributes", &p.attributes, key_value);
    o.u64_str("startTimeUnixNano", p.start_time_unix_nano);
    o.u64_str("timeUnixNano", p.time_unix_nano);
    o.u64_str("count", p.count);
    o.f64("sum", p.sum);
    o.list("quantileValues", &p.quantile_values, |o, q| {
        o.f64("quantile", q.quantile);
        o.f64("value", q.value);
    });
    o.int("flags", p.flags.into());
}

fn exemplar(o: &mut Obj<'_>, e: &Exemplar) {
    o.list("filteredAttributes", &e.filtered_attributes, key_value);
    o.u64_str("timeUnixNano", e.time_unix_nano);
    match e.value {
        Some(exemplar::Value::AsDouble(v)) => double(o.key("asDouble"), v),
        Some(exemplar::Value::AsInt(v)) => {
            let _ = write!(o.key("asInt"), "\"{v}\"");
        }
        None => {}
    }
    o.hex("spanId", &e.span_id);
    o.hex("traceId", &e.trace_id);
}

fn key_value(o: &mut Obj<'_>, kv: &KeyValue) {
    o.str("key", &kv.key);
    if let Some(v) = &kv.value {
        o.obj("value", |o| any_value(o, v));
    }
    o.int("keyStrindex", kv.key_strindex.into());
}

fn any_value(o: &mut Obj<'_>, v: &AnyValue) {
    // Oneof members are written even when they hold their type's default value.
    match &v.value {
        Some(any_value::Value::StringValue(s)) => string(o.key("stringValue"), s),
        Some(any_value::Value::BoolValue(b)) => {
            let _ = write!(o.key("boolValue"), "{b}");
        }
        Some(any_value::Value::IntValue(i)) => {
            let _ = write!(o.key("intValue"), "\"{i}\"");
        }
        Some(any_value::Value::DoubleValue(d)) => double(o.key("doubleValue"), *d),
        Some(any_value::Value::ArrayValue(a)) => o.obj("arrayValue", |o| {
            o.list("values", &a.values, any_value);
        }),
        Some(any_value::Value::KvlistValue(l)) => o.obj("kvlistValue", |o| {
            o.list("values", &l.values, key_value);
        }),
        Some(any_value::Value::BytesValue(b)) => {
            let out = o.key("bytesValue");
            out.push('"');
            base64(out, b);
            out.push('"');
        }
        Some(any_value::Value::StringValueStrindex(i)) => {
            let _ = write!(o.key("stringValueStrindex"), "{i}");
        }
        None => {}
    }
}

/// A JSON number, or the proto3 JSON strings for the values JSON numbers cannot hold.
fn double(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("\"NaN\"");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else if value.fract() == 0.0
        && value.abs() < 1e17
        && !(value == 0.0 && value.is_sign_negative())
    {
        // Integral values print without ".0" (as in the spec's examples) and without exponent.
        let _ = write!(out, "{value}");
    } else {
        // Shortest representation that reads back to the same f64; may use an exponent.
        let _ = write!(out, "{value:?}");
    }
}

fn string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn base64(out: &mut String, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            let mut out = String::new();
            base64(&mut out, input);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn doubles_follow_proto3_json() {
        let cases = [
            (5.0, "5"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e300, "1e300"),
            (-0.0, "-0.0"),
            (f64::NAN, "\"NaN\""),
            (f64::INFINITY, "\"Infinity\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
        ];
        for (value, expected) in cases {
            let mut out = String::new();
            double(&mut out, value);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn strings_escape_quotes_and_control_characters() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(out, r#""a\"b\\c\n\u0001é""#);
    }

    #[test]
    fn empty_request_is_an_empty_object() {
        assert_eq!(to_json(&ExportMetricsServiceRequest::default()), "{}");
    }
}
