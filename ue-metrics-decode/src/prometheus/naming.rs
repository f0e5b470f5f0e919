//! OpenTelemetry names, units and attributes as Prometheus names and labels, per the
//! OpenTelemetry specification's "Prometheus and OpenMetrics Compatibility" (OTLP to
//! Prometheus): invalid characters become `_` (runs of `_` collapse to one), units become
//! word suffixes (`s` -> `_seconds`, `By` -> `_bytes`, `{request}` dropped, `1` -> `_ratio` for
//! gauges, `a/b` -> `_a_per_b`), monotonic sums end in `_total`.

use std::fmt::Write as _;

use crate::proto::common::v1::{any_value, AnyValue};

/// What a metric becomes in Prometheus; decides the suffixes of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyType {
    /// A monotonic sum: `_total` suffix.
    Counter,
    /// A gauge or a non-monotonic sum.
    Gauge,
    /// An explicit-bucket or exponential histogram (`_bucket`, `_sum`, `_count`).
    Histogram,
}

impl FamilyType {
    /// The word of the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            FamilyType::Counter => "counter",
            FamilyType::Gauge => "gauge",
            FamilyType::Histogram => "histogram",
        }
    }
}

/// Appends `name` to `out` with every character outside `[a-zA-Z0-9_:]` (`colon` true, metric
/// names) or `[a-zA-Z0-9_]` (label names) replaced by `_`, runs of `_` collapsed into one, and a
/// `_` in front of a leading digit.
fn push_sanitized(out: &mut String, name: &str, colon: bool) {
    // Most names are valid but for dots: check bytes first, copy when nothing changes.
    // One pass over the bytes (a substring search for "__" costs more than the whole check on
    // names this short).
    let bytes = name.as_bytes();
    let mut after_underscore = false;
    let clean = !bytes.first().is_some_and(u8::is_ascii_digit)
        && bytes.iter().all(|&b| {
            let doubled = b == b'_' && after_underscore;
            after_underscore = b == b'_';
            !doubled && (b.is_ascii_alphanumeric() || b == b'_' || (colon && b == b':'))
        });
    if clean {
        out.push_str(name);
        return;
    }
    // Runs of kept bytes (ASCII, so every run starts and ends on a character boundary) are
    // copied whole; each other character becomes one `_`, at its first byte (the continuation
    // bytes of a non-ASCII character, 0b10xx_xxxx, add nothing).
    let start = out.len();
    let mut last_underscore = false;
    let mut run = 0;
    for i in 0..=bytes.len() {
        let byte = bytes.get(i).copied();
        if byte.is_some_and(|b| b.is_ascii_alphanumeric() || (colon && b == b':')) {
            continue;
        }
        if let Some(text) = name.get(run..i).filter(|text| !text.is_empty()) {
            if out.len() == start && text.as_bytes()[0].is_ascii_digit() {
                out.push('_');
            }
            out.push_str(text);
            last_underscore = false;
        }
        run = i + 1;
        if byte.is_some_and(|b| b & 0xC0 != 0x80) && !last_underscore {
            out.push('_');
            last_underscore = true;
        }
    }
}

/// A Prometheus metric name from an OpenTelemetry one (no suffixes).
pub fn sanitize_metric_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    push_sanitized(&mut out, name, true);
    out
}

/// Appends the Prometheus label name for an attribute key (`http.route` -> `http_route`).
pub fn push_label_name(out: &mut String, key: &str) {
    if key.is_empty() {
        // An empty label name fails the whole scrape (the SDKs let an empty key through).
        out.push('_');
        return;
    }
    push_sanitized(out, key, false);
}

/// A Prometheus label name for an attribute key.
pub fn label_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    push_label_name(&mut out, key);
    out
}

/// The word for one UCUM unit (the abbreviations OpenTelemetry semantic conventions use);
/// unknown units are kept as they are (then sanitized).
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tebibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "bit" => "bits",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        other => other,
    }
}

/// The word for the unit after `/` (`m/s` -> `meters_per_second`).
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => unit_word(other),
    }
}

/// The unit suffix (without the leading `_`), or `None` when the unit adds none: annotations
/// in braces are dropped (`{request}`, `{packet}/s` -> `per_second`), `1` is `ratio` for
/// gauges only (a dimensionless count or histogram has no unit in Prometheus).
pub fn unit_suffix(unit: &str, family: FamilyType) -> Option<String> {
    // Drop `{...}` annotations.
    let mut bare = String::with_capacity(unit.len());
    let mut depth = 0u32;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 => bare.push(c),
            _ => {}
        }
    }
    let bare = bare.trim();
    if bare == "1" {
        return (family == FamilyType::Gauge).then(|| "ratio".to_owned());
    }
    let (main, per) = match bare.split_once('/') {
        Some((main, per)) => (main.trim(), Some(per.trim())),
        None => (bare, None),
    };
    let mut words = String::new();
    if !main.is_empty() && main != "1" {
        push_sanitized(&mut words, unit_word(main), false);
    }
    if let Some(per) = per.filter(|p| !p.is_empty()) {
        if !words.is_empty() {
            words.push('_');
        }
        words.push_str("per_");
        push_sanitized(&mut words, per_unit_word(per), false);
    }
    let words = words.trim_matches('_');
    (!words.is_empty()).then(|| words.to_owned())
}

