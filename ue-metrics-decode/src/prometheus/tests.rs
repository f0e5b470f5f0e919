//! Accumulation, restarts, expiry and rendering of the Prometheus state.

use std::time::{Duration, Instant};

use super::*;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use crate::proto::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric, number_data_point, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use crate::proto::resource::v1::Resource;

const DELTA: i32 = 1;
const CUMULATIVE: i32 = 2;
const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn shop() -> Vec<KeyValue> {
    vec![
        kv("service.name", "shop"),
        kv("service.namespace", "demo"),
        kv("service.instance.id", "i-1"),
        kv("host.name", "web-7"),
    ]
}

fn sum(name: &str, temporality: i32, monotonic: bool, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: "How many".into(),
        unit: "{request}".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    }
}

fn point(start: u64, time: u64, value: i64, route: &str) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![kv("http.route", route)],
        start_time_unix_nano: start,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    }
}

fn rendered(state: &PrometheusState) -> String {
    let mut out = String::new();
    render(state, &mut out);
    out
}

/// The value of the sample line that starts with `prefix` (exactly one).
fn sample(text: &str, prefix: &str) -> f64 {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "one line starting with {prefix} in\n{text}");
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

const SERIES: &str = r#"http_requests_total{job="demo/shop",instance="i-1",otel_scope_name="lib",otel_scope_version="1.0",http_route="/a"}"#;

#[test]
fn deltas_accumulate_into_a_counter_across_gaps() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    let add = |state: &mut PrometheusState, start, time, value| {
        state.add_request(
            &request(
                shop(),
                vec![sum(
                    "http.requests",
                    DELTA,
                    true,
                    vec![point(start, time, value, "/a")],
                )],
            ),
            now,
        )
    };
    add(&mut state, T0, T0 + SEC, 5);
    add(&mut state, T0 + SEC, T0 + 2 * SEC, 7);
    assert_eq!(sample(&rendered(&state), SERIES), 12.0);
    // The same delta again (a duplicate record): dropped, counted.
    add(&mut state, T0 + SEC, T0 + 2 * SEC, 7);
    assert_eq!(sample(&rendered(&state), SERIES), 12.0);
    assert_eq!(state.counts().dropped(DropReason::OutOfOrder), 1);
    // A start after the end of the last delta (quiet for a while, or a restarted producer):
    // still an increment of the same total.
    add(&mut state, T0 + 10 * SEC, T0 + 11 * SEC, 3);
    assert_eq!(sample(&rendered(&state), SERIES), 15.0);
    // Overlapping the last delta: dropped, counted.
    add(&mut state, T0 + 10 * SEC + 1, T0 + 12 * SEC, 4);
    assert_eq!(sample(&rendered(&state), SERIES), 15.0);
    assert_eq!(state.counts().dropped(DropReason::OutOfOrder), 2);
    assert_eq!(state.counts().resets, 0);
    assert_eq!(state.counts().points, 3);
    assert_eq!(state.series(), 1);
}

#[test]
fn cumulative_sums_are_taken_as_they_are_and_a_new_start_resets() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    let add = |state: &mut PrometheusState, start, time, value| {
        state.add_request(
            &request(
                shop(),
                vec![sum(
                    "http.requests",
                    CUMULATIVE,
                    true,
                    vec![point(start, time, value, "/a")],
                )],
            ),
            now,
        )
    };
    add(&mut state, T0, T0 + SEC, 5);
    add(&mut state, T0, T0 + 2 * SEC, 9);
    assert_eq!(sample(&rendered(&state), SERIES), 9.0);
    // An older point of the same run: dropped.
    add(&mut state, T0, T0 + SEC, 5);
    assert_eq!(sample(&rendered(&state), SERIES), 9.0);
    // A new start time: the producer restarted; its value is taken even though it is lower.
    add(&mut state, T0 + 5 * SEC, T0 + 6 * SEC, 2);
    assert_eq!(sample(&rendered(&state), SERIES), 2.0);
    assert_eq!(state.counts().resets, 1);
    // A late point of the old run: dropped.
    add(&mut state, T0, T0 + 3 * SEC, 11);
    assert_eq!(sample(&rendered(&state), SERIES), 2.0);
}

