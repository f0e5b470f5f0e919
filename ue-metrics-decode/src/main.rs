//! `ue-metrics-decode`: user_events OTLP metrics records back into OTLP/JSON, a summary table,
//! or an OTLP/HTTP endpoint. Run with `--help` for the usage.

use std::ffi::OsString;
use std::io::{self, BufRead, BufWriter, IsTerminal as _, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ue_metrics_decode::forward::{Backpressure, ForwardOptions, Forwarder};
use ue_metrics_decode::live::{self, LiveOptions, LiveSource};
use ue_metrics_decode::merge::Merger;
use ue_metrics_decode::prometheus::{DropReason, PrometheusEndpoint, PrometheusOptions};
use ue_metrics_decode::summary::Summary;
use ue_metrics_decode::{
    decode_payload_in, enrich, ftrace, json, ByteOrder, DecodeStats, PerfDataSource, Record,
};

const USAGE: &str = "\
ue-metrics-decode: decode user_events OTLP metrics records back into OTLP

USAGE:
  ue-metrics-decode payload [FILE|-] [OPTIONS]   one payload (the bytes written after the write index)
  ue-metrics-decode perf-data FILE|- [OPTIONS]   a perf.data file (`-`: a pipe-mode stream on stdin,
                                                 e.g. `perf record -e user_events:otlp_metrics -o - | ...`)
  ue-metrics-decode trace [FILE|-] [OPTIONS]     ftrace text output (tracefs `trace` or `trace_pipe`)
  ue-metrics-decode live [OPTIONS]               the running kernel, through perf (root or CAP_PERFMON)

OPTIONS:
  --format json|summary|none  json: one OTLP/JSON request per line (otlpjsonfile format; default)
                              summary: a table (metric, kind, attribute sets, points, last value)
                              none: no output (default when --forward is given)
  --forward URL               POST each request to an OTLP/HTTP endpoint, e.g. http://localhost:4318
                              (files and pipes: every request is delivered or fails; live: requests
                              are queued while the receiver is down, dropped and counted when full)
  --forward-gzip              compress forwarded requests (Content-Encoding: gzip)
  --forward-timeout D         give up on a request after D, retries included (default 30s)
  --drain-timeout D           on SIGTERM or Ctrl-C (live: also at the end of --duration/--count),
                              forward what is queued for at most D, then stop; requests not
                              delivered by then are counted as dropped (default 10s)
  --merge                     one request per export (events of one writer, back to back) instead
                              of one per event; one-point-per-event producers batched (up to 1 MiB)
  --prometheus ADDR           serve the metrics at http://ADDR/metrics (Prometheus text format), e.g.
                              127.0.0.1:9464 or :9464; from a file, keeps serving until Ctrl-C/SIGTERM
  --prometheus-expire D       drop a series not updated for D (default 5m; once a file is read,
                              its series stay until the end)
  --prometheus-max-series N   hold at most N series (default 200000; 0: no limit); points of new
                              series beyond it are dropped, counted (reason series_limit) and
                              warned about on stderr
  --pid on|off                add process.pid (the writer's pid) to resources that lack it
                              (default: on for live, off for files)
  --event NAME                event to read (default otlp_metrics); repeat it for several events,
                              each decoded by its own format: our fields (Rust, .NET), the C++
                              exporter's no-field otlp_metrics, an EventHeader tracepoint such as
                              MyApp_L4K1. A name also selects its multi-format registrations
                              (user_events_multi/NAME.<hex id>). perf-data: default every event
                              whose format is one of these
  --byte-order little|big|native
                              payload: the byte order of the machine that wrote it (default
                              native; perf-data reads it from the file)
LIVE OPTIONS:
  --duration D                stop after D (10s, 500ms, 2m; default: until Ctrl-C)
  --count N                   stop after N records
  --wait[=D]                  if the event is not registered yet, wait for it (up to D)
  --register                  if the event is not registered yet, create it: persistent
                              (USER_EVENT_REG_PERSIST, needs CAP_PERFMON) when allowed, else a
                              registration held while the agent runs; stderr says which
  --pages N                   ring buffer pages per CPU, a power of two (default 64)
  --refresh D                 with --format summary: print the table every D (e.g. 1s), with
                              events/s and bytes/event per metric; redrawn in place on a terminal

Live reading goes on when the last producer exits (the kernel keeps the event while it is read)
and picks up producers that register again; multi-format registrations made later
(user_events_multi/NAME.<id>) are found within a second and read too.

Per-record errors go to stderr, with a final count. Exit status: 0 when every record was decoded,
3 when the input was read but some records failed to decode or were lost (ring buffer overflow,
perf LOST records, ftrace LOST markers: these count a ring's losses, whatever events they were
of), 1 when the input could not be read (or forwarding or writing to stdout failed; 1 wins over
3; `payload`, one record, exits 1 when it does not decode), 2 on usage errors. When stdout is
closed by its reader (`| head`), the run stops there and exits 0, as a pipeline expects; with
--forward or --prometheus only stdout stops (on any write error), and the run goes on for them.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Summary,
    None,
}

#[derive(Debug)]
struct Args {
    command: String,
    input: Option<String>,
    format: Option<Format>,
    forward: Option<String>,
    forward_gzip: bool,
    forward_timeout: Option<Duration>,
    drain_timeout: Option<Duration>,
    merge: bool,
    events: Vec<String>,
    byte_order: ByteOrder,
    duration: Option<Duration>,
    count: Option<u64>,
    wait: Option<Option<Duration>>,
    register: bool,
    pages: usize,
    refresh: Option<Duration>,
    prometheus: Option<String>,
    prometheus_expire: Duration,
    prometheus_max_series: usize,
    add_pid: Option<bool>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (examples: 10s, 500ms, 2m)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("invalid duration unit in {text:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration {text:?}"))
}

