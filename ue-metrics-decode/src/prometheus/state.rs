//! The series a Prometheus endpoint serves, kept up to date from decoded requests.
//!
//! Every data point lands in one series, identified by its family name (see
//! [`naming`](super::naming)) and its label set: `job` and `instance` from the resource,
//! `otel_scope_name` and `otel_scope_version` from the scope, then the point's attributes.
//!
//! - Delta sums and histograms are accumulated into cumulative ones. A delta whose start time
//!   is at or after the end of the last one continues the series, gap or not (the SDKs start
//!   every delta of an instrument at its previous collection, so a series not recorded in one
//!   interval comes back after a gap; and a restarted producer's deltas are increments all the
//!   same); an earlier one (a duplicate or an overlapping point) is dropped and counted.
//! - Cumulative points replace the series' value; a new start time is a restart (the new value
//!   is taken, Prometheus sees a counter reset); a point older than the series' is dropped.
//! - Gauges keep the last value (by point time).
//! - Exponential histograms are kept in their own buckets (merged at the coarser scale when a
//!   delta's scale differs) and rendered as classic `le` buckets at render time.
//!
//! A series (and a `target_info` or `otel_scope_info` entry) not updated for
//! [`PrometheusOptions::expire_after`] is removed by [`PrometheusState::expire`], so memory
//! follows the live series.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use super::naming::{self, FamilyType};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::{any_value, KeyValue};
use crate::proto::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric, number_data_point, AggregationTemporality,
    ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint,
};

/// Settings of the conversion.
#[derive(Debug, Clone)]
pub struct PrometheusOptions {
    /// A series not updated for this long is removed (default 5 minutes).
    pub expire_after: Duration,
    /// The most series held at once, over every family (default [`DEFAULT_MAX_SERIES`]; 0: no
    /// limit). At the limit a point of a new series is dropped and counted
    /// ([`DropReason::SeriesLimit`]); the series already held go on updating, and new ones are
    /// taken again once expiry has made room. It bounds memory and the size of every scrape
    /// when a producer puts an unbounded value (a request id, a timestamp) into an attribute.
    pub max_series: usize,
}

/// Default of [`PrometheusOptions::max_series`]: about 110 MiB of series and a 120 MB scrape
/// (measured: 54 MiB and 60 MB for 100,000 W2-shaped series).
pub const DEFAULT_MAX_SERIES: usize = 200_000;

impl Default for PrometheusOptions {
    fn default() -> Self {
        PrometheusOptions {
            expire_after: Duration::from_secs(300),
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

/// Why a data point did not change any series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// Older than (or overlapping) what the series already holds.
    OutOfOrder,
    /// Its family name is already used by a metric of another type.
    TypeConflict,
    /// A summary, a point with no value or flagged "no recorded value", or a histogram whose
    /// bucket counts do not match its bounds (bounds without counts included) or whose bounds
    /// are not strictly increasing.
    Unsupported,
    /// It would have started a new series while [`PrometheusOptions::max_series`] are held.
    SeriesLimit,
}

impl DropReason {
    /// The `reason` label of the self-telemetry.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::OutOfOrder => "out_of_order",
            DropReason::TypeConflict => "type_conflict",
            DropReason::Unsupported => "unsupported",
            DropReason::SeriesLimit => "series_limit",
        }
    }

    /// Every reason, in index order.
    pub const ALL_REASONS: [DropReason; 4] = [
        DropReason::OutOfOrder,
        DropReason::TypeConflict,
        DropReason::Unsupported,
        DropReason::SeriesLimit,
    ];
}

/// Running counts of the conversion (the endpoint's self-telemetry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrometheusCounts {
    /// Data points that updated a series.
    pub points: u64,
    /// Data points dropped, by reason (indexed like [`DropReason`]'s variants).
    pub dropped: [u64; DropReason::ALL_REASONS.len()],
    /// Series created.
    pub series_created: u64,
    /// Series removed by expiry.
    pub series_expired: u64,
    /// Series started again (a cumulative producer restart, changed histogram bounds or
    /// bucket layout).
    pub resets: u64,
}

impl PrometheusCounts {
    /// Points dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }

    /// Series held now: every series is created once and leaves only by expiry.
    fn live_series(&self) -> u64 {
        self.series_created - self.series_expired
    }
}