#[test]
fn up_down_counters_and_gauges_are_gauges() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    let gauge = Metric {
        name: "cpu.utilization".into(),
        unit: "1".into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: T0 + SEC,
                value: Some(number_data_point::Value::AsDouble(0.75)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    state.add_request(
        &request(
            shop(),
            vec![
                sum(
                    "queue.size",
                    CUMULATIVE,
                    false,
                    vec![point(T0, T0 + SEC, -4, "/a")],
                ),
                // Delta up-down counters are accumulated too (the running value is what a
                // gauge of it means).
                sum(
                    "inflight",
                    DELTA,
                    false,
                    vec![point(T0, T0 + SEC, 10, "/a")],
                ),
                gauge,
            ],
        ),
        now,
    );
    state.add_request(
        &request(
            shop(),
            vec![sum(
                "inflight",
                DELTA,
                false,
                vec![point(T0 + SEC, T0 + 2 * SEC, -3, "/a")],
            )],
        ),
        now,
    );
    let text = rendered(&state);
    assert!(text.contains("# TYPE queue_size gauge\n"), "{text}");
    assert_eq!(sample(&text, "queue_size{"), -4.0);
    assert_eq!(sample(&text, "inflight{"), 7.0);
    assert!(
        text.contains("# TYPE cpu_utilization_ratio gauge\n"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"cpu_utilization_ratio{job="demo/shop",instance="i-1",otel_scope_name="lib",otel_scope_version="1.0"}"#
        ),
        0.75
    );
    // target_info: job, instance and the other resource attributes.
    assert!(
        text.contains("# TYPE target_info gauge\ntarget_info{job=\"demo/shop\",instance=\"i-1\",host_name=\"web-7\"} 1\n"),
        "{text}"
    );
}

#[test]
fn help_and_type_once_per_family_and_labels_escaped_and_merged() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    let mut p = point(T0, T0 + SEC, 1, "/a");
    p.attributes = vec![kv("b.c", "x"), kv("b_c", "y\"\\\n"), kv("a", "1")];
    state.add_request(
        &request(
            shop(),
            vec![sum(
                "http.requests",
                CUMULATIVE,
                true,
                vec![p, point(T0, T0 + SEC, 2, "/b")],
            )],
        ),
        now,
    );
    let text = rendered(&state);
    assert_eq!(
        text.matches("# TYPE http_requests_total counter").count(),
        1,
        "{text}"
    );
    assert_eq!(
        text.matches("# HELP http_requests_total How many").count(),
        1,
        "{text}"
    );
    // `b.c` and `b_c` both become `b_c`: values joined with `;`, by original key.
    assert!(text.contains(r#"a="1",b_c="x;y\"\\\n"} 1"#), "{text}");
}

#[test]
fn a_name_reused_with_another_type_is_dropped() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    let gauge = Metric {
        name: "http.requests.total".into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                value: Some(number_data_point::Value::AsDouble(1.0)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    state.add_request(
        &request(
            shop(),
            vec![
                sum(
                    "http.requests",
                    CUMULATIVE,
                    true,
                    vec![point(T0, T0 + SEC, 1, "/a")],
                ),
                gauge,
            ],
        ),
        now,
    );
    assert_eq!(state.counts().dropped(DropReason::TypeConflict), 1);
    assert_eq!(
        rendered(&state)
            .matches("# TYPE http_requests_total")
            .count(),
        1
    );
}

#[test]
fn series_expire_and_memory_follows_live_series() {
    let mut state = PrometheusState::new(PrometheusOptions {
        expire_after: Duration::from_secs(60),
        ..PrometheusOptions::default()
    });
    let start = Instant::now();
    let routes: Vec<String> = (0..100).map(|i| format!("/r{i}")).collect();
    let points = routes.iter().map(|r| point(T0, T0 + SEC, 1, r)).collect();
    state.add_request(
        &request(shop(), vec![sum("http.requests", CUMULATIVE, true, points)]),
        start,
    );
    // 30 s later only /r0 is updated.
    state.add_request(
        &request(
            shop(),
            vec![sum(
                "http.requests",
                CUMULATIVE,
                true,
                vec![point(T0, T0 + 2 * SEC, 2, "/r0")],
            )],
        ),
        start + Duration::from_secs(30),
    );
    assert_eq!(state.expire(start + Duration::from_secs(59)), 0);
    assert_eq!(state.series(), 100);
    assert_eq!(state.expire(start + Duration::from_secs(61)), 99);
    assert_eq!(state.series(), 1);
    assert!(rendered(&state).contains("target_info"));
    assert_eq!(state.expire(start + Duration::from_secs(91)), 1);
    assert_eq!(state.series(), 0);
    assert_eq!(
        rendered(&state),
        "",
        "families and target_info go with their series"
    );
    assert_eq!(state.counts().series_expired, 100);
}

#[test]
fn the_series_limit_drops_new_series_only_and_counts_them() {
    let mut state = PrometheusState::new(PrometheusOptions {
        expire_after: Duration::from_secs(60),
        max_series: 3,
    });
    let start = Instant::now();
    let counter = |time: u64, value: i64, routes: &[&str]| {
        let points = routes.iter().map(|r| point(T0, time, value, r)).collect();
        request(shop(), vec![sum("http.requests", CUMULATIVE, true, points)])
    };
    // Five routes, room for three: the first three are taken, the other two dropped.
    state.add_request(
        &counter(T0 + SEC, 1, &["/a", "/b", "/c", "/d", "/e"]),
        start,
    );
    assert_eq!(state.series(), 3);
    assert_eq!(state.counts().dropped(DropReason::SeriesLimit), 2);
    assert_eq!(state.counts().points, 3);
    // At the limit, the series held go on updating; a new one is still dropped.
    let later = start + Duration::from_secs(30);
    state.add_request(&counter(T0 + 2 * SEC, 5, &["/a", "/f"]), later);
    assert_eq!(state.counts().dropped(DropReason::SeriesLimit), 3);
    let text = rendered(&state);
    assert!(text.contains("route=\"/a\"} 5"), "{text}");
    assert!(!text.contains("/d") && !text.contains("/f"), "{text}");
    // Expiry makes room (only /a was updated since the start): new series are taken again.
    assert_eq!(state.expire(start + Duration::from_secs(61)), 2);
    state.add_request(
        &counter(T0 + 3 * SEC, 7, &["/f", "/g", "/h"]),
        start + Duration::from_secs(62),
    );
    assert_eq!(state.series(), 3);
    assert_eq!(state.counts().dropped(DropReason::SeriesLimit), 4);
    // A metric first seen at the limit leaves no trace: no family, no `# TYPE` line.
    let other = vec![point(T0, T0 + 4 * SEC, 1, "/a")];
    state.add_request(
        &request(shop(), vec![sum("other.requests", CUMULATIVE, true, other)]),
        start + Duration::from_secs(63),
    );
    assert_eq!(state.counts().dropped(DropReason::SeriesLimit), 5);
    assert!(
        !rendered(&state).contains("other_requests"),
        "{}",
        rendered(&state)
    );
    // The drops are in the self-telemetry, by reason.
    let mut telemetry = String::new();
    render_self_telemetry(&state, &crate::DecodeStats::default(), &mut telemetry);
    assert!(
        telemetry.contains("ue_metrics_decode_points_dropped_total{reason=\"series_limit\"} 5"),
        "{telemetry}"
    );
    assert!(
        telemetry.contains("ue_metrics_decode_series_limit 3\n"),
        "{telemetry}"
    );
    // 0: no limit.
    let mut unlimited = PrometheusState::new(PrometheusOptions {
        max_series: 0,
        ..PrometheusOptions::default()
    });
    let routes: Vec<String> = (0..50).map(|i| format!("/r{i}")).collect();
    let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
    unlimited.add_request(&counter(T0 + SEC, 1, &routes), start);
    assert_eq!(unlimited.series(), 50);
    assert_eq!(unlimited.counts().dropped(DropReason::SeriesLimit), 0);
}

fn histogram_point(start: u64, time: u64, counts: Vec<u64>, sum: f64) -> HistogramDataPoint {
    HistogramDataPoint {
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: counts.iter().sum(),
        sum: Some(sum),
        bucket_counts: counts,
        explicit_bounds: vec![0.1, 0.5, 1.0],
        min: Some(0.05),
        ..Default::default()
    }
}

#[test]
fn delta_histograms_accumulate_into_cumulative_buckets() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    let metric = |p| Metric {
        name: "http.server.duration".into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![p],
            aggregation_temporality: DELTA,
        })),
        ..Default::default()
    };
    state.add_request(
        &request(
            shop(),
            vec![metric(histogram_point(
                T0,
                T0 + SEC,
                vec![1, 2, 1, 0],
                1.25,
            ))],
        ),
        now,
    );
    state.add_request(
        &request(
            shop(),
            vec![metric(histogram_point(
                T0 + SEC,
                T0 + 2 * SEC,
                vec![0, 0, 0, 1],
                2.0,
            ))],
        ),
        now,
    );
    let text = rendered(&state);
    let labels = r#"job="demo/shop",instance="i-1",otel_scope_name="lib",otel_scope_version="1.0""#;
    let expected = format!(
        "# TYPE http_server_duration_seconds histogram\n\
         http_server_duration_seconds_bucket{{{labels},le=\"0.1\"}} 1\n\
         http_server_duration_seconds_bucket{{{labels},le=\"0.5\"}} 3\n\
         http_server_duration_seconds_bucket{{{labels},le=\"1\"}} 4\n\
         http_server_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 5\n\
         http_server_duration_seconds_sum{{{labels}}} 3.25\n\
         http_server_duration_seconds_count{{{labels}}} 5\n"
    );
    assert!(text.contains(&expected), "{text}");
}

