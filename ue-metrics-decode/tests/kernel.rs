//! Kernel tests (feature `kernel-tests`, run in the VM by `cargo xtask e2e`): a real producer
//! writes real requests; they are read back live through perf and through ftrace text, and must
//! come back identical.

mod common;

use std::io::IoSlice;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use ue_metrics_decode::eventheader::{binary_field, encode_event};
use ue_metrics_decode::live::{self, LiveError, LiveOptions, LiveSource, EVENT_FIELDS};
use ue_metrics_decode::payload::encode_payload;
use ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use ue_metrics_decode::proto::common::v1::{any_value, AnyValue, KeyValue};
use ue_metrics_decode::proto::metrics::v1::{
    metric, number_data_point, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use ue_metrics_decode::proto::resource::v1::Resource;
use ue_metrics_decode::{ftrace, DecodeStats, Record, RecordFormat};
use user_events_sys::{DataFile, Event, RegisterOptions, Tracefs};

fn measure(key: &str, value: impl std::fmt::Display) {
    println!("UE-MEASURE {key}={value}");
    eprintln!("UE-MEASURE {key}={value}");
}

/// A counter request with `points` points; about 60 bytes per point.
fn request(service: &str, points: usize) -> ExportMetricsServiceRequest {
    let kv = |k: &str, v: String| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        key_strindex: 0,
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service.into())],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "kernel.test.requests".into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: (0..points)
                            .map(|i| NumberDataPoint {
                                attributes: vec![kv("route", format!("/route/{i:04}"))],
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                value: Some(number_data_point::Value::AsInt(i as i64)),
                                ..Default::default()
                            })
                            .collect(),
                        aggregation_temporality: 2,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Requests of growing size, the last just under the ftrace limit (4048-byte buffer).
fn requests() -> Vec<ExportMetricsServiceRequest> {
    let mut out: Vec<_> = [1, 5, 20]
        .iter()
        .map(|&n| request("kernel-test", n))
        .collect();
    let mut n = 20;
    while request("kernel-test", n + 1).encoded_len() <= 4048 {
        n += 1;
    }
    out.push(request("kernel-test", n));
    out
}

fn tracefs() -> Tracefs {
    Tracefs::discover().expect("tracefs with user_events")
}

fn register(data: &Arc<DataFile>, name_args: &str) -> Event {
    data.register(name_args, RegisterOptions::default())
        .unwrap_or_else(|e| panic!("register {name_args}: {e}"))
}

fn trace_path(tracefs: &Tracefs) -> PathBuf {
    tracefs.root().join("trace")
}

/// Polls the live source until `count` records arrived or 10 s passed.
fn collect(source: &mut LiveSource, count: usize) -> Vec<Record> {
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while records.len() < count && Instant::now() < deadline {
        source
            .poll(Duration::from_millis(100), |r| records.push(r))
            .expect("poll");
    }
    records
}