/// Parses the arguments after the program name (lexopt: `--opt value` and `--opt=value`, `-`
/// as a value, `--` ending the options; arguments that are not UTF-8 are refused with a
/// message, not a panic). `--help` and `--version` are handled before, in `main`.
fn parse_args<A: Into<OsString>>(argv: impl IntoIterator<Item = A>) -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(argv);
    let command = match parser.next().map_err(|e| e.to_string())? {
        Some(Value(command)) => command.string().map_err(|e| e.to_string())?,
        Some(other) => return Err(format!("no command given before {}", describe(&other))),
        None => return Err("no command given".into()),
    };
    if !matches!(command.as_str(), "payload" | "perf-data" | "trace" | "live") {
        return Err(format!("unknown command {command:?}"));
    }
    let mut args = Args {
        command,
        input: None,
        format: None,
        forward: None,
        forward_gzip: false,
        forward_timeout: None,
        drain_timeout: None,
        merge: false,
        events: Vec::new(),
        byte_order: ByteOrder::NATIVE,
        duration: None,
        count: None,
        wait: None,
        register: false,
        pages: 64,
        refresh: None,
        prometheus: None,
        prometheus_expire: PrometheusOptions::default().expire_after,
        prometheus_max_series: PrometheusOptions::default().max_series,
        add_pid: None,
    };
    let live = args.command == "live";
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let flag = describe(&arg);
        let live_only = |name: &str| {
            if live {
                Ok(())
            } else {
                Err(format!("{name} is an option of `live`"))
            }
        };
        match arg {
            Long("format") => {
                args.format = Some(match value(&mut parser)?.as_str() {
                    "json" => Format::Json,
                    "summary" => Format::Summary,
                    "none" => Format::None,
                    other => return Err(format!("unknown format {other:?} (json, summary, none)")),
                })
            }
            Long("forward") => args.forward = Some(value(&mut parser)?),
            Long("forward-gzip") => args.forward_gzip = true,
            Long("forward-timeout") => {
                args.forward_timeout = Some(parse_duration(&value(&mut parser)?)?)
            }
            Long("drain-timeout") => {
                args.drain_timeout = Some(parse_duration(&value(&mut parser)?)?)
            }
            Long("merge") => args.merge = true,
            Long("pid") => {
                args.add_pid = Some(match value(&mut parser)?.as_str() {
                    "on" => true,
                    "off" => false,
                    other => return Err(format!("--pid takes on or off, not {other:?}")),
                })
            }
            Long("prometheus") => args.prometheus = Some(value(&mut parser)?),
            Long("prometheus-expire") => {
                args.prometheus_expire = parse_duration(&value(&mut parser)?)?
            }
            Long("prometheus-max-series") => {
                let text = value(&mut parser)?;
                args.prometheus_max_series = text.parse().map_err(|_| {
                    format!("--prometheus-max-series takes a number of series, not {text:?}")
                })?
            }
            Long("event") => args.events.push(value(&mut parser)?),
            Long("byte-order") => {
                if args.command != "payload" {
                    return Err(
                        "--byte-order is an option of `payload` (perf-data files say \
                                their byte order themselves)"
                            .into(),
                    );
                }
                args.byte_order = value(&mut parser)?.parse()?
            }
            Long("duration") => {
                live_only(&flag)?;
                args.duration = Some(parse_duration(&value(&mut parser)?)?)
            }
            Long("count") => {
                live_only(&flag)?;
                let text = value(&mut parser)?;
                args.count = Some(
                    text.parse()
                        .map_err(|_| format!("invalid count {text:?}"))?,
                )
            }
            Long("wait") => {
                live_only(&flag)?;
                // `--wait` alone waits without a limit; only `--wait=D` takes a value.
                let limit = parser
                    .optional_value()
                    .map(|v| v.string().map_err(|e| e.to_string()))
                    .transpose()?;
                args.wait = Some(limit.as_deref().map(parse_duration).transpose()?)
            }
            Long("register") => {
                live_only(&flag)?;
                args.register = true
            }
            Long("pages") => {
                live_only(&flag)?;
                let text = value(&mut parser)?;
                args.pages = text
                    .parse::<usize>()
                    .ok()
                    .filter(|p| p.is_power_of_two())
                    .ok_or_else(|| format!("--pages must be a power of two, not {text:?}"))?
            }
            Long("refresh") => {
                live_only(&flag)?;
                let every = parse_duration(&value(&mut parser)?)?;
                if every.is_zero() {
                    return Err("--refresh needs a duration above zero".into());
                }
                args.refresh = Some(every)
            }
            Long(_) | Short(_) => return Err(format!("unknown option {flag}")),
            Value(input) if args.input.is_none() && !live => {
                args.input = Some(input.string().map_err(|e| e.to_string())?)
            }
            Value(_) => return Err(format!("unexpected argument {flag}")),
        }
    }
    if args.refresh.is_some() && args.format != Some(Format::Summary) {
        return Err("--refresh needs --format summary".into());
    }
    if args.forward.is_none()
        && (args.forward_gzip || args.forward_timeout.is_some() || args.drain_timeout.is_some())
    {
        return Err("--forward-gzip, --forward-timeout and --drain-timeout need --forward".into());
    }
    if args.command == "perf-data" && args.input.is_none() {
        return Err("perf-data needs a FILE (or - for a pipe-mode stream on stdin)".into());
    }
    Ok(args)
}

/// The value of the option just read (`--opt value` or `--opt=value`), as UTF-8.
fn value(parser: &mut lexopt::Parser) -> Result<String, String> {
    parser
        .value()
        .and_then(lexopt::ValueExt::string)
        .map_err(|e| e.to_string())
}

/// An argument as the user wrote it, for messages: `--name`, `-c`, or the quoted value.
fn describe(arg: &lexopt::Arg<'_>) -> String {
    match arg {
        lexopt::Arg::Long(name) => format!("--{name}"),
        lexopt::Arg::Short(c) => format!("-{c}"),
        lexopt::Arg::Value(value) => format!("{:?}", value.to_string_lossy()),
    }
}