fn exponential(
    scale: i32,
    offset: i32,
    counts: Vec<u64>,
    negative: Option<(i32, Vec<u64>)>,
    zero: u64,
) -> ExponentialHistogramDataPoint {
    let positive_total: u64 = counts.iter().sum();
    let negative_total: u64 = negative.as_ref().map_or(0, |n| n.1.iter().sum());
    ExponentialHistogramDataPoint {
        start_time_unix_nano: T0,
        time_unix_nano: T0 + SEC,
        count: positive_total + negative_total + zero,
        sum: Some(10.0),
        scale,
        zero_count: zero,
        positive: Some(Buckets {
            offset,
            bucket_counts: counts,
        }),
        negative: negative.map(|(offset, bucket_counts)| Buckets {
            offset,
            bucket_counts,
        }),
        ..Default::default()
    }
}

fn buckets_of(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.contains("_bucket{"))
        .map(|l| {
            let le = l
                .split("le=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned();
            (le, l.rsplit(' ').next().unwrap().parse().unwrap())
        })
        .collect()
}

fn exponential_metric(temporality: i32, points: Vec<ExponentialHistogramDataPoint>) -> Metric {
    Metric {
        name: "payload.size".into(),
        unit: "By".into(),
        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: points,
            aggregation_temporality: temporality,
        })),
        ..Default::default()
    }
}

