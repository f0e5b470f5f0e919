//! The agent under load: `ue-metrics-decode live` (the real CLI, a release build as operators
//! run it, its default ring size, serving Prometheus on loopback as an agent does) reads three
//! producers writing at once (release builds too: ours `ue-e2e-app --load`, the upstream exporter's `ue-peer-upstream --load`, and an EventHeader
//! writer `ue-e2e-app --load --eventheader`) at the demo's rate (one export a second of a
//! demo-shaped load), at 20 times that rate, and as fast as each can. Every record written is decoded or counted lost (exactly: see `phase`); at the
//! demo's rate none may be lost, nor at 20 times it where the guest sustains that rate.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ue_metrics_e2e::guest::{measure, packed_program, DECODE_CLI, E2E_APP, PEER_UPSTREAM};
use ue_metrics_exporter::MetricsExporter;

use crate::common::output_text;

/// The EventHeader writer's provider, and its tracepoint (level 4, keyword 1).
const PROVIDER: &str = "ue_e2e_load";
const EVENTHEADER_EVENT: &str = "ue_e2e_load_L4K1";

/// How long each producer runs in each phase.
const PHASE_SECONDS: &str = "5";

/// `key=value` words of `line` (other words are ignored).
fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The `key=value` fields of the first line of `text` that starts with `prefix`.
fn line_fields(text: &str, prefix: &str) -> BTreeMap<String, String> {
    let line = text
        .lines()
        .find_map(|l| {
            l.trim_start_matches("ue-metrics-decode: ")
                .strip_prefix(prefix)
        })
        .unwrap_or_else(|| panic!("no {prefix:?} line in\n{text}"));
    fields(line)
}

fn number<T: std::str::FromStr>(map: &BTreeMap<String, String>, key: &str) -> T {
    map.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {key} in {map:?}"))
}

/// The value of the sample `name` (no labels) in Prometheus text.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A plain HTTP/1.0 GET of `/metrics` on `addr`: the body.
fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the agent");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// `ue-metrics-decode live` on our event and the EventHeader writer's, serving Prometheus.
struct Agent {
    child: Child,
    addr: String,
    stderr: JoinHandle<String>,
}

impl Agent {
    /// Starts the agent and waits until it reads every CPU's ring and serves its endpoint.
    fn start() -> Agent {
        let cli = packed_program(DECODE_CLI).unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new(cli)
            .args([
                "live",
                "--event",
                "otlp_metrics",
                "--event",
                EVENTHEADER_EVENT,
            ])
            .args(["--prometheus", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the agent");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
        let (mut addr, mut reading, mut seen, mut line) =
            (None, false, String::new(), String::new());
        while (addr.is_none() || !reading) && stderr.read_line(&mut line).unwrap_or(0) > 0 {
            reading |= line.contains("reading user_events/");
            if let Some(rest) = line.split("serving Prometheus metrics at http://").nth(1) {
                addr = Some(rest.trim().trim_end_matches("/metrics").to_owned());
            }
            seen.push_str(&line);
            line.clear();
        }
        let Some(addr) = addr.filter(|_| reading) else {
            let _ = child.kill();
            panic!("the agent did not start ({:?}): {seen}", child.wait());
        };
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            seen + &rest
        });
        Agent {
            child,
            addr,
            stderr,
        }
    }

    /// Records read and lost so far, from the agent's own metrics.
    fn counts(&self) -> (u64, u64) {
        let text = scrape(&self.addr);
        let read = sample(&text, "ue_metrics_decode_records_read_total");
        let lost = sample(&text, "ue_metrics_decode_records_lost_total");
        (
            read.unwrap_or_else(|| panic!("no records_read in\n{text}")),
            lost.unwrap_or_else(|| panic!("no records_lost in\n{text}")),
        )
    }