/// Where decoded records go.
struct Output {
    format: Format,
    stdout: BufWriter<io::Stdout>,
    flush_each: bool,
    summary: Summary,
    forwarder: Option<Forwarder>,
    prometheus: Option<PrometheusEndpoint>,
    /// `--prometheus-max-series`, and the warning about points dropped at it.
    series_limit: SeriesLimitWarning,
    /// Add `process.pid` from the sample to resources without one.
    add_pid: bool,
    merger: Option<Merger>,
    /// Stdout stopped and the other outputs go on ([`Output::write_out`]).
    stdout_closed: bool,
    /// ... because writing failed (not a reader that went away): the run exits 1.
    stdout_failed: bool,
    errors_shown: u64,
    line: String,
    /// Live collection: every request also feeds `summary`, for the totals line.
    live: bool,
    /// Live `--refresh`: the table is drawn periodically and once more at the end.
    refresh: bool,
    /// Lines of the last live table drawn (to redraw it in place on a terminal).
    drawn_lines: Option<usize>,
    /// Set by SIGINT/SIGTERM once registered ([`Output::stop_on_signals`]).
    stop: Arc<AtomicBool>,
    stop_registered: bool,
    /// How long forwarding goes on after the stop.
    drain_timeout: Duration,
}

const MAX_ERRORS_SHOWN: u64 = 50;

/// How long the forwarder may go on after SIGTERM, Ctrl-C or the end of a live run.
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often live reading looks for tracepoints registered since it opened.
const RESCAN_EVERY: Duration = Duration::from_secs(1);

impl Output {
    fn new(args: &Args, flush_each: bool) -> Result<Output, String> {
        let forwarder = match &args.forward {
            Some(url) => {
                let defaults = ForwardOptions::default();
                let options = if args.command == "live" {
                    // Live reading must not stop (the kernel's ring buffer would overflow): a
                    // larger queue rides out a receiver restart, then new requests are dropped.
                    ForwardOptions {
                        backpressure: Backpressure::Drop,
                        queue_capacity: 4096,
                        ..defaults
                    }
                } else {
                    defaults
                };
                let options = ForwardOptions {
                    gzip: args.forward_gzip,
                    deadline: args.forward_timeout.unwrap_or(options.deadline),
                    ..options
                };
                Some(Forwarder::new(url, options).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let prometheus = match &args.prometheus {
            Some(addr) => {
                let options = PrometheusOptions {
                    expire_after: args.prometheus_expire,
                    max_series: args.prometheus_max_series,
                };
                let endpoint =
                    PrometheusEndpoint::start(addr, options).map_err(|e| e.to_string())?;
                eprintln!(
                    "ue-metrics-decode: serving Prometheus metrics at http://{}/metrics",
                    endpoint.local_addr()
                );
                Some(endpoint)
            }
            None => None,
        };
        let default = if forwarder.is_some() || prometheus.is_some() {
            Format::None
        } else {
            Format::Json
        };
        let mut output = Output {
            format: args.format.unwrap_or(default),
            stdout: BufWriter::new(io::stdout()),
            flush_each,
            // A live agent without a table needs the totals only: a full summary would keep
            // every attribute set seen for as long as it runs.
            summary: if args.command == "live" && args.format != Some(Format::Summary) {
                Summary::totals_only()
            } else {
                Summary::new()
            },
            forwarder,
            prometheus,
            series_limit: SeriesLimitWarning::new(args.prometheus_max_series),
            add_pid: args.add_pid.unwrap_or(args.command == "live"),
            merger: args.merge.then(Merger::new),
            stdout_closed: false,
            stdout_failed: false,
            errors_shown: 0,
            line: String::new(),
            live: args.command == "live",
            refresh: args.refresh.is_some(),
            drawn_lines: None,
            stop: Arc::new(AtomicBool::new(false)),
            stop_registered: false,
            drain_timeout: args.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT),
        };
        // Live reading ends on a signal with its counts; forwarding drains first.
        if output.live || output.forwarder.is_some() {
            output.stop_on_signals();
        }
        Ok(output)
    }

    /// From now on SIGINT and SIGTERM set the stop flag instead of ending the process (if
    /// registering fails, the default action remains). While forwarding, a watcher starts the
    /// forwarder's drain at the moment the signal comes, even while this thread is busy (a
    /// file source waiting for room in the queue).
    fn stop_on_signals(&mut self) -> Arc<AtomicBool> {
        if !self.stop_registered {
            self.stop_registered = true;
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                let _ = signal_hook::flag::register(signal, Arc::clone(&self.stop));
            }
            if let Some(forwarder) = &self.forwarder {
                let (stop, drain, timeout) = (
                    Arc::clone(&self.stop),
                    forwarder.drain_handle(),
                    self.drain_timeout,
                );
                let _ = std::thread::Builder::new()
                    .name("drain-on-signal".into())
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            if drain.begun() {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        drain.begin(Instant::now() + timeout);
                    });
            }
        }
        Arc::clone(&self.stop)
    }

    /// The run is ending (live: stopped by a signal, `--duration` or `--count`): what is
    /// queued gets `--drain-timeout` from now.
    fn begin_drain(&self) {
        if let Some(forwarder) = &self.forwarder {
            forwarder
                .drain_handle()
                .begin(Instant::now() + self.drain_timeout);
        }
    }

    fn record(&mut self, record: Record) {
        match self.merger.as_mut() {
            Some(merger) => {
                for r in merger.push(record) {
                    self.emit(r);
                }
            }
            None => self.emit(record),
        }
    }

    fn flush_merge(&mut self) {
        for r in self.merger.as_mut().map(Merger::flush).unwrap_or_default() {
            self.emit(r);
        }
    }