#[test]
fn exponential_histograms_become_classic_buckets_at_their_exact_bounds() {
    // Scale 1: base sqrt(2). Buckets 0, 1, 2 hold (1, 1.414], (1.414, 2], (2, 2.83].
    let mut state = PrometheusState::new(PrometheusOptions::default());
    state.add_request(
        &request(
            shop(),
            vec![exponential_metric(
                CUMULATIVE,
                vec![exponential(1, 0, vec![1, 0, 2], Some((1, vec![3])), 4)],
            )],
        ),
        Instant::now(),
    );
    let text = rendered(&state);
    let s2 = 2f64.sqrt();
    let expected: Vec<(String, f64)> = vec![
        // Negative bucket 1: [-2, -1.414): le = -1.414...
        (naming::format_float(-s2), 3.0),
        ("0".into(), 7.0),
        (naming::format_float(s2), 8.0),
        ("2".into(), 8.0),
        (naming::format_float(2.0 * s2), 10.0),
        ("+Inf".into(), 10.0),
    ];
    assert_eq!(buckets_of(&text), expected, "{text}");
    assert!(
        !text.contains("payload_size_bytes_sum"),
        "negative values: no monotonic _sum\n{text}"
    );
    assert_eq!(sample(&text, "payload_size_bytes_count{"), 10.0);
}