/// What every point of one request is taken under: the time it is seen at, and the most
/// series that may be held ([`PrometheusOptions::max_series`]; `u64::MAX` for no limit).
#[derive(Debug, Clone, Copy)]
struct Intake {
    now: Instant,
    max_series: u64,
}

/// A multiply-rotate hash over 8-byte words (the scheme of rustc's FxHash): several times
/// faster than SipHash on the ~200-byte label texts that key the series. Keys come from the
/// local producers the agent serves, so flooding resistance buys nothing here.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LabelHasher(u64);

impl Hasher for LabelHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.0 =
            (self.0.rotate_left(5) ^ u64::from_le_bytes(tail) ^ bytes.len() as u64).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Maps keyed by label text.
pub(crate) type LabelMap<V> = HashMap<String, V, BuildHasherDefault<LabelHasher>>;

/// Values of one series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SeriesValue {
    /// A counter's cumulative value or a gauge's value.
    Number(f64),
    /// An explicit-bucket histogram.
    Histogram(ExplicitHistogram),
    /// A base-2 exponential histogram.
    Exponential(ExponentialHistogram),
}

/// Cumulative explicit-bucket histogram.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExplicitHistogram {
    pub bounds: Vec<f64>,
    /// One more than `bounds` (the last is `(bounds.last(), +Inf)`).
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
    /// `_sum` is left out: a negative value may have been recorded (the sum is then not
    /// monotonic, as the specification says) or a point came without a sum.
    pub no_sum: bool,
}

/// Dense run of exponential buckets: `counts[k]` is bucket `offset + k`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Dense {
    pub offset: i32,
    pub counts: Vec<u64>,
}

/// Cumulative base-2 exponential histogram.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExponentialHistogram {
    pub scale: i32,
    pub zero_count: u64,
    pub zero_threshold: f64,
    pub positive: Dense,
    pub negative: Dense,
    pub count: u64,
    pub sum: f64,
    /// As [`ExplicitHistogram::no_sum`].
    pub no_sum: bool,
}

/// One series.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Start time of the cumulative value (ns).
    pub start: u64,
    /// Time of the last point taken (ns).
    pub time: u64,
    /// When it was last updated (for expiry).
    pub seen: Instant,
    pub value: SeriesValue,
}

/// All series of one Prometheus metric name.
#[derive(Debug)]
pub(crate) struct Family {
    pub kind: FamilyType,
    pub help: String,
    /// Series by label text (`job="...",instance="...",...`, the text inside `{}`).
    pub series: LabelMap<Series>,
}

/// A `target_info` or `otel_scope_info` line: its labels and when it was last seen.
#[derive(Debug)]
pub(crate) struct InfoEntry {
    pub labels: String,
    pub seen: Instant,
}

/// The series of a Prometheus endpoint. Feed it with [`add_request`](Self::add_request),
/// render with [`render`](fn@super::render).
#[derive(Debug, Default)]
pub struct PrometheusState {
    pub(crate) options: PrometheusOptions,
    pub(crate) families: HashMap<String, Family>,
    /// `target_info` by `job`/`instance` label text.
    pub(crate) targets: LabelMap<InfoEntry>,
    /// `otel_scope_info` by label text.
    pub(crate) scopes: LabelMap<InfoEntry>,
    pub(crate) counts: PrometheusCounts,
    scratch: Scratch,
}

/// Buffers reused from point to point (no allocation for a series that exists).
#[derive(Debug, Default)]
struct Scratch {
    key: String,
    names: Vec<(String, usize)>,
    value: String,
    label_names: LabelNames,
}

/// Label names by attribute key (sanitized, `exported_` prefix applied): producers repeat the
/// same few keys on every point, and sanitizing costs more than a lookup. Cleared when it
/// reaches [`LabelNames::MAX`] keys, so a producer with ever new keys cannot grow it.
#[derive(Debug, Default)]
struct LabelNames(LabelMap<String>);

impl LabelNames {
    const MAX: usize = 4096;

    /// Appends the label name of attribute `key` to `out`.
    fn push(&mut self, out: &mut String, key: &str) {
        if let Some(name) = self.0.get(key) {
            out.push_str(name);
            return;
        }
        let mut name = String::with_capacity(key.len());
        naming::push_label_name(&mut name, key);
        if RESERVED_LABELS.contains(&name.as_str()) {
            name.insert_str(0, "exported_");
        }
        out.push_str(&name);
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0.insert(key.to_owned(), name);
    }
}

