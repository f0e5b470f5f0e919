//! `cargo xtask demo`: the example app exports every second through `user_events`, and the
//! `ue-metrics-decode live` collector shows what arrives, then both are compared. The collector
//! is also the host agent: it serves `--prometheus` on loopback, and at the end the demo scrapes
//! that endpoint as Prometheus would and shows what a backend gets ([`AgentView`]).
//!
//! Where it runs: natively when this kernel has `user_events` and this user may both write
//! events and read raw tracepoint samples (the same rules as `check-kernel`), else in the VM
//! with the project's user_events kernel. Either way the same code runs the session
//! ([`session`]): in the VM a static xtask does it as the guest's program (`demo-session`), so
//! natively and in the guest the collector and the app are started, watched and compared alike.

use crate::check_kernel::{self, Status};
use crate::e2e;
use crate::error::{Error, Result};
use crate::scrape::{self, Sample};
use crate::util::cargo;
use crate::vm::{guest, initramfs::Initramfs, kernel, qemu};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default length of the app's run.
pub const DEFAULT_SECONDS: u64 = 10;

/// How long the collector keeps reading after the app's run: the app's last export happens at
/// its shutdown, right after its run ends; then the demo scrapes the collector's Prometheus
/// endpoint while it still runs.
const COLLECTOR_GRACE: Duration = Duration::from_secs(3);

/// Where the collector serves Prometheus: loopback, a free port (it prints the address).
const PROMETHEUS_ADDR: &str = "127.0.0.1:0";

/// Where the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Where {
    /// Natively if the host can, else in the VM.
    #[default]
    Auto,
    /// On this kernel (fails if it cannot).
    Native,
    /// In the VM.
    Vm,
}

/// Options of `cargo xtask demo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// How long the app runs (it exports once a second).
    pub seconds: u64,
    /// Print OTLP/JSON lines instead of the live table.
    pub json: bool,
    /// Native or VM.
    pub place: Where,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seconds: DEFAULT_SECONDS,
            json: false,
            place: Where::Auto,
        }
    }
}

/// Parses `demo [--seconds N] [--json] [--native|--vm]`.
pub fn parse_args(args: &[String]) -> Result<DemoOptions> {
    let mut options = DemoOptions::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--seconds" => options.seconds = parse_seconds(iter.next())?,
            "--json" => options.json = true,
            "--native" => options.place = Where::Native,
            "--vm" => options.place = Where::Vm,
            other => return Err(Error::Usage(format!("demo: unexpected argument `{other}`"))),
        }
    }
    Ok(options)
}

fn parse_seconds(value: Option<&String>) -> Result<u64> {
    value
        .and_then(|v| v.parse().ok())
        .filter(|s| (1..=3600).contains(s))
        .ok_or_else(|| Error::Usage("--seconds needs a whole number from 1 to 3600".into()))
}

/// What [`session`] needs: the two programs and how to show their output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// The `ue-metrics-decode` binary.
    pub decoder: PathBuf,
    /// The example app (`ue-metrics-exporter/examples/basic.rs`) binary.
    pub app: PathBuf,
    /// The app's run time.
    pub seconds: u64,
    /// OTLP/JSON lines instead of the table.
    pub json: bool,
    /// The output ends on a terminal: let the collector redraw its table in place.
    pub terminal: bool,
}

/// Parses the guest's `demo-session --decoder P --app P --seconds N [--json] [--terminal]`.
pub fn parse_session_args(args: &[String]) -> Result<SessionOptions> {
    let mut decoder = None;
    let mut app = None;
    let mut options = SessionOptions {
        decoder: PathBuf::new(),
        app: PathBuf::new(),
        seconds: DEFAULT_SECONDS,
        json: false,
        terminal: false,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--decoder" => decoder = iter.next().map(PathBuf::from),
            "--app" => app = iter.next().map(PathBuf::from),
            "--seconds" => options.seconds = parse_seconds(iter.next())?,
            "--json" => options.json = true,
            "--terminal" => options.terminal = true,
            other => {
                return Err(Error::Usage(format!(
                    "demo-session: unexpected argument `{other}`"
                )))
            }
        }
    }
    match (decoder, app) {
        (Some(decoder), Some(app)) => Ok(SessionOptions {
            decoder,
            app,
            ..options
        }),
        _ => Err(Error::Usage(
            "demo-session needs --decoder PATH and --app PATH".into(),
        )),
    }
}