#[test]
fn exponential_deltas_merge_at_the_coarser_scale() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    // Scale 1, buckets 0..=3: (1, 1.41], (1.41, 2], (2, 2.83], (2.83, 4].
    state.add_request(
        &request(
            shop(),
            vec![exponential_metric(
                DELTA,
                vec![exponential(1, 0, vec![1, 2, 3, 4], None, 0)],
            )],
        ),
        now,
    );
    // Scale 0, next delta: bucket 1 = (2, 4].
    let mut next = exponential(0, 1, vec![5], None, 1);
    next.start_time_unix_nano = T0 + SEC;
    next.time_unix_nano = T0 + 2 * SEC;
    state.add_request(
        &request(shop(), vec![exponential_metric(DELTA, vec![next])]),
        now,
    );
    let text = rendered(&state);
    // At scale 0: (1, 2] = 1 + 2, (2, 4] = 3 + 4 + 5; zero bucket 1.
    let expected: Vec<(String, f64)> = vec![
        ("0".into(), 1.0),
        ("2".into(), 4.0),
        ("4".into(), 16.0),
        ("+Inf".into(), 16.0),
    ];
    assert_eq!(buckets_of(&text), expected, "{text}");
    assert_eq!(sample(&text, "payload_size_bytes_sum{"), 20.0);
}

#[test]
fn bounds_are_exact_powers() {
    use render::exponential_bound;
    assert_eq!(exponential_bound(3, 0), 8.0);
    assert_eq!(exponential_bound(-1, 0), 0.5);
    assert_eq!(exponential_bound(1, -2), 16.0);
    assert_eq!(exponential_bound(4, 2), 2.0);
    assert_eq!(exponential_bound(1, 3), 2f64.powf(0.125));
    assert_eq!(exponential_bound(100_000, -10), f64::INFINITY);
}

#[test]
fn self_telemetry_lists_source_and_series_counts() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    state.add_request(
        &request(
            shop(),
            vec![sum(
                "http.requests",
                DELTA,
                true,
                vec![point(T0, T0 + SEC, 1, "/a")],
            )],
        ),
        Instant::now(),
    );
    let stats = crate::DecodeStats {
        records: 3,
        decoded: 2,
        failed: 1,
        lost: 4,
        ..Default::default()
    };
    let mut text = String::new();
    render_self_telemetry(&state, &stats, &mut text);
    for (line, value) in [
        ("ue_metrics_decode_records_read_total ", 3.0),
        ("ue_metrics_decode_records_failed_total ", 1.0),
        ("ue_metrics_decode_records_lost_total ", 4.0),
        ("ue_metrics_decode_points_total ", 1.0),
        ("ue_metrics_decode_series ", 1.0),
        (
            "ue_metrics_decode_points_dropped_total{reason=\"out_of_order\"}",
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, line), value, "{line}");
    }
}

#[test]
fn without_an_instance_id_the_process_pid_tells_instances_apart() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    for pid in [100, 200] {
        let mut req = request(
            vec![kv("service.name", "shop")],
            vec![sum(
                "http.requests",
                CUMULATIVE,
                true,
                vec![point(T0, T0 + SEC, pid, "/a")],
            )],
        );
        crate::enrich::add_process_pid(&mut req, pid as u32);
        state.add_request(&req, now);
    }
    let text = rendered(&state);
    for pid in [100, 200] {
        let line = format!(
            r#"http_requests_total{{job="shop",instance="{pid}",otel_scope_name="lib",otel_scope_version="1.0",http_route="/a"}}"#
        );
        assert_eq!(sample(&text, &line), pid as f64, "{text}");
        assert!(
            text.contains(&format!(
                r#"target_info{{job="shop",instance="{pid}",process_pid="{pid}"}} 1"#
            )),
            "{text}"
        );
    }
}

