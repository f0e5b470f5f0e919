//! Kernel refusals the host never gives, with the kernel's answer scripted
//! (`user_events_sys::testing::ScriptedIoctls`): the exporter builds, says why once, and the
//! app goes on.
#![cfg(target_os = "linux")]

mod common;

use std::path::PathBuf;

use common::LogNames;

use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use ue_metrics_exporter::{BuildError, ExportError, MetricsExporter, UnavailableKind};
use user_events_sys::testing::ScriptedIoctls;

/// A directory with a plain file named `user_events_data`, removed on drop.
struct FakeTracefs(PathBuf);

impl FakeTracefs {
    fn new(label: &str) -> FakeTracefs {
        let dir = std::env::temp_dir().join(format!(
            "ue-exporter-scripted-{label}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("user_events_data"), b"").unwrap();
        FakeTracefs(dir)
    }
}

impl Drop for FakeTracefs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("export must complete without waiting"),
    }
}

#[test]
fn enotty_from_the_register_ioctl_gets_an_inactive_exporter_and_one_warning() {
    let tracefs = FakeTracefs::new("enotty");
    let logs = LogNames::default();
    tracing::subscriber::with_default(logs.clone(), || {
        let script = ScriptedIoctls::start();
        // What every registration of an i686 build gets from an x86_64 kernel, and a 64-bit
        // build from a user_events_data that is not the kernel's.
        script
            .register_fails(libc::ENOTTY)
            .register_fails(libc::ENOTTY);

        let exporter = MetricsExporter::builder()
            .with_tracefs_root(&tracefs.0)
            .build()
            .expect("build succeeds without usable user_events");
        let why = exporter.unavailable().expect("the kernel refused").clone();
        let text = why.to_string();
        let expected_kind = if usize::BITS == 32 {
            assert!(text.contains("32-bit program on a 64-bit kernel"), "{text}");
            assert!(
                text.contains("Build the program for the 64-bit target"),
                "{text}"
            );
            UnavailableKind::NoCompatIoctl
        } else {
            assert!(!text.contains("32-bit"), "{text}");
            assert!(text.contains("not the kernel's user_events_data"), "{text}");
            UnavailableKind::Other
        };
        assert_eq!(why.kind(), expected_kind);

        // The app runs on: every export returns at once, through the SDK as success.
        let metrics = ResourceMetrics::default();
        for _ in 0..3 {
            assert!(block_on(exporter.export(&metrics)).is_ok());
        }
        assert!(matches!(
            exporter.export_metrics(&metrics),
            Err(ExportError::Unavailable(u)) if u == why
        ));
        assert_eq!(exporter.stats().exports_skipped_unavailable, 4);
        assert!(exporter.shutdown().is_ok());

        // Asked to require user_events, build says why instead.
        let strict = MetricsExporter::builder()
            .with_tracefs_root(&tracefs.0)
            .with_require_user_events(true)
            .build()
            .unwrap_err();
        assert!(
            matches!(strict, BuildError::Unavailable(ref u) if u.kind() == expected_kind),
            "{strict:?}"
        );
        assert_eq!(script.calls().register, 2);
    });
    assert_eq!(
        logs.count("UserEventsMetricsExporter.Unavailable"),
        1,
        "the reason is logged once, at build"
    );
}

#[test]
fn shutdown_succeeds_when_the_kernel_already_dropped_the_enabler() {
    let tracefs = FakeTracefs::new("enabler-gone");
    let script = ScriptedIoctls::start();
    script.register_ok(0).unregister_fails(libc::ENOENT);
    let exporter = MetricsExporter::builder()
        .with_tracefs_root(&tracefs.0)
        .build()
        .expect("registered through the script");
    assert!(exporter.unavailable().is_none());
    // The event is unregistered either way: nothing failed that a caller could act on.
    exporter
        .shutdown_now()
        .expect("EnablerGone is a finished unregistration");
    assert_eq!(script.calls().unregister, 1);
}
