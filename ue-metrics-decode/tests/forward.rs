//! OTLP/HTTP forwarding: against scripted local HTTP servers (statuses, Retry-After, dead and
//! silent receivers, keep-alive), through the CLI, and against an OTLP receiver built on the
//! official Python `opentelemetry-proto` classes (`tests/otlp_receiver.py`).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::http::{ok, serve, Answer, Received};
use common::perf_file::{self, Sample};
use common::requests::counter;
use prost::Message as _;
use ue_metrics_decode::format::EXAMPLE_FORMAT;
use ue_metrics_decode::forward::{Backpressure, ForwardOptions, Forwarder};
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_decode::sample::encode_raw_sample;
use ue_metrics_decode::RecordFormat;

/// A scripted server on a free loopback port (see [`serve`]).
fn server(answers: Vec<Answer>) -> (String, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (url, serve(listener, answers, Duration::ZERO))
}

fn fast() -> ForwardOptions {
    ForwardOptions {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        attempt_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(10),
        ..ForwardOptions::default()
    }
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn posts_protobuf_to_v1_metrics_over_one_kept_alive_connection_and_retries() {
    let (url, received) = server(vec![(503, "", ""), (429, "", ""), ok(), ok()]);
    let forwarder = Forwarder::new(&url, fast()).unwrap();
    assert!(forwarder.send(&counter("a", 2, 1)));
    assert!(forwarder.send(&counter("b", 1, 2)));
    let stats = forwarder.finish();
    assert_eq!(
        (stats.sent, stats.failed, stats.retries, stats.dropped),
        (2, 0, 2, 0)
    );
    let all: Vec<Received> = received.try_iter().collect();
    assert_eq!(all.len(), 4);
    for r in &all {
        assert_eq!(r.request_line.trim_end(), "POST /v1/metrics HTTP/1.1");
        assert!(r.has_header("content-type: application/x-protobuf"));
        assert!(r
            .headers
            .iter()
            .any(|h| h.starts_with("host: 127.0.0.1:") || h.starts_with("Host: 127.0.0.1:")));
        assert!(!r.has_header("connection: close"));
        assert_eq!(r.connection, 0, "keep-alive: one connection for everything");
    }
    // The retried request is the same bytes; the last one is the second request.
    assert_eq!(
        ExportMetricsServiceRequest::decode(&all[2].body[..]).unwrap(),
        counter("a", 2, 1)
    );
    assert_eq!(all[0].body, all[2].body);
    assert_eq!(
        ExportMetricsServiceRequest::decode(&all[3].body[..]).unwrap(),
        counter("b", 1, 2)
    );
}

#[test]
fn client_errors_are_not_retried_and_the_answer_is_in_the_error() {
    let (url, received) = server(vec![(
        400,
        "Content-Type: text/plain\r\n",
        "metric \"x\" has no data\n",
    )]);
    let forwarder = Forwarder::new(&url, fast()).unwrap();
    forwarder.send(&counter("a", 1, 1));
    let stats = forwarder.finish();
    assert_eq!((stats.sent, stats.failed, stats.retries), (0, 1, 0));
    let error = stats.last_error.unwrap();
    assert!(
        error.contains("HTTP 400: metric \\\"x\\\" has no data (not retryable)"),
        "{error}"
    );
    assert_eq!(received.try_iter().count(), 1);
}

#[test]
fn rejected_points_of_a_partial_success_are_counted_with_the_reason() {
    // ExportMetricsServiceResponse { partial_success: { rejected_data_points: 3,
    // error_message: "too old!" } }
    let partial = "\n\x0c\x08\x03\x12\x08too old!";
    let (url, _received) = server(vec![(
        200,
        "Content-Type: application/x-protobuf\r\n",
        partial,
    )]);
    let forwarder = Forwarder::new(&url, fast()).unwrap();
    forwarder.send(&counter("a", 4, 1));
    let stats = forwarder.finish();
    assert_eq!((stats.sent, stats.failed, stats.rejected_points), (1, 0, 3));
    let error = stats.last_error.unwrap();
    assert!(error.contains("3 points rejected: too old!"), "{error}");
}

#[test]
fn retry_after_is_honoured() {
    let (url, received) = server(vec![(503, "Retry-After: 1\r\n", "busy")]);
    let forwarder = Forwarder::new(&url, fast()).unwrap();
    forwarder.send(&counter("a", 1, 1));
    let stats = forwarder.finish();
    assert_eq!((stats.sent, stats.retries), (1, 1));
    let all: Vec<Received> = received.try_iter().collect();
    let waited = all[1].at - all[0].at;
    // The backoff alone would have waited 5 ms.
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
}

#[test]
fn a_dead_receiver_costs_one_deadline_not_one_per_request() {
    let options = ForwardOptions {
        deadline: Duration::from_millis(300),
        ..fast()
    };
    let url = format!("http://127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let forwarder = Forwarder::new(&url, options).unwrap();
    for i in 0..50 {
        assert!(forwarder.send(&counter("a", 1, i)));
    }
    let stats = forwarder.finish();
    let took = started.elapsed();
    assert_eq!((stats.sent, stats.failed, stats.dropped), (0, 50, 0));
    assert!(stats.retries > 0);
    assert!(took < Duration::from_secs(5), "{took:?}");
    let error = stats.last_error.unwrap();
    assert!(error.contains("the receiver is down"), "{error}");
}

#[test]
fn after_the_receiver_was_down_forwarding_resumes_when_it_returns() {
    let port = closed_port();
    let options = ForwardOptions {
        deadline: Duration::from_millis(200),
        ..fast()
    };
    let forwarder = Forwarder::new(&format!("http://127.0.0.1:{port}"), options).unwrap();
    forwarder.send(&counter("a", 1, 1));
    while forwarder.stats().failed == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let received = serve(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        Vec::new(),
        Duration::ZERO,
    );
    // Past one probe interval (max_backoff, 20 ms): the next request is tried, and gets through.
    std::thread::sleep(Duration::from_millis(50));
    for i in 2..5 {
        forwarder.send(&counter("a", 1, i));
    }
    let stats = forwarder.finish();
    assert_eq!((stats.sent, stats.failed), (3, 1), "{:?}", stats.last_error);
    assert_eq!(received.try_iter().count(), 3);
}

#[test]
fn a_receiver_that_never_answers_is_bounded_by_the_deadline() {
    // Accepts connections (the kernel's backlog) but never reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let options = ForwardOptions {
        deadline: Duration::from_millis(500),
        attempt_timeout: Duration::from_secs(60),
        ..fast()
    };
    let started = Instant::now();
    let forwarder = Forwarder::new(&url, options).unwrap();
    forwarder.send(&counter("a", 1, 1));
    forwarder.send(&counter("a", 1, 2));
    let stats = forwarder.finish();
    let took = started.elapsed();
    assert_eq!((stats.sent, stats.failed), (0, 2));
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(listener);
}

#[test]
fn live_mode_queues_while_the_receiver_is_down_and_delivers_when_it_returns() {
    let port = closed_port();
    let options = ForwardOptions {
        backpressure: Backpressure::Drop,
        queue_capacity: 100,
        ..fast()
    };
    let forwarder = Forwarder::new(&format!("http://127.0.0.1:{port}"), options).unwrap();
    for i in 0..20 {
        assert!(forwarder.send(&counter("live", 1, i)));
    }
    // Down for longer than one attempt's backoff several times over; nothing given up.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(forwarder.stats().failed, 0);
    let received = serve(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        Vec::new(),
        Duration::ZERO,
    );
    let stats = forwarder.finish();
    assert_eq!((stats.sent, stats.failed, stats.dropped), (20, 0, 0));
    let values: Vec<ExportMetricsServiceRequest> = received
        .try_iter()
        .map(|r| ExportMetricsServiceRequest::decode(&r.body[..]).unwrap())
        .collect();
    assert!(values == (0..20).map(|i| counter("live", 1, i)).collect::<Vec<_>>());
}

#[test]
fn live_mode_drops_and_counts_only_when_the_queue_is_full() {
    let options = ForwardOptions {
        backpressure: Backpressure::Drop,
        queue_capacity: 2,
        deadline: Duration::from_millis(200),
        ..fast()
    };
    let url = format!("http://127.0.0.1:{}", closed_port());
    let forwarder = Forwarder::new(&url, options).unwrap();
    let accepted = (0..10)
        .filter(|_| forwarder.send(&counter("a", 1, 1)))
        .count();
    // At most the queue plus the one the worker holds.
    assert!((2..=3).contains(&accepted), "{accepted}");
    let stats = forwarder.finish();
    assert_eq!(stats.dropped, 10 - accepted as u64);
    assert_eq!(stats.failed, accepted as u64);
}

#[test]
fn localhost_reaches_a_receiver_on_127_0_0_1() {
    // Where `localhost` resolves to ::1 first, the first address is refused and the next one
    // must be tried.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = serve(listener, Vec::new(), Duration::ZERO);
    let forwarder = Forwarder::new(&format!("http://localhost:{port}"), fast()).unwrap();
    forwarder.send(&counter("a", 1, 1));
    let stats = forwarder.finish();
    assert_eq!((stats.sent, stats.failed), (1, 0), "{:?}", stats.last_error);
    assert!(received
        .try_iter()
        .next()
        .unwrap()
        .has_header(&format!("host: localhost:{port}")));
}

/// A perf.data file with one record per request, one writer, one export per second.
fn perf_file(name: &str, buffers: &[Vec<u8>]) -> PathBuf {
    let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    let records: Vec<Vec<u8>> = buffers
        .iter()
        .enumerate()
        .map(|(i, buffer)| {
            let raw = encode_raw_sample(&format, 1535, 9, buffer).unwrap();
            perf_file::sample_bytes(
                &Sample {
                    pid: 9,
                    tid: 9,
                    time: 1_000_000_000 * (i as u64 + 1),
                    cpu: 0,
                    raw,
                },
                true,
            )
        })
        .collect();
    let path = perf_file::temp_path(name);
    perf_file::write_normal(&path, &[("user_events", EXAMPLE_FORMAT)], true, &records);
    path
}

fn run_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_file_run_delivers_every_record_to_a_slow_receiver() {
    let requests: Vec<ExportMetricsServiceRequest> =
        (0..400).map(|i| counter("file", 2, i)).collect();
    let buffers: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
    let path = perf_file("forward-all.data", &buffers);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = serve(listener, Vec::new(), Duration::from_millis(2));
    let (success, stderr) = run_cli(&["perf-data", path.to_str().unwrap(), "--forward", &url]);
    assert!(success, "{stderr}");
    assert!(
        stderr.contains("forwarded 400 requests (0 failed, 0 dropped"),
        "{stderr}"
    );
    let bodies: Vec<Vec<u8>> = received.try_iter().map(|r| r.body).collect();
    assert!(bodies == buffers, "every request, in order");
}

#[test]
fn the_producers_bytes_are_forwarded_unknown_fields_included() {
    let mut with_unknown = counter("u", 1, 5).encode_to_vec();
    // Field 99 (varint 7), unknown to this decoder's proto types.
    with_unknown.extend_from_slice(&[0x98, 0x06, 0x07]);
    let path = perf_file("forward-unknown.data", std::slice::from_ref(&with_unknown));
    let (url, received) = server(Vec::new());
    let (success, stderr) = run_cli(&["perf-data", path.to_str().unwrap(), "--forward", &url]);
    assert!(success, "{stderr}");
    assert_eq!(received.try_iter().next().unwrap().body, with_unknown);
}

/// The Python receiver, running; killed when dropped.
struct PythonReceiver {
    child: Child,
    url: String,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tests/otlp_receiver.py`; `None` (with the reason on stderr) only when python3 or
/// the `opentelemetry-proto` package is missing on this machine.
fn python_receiver() -> Option<PythonReceiver> {
    let check = Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
        ])
        .output();
    match check {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "SKIPPED: python3 has no opentelemetry-proto (pip install opentelemetry-proto; \
                 .ci/install-deps does): {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return None;
        }
        Err(e) => {
            eprintln!("SKIPPED: no python3 to run the OTLP receiver: {e}");
            return None;
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp_receiver.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let port: u16 = first
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("receiver did not start: {first:?}"));
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { return };
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                return;
            }
        }
    });
    Some(PythonReceiver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        lines,
    })
}

/// The data points of a request in the receiver's text form (see `points` in
/// `otlp_receiver.py`), computed from this crate's prost types.
fn points(request: &ExportMetricsServiceRequest) -> Vec<String> {
    use ue_metrics_decode::proto::common::v1::{any_value::Value as V, KeyValue};
    use ue_metrics_decode::proto::metrics::v1::{
        exponential_histogram_data_point::Buckets, metric::Data, number_data_point::Value as N,
    };
    fn attributes(kvs: &[KeyValue]) -> String {
        let value = |kv: &KeyValue| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(V::StringValue(s)) => format!("s:{s}"),
            Some(V::IntValue(i)) => format!("i:{i}"),
            Some(V::DoubleValue(d)) => format!("d:{}", d.to_bits()),
            Some(V::BoolValue(b)) => format!("b:{b}"),
            Some(_) => "other".into(),
            None => "none".into(),
        };
        let all: Vec<String> = kvs
            .iter()
            .map(|kv| format!("{}={}", kv.key, value(kv)))
            .collect();
        all.join(",")
    }
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| v.to_bits().to_string());
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let buckets = |b: &Option<Buckets>| {
        let b = b.clone().unwrap_or_default();
        format!("{}:{}", b.offset, list(&b.bucket_counts))
    };
    let mut out = Vec::new();
    for rm in &request.resource_metrics {
        let resource = attributes(&rm.resource.clone().unwrap_or_default().attributes);
        for sm in &rm.scope_metrics {
            let scope = sm.scope.clone().unwrap_or_default().name;
            for m in &sm.metrics {
                let head = |kind: &str, temporality: i32, monotonic: bool| {
                    format!(
                        "{resource}|{scope}|{}|{}|{kind}|{temporality}|{monotonic}",
                        m.name, m.unit
                    )
                };
                let number =
                    |p: &ue_metrics_decode::proto::metrics::v1::NumberDataPoint| match p.value {
                        Some(N::AsInt(i)) => format!("int:{i}"),
                        Some(N::AsDouble(d)) => format!("double:{}", d.to_bits()),
                        None => "double:0".into(),
                    };
                let mut push =
                    |head: &str, attrs: &[KeyValue], start: u64, time: u64, v: String| {
                        out.push(format!("{head}|{}|{start}|{time}|{v}", attributes(attrs)))
                    };
                match &m.data {
                    Some(Data::Sum(s)) => {
                        let h = head("sum", s.aggregation_temporality, s.is_monotonic);
                        for p in &s.data_points {
                            push(
                                &h,
                                &p.attributes,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                number(p),
                            );
                        }
                    }
                    Some(Data::Gauge(g)) => {
                        let h = head("gauge", 0, false);
                        for p in &g.data_points {
                            push(
                                &h,
                                &p.attributes,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                number(p),
                            );
                        }
                    }
                    Some(Data::Histogram(x)) => {
                        let h = head("histogram", x.aggregation_temporality, false);
                        for p in &x.data_points {
                            let bounds: Vec<String> = p
                                .explicit_bounds
                                .iter()
                                .map(|b| b.to_bits().to_string())
                                .collect();
                            let v = format!(
                                "count:{}|sum:{}|buckets:{}|bounds:{}|min:{}|max:{}",
                                p.count,
                                opt(p.sum),
                                list(&p.bucket_counts),
                                bounds.join(","),
                                opt(p.min),
                                opt(p.max)
                            );
                            push(
                                &h,
                                &p.attributes,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                v,
                            );
                        }
                    }
                    Some(Data::ExponentialHistogram(x)) => {
                        let h = head("exponential_histogram", x.aggregation_temporality, false);
                        for p in &x.data_points {
                            let v = format!(
                                "count:{}|sum:{}|scale:{}|zero:{}|pos:{}|neg:{}|min:{}|max:{}",
                                p.count,
                                opt(p.sum),
                                p.scale,
                                p.zero_count,
                                buckets(&p.positive),
                                buckets(&p.negative),
                                opt(p.min),
                                opt(p.max)
                            );
                            push(
                                &h,
                                &p.attributes,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                v,
                            );
                        }
                    }
                    Some(Data::Summary(x)) => {
                        let h = head("summary", 0, false);
                        for p in &x.data_points {
                            let q: Vec<String> = p
                                .quantile_values
                                .iter()
                                .map(|q| format!("{}={}", q.quantile.to_bits(), q.value.to_bits()))
                                .collect();
                            let v = format!(
                                "count:{}|sum:{}|q:{}",
                                p.count,
                                p.sum.to_bits(),
                                q.join(",")
                            );
                            push(
                                &h,
                                &p.attributes,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                v,
                            );
                        }
                    }
                    None => {}
                }
            }
        }
    }
    out
}

/// The reference workloads as the exporter writes them (size-bounded chunks).
fn workload_requests() -> Vec<ExportMetricsServiceRequest> {
    use otlp_metrics_encode::{check, workloads, MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};
    let mut encoder = MetricsEncoder::new();
    let mut requests = Vec::new();
    for w in [workloads::w1(), workloads::w2(), workloads::w2e()] {
        encoder
            .encode_chunks(&w.metrics, DEFAULT_MAX_REQUEST_BYTES, |chunk| {
                requests.push(check::decode(chunk));
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap();
    }
    requests
}

fn forward_to_python(gzip: bool) {
    let Some(receiver) = python_receiver() else {
        return;
    };
    let requests = workload_requests();
    let options = ForwardOptions { gzip, ..fast() };
    let forwarder = Forwarder::new(&receiver.url, options).unwrap();
    for r in &requests {
        assert!(forwarder.send(r));
    }
    let stats = forwarder.finish();
    assert_eq!(
        (stats.sent, stats.failed),
        (requests.len() as u64, 0),
        "{:?}",
        stats.last_error
    );
    let mut connections = std::collections::BTreeSet::new();
    let mut kinds = std::collections::BTreeSet::new();
    for (i, request) in requests.iter().enumerate() {
        let line = receiver
            .lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap();
        assert_eq!(line["content_encoding"], if gzip { "gzip" } else { "" });
        assert_eq!(line["content_type"], "application/x-protobuf");
        connections.insert(line["connection"].as_u64().unwrap());
        let seen: Vec<String> = line["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect();
        let expected = points(request);
        assert!(!expected.is_empty());
        assert_eq!(seen, expected, "request {i}");
        kinds.extend(
            seen.iter()
                .filter_map(|p| p.split('|').nth(4).map(str::to_owned)),
        );
    }
    assert_eq!(connections.len(), 1, "keep-alive: {connections:?}");
    for kind in ["sum", "gauge", "histogram", "exponential_histogram"] {
        assert!(kinds.contains(kind), "{kind} not covered: {kinds:?}");
    }
}

#[test]
fn an_independent_otlp_receiver_reads_every_value() {
    forward_to_python(false);
}

#[test]
fn an_independent_otlp_receiver_reads_gzip_requests() {
    forward_to_python(true);
}

#[test]
fn the_cli_forwards_a_perf_file_gzip_compressed_to_the_independent_receiver() {
    let Some(receiver) = python_receiver() else {
        return;
    };
    let requests = workload_requests();
    let buffers: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
    let path = perf_file("forward-python.data", &buffers);
    let (success, stderr) = run_cli(&[
        "perf-data",
        path.to_str().unwrap(),
        "--forward",
        &receiver.url,
        "--forward-gzip",
    ]);
    assert!(success, "{stderr}");
    for (i, request) in requests.iter().enumerate() {
        let line = receiver
            .lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap();
        assert_eq!(line["content_encoding"], "gzip");
        let seen: Vec<&str> = line["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(seen, points(request), "request {i}");
    }
}

#[test]
fn a_merged_w3_export_reaches_the_receiver_as_at_most_three_requests_with_every_point() {
    use otlp_metrics_encode::{check, workloads, MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};
    let w = workloads::w3();
    let mut encoder = MetricsEncoder::new();
    let mut expected = check::flatten(check::roundtrip(&mut encoder, &w.metrics));
    let mut chunks = Vec::new();
    encoder
        .encode_chunks(&w.metrics, DEFAULT_MAX_REQUEST_BYTES, |chunk| {
            chunks.push(chunk.to_vec());
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
    // One writer, back to back (20 µs apart), as the exporter writes an export.
    let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
    let records: Vec<Vec<u8>> = chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            perf_file::sample_bytes(
                &Sample {
                    pid: 40,
                    tid: 41,
                    time: 5_000_000_000 + i as u64 * 20_000,
                    cpu: 1,
                    raw: encode_raw_sample(&format, 1535, 40, chunk).unwrap(),
                },
                true,
            )
        })
        .collect();
    let path = perf_file::temp_path("forward-w3.data");
    perf_file::write_normal(&path, &[("user_events", EXAMPLE_FORMAT)], true, &records);
    let (url, received) = server(Vec::new());
    let (success, stderr) = run_cli(&[
        "perf-data",
        path.to_str().unwrap(),
        "--merge",
        "--forward",
        &url,
    ]);
    assert!(success, "{stderr}");
    let bodies: Vec<Vec<u8>> = received.try_iter().map(|r| r.body).collect();
    eprintln!(
        "W3 through the CLI: {} events -> {} requests",
        chunks.len(),
        bodies.len()
    );
    assert!(chunks.len() > 200);
    assert!((1..=3).contains(&bodies.len()), "{} requests", bodies.len());
    let mut items: Vec<check::Item> = bodies
        .iter()
        .flat_map(|b| check::flatten(check::decode(b)))
        .collect();
    let key = |i: &check::Item| format!("{i:?}");
    items.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(items.len(), 10_000);
    assert!(items == expected, "points changed");
}

/// Polls `check` every 10 ms for up to 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_drain_deadline_bounds_the_end_and_counts_what_was_left() {
    // A receiver that accepts connections but never answers, and per-request limits far
    // beyond the drain deadline: only the drain deadline can end this.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let options = ForwardOptions {
        queue_capacity: 8,
        deadline: Duration::from_secs(120),
        attempt_timeout: Duration::from_secs(120),
        ..fast()
    };
    let forwarder = Forwarder::new(&url, options).unwrap();
    for i in 0..5 {
        assert!(forwarder.send(&counter("drain", 1, i)));
    }
    // The worker holds one (its attempt hangs), four wait in the queue.
    eventually("four requests queued", || {
        forwarder.stats().queue_depth == 4
    });
    let stats = forwarder.stats();
    assert_eq!((stats.requests, stats.queue_capacity), (5, 8));
    assert!(stats.queue_high_water >= 4, "{stats:?}");

    let drain = Duration::from_millis(500);
    let started = Instant::now();
    forwarder.drain_handle().begin(started + drain);
    // Sent after the drain began, before its deadline (the rest of a ring): still queued.
    assert!(forwarder.send(&counter("drain", 1, 99)));
    let stats = forwarder.finish();
    let took = started.elapsed();
    // The attempt under way started before the drain (120 s timeout): `finish` waits the
    // drain deadline plus its one-second grace, not longer.
    assert!(took >= drain, "{took:?}");
    assert!(took < drain + Duration::from_millis(2500), "{took:?}");
    assert_eq!((stats.sent, stats.failed, stats.dropped), (0, 0, 0));
    assert_eq!(stats.drain_dropped, 6, "{stats:?}");
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.queue_depth, 0);
    drop(listener);
}

#[test]
fn a_drain_in_live_mode_retries_a_dead_receiver_until_the_deadline_only() {
    let port = closed_port();
    let options = ForwardOptions {
        backpressure: Backpressure::Drop,
        queue_capacity: 100,
        deadline: Duration::from_secs(60),
        ..fast()
    };
    let forwarder = Forwarder::new(&format!("http://127.0.0.1:{port}"), options).unwrap();
    for i in 0..10 {
        assert!(forwarder.send(&counter("live-drain", 1, i)));
    }
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    forwarder
        .drain_handle()
        .begin(started + Duration::from_millis(300));
    let stats = forwarder.finish();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1300), "{took:?}");
    assert_eq!(stats.sent, 0);
    assert!(stats.drain_dropped >= 1, "{stats:?}");
    assert_eq!(
        stats.sent + stats.failed + stats.dropped + stats.drain_dropped,
        10,
        "every request accounted for: {stats:?}"
    );
    assert!(stats.retries > 0, "{stats:?}");
}

#[test]
fn a_drain_with_a_receiver_that_answers_delivers_everything_queued() {
    let (url, received) = server(Vec::new());
    let forwarder = Forwarder::new(&url, fast()).unwrap();
    for i in 0..20 {
        forwarder.send(&counter("ok", 1, i));
    }
    forwarder
        .drain_handle()
        .begin(Instant::now() + Duration::from_secs(10));
    let stats = forwarder.finish();
    assert_eq!(
        (stats.sent, stats.failed, stats.drain_dropped),
        (20, 0, 0),
        "{stats:?}"
    );
    assert_eq!(received.try_iter().count(), 20);
}

#[test]
fn sigterm_drains_a_file_run_within_the_drain_timeout_and_counts_the_rest() {
    // 300 requests, more than the queue holds (256): when SIGTERM comes the reader waits for
    // room, the worker's attempt hangs on a receiver that never answers.
    let requests: Vec<ExportMetricsServiceRequest> =
        (0..300).map(|i| counter("sigterm", 1, i)).collect();
    let buffers: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
    let path = perf_file("forward-sigterm.data", &buffers);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
        .args(["perf-data", path.to_str().unwrap(), "--forward", &url])
        .args(["--forward-timeout", "120s", "--drain-timeout", "1s"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    // 1 s of drain, then at most the 1 s grace for the attempt under way.
    assert!(took < Duration::from_millis(3500), "{took:?}\n{stderr}");
    assert!(took >= Duration::from_millis(900), "{took:?}\n{stderr}");
    // Requests were lost: the exit status says so.
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("forwarded 0 requests (0 failed, 0 dropped by the full queue"),
        "{stderr}"
    );
    assert!(
        stderr.contains("300 requests handed over")
            && stderr.contains("300 not delivered by the drain deadline (1.0 s after the stop"),
        "{stderr}"
    );
    assert!(stderr.contains("300 records: 300 decoded"), "{stderr}");
    drop(listener);
}

/// JSON lines to a reader that goes away (`| head`) while forwarding: the JSON output stops,
/// as documented, but what was handed to the forwarder is still delivered and counted. The run
/// used to exit 0 at the first failed write, dropping the forward queue without a word.
#[test]
fn a_closed_stdout_does_not_drop_what_is_forwarded() {
    let requests: Vec<ExportMetricsServiceRequest> =
        (0..500).map(|i| counter("pipe", 20, i)).collect();
    let buffers: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
    let path = perf_file("forward-closed-stdout.data", &buffers);
    let (url, received) = server(Vec::new());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
        .args(["perf-data", path.to_str().unwrap(), "--format", "json"])
        .args(["--forward", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is written
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stdout was closed"), "{stderr}");
    assert!(
        stderr.contains("forwarded 500 requests (0 failed, 0 dropped"),
        "{stderr}"
    );
    let bodies: Vec<Vec<u8>> = received.try_iter().map(|r| r.body).collect();
    assert!(bodies == buffers, "every request, in order");
}

/// Stdout failing (here a full disk, `/dev/full`) while forwarding: the run exits 1, as stdout
/// output was lost, but the forward queue is still delivered and counted, not dropped with the
/// process.
#[test]
fn a_failing_stdout_exits_1_but_still_delivers_what_is_forwarded() {
    let requests: Vec<ExportMetricsServiceRequest> =
        (0..200).map(|i| counter("full", 20, i)).collect();
    let buffers: Vec<Vec<u8>> = requests.iter().map(|r| r.encode_to_vec()).collect();
    let path = perf_file("forward-full-stdout.data", &buffers);
    let (url, received) = server(Vec::new());
    let out = Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
        .args(["perf-data", path.to_str().unwrap(), "--format", "json"])
        .args(["--forward", &url])
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
    assert!(
        stderr.contains("forwarded 200 requests (0 failed, 0 dropped"),
        "{stderr}"
    );
    let bodies: Vec<Vec<u8>> = received.try_iter().map(|r| r.body).collect();
    assert!(bodies == buffers, "every request, in order");
}