/// Labels attributes may not take (they are set by the conversion); such attributes get an
/// `exported_` prefix.
const RESERVED_LABELS: [&str; 5] = [
    "job",
    "instance",
    "le",
    "otel_scope_name",
    "otel_scope_version",
];

/// Resource attributes that make `job` and `instance` rather than `target_info` labels.
const IDENTIFYING: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .rev()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

/// Appends `,name="value"` for every attribute (sanitized names; attributes whose names
/// collide are joined with `;` in the order of their original keys, as the specification
/// says).
fn push_attribute_labels(
    out: &mut String,
    attributes: &[KeyValue],
    skip: &[&str],
    names: &mut Vec<(String, usize)>,
    value: &mut String,
    label_names: &mut LabelNames,
) {
    let mut used = 0;
    for (i, kv) in attributes.iter().enumerate() {
        if skip.contains(&kv.key.as_str()) {
            continue;
        }
        if used == names.len() {
            names.push((String::new(), 0));
        }
        let entry = &mut names[used];
        entry.0.clear();
        label_names.push(&mut entry.0, &kv.key);
        entry.1 = i;
        used += 1;
    }
    let entries = &mut names[..used];
    if used > 1 {
        entries.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| attributes[a.1].key.cmp(&attributes[b.1].key))
        });
    }
    let mut k = 0;
    while k < used {
        let name = &entries[k].0;
        out.push(',');
        out.push_str(name);
        out.push_str("=\"");
        let mut first = true;
        while k < used && entries[k].0 == *name {
            if !first {
                out.push(';');
            }
            first = false;
            let kv = &attributes[entries[k].1];
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => naming::push_label_value(out, s),
                _ => {
                    value.clear();
                    naming::push_attribute_value(value, kv.value.as_ref());
                    naming::push_label_value(out, value);
                }
            }
            k += 1;
        }
        out.push('"');
    }
}

/// What to do with a point given the series it lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// Add the delta to the series.
    Accumulate,
    /// Take the point's value and start time (first point, cumulative update or restart).
    Replace,
    /// A restart: take the point's value and start time, and count a reset.
    Reset,
    Drop,
}

fn decide(s: &Series, start: u64, time: u64, delta: bool) -> Merge {
    if delta {
        if start == 0 {
            // No start time: only the order of the points tells.
            return if time > s.time {
                Merge::Accumulate
            } else {
                Merge::Drop
            };
        }
        // A gap (`start > s.time`) is time in which nothing was recorded: still increments
        // of the same total. Restarting the cumulative value there made it drop to this delta,
        // and Prometheus undercounts `increase()` whenever the delta is above the old total.
        if start >= s.time {
            Merge::Accumulate
        } else {
            Merge::Drop
        }
    } else if start != 0 && start > s.start {
        Merge::Reset
    } else if (start == s.start || start == 0) && time >= s.time {
        Merge::Replace
    } else {
        Merge::Drop
    }
}

impl PrometheusState {
    /// An empty state.
    pub fn new(options: PrometheusOptions) -> PrometheusState {
        PrometheusState {
            options,
            ..PrometheusState::default()
        }
    }

    /// Running counts.
    pub fn counts(&self) -> &PrometheusCounts {
        &self.counts
    }

    /// Number of series held (every family).
    pub fn series(&self) -> usize {
        self.families.values().map(|f| f.series.len()).sum()
    }