    fn emit(&mut self, mut record: Record) {
        if self.add_pid {
            // The forwarded bytes gain the pid too, and keep unknown fields.
            enrich::add_process_pid_to_record(&mut record);
        }
        let original = record.original;
        match record.result {
            Ok(request) => {
                if self.format == Format::Json {
                    self.line.clear();
                    json::write_json(&request, &mut self.line);
                    self.line.push('\n');
                    let line = std::mem::take(&mut self.line);
                    self.write_out(line.as_bytes(), self.flush_each);
                    self.line = line;
                }
                if self.format == Format::Summary || self.live {
                    self.summary.add(&request);
                }
                if let Some(f) = &self.forwarder {
                    // The producer's bytes when there are some: they keep unknown fields.
                    match original {
                        Some(bytes) => f.send_encoded(bytes),
                        None => f.send(&request),
                    };
                }
                if let Some(p) = &self.prometheus {
                    let dropped = p.add(&request);
                    self.series_limit.check(dropped, Instant::now());
                }
            }
            Err(error) => {
                self.errors_shown += 1;
                if self.errors_shown <= MAX_ERRORS_SHOWN {
                    let m = record.meta;
                    let who = match (m.pid, m.cpu) {
                        (Some(pid), Some(cpu)) => format!(" (pid {pid}, cpu {cpu})"),
                        (Some(pid), None) => format!(" (pid {pid})"),
                        _ => String::new(),
                    };
                    eprintln!("ue-metrics-decode: skipped a record{who}: {error}");
                } else if self.errors_shown == MAX_ERRORS_SHOWN + 1 {
                    eprintln!(
                        "ue-metrics-decode: more record errors follow; only the count is shown"
                    );
                }
            }
        }
    }

    /// Live `--refresh`: the table so far with rates and a totals line; on a terminal it
    /// replaces the previous one in place.
    fn draw_live(&mut self, stats: &DecodeStats, elapsed: Duration) {
        let mut text = self.summary.live_table(elapsed);
        text.push_str(&live_totals(stats, elapsed, &self.summary));
        text.push('\n');
        let terminal = io::stdout().is_terminal();
        let mut out = String::new();
        match self.drawn_lines {
            // Cursor up over the last table, then clear to the end of the screen.
            Some(lines) if terminal && lines > 0 => out.push_str(&format!("\x1b[{lines}A\x1b[J")),
            Some(_) if !terminal => out.push('\n'),
            _ => {}
        }
        out.push_str(&text);
        self.drawn_lines = Some(text.lines().count());
        self.write_out(out.as_bytes(), true);
    }

    /// Writes to stdout. A write error ends the run ([`stop_on_stdout_error`]), except while
    /// other outputs are on (`--forward`, `--prometheus`): then only stdout stops and the run
    /// goes on for the others (ending it there dropped the forward queue without a count). A
    /// reader that went away (`| head`) is its choice; any other error makes the exit status 1.
    fn write_out(&mut self, bytes: &[u8], flush: bool) {
        if self.stdout_closed {
            return;
        }
        let written = self.stdout.write_all(bytes);
        let result = if flush {
            written.and_then(|()| self.stdout.flush())
        } else {
            written
        };
        let Err(error) = result else { return };
        if self.forwarder.is_none() && self.prometheus.is_none() {
            stop_on_stdout_error(error);
        }
        if error.kind() == io::ErrorKind::BrokenPipe {
            eprintln!(
                "ue-metrics-decode: stdout was closed by its reader; the other outputs go on"
            );
        } else {
            eprintln!(
                "ue-metrics-decode: cannot write to stdout: {error}; the other outputs go on"
            );
            self.stdout_failed = true;
        }
        self.stdout_closed = true;
        // What is still buffered has nowhere to go: dropped unwritten.
        let closed = std::mem::replace(&mut self.stdout, BufWriter::new(io::stdout()));
        let _ = closed.into_parts();
    }

    /// The source's counts, for the Prometheus endpoint's self-telemetry.
    fn source_stats(&self, stats: &DecodeStats) {
        if let Some(p) = &self.prometheus {
            p.set_source_stats(stats);
            if let Some(f) = &self.forwarder {
                p.set_forward_stats(f.stats());
            }
        }
    }

