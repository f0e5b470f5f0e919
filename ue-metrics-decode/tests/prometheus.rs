//! `--prometheus`: data made by the real SDK (delta temporality, two collections), written as
//! kernel trace lines, served by the CLI and scraped by a real Prometheus (Debian's
//! `prometheus` package), whose query API must return the values recorded. The exposition is
//! also read by an independent parser (Python's `prometheus_client`, Debian's
//! `python3-prometheus-client`). Each outside program is skipped, with a message, only when it is
//! not installed.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader as _;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, ManualReader, SdkMeterProvider, Stream, Temporality,
};
use opentelemetry_sdk::Resource;
use otlp_metrics_encode::workloads::SharedReader;
use otlp_metrics_encode::MetricsEncoder;
use serde_json::Value;
use ue_metrics_decode::ftrace::format_trace_line;
use ue_metrics_decode::payload::encode_payload;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ue-metrics-prom-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A manual reader asking for delta temporality, shareable with a provider.
fn delta_reader() -> SharedReader {
    SharedReader(Arc::new(
        ManualReader::builder()
            .with_temporality(Temporality::Delta)
            .build(),
    ))
}

/// Two delta collections of one SDK pipeline: every instrument kind Prometheus shows.
fn sdk_collections() -> Vec<ResourceMetrics> {
    let reader = delta_reader();
    let resource = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "shop"),
            KeyValue::new("service.namespace", "demo"),
            KeyValue::new("service.instance.id", "i-1"),
            KeyValue::new("host.name", "web-7"),
        ])
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader.clone())
        .with_view(|instrument: &Instrument| {
            (instrument.name() == "payload.size").then(|| {
                Stream::builder()
                    .with_aggregation(Aggregation::Base2ExponentialHistogram {
                        max_size: 160,
                        max_scale: 0,
                        record_min_max: true,
                    })
                    .build()
                    .unwrap()
            })
        })
        .build();
    let meter = provider.meter_with_scope(
        InstrumentationScope::builder("shop.lib")
            .with_version("1.2.3")
            .build(),
    );
    let requests = meter
        .u64_counter("http.requests")
        .with_unit("{request}")
        .with_description("Requests handled")
        .build();
    let queue = meter
        .i64_up_down_counter("queue.size")
        .with_unit("{item}")
        .build();
    let temperature = meter.f64_gauge("temperature").with_unit("Cel").build();
    let duration = meter
        .f64_histogram("http.server.duration")
        .with_unit("s")
        .with_boundaries(vec![0.1, 0.5, 1.0])
        .build();
    let size = meter.f64_histogram("payload.size").with_unit("By").build();
    let route = [KeyValue::new("http.route", "/a")];

    let mut collections = Vec::new();
    let mut collect = || {
        let mut rm = ResourceMetrics::default();
        reader.collect(&mut rm).unwrap();
        collections.push(rm);
    };
    requests.add(5, &route);
    queue.add(10, &[]);
    temperature.record(21.5, &[]);
    for v in [0.05, 0.2, 0.3, 0.7] {
        duration.record(v, &route);
    }
    for v in [1.0, 2.0, 4.0, 8.0] {
        size.record(v, &[]);
    }
    collect();
    requests.add(7, &route);
    queue.add(-3, &[]);
    temperature.record(23.0, &[]);
    duration.record(2.0, &route);
    size.record(3.0, &[]);
    collect();
    drop(provider);
    collections
}

