//! Apps without root: without access they get the documented error and keep running; in the
//! `tracers` group (set up as user_events-sys' README documents) they export.

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::Temporality;
use ue_metrics_e2e::collector::Collector;
use ue_metrics_e2e::guest::measure;
use ue_metrics_e2e::known::{self, KnownInstruments, INSTRUMENTS};
use ue_metrics_e2e::reference::{compare, metric_names};
use ue_metrics_exporter::{MetricsExporter, UnavailableKind, DEFAULT_MAX_EVENT_BYTES};
use user_events_sys::{testing, Tracefs};

use crate::common::{exporter, read_expect_file, AppStats, APP};

/// The guest's users (xtask's initramfs): `app` has no extra group, `tracer` is in `tracers`.
const APP_UID: u32 = 1000;
const TRACER_UID: u32 = 1001;
const TRACERS_GID: u32 = 1001;

/// What a run of `ue-e2e-app` printed.
struct AppOutput {
    code: i32,
    stdout: String,
    stderr: String,
}

impl AppOutput {
    fn text(&self) -> String {
        format!(
            "exit code {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `ue-e2e-app` with `args` as `uid`/`gid` with exactly the supplementary `groups`: a
/// forked child drops privileges, then starts the app. (`Command::uid` cannot be used: std
/// then spawns through a `socketpair`, and the VM's kernel has no networking, so no sockets.)
fn run_app_as(uid: u32, gid: u32, groups: &[u32], args: &[&str]) -> AppOutput {
    let out = format!("/tmp/e2e-app-{uid}.out");
    let err = format!("/tmp/e2e-app-{uid}.err");
    let code = testing::fork_and_wait(|| {
        if testing::become_user(uid, gid, groups).is_err() {
            return 90;
        }
        match Command::new(APP).args(args).output() {
            Ok(output) => {
                let saved = fs::write(&out, &output.stdout).and(fs::write(&err, &output.stderr));
                match (saved, output.status.code()) {
                    (Ok(()), Some(code)) => code,
                    (Ok(()), None) => 92,
                    (Err(_), _) => 93,
                }
            }
            Err(_) => 91,
        }
    })
    .expect("fork");
    assert!(
        !(90..=93).contains(&code),
        "running the app as uid {uid}: 90 = setuid failed, 91 = spawn failed, \
         92 = killed, 93 = cannot save its output (code {code})"
    );
    AppOutput {
        code,
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    }
}

#[test]
fn an_app_without_permission_gets_the_documented_error_and_keeps_running() {
    // In-process, through the SDK: the typed error and its remedy.
    let code = testing::fork_and_wait(|| {
        if testing::become_user(APP_UID, APP_UID, &[]).is_err() {
            return 10;
        }
        let Ok(exporter) = MetricsExporter::builder()
            .with_event_name("e2e_denied")
            .build()
        else {
            return 11;
        };
        let Some(why) = exporter.unavailable() else {
            return 12;
        };
        let text = why.to_string();
        println!("uid {APP_UID}: {text}");
        if why.kind() != UnavailableKind::PermissionDenied
            || !text.contains("user_events_data")
            || !text.contains("chgrp tracers")
        {
            return 13;
        }
        measure("nonroot_error_kind", format!("{:?}", why.kind()));
        let provider =
            crate::common::provider_with(ue_metrics_e2e::tee::TeeExporter::new(exporter.clone()));
        let instruments = KnownInstruments::register(&provider.meter(known::SCOPE));
        for round in 1..=3 {
            instruments.record_round(round);
            // The SDK sees success: the condition was reported once, at build.
            if provider.force_flush().is_err() {
                return 14;
            }
        }
        if provider.shutdown().is_err() {
            return 15;
        }
        let skipped = exporter.stats().exports_skipped_unavailable;
        if skipped < 3 {
            return 16;
        }
        measure("nonroot_exports_skipped", skipped);
        0
    })
    .expect("fork");
    assert_eq!(
        code, 0,
        "10 = setuid failed, 11 = build failed, 12 = exporter active without permission, \
         13 = not PermissionDenied naming the data file and a remedy, 14 = flush failed, \
         15 = shutdown failed, 16 = skipped exports not counted"
    );

    // As a process: the app runs to its end and exits 0.
    let output = run_app_as(
        APP_UID,
        APP_UID,
        &[],
        &["--event", "e2e_denied", "--rounds", "3"],
    );
    let text = output.text();
    assert_eq!(output.code, 0, "{text}");
    assert!(
        output.stderr.contains("permission denied"),
        "the documented error: {text}"
    );
    let stats = AppStats::parse(&output.stdout).expect(&text);
    assert_eq!((stats.events, stats.exports), (0, 0), "{text}");
    assert!(stats.skipped_unavailable >= 3, "{text}");
    measure("nonroot_app_exit", output.code);
}

/// Gives group `gid` extra `mode` bits on `path`; restores owner group and mode on drop.
struct GroupAccess {
    path: PathBuf,
    gid: u32,
    mode: u32,
}

impl GroupAccess {
    fn grant(path: &Path, gid: u32, mode: u32) -> GroupAccess {
        let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let old = GroupAccess {
            path: path.into(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        };
        chown(path, None, Some(gid)).expect("chgrp");
        fs::set_permissions(path, fs::Permissions::from_mode(old.mode | mode)).expect("chmod");
        old
    }
}

impl Drop for GroupAccess {
    fn drop(&mut self) {
        let _ = chown(&self.path, None, Some(self.gid));
        let _ = fs::set_permissions(&self.path, fs::Permissions::from_mode(self.mode));
    }
}

#[test]
fn a_tracers_group_user_exports_without_root() {
    let event = "e2e_tracers";
    // Root registers the event first so the (root) collector can attach to it.
    let _holder = exporter(event, Temporality::Delta, DEFAULT_MAX_EVENT_BYTES);
    let mut collector = Collector::attach(event, 256).expect("perf listener");
    let tracefs = Tracefs::discover().expect("tracefs");
    let expect = Path::new("/tmp/e2e-tracers.expect");
    let _ = fs::remove_file(expect);
    let output = {
        // As the README documents: chgrp tracers on the tracefs root and user_events_data,
        // g+x on the directory, g+rw on the data file.
        let _data = GroupAccess::grant(&tracefs.data_file_path(), TRACERS_GID, 0o060);
        let _dir = GroupAccess::grant(tracefs.root(), TRACERS_GID, 0o010);
        let output = run_app_as(
            TRACER_UID,
            TRACERS_GID,
            &[TRACERS_GID],
            &[
                "--event",
                event,
                "--rounds",
                "3",
                "--expect",
                expect.to_str().unwrap(),
            ],
        );
        // Outside the group, still refused.
        let refused = run_app_as(APP_UID, APP_UID, &[], &["--event", event, "--rounds", "1"]);
        let refused_text = refused.text();
        assert_eq!(refused.code, 0, "{refused_text}");
        assert!(
            refused.stderr.contains("permission denied"),
            "{refused_text}"
        );
        output
    };
    let text = output.text();
    assert_eq!(output.code, 0, "{text}");
    assert!(
        !text.contains("not exported"),
        "the tracer's exporter is active: {text}"
    );
    let stats = AppStats::parse(&output.stdout).expect(&text);
    let received = collector.take().expect("drain");
    assert_eq!(collector.lost(), 0);
    let me = std::process::id();
    let pids = received.pids();
    assert_eq!(pids.len(), 1, "one writer: {pids:?}");
    assert_ne!(pids[0], me, "the events came from the tracer's process");
    stats.assert_match(&received, "tracer app");
    let decoded = received.requests().expect("decodes");
    let expected = read_expect_file(expect);
    let agreement = compare(&decoded, &expected).unwrap_or_else(|m| panic!("{m}"));
    assert_eq!(metric_names(&decoded).len(), INSTRUMENTS.len());
    assert!(stats.exports >= 3, "{text}");
    measure("tracers_uid", TRACER_UID);
    measure("tracers_exports", stats.exports);
    measure("tracers_events", received.events());
    measure("tracers_points", agreement.points);
}
