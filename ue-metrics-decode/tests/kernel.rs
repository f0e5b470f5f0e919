//! Kernel tests (feature `kernel-tests`, run in the VM by `cargo xtask e2e`): a real producer
//! writes real requests; they are read back live through perf and through ftrace text, and must
//! come back identical.

mod common;
#[path = "kernel/nonroot.rs"]
mod nonroot;

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

/// Registers `name_args` (waiting, like [`register_when_free`], for a registration of the same
/// name with other fields that an earlier test left to go away).
fn register(data: &Arc<DataFile>, name_args: &str) -> Event {
    register_when_free(data, name_args, RegisterOptions::default())
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
    ftrace::read_trace(trace.as_bytes(), &["otlp_metrics"], &mut stats, |r| {
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
    /// `None` once waited for; killed on drop if still running, so a failing test leaves no
    /// agent holding events for the tests after it.
    child: Option<std::process::Child>,
    lines: std::sync::mpsc::Receiver<String>,
    /// Its stderr so far.
    log: Vec<String>,
}

impl LiveCli {
    /// Starts `ue-metrics-decode live ARGS` and returns once it reports reading: every CPU's
    /// ring is open then (the event's enable bit comes with the first one, and events written on
    /// a CPU not yet attached are missed).
    fn start(args: &[&str]) -> LiveCli {
        LiveCli::start_with(&[], args)
    }

    /// [`start`](Self::start) through `runner` (a program and its arguments that run the CLI,
    /// such as `setpriv ... --`); empty: directly.
    fn start_with(runner: &[&str], args: &[&str]) -> LiveCli {
        let mut cli = LiveCli::spawn_with(runner, args);
        cli.wait_for("reading user_events");
        cli
    }

    /// Starts `ue-metrics-decode live ARGS` without waiting for anything.
    fn spawn(args: &[&str]) -> LiveCli {
        LiveCli::spawn_with(&[], args)
    }

    /// [`spawn`](Self::spawn) through `runner` (see [`start_with`](Self::start_with)).
    fn spawn_with(runner: &[&str], args: &[&str]) -> LiveCli {
        let cli = env!("CARGO_BIN_EXE_ue-metrics-decode");
        let (program, before) = match runner.split_first() {
            Some((program, rest)) => (*program, [rest, &[cli]].concat()),
            None => (cli, Vec::new()),
        };
        LiveCli::spawn_command(
            std::process::Command::new(program)
                .args(before)
                .arg("live")
                .args(args),
            |command| command.spawn(),
        )
    }

    /// Spawns `command` (through `spawn`) with stdout and stderr piped.
    fn spawn_command(
        command: &mut std::process::Command,
        spawn: impl FnOnce(&mut std::process::Command) -> std::io::Result<std::process::Child>,
    ) -> LiveCli {
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = spawn(command).unwrap();
        let (line_tx, lines) = std::sync::mpsc::channel::<String>();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in stderr.lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        LiveCli {
            child: Some(child),
            lines,
            log: Vec::new(),
        }
    }

    /// Waits (up to 10 s) until its stderr has a line containing `needle`; returns the line.
    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            if let Some(line) = self.log.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => self.log.push(line),
                Err(e) => panic!("the CLI never said {needle:?} ({e}): {:?}", self.log),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("not waited for yet").id()
    }

    /// Its exit status if it has ended, and its stderr so far: for failure messages.
    fn state(&mut self) -> String {
        self.log.extend(self.lines.try_iter());
        let status = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        format!(
            "exit status {status:?} (None: running); stderr: {:?}",
            self.log
        )
    }

    /// SIGINT, then its exit status, stdout and whole stderr.
    fn interrupt(self) -> (std::process::ExitStatus, String, String) {
        self.signal("-INT")
    }

    /// SIGTERM (how systemd stops it), then its exit status, stdout and whole stderr.
    fn terminate(self) -> (std::process::ExitStatus, String, String) {
        self.signal("-TERM")
    }

    fn signal(self, signal: &str) -> (std::process::ExitStatus, String, String) {
        let kill = std::process::Command::new("/bin/busybox")
            .args(["kill", signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        self.wait()
    }

    /// Waits for it to end by itself (`--count`, `--duration`): its exit status, stdout and
    /// whole stderr.
    fn wait(mut self) -> (std::process::ExitStatus, String, String) {
        let child = self.child.take().expect("not waited for yet");
        let out = child.wait_with_output().unwrap();
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
    // The receiver is down: the requests wait in the queue. Written from each CPU in turn (a
    // ring per CPU): they still go out in the order written.
    let cpus = online_cpus();
    let mut sent = Vec::new();
    for i in 0..5 {
        user_events_sys::testing::pin_current_thread_to_cpu(cpus[i % cpus.len()]).unwrap();
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
    // SIGINT started the drain; nothing was left for it.
    assert!(
        stderr.contains("forward queue: 5 requests handed over, high-water ")
            && stderr.contains(
                " 0 not delivered by the drain deadline (10.0 s after the stop; dropped)"
            ),
        "{stderr}"
    );
}

/// The CPUs the kernel has online.
fn online_cpus() -> Vec<u32> {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    user_events_sys::perf::parse_cpu_list(&list).unwrap()
}

/// Registers `name_args`, retrying while an earlier registration of the same name with other
/// fields is still going away (EADDRINUSE until the kernel frees it).
fn register_when_free(data: &Arc<DataFile>, name_args: &str, options: RegisterOptions) -> Event {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match data.register(name_args, options) {
            Ok(event) => return event,
            Err(e) if Instant::now() < deadline => {
                eprintln!("register {name_args:?}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("register {name_args:?}: {e}"),
        }
    }
}

/// Deletes `name` once nothing references it, so that later tests can register the name with
/// other fields.
fn delete_when_unused(tracefs: &Tracefs, name: &str) {
    let deleter = DataFile::open(tracefs).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tracefs.event_exists("user_events", name) && Instant::now() < deadline {
        let _ = deleter.delete(name);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the C++ exporter (opentelemetry-cpp-contrib, user_events metrics) writes after the
/// write index: its `int size` in the machine's order, then the request.
fn cpp_payload(request: &ExportMetricsServiceRequest) -> Vec<u8> {
    let bytes = request.encode_to_vec();
    let mut out = (bytes.len() as u32).to_ne_bytes().to_vec();
    out.extend_from_slice(&bytes);
    out
}

#[test]
fn cpp_style_writer_reads_back_live() {
    let tracefs = tracefs();
    // Earlier tests registered the name with our fields: wait until it is gone.
    delete_when_unused(&tracefs, "otlp_metrics");
    let data = DataFile::open(&tracefs).unwrap();
    // The C++ exporter registers the bare name: no fields. (It cannot coexist with the
    // three-field registration of the same name: that one gets EADDRINUSE.)
    let event = register_when_free(&data, "otlp_metrics", RegisterOptions::default());
    let text = tracefs.event_format("user_events", "otlp_metrics").unwrap();
    eprintln!("format of the C++ exporter's event:\n{text}");
    let format = RecordFormat::parse(&text).unwrap();
    assert!(format.event_fields().is_empty(), "{text}");

    let mut source = LiveSource::open(&tracefs, &LiveOptions::default()).unwrap();
    assert_eq!(
        source.tracepoints()[0].decoder.layout_name(),
        "length-prefixed"
    );
    let sent = [request("cpp-a", 3), request("cpp-b", 40)];
    for r in &sent {
        event.write(&[IoSlice::new(&cpp_payload(r))]).unwrap();
    }
    let records = collect(&mut source, sent.len());
    assert_eq!(records.len(), sent.len());
    for (record, expected) in records.iter().zip(&sent) {
        assert_eq!(record.result.as_ref().unwrap(), expected);
        assert_eq!(record.meta.pid, Some(std::process::id()));
    }
    measure("decode_cpp_layout_records", records.len());
    drop(source);
    drop(event);
    drop(data);
    delete_when_unused(&tracefs, "otlp_metrics");
}

#[test]
fn multi_format_registrations_are_read_side_by_side() {
    let tracefs = tracefs();
    let data = DataFile::open(&tracefs).unwrap();
    let multi = RegisterOptions {
        multi_format: true,
        ..RegisterOptions::default()
    };
    // Ours and the C++ exporter's layout under one name, as multi-format events.
    let ours = register_when_free(&data, &format!("otlp_metrics {EVENT_FIELDS}"), multi);
    let cpp = register_when_free(&data, "otlp_metrics", multi);
    assert!(ours.multi_format() && cpp.multi_format(), "6.9+ kernel");
    let mut source = LiveSource::open(&tracefs, &LiveOptions::default()).unwrap();
    let mut layouts: Vec<_> = source
        .tracepoints()
        .iter()
        .filter(|t| t.group == "user_events_multi")
        .map(|t| {
            assert!(t.name.starts_with("otlp_metrics."), "{}", t.name);
            t.decoder.layout_name()
        })
        .collect();
    layouts.sort();
    assert_eq!(
        layouts,
        ["fields", "length-prefixed"],
        "{:?}",
        source.tracepoints()
    );

    let sent = [request("multi-ours", 4), request("multi-cpp", 5)];
    ours.write(&[IoSlice::new(&encode_payload(&sent[0].encode_to_vec()))])
        .unwrap();
    cpp.write(&[IoSlice::new(&cpp_payload(&sent[1]))]).unwrap();
    let records = collect(&mut source, 2);
    let mut decoded: Vec<_> = records.iter().map(|r| r.result.clone().unwrap()).collect();
    decoded.sort_by_key(|r| r.encoded_len());
    assert_eq!(decoded, sent);
    measure(
        "decode_multi_format_tracepoints",
        source.tracepoints().len(),
    );
    drop(source);
    drop(ours);
    drop(cpp);
    wait_until_no_multi_format(&tracefs, "otlp_metrics");
}

/// Waits (up to 5 s) until the kernel has freed every multi-format registration of `name`
/// (it does so shortly after the last reference goes), so the next test starts clean.
fn wait_until_no_multi_format(tracefs: &Tracefs, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while live::resolve_event(tracefs, "user_events", name)
        .iter()
        .any(|(group, _)| group == "user_events_multi")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn several_events_in_one_source_and_on_the_command_line() {
    let tracefs = tracefs();
    let data = DataFile::open(&tracefs).unwrap();
    let ours = register(&data, &format!("ue_decode_several {EVENT_FIELDS}"));
    let header_name = "UeDecodeSeveral_L4K1";
    let header = register(
        &data,
        &format!("{header_name} u8 eventheader_flags;u8 version;u16 id;u16 tag;u8 opcode;u8 level"),
    );
    let header_event = |r: &ExportMetricsServiceRequest| {
        encode_event(
            "otlp_metrics",
            &[("buffer", 13, &binary_field(&r.encode_to_vec()).unwrap())],
        )
    };

    // The library: one source, two formats.
    let options = LiveOptions {
        event: "ue_decode_several".into(),
        extra_events: vec![header_name.into()],
        ..LiveOptions::default()
    };
    let mut source = LiveSource::open(&tracefs, &options).unwrap();
    let layouts: Vec<_> = source
        .tracepoints()
        .iter()
        .map(|t| t.decoder.layout_name())
        .collect();
    assert_eq!(layouts, ["fields", "eventheader"]);
    let sent = [request("several-fields", 2), request("several-header", 7)];
    ours.write(&[IoSlice::new(&encode_payload(&sent[0].encode_to_vec()))])
        .unwrap();
    header
        .write(&[IoSlice::new(&header_event(&sent[1]))])
        .unwrap();
    let records = collect(&mut source, 2);
    let decoded: Vec<_> = records.iter().map(|r| r.result.clone().unwrap()).collect();
    assert_eq!(decoded, sent);
    drop(source);

    // The CLI: --event twice. It listens on every CPU once it says so (see `LiveCli`).
    let cli = LiveCli::start(&[
        "--event",
        "ue_decode_several",
        "--event",
        header_name,
        "--count",
        "2",
        "--duration",
        "20s",
    ]);
    assert!(ours.enabled() && header.enabled());
    ours.write(&[IoSlice::new(&encode_payload(&sent[0].encode_to_vec()))])
        .unwrap();
    header
        .write(&[IoSlice::new(&header_event(&sent[1]))])
        .unwrap();
    let (status, stdout, stderr) = cli.wait();
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("several-fields") && stdout.contains("several-header"),
        "{stdout}"
    );
    assert!(
        stderr.contains("user_events/ue_decode_several (fields)")
            && stderr.contains(&format!("user_events/{header_name} (eventheader)")),
        "{stderr}"
    );
}

/// A plain HTTP/1.0 GET of `path` on `addr`: the body.
fn http_get(addr: &str, path: &str) -> String {
    try_http_get(addr, path).unwrap()
}

/// [`http_get`], with the error when the request fails.
fn try_http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

#[test]
fn live_serves_prometheus_with_the_writers_pid() {
    use std::io::BufRead as _;
    let tracefs = tracefs();
    let data = DataFile::open(&tracefs).unwrap();
    let event = register(&data, &format!("ue_decode_prom {EVENT_FIELDS}"));
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
    // The endpoint's address, and "reading": every CPU's ring is open (see `LiveCli`), and the
    // endpoint is up: it is bound before "reading" is said.
    let mut reading = false;
    while (addr.is_none() || !reading) && stderr.read_line(&mut line).unwrap() > 0 {
        reading |= line.contains("reading user_events/");
        assert!(
            addr.is_some() || !reading,
            "\"reading\" before the endpoint's address: {seen}{line}"
        );
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
    // The agent's own count follows the series within one poll of the rings.
    let counted = "ue_metrics_decode_records_decoded_total 1";
    loop {
        let body = http_get(&addr, "/metrics");
        if body.lines().any(|l| l == expected) && body.lines().any(|l| l == counted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no {expected} and {counted} in\n{body}"
        );
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

#[test]
fn perf_record_of_the_cpp_layout_and_ours_decodes_from_the_file() {
    // (Multi-format events cannot be recorded by Debian's perf 6.12: its libtraceevent stops
    // at the `.` in `name: otlp_metrics.<id>` ("expected type 6 but read 4"). The perf.data
    // reader's multi-format handling is tested on the host, tests/byte_order.rs.)
    // x86_64 guests always get Debian's perf: there, a missing perf fails below.
    if !cfg!(target_arch = "x86_64") && !std::path::Path::new("/usr/bin/perf").is_file() {
        // Never silent: `cargo xtask e2e` lists the skip in its summary.
        let why = format!(
            "no /usr/bin/perf in this {} guest (the host's Debian perf is an x86_64 program)",
            std::env::consts::ARCH
        );
        println!("UE-SKIP perf_record_of_the_cpp_layout_and_ours_decodes_from_the_file: {why}");
        return;
    }
    let tracefs = tracefs();
    delete_when_unused(&tracefs, "otlp_metrics");
    let data = DataFile::open(&tracefs).unwrap();
    let cpp = register_when_free(&data, "otlp_metrics", RegisterOptions::default());
    let ours_name = "ue_decode_perf_ours";
    let ours = register(&data, &format!("{ours_name} {EVENT_FIELDS}"));

    let path = "/tmp/ue-decode-producers.data";
    let started = "/tmp/ue-decode-producers.started";
    let _ = std::fs::remove_file(started);
    let perf = std::process::Command::new("/usr/bin/perf")
        .args([
            "record",
            "--no-bpf-event",
            "-a",
            "-e",
            "user_events:otlp_metrics",
        ])
        .args(["-e", &format!("user_events:{ours_name}"), "-o", path])
        // The counters are on once the workload runs (the enable bits flip earlier, at open).
        .args(["--", "/bin/busybox", "sh", "-c"])
        .arg(format!(
            "/bin/busybox touch {started}; exec /bin/busybox sleep 8"
        ))
        .env("PAGER", "cat")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run perf (packed by cargo xtask e2e)");
    // perf enables the events before it starts the workload; it starts slowly under TCG.
    let mut perf = Some(perf);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(cpp.enabled() && ours.enabled() && std::path::Path::new(started).exists()) {
        let child = perf.as_mut().expect("running");
        let exited = child.try_wait().unwrap().is_some();
        if exited || Instant::now() >= deadline {
            // Never leave perf holding the events: later tests register the name again.
            let mut child = perf.take().expect("running");
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "perf never enabled both events (exited: {exited}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let perf = perf.expect("running");
    let sent = [request("perf-cpp", 6), request("perf-ours", 2)];
    cpp.write(&[IoSlice::new(&cpp_payload(&sent[0]))]).unwrap();
    ours.write(&[IoSlice::new(&encode_payload(&sent[1].encode_to_vec()))])
        .unwrap();
    let out = perf.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "perf record: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut source = ue_metrics_decode::PerfDataSource::open(path).unwrap();
    let mut records = Vec::new();
    source.for_each(|r| records.push(r)).unwrap();
    let decoded: Vec<_> = records.iter().map(|r| r.result.clone().unwrap()).collect();
    assert_eq!(decoded, sent, "{records:?} {:?}", source.stats());
    for record in &records {
        assert_eq!(record.meta.pid, Some(std::process::id()));
    }
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode"))
        .args(["perf-data", path, "--event", ours_name])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("perf-ours"), "{stdout}");
    measure("decode_perf_data_producer_layouts", records.len());
    drop(cpp);
    drop(ours);
    drop(data);
    delete_when_unused(&tracefs, "otlp_metrics");
}

/// Writes `requests` (our layout) through `event`.
fn write_all(event: &Event, requests: &[ExportMetricsServiceRequest]) {
    for r in requests {
        event
            .write(&[IoSlice::new(&encode_payload(&r.encode_to_vec()))])
            .unwrap();
    }
}

/// Waits up to 5 s for `condition`.
fn within_5s(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A producer comes, writes, and goes (its registration and its `user_events_data` fd are
/// closed, as when it exits); a new one registers the same event and writes. `live` must get
/// everything, from the same tracepoint: the kernel keeps the event while perf listens (the
/// perf registration holds a reference), and deletes it once the agent is gone too.
fn producers_come_and_go(
    name: &str,
    cli: &mut Option<LiveCli>,
    start_cli: impl FnOnce() -> LiveCli,
) {
    let tracefs = tracefs();
    let name_args = format!("{name} {EVENT_FIELDS}");
    let services: Vec<String> = ["first-a", "first-b", "second-a", "second-b", "second-c"]
        .iter()
        .map(|s| format!("{name}-{s}"))
        .collect();
    let sent: Vec<_> = services
        .iter()
        .zip([2, 3, 4, 1, 6])
        .map(|(service, points)| request(service, points))
        .collect();
    let (first, second) = sent.split_at(2);
    let data = DataFile::open(&tracefs).unwrap();
    let event = register(&data, &name_args);
    *cli = Some(start_cli());
    assert!(event.enabled(), "the agent listens");
    let id = tracefs.event_id("user_events", name).unwrap();
    write_all(&event, first);
    // The producer exits.
    drop(event);
    drop(data);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        tracefs.event_exists("user_events", name),
        "the event stays while the agent reads it"
    );
    // A new producer: the same tracepoint, enabled at once.
    let data = DataFile::open(&tracefs).unwrap();
    let event = register(&data, &name_args);
    assert_eq!(tracefs.event_id("user_events", name).unwrap(), id);
    assert!(event.enabled(), "the agent still listens");
    write_all(&event, second);
    drop(event);
    drop(data);
    std::thread::sleep(Duration::from_millis(500));
    let (status, stdout, stderr) = cli.take().unwrap().interrupt();
    assert!(status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}\n{stderr}");
    for (line, service) in lines.iter().zip(&services) {
        assert!(line.contains(&format!("\"{service}\"")), "{line}");
    }
    assert!(
        stderr.contains("5 records: 5 decoded, 0 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("lost=0"), "{stderr}");
    // Nothing holds it any more: the kernel deletes the (non-persistent) event.
    assert!(
        within_5s(|| !tracefs.event_exists("user_events", name)),
        "the event outlived its last user"
    );
}

#[test]
fn live_keeps_reading_when_the_last_producer_exits_and_a_new_one_comes() {
    let mut cli = None;
    producers_come_and_go("ue_decode_restart", &mut cli, || {
        LiveCli::start(&["--event", "ue_decode_restart", "--pid", "off"])
    });
}

#[test]
fn live_started_before_any_producer_keeps_reading_across_producers() {
    let name = "ue_decode_restart_wait";
    // The agent first: it waits for the event.
    let mut waiting = LiveCli::spawn(&["--event", name, "--wait", "--pid", "off"]);
    waiting.wait_for("waiting for a producer");
    let mut cli = None;
    producers_come_and_go(name, &mut cli, move || {
        waiting.wait_for("reading user_events");
        waiting
    });
}

#[test]
fn live_attaches_multi_format_registrations_made_after_it_started() {
    let tracefs = tracefs();
    // The name our decoder knows both layouts under (ours and the C++ exporter's).
    let name = "otlp_metrics";
    let multi = RegisterOptions {
        multi_format: true,
        ..RegisterOptions::default()
    };
    let data = DataFile::open(&tracefs).unwrap();
    let ours = register_when_free(&data, &format!("{name} {EVENT_FIELDS}"), multi);
    assert!(ours.multi_format(), "6.9+ kernel");
    let mut cli = LiveCli::start(&["--event", name, "--pid", "off"]);
    let sent = [
        request("rescan-ours-1", 2),
        request("rescan-cpp-1", 3),
        request("rescan-cpp-2", 4),
        request("rescan-ours-again", 5),
    ];
    write_all(&ours, &sent[..1]);
    // Another layout under the same name: a new tracepoint, unknown to the agent so far.
    let cpp = register_when_free(&data, name, multi);
    let line = cli.wait_for("now also reading user_events_multi/");
    assert!(line.contains("(length-prefixed)"), "{line}");
    assert!(cpp.enabled(), "attached: the kernel enabled it");
    for r in &sent[1..3] {
        cpp.write(&[IoSlice::new(&cpp_payload(r))]).unwrap();
    }
    // The first producer exits; one with its layout comes back: the same tracepoint (the
    // agent's listener kept it), no new attach needed.
    drop(ours);
    let again_data = DataFile::open(&tracefs).unwrap();
    let again = register_when_free(&again_data, &format!("{name} {EVENT_FIELDS}"), multi);
    assert!(again.enabled());
    write_all(&again, &sent[3..]);
    std::thread::sleep(Duration::from_millis(500));
    let (status, stdout, stderr) = cli.interrupt();
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 4, "{stdout}\n{stderr}");
    for (line, service) in stdout.lines().zip([
        "rescan-ours-1",
        "rescan-cpp-1",
        "rescan-cpp-2",
        "rescan-ours-again",
    ]) {
        assert!(line.contains(&format!("\"{service}\"")), "{line}");
    }
    assert!(
        stderr.contains("4 records: 4 decoded, 0 failed"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("now also reading").count(),
        1,
        "one new tracepoint: {stderr}"
    );
    measure("decode_rescan_attached_tracepoints", 1);
    drop(again);
    drop(cpp);
    drop(again_data);
    drop(data);
    wait_until_no_multi_format(&tracefs, name);
}

#[test]
fn register_makes_a_persistent_event_when_allowed() {
    let tracefs = tracefs();
    let name = "ue_decode_persist";
    assert!(!tracefs.event_exists("user_events", name));
    let cli = LiveCli::start(&["--event", name, "--register", "--duration", "1s"]);
    let (status, _, stderr) = cli.wait();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "registered user_events/{name} as a persistent event (USER_EVENT_REG_PERSIST)"
        )),
        "{stderr}"
    );
    // The agent is gone, the event stays (a non-persistent one goes within milliseconds).
    std::thread::sleep(Duration::from_secs(1));
    assert!(tracefs.event_exists("user_events", name), "{stderr}");
    // A producer uses it as its own.
    let data = DataFile::open(&tracefs).unwrap();
    drop(register(&data, &format!("{name} {EVENT_FIELDS}")));
    drop(data);
    delete_when_unused(&tracefs, name);
    assert!(!tracefs.event_exists("user_events", name));
}

/// Sets `/proc/sys/kernel/perf_event_paranoid` while alive, restoring the old value on drop.
struct Paranoid(String);

impl Paranoid {
    fn set(value: &str) -> Paranoid {
        let path = "/proc/sys/kernel/perf_event_paranoid";
        let old = std::fs::read_to_string(path).unwrap();
        std::fs::write(path, value).unwrap();
        Paranoid(old)
    }
}

impl Drop for Paranoid {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/perf_event_paranoid", self.0.trim());
    }
}

#[test]
fn register_without_cap_perfmon_holds_the_event_while_the_agent_runs() {
    use user_events_sys::testing::{spawn_without_capabilities, CAP_PERFMON, CAP_SYS_ADMIN};
    let tracefs = tracefs();
    let name = "ue_decode_held";
    assert!(!tracefs.event_exists("user_events", name));
    // Root without CAP_PERFMON and CAP_SYS_ADMIN: PERSIST is refused (EPERM); perf itself
    // works through perf_event_paranoid=-1.
    let _paranoid = Paranoid::set("-1");
    let mut cli = LiveCli::spawn_command(
        std::process::Command::new(env!("CARGO_BIN_EXE_ue-metrics-decode")).args([
            "live",
            "--event",
            name,
            "--register",
            "--pages",
            "4",
            "--pid",
            "off",
        ]),
        |command| spawn_without_capabilities(command, &[CAP_PERFMON, CAP_SYS_ADMIN]),
    );
    let line = cli.wait_for(&format!("registered user_events/{name}"));
    assert!(line.contains("without PERSIST"), "{line}");
    cli.wait_for("reading user_events");
    assert!(tracefs.event_exists("user_events", name));
    // It is a real, readable event.
    let data = DataFile::open(&tracefs).unwrap();
    let event = register(&data, &format!("{name} {EVENT_FIELDS}"));
    assert!(event.enabled());
    write_all(&event, &[request("held", 3)]);
    drop(event);
    drop(data);
    std::thread::sleep(Duration::from_millis(500));
    let (status, stdout, stderr) = cli.interrupt();
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}\n{stderr}");
    // The agent held the last reference: the kernel deletes the event after it.
    assert!(
        within_5s(|| !tracefs.event_exists("user_events", name)),
        "{stderr}"
    );
}

impl Drop for LiveCli {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
