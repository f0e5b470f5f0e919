//! The Prometheus text exposition format (0.0.4) of a [`PrometheusState`].
//!
//! Families come sorted by name, each with one `# HELP` (when the metric has a description)
//! and one `# TYPE` line. Exponential histograms become classic `_bucket` series whose `le`
//! bounds are the exact bucket bounds: with `base = 2^(2^-scale)`, positive bucket `i` holds
//! `(base^i, base^(i+1)]` and is rendered as `le="base^(i+1)"`; the zero bucket
//! (`[-zero_threshold, zero_threshold]`) as `le="zero_threshold"` (`"0"` for the usual
//! threshold 0); negative bucket `i` holds `[-base^(i+1), -base^i)` and is rendered, most
//! negative first, as `le="-base^i"` (a value exactly `-base^i` lands in the next bucket up, as
//! the exponential layout puts it there). `_sum` is left out when negative values may have been
//! recorded (the specification reports it only when it is monotonic) or a point had no sum.

use std::fmt::Write as _;

use super::naming::{push_float, push_label_value, push_u64};
use super::state::{DropReason, ExponentialHistogram, PrometheusState, SeriesValue};
#[cfg(feature = "cli")]
use crate::forward::ForwardStats;
use crate::DecodeStats;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exact upper bound `base^index` of exponential bucket `index - 1` at `scale`.
pub fn exponential_bound(index: i64, scale: i32) -> f64 {
    if scale <= 0 {
        // An integer power of two: exact (or infinite / zero past the f64 range).
        let exponent = index.saturating_mul(1i64 << (-scale).min(62));
        let clamped = exponent.clamp(-1100, 1100) as i32;
        2f64.powi(clamped)
    } else {
        (index as f64 / f64::from(1u32 << scale.min(31))).exp2()
    }
}

/// The classic cumulative buckets of an exponential histogram: `(le, count of values <= le)`,
/// ascending, without the final `+Inf` (which is `count`).
pub(crate) fn exponential_buckets(h: &ExponentialHistogram) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> =
        Vec::with_capacity(h.positive.counts.len() + h.negative.counts.len() + 1);
    let mut cumulative = 0u64;
    let push = |out: &mut Vec<(f64, u64)>, le: f64, cumulative: u64| match out.last_mut() {
        // Bounds below an earlier one (a zero threshold above the first buckets): merge.
        Some(last) if le <= last.0 => last.1 = cumulative,
        _ => out.push((le, cumulative)),
    };
    for (k, c) in h.negative.counts.iter().enumerate().rev() {
        cumulative += c;
        let index = i64::from(h.negative.offset) + k as i64;
        push(&mut out, -exponential_bound(index, h.scale), cumulative);
    }
    cumulative += h.zero_count;
    push(&mut out, h.zero_threshold.max(0.0), cumulative);
    for (k, c) in h.positive.counts.iter().enumerate() {
        cumulative += c;
        let index = i64::from(h.positive.offset) + k as i64 + 1;
        let le = exponential_bound(index, h.scale);
        // A bound past the f64 range is the `+Inf` bucket the caller writes (a second
        // `le="+Inf"` line would be a duplicate series).
        if le.is_finite() {
            push(&mut out, le, cumulative);
        }
    }
    out
}

fn push_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The start of a sample line: `name suffix {labels` (then `,le="..."` and the closing `} `).
fn push_head(out: &mut String, name: &str, suffix: &str, labels: &str) {
    out.push_str(name);
    out.push_str(suffix);
    out.push('{');
    out.push_str(labels);
}

fn push_sample(out: &mut String, name: &str, suffix: &str, labels: &str, value: f64) {
    push_head(out, name, suffix, labels);
    out.push_str("} ");
    if value == value.trunc() && value.abs() < 1e15 {
        if value < 0.0 {
            out.push('-');
        }
        push_u64(out, value.abs() as u64);
    } else {
        push_float(out, value);
    }
    out.push('\n');
}