    /// Adds every data point of `request`, seen at `now`.
    pub fn add_request(&mut self, request: &ExportMetricsServiceRequest, now: Instant) {
        let mut scratch = std::mem::take(&mut self.scratch);
        for rm in &request.resource_metrics {
            let resource: &[KeyValue] = rm
                .resource
                .as_ref()
                .map_or(&[], |r| r.attributes.as_slice());
            // `job` and `instance`: <service.namespace>/<service.name>, service.instance.id.
            let mut base = String::with_capacity(64);
            base.push_str("job=\"");
            if let Some(ns) =
                string_attribute(resource, "service.namespace").filter(|s| !s.is_empty())
            {
                naming::push_label_value(&mut base, ns);
                base.push('/');
            }
            naming::push_label_value(
                &mut base,
                string_attribute(resource, "service.name").unwrap_or(""),
            );
            base.push_str("\",instance=\"");
            match string_attribute(resource, "service.instance.id") {
                Some(id) => naming::push_label_value(&mut base, id),
                // No instance id: the process id (which the agent adds from the sample) keeps
                // two processes of one app apart.
                None => {
                    let pid = resource.iter().rev().find(|kv| kv.key == "process.pid");
                    if let Some(any_value::Value::IntValue(pid)) =
                        pid.and_then(|kv| kv.value.as_ref()?.value.as_ref())
                    {
                        let _ = write!(base, "{pid}");
                    }
                }
            }
            base.push('"');
            if resource
                .iter()
                .any(|kv| !IDENTIFYING.contains(&kv.key.as_str()))
            {
                self.touch_target(&base, resource, &mut scratch, now);
            }
            for sm in &rm.scope_metrics {
                let mut scoped = base.clone();
                let mut scope_labels = String::new();
                if let Some(scope) = &sm.scope {
                    scope_labels.push_str("otel_scope_name=\"");
                    naming::push_label_value(&mut scope_labels, &scope.name);
                    scope_labels.push_str("\",otel_scope_version=\"");
                    naming::push_label_value(&mut scope_labels, &scope.version);
                    scope_labels.push('"');
                    scoped.push(',');
                    scoped.push_str(&scope_labels);
                    if !scope.attributes.is_empty() {
                        let mut labels = scope_labels.clone();
                        push_attribute_labels(
                            &mut labels,
                            &scope.attributes,
                            &[],
                            &mut scratch.names,
                            &mut scratch.value,
                            &mut scratch.label_names,
                        );
                        upsert_info(&mut self.scopes, labels.clone(), labels, now);
                    }
                }
                for m in &sm.metrics {
                    self.add_metric(m, &scoped, &mut scratch, now);
                }
            }
        }
        self.scratch = scratch;
    }

    fn touch_target(
        &mut self,
        base: &str,
        resource: &[KeyValue],
        scratch: &mut Scratch,
        now: Instant,
    ) {
        // Built every time (once per resource and request, not per point): a producer that
        // changed its other resource attributes under the same job/instance shows the new ones.
        let mut labels = base.to_owned();
        push_attribute_labels(
            &mut labels,
            resource,
            &IDENTIFYING,
            &mut scratch.names,
            &mut scratch.value,
            &mut scratch.label_names,
        );
        match self.targets.get_mut(base) {
            Some(entry) => {
                entry.seen = now;
                if entry.labels != labels {
                    entry.labels = labels;
                }
            }
            None => upsert_info(&mut self.targets, base.to_owned(), labels, now),
        }
    }

    fn add_metric(
        &mut self,
        m: &crate::proto::metrics::v1::Metric,
        scoped: &str,
        scratch: &mut Scratch,
        now: Instant,
    ) {
        let Some(data) = &m.data else { return };
        let (kind, count) = match data {
            metric::Data::Gauge(g) => (FamilyType::Gauge, g.data_points.len()),
            metric::Data::Sum(s) if s.is_monotonic => (FamilyType::Counter, s.data_points.len()),
            metric::Data::Sum(s) => (FamilyType::Gauge, s.data_points.len()),
            metric::Data::Histogram(h) => (FamilyType::Histogram, h.data_points.len()),
            metric::Data::ExponentialHistogram(h) => (FamilyType::Histogram, h.data_points.len()),
            metric::Data::Summary(s) => {
                self.drop_points(DropReason::Unsupported, s.data_points.len());
                return;
            }
        };
        let name = naming::family_name(&m.name, &m.unit, kind);
        let max_series = match self.options.max_series {
            0 => u64::MAX,
            n => n as u64,
        };
        if self.counts.live_series() >= max_series && !self.families.contains_key(&name) {
            // Every point would start a series: no family either (an empty one would render a
            // bare `# TYPE` and claim the name's type).
            self.drop_points(DropReason::SeriesLimit, count);
            return;
        }
        let family = self.families.entry(name).or_insert_with(|| Family {
            kind,
            help: m.description.clone(),
            series: LabelMap::default(),
        });
        if family.kind != kind {
            self.counts.dropped[DropReason::TypeConflict as usize] += count as u64;
            return;
        }
        let counts = &mut self.counts;
        let intake = Intake { now, max_series };
        match data {
            metric::Data::Gauge(g) => {
                for p in &g.data_points {
                    add_number(family, counts, scratch, scoped, p, Temporal::Gauge, intake);
                }
            }
            metric::Data::Sum(s) => {
                let delta = s.aggregation_temporality == AggregationTemporality::Delta as i32;
                for p in &s.data_points {
                    let temporal = if delta {
                        Temporal::Delta
                    } else {
                        Temporal::Cumulative
                    };
                    add_number(family, counts, scratch, scoped, p, temporal, intake);
                }
            }
            metric::Data::Histogram(h) => {
                let delta = h.aggregation_temporality == AggregationTemporality::Delta as i32;
                for p in &h.data_points {
                    add_histogram(family, counts, scratch, scoped, p, delta, intake);
                }
            }
            metric::Data::ExponentialHistogram(h) => {
                let delta = h.aggregation_temporality == AggregationTemporality::Delta as i32;
                for p in &h.data_points {
                    add_exponential(family, counts, scratch, scoped, p, delta, intake);
                }
            }
            metric::Data::Summary(_) => {}
        }
    }