/// The full Prometheus family name of an OpenTelemetry metric: sanitized name, the unit suffix
/// unless the name already contains it as a word, and `_total` for counters.
pub fn family_name(name: &str, unit: &str, family: FamilyType) -> String {
    let mut out = sanitize_metric_name(name);
    if family == FamilyType::Counter {
        // The unit goes before `_total`.
        if let Some(stripped) = out.strip_suffix("_total") {
            out.truncate(stripped.len());
        }
    }
    if let Some(suffix) = unit_suffix(unit, family) {
        let already = out == suffix
            || out.ends_with(&format!("_{suffix}"))
            || out.contains(&format!("_{suffix}_"))
            || out.starts_with(&format!("{suffix}_"));
        if !already {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            out.push_str(&suffix);
        }
    }
    if family == FamilyType::Counter {
        if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        out.push_str("total");
    }
    out
}

/// Appends a label value with the text format's escapes (`\\`, `\"`, `\n`).
pub fn push_label_value(out: &mut String, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends an attribute value as the string the specification's attribute rules give: strings
/// as they are, booleans and numbers as text, arrays and maps as JSON, bytes as base64.
pub fn push_attribute_value(out: &mut String, value: Option<&AnyValue>) {
    match value.and_then(|v| v.value.as_ref()) {
        None => {}
        Some(any_value::Value::StringValue(s)) => out.push_str(s),
        Some(other) => push_non_string(out, other, false),
    }
}

/// Appends `value` in decimal, as `Display` does, without the formatting machinery: numeric
/// attributes are in the series key of every point, and a scrape writes hundreds of thousands
/// of values.
pub(crate) fn push_u64(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// [`push_u64`] with a sign.
fn push_integer(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    push_u64(out, value.unsigned_abs());
}

/// `d` as an integer when `Display` writes it as one (a whole number below 10^15 in magnitude;
/// not -0, which `Display` writes as `-0`).
fn integral(d: f64) -> Option<i64> {
    let whole = d.fract() == 0.0 && d.abs() < 1e15 && !(d == 0.0 && d.is_sign_negative());
    // The cast is exact: a whole number below 10^15 fits an i64.
    whole.then_some(d as i64)
}

fn push_non_string(out: &mut String, value: &any_value::Value, in_json: bool) {
    match value {
        any_value::Value::StringValue(s) => {
            if in_json {
                push_json_string(out, s)
            } else {
                out.push_str(s)
            }
        }
        any_value::Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        any_value::Value::IntValue(i) => push_integer(out, *i),
        // An index into a dictionary this message does not carry (profiles only): the number.
        any_value::Value::StringValueStrindex(i) => push_integer(out, i64::from(*i)),
        any_value::Value::DoubleValue(d) => {
            if let Some(i) = integral(*d) {
                push_integer(out, i);
            } else if d.is_finite() {
                let _ = write!(out, "{d}");
            } else if in_json {
                // JSON has no NaN or infinities: the strings the OTLP/JSON mapping uses.
                push_json_string(out, &format_float(*d));
            } else {
                out.push_str(&format_float(*d));
            }
        }
        any_value::Value::BytesValue(bytes) => {
            if in_json {
                out.push('"');
            }
            push_base64(out, bytes);
            if in_json {
                out.push('"');
            }
        }
        any_value::Value::ArrayValue(array) => {
            out.push('[');
            for (i, v) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match &v.value {
                    Some(v) => push_non_string(out, v, true),
                    None => out.push_str("null"),
                }
            }
            out.push(']');
        }
        any_value::Value::KvlistValue(list) => {
            out.push('{');
            for (i, kv) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, &kv.key);
                out.push(':');
                match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(v) => push_non_string(out, v, true),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_base64(out: &mut String, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let word = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= n {
                out.push(ALPHABET[((word >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

/// A sample value or `le` bound as the text format writes it: `+Inf`, `-Inf`, `NaN`, integers
/// without a fraction, other numbers in the shortest form that reads back to the same `f64`.
pub fn format_float(value: f64) -> String {
    let mut out = String::new();
    push_float(&mut out, value);
    out
}

/// Appends [`format_float`]'s text.
pub fn push_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value == value.trunc() && value.abs() < 1e15 {
        let _ = write!(out, "{}", value as i64);
    } else if (1e-4..1e15).contains(&value.abs()) {
        let _ = write!(out, "{value}");
    } else {
        let _ = write!(out, "{value:e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::common::v1::{ArrayValue, KeyValue, KeyValueList};

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for i in [
            0,
            1,
            -1,
            9,
            10,
            -10,
            4711,
            i64::MAX,
            i64::MIN,
            999_999_999_999_999,
        ] {
            let mut out = String::new();
            push_non_string(&mut out, &any_value::Value::IntValue(i), false);
            assert_eq!(out, i.to_string());
        }
        let floats = [
            0.0,
            -0.0,
            0.25,
            -0.75,
            1.0,
            -1.0,
            123.0,
            1e14,
            999_999_999_999_999.0,
            1e15,
            -1e15,
            1e16,
            1e300,
            5e-324,
            0.1,
        ];
        for d in floats {
            let mut out = String::new();
            push_non_string(&mut out, &any_value::Value::DoubleValue(d), false);
            assert_eq!(out, d.to_string(), "{d:?}");
        }
    }

    #[test]
    fn names_follow_the_compatibility_rules() {
        use FamilyType::*;
        assert_eq!(
            family_name("http.server.duration", "s", Histogram),
            "http_server_duration_seconds"
        );
        assert_eq!(
            family_name("http.requests", "{request}", Counter),
            "http_requests_total"
        );
        assert_eq!(family_name("requests_total", "", Counter), "requests_total");
        assert_eq!(family_name("io.read", "By", Counter), "io_read_bytes_total");
        assert_eq!(
            family_name("io.read_total", "By", Counter),
            "io_read_bytes_total"
        );
        assert_eq!(
            family_name("cpu.utilization", "1", Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(family_name("hits", "1", Counter), "hits_total");
        assert_eq!(family_name("queue.size", "{item}", Gauge), "queue_size");
        assert_eq!(
            family_name("speed", "m/s", Gauge),
            "speed_meters_per_second"
        );
        assert_eq!(
            family_name("packets", "{packet}/s", Gauge),
            "packets_per_second"
        );
        assert_eq!(
            family_name("temperature", "Cel", Gauge),
            "temperature_celsius"
        );
        // The name already carries the unit.
        assert_eq!(
            family_name("latency_seconds", "s", Histogram),
            "latency_seconds"
        );
        assert_eq!(
            family_name("heap.bytes.used", "By", Gauge),
            "heap_bytes_used"
        );
        // Invalid characters, runs of `_`, a leading digit.
        assert_eq!(family_name("a..b-c/d", "", Gauge), "a_b_c_d");
        assert_eq!(family_name("9lives", "", Gauge), "_9lives");
        assert_eq!(family_name("ns:metric", "", Gauge), "ns:metric");
        assert_eq!(family_name("size", "weird unit!", Gauge), "size_weird_unit");
    }

    #[test]
    fn label_names_and_values() {
        assert_eq!(label_name("http.route"), "http_route");
        assert_eq!(label_name("a:b"), "a_b");
        assert_eq!(label_name("a__b..c"), "a_b_c");
        assert_eq!(label_name("0day"), "_0day");
        // A non-ASCII character is one `_`, whatever its UTF-8 length.
        assert_eq!(label_name("größe"), "gr_e");
        assert_eq!(label_name("é1"), "_1");
        assert_eq!(label_name("_x__"), "_x_");
        assert_eq!(sanitize_metric_name("1€:a"), "_1_:a");
        let mut v = String::new();
        push_label_value(&mut v, "say \"hi\"\\\nbye");
        assert_eq!(v, r#"say \"hi\"\\\nbye"#);
    }

    fn any(v: any_value::Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    #[test]
    fn attribute_values_become_strings() {
        let cases = [
            (any(any_value::Value::StringValue("x y".into())), "x y"),
            (any(any_value::Value::BoolValue(true)), "true"),
            (any(any_value::Value::IntValue(-42)), "-42"),
            (any(any_value::Value::DoubleValue(0.25)), "0.25"),
            (
                any(any_value::Value::BytesValue(b"hello".to_vec())),
                "aGVsbG8=",
            ),
            (
                any(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![
                        any(any_value::Value::StringValue("a\"".into())),
                        any(any_value::Value::IntValue(1)),
                        any(any_value::Value::DoubleValue(f64::NAN)),
                    ],
                })),
                r#"["a\"",1,"NaN"]"#,
            ),
            (
                any(any_value::Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(any(any_value::Value::BoolValue(false))),
                        ..Default::default()
                    }],
                })),
                r#"{"k":false}"#,
            ),
        ];
        for (value, expected) in cases {
            let mut out = String::new();
            push_attribute_value(&mut out, Some(&value));
            assert_eq!(out, expected);
        }
        let mut out = String::new();
        push_attribute_value(&mut out, None);
        assert_eq!(out, "");
    }

    #[test]
    fn floats() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(-3.0), "-3");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(1.0905077326652577), "1.0905077326652577");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(1e300), "1e300");
        assert_eq!(format_float(2.5e-7), "2.5e-7");
        for v in [1e300, 2.5e-7, 0.1, 123456.789, 2f64.powf(0.125)] {
            assert_eq!(format_float(v).parse::<f64>().unwrap(), v);
        }
    }
}
