//! A human summary of decoded requests: one row per metric (metric, kind, attribute sets,
//! points, last value), and a live variant with rates (events/s, bytes/event).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use prost::Message as _;

use crate::data::{DataView, Point};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::KeyValue;
use crate::proto::metrics::v1::number_data_point;

/// Accumulates requests into per-metric rows.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    rows: BTreeMap<String, Row>,
    requests: u64,
    points: u64,
    /// Counts only ([`Summary::totals_only`]): no attribute sets, values or sizes kept.
    totals_only: bool,
}

/// A data point's value as the tables show it.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Value {
    #[default]
    Missing,
    Int(i64),
    Double(f64),
    /// Histograms and summaries.
    CountSum {
        count: u64,
        sum: Option<f64>,
    },
}

impl Value {
    /// Exact: `9`, `0.1`, `count=3 sum=2.5`.
    fn full(self) -> String {
        match self {
            Value::Missing => "-".into(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => d.to_string(),
            Value::CountSum {
                count,
                sum: Some(sum),
            } => format!("count={count} sum={sum}"),
            Value::CountSum { count, sum: None } => format!("count={count}"),
        }
    }

    /// Short, for the live table: `9`, `43.21`, `594.8k`; histograms and summaries as count
    /// and mean: `n=3 avg=0.83`.
    fn compact(self) -> String {
        match self {
            Value::Int(i) => compact_number(i as f64),
            Value::Double(d) => compact_number(d),
            Value::CountSum {
                count,
                sum: Some(sum),
            } if count > 0 => format!("n={count} avg={}", compact_number(sum / count as f64)),
            Value::CountSum { count, .. } => format!("n={count}"),
            Value::Missing => self.full(),
        }
    }
}

/// Below 100: at most two decimals, below 1,000 one, below 100,000 none (trailing zeros
/// dropped). Above: one decimal and a k/M/G/T/P suffix. Tiny non-zero values in scientific
/// notation.
fn compact_number(d: f64) -> String {
    let magnitude = d.abs();
    if magnitude >= 1e5 {
        let (scaled, suffix) = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
            .into_iter()
            .find(|(unit, _)| magnitude >= *unit * 0.99995)
            .map_or((d, ""), |(unit, suffix)| (d / unit, suffix));
        if scaled.abs() >= 1000.0 {
            return format!("{d:.2e}");
        }
        return format!("{}{suffix}", trim_decimals(&format!("{scaled:.1}")));
    }
    if d != 0.0 && magnitude < 0.01 {
        return format!("{d:.2e}");
    }
    let decimals = match magnitude {
        m if m < 100.0 => 2,
        m if m < 1000.0 => 1,
        _ => 0,
    };
    trim_decimals(&format!("{d:.decimals$}")).to_owned()
}

/// `1.50` as `1.5`, `2.00` as `2`.
fn trim_decimals(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

#[derive(Debug, Default, Clone)]
struct Row {
    kind: &'static str,
    attribute_sets: BTreeSet<Vec<u8>>,
    points: u64,
    last_time: u64,
    last_value: Value,
    /// Events (requests) that carried this metric.
    events: u64,
    /// Encoded bytes of this metric summed over those events.
    bytes: u64,
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty summary that counts requests, metrics and points only (for a live agent's
    /// totals line): it keeps no attribute sets, so what it holds does not grow with every
    /// attribute set a long run sees. Its tables show no attribute sets, values or sizes.
    pub fn totals_only() -> Self {
        Summary {
            totals_only: true,
            ..Self::default()
        }
    }

    /// Requests added so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Metrics seen so far.
    pub fn metrics(&self) -> usize {
        self.rows.len()
    }

    /// Data points added so far.
    pub fn points(&self) -> u64 {
        self.points
    }

    /// Distinct attribute sets held, over every metric.
    pub fn attribute_sets(&self) -> usize {
        self.rows.values().map(|r| r.attribute_sets.len()).sum()
    }

    /// Adds every data point of a request; also counts, per metric, the request as one event
    /// carrying it and the metric's encoded size in it (for [`Summary::live_table`]).
    pub fn add(&mut self, request: &ExportMetricsServiceRequest) {
        self.requests += 1;
        for rm in &request.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    if !self.rows.contains_key(&m.name) {
                        self.rows.insert(m.name.clone(), Row::default());
                    }
                    let Some(row) = self.rows.get_mut(&m.name) else {
                        continue;
                    };
                    if self.totals_only {
                        let points = m
                            .data
                            .as_ref()
                            .map_or(0, |d| DataView::of(d).points().count());
                        row.points += points as u64;
                        self.points += points as u64;
                        continue;
                    }
                    let points_before = row.points;
                    row.events += 1;
                    row.bytes += m.encoded_len() as u64;
                    match m.data.as_ref().map(DataView::of) {
                        Some(view) => {
                            row.kind = view.kind;
                            for p in view.points() {
                                row.point(p.attributes(), p.time_unix_nano(), || value(p));
                            }
                        }
                        None => row.kind = "none",
                    }
                    self.points += row.points - points_before;
                }
            }
        }
    }