fn push_u64_sample(out: &mut String, name: &str, suffix: &str, labels: &str, value: u64) {
    push_head(out, name, suffix, labels);
    out.push_str("} ");
    push_u64(out, value);
    out.push('\n');
}

/// A `_bucket` line; `le` is the formatted bound.
fn push_bucket(out: &mut String, name: &str, labels: &str, le: &str, value: u64) {
    push_head(out, name, "_bucket", labels);
    if !labels.is_empty() {
        out.push(',');
    }
    out.push_str("le=\"");
    out.push_str(le);
    out.push_str("\"} ");
    push_u64(out, value);
    out.push('\n');
}

/// The `le` texts of the last bounds seen: series of one histogram family share their bounds,
/// so each bound is formatted once per scrape rather than once per series.
#[derive(Default)]
struct LeCache {
    bounds: Vec<f64>,
    texts: Vec<String>,
}

impl LeCache {
    fn texts(&mut self, bounds: &[f64]) -> &[String] {
        if self.bounds != bounds {
            self.bounds = bounds.to_vec();
            self.texts = bounds
                .iter()
                .map(|b| super::naming::format_float(*b))
                .collect();
        }
        &self.texts
    }
}

/// Appends every family of `state` (then `target_info` and `otel_scope_info`) to `out`.
pub fn render(state: &PrometheusState, out: &mut String) {
    let mut les = LeCache::default();
    let mut names: Vec<&String> = state.families.keys().collect();
    names.sort_unstable();
    for name in names {
        let family = &state.families[name];
        if !family.help.is_empty() {
            let _ = write!(out, "# HELP {name} ");
            push_help(out, &family.help);
            out.push('\n');
        }
        let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
        for (labels, series) in &family.series {
            match &series.value {
                SeriesValue::Number(v) => push_sample(out, name, "", labels, *v),
                SeriesValue::Histogram(h) => {
                    let mut cumulative = 0u64;
                    for ((le, bound), c) in
                        les.texts(&h.bounds).iter().zip(&h.bounds).zip(&h.counts)
                    {
                        cumulative += c;
                        // An explicit `+Inf` bound is the `+Inf` bucket written below.
                        if *bound != f64::INFINITY {
                            push_bucket(out, name, labels, le, cumulative);
                        }
                    }
                    push_bucket(out, name, labels, "+Inf", h.count);
                    if !h.no_sum {
                        push_sample(out, name, "_sum", labels, h.sum);
                    }
                    push_u64_sample(out, name, "_count", labels, h.count);
                }
                SeriesValue::Exponential(h) => {
                    let mut le = String::new();
                    for (bound, cumulative) in exponential_buckets(h) {
                        le.clear();
                        push_float(&mut le, bound);
                        push_bucket(out, name, labels, &le, cumulative);
                    }
                    push_bucket(out, name, labels, "+Inf", h.count);
                    if !h.no_sum {
                        push_sample(out, name, "_sum", labels, h.sum);
                    }
                    push_u64_sample(out, name, "_count", labels, h.count);
                }
            }
        }
    }
    for (name, help, entries) in [
        ("target_info", "Target metadata", &state.targets),
        (
            "otel_scope_info",
            "Instrumentation Scope metadata",
            &state.scopes,
        ),
    ] {
        if entries.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        let mut lines: Vec<&str> = entries.values().map(|e| e.labels.as_str()).collect();
        lines.sort_unstable();
        for labels in lines {
            push_u64_sample(out, name, "", labels, 1);
        }
    }
}

