//! The deployment files under `deploy/` (the README's systemd unit and Prometheus scrape
//! configuration) are valid for the tools that read them. The kernel tests run the unit's
//! ExecStart line without root (`tests/kernel/nonroot.rs`) and `tests/prometheus.rs` scrapes
//! with the scrape configuration.

use std::process::{Command, Stdio};
use std::time::Duration;

const UNIT: &str = include_str!("../deploy/ue-metrics-agent.service");

#[test]
fn the_systemd_unit_verifies_and_its_command_line_parses() {
    // The binary at its build path (systemd-analyze checks that ExecStart exists).
    let cli = env!("CARGO_BIN_EXE_ue-metrics-decode");
    let exec = UNIT
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    let dir = std::env::temp_dir().join(format!("ue-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("ue-metrics-agent.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/ue-metrics-decode", cli)).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (apt-get install systemd; .ci/install-deps does it)");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
    // Its arguments are the CLI's: a usage error exits with 2 at once; here (no user_events on
    // the host, or no event to wait for within the limit) it gets past parsing.
    let mut run = Command::new(cli)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    if run.try_wait().unwrap().is_none() {
        let _ = run.kill();
    }
    let out = run.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(2), "{exec}: {said}");
    assert!(!said.contains("unknown option"), "{said}");
}