#[test]
fn real_requests_read_back_identically_through_perf_and_ftrace() {
    let tracefs = tracefs();
    let data = DataFile::open(&tracefs).unwrap();
    let event = register(&data, &format!("otlp_metrics {EVENT_FIELDS}"));

    // The kernel's format file parses and locates the three fields.
    let text = tracefs.event_format("user_events", "otlp_metrics").unwrap();
    let format = RecordFormat::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let buffer = format.field("buffer").unwrap();
    assert_eq!((buffer.size, buffer.offset), (4, 20), "{text}");
    eprintln!("format as the kernel shows it:\n{text}");

    // Listeners: perf (live source) and ftrace.
    let mut source = LiveSource::open(&tracefs, &LiveOptions::default()).unwrap();
    std::fs::write(trace_path(&tracefs), "").unwrap(); // clear the ftrace buffer
    tracefs
        .set_event_enabled("user_events", "otlp_metrics", true)
        .unwrap();
    assert!(event.enabled());

    let requests = requests();
    for r in &requests {
        let payload = encode_payload(&r.encode_to_vec());
        event.write(&[IoSlice::new(&payload)]).unwrap();
    }
    let largest = requests.last().unwrap().encoded_len();
    measure("decode_largest_buffer_bytes", largest);

    // Through perf: same requests, with this process's pid.
    let records = collect(&mut source, requests.len());
    assert_eq!(
        records.len(),
        requests.len(),
        "perf delivered {} of {}",
        records.len(),
        requests.len()
    );
    for (record, expected) in records.iter().zip(&requests) {
        assert_eq!(record.result.as_ref().unwrap(), expected);
        assert_eq!(record.meta.pid, Some(std::process::id()));
        assert!(record.meta.time.is_some() && record.meta.cpu.is_some());
    }
    assert_eq!(source.stats().lost, 0);
    measure("decode_perf_records", records.len());

    // Through ftrace text.
    tracefs
        .set_event_enabled("user_events", "otlp_metrics", false)
        .unwrap();
    let trace = std::fs::read_to_string(trace_path(&tracefs)).unwrap();
    let mut stats = DecodeStats::default();
    let mut from_trace = Vec::new();
    ftrace::read_trace(trace.as_bytes(), "otlp_metrics", &mut stats, |r| {
        from_trace.push(r)
    })
    .unwrap();
    assert_eq!(from_trace.len(), requests.len(), "trace:\n{trace}");
    let longest_line = trace.lines().map(str::len).max().unwrap_or(0);
    measure("decode_ftrace_longest_line_bytes", longest_line);
    for line in trace.lines().filter(|l| l.len() == longest_line) {
        eprintln!(
            "longest line ends with {:?}",
            &line[line.len().saturating_sub(12)..]
        );
    }
    for (record, expected) in from_trace.iter().zip(&requests) {
        if expected.encoded_len() <= ftrace::TEXT_BUFFER_LIMIT {
            assert_eq!(record.result.as_ref().unwrap(), expected);
            assert!(record.meta.tid.is_some());
        } else {
            // The kernel cuts long text lines; the decoder must say so, not misdecode.
            let err = record.result.as_ref().unwrap_err();
            assert!(err.to_string().contains("cut this line short"), "{err}");
        }
    }
    measure("decode_ftrace_records", from_trace.len());
}

#[test]
fn bad_records_are_counted_and_skipped_live() {
    let tracefs = tracefs();
    let data = DataFile::open(&tracefs).unwrap();
    let event = register(&data, &format!("otlp_metrics {EVENT_FIELDS}"));
    let mut source = LiveSource::open(&tracefs, &LiveOptions::default()).unwrap();
    let good = encode_payload(&request("ok", 2).encode_to_vec());
    let mut bad_protocol = good.clone();
    bad_protocol[0] = 3;
    let not_protobuf = encode_payload(&[0xff, 0xff, 0xff]);
    for p in [&good, &bad_protocol, &not_protobuf, &good] {
        event.write(&[IoSlice::new(p)]).unwrap();
    }
    let records = collect(&mut source, 4);
    let ok = records.iter().filter(|r| r.result.is_ok()).count();
    assert_eq!((records.len(), ok), (4, 2));
    let stats = source.stats();
    assert_eq!(stats.errors.get("unknown-protocol"), Some(&1));
    assert_eq!(stats.errors.get("protobuf"), Some(&1));
}

#[test]
fn missing_event_is_explained_and_preregistration_works() {
    let tracefs = tracefs();
    let options = LiveOptions {
        event: "ue_decode_not_there".into(),
        ..LiveOptions::default()
    };
    let err = LiveSource::open(&tracefs, &options).unwrap_err();
    assert!(matches!(err, LiveError::NotRegistered { .. }), "{err}");
    assert!(err.to_string().contains("--register"), "{err}");
    assert!(!live::wait_for_event(
        &tracefs,
        "user_events",
        "ue_decode_not_there",
        Duration::from_millis(300)
    ));

    // Pre-register like perf-collect: the event exists without a producer and can be opened.
    live::preregister(&tracefs, "ue_decode_prereg").unwrap();
    assert!(live::wait_for_event(
        &tracefs,
        "user_events",
        "ue_decode_prereg",
        Duration::from_secs(1)
    ));
    let options = LiveOptions {
        event: "ue_decode_prereg".into(),
        ..LiveOptions::default()
    };
    let source = LiveSource::open(&tracefs, &options).unwrap();
    drop(source);
    // A producer registering the same fields gets the same event.
    let data = DataFile::open(&tracefs).unwrap();
    let event = register(&data, &format!("ue_decode_prereg {EVENT_FIELDS}"));
    drop(event);
    drop(data);
    // Clean up: delete once nothing references it any more.
    let deleter = DataFile::open(&tracefs).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while deleter.delete("ue_decode_prereg").is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!tracefs.event_exists("user_events", "ue_decode_prereg"));
}

