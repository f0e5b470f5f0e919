//! The agent without root, as the README's systemd unit runs it: a user in the `tracers` group
//! (tracefs mounted with `gid=tracers`) with only `CAP_PERFMON`, through `setpriv` (util-linux)
//! as systemd's `AmbientCapabilities=CAP_PERFMON` does. Without the capability it fails with
//! the documented error and exit code 1.

use std::io::IoSlice;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message as _;
use ue_metrics_decode::live::EVENT_FIELDS;
use ue_metrics_decode::payload::encode_payload;
use user_events_sys::DataFile;

use super::{register, request, tracefs, LiveCli};

/// The guest's `tracer` user and `tracers` group (xtask's initramfs).
const TRACER: &str = "1001";
const SETPRIV: &str = "/usr/bin/setpriv";
const TRACING: &str = "/sys/kernel/tracing";

/// Gives tracefs to group `gid` as the README's "Permissions without root" does (remount with
/// `gid=`, the group may traverse the root directory), and back to root-only when dropped.
struct TracefsGroup;

impl TracefsGroup {
    fn set(gid: &str, mode: &str) {
        for args in [
            vec!["mount", "-o", &format!("remount,gid={gid}"), TRACING],
            vec!["chmod", mode, TRACING],
        ] {
            let status = Command::new("/bin/busybox").args(&args).status();
            assert!(
                status.as_ref().is_ok_and(|s| s.success()),
                "{args:?}: {status:?}"
            );
        }
    }
}

impl Drop for TracefsGroup {
    fn drop(&mut self) {
        TracefsGroup::set("0", "0700");
    }
}

/// `setpriv` arguments that run a program as the `tracer` user, with `caps` (`-all` or
/// `+perfmon`) in its inheritable and ambient sets.
fn as_tracer(caps: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        SETPRIV, "--reuid", TRACER, "--regid", TRACER, "--groups", TRACER,
    ]
    .map(String::from)
    .to_vec();
    args.push(format!("--inh-caps={caps}"));
    if caps != "-all" {
        args.push(format!("--ambient-caps={caps}"));
    }
    args.push("--".into());
    args
}

#[test]
fn live_runs_without_root_with_cap_perfmon_and_the_tracers_group() {
    if !Path::new(SETPRIV).is_file() {
        // Never silent: `cargo xtask e2e` lists the skip in its summary.
        println!(
            "UE-SKIP live_runs_without_root_with_cap_perfmon_and_the_tracers_group: no {SETPRIV} \
             in this {} guest (the host's util-linux is an x86_64 program)",
            std::env::consts::ARCH
        );
        return;
    }
    let tracefs = tracefs();
    let data = DataFile::open(&tracefs).unwrap();
    // The denied run needs an event to fail on (without one it stops at "not registered").
    let _denied_event = register(&data, &format!("ue_decode_nonroot {EVENT_FIELDS}"));
    TracefsGroup::set(TRACER, "0750");
    let _restore = TracefsGroup;
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").unwrap();
    assert!(
        paranoid.trim().parse::<i32>().unwrap() >= 1,
        "perf_event_paranoid {paranoid}: the check needs the default"
    );

    // In the group but without CAP_PERFMON: the documented error, exit code 1.
    let runner = as_tracer("-all");
    let denied = Command::new(&runner[0])
        .args(&runner[1..])
        .args([env!("CARGO_BIN_EXE_ue-metrics-decode"), "live"])
        .args(["--event", "ue_decode_nonroot", "--count", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert_eq!(denied.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CAP_PERFMON"), "{stderr}");

    // The README's systemd unit, as systemd runs it: its ExecStart line (the binary at its
    // build path) as a user of `tracers` with its AmbientCapabilities only.
    let unit = include_str!("../../deploy/ue-metrics-agent.service");
    let setting = |key: &str| {
        unit.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key}= in the unit"))
    };
    let exec: Vec<&str> = setting("ExecStart").split_whitespace().collect();
    assert_eq!(exec[1], "live", "{exec:?}");
    let caps = setting("AmbientCapabilities")
        .split_whitespace()
        .map(|cap| format!("+{}", cap.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(caps, "+perfmon");
    let listen = exec
        .windows(2)
        .find(|w| w[0] == "--prometheus")
        .map(|w| w[1])
        .expect("the unit serves Prometheus");
    // The name the unit reads also selects multi-format registrations of it: let those that
    // earlier tests left go first.
    super::wait_until_no_multi_format(&tracefs, "otlp_metrics");
    super::delete_when_unused(&tracefs, "otlp_metrics");
    let default_event = register(&data, &format!("otlp_metrics {EVENT_FIELDS}"));
    let runner = as_tracer(&caps);
    let runner: Vec<&str> = runner.iter().map(String::as_str).collect();
    let mut cli = LiveCli::start_with(&runner, &exec[2..]);
    cli.wait_for("serving Prometheus metrics at");
    for service in ["nonroot-a", "nonroot-b"] {
        default_event
            .write(&[IoSlice::new(&encode_payload(
                &request(service, 2).encode_to_vec(),
            ))])
            .unwrap();
    }
    let expected = r#"kernel_test_requests_total{job="nonroot-b",instance=""#;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = super::try_http_get(listen, "/metrics");
        if body.as_ref().is_ok_and(|body| {
            body.contains(expected) && body.contains("ue_metrics_decode_records_decoded_total 2")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no {expected} in {body:?}; the agent: {}",
            cli.state()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // systemd stops it with SIGTERM: final counts, exit code 0.
    let (status, _, stderr) = cli.terminate();
    assert!(status.success(), "exit {status:?} after SIGTERM: {stderr}");
    assert!(stderr.contains("2 records: 2 decoded"), "{stderr}");
    drop(default_event);
    println!("UE-MEASURE nonroot_agent_records=2");
}