#[test]
fn target_info_follows_changed_resource_attributes() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    let counter = || {
        sum(
            "http.requests",
            CUMULATIVE,
            true,
            vec![point(T0, T0 + SEC, 1, "/a")],
        )
    };
    state.add_request(&request(shop(), vec![counter()]), now);
    let mut moved = shop();
    moved[3] = kv("host.name", "web-8");
    state.add_request(&request(moved, vec![counter()]), now);
    let text = rendered(&state);
    assert_eq!(text.matches("target_info{").count(), 1, "{text}");
    assert!(text.contains(r#"host_name="web-8""#), "{text}");
}

/// Checks what a Prometheus scrape rejects: a label name outside `[a-zA-Z_][a-zA-Z0-9_]*`
/// (the text parser fails the whole scrape on it) and two samples of one series (one of them
/// is dropped as a duplicate).
fn assert_valid_exposition(text: &str) {
    let mut seen = std::collections::HashSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let series = line.rsplit_once(' ').unwrap().0;
        assert!(seen.insert(series), "duplicate series {series} in\n{text}");
        let labels = series.split_once('{').unwrap().1;
        let mut rest = labels.strip_suffix('}').unwrap();
        while !rest.is_empty() {
            let (name, after) = rest.split_once("=\"").unwrap();
            assert!(
                name.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "invalid label name {name:?} in {line}"
            );
            // Past the value: up to the first unescaped quote.
            let mut escaped = false;
            let end = after
                .char_indices()
                .find(|&(_, c)| {
                    let quote = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    quote
                })
                .unwrap()
                .0;
            rest = after[end + 1..].trim_start_matches(',');
        }
    }
}

/// Points a producer may well send must not make the exposition one a scrape rejects: an
/// attribute with an empty key (the SDK does not refuse one), an explicit `+Inf` bound, an
/// exponential bucket whose upper bound is past the `f64` range.
#[test]
fn odd_but_legal_points_keep_the_exposition_valid() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let now = Instant::now();
    let mut resource = shop();
    resource.push(kv("", "resource"));
    let mut g = point(0, T0, 1, "/x");
    g.attributes.push(kv("", "empty"));
    let gauge = Metric {
        name: "in.flight".into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![g],
        })),
        ..Default::default()
    };
    let mut h = histogram_point(T0, T0 + SEC, vec![1, 2, 0], 1.0);
    h.explicit_bounds = vec![1.0, f64::INFINITY];
    let histogram = Metric {
        name: "latency".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![h],
            aggregation_temporality: CUMULATIVE,
        })),
        ..Default::default()
    };
    // Scale 0: bucket 1023 holds (2^1023, 2^1024], and 2^1024 is past f64::MAX.
    let huge = exponential(0, 1022, vec![1, 1], None, 0);
    state.add_request(
        &request(
            resource,
            vec![gauge, histogram, exponential_metric(CUMULATIVE, vec![huge])],
        ),
        now,
    );
    let text = rendered(&state);
    assert_valid_exposition(&text);
    let labels = r#"job="demo/shop",instance="i-1",otel_scope_name="lib",otel_scope_version="1.0""#;
    assert_eq!(
        sample(
            &text,
            &format!(r#"in_flight{{{labels},_="empty",http_route="/x"}}"#)
        ),
        1.0
    );
    assert_eq!(
        buckets_of(&text)
            .into_iter()
            .filter(|(le, _)| le == "+Inf")
            .map(|(_, v)| v)
            .collect::<Vec<_>>(),
        [3.0, 2.0],
        "one +Inf bucket per histogram, holding the count:\n{text}"
    );
    assert!(
        text.contains(
            r#"target_info{job="demo/shop",instance="i-1",_="resource",host_name="web-7"} 1"#
        ),
        "{text}"
    );
}

/// Bounds that are not strictly increasing (as OTLP requires) cannot be rendered as buckets:
/// dropped and counted.
#[test]
fn histograms_with_unordered_bounds_are_dropped_and_counted() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    for bounds in [vec![1.0, 1.0], vec![2.0, 1.0], vec![f64::NAN, 1.0]] {
        let mut h = histogram_point(T0, T0 + SEC, vec![1, 2, 0], 1.0);
        h.explicit_bounds = bounds;
        let histogram = Metric {
            name: "latency".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![h],
                aggregation_temporality: CUMULATIVE,
            })),
            ..Default::default()
        };
        state.add_request(&request(shop(), vec![histogram]), Instant::now());
    }
    assert_eq!(state.counts().dropped(DropReason::Unsupported), 3);
    assert_eq!(state.series(), 0);
    assert_valid_exposition(&rendered(&state));
}