/// `cargo xtask demo`: picks native or VM, builds what is needed, runs the session.
pub fn demo(options: &DemoOptions) -> Result<i32> {
    let checks = check_kernel::judge(&check_kernel::Facts::gather());
    let blockers: Vec<String> = checks
        .iter()
        .filter(|c| {
            c.status == Status::Fail || (c.name == "read raw samples" && c.status != Status::Ok)
        })
        .map(|c| format!("{}: {}", c.name, c.found))
        .collect();
    let native = match options.place {
        Where::Vm => false,
        Where::Native if !blockers.is_empty() => {
            return Err(Error::Failed(format!(
                "demo --native: this machine cannot run it:\n  {}\n(run `cargo xtask check-kernel` \
                 for remedies, or drop --native to use the VM)",
                blockers.join("\n  ")
            )))
        }
        Where::Native => true,
        Where::Auto => {
            if let Some(first) = blockers.first() {
                eprintln!(
                    "demo: not natively ({first}; see `cargo xtask check-kernel`): using a VM \
                     with a user_events kernel"
                );
            }
            blockers.is_empty()
        }
    };
    if native {
        demo_native(options)
    } else {
        demo_vm(options)
    }
}

fn demo_native(options: &DemoOptions) -> Result<i32> {
    eprintln!("demo: running on this kernel; building the collector and the example app");
    let built = build(false)?;
    let ok = session(&SessionOptions {
        decoder: built.decoder,
        app: built.app,
        seconds: options.seconds,
        json: options.json,
        terminal: std::io::stdout().is_terminal(),
    })?;
    Ok(if ok { 0 } else { 1 })
}

