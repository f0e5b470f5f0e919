//! A human summary of decoded requests: one row per metric (metric, kind, attribute sets,
//! points, last value).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use prost::Message as _;

use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::KeyValue;
use crate::proto::metrics::v1::{metric, number_data_point};

/// Accumulates requests into per-metric rows.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    rows: BTreeMap<String, Row>,
    requests: u64,
}

#[derive(Debug, Default, Clone)]
struct Row {
    kind: &'static str,
    attribute_sets: BTreeSet<Vec<u8>>,
    points: u64,
    last_time: u64,
    last_value: String,
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests added so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Metrics seen so far.
    pub fn metrics(&self) -> usize {
        self.rows.len()
    }

    /// Adds every data point of a request.
    pub fn add(&mut self, request: &ExportMetricsServiceRequest) {
        self.requests += 1;
        for rm in &request.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    let row = self.rows.entry(m.name.clone()).or_default();
                    match &m.data {
                        Some(metric::Data::Gauge(g)) => {
                            row.kind = "gauge";
                            for p in &g.data_points {
                                row.point(&p.attributes, p.time_unix_nano, || number(&p.value));
                            }
                        }
                        Some(metric::Data::Sum(s)) => {
                            row.kind = if s.is_monotonic { "counter" } else { "updown" };
                            for p in &s.data_points {
                                row.point(&p.attributes, p.time_unix_nano, || number(&p.value));
                            }
                        }
                        Some(metric::Data::Histogram(h)) => {
                            row.kind = "histogram";
                            for p in &h.data_points {
                                row.point(&p.attributes, p.time_unix_nano, || {
                                    count_sum(p.count, p.sum)
                                });
                            }
                        }
                        Some(metric::Data::ExponentialHistogram(h)) => {
                            row.kind = "exp-histogram";
                            for p in &h.data_points {
                                row.point(&p.attributes, p.time_unix_nano, || {
                                    count_sum(p.count, p.sum)
                                });
                            }
                        }
                        Some(metric::Data::Summary(s)) => {
                            row.kind = "summary";
                            for p in &s.data_points {
                                row.point(&p.attributes, p.time_unix_nano, || {
                                    count_sum(p.count, Some(p.sum))
                                });
                            }
                        }
                        None => row.kind = "none",
                    }
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
                    name.clone(),
                    r.kind.to_owned(),
                    r.attribute_sets.len().to_string(),
                    r.points.to_string(),
                    r.last_value.clone(),
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

impl Row {
    fn point(&mut self, attributes: &[KeyValue], time: u64, value: impl FnOnce() -> String) {
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

fn number(value: &Option<number_data_point::Value>) -> String {
    match value {
        Some(number_data_point::Value::AsInt(i)) => i.to_string(),
        Some(number_data_point::Value::AsDouble(d)) => d.to_string(),
        None => "-".into(),
    }
}

fn count_sum(count: u64, sum: Option<f64>) -> String {
    match sum {
        Some(sum) => format!("count={count} sum={sum}"),
        None => format!("count={count}"),
    }
}