    /// A file source was read to the end: with `--prometheus`, keep serving what it held until
    /// SIGINT or SIGTERM.
    fn serve_until_stopped(&mut self, stats: &DecodeStats) {
        self.flush_merge();
        if self.prometheus.is_none() {
            return;
        }
        // The counts first: the line below tells scripts that everything read is served.
        self.source_stats(stats);
        if let Some(p) = &self.prometheus {
            p.input_ended();
        }
        let stop = self.stop_on_signals();
        eprintln!("ue-metrics-decode: input read; serving until interrupted (Ctrl-C or SIGTERM)");
        while !stop.load(Ordering::Relaxed) {
            // Forwarding goes on in the background: keep its counts current.
            self.source_stats(stats);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Prints the summary and counts; returns the exit code. `read_failed`: the input ended in
    /// an error that the caller reports next, with exit status 1.
    fn finish(
        mut self,
        stats: &DecodeStats,
        live_rate: Option<Duration>,
        read_failed: bool,
    ) -> ExitCode {
        self.flush_merge();
        if let Some(p) = self.prometheus.take() {
            let (series, c) = p.counts();
            // Why, when any were dropped: "(series_limit: 5, out_of_order: 1)".
            let reasons: Vec<String> = DropReason::ALL_REASONS
                .iter()
                .filter(|r| c.dropped(**r) > 0)
                .map(|r| format!("{}: {}", r.as_str(), c.dropped(*r)))
                .collect();
            eprintln!(
                "ue-metrics-decode: prometheus: {} points into {series} live series ({} created, {} expired, {} resets), {} points dropped{}",
                c.points,
                c.series_created,
                c.series_expired,
                c.resets,
                c.dropped.iter().sum::<u64>(),
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join(", "))
                }
            );
            p.stop();
        }
        let mut code = ExitCode::SUCCESS;
        if let (Some(elapsed), true) = (live_rate, self.refresh) {
            self.draw_live(stats, elapsed);
        } else if self.format == Format::Summary {
            let mut text = self.summary.table();
            if let Some(elapsed) = live_rate {
                let secs = elapsed.as_secs_f64().max(1e-9);
                let per_event = stats.buffer_bytes.checked_div(stats.decoded).unwrap_or(0);
                text.push_str(&format!(
                    "\n{} events in {:.1} s: {:.1} events/s, {} bytes/event, {} lost\n",
                    stats.records,
                    secs,
                    stats.records as f64 / secs,
                    per_event,
                    stats.lost
                ));
            }
            self.write_out(text.as_bytes(), false);
        }
        self.write_out(b"", true);
        if let Some(merger) = &self.merger {
            eprintln!(
                "ue-metrics-decode: merged {} records into earlier ones",
                merger.merged_records()
            );
        }
        eprintln!("ue-metrics-decode: {stats}");
        if let Some(elapsed) = live_rate {
            // One line for scripts (the demo compares it with what the app wrote).
            eprintln!(
                "ue-metrics-decode: totals events={} decoded={} buffer_bytes={} points={} \
                 metrics={} lost={} seconds={:.1}",
                stats.records,
                stats.decoded,
                stats.buffer_bytes,
                self.summary.points(),
                self.summary.metrics(),
                stats.lost,
                elapsed.as_secs_f64()
            );
        }
        if let Some(forwarder) = self.forwarder.take() {
            // A signal ended the run: its drain has begun, or begins now when the watcher (which
            // looks every 50 ms) has not seen the signal yet.
            let drain = forwarder.drain_handle();
            if self.stop.load(Ordering::Relaxed) && !drain.begun() {
                drain.begin(Instant::now() + self.drain_timeout);
            }
            let draining = drain.begun();
            let f = forwarder.finish();
            eprintln!(
                "ue-metrics-decode: forwarded {} requests ({} failed, {} dropped by the full queue, \
                 {} retries, {} points rejected by the receiver)",
                f.sent, f.failed, f.dropped, f.retries, f.rejected_points
            );
            eprintln!(
                "ue-metrics-decode: forward queue: {} requests handed over, high-water {} of {}, \
                 {} not delivered by the drain deadline{}",
                f.requests,
                f.queue_high_water,
                f.queue_capacity,
                f.drain_dropped,
                if draining {
                    format!(
                        " ({:.1} s after the stop; dropped)",
                        self.drain_timeout.as_secs_f64()
                    )
                } else {
                    String::new()
                }
            );
            if f.failed + f.dropped + f.drain_dropped + f.rejected_points > 0 {
                if let Some(e) = f.last_error {
                    eprintln!("ue-metrics-decode: last forwarding error: {e}");
                }
                code = ExitCode::FAILURE;
            }
        }
        if self.stdout_failed {
            code = ExitCode::FAILURE;
        }
        // `lost` comes from the input (a perf.data LOST record, an ftrace marker) and may be
        // as large as u64::MAX: no sum.
        if code == ExitCode::SUCCESS && !read_failed && (stats.failed > 0 || stats.lost > 0) {
            // The run ended normally, but not every record reached the output: say so in the
            // exit status too, for scripts that do not read stderr.
            eprintln!(
                "ue-metrics-decode: exit status {INCOMPLETE}: {} records failed, {} lost",
                stats.failed, stats.lost
            );
            code = ExitCode::from(INCOMPLETE);
        }
        code
    }
}

/// Warns on stderr when points of new series are dropped at `--prometheus-max-series`: at the
/// first drop, then at most once a minute while drops go on (a warning per point would flood
/// the log exactly when a producer misbehaves).
#[derive(Debug)]
struct SeriesLimitWarning {
    max_series: usize,
    /// Drops counted at the last warning, and when it was printed.
    warned: u64,
    warned_at: Option<Instant>,
}

impl SeriesLimitWarning {
    const EVERY: Duration = Duration::from_secs(60);

    fn new(max_series: usize) -> Self {
        SeriesLimitWarning {
            max_series,
            warned: 0,
            warned_at: None,
        }
    }

    /// Warns if `dropped` (the running count) calls for it; returns whether it did.
    fn check(&mut self, dropped: u64, now: Instant) -> bool {
        if dropped == self.warned
            || self
                .warned_at
                .is_some_and(|at| now.saturating_duration_since(at) < Self::EVERY)
        {
            return false;
        }
        eprintln!(
            "ue-metrics-decode: prometheus: {} series held (--prometheus-max-series): {dropped} \
             points of new series dropped so far; an attribute with unbounded values (an id, a \
             time) is the usual cause, else raise the limit",
            self.max_series
        );
        self.warned = dropped;
        self.warned_at = Some(now);
        true
    }
}

/// The line under the live table: what arrived so far.
fn live_totals(stats: &DecodeStats, elapsed: Duration, summary: &Summary) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    format!(
        "{:.1} s: {} events ({:.1}/s), {} bytes/event, {} metrics, {} points, {} lost",
        elapsed.as_secs_f64(),
        stats.records,
        stats.records as f64 / seconds,
        stats.buffer_bytes.checked_div(stats.decoded).unwrap_or(0),
        summary.metrics(),
        summary.points(),
        stats.lost
    )
}

/// Ends the run after a failed write to stdout. A pipe closed by its reader (`| head`) is the
/// reader's choice: exit 0, as USAGE documents. Any other error (disk full, I/O error) means
/// output was lost: exit 1.
fn stop_on_stdout_error(error: io::Error) -> ! {
    if error.kind() == io::ErrorKind::BrokenPipe {
        eprintln!("ue-metrics-decode: stdout was closed by its reader; stopping");
        std::process::exit(0);
    }
    eprintln!("ue-metrics-decode: cannot write to stdout: {error}");
    std::process::exit(1);
}

/// Writes `text` to stdout (`print!` would panic on a write error).
fn write_stdout(text: &str) {
    let mut stdout = io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        stop_on_stdout_error(error);
    }
}