    fn drop_points(&mut self, reason: DropReason, n: usize) {
        self.counts.dropped[reason as usize] += n as u64;
    }

    /// Removes what was not updated for `expire_after` before `now`; returns how many series
    /// went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let ttl = self.options.expire_after;
        let live = |seen: Instant| now.saturating_duration_since(seen) < ttl;
        let mut expired = 0;
        self.families.retain(|_, family| {
            let before = family.series.len();
            family.series.retain(|_, s| live(s.seen));
            expired += before - family.series.len();
            !family.series.is_empty()
        });
        self.targets.retain(|_, e| live(e.seen));
        self.scopes.retain(|_, e| live(e.seen));
        self.counts.series_expired += expired as u64;
        expired
    }
}

fn upsert_info(map: &mut LabelMap<InfoEntry>, key: String, labels: String, now: Instant) {
    map.entry(key)
        .and_modify(|e| e.seen = now)
        .or_insert(InfoEntry { labels, seen: now });
}

/// Point flag: no recorded value (a staleness marker).
const NO_RECORDED_VALUE: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Temporal {
    Gauge,
    Delta,
    Cumulative,
}

/// Builds the series key of a point into `scratch.key`.
fn series_key(scratch: &mut Scratch, scoped: &str, attributes: &[KeyValue]) {
    scratch.key.clear();
    scratch.key.push_str(scoped);
    push_attribute_labels(
        &mut scratch.key,
        attributes,
        &[],
        &mut scratch.names,
        &mut scratch.value,
        &mut scratch.label_names,
    );
}

/// A point's times and temporality.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    start: u64,
    time: u64,
    delta: bool,
}

/// Finds the series for `key` and applies the point: a new series gets `initial()` (unless
/// the series limit is reached); an existing one gets `update(series, merge)` unless the point
/// is dropped. One hash lookup per point.
fn apply(
    family: &mut Family,
    counts: &mut PrometheusCounts,
    key: &str,
    stamp: Stamp,
    intake: Intake,
    initial: impl FnOnce() -> SeriesValue,
    update: impl FnOnce(&mut Series, Merge, &mut PrometheusCounts),
) {
    let Stamp { start, time, delta } = stamp;
    match family.series.get_mut(key) {
        Some(series) => {
            let merge = decide(series, start, time, delta);
            if merge == Merge::Drop {
                counts.dropped[DropReason::OutOfOrder as usize] += 1;
                return;
            }
            counts.points += 1;
            if merge == Merge::Reset {
                counts.resets += 1;
            }
            if merge != Merge::Accumulate {
                series.start = start;
            }
            series.time = series.time.max(time);
            series.seen = intake.now;
            update(series, merge, counts);
        }
        None if counts.live_series() >= intake.max_series => {
            counts.dropped[DropReason::SeriesLimit as usize] += 1;
        }
        None => {
            counts.points += 1;
            counts.series_created += 1;
            family.series.insert(
                key.to_owned(),
                Series {
                    start,
                    time,
                    seen: intake.now,
                    value: initial(),
                },
            );
        }
    }
}

fn add_number(
    family: &mut Family,
    counts: &mut PrometheusCounts,
    scratch: &mut Scratch,
    scoped: &str,
    p: &NumberDataPoint,
    temporal: Temporal,
    intake: Intake,
) {
    let value = match p.value {
        _ if p.flags & NO_RECORDED_VALUE != 0 => None,
        Some(number_data_point::Value::AsDouble(v)) => Some(v),
        Some(number_data_point::Value::AsInt(v)) => Some(v as f64),
        None => None,
    };
    let Some(value) = value else {
        counts.dropped[DropReason::Unsupported as usize] += 1;
        return;
    };
    series_key(scratch, scoped, &p.attributes);
    let delta = temporal == Temporal::Delta;
    let start = if temporal == Temporal::Gauge {
        0
    } else {
        p.start_time_unix_nano
    };
    let stamp = Stamp {
        start,
        time: p.time_unix_nano,
        delta,
    };
    let initial = || SeriesValue::Number(value);
    apply(
        family,
        counts,
        &scratch.key,
        stamp,
        intake,
        initial,
        |series, merge, _| {
            if let SeriesValue::Number(v) = &mut series.value {
                if merge == Merge::Accumulate {
                    *v += value;
                } else {
                    *v = value;
                }
            }
        },
    );
}