fn demo_vm(options: &DemoOptions) -> Result<i32> {
    let started = Instant::now();
    eprintln!("demo: [1/3] the user_events kernel (built once and cached; the first build takes a few minutes)");
    let kernel = kernel::ensure_kernel()?;
    eprintln!(
        "demo: [2/3] building the collector, the example app and xtask for the guest (static)"
    );
    let built = build(true)?;
    let xtask = built
        .xtask
        .ok_or_else(|| Error::Failed("cargo built no xtask executable".into()))?;

    let mut initramfs = Initramfs::base()?;
    let decoder = initramfs.add_binary(&built.decoder, "ue-metrics-decode")?;
    let app = initramfs.add_binary(&built.app, "basic")?;
    let xtask = initramfs.add_binary(&xtask, "xtask")?;
    let mut argv: Vec<String> = vec![
        xtask.display().to_string(),
        "demo-session".into(),
        "--decoder".into(),
        decoder.display().to_string(),
        "--app".into(),
        app.display().to_string(),
        "--seconds".into(),
        options.seconds.to_string(),
    ];
    if options.json {
        argv.push("--json".into());
    }
    if std::io::stdout().is_terminal() {
        argv.push("--terminal".into());
    }
    let mut script = guest::Script::new();
    script.run("demo", &argv);
    initramfs.add_file("/init", script.render(), 0o755);

    let run_dir = qemu::RunDir::create("demo")?;
    let image = run_dir.path().join("initramfs.cpio");
    let size = initramfs.write(&image)?;
    let boot = qemu::BootOptions {
        timeout: Duration::from_secs(options.seconds + 120),
        ..qemu::BootOptions::default()
    };
    eprintln!(
        "demo: [3/3] booting the VM ({}, {} CPUs, initramfs {:.0} MB); ready after {:.1} s",
        if qemu::use_kvm() { "KVM" } else { "qemu TCG" },
        boot.cpus,
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let outcome = qemu::boot(
        &kernel.bzimage,
        &image,
        &run_dir.path().join("results.txt"),
        &boot,
    )?;
    outcome.check_guest()?;
    let code = guest::exit_codes(&outcome.results)
        .into_iter()
        .find(|(label, _)| label == "demo")
        .map(|(_, code)| code)
        .ok_or_else(|| Error::Failed("the guest reported no exit code for the demo".into()))?;
    eprintln!(
        "demo: the VM ran {:.1} s (boot to /init {}), {:.1} s in all",
        outcome.elapsed.as_secs_f64(),
        outcome
            .boot_time
            .map_or("?".into(), |t| format!("{:.1} s", t.as_secs_f64())),
        started.elapsed().as_secs_f64()
    );
    Ok(code)
}

/// The executables the demo needs.
struct Built {
    decoder: PathBuf,
    app: PathBuf,
    xtask: Option<PathBuf>,
}

/// Builds the decoder's CLI and the example app (and, for the guest, xtask): natively into the
/// usual target dir, or statically into `<target dir>/vm-bins` for the guest, with the same
/// settings as e2e so the two share their build cache.
fn build(for_guest: bool) -> Result<Built> {
    let mut args = vec![
        "build",
        "-p",
        "ue-metrics-decode",
        "-p",
        "ue-metrics-exporter",
        "--bin",
        "ue-metrics-decode",
        "--example",
        "basic",
    ];
    let executables = if for_guest {
        args.extend(["-p", "xtask", "--bin", "xtask"]);
        e2e::build_static(&args)?
    } else {
        let mut command = cargo();
        command.args(&args);
        e2e::run_cargo_build(command)?
    };
    let find = |name: &str, kind: &str| {
        executables
            .iter()
            .find(|(n, kinds, _)| n == name && kinds.iter().any(|k| k == kind))
            .map(|(_, _, path)| path.clone())
    };
    let missing = |what: &str| Error::Failed(format!("cargo built no {what} executable"));
    Ok(Built {
        decoder: find("ue-metrics-decode", "bin").ok_or_else(|| missing("ue-metrics-decode"))?,
        app: find("basic", "example").ok_or_else(|| missing("example `basic`"))?,
        xtask: find("xtask", "bin"),
    })
}

/// The collector's command line.
fn collector_args(options: &SessionOptions) -> Vec<String> {
    let duration = Duration::from_secs(options.seconds) + COLLECTOR_GRACE;
    let mut args: Vec<String> = ["live", "--wait", "--duration"].map(String::from).to_vec();
    args.push(format!("{}s", duration.as_secs()));
    args.extend(["--prometheus", PROMETHEUS_ADDR].map(String::from));
    if options.json {
        args.extend(["--format", "json"].map(String::from));
    } else {
        args.extend(["--format", "summary", "--refresh", "1s"].map(String::from));
    }
    args
}

/// Runs the collector and the app side by side, shows the collector's output, then compares
/// what arrived with what the app says it wrote. Returns true when everything arrived.
pub fn session(options: &SessionOptions) -> Result<bool> {
    let collector_argv = collector_args(options);
    println!(
        "==> ue-metrics demo: {} s of OpenTelemetry metrics through user_events",
        options.seconds
    );
    println!("    app        ue-metrics-exporter/examples/basic.rs: 14 instruments, exports every second");
    println!(
        "    collector  ue-metrics-decode {}",
        collector_argv.join(" ")
    );
    if !options.json {
        println!(
            "    (sets: attribute sets; ev/s: events per second carrying the metric; bytes/ev: \
             its bytes in each)"
        );
    }
    println!();

    let mut collector = Command::new(&options.decoder);
    collector
        .args(&collector_argv)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    // On a terminal the collector redraws its table in place; else its lines pass through us
    // (a pipe is not a terminal, so it prints each table after the last).
    collector.stdout(if options.terminal {
        Stdio::inherit()
    } else {
        Stdio::piped()
    });
    let mut collector = collector
        .spawn()
        .map_err(|e| crate::util::spawn_error(&collector, e))?;
    // Each table goes out in one write: the collector's stderr lines, passed through by another
    // thread, then land between tables, never inside one.
    let collector_stdout = collector.stdout.take().map(|out| {
        std::thread::spawn(move || {
            for block in blocks(BufReader::new(out)) {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(block.as_bytes()).and(stdout.flush());
            }
        })
    });
    let (endpoint_tx, endpoint_rx) = mpsc::channel();
    let collector_stderr = forward_stderr(&mut collector, endpoint_tx);

    let mut app = Command::new(&options.app);
    app.args(["--seconds", &options.seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let app_output = match app.spawn() {
        Ok(child) => child.wait_with_output(),
        Err(e) => {
            let _ = collector.kill();
            let _ = collector.wait();
            return Err(crate::util::spawn_error(&app, e));
        }
    }
    .map_err(|e| Error::io("wait for", &options.app, e))?;
    let app_events = app_stat(&app_output.stdout, "events");
    let agent = AgentView::scrape(&endpoint_rx, &mut collector, app_events);
    let collector_status = collector
        .wait()
        .map_err(|e| Error::io("wait for", &options.decoder, e))?;
    if let Some(thread) = collector_stdout {
        let _ = thread.join();
    }
    let totals = collector_stderr.join().unwrap_or_default();

    let app_text = format!(
        "{}{}",
        String::from_utf8_lossy(&app_output.stdout),
        String::from_utf8_lossy(&app_output.stderr)
    );
    let mut app_stats = BTreeMap::new();
    for line in app_text.lines() {
        match line.strip_prefix("stats: ") {
            Some(stats) => app_stats = key_values(stats),
            None if !line.trim().is_empty() => println!("    app: {line}"),
            None => {}
        }
    }
    let report = Comparison {
        app: app_stats,
        collector: totals,
    };
    if !report.collector.is_empty() {
        print!("\n{}", report.render());
    }
    print!("\n{}", agent.render(report.app("events")));
    let mut problems = report.problems(app_output.status.success(), collector_status.code());
    problems.extend(agent.problems(report.app("events")));
    if problems.is_empty() {
        println!("\n==> OK: every event the app wrote arrived and decoded; nothing lost");
        Ok(true)
    } else {
        println!("\n==> PROBLEM: {}", problems.join("; "));
        Ok(false)
    }
}

/// Passes the collector's stderr lines through as they come (`collector: ...`), except its
/// `totals` line, which is parsed and returned when the collector ends. The address of its
/// Prometheus endpoint goes to `endpoint`.
fn forward_stderr(
    child: &mut Child,
    endpoint: mpsc::Sender<String>,
) -> JoinHandle<BTreeMap<String, String>> {
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let mut totals = BTreeMap::new();
        let Some(stderr) = stderr else {
            return totals;
        };
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            let line = line.strip_prefix("ue-metrics-decode: ").unwrap_or(&line);
            if let Some(addr) = endpoint_address(line) {
                let _ = endpoint.send(addr);
            }
            match line.strip_prefix("totals ") {
                Some(values) => totals = key_values(values),
                None => text.push_str(&format!("    collector: {line}\n")),
            }
            if !text.is_empty() {
                print!("{}", std::mem::take(&mut text));
            }
        }
        totals
    })
}