/// Points a receiver rejected in accepted requests (OTLP partial success) are data lost
/// downstream: the endpoint shows them next to the request outcomes, as the final summary does.
#[cfg(feature = "cli")]
#[test]
fn the_endpoint_shows_the_points_the_receiver_rejected() {
    let stats = crate::forward::ForwardStats {
        sent: 3,
        rejected_points: 5,
        ..Default::default()
    };
    let mut text = String::new();
    render_forward_telemetry(&stats, &mut text);
    assert_eq!(
        sample(&text, "ue_metrics_decode_forward_rejected_points_total"),
        5.0
    );
    assert!(
        text.contains("# TYPE ue_metrics_decode_forward_rejected_points_total counter\n"),
        "{text}"
    );
}

/// A histogram point without a sum (OTLP leaves it out when it is not known to be a sum of
/// non-negative values) has no `_sum` line: `_sum 0` would claim a sum that was never sent
/// (a mean of 0 on every dashboard).
#[test]
fn histograms_without_a_sum_have_no_sum_line() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let mut explicit = histogram_point(T0, T0 + SEC, vec![1, 2, 0, 0], 0.0);
    explicit.sum = None;
    let mut exponential_point = exponential(0, 0, vec![1, 1], None, 0);
    exponential_point.sum = None;
    let metrics = vec![
        Metric {
            name: "latency".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![explicit],
                aggregation_temporality: DELTA,
            })),
            ..Default::default()
        },
        exponential_metric(DELTA, vec![exponential_point]),
    ];
    state.add_request(&request(shop(), metrics), Instant::now());
    let text = rendered(&state);
    assert_eq!(text.matches("_count{").count(), 2, "{text}");
    assert!(!text.contains("_sum{"), "{text}");
}

/// Bounds without bucket counts are invalid OTLP (counts may be left out only when there are no
/// bounds): rendered, every bucket said 0 values were at or below its bound. Dropped, counted;
/// a histogram with neither still shows its count.
#[test]
fn histograms_with_bounds_but_no_bucket_counts_are_dropped_and_counted() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let histogram = |name: &str, bounds: Vec<f64>| {
        let mut h = histogram_point(T0, T0 + SEC, vec![], 1.0);
        h.count = 3;
        h.explicit_bounds = bounds;
        Metric {
            name: name.into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![h],
                aggregation_temporality: CUMULATIVE,
            })),
            ..Default::default()
        }
    };
    state.add_request(
        &request(
            shop(),
            vec![
                histogram("with.bounds", vec![1.0, 2.0]),
                histogram("without", vec![]),
            ],
        ),
        Instant::now(),
    );
    assert_eq!(state.counts().dropped(DropReason::Unsupported), 1);
    let text = rendered(&state);
    assert!(!text.contains("with_bounds_bucket"), "{text}");
    assert_eq!(
        buckets_of(&text),
        [("+Inf".to_owned(), 3.0)],
        "the count alone:\n{text}"
    );
}

/// A histogram series whose producer switched between explicit and exponential buckets (a
/// view changed, the producer restarted) starts again from the new point: counted as a reset
/// either way round, as changed explicit bounds are.
#[test]
fn a_histogram_switching_bucket_layout_is_counted_as_a_reset() {
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let explicit = |start, time| Metric {
        name: "payload.size".into(),
        unit: "By".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: vec![],
                ..histogram_point(start, time, vec![1, 0, 0, 0], 0.05)
            }],
            aggregation_temporality: DELTA,
        })),
        ..Default::default()
    };
    let mut exponential_point = exponential(0, 0, vec![1, 1], None, 0);
    exponential_point.start_time_unix_nano = T0 + SEC;
    exponential_point.time_unix_nano = T0 + 2 * SEC;
    let now = Instant::now();
    state.add_request(&request(shop(), vec![explicit(T0, T0 + SEC)]), now);
    state.add_request(
        &request(
            shop(),
            vec![exponential_metric(DELTA, vec![exponential_point])],
        ),
        now,
    );
    assert_eq!(state.counts().resets, 1);
    state.add_request(
        &request(shop(), vec![explicit(T0 + 2 * SEC, T0 + 3 * SEC)]),
        now,
    );
    assert_eq!(state.counts().resets, 2);
    assert_eq!(state.series(), 1);
}