fn add_histogram(
    family: &mut Family,
    counts: &mut PrometheusCounts,
    scratch: &mut Scratch,
    scoped: &str,
    p: &HistogramDataPoint,
    delta: bool,
    intake: Intake,
) {
    // Bounds must be strictly increasing (OTLP says so; NaN is not): others would render as
    // repeated or unordered `le` buckets. Bucket counts may be left out only when there are no
    // bounds (then only the count is known).
    let no_buckets = p.bucket_counts.is_empty() && p.explicit_bounds.is_empty();
    if p.flags & NO_RECORDED_VALUE != 0
        || (!no_buckets && p.bucket_counts.len() != p.explicit_bounds.len() + 1)
        || !p.explicit_bounds.windows(2).all(|w| w[0] < w[1])
        || p.explicit_bounds.iter().any(|b| b.is_nan())
    {
        counts.dropped[DropReason::Unsupported as usize] += 1;
        return;
    }
    let no_sum = p.sum.is_none_or(|s| s < 0.0)
        || p.min.is_some_and(|m| m < 0.0)
        || (p.min.is_none()
            && p.explicit_bounds.first().is_some_and(|b| *b <= 0.0)
            && p.bucket_counts.first().is_some_and(|c| *c > 0));
    let fresh = || {
        SeriesValue::Histogram(ExplicitHistogram {
            bounds: p.explicit_bounds.clone(),
            counts: if p.bucket_counts.is_empty() {
                vec![0; p.explicit_bounds.len() + 1]
            } else {
                p.bucket_counts.clone()
            },
            count: p.count,
            sum: p.sum.unwrap_or(0.0),
            no_sum,
        })
    };
    series_key(scratch, scoped, &p.attributes);
    let stamp = Stamp {
        start: p.start_time_unix_nano,
        time: p.time_unix_nano,
        delta,
    };
    apply(
        family,
        counts,
        &scratch.key,
        stamp,
        intake,
        fresh,
        |series, merge, counts| {
            match &mut series.value {
                SeriesValue::Histogram(h)
                    if merge == Merge::Accumulate && h.bounds == p.explicit_bounds =>
                {
                    for (c, add) in h.counts.iter_mut().zip(&p.bucket_counts) {
                        *c += add;
                    }
                    h.count += p.count;
                    h.sum += p.sum.unwrap_or(0.0);
                    h.no_sum |= no_sum;
                }
                SeriesValue::Histogram(h) if h.bounds == p.explicit_bounds => {
                    // A cumulative update or restart: copy in place (no allocation).
                    match p.bucket_counts.is_empty() {
                        true => h.counts.iter_mut().for_each(|c| *c = 0),
                        false => h.counts.clone_from(&p.bucket_counts),
                    }
                    h.count = p.count;
                    h.sum = p.sum.unwrap_or(0.0);
                    h.no_sum = no_sum;
                }
                value => {
                    if merge == Merge::Accumulate {
                        // Bounds (or the bucket layout) changed between deltas: start again
                        // from this one.
                        counts.resets += 1;
                        series.start = p.start_time_unix_nano;
                    }
                    *value = fresh();
                }
            }
        },
    );
}

impl Dense {
    fn from_buckets(b: Option<&Buckets>) -> Dense {
        match b {
            Some(b) => Dense {
                offset: b.offset,
                counts: b.bucket_counts.clone(),
            },
            None => Dense::default(),
        }
    }

    /// Lowers the resolution by `by` scale steps: bucket `i` becomes `i >> by`.
    fn downscale(&mut self, by: u32) {
        if by == 0 || self.counts.is_empty() {
            return;
        }
        let by = by.min(62);
        let first = i64::from(self.offset) >> by;
        let last = (i64::from(self.offset) + self.counts.len() as i64 - 1) >> by;
        let mut merged = vec![0u64; (last - first + 1) as usize];
        for (k, c) in self.counts.iter().enumerate() {
            let index = (i64::from(self.offset) + k as i64) >> by;
            merged[(index - first) as usize] += c;
        }
        self.offset = first as i32;
        self.counts = merged;
    }