/// The address in the collector's `serving Prometheus metrics at http://ADDR/metrics` line.
fn endpoint_address(line: &str) -> Option<String> {
    let url = line.strip_prefix("serving Prometheus metrics at http://")?;
    Some(
        url.trim()
            .strip_suffix("/metrics")
            .unwrap_or(url.trim())
            .to_string(),
    )
}

/// The value of `key` in the app's `stats:` line.
fn app_stat(stdout: &[u8], key: &str) -> Option<u64> {
    let text = String::from_utf8_lossy(stdout);
    let stats = text.lines().find_map(|line| line.strip_prefix("stats: "))?;
    key_values(stats).get(key)?.parse().ok()
}

/// The text of `reader` in blocks that end with a blank line (the collector separates its tables
/// with one), each with its lines and the blank line; the last block may lack it.
fn blocks(reader: impl BufRead) -> impl Iterator<Item = String> {
    let mut lines = reader.lines().map_while(|line| line.ok());
    std::iter::from_fn(move || {
        let mut block = String::new();
        for line in lines.by_ref() {
            block.push_str(&line);
            block.push('\n');
            if line.is_empty() {
                break;
            }
        }
        (!block.is_empty()).then_some(block)
    })
}

/// `a=1 b=2` into a map.
fn key_values(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The end-of-run table: the exporter's own counters next to the collector's.
#[derive(Debug, Default)]
struct Comparison {
    /// The app's `stats:` line.
    app: BTreeMap<String, String>,
    /// The collector's `totals` line.
    collector: BTreeMap<String, String>,
}

/// The exporter's default OTLP buffer budget: 4064 bytes reach every kind of listener (DESIGN.md)
/// minus the fixed fields.
const MAX_BUFFER_BYTES: u64 = 4048;

/// Bytes per event the exporter counts besides the OTLP buffer: `u32 protocol`,
/// `char[8] version`, `u32 rel_loc` (see DESIGN.md).
const FIXED_FIELD_BYTES: u64 = 16;

impl Comparison {
    fn app(&self, key: &str) -> Option<u64> {
        self.app.get(key)?.parse().ok()
    }

    fn collector(&self, key: &str) -> Option<u64> {
        self.collector.get(key)?.parse().ok()
    }

    /// The OTLP buffer bytes the app wrote (its counter includes each event's fixed fields).
    fn app_buffer_bytes(&self) -> Option<u64> {
        self.app("bytes")?
            .checked_sub(FIXED_FIELD_BYTES.checked_mul(self.app("events")?)?)
    }

    fn render(&self) -> String {
        let cell = |v: Option<u64>| v.map_or("?".to_string(), thousands);
        let per_event = |bytes: Option<u64>, events: Option<u64>| bytes?.checked_div(events?);
        let app_events = self.app("events");
        let collector_events = self.collector("events");
        let rows = [
            ("exports", cell(self.app("exports")), "-".into()),
            ("events", cell(app_events), cell(collector_events)),
            (
                "OTLP bytes",
                cell(self.app_buffer_bytes()),
                cell(self.collector("buffer_bytes")),
            ),
            (
                "bytes/event",
                cell(per_event(self.app_buffer_bytes(), app_events)),
                cell(per_event(
                    self.collector("buffer_bytes"),
                    self.collector("decoded"),
                )),
            ),
            (
                "data points",
                cell(self.app("points")),
                cell(self.collector("points")),
            ),
            ("metrics", "-".into(), cell(self.collector("metrics"))),
            ("lost records", "-".into(), cell(self.collector("lost"))),
        ];
        let mut text = String::from("==> what arrived, next to what the app says it wrote\n");
        text.push_str(&format!(
            "    {:<14}{:>12}{:>16}\n",
            "", "app wrote", "collector read"
        ));
        for (name, app, collector) in rows {
            text.push_str(format!("    {name:<14}{app:>12}{collector:>16}").trim_end());
            text.push('\n');
        }
        text.push_str(&format!(
            "    (each event within {} OTLP bytes: what every kind of listener receives)\n",
            thousands(MAX_BUFFER_BYTES)
        ));
        let arrived = self.collector("events").is_some_and(|n| n > 0);
        if let Some(skipped) = self
            .app("collections_skipped")
            .filter(|&n| n > 0 && arrived)
        {
            text.push_str(&format!(
                "    (the app skipped {skipped} collection(s) until the collector attached;\n     \
                 its next export carried their data)\n"
            ));
        }
        text
    }

    /// Why this run does not show a clean transfer (empty when it does), given whether the app
    /// succeeded and the collector's exit status.
    fn problems(&self, app_ok: bool, collector_exit: Option<i32>) -> Vec<String> {
        let mut problems = Vec::new();
        // Whether the counts cannot be compared.
        let mut fatal = !app_ok;
        if !app_ok {
            problems.push("the app failed".to_string());
        }
        match collector_exit {
            Some(0) => {}
            // It ran to its end but did not decode every record: the counts below say how.
            Some(3) => {
                problems.push("the collector did not decode every record (exit status 3)".into())
            }
            Some(code) => {
                problems.push(format!("the collector failed (exit status {code})"));
                fatal = true;
            }
            None => {
                problems.push("the collector was killed by a signal".into());
                fatal = true;
            }
        }
        if self.app.is_empty() {
            problems.push("the app printed no stats".into());
            fatal = true;
        }
        if self.collector.is_empty() {
            problems.push("the collector printed no totals".into());
            fatal = true;
        }
        if fatal {
            return problems;
        }
        let events = self.collector("events").unwrap_or(0);
        if events == 0 {
            problems.push("no events arrived".into());
        }
        for (what, app, collector) in [
            ("events", self.app("events"), self.collector("events")),
            (
                "OTLP bytes",
                self.app_buffer_bytes(),
                self.collector("buffer_bytes"),
            ),
            ("data points", self.app("points"), self.collector("points")),
        ] {
            if app != collector {
                problems.push(format!(
                    "{what}: the app wrote {}, the collector read {}",
                    app.map_or("?".into(), thousands),
                    collector.map_or("?".into(), thousands)
                ));
            }
        }
        if let Some(lost) = self.collector("lost").filter(|&lost| lost > 0) {
            problems.push(format!("{lost} records lost"));
        }
        if self.collector("decoded") != self.collector("events") {
            problems.push("some records did not decode".into());
        }
        problems
    }
}

/// The families the demo shows from the endpoint: one request of the app is counted, timed
/// and marked done once each, so the first three must agree at the end.
const REQUESTS: &str = "http_server_requests_total";
const DURATION_COUNT: &str = "http_server_request_duration_seconds_count";
const DURATION_SUM: &str = "http_server_request_duration_seconds_sum";
const JOBS_DONE: &str = "app_jobs_completed_total";
/// The agent's own metrics (self-telemetry).
const RECORDS_READ: &str = "ue_metrics_decode_records_read_total";
const RECORDS_DECODED: &str = "ue_metrics_decode_records_decoded_total";
const RECORDS_LOST: &str = "ue_metrics_decode_records_lost_total";
const SERIES: &str = "ue_metrics_decode_series";

/// What the collector's Prometheus endpoint served after the app ended.
#[derive(Debug)]
struct AgentView {
    /// The endpoint's address, when the collector announced one.
    addr: Option<String>,
    /// The samples of the last successful scrape, or why there is none.
    scraped: std::result::Result<Vec<Sample>, String>,
}

impl AgentView {
    /// Scrapes the endpoint the collector announced on `endpoint` until it has read the app's
    /// `app_events` events (the last export is written at the app's shutdown), while the
    /// collector runs, for up to [`COLLECTOR_GRACE`].
    fn scrape(
        endpoint: &mpsc::Receiver<String>,
        collector: &mut Child,
        app_events: Option<u64>,
    ) -> AgentView {
        let Ok(addr) = endpoint.recv_timeout(Duration::from_secs(5)) else {
            return AgentView {
                addr: None,
                scraped: Err("the collector announced no Prometheus endpoint".into()),
            };
        };
        let deadline = Instant::now() + COLLECTOR_GRACE;
        let mut scraped = Err("not scraped".to_string());
        loop {
            match scrape::http_get(&addr, "/metrics", Duration::from_secs(2))
                .and_then(|text| scrape::parse(&text))
            {
                Ok(samples) => {
                    let read = scrape::sum(&samples, RECORDS_READ).map(|(n, _)| n as u64);
                    let complete = app_events.is_none_or(|n| read.is_some_and(|r| r >= n));
                    scraped = Ok(samples);
                    if complete {
                        break;
                    }
                }
                Err(e) if scraped.is_err() => scraped = Err(e),
                Err(_) => {}
            }
            let collector_ended = collector.try_wait().ok().flatten().is_some();
            if collector_ended || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        AgentView {
            addr: Some(addr),
            scraped,
        }
    }

    fn sum(&self, name: &str) -> Option<(f64, usize)> {
        scrape::sum(self.scraped.as_ref().ok()?, name)
    }

    fn count(&self, name: &str) -> Option<u64> {
        self.sum(name).map(|(value, _)| value as u64)
    }

    fn render(&self, app_events: Option<u64>) -> String {
        let mut text = match &self.addr {
            Some(addr) => format!(
                "==> the agent path: the collector's Prometheus endpoint, scraped after the app\n    \
                 ended as a Prometheus server would: http://{addr}/metrics\n"
            ),
            None => "==> the agent path: no Prometheus endpoint\n".to_string(),
        };
        if let Err(why) = &self.scraped {
            text.push_str(&format!("    (not scraped: {why})\n"));
            return text;
        }
        let series = |n: usize| format!("({n} series)");
        let rows = [
            (REQUESTS, self.sum(REQUESTS), None),
            (DURATION_COUNT, self.sum(DURATION_COUNT), None),
            (DURATION_SUM, self.sum(DURATION_SUM), None),
            (JOBS_DONE, self.sum(JOBS_DONE), None),
            (
                RECORDS_DECODED,
                self.sum(RECORDS_DECODED),
                app_events.map(|n| format!("(app: {} events)", thousands(n))),
            ),
            (RECORDS_LOST, self.sum(RECORDS_LOST), None),
            (SERIES, self.sum(SERIES), None),
        ];
        for (name, value, note) in rows {
            let (value, note) = match value {
                Some((value, n)) => (
                    number(value),
                    note.unwrap_or(if n > 1 { series(n) } else { String::new() }),
                ),
                None => ("-".to_string(), "(absent)".to_string()),
            };
            text.push_str(format!("    {name:<44}{value:>12}  {note}").trim_end());
            text.push('\n');
        }
        text.push_str(
            "    (each request is counted, timed and marked done once: the three agree)\n",
        );
        text
    }

    /// Why the endpoint does not show what the app wrote (empty when it does).
    fn problems(&self, app_events: Option<u64>) -> Vec<String> {
        if let Err(why) = &self.scraped {
            return vec![format!("the Prometheus endpoint was not scraped: {why}")];
        }
        let mut problems = Vec::new();
        let requests = self.count(REQUESTS);
        for (name, value) in [
            (REQUESTS, requests),
            (DURATION_COUNT, self.count(DURATION_COUNT)),
            (JOBS_DONE, self.count(JOBS_DONE)),
        ] {
            match value {
                None => problems.push(format!("no {name} on the endpoint")),
                Some(n) if Some(n) != requests => problems.push(format!(
                    "{name} is {}, {REQUESTS} {}",
                    thousands(n),
                    requests.map_or("?".into(), thousands)
                )),
                Some(_) => {}
            }
        }
        if let Some(events) = app_events.filter(|&n| n > 0) {
            let decoded = self.count(RECORDS_DECODED);
            if decoded != Some(events) {
                problems.push(format!(
                    "the agent decoded {} records, the app wrote {} events",
                    decoded.map_or("?".into(), thousands),
                    thousands(events)
                ));
            }
        }
        problems
    }
}

/// A sample value: whole numbers with separators, others with three decimals too.
fn number(value: f64) -> String {
    if !(0.0..1e15).contains(&value) {
        return format!("{value}");
    }
    if value.fract() == 0.0 {
        return thousands(value as u64);
    }
    let text = format!("{value:.3}");
    let (whole, decimals) = text.split_once('.').unwrap_or((&text, "000"));
    format!("{}.{decimals}", thousands(whole.parse().unwrap_or(0)))
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn collector_tables_pass_through_whole() {
        let text = "metric  kind\na  gauge\n1.0 s: 1 events\n\nmetric  kind\nb  counter\n\nlast\n";
        let tables: Vec<String> = blocks(text.as_bytes()).collect();
        assert_eq!(
            tables,
            [
                "metric  kind\na  gauge\n1.0 s: 1 events\n\n",
                "metric  kind\nb  counter\n\n",
                "last\n"
            ]
        );
        assert_eq!(tables.concat(), text);
        assert_eq!(blocks(&b""[..]).count(), 0);
    }

    #[test]
    fn demo_arguments() {
        assert_eq!(parse_args(&[]).unwrap(), DemoOptions::default());
        let options = parse_args(&strings(&["--seconds", "3", "--json", "--vm"])).unwrap();
        assert_eq!(
            options,
            DemoOptions {
                seconds: 3,
                json: true,
                place: Where::Vm
            }
        );
        assert_eq!(
            parse_args(&strings(&["--native"])).unwrap().place,
            Where::Native
        );
        assert!(parse_args(&strings(&["--seconds", "0"])).is_err());
        assert!(parse_args(&strings(&["--seconds"])).is_err());
        assert!(parse_args(&strings(&["--bogus"])).is_err());
    }

    #[test]
    fn session_arguments_need_both_programs() {
        let options = parse_session_args(&strings(&[
            "--decoder",
            "/d",
            "--app",
            "/a",
            "--seconds",
            "4",
            "--terminal",
        ]))
        .unwrap();
        assert_eq!(options.decoder, Path::new("/d"));
        assert_eq!(options.app, Path::new("/a"));
        assert_eq!(
            (options.seconds, options.json, options.terminal),
            (4, false, true)
        );
        assert!(parse_session_args(&strings(&["--decoder", "/d"])).is_err());
    }

    #[test]
    fn collector_outlives_the_app_and_picks_the_format() {
        let mut options = parse_session_args(&strings(&["--decoder", "d", "--app", "a"])).unwrap();
        assert_eq!(
            collector_args(&options).join(" "),
            "live --wait --duration 13s --prometheus 127.0.0.1:0 --format summary --refresh 1s"
        );
        options.json = true;
        options.seconds = 3;
        assert_eq!(
            collector_args(&options).join(" "),
            "live --wait --duration 6s --prometheus 127.0.0.1:0 --format json"
        );
    }

    fn comparison(app: &str, collector: &str) -> Comparison {
        Comparison {
            app: key_values(app),
            collector: key_values(collector),
        }
    }

    #[test]
    fn matching_counts_pass_and_render() {
        let c = comparison(
            "exports=10 collections_skipped=1 events=20 bytes=40320 points=900",
            "events=20 decoded=20 buffer_bytes=40000 points=900 metrics=14 lost=0 seconds=12.0",
        );
        assert!(
            c.problems(true, Some(0)).is_empty(),
            "{:?}",
            c.problems(true, Some(0))
        );
        let text = c.render();
        assert!(
            text.contains("OTLP bytes          40,000          40,000"),
            "{text}"
        );
        assert!(
            text.contains("bytes/event          2,000           2,000"),
            "{text}"
        );
        assert!(
            text.contains("metrics                  -              14"),
            "{text}"
        );
        assert!(text.contains("skipped 1 collection"), "{text}");
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
    }

    #[test]
    fn missing_events_and_losses_are_problems() {
        let c = comparison(
            "events=20 bytes=40320 points=900",
            "events=19 decoded=19 buffer_bytes=38000 points=850 metrics=14 lost=1",
        );
        // The collector exits 3 when it lost records: the counts still say what went wrong.
        let problems = c.problems(true, Some(3)).join("\n");
        assert!(problems.contains("did not decode every record (exit status 3)"));
        assert!(problems.contains("events: the app wrote 20, the collector read 19"));
        assert!(problems.contains("1 records lost"));
        assert!(!comparison("", "").problems(true, Some(1)).is_empty());
        let failed = c.problems(true, Some(1)).join("\n");
        assert!(
            failed.contains("the collector failed (exit status 1)"),
            "{failed}"
        );
        assert!(!failed.contains("records lost"), "{failed}");
    }

    fn agent(text: &str) -> AgentView {
        AgentView {
            addr: Some("127.0.0.1:9464".into()),
            scraped: scrape::parse(text),
        }
    }

    const SCRAPED: &str = "\
# TYPE http_server_requests_total counter
http_server_requests_total{job=\"basic-example\",http_route=\"/\"} 1200
http_server_requests_total{job=\"basic-example\",http_route=\"/login\"} 800
http_server_request_duration_seconds_count{job=\"basic-example\",http_route=\"/\"} 1200
http_server_request_duration_seconds_count{job=\"basic-example\",http_route=\"/login\"} 800
http_server_request_duration_seconds_sum{job=\"basic-example\",http_route=\"/\"} 601.5
http_server_request_duration_seconds_sum{job=\"basic-example\",http_route=\"/login\"} 398.25
app_jobs_completed_total{job=\"basic-example\"} 2000
ue_metrics_decode_records_read_total 45
ue_metrics_decode_records_decoded_total 45
ue_metrics_decode_records_lost_total 0
ue_metrics_decode_series 187
";

    #[test]
    fn the_scraped_endpoint_is_shown_and_agrees_with_the_app() {
        let view = agent(SCRAPED);
        assert_eq!(view.problems(Some(45)), Vec::<String>::new());
        let text = view.render(Some(45));
        assert!(text.contains("http://127.0.0.1:9464/metrics"), "{text}");
        let row = |name: &str| -> Vec<&str> {
            text.lines()
                .find_map(|l| l.trim_start().strip_prefix(name))
                .map(|rest| rest.split_whitespace().collect())
                .unwrap_or_else(|| panic!("no {name} row in {text}"))
        };
        assert_eq!(row(REQUESTS), ["2,000", "(2", "series)"]);
        assert_eq!(row(DURATION_COUNT), ["2,000", "(2", "series)"]);
        assert_eq!(row(DURATION_SUM), ["999.750", "(2", "series)"]);
        assert_eq!(row(JOBS_DONE), ["2,000"]);
        assert_eq!(row(RECORDS_DECODED), ["45", "(app:", "45", "events)"]);
        assert_eq!(row(RECORDS_LOST), ["0"]);
        assert_eq!(row(SERIES), ["187"]);
        assert!(text.lines().all(|l| l.len() <= 80), "{text}");
    }

    #[test]
    fn disagreeing_or_missing_values_are_problems() {
        let fewer_done = SCRAPED.replace(
            "app_jobs_completed_total{job=\"basic-example\"} 2000",
            "app_jobs_completed_total 1999",
        );
        let problems = agent(&fewer_done).problems(Some(46)).join("\n");
        assert!(
            problems
                .contains("app_jobs_completed_total is 1,999, http_server_requests_total 2,000"),
            "{problems}"
        );
        assert!(
            problems.contains("the agent decoded 45 records, the app wrote 46 events"),
            "{problems}"
        );
        let problems = agent("ue_metrics_decode_series 1\n")
            .problems(None)
            .join("\n");
        assert!(
            problems.contains("no http_server_requests_total"),
            "{problems}"
        );
        assert!(agent("ue_metrics_decode_series 1\n")
            .render(None)
            .contains("(absent)"));
        let unscraped = AgentView {
            addr: None,
            scraped: Err("refused".into()),
        };
        assert!(unscraped.problems(Some(1))[0].contains("refused"));
        assert!(unscraped.render(Some(1)).contains("not scraped: refused"));
    }

    #[test]
    fn the_endpoint_address_and_the_apps_events_are_found() {
        assert_eq!(
            endpoint_address("serving Prometheus metrics at http://127.0.0.1:41234/metrics")
                .as_deref(),
            Some("127.0.0.1:41234")
        );
        assert_eq!(endpoint_address("reading user_events/otlp_metrics"), None);
        assert_eq!(
            app_stat(b"note: x\nstats: exports=10 events=45 bytes=9\n", "events"),
            Some(45)
        );
        assert_eq!(app_stat(b"no stats here\n", "events"), None);
    }

    #[test]
    fn sample_values_get_separators_and_decimals() {
        assert_eq!(number(4100.0), "4,100");
        assert_eq!(number(4112.456), "4,112.456");
        assert_eq!(number(0.25), "0.250");
        assert_eq!(number(1999.9996), "2,000.000");
        assert_eq!(number(f64::INFINITY), "inf");
        assert_eq!(number(-2.5), "-2.5");
    }

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn key_values_skip_words_without_equals() {
        let map = key_values("events=3 junk lost=0");
        assert_eq!(map.len(), 2);
    }
}