    /// Waits until the counts stop changing (the rings are drained).
    fn settle(&self) -> (u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = self.counts();
        loop {
            std::thread::sleep(Duration::from_millis(400));
            let now = self.counts();
            if now == last {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "the agent never settled: {now:?}"
            );
            last = now;
        }
    }

    /// Stops the agent with SIGTERM; its exit status and stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let kill = Command::new("/bin/busybox")
            .args(["kill", "-TERM", &self.child.id().to_string()])
            .status()
            .expect("busybox kill");
        assert!(kill.success());
        let status = self.child.wait().expect("wait for the agent");
        let text = self.stderr.join().expect("stderr thread");
        (status, text)
    }
}

/// What one producer wrote: (events the kernel accepted, exports made, seconds it ran).
fn written(output: &Output, prefix: &str, key: &str, what: &str) -> (u64, u64, f64) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{what}: {}", output_text(output));
    let map = line_fields(&stdout, prefix);
    for zero in ["write_errors", "failed_exports", "skipped_unavailable"] {
        if let Some(n) = map.get(zero) {
            assert_eq!(n, "0", "{what}: {zero} in {map:?}");
        }
    }
    (
        number(&map, key),
        number(&map, "ticks"),
        number(&map, "seconds"),
    )
}

fn spawn(program: &std::path::Path, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()))
}

/// The CPUs online in this guest (`/sys/devices/system/cpu/online`, e.g. `0-1`).
fn online_cpus() -> Vec<u32> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("cpu/online");
    let mut cpus = Vec::new();
    for range in text.trim().split(',') {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let (first, last): (u32, u32) = (first.parse().unwrap(), last.parse().unwrap());
        cpus.extend(first..=last);
    }
    cpus
}

/// One phase: the three producers at `interval_ms` (0: back to back) while the agent reads.
/// Returns (records read, lost, the producers' exports per second: ours, peer, EventHeader).
fn phase(name: &str, interval_ms: u64) -> (u64, u64, [f64; 3]) {
    let peer = packed_program(PEER_UPSTREAM).unwrap_or_else(|e| panic!("{e}"));
    let app = packed_program(E2E_APP).unwrap_or_else(|e| panic!("{e}"));
    let interval = interval_ms.to_string();
    let load = ["--load", PHASE_SECONDS, "--interval-ms", &interval];
    let agent = Agent::start();

    let ours = spawn(&app, &load);
    let upstream = spawn(&peer, &load);
    let mut eventheader_args = load.to_vec();
    eventheader_args.extend(["--eventheader", PROVIDER]);
    let eventheader = spawn(&app, &eventheader_args);
    let ours = ours.wait_with_output().expect("ours");
    let upstream = upstream.wait_with_output().expect("peer");
    let eventheader = eventheader.wait_with_output().expect("eventheader writer");
    let (ours_events, ours_ticks, ours_seconds) = written(&ours, "APP-STATS ", "events", "ours");
    let (peer_events, peer_ticks, peer_seconds) =
        written(&upstream, "PEER-LOAD ", "points", "peer");
    let (eh_events, eh_ticks, eh_seconds) =
        written(&eventheader, "APP-STATS ", "events", "eventheader writer");
    let seconds = ours_seconds.max(peer_seconds).max(eh_seconds);
    // Exports per second each producer made (at a fixed rate: whether it kept up).
    let rates = [
        ours_ticks as f64 / ours_seconds,
        peer_ticks as f64 / peer_seconds,
        eh_ticks as f64 / eh_seconds,
    ];

    // A ring that was full when the producers stopped reports the samples it dropped with the
    // next sample written to it: once the agent has drained every ring, one export from each
    // CPU brings every pending count in.
    agent.settle();
    let mut marker_events = 0;
    for cpu in online_cpus() {
        let marker = Command::new("/bin/busybox")
            .args(["taskset", "-c", &cpu.to_string()])
            .arg(&app)
            .args(["--load", "10", "--exports", "1", "--interval-ms", "0"])
            .output()
            .expect("busybox taskset");
        marker_events += written(&marker, "APP-STATS ", "events", "marker").0;
    }
    let (read_live, lost_live) = agent.settle();
    let (status, stderr) = agent.stop();
    let totals = line_fields(&stderr, "totals ");
    let (read, decoded, lost): (u64, u64, u64) = (
        number(&totals, "events"),
        number(&totals, "decoded"),
        number(&totals, "lost"),
    );
    assert_eq!((read, lost), (read_live, lost_live), "{stderr}");
    let written = ours_events + peer_events + eh_events + marker_events;
    measure(&format!("tput_{name}_interval_ms"), interval_ms);
    measure(&format!("tput_{name}_seconds"), format!("{seconds:.2}"));
    measure(
        &format!("tput_{name}_exports_per_s"),
        format!("{:.1}/{:.1}/{:.1}", rates[0], rates[1], rates[2]),
    );
    measure(&format!("tput_{name}_ours_events"), ours_events);
    measure(&format!("tput_{name}_peer_events"), peer_events);
    measure(&format!("tput_{name}_eventheader_events"), eh_events);
    measure(&format!("tput_{name}_written"), written);
    measure(&format!("tput_{name}_decoded"), decoded);
    measure(&format!("tput_{name}_lost"), lost);
    let per_second = (read - marker_events.min(read)) as f64 / seconds;
    measure(
        &format!("tput_{name}_records_per_s"),
        format!("{per_second:.0}"),
    );
    assert_eq!(decoded, read, "every record read decodes: {stderr}");
    // The exit status tells the truth too: 0 when nothing was lost, 3 when the kernel dropped
    // records (the flat-out phase may).
    let expected = if lost > 0 { 3 } else { 0 };
    assert_eq!(
        status.code(),
        Some(expected),
        "agent exit status, {lost} lost: {stderr}"
    );
    assert_eq!(
        written,
        read + lost,
        "{name}: every record written (ours {ours_events}, peer {peer_events}, EventHeader \
         {eh_events}, markers {marker_events}) is read or counted lost\n{stderr}"
    );
    (read, lost, rates)
}