    /// The table, one line per metric, columns aligned, with a header line.
    pub fn table(&self) -> String {
        let header = ["metric", "kind", "attr sets", "points", "last value"];
        let rows: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|(name, r)| {
                [
                    printable(name),
                    r.kind.to_owned(),
                    r.attribute_sets.len().to_string(),
                    r.points.to_string(),
                    r.last_value.full(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: [&str; 5]| {
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let numeric = i == 2 || i == 3;
                let _ = match (i, numeric) {
                    (4, _) => write!(out, "{cell}"),
                    (_, true) => write!(out, "{cell:>w$}  "),
                    _ => write!(out, "{cell:<w$}  "),
                };
            }
            out.push('\n');
        };
        line(header);
        for row in &rows {
            line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
        }
        out
    }
}

/// Widest cells of the live table, so that it fits an 80-column terminal (where it is redrawn
/// in place, a wrapped line would break the redraw).
const LIVE_NAME_WIDTH: usize = 30;
const LIVE_KIND_WIDTH: usize = 9;
const LIVE_VALUE_WIDTH: usize = 14;

impl Summary {
    /// The live table: one line per metric with its kind, attribute sets, latest value (short
    /// form), the events per second that carried it over `elapsed` (`ev/s`), and the bytes it
    /// took in each of those events (`bytes/ev`). Names and values are shortened (with `~`) to
    /// keep lines within 80 columns.
    pub fn live_table(&self, elapsed: Duration) -> String {
        let seconds = elapsed.as_secs_f64().max(1e-3);
        let header = ["metric", "kind", "sets", "latest", "ev/s", "bytes/ev"];
        let rows: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|(name, r)| {
                [
                    shorten(&printable(name), LIVE_NAME_WIDTH),
                    shorten(r.kind, LIVE_KIND_WIDTH),
                    r.attribute_sets.len().to_string(),
                    shorten(&r.last_value.compact(), LIVE_VALUE_WIDTH),
                    format!("{:.1}", r.events as f64 / seconds),
                    r.bytes.checked_div(r.events).unwrap_or(0).to_string(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: [&str; 6]| {
            let mut text = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let _ = match i {
                    0 | 1 | 3 => write!(text, "{cell:<w$}  "),
                    _ => write!(text, "{cell:>w$}  "),
                };
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(header);
        for row in &rows {
            line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
        }
        out
    }
}

/// `name` with control characters escaped (`\n`, `\u{1b}`) and backslashes doubled: metric
/// names come from any producer, and a raw escape sequence or line break would reach the
/// terminal or add a fake row to the table.
fn printable(name: &str) -> String {
    if !name.chars().any(|c| c.is_control() || c == '\\') {
        return name.to_owned();
    }
    name.chars()
        .map(|c| {
            if c.is_control() || c == '\\' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `text` cut to `width` characters, the last one replaced by `~` when cut.
fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(width - 1).collect();
        short.push('~');
        short
    }
}

impl Row {
    fn point(&mut self, attributes: &[KeyValue], time: u64, value: impl FnOnce() -> Value) {
        self.points += 1;
        let mut key = Vec::new();
        for kv in attributes {
            kv.encode(&mut key).expect("Vec grows");
        }
        self.attribute_sets.insert(key);
        if time >= self.last_time {
            self.last_time = time;
            self.last_value = value();
        }
    }
}

/// The value a table shows for a point: the number, or a histogram's or summary's count and sum.
fn value(point: Point<'_>) -> Value {
    let count_sum = |count, sum| Value::CountSum { count, sum };
    match point {
        Point::Number(p) => match p.value {
            Some(number_data_point::Value::AsInt(i)) => Value::Int(i),
            Some(number_data_point::Value::AsDouble(d)) => Value::Double(d),
            None => Value::Missing,
        },
        Point::Histogram(p) => count_sum(p.count, p.sum),
        Point::ExponentialHistogram(p) => count_sum(p.count, p.sum),
        Point::Summary(p) => count_sum(p.count, Some(p.sum)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::metrics::v1::{
        metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };

    fn gauge_request(name: &str, values: &[f64]) -> ExportMetricsServiceRequest {
        let data_points = values
            .iter()
            .enumerate()
            .map(|(i, v)| NumberDataPoint {
                attributes: vec![KeyValue {
                    key: "i".into(),
                    value: Some(crate::proto::common::v1::AnyValue {
                        value: Some(crate::proto::common::v1::any_value::Value::IntValue(
                            i as i64,
                        )),
                    }),
                    ..Default::default()
                }],
                time_unix_nano: 10 + i as u64,
                value: Some(number_data_point::Value::AsDouble(*v)),
                ..Default::default()
            })
            .collect();
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: name.into(),
                        data: Some(metric::Data::Gauge(Gauge { data_points })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn live_table_counts_events_bytes_and_points() {
        let first = gauge_request("temperature", &[1.5, 2.5]);
        let metric_bytes = first.resource_metrics[0].scope_metrics[0].metrics[0].encoded_len();
        let mut summary = Summary::new();
        summary.add(&first);
        summary.add(&first);
        assert_eq!((summary.points(), summary.metrics()), (4, 1));
        let table = summary.live_table(Duration::from_secs(4));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(lines[0].starts_with("metric") && lines[0].ends_with("bytes/ev"));
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        // 2 events in 4 s; each carried the metric's full encoding.
        assert_eq!(
            cells,
            [
                "temperature",
                "gauge",
                "2",
                "2.5",
                "0.5",
                &metric_bytes.to_string()
            ],
            "{table}"
        );
    }

    #[test]
    fn live_table_fits_80_columns() {
        let long = "a.very.long.metric.name.that.goes.on.and.on.forever";
        let mut summary = Summary::new();
        summary.add(&gauge_request(long, &[12_345_678_912.5]));
        let table = summary.live_table(Duration::from_secs(1));
        assert!(table.lines().all(|l| l.chars().count() <= 80), "{table}");
        assert!(table.contains("a.very.long.metric.name.that.~"), "{table}");
        assert!(table.contains(" 12.3G "), "{table}");
    }

    #[test]
    fn values_full_and_compact() {
        let histogram = Value::CountSum {
            count: 3,
            sum: Some(2.126),
        };
        assert_eq!(histogram.full(), "count=3 sum=2.126");
        assert_eq!(histogram.compact(), "n=3 avg=0.71");
        let empty = Value::CountSum {
            count: 0,
            sum: Some(0.0),
        };
        assert_eq!(empty.compact(), "n=0");
        assert_eq!(Value::Double(0.1 + 0.2).full(), "0.30000000000000004");
        assert_eq!(Value::Double(0.1 + 0.2).compact(), "0.3");
        assert_eq!(Value::Double(40.0).compact(), "40");
        assert_eq!(Value::Double(99_999.4).compact(), "99999");
        assert_eq!(Value::Double(9_722.47).compact(), "9722");
        assert_eq!(Value::Double(123.456).compact(), "123.5");
        assert_eq!(Value::Double(594_812.0).compact(), "594.8k");
        assert_eq!(Value::Int(-2_500_000).compact(), "-2.5M");
        assert_eq!(Value::Int(999_999_999).compact(), "1G");
        assert_eq!(Value::Double(1e20).compact(), "1.00e20");
        assert_eq!(Value::Double(0.0001).compact(), "1.00e-4");
        assert_eq!(Value::Double(0.0).compact(), "0");
        assert_eq!(Value::Int(-7).compact(), "-7");
        assert_eq!(Value::Int(1200).compact(), "1200");
        assert_eq!(Value::Missing.compact(), "-");
    }

    #[test]
    fn names_cannot_draw_on_the_terminal() {
        let mut summary = Summary::new();
        summary.add(&gauge_request("a\x1b[31m\nb\\c\u{85}", &[1.0]));
        for table in [summary.table(), summary.live_table(Duration::from_secs(1))] {
            assert_eq!(table.lines().count(), 2, "{table:?}");
            assert!(table.chars().filter(|c| c.is_control()).all(|c| c == '\n'));
            assert!(table.contains(r"a\u{1b}[31m\nb\\c\u{85}"), "{table}");
        }
    }

    #[test]
    fn shorten_marks_cut_text() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "ab~");
    }
}