#[test]
fn eventheader_buffer_field_reads_back_live() {
    let tracefs = tracefs();
    let data = DataFile::open(&tracefs).unwrap();
    let name = "UeDecodeTest_L4K1";
    let event = register(
        &data,
        &format!("{name} u8 eventheader_flags;u8 version;u16 id;u16 tag;u8 opcode;u8 level"),
    );
    let options = LiveOptions {
        event: name.into(),
        ..LiveOptions::default()
    };
    let mut source = LiveSource::open(&tracefs, &options).unwrap();
    let expected = request("eventheader", 10);
    let bytes = encode_event(
        "otlp_metrics",
        &[(
            "buffer",
            13,
            &binary_field(&expected.encode_to_vec()).unwrap(),
        )],
    );
    event.write(&[IoSlice::new(&bytes)]).unwrap();
    let records = collect(&mut source, 1);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].result.as_ref().unwrap(), &expected);
}

/// The `live` CLI, running.
struct LiveCli {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Its stderr so far.
    log: Vec<String>,
}

impl LiveCli {
    /// Starts `ue-metrics-decode live ARGS` and returns once it reports reading: every CPU's
    /// ring is open then (the event's enable bit comes with the first one, and events written on
    /// a CPU not yet attached are missed).
    fn start(args: &[&str]) -> LiveCli {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
            .arg("live")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (line_tx, lines) = std::sync::mpsc::channel::<String>();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in stderr.lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let mut log = Vec::new();
        while !log
            .iter()
            .any(|l: &String| l.contains("reading user_events/"))
        {
            match lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => log.push(line),
                Err(e) => panic!("the CLI never attached ({e}): {log:?}"),
            }
        }
        LiveCli { child, lines, log }
    }

    /// SIGINT, then its exit status, stdout and whole stderr.
    fn interrupt(mut self) -> (std::process::ExitStatus, String, String) {
        let kill = std::process::Command::new("/bin/busybox")
            .args(["kill", "-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = self.child.wait_with_output().unwrap();
        self.log.extend(self.lines.iter());
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            self.log.join("\n"),
        )
    }
}