    /// Adds `other` (same scale).
    fn add(&mut self, other: &Dense) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            *self = other.clone();
            return;
        }
        let first = self.offset.min(other.offset);
        let end = (i64::from(self.offset) + self.counts.len() as i64)
            .max(i64::from(other.offset) + other.counts.len() as i64);
        let mut merged = vec![0u64; (end - i64::from(first)) as usize];
        for d in [&*self, other] {
            let at = (d.offset - first) as usize;
            for (k, c) in d.counts.iter().enumerate() {
                merged[at + k] += c;
            }
        }
        self.offset = first;
        self.counts = merged;
    }
}

impl ExponentialHistogram {
    fn from_point(p: &ExponentialHistogramDataPoint) -> ExponentialHistogram {
        let negative = Dense::from_buckets(p.negative.as_ref());
        ExponentialHistogram {
            scale: p.scale,
            zero_count: p.zero_count,
            zero_threshold: p.zero_threshold,
            no_sum: p.sum.is_none()
                || negative.counts.iter().any(|c| *c > 0)
                || p.min.is_some_and(|m| m < 0.0),
            positive: Dense::from_buckets(p.positive.as_ref()),
            negative,
            count: p.count,
            sum: p.sum.unwrap_or(0.0),
        }
    }

    /// Adds a delta, first bringing both to the coarser scale.
    fn add(&mut self, mut other: ExponentialHistogram) {
        let scale = self.scale.min(other.scale);
        for h in [&mut *self, &mut other] {
            let by = (h.scale - scale) as u32;
            h.positive.downscale(by);
            h.negative.downscale(by);
            h.scale = scale;
        }
        self.positive.add(&other.positive);
        self.negative.add(&other.negative);
        self.zero_count += other.zero_count;
        self.zero_threshold = self.zero_threshold.max(other.zero_threshold);
        self.count += other.count;
        self.sum += other.sum;
        self.no_sum |= other.no_sum;
    }
}

/// Scales Prometheus' `le` rendering can compute bounds for without overflowing `i32` math.
const SCALES: std::ops::RangeInclusive<i32> = -10..=20;

fn add_exponential(
    family: &mut Family,
    counts: &mut PrometheusCounts,
    scratch: &mut Scratch,
    scoped: &str,
    p: &ExponentialHistogramDataPoint,
    delta: bool,
    intake: Intake,
) {
    if p.flags & NO_RECORDED_VALUE != 0 || !SCALES.contains(&p.scale) {
        counts.dropped[DropReason::Unsupported as usize] += 1;
        return;
    }
    series_key(scratch, scoped, &p.attributes);
    let fresh = || SeriesValue::Exponential(ExponentialHistogram::from_point(p));
    let stamp = Stamp {
        start: p.start_time_unix_nano,
        time: p.time_unix_nano,
        delta,
    };
    apply(
        family,
        counts,
        &scratch.key,
        stamp,
        intake,
        fresh,
        |series, merge, counts| match &mut series.value {
            SeriesValue::Exponential(h) if merge == Merge::Accumulate => {
                h.add(ExponentialHistogram::from_point(p))
            }
            value => {
                if merge == Merge::Accumulate {
                    // Explicit buckets before: start again from this delta.
                    counts.resets += 1;
                    series.start = p.start_time_unix_nano;
                }
                *value = fresh();
            }
        },
    );
}

#[cfg(test)]
mod label_name_tests {
    use super::LabelNames;

    #[test]
    fn label_names_are_cached_sanitized_and_bounded() {
        let mut names = LabelNames::default();
        for round in 0..2 {
            let mut out = String::new();
            names.push(&mut out, "http.route");
            out.push(' ');
            names.push(&mut out, "job");
            assert_eq!(out, "http_route exported_job", "round {round}");
        }
        // A producer with ever new keys: the cache is cleared, never larger than MAX.
        for i in 0..LabelNames::MAX * 2 + 1 {
            let mut out = String::new();
            names.push(&mut out, &format!("key.{i}"));
            assert_eq!(out, format!("key_{i}"));
            assert!(names.0.len() <= LabelNames::MAX);
        }
    }
}