#[test]
fn three_producers_at_the_demo_rate_20_times_it_and_flat_out_lose_nothing_unaccounted() {
    // Both events exist before the agent opens them (the producers register them again).
    let _ours = MetricsExporter::builder()
        .with_require_user_events(true)
        .build()
        .expect("register otlp_metrics");
    let _eventheader = MetricsExporter::builder()
        .with_eventheader_provider(PROVIDER)
        .with_require_user_events(true)
        .build()
        .expect("register the EventHeader event");

    let (demo_read, demo_lost, _) = phase("demo", 1000);
    assert_eq!(demo_lost, 0, "nothing lost at the demo's rate");
    assert!(demo_read > 0);

    // 20 times the demo's rate. The claim (the default ring loses nothing) needs producers that
    // make 20 exports a second each; where the guest's CPUs cannot run them that fast (debug
    // builds under qemu TCG could not: 7-12 exports/s), the phase is measured and the claim
    // reported as not checked, with the rates reached.
    let (x20_read, x20_lost, x20_rates) = phase("x20", 50);
    assert!(x20_read > demo_read);
    let sustained = x20_rates.iter().all(|&rate| rate >= 18.0);
    if sustained {
        assert_eq!(
            x20_lost, 0,
            "the default ring loses nothing at 20 times the demo's rate"
        );
        measure("tput_x20_claim", "checked: 0 lost");
    } else {
        measure(
            "tput_x20_claim",
            format!(
                "not checked: this guest's producers made {:.1}/{:.1}/{:.1} exports/s, not 20",
                x20_rates[0], x20_rates[1], x20_rates[2]
            ),
        );
    }
    // Flat out: losses are allowed, and counted exactly (checked in `phase`).
    phase("max", 0);
}