#[test]
fn live_cli_ends_on_ctrl_c_with_its_output_and_final_count() {
    let tracefs = tracefs();
    let data = DataFile::open(&tracefs).unwrap();
    let event = register(&data, &format!("ue_decode_sigint {EVENT_FIELDS}"));
    let cli = LiveCli::start(&["--event", "ue_decode_sigint", "--format", "json"]);
    let sent = [request("sigint-a", 2), request("sigint-b", 3)];
    for r in &sent {
        event
            .write(&[IoSlice::new(&encode_payload(&r.encode_to_vec()))])
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let (status, stdout, stderr) = cli.interrupt();
    assert!(status.success(), "exit {status:?} after SIGINT: {stderr}");
    assert_eq!(
        stdout.lines().count(),
        2,
        "one JSON line per event: {stdout}"
    );
    assert!(
        stdout.contains("sigint-a") && stdout.contains("sigint-b"),
        "{stdout}"
    );
    assert!(stderr.contains("2 records: 2 decoded"), "{stderr}");
}

#[test]
fn live_forwarding_rides_out_a_receiver_outage_and_sends_the_producers_bytes() {
    // The guest's init leaves networking alone: bring up loopback (127.0.0.1).
    let lo = std::process::Command::new("/bin/busybox")
        .args(["ip", "link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(lo.success(), "ip link set lo up: {lo:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tracefs = tracefs();
    let data = DataFile::open(&tracefs).unwrap();
    let event = register(&data, &format!("ue_decode_forward {EVENT_FIELDS}"));
    let url = format!("http://127.0.0.1:{port}");
    // `--pid off`: exactly the producer's bytes (with the pid they gain one resource field;
    // `enrich::add_process_pid_encoded` is tested on the host).
    let cli = LiveCli::start(&[
        "--event",
        "ue_decode_forward",
        "--forward",
        &url,
        "--pid",
        "off",
    ]);
    // The receiver is down: the requests wait in the queue.
    let mut sent = Vec::new();
    for i in 0..5 {
        let mut bytes = request(&format!("forward-{i}"), 2).encode_to_vec();
        // Field 99 (varint 7), unknown to the decoder: it must reach the receiver.
        bytes.extend_from_slice(&[0x98, 0x06, 0x07]);
        event
            .write(&[IoSlice::new(&encode_payload(&bytes))])
            .unwrap();
        sent.push(bytes);
    }
    std::thread::sleep(Duration::from_secs(2));
    // The receiver comes up: everything queued arrives.
    let received = common::http::serve(
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap(),
        Vec::new(),
        Duration::ZERO,
    );
    let mut bodies = Vec::new();
    while bodies.len() < sent.len() {
        match received.recv_timeout(Duration::from_secs(30)) {
            Ok(r) => bodies.push(r.body),
            Err(_) => break,
        }
    }
    let (status, _, stderr) = cli.interrupt();
    assert_eq!(bodies.len(), sent.len(), "requests that arrived; {stderr}");
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(bodies == sent, "the producer's bytes, in order");
    assert!(
        stderr.contains("forwarded 5 requests (0 failed, 0 dropped by the full queue"),
        "{stderr}"
    );
}

/// A plain HTTP/1.0 GET of `path` on `addr`: the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

#[test]
fn live_serves_prometheus_with_the_writers_pid() {
    use std::io::BufRead as _;
    let tracefs = tracefs();
    let data = DataFile::open(&tracefs).unwrap();
    let event = register(&data, &format!("ue_decode_prom {EVENT_FIELDS}"));
    // The guest's init leaves the loopback interface down (127.0.0.1 is then unassigned).
    let up = std::process::Command::new("/bin/busybox")
        .args(["ip", "link", "set", "lo", "up"])
        .status();
    assert!(
        up.as_ref().is_ok_and(|s| s.success()),
        "ip link set lo up: {up:?}"
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
        .args([
            "live",
            "--event",
            "ue_decode_prom",
            "--prometheus",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut seen = String::new();
    let mut line = String::new();
    while addr.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.split("serving Prometheus metrics at http://").nth(1) {
            addr = Some(rest.trim().trim_end_matches("/metrics").to_owned());
        }
        seen.push_str(&line);
        line.clear();
    }
    let Some(addr) = addr else {
        panic!("no endpoint address on stderr ({:?}): {seen}", child.wait());
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !event.enabled() {
        assert!(Instant::now() < deadline, "the CLI never attached");
        std::thread::sleep(Duration::from_millis(20));
    }
    event
        .write(&[IoSlice::new(&encode_payload(
            &request("prom-live", 3).encode_to_vec(),
        ))])
        .unwrap();
    // The series appear once the record is read; `instance` is this process' pid.
    let expected = format!(
        r#"kernel_test_requests_total{{job="prom-live",instance="{}",route="/route/0002"}} 2"#,
        std::process::id()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http_get(&addr, "/metrics");
        if body.lines().any(|l| l == expected) {
            assert!(
                body.lines()
                    .any(|l| l == "ue_metrics_decode_records_decoded_total 1"),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no {expected} in\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill = std::process::Command::new("/bin/busybox")
        .args(["kill", "-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?} after SIGTERM: {rest}");
    assert!(
        rest.contains("prometheus: 3 points into 3 live series"),
        "{rest}"
    );
}