/// Exit status of a run that read its input to the end (or until stopped) but could not decode
/// every record: some failed (their reasons are counted on stderr) or the kernel reported some
/// lost. Failures of the run itself (unreadable input, forwarding, stdout) are 1 and win.
const INCOMPLETE: u8 = 3;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ue-metrics-decode: {message}");
    ExitCode::FAILURE
}

fn read_input(input: Option<&str>) -> Result<Vec<u8>, String> {
    match input {
        None | Some("-") => {
            let mut bytes = Vec::new();
            io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            Ok(bytes)
        }
        Some(path) => std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}")),
    }
}

fn run_payload(args: &Args) -> ExitCode {
    let bytes = match read_input(args.input.as_deref()) {
        Ok(bytes) => bytes,
        Err(e) => return fail(e),
    };
    let name = args.input.as_deref().unwrap_or("-");
    let payload = match decode_payload_in(&bytes, args.byte_order) {
        Ok(payload) => payload,
        Err(e) => return fail(format!("{name} is not a usable payload: {e}")),
    };
    let record = Record::from_payload(Default::default(), Ok(payload));
    if let Err(e) = &record.result {
        return fail(format!("{name}: {e}"));
    }
    let mut output = match Output::new(args, false) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let mut stats = DecodeStats::default();
    stats.count(&record);
    output.record(record);
    output.serve_until_stopped(&stats);
    output.finish(&stats, None, false)
}

fn run_perf_data(args: &Args) -> ExitCode {
    let path = match args.input.as_deref() {
        Some("-") | None => "/dev/stdin",
        Some(path) => path,
    };
    let mut source = match PerfDataSource::open(path) {
        Ok(source) => source,
        Err(e) => return fail(e),
    };
    if !args.events.is_empty() {
        source.select_events(args.events.clone());
    }
    let mut output = match Output::new(args, false) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let result = source.for_each(|record| output.record(record));
    let stats = source.stats().clone();
    if stats.records == 0 {
        eprintln!(
            "ue-metrics-decode: no OTLP metrics records in {path} ({} samples of other events)",
            stats.other_events
        );
    }
    output.serve_until_stopped(&stats);
    let code = output.finish(&stats, None, result.is_err());
    match result {
        Ok(()) => code,
        Err(e) => fail(e),
    }
}

fn run_trace(args: &Args) -> ExitCode {
    let input: Box<dyn BufRead> = match args.input.as_deref() {
        None | Some("-") => Box::new(io::stdin().lock()),
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => Box::new(io::BufReader::new(f)),
            Err(e) => return fail(format!("cannot read {path}: {e}")),
        },
    };
    let default = [ue_metrics_decode::event::EVENT_NAME.to_owned()];
    let events: Vec<&str> = if args.events.is_empty() {
        &default[..]
    } else {
        &args.events[..]
    }
    .iter()
    .map(String::as_str)
    .collect();
    // trace_pipe is a live stream: show each line as it comes.
    let mut output = match Output::new(args, true) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let mut stats = DecodeStats::default();
    let result = ftrace::read_trace(input, &events, &mut stats, |record| output.record(record));
    output.serve_until_stopped(&stats);
    let code = output.finish(&stats, None, result.is_err());
    match result {
        Ok(()) => code,
        Err(e) => fail(format!("reading the trace text failed: {e}")),
    }
}