/// The collections as the kernel's `trace` shows the events.
fn write_trace(path: &Path) {
    let mut encoder = MetricsEncoder::new();
    let mut text = String::new();
    for (i, rm) in sdk_collections().iter().enumerate() {
        let payload = encode_payload(encoder.encode_request(rm));
        let prefix = format!("           shop-4242    [000] .....  10{i}.000000");
        text.push_str(&format_trace_line(&prefix, "otlp_metrics", &payload).unwrap());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Kills (SIGKILL) a child process of this test when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ue-metrics-decode trace FILE --prometheus 127.0.0.1:0`; returns the child, the
/// address it serves, and its remaining stderr lines.
fn start_agent(trace: &Path) -> (Guard, String, mpsc::Receiver<String>) {
    let trace = trace.to_str().unwrap();
    start_agent_with(&["trace", trace, "--prometheus-expire", "10m"])
}

/// Starts `ue-metrics-decode ARGS --prometheus 127.0.0.1:0` (stdout piped) and waits until it
/// has read its input.
fn start_agent_with(args: &[&str]) -> (Guard, String, mpsc::Receiver<String>) {
    start_agent_via(&[], args)
}

/// [`start_agent_with`], run through `wrapper` (a program and its arguments, e.g. `prlimit`).
fn start_agent_via(wrapper: &[&str], args: &[&str]) -> (Guard, String, mpsc::Receiver<String>) {
    let (guard, addr, rx, _) = start_agent_seeing(wrapper, args);
    (guard, addr, rx)
}

/// [`start_agent_via`], also returning the stderr lines printed while the input was read.
fn start_agent_seeing(
    wrapper: &[&str],
    args: &[&str],
) -> (Guard, String, mpsc::Receiver<String>, Vec<String>) {
    let agent = env!("CARGO_BIN_EXE_ue-metrics-decode");
    let mut command = match wrapper.split_first() {
        Some((program, wrapper_args)) => {
            let mut command = Command::new(program);
            command.args(wrapper_args).arg(agent);
            command
        }
        None => Command::new(agent),
    };
    let mut child = command
        .args(args)
        .args(["--prometheus", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let guard = Guard(child);
    let mut addr = None;
    let mut read_done = false;
    let mut seen = Vec::new();
    while addr.is_none() || !read_done {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the agent announces its endpoint and the end of its input");
        eprintln!("agent: {line}");
        if let Some(rest) = line.split("serving Prometheus metrics at http://").nth(1) {
            addr = Some(rest.trim_end_matches("/metrics").to_owned());
        }
        read_done |= line.contains("serving until interrupted");
        seen.push(line);
    }
    (guard, addr.unwrap(), rx, seen)
}

/// A plain HTTP/1.0 GET: (status, body).
fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// Ends the agent with SIGTERM; returns its stdout and remaining stderr.
fn stop_agent(mut agent: Guard, stderr: mpsc::Receiver<String>) -> (String, Vec<String>) {
    let pid = agent.0.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = agent.0.wait().unwrap();
    // Every line up to the end of its stderr.
    let rest: Vec<String> = stderr.iter().collect();
    assert!(
        exit.success(),
        "SIGTERM ends the agent cleanly: {exit:?}\n{rest:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l.contains("prometheus: ") && l.contains("live series")),
        "final summary has the Prometheus counts: {rest:?}"
    );
    let mut stdout = String::new();
    if let Some(mut out) = agent.0.stdout.take() {
        out.read_to_string(&mut stdout).unwrap();
    }
    (stdout, rest)
}

#[test]
fn serves_the_sdk_data_in_the_text_format() {
    let dir = temp_dir("text");
    let trace = dir.join("trace.txt");
    write_trace(&trace);
    let (agent, addr, stderr) = start_agent(&trace);
    let (status, body) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let labels =
        r#"job="demo/shop",instance="i-1",otel_scope_name="shop.lib",otel_scope_version="1.2.3""#;
    for line in [
        "# HELP http_requests_total Requests handled".to_owned(),
        "# TYPE http_requests_total counter".to_owned(),
        format!(r#"http_requests_total{{{labels},http_route="/a"}} 12"#),
        "# TYPE queue_size gauge".to_owned(),
        format!("queue_size{{{labels}}} 7"),
        format!("temperature_celsius{{{labels}}} 23"),
        format!(r#"http_server_duration_seconds_bucket{{{labels},http_route="/a",le="0.5"}} 3"#),
        format!(r#"http_server_duration_seconds_count{{{labels},http_route="/a"}} 5"#),
        format!(r#"payload_size_bytes_bucket{{{labels},le="4"}} 4"#),
        format!(r#"payload_size_bytes_bucket{{{labels},le="+Inf"}} 5"#),
        format!("payload_size_bytes_sum{{{labels}}} 18"),
        r#"target_info{job="demo/shop",instance="i-1",host_name="web-7"} 1"#.to_owned(),
        "ue_metrics_decode_records_decoded_total 2".to_owned(),
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
    assert_eq!(http_get(&addr, "/nothing").unwrap().0, 404);

    // An independent parser of the format.
    let python = Path::new("/usr/bin/python3");
    let has_parser = python.exists()
        && Command::new(python)
            .args(["-c", "import prometheus_client"])
            .status()
            .is_ok_and(|s| s.success());
    if has_parser {
        let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        print(f.type, s.name, ",".join("%s=%s" % kv for kv in sorted(s.labels.items())), repr(float(s.value)))
"#;
        let mut child = Command::new(python)
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "prometheus_client could not parse the exposition"
        );
        let parsed = String::from_utf8(out.stdout).unwrap();
        for line in [
            "counter http_requests_total http_route=/a,instance=i-1,job=demo/shop,otel_scope_name=shop.lib,otel_scope_version=1.2.3 12.0",
            "histogram http_server_duration_seconds_sum http_route=/a,instance=i-1,job=demo/shop,otel_scope_name=shop.lib,otel_scope_version=1.2.3 3.25",
            "histogram payload_size_bytes_bucket instance=i-1,job=demo/shop,le=8,otel_scope_name=shop.lib,otel_scope_version=1.2.3 5.0",
            "gauge target_info host_name=web-7,instance=i-1,job=demo/shop 1.0",
        ] {
            assert!(parsed.lines().any(|l| l == line), "parser output lacks {line:?}:\n{parsed}");
        }
    } else {
        println!("SKIPPED the independent parser check: /usr/bin/python3 with prometheus_client is not installed (apt-get install python3-prometheus-client)");
    }
    stop_agent(agent, stderr);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs an instant query; returns the vector result (labels, value).
fn query(prometheus: &str, expr: &str) -> Vec<(HashMap<String, String>, f64)> {
    let (status, body) = http_get(
        prometheus,
        &format!("/api/v1/query?query={}", percent_encode(expr)),
    )
    .unwrap_or((0, String::new()));
    if status != 200 {
        return Vec::new();
    }
    let json: Value = serde_json::from_str(&body).unwrap();
    json["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let value = r["value"][1].as_str().unwrap().parse().unwrap();
            (labels, value)
        })
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_the_expected_values() {
    let Ok(binary) = which("prometheus") else {
        println!("SKIPPED: the `prometheus` binary is not installed (apt-get install prometheus; .ci/install-deps does it)");
        return;
    };
    let dir = temp_dir("scrape");
    let trace = dir.join("trace.txt");
    write_trace(&trace);
    let (agent, addr, stderr) = start_agent(&trace);
    let port = free_port();
    let config = dir.join("prometheus.yml");
    // The fleet configuration of the README (deploy/prometheus.yml), scraping this agent.
    let fleet = include_str!("../deploy/prometheus.yml");
    let targets = "['host-a.example:9464', 'host-b.example:9464']";
    assert!(fleet.contains(targets) && fleet.contains("scrape_interval: 15s"));
    let run = fleet
        .replace(targets, &format!("['{addr}']"))
        .replace("scrape_interval: 15s", "scrape_interval: 1s");
    std::fs::write(&config, run).unwrap();
    let prometheus_addr = format!("127.0.0.1:{port}");
    let server = Guard(
        Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prometheus_addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while query(&prometheus_addr, "ue_metrics_decode_records_decoded_total").is_empty() {
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the agent within 60 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let one = |expr: &str| -> f64 {
        let result = query(&prometheus_addr, expr);
        assert_eq!(result.len(), 1, "{expr}: {result:?}");
        result[0].1
    };
    let sel = r#"job="demo/shop",instance="i-1",otel_scope_name="shop.lib""#;
    // Counter: deltas 5 + 7.
    assert_eq!(
        one(&format!(r#"http_requests_total{{{sel},http_route="/a"}}"#)),
        12.0
    );
    // Up-down counter: 10 - 3.
    assert_eq!(one(&format!("queue_size{{{sel}}}")), 7.0);
    // Gauge: the last value.
    assert_eq!(one(&format!("temperature_celsius{{{sel}}}")), 23.0);
    // Histogram: 0.05, 0.2, 0.3, 0.7, then 2.0 (bounds 0.1, 0.5, 1).
    assert_eq!(one("http_server_duration_seconds_count"), 5.0);
    assert_eq!(one("http_server_duration_seconds_sum"), 3.25);
    assert_eq!(one(r#"http_server_duration_seconds_bucket{le="0.5"}"#), 3.0);
    // Rank 2.5 falls in (0.1, 0.5] holding ranks 1..3: 0.1 + 0.4 * 1.5 / 2.
    let median = one("histogram_quantile(0.5, http_server_duration_seconds_bucket)");
    assert!((median - 0.4).abs() < 1e-9, "median {median}");
    // Exponential histogram (scale 0): 1, 2, 4, 8, then 3.
    assert_eq!(one("payload_size_bytes_count"), 5.0);
    assert_eq!(one("payload_size_bytes_sum"), 18.0);
    for (le, count) in [("1", 1.0), ("2", 2.0), ("4", 4.0), ("8", 5.0)] {
        assert_eq!(
            one(&format!(r#"payload_size_bytes_bucket{{le="{le}"}}"#)),
            count,
            "le={le}"
        );
    }
    let quantile = one("histogram_quantile(0.5, payload_size_bytes_bucket)");
    assert!(
        (2.0..=4.0).contains(&quantile),
        "median of 1,2,3,4,8 in (2, 4]: {quantile}"
    );
    // target_info carries the other resource attributes.
    let info = query(
        &prometheus_addr,
        r#"target_info{job="demo/shop",instance="i-1"}"#,
    );
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(
        info[0].0.get("host_name").map(String::as_str),
        Some("web-7")
    );
    // The fleet configuration's `host` label: the agent's host.
    let host = query(&prometheus_addr, "ue_metrics_decode_records_decoded_total");
    assert_eq!(
        host[0].0.get("host").map(String::as_str),
        addr.split(':').next(),
        "{host:?}"
    );
    // Self-telemetry.
    assert_eq!(one("ue_metrics_decode_records_decoded_total"), 2.0);
    assert_eq!(one("ue_metrics_decode_records_failed_total"), 0.0);
    drop(server);
    stop_agent(agent, stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn several_outputs_at_once_with_the_writers_pid_added() {
    use common::perf_file::{self, Sample};
    use common::requests::counter;
    use prost::Message as _;
    use ue_metrics_decode::format::EXAMPLE_FORMAT;
    use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
    use ue_metrics_decode::sample::encode_raw_sample;
    use ue_metrics_decode::RecordFormat;

    // Two processes of one app: the same resource (service.name "a", no instance id).
    let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    let sample = |pid: u32, buffer: &[u8]| Sample {
        pid,
        tid: pid,
        time: 1,
        cpu: 0,
        raw: encode_raw_sample(&format, 1535, pid as i32, buffer).unwrap(),
    };
    let records = vec![
        perf_file::sample_bytes(&sample(101, &counter("a", 1, 5).encode_to_vec()), true),
        perf_file::sample_bytes(&sample(202, &counter("a", 1, 9).encode_to_vec()), true),
    ];
    let dir = temp_dir("outputs");
    let path = dir.join("two.data");
    perf_file::write_normal(&path, &[("user_events", EXAMPLE_FORMAT)], true, &records);

    // An OTLP/HTTP receiver.
    let receiver = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}", receiver.server_addr().to_ip().unwrap());
    let (tx, bodies) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(mut request) = receiver.recv() {
            let mut body = Vec::new();
            let _ = request.as_reader().read_to_end(&mut body);
            let _ = request.respond(tiny_http::Response::empty(200));
            if tx.send(body).is_err() {
                break;
            }
        }
    });

    let (agent, addr, stderr) = start_agent_with(&[
        "perf-data",
        path.to_str().unwrap(),
        "--format",
        "json",
        "--pid",
        "on",
        "--forward",
        &url,
    ]);
    let (_, text) = http_get(&addr, "/metrics").unwrap();
    for (pid, value) in [(101, 5), (202, 9)] {
        let line = format!(
            r#"requests_total{{job="a",instance="{pid}",otel_scope_name="test",otel_scope_version="",route="/r0"}} {value}"#
        );
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    // The forwarder's counts on the endpoint (sending goes on in the background).
    let deadline = Instant::now() + Duration::from_secs(10);
    let sent = r#"ue_metrics_decode_forward_requests_total{outcome="sent"} 2"#;
    while !http_get(&addr, "/metrics")
        .unwrap()
        .1
        .lines()
        .any(|l| l == sent)
    {
        assert!(Instant::now() < deadline, "no {sent} on the endpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (stdout, rest) = stop_agent(agent, stderr);
    // JSON lines: both requests, each with its writer's pid.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, pid) in lines.iter().zip([101, 202]) {
        let needle = format!(r#"{{"key":"process.pid","value":{{"intValue":"{pid}"}}}}"#);
        assert!(line.contains(&needle), "{line}");
    }
    // Forwarded: the same two requests.
    let forwarded: Vec<ExportMetricsServiceRequest> = (0..2)
        .map(|_| {
            let body = bodies.recv_timeout(Duration::from_secs(10)).unwrap();
            ExportMetricsServiceRequest::decode(&body[..]).unwrap()
        })
        .collect();
    for (request, pid) in forwarded.iter().zip([101i64, 202]) {
        let attributes = &request.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes;
        let found = attributes
            .iter()
            .find(|kv| kv.key == "process.pid")
            .unwrap();
        assert_eq!(
            found.value.as_ref().unwrap().value,
            Some(ue_metrics_decode::proto::common::v1::any_value::Value::IntValue(pid))
        );
    }
    assert!(
        rest.iter().any(|l| l.contains("forwarded 2 requests")),
        "{rest:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_forward_queue_depth_is_on_the_endpoint_and_in_the_final_summary() {
    use common::perf_file::{self, Sample};
    use common::requests::counter;
    use prost::Message as _;
    use ue_metrics_decode::format::EXAMPLE_FORMAT;
    use ue_metrics_decode::sample::encode_raw_sample;
    use ue_metrics_decode::RecordFormat;

    let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    let records: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let raw =
                encode_raw_sample(&format, 1535, 7, &counter("q", 1, i).encode_to_vec()).unwrap();
            let sample = Sample {
                pid: 7,
                tid: 7,
                time: 1 + i as u64,
                cpu: 0,
                raw,
            };
            perf_file::sample_bytes(&sample, true)
        })
        .collect();
    let dir = temp_dir("queue");
    let path = dir.join("six.data");
    perf_file::write_normal(&path, &[("user_events", EXAMPLE_FORMAT)], true, &records);
    // A receiver that accepts but never answers: the worker holds one request, five wait.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let (mut agent, addr, stderr) = start_agent_with(&[
        "perf-data",
        path.to_str().unwrap(),
        "--forward",
        &url,
        "--drain-timeout",
        "200ms",
    ]);
    let value = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (_, text) = http_get(&addr, "/metrics").unwrap();
        if value(&text, "ue_metrics_decode_forward_queue_depth") == Some(5.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "queue depth never 5:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // 5, or 6 when the reader queued all six before the worker took the first.
    let high_water = value(&text, "ue_metrics_decode_forward_queue_high_water");
    assert!(matches!(high_water, Some(5.0 | 6.0)), "{text}");
    assert_eq!(
        value(&text, "ue_metrics_decode_forward_queue_capacity"),
        Some(256.0),
        "{text}"
    );
    assert!(text.contains("# TYPE ue_metrics_decode_forward_queue_depth gauge"));
    // SIGTERM: the drain gives up after 200 ms; the summary tells the queue's story and the
    // exit status that requests were lost.
    let pid = agent.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exit = agent.0.wait().unwrap();
    let rest: Vec<String> = stderr.iter().collect();
    assert_eq!(exit.code(), Some(1), "{rest:?}");
    assert!(
        rest.iter().any(
            |l| l.contains("forward queue: 6 requests handed over, high-water ")
                && l.contains(
                    " of 256, 6 not delivered by the drain deadline (0.2 s after the stop"
                )
        ),
        "{rest:?}"
    );
    drop(silent);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The SDK's delta start time is per instrument (the previous collection), not per attribute
/// set: a set that was not recorded in one interval comes back with a start after the end of
/// its last point. Those deltas are still increments of the same series: its counter must
/// keep its total (a reset there made the counter drop to the new delta, and Prometheus'
/// `increase()` undercounts whenever the new delta is above the old total).
#[test]
fn sdk_delta_series_that_skip_a_collection_keep_their_total() {
    use prost::Message as _;
    use ue_metrics_decode::prometheus::{render, PrometheusOptions, PrometheusState};
    use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;

    let reader = delta_reader();
    let resource = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "shop"),
            KeyValue::new("service.instance.id", "i-1"),
        ])
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader.clone())
        .build();
    let meter = provider.meter("shop.lib");
    let requests = meter.u64_counter("http.requests").build();
    let queue = meter.i64_up_down_counter("queue.size").build();
    let duration = meter
        .f64_histogram("http.server.duration")
        .with_boundaries(vec![1.0])
        .build();
    let mut state = PrometheusState::new(PrometheusOptions::default());
    let mut encoder = MetricsEncoder::new();
    let mut collect = || {
        let mut rm = ResourceMetrics::default();
        reader.collect(&mut rm).unwrap();
        let request = ExportMetricsServiceRequest::decode(encoder.encode_request(&rm)).unwrap();
        state.add_request(&request, Instant::now());
    };
    let (a, b) = (
        [KeyValue::new("http.route", "/a")],
        [KeyValue::new("http.route", "/b")],
    );
    // Interval 1: both routes. Interval 2: /a only. Interval 3: both again.
    for (a_value, b_value) in [(1, Some(2)), (1, None), (1, Some(5))] {
        requests.add(a_value, &a);
        queue.add(a_value as i64, &a);
        duration.record(0.5, &a);
        if let Some(v) = b_value {
            requests.add(v, &b);
            queue.add(v as i64, &b);
            duration.record(0.5, &b);
        }
        collect();
        // Distinct collection times.
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut text = String::new();
    render(&state, &mut text);
    let value = |prefix: &str| -> f64 {
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
        assert_eq!(lines.len(), 1, "one line starting with {prefix} in\n{text}");
        lines[0].rsplit(' ').next().unwrap().parse().unwrap()
    };
    let labels = r#"job="shop",instance="i-1",otel_scope_name="shop.lib",otel_scope_version="""#;
    assert_eq!(
        value(&format!(
            r#"http_requests_total{{{labels},http_route="/b"}}"#
        )),
        7.0
    );
    assert_eq!(
        value(&format!(r#"queue_size{{{labels},http_route="/b"}}"#)),
        7.0
    );
    assert_eq!(
        value(&format!(
            r#"http_server_duration_count{{{labels},http_route="/b"}}"#
        )),
        2.0
    );
    assert_eq!(
        value(&format!(
            r#"http_requests_total{{{labels},http_route="/a"}}"#
        )),
        3.0
    );
    assert_eq!(state.counts().resets, 0, "nothing restarted");
}

/// A file's series are served until the agent is stopped, as `--prometheus` says: once the
/// input has ended nothing updates them, and expiry (which makes memory follow the live series
/// of a running source) must not empty the endpoint.
#[test]
fn a_file_is_served_until_stopped_however_long_past_the_expiry_time() {
    let dir = temp_dir("expiry");
    let trace = dir.join("trace.txt");
    write_trace(&trace);
    let (agent, addr, stderr) = start_agent_with(&[
        "trace",
        trace.to_str().unwrap(),
        "--prometheus-expire",
        "200ms",
    ]);
    std::thread::sleep(Duration::from_millis(1000));
    let (status, body) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        body.lines()
            .any(|l| l.starts_with("http_requests_total{") && l.ends_with(" 12")),
        "the counter is still served:\n{body}"
    );
    assert!(
        body.lines()
            .any(|l| l == "ue_metrics_decode_series_expired_total 0"),
        "{body}"
    );
    stop_agent(agent, stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--prometheus-max-series`: at the limit, points of new series are dropped, counted by
/// reason on the endpoint and in the final line, and warned about once (not per point).
#[test]
fn the_series_limit_holds_and_says_what_it_dropped() {
    let dir = temp_dir("max-series");
    let trace = dir.join("trace.txt");
    write_trace(&trace);
    let trace = trace.to_str().unwrap();
    // Without a limit: how many series the file makes.
    let (agent, addr, stderr) = start_agent_with(&["trace", trace]);
    let all = scrape_number(&addr, "ue_metrics_decode_series");
    stop_agent(agent, stderr);
    assert!(all > 3.0, "the file makes more than 3 series: {all}");

    let (agent, addr, stderr, startup) =
        start_agent_seeing(&[], &["trace", trace, "--prometheus-max-series", "3"]);
    assert_eq!(scrape_number(&addr, "ue_metrics_decode_series"), 3.0);
    let dropped = scrape_number(
        &addr,
        r#"ue_metrics_decode_points_dropped_total{reason="series_limit"}"#,
    );
    assert!(dropped > 0.0, "{dropped}");
    let warnings: Vec<&String> = startup
        .iter()
        .filter(|l| l.contains("3 series held (--prometheus-max-series)"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, not one per point: {startup:?}"
    );
    let (_, rest) = stop_agent(agent, stderr);
    let last = rest
        .iter()
        .find(|l| l.contains("live series"))
        .expect("final Prometheus line");
    assert!(
        last.contains(&format!("series_limit: {dropped}")),
        "the final line says why points were dropped: {last}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The value of the sample `name` (with its labels, if any) on the endpoint at `addr`.
fn scrape_number(addr: &str, name: &str) -> f64 {
    let (status, body) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

/// The endpoint outlives an accept error. tiny_http's accept loop ends at the first one (here
/// EMFILE: scrapers held every file descriptor the agent may open; Linux also hands a
/// connection's own network errors to accept), which closed the port for good while the agent
/// went on reading: every later scrape was refused.
#[test]
fn the_endpoint_listens_again_after_running_out_of_file_descriptors() {
    let Ok(prlimit) = which("prlimit") else {
        println!("SKIPPED: prlimit (util-linux) is not installed");
        return;
    };
    let dir = temp_dir("emfile");
    let trace = dir.join("trace.txt");
    write_trace(&trace);
    let (agent, addr, stderr) = start_agent_via(
        &[prlimit.to_str().unwrap(), "--nofile=32:32"],
        &["trace", trace.to_str().unwrap()],
    );
    // Hold connections until the agent runs out of descriptors (it then refuses them).
    let mut held = Vec::new();
    while held.len() < 100 {
        match TcpStream::connect(&addr) {
            Ok(stream) => held.push(stream),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    let mut body = String::new();
    eventually("the endpoint serves again", || {
        match http_get(&addr, "/metrics") {
            Ok((200, text)) => {
                body = text;
                true
            }
            _ => false,
        }
    });
    assert!(
        body.lines()
            .any(|l| l.starts_with("http_requests_total{") && l.ends_with(" 12")),
        "{body}"
    );
    let restarts = body
        .lines()
        .find_map(|l| l.strip_prefix("ue_metrics_decode_endpoint_restarts_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(restarts.is_some_and(|n| n >= 1), "restarts counted: {body}");
    stop_agent(agent, stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client that asks for `/metrics` and never reads the answer (a stuck scraper, `curl |
/// less`) must not hold up the other scrapes: the endpoint sends each answer from its own
/// thread.
#[test]
fn a_client_that_stops_reading_does_not_stall_other_scrapes() {
    use ue_metrics_decode::prometheus::{PrometheusEndpoint, PrometheusOptions};
    // About 28 MB of exposition (400,000 series, past the default series limit): more than
    // loopback's socket buffers hold.
    let options = PrometheusOptions {
        max_series: 0,
        ..PrometheusOptions::default()
    };
    let endpoint = PrometheusEndpoint::start("127.0.0.1:0", options).unwrap();
    endpoint.add(&common::requests::counter("stall", 400_000, 1));
    let addr = endpoint.local_addr().to_string();
    let mut stalled = TcpStream::connect(&addr).unwrap();
    write!(stalled, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (tx, rx) = mpsc::channel();
    let other = addr.clone();
    std::thread::spawn(move || tx.send(http_get(&other, "/metrics")));
    let answer = rx.recv_timeout(Duration::from_secs(20));
    // Unblock the endpoint before any assertion (a stalled endpoint would not stop).
    drop(stalled);
    let (status, body) = answer
        .expect("the second scrape ended")
        .expect("the second scrape was answered");
    assert_eq!(status, 200);
    assert!(
        body.contains(
            r#"requests_total{job="stall",instance="",otel_scope_name="test",otel_scope_version="",route="/r399999"} 1"#
        ),
        "{}",
        &body[..body.len().min(500)]
    );
    endpoint.stop();
}