/// Appends the agent's own metrics (`ue_metrics_decode_*`): records read, decoded, failed and
/// lost by the source, points taken and dropped, live, created, expired and reset series, and
/// the series limit.
pub fn render_self_telemetry(state: &PrometheusState, source: &DecodeStats, out: &mut String) {
    let counts = state.counts();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(
            out,
            "# HELP ue_metrics_decode_{name} {help}\n# TYPE ue_metrics_decode_{name} {kind}"
        );
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "ue_metrics_decode_{name} {value}");
            } else {
                let _ = writeln!(out, "ue_metrics_decode_{name}{{{labels}}} {value}");
            }
        }
    };
    family(
        "records_read_total",
        "counter",
        "Records of the event read from the source",
        &[("", source.records)],
    );
    family(
        "records_decoded_total",
        "counter",
        "Records decoded into a request",
        &[("", source.decoded)],
    );
    family(
        "records_failed_total",
        "counter",
        "Records skipped because they could not be decoded",
        &[("", source.failed)],
    );
    family(
        "records_lost_total",
        "counter",
        "Records the kernel reported lost",
        &[("", source.lost)],
    );
    family(
        "points_total",
        "counter",
        "Data points taken into a series",
        &[("", counts.points)],
    );
    let dropped: Vec<(String, u64)> = DropReason::ALL_REASONS
        .iter()
        .map(|r| {
            let mut label = String::from("reason=\"");
            push_label_value(&mut label, r.as_str());
            label.push('"');
            (label, counts.dropped(*r))
        })
        .collect();
    let dropped: Vec<(&str, u64)> = dropped.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    family(
        "points_dropped_total",
        "counter",
        "Data points dropped, by reason",
        &dropped,
    );
    family(
        "series",
        "gauge",
        "Series held",
        &[("", state.series() as u64)],
    );
    family(
        "series_limit",
        "gauge",
        "Most series held at once (--prometheus-max-series; 0: no limit)",
        &[("", state.options.max_series as u64)],
    );
    family(
        "series_created_total",
        "counter",
        "Series created",
        &[("", counts.series_created)],
    );
    family(
        "series_expired_total",
        "counter",
        "Series removed after --prometheus-expire without updates",
        &[("", counts.series_expired)],
    );
    family(
        "series_resets_total",
        "counter",
        "Series started again (cumulative producer restart, new histogram bounds)",
        &[("", counts.resets)],
    );
}

/// Appends the forwarder's counts (`ue_metrics_decode_forward_requests_total{outcome}` with
/// `sent`, `failed`, `dropped` (full queue), `drain_dropped` (not delivered by the drain
/// deadline); `ue_metrics_decode_forward_retries_total`;
/// `ue_metrics_decode_forward_rejected_points_total`, points rejected in accepted requests) and
/// its queue
/// (`ue_metrics_decode_forward_queue_depth`, `_queue_high_water`, `_queue_capacity` gauges).
#[cfg(feature = "cli")]
pub fn render_forward_telemetry(stats: &ForwardStats, out: &mut String) {
    let name = "ue_metrics_decode_forward_requests_total";
    let _ = writeln!(
        out,
        "# HELP {name} Requests forwarded to the OTLP/HTTP endpoint, by outcome\n# TYPE {name} counter"
    );
    for (outcome, value) in [
        ("sent", stats.sent),
        ("failed", stats.failed),
        ("dropped", stats.dropped),
        ("drain_dropped", stats.drain_dropped),
    ] {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {value}");
    }
    for (name, help, value) in [
        (
            "queue_depth",
            "Requests waiting in the forwarding queue",
            stats.queue_depth,
        ),
        (
            "queue_high_water",
            "The most requests the forwarding queue has held at once",
            stats.queue_high_water,
        ),
        (
            "queue_capacity",
            "Requests the forwarding queue can hold",
            stats.queue_capacity,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP ue_metrics_decode_forward_{name} {help}\n# TYPE ue_metrics_decode_forward_{name} gauge\nue_metrics_decode_forward_{name} {value}"
        );
    }
    for (name, help, value) in [
        (
            "retries_total",
            "Forwarding attempts retried",
            stats.retries,
        ),
        (
            "rejected_points_total",
            "Data points the receiver rejected in requests it accepted (OTLP partial success)",
            stats.rejected_points,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP ue_metrics_decode_forward_{name} {help}\n# TYPE ue_metrics_decode_forward_{name} counter\nue_metrics_decode_forward_{name} {value}"
        );
    }
}