fn run_live(args: &Args) -> ExitCode {
    let tracefs = match user_events_sys::Tracefs::discover() {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let mut names = args.events.iter().cloned();
    let options = LiveOptions {
        event: names.next().unwrap_or(LiveOptions::default().event),
        extra_events: names.collect(),
        pages_per_cpu: args.pages,
        ..LiveOptions::default()
    };
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + d);
    // Registrations this process holds (`--register` without PERSIST): the events live
    // while they are held, so until the end of the run.
    let mut held = Vec::new();
    for event in std::iter::once(&options.event).chain(&options.extra_events) {
        if !live::resolve_event(&tracefs, &options.group, event).is_empty() {
            continue;
        }
        if args.register {
            match live::register_event(&tracefs, event) {
                Ok(live::Registration::Persistent) => eprintln!(
                    "ue-metrics-decode: registered {}/{event} as a persistent event \
                     (USER_EVENT_REG_PERSIST): it stays after this agent exits, until deleted",
                    options.group
                ),
                Ok(live::Registration::Held(registration)) => {
                    eprintln!(
                        "ue-metrics-decode: registered {}/{event} without PERSIST (not allowed: \
                         it needs CAP_PERFMON, or Linux 6.7+): the event lives while this agent \
                         runs (or a producer uses it)",
                        options.group
                    );
                    held.push(registration);
                }
                Err(e) => return fail(e),
            }
        } else if let Some(wait) = args.wait {
            eprintln!(
                "ue-metrics-decode: {}/{event} is not registered yet: waiting for a producer to register it...",
                options.group
            );
            let limit = match (wait, deadline) {
                (Some(w), Some(d)) => w.min(d.saturating_duration_since(Instant::now())),
                (Some(w), None) => w,
                (None, Some(d)) => d.saturating_duration_since(Instant::now()),
                (None, None) => Duration::MAX / 4,
            };
            if !live::wait_for_event(&tracefs, &options.group, event, limit) {
                return fail(format!(
                    "{}/{event} was not registered within {:.1} s",
                    options.group,
                    limit.as_secs_f64()
                ));
            }
        }
    }
    let mut source = match LiveSource::open(&tracefs, &options) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let tracepoints: Vec<String> = source
        .tracepoints()
        .iter()
        .map(|t| format!("{}/{} ({})", t.group, t.name, t.decoder.layout_name()))
        .collect();
    // The outputs (endpoint bound, forwarder started) before "reading": once that line is out,
    // everything the agent offers is up.
    let mut output = match Output::new(args, true) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    eprintln!(
        "ue-metrics-decode: reading {} on CPUs {:?}{}",
        tracepoints.join(", "),
        source.cpus(),
        match (args.duration, args.count) {
            (Some(d), _) => format!(" for {:.1} s", d.as_secs_f64()),
            (None, Some(n)) => format!(" until {n} records"),
            (None, None) => " until interrupted (Ctrl-C)".into(),
        }
    );
    // Ctrl-C (or SIGTERM) ends the loop like `--duration` does, so the final summary and
    // counts still print.
    let interrupted = output.stop_on_signals();
    let collect_start = Instant::now();
    let mut next_rescan = collect_start + RESCAN_EVERY;
    let mut rescan_error_shown = false;
    let mut limit = CountLimit::new(args.count);
    let mut idle_since = Instant::now();
    let mut next_refresh = args.refresh.map(|every| collect_start + every);
    loop {
        if limit.reached() || interrupted.load(Ordering::Relaxed) {
            break;
        }
        let mut now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let (Some(due), Some(every)) = (next_refresh, args.refresh) {
            if now >= due {
                output.draw_live(source.stats(), collect_start.elapsed());
                // Keep the beat; after a stall, start again from now.
                let next = due + every;
                next_refresh = Some(if next <= now { now + every } else { next });
                now = Instant::now();
            }
        }
        let mut step = deadline.map_or(Duration::from_millis(200), |d| {
            (d - now).min(Duration::from_millis(200))
        });
        if let Some(due) = next_refresh {
            step = step.min(due.saturating_duration_since(now));
        }
        let result = source.poll(step, |record| {
            if limit.take() {
                output.record(record);
            }
        });
        output.source_stats(source.stats());
        match result {
            Ok(0) => {
                // Idle: a pending merge will not grow any more.
                if idle_since.elapsed() >= Duration::from_millis(200) {
                    output.flush_merge();
                }
            }
            Ok(_) => idle_since = Instant::now(),
            Err(e) => {
                let stats = source.stats().clone();
                let _ = output.finish(&stats, Some(collect_start.elapsed()), true);
                return fail(e);
            }
        }
        // Producers that register a new multi-format event (a new tracepoint) after the
        // source opened: attach it. Cheap (a directory listing); once a second.
        if Instant::now() >= next_rescan {
            next_rescan = Instant::now() + RESCAN_EVERY;
            match source.rescan() {
                Ok(added) => {
                    for t in added {
                        eprintln!(
                            "ue-metrics-decode: now also reading {}/{} ({})",
                            t.group,
                            t.name,
                            t.decoder.layout_name()
                        );
                    }
                }
                Err(e) if !rescan_error_shown => {
                    rescan_error_shown = true;
                    eprintln!("ue-metrics-decode: a new tracepoint cannot be read: {e}");
                }
                Err(_) => {}
            }
        }
    }
    // The queue gets --drain-timeout from now (from the signal, if one ended the loop).
    output.begin_drain();
    // What the rings still hold when Ctrl-C, SIGTERM or --duration ends the loop was written
    // before the end: read it too (a few rounds at most; the producers go on writing).
    for _ in 0..4 {
        if limit.reached() {
            break;
        }
        match source.poll(Duration::ZERO, |record| {
            if limit.take() {
                output.record(record);
            }
        }) {
            Ok(0) | Err(_) => break,
            Ok(_) => output.source_stats(source.stats()),
        }
    }
    if limit.past > 0 {
        // The rings are read a batch at a time: the batch that reached the count held more.
        eprintln!(
            "ue-metrics-decode: {} more records were read with the last batch after --count \
             was reached; they are in the counts below but were not output",
            limit.past
        );
    }
    let stats = source.stats().clone();
    let code = output.finish(&stats, Some(collect_start.elapsed()), false);
    drop(held);
    code
}

/// `live --count N`: the first N records are output; the rest of the batch that reached N is
/// counted (it was read and decoded) but not output.
struct CountLimit {
    limit: Option<u64>,
    taken: u64,
    /// Records read after the limit was reached.
    past: u64,
}

impl CountLimit {
    fn new(limit: Option<u64>) -> CountLimit {
        CountLimit {
            limit,
            taken: 0,
            past: 0,
        }
    }

    fn reached(&self) -> bool {
        self.limit.is_some_and(|n| self.taken >= n)
    }

    /// Whether the next record is output (else it is counted as past the limit).
    fn take(&mut self) -> bool {
        if self.reached() {
            self.past += 1;
            false
        } else {
            self.taken += 1;
            true
        }
    }
}

