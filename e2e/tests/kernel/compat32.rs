//! A 32-bit (i686) build of the example app (`ue-metrics-exporter/examples/basic.rs`) in the
//! 64-bit x86_64 guest (`CONFIG_IA32_EMULATION`): the kernel has no `compat_ioctl` for
//! `user_events_data`, so a 32-bit process's register ioctl fails with ENOTTY. The exporter must
//! say so as the reason it is unavailable, and the app must run to its end and exit 0.
//! (The example, not `ue-e2e-app`: the latter links the decoder, whose `tracepoint_decode` 0.5
//! dependency does not compile for i686.)

use std::process::Command;

use ue_metrics_e2e::guest::{measure, packed_program, skip};

use crate::common::output_text;

/// The `basic` example built for i686 (`guest-examples-compat32` in e2e/Cargo.toml).
const APP_32: &str = "basic-i686";

#[test]
fn a_32_bit_app_is_told_why_it_cannot_export_and_runs_on() {
    const TEST: &str = "compat32::a_32_bit_app_is_told_why_it_cannot_export_and_runs_on";
    if !cfg!(target_arch = "x86_64") {
        skip(
            TEST,
            &format!(
                "the 32-bit compat case is shown in the x86_64 guest (i686 on IA32 emulation); \
                 this {} guest's kernel has no 32-bit compat layer",
                std::env::consts::ARCH
            ),
        );
        return;
    }
    let app = packed_program(APP_32).unwrap_or_else(|e| panic!("{e}"));
    let elf = std::fs::read(&app).unwrap();
    assert_eq!(
        (&elf[..4], elf[4]),
        (b"\x7fELF".as_slice(), 1),
        "{} is not a 32-bit ELF program",
        app.display()
    );
    // The SDK's PeriodicReader exports every second: 3 s give a few exports to be skipped.
    let output = Command::new(&app)
        .args([
            "--periodic",
            "--seconds",
            "3",
            "--event-name",
            "e2e_compat32",
        ])
        .output()
        .unwrap();
    let text = output_text(&output);
    assert!(output.status.success(), "the 32-bit app failed: {text}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = stderr
        .lines()
        .find(|l| l.contains("metrics are not exported"))
        .unwrap_or_else(|| panic!("the 32-bit app did not say why it cannot export: {text}"));
    // ENOTTY (errno 25) from the register ioctl; the typed error explains the 32-bit cause.
    assert!(
        ["ENOTTY", "os error 25", "32-bit"]
            .iter()
            .any(|word| reason.contains(word)),
        "the reason does not name ENOTTY or the 32-bit cause: {reason}"
    );
    // The example's last line: `stats: exports=.. skipped_no_listener=.. skipped_unavailable=..
    // ... events=.. ...`.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stats = stdout
        .lines()
        .find_map(|l| l.strip_prefix("stats: "))
        .unwrap_or_else(|| panic!("no stats line: {text}"));
    let stat = |key: &str| -> u64 {
        stats
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in the stats line: {stats}"))
    };
    assert_eq!(stat("events"), 0, "{text}");
    let skipped = stat("skipped_unavailable");
    assert!(skipped >= 1, "exports are counted as skipped: {stats}");
    measure("compat32_i686_reason", reason.trim());
    measure("compat32_i686_exports_skipped", skipped);
}