fn main() -> ExitCode {
    // OsString: an argument that is not UTF-8 gets a message from the parser, not a panic.
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    if argv.is_empty() || argv.iter().any(|a| a == "--help" || a == "-h") {
        write_stdout(USAGE);
        return if argv.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    if argv.iter().any(|a| a == "--version" || a == "-V") {
        write_stdout(&format!(
            "ue-metrics-decode {}\n",
            env!("CARGO_PKG_VERSION")
        ));
        return ExitCode::SUCCESS;
    }
    let args = match parse_args(argv) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("ue-metrics-decode: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match args.command.as_str() {
        "payload" => run_payload(&args),
        "perf-data" => run_perf_data(&args),
        "trace" => run_trace(&args),
        _ => run_live(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_limit_outputs_the_first_n_and_counts_the_rest_of_the_batch() {
        let mut limit = CountLimit::new(Some(2));
        let output: Vec<bool> = (0..5).map(|_| limit.take()).collect();
        assert_eq!(output, [true, true, false, false, false]);
        assert!(limit.reached());
        assert_eq!((limit.taken, limit.past), (2, 3));
        let mut unlimited = CountLimit::new(None);
        assert!((0..100).all(|_| unlimited.take()) && !unlimited.reached());
        assert_eq!(unlimited.past, 0);
    }

    /// A live agent that shows no table counts points for its totals line but keeps no
    /// attribute sets: it runs for weeks, and attribute sets come and go, so what it holds
    /// must follow the live series (the Prometheus state's expiry), not the time it ran.
    #[test]
    fn a_live_agent_without_a_table_holds_no_attribute_sets() {
        use ue_metrics_decode::proto::common::v1::{any_value, AnyValue, KeyValue};
        use ue_metrics_decode::proto::metrics::v1::{
            metric, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
        };
        let args = args(&["live", "--format", "none"]).unwrap();
        let mut output = Output::new(&args, false).unwrap();
        for i in 0..1000 {
            let point = NumberDataPoint {
                attributes: vec![KeyValue {
                    key: "request.id".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(i)),
                    }),
                    ..Default::default()
                }],
                time_unix_nano: 1,
                value: Some(
                    ue_metrics_decode::proto::metrics::v1::number_data_point::Value::AsInt(i),
                ),
                ..Default::default()
            };
            let request =
                ue_metrics_decode::proto::collector::metrics::v1::ExportMetricsServiceRequest {
                    resource_metrics: vec![ResourceMetrics {
                        scope_metrics: vec![ScopeMetrics {
                            metrics: vec![Metric {
                                name: "in.flight".into(),
                                data: Some(metric::Data::Gauge(Gauge {
                                    data_points: vec![point],
                                })),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                };
            output.record(Record {
                meta: Default::default(),
                buffer_len: 10,
                result: Ok(request),
                original: None,
            });
        }
        assert_eq!(
            (output.summary.points(), output.summary.metrics()),
            (1000, 1)
        );
        assert_eq!(output.summary.attribute_sets(), 0);
    }

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list)
    }

    #[test]
    fn the_series_limit_warning_comes_at_the_first_drop_then_once_a_minute_while_they_go_on() {
        let mut warning = SeriesLimitWarning::new(10);
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert!(!warning.check(0, at(0)), "nothing dropped");
        assert!(warning.check(1, at(1)), "the first drop");
        assert!(!warning.check(500, at(30)), "more drops within the minute");
        assert!(warning.check(900, at(61)), "a minute later, still dropping");
        assert!(!warning.check(900, at(200)), "no new drops: quiet");
        assert!(
            warning.check(901, at(201)),
            "drops again after a quiet spell"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn arguments() {
        let a = args(&[
            "live",
            "--duration",
            "3s",
            "--count=7",
            "--format",
            "summary",
            "--wait=2s",
        ])
        .unwrap();
        assert_eq!(a.duration, Some(Duration::from_secs(3)));
        assert_eq!(a.count, Some(7));
        assert_eq!(a.format, Some(Format::Summary));
        assert_eq!(a.wait, Some(Some(Duration::from_secs(2))));
        let a = args(&["payload", "-", "--forward", "http://x:1"]).unwrap();
        assert_eq!(a.input.as_deref(), Some("-"));
        assert_eq!(a.forward.as_deref(), Some("http://x:1"));
        assert!(args(&["payload", "--duration", "1s"])
            .unwrap_err()
            .contains("live"));
        assert!(args(&["perf-data"]).is_err());
        assert!(args(&["live", "extra"]).is_err());
        assert!(args(&["live", "--pages", "3"]).is_err());
        let a = args(&["live", "--format", "summary", "--refresh", "1s"]).unwrap();
        assert_eq!(a.refresh, Some(Duration::from_secs(1)));
        assert!(args(&["live", "--refresh", "1s"])
            .unwrap_err()
            .contains("summary"));
        assert!(args(&["live", "--format", "summary", "--refresh", "0s"]).is_err());
        assert!(args(&["perf-data", "f", "--format", "summary", "--refresh", "1s"]).is_err());
        assert!(args(&["nope"]).is_err());
        let a = args(&[
            "trace",
            "--forward=http://c:4318",
            "--forward-gzip",
            "--forward-timeout",
            "5s",
        ])
        .unwrap();
        assert!(a.forward_gzip);
        assert_eq!(a.forward_timeout, Some(Duration::from_secs(5)));
        assert!(args(&["trace", "--forward-gzip"])
            .unwrap_err()
            .contains("--forward"));
        let a = args(&["live", "--event", "a", "--event=b_L4K1"]).unwrap();
        assert_eq!(a.events, ["a", "b_L4K1"]);
        let a = args(&["payload", "--byte-order", "big"]).unwrap();
        assert_eq!(a.byte_order, ByteOrder::Big);
        assert!(args(&["payload", "--byte-order", "middle"]).is_err());
        assert!(args(&["perf-data", "f", "--byte-order", "big"])
            .unwrap_err()
            .contains("payload"));
        assert!(args(&["trace", "--format", "xml"]).is_err());
        // lexopt's rules: a flag takes no value, `--` ends the options, short options exist
        // (none is ours), `--wait` takes a value only after `=`.
        assert!(args(&["trace", "--merge=yes"]).is_err());
        let a = args(&["trace", "--", "--odd-name"]).unwrap();
        assert_eq!(a.input.as_deref(), Some("--odd-name"));
        assert_eq!(args(&["trace", "-x"]).unwrap_err(), "unknown option -x");
        assert!(args(&["live", "--wait", "2s"])
            .unwrap_err()
            .contains("unexpected argument \"2s\""));
        assert_eq!(args(&["live", "--wait"]).unwrap().wait, Some(None));
        assert!(args(&["trace", "--format"])
            .unwrap_err()
            .contains("missing argument"));
    }

    #[test]
    fn arguments_that_are_not_utf8_are_refused_not_a_panic() {
        use std::os::unix::ffi::OsStringExt as _;
        let latin1 = OsString::from_vec(b"caf\xe9.data".to_vec());
        let error = parse_args([OsString::from("perf-data"), latin1]).unwrap_err();
        assert!(error.contains("invalid unicode"), "{error}");
        let error = parse_args([
            OsString::from("perf-data"),
            "--event".into(),
            OsString::from_vec(vec![0xff]),
        ])
        .unwrap_err();
        assert!(error.contains("invalid unicode"), "{error}");
    }
}
