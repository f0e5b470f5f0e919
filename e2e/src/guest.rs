//! Where the guest suite finds the programs `cargo xtask e2e` packed, and how it reports
//! measured values.
//!
//! `cargo xtask e2e` packs, per this crate's `[package.metadata.ue-vm]`:
//! - host programs (`/usr/bin/perf`) at their host paths, with their libraries;
//! - the bins of this package at their host paths, so `env!("CARGO_BIN_EXE_<name>")` is valid
//!   in the guest as on the host;
//! - the bins of the packages in `guest-bins` (`ue-metrics-decode`) and of the own workspaces
//!   in `guest-workspaces` (`peer-upstream`) as `/opt/ue/bin/<bin>`.
//!
//! [`packed_program`] finds the latter: `$UE_E2E_BIN_DIR/<name>` (default `/opt/ue/bin`), so a
//! native run on a user_events host can point it elsewhere.

use std::path::PathBuf;

/// Where `cargo xtask e2e` puts packed bins in the guest.
pub const GUEST_BIN_DIR: &str = "/opt/ue/bin";

/// The environment variable that overrides [`GUEST_BIN_DIR`].
pub const BIN_DIR_VAR: &str = "UE_E2E_BIN_DIR";

/// The upstream exporter's peer app (`e2e/peer-upstream`).
pub const PEER_UPSTREAM: &str = "ue-peer-upstream";

/// The decoder's command-line tool.
pub const DECODE_CLI: &str = "ue-metrics-decode";

/// Debian's `perf` (package `linux-perf`), packed at its host path.
pub const PERF: &str = "/usr/bin/perf";

/// The path of the packed bin `name`, or why it is missing.
pub fn packed_program(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::var_os(BIN_DIR_VAR).unwrap_or_else(|| GUEST_BIN_DIR.into());
    let path = PathBuf::from(dir).join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: `cargo xtask e2e` packs it (see [package.metadata.ue-vm] in \
             e2e/Cargo.toml); for a native run set {BIN_DIR_VAR} to a directory holding it",
            path.display()
        ))
    }
}

/// Reports a measured value: a `UE-MEASURE <key>=<value>` line on stdout and stderr, which
/// `cargo xtask e2e` collects and summarises.
pub fn measure(key: &str, value: impl std::fmt::Display) {
    println!("UE-MEASURE {key}={value}");
    eprintln!("UE-MEASURE {key}={value}");
}

/// Reports that `test` cannot run in this guest and returns early: a `UE-SKIP <test>: <why>`
/// line on stdout and stderr, which `cargo xtask e2e` lists in its summary (a skip is never
/// silent).
pub fn skip(test: &str, why: &str) {
    println!("UE-SKIP {test}: {why}");
    eprintln!("UE-SKIP {test}: {why}");
}

/// Whether Debian's `perf` is in this guest. `cargo xtask e2e` packs the host's, which is an
/// x86_64 program: a guest of another architecture has none, and then `test` is skipped
/// ([`skip`]) and this returns false. On x86_64 it returns true either way, so a missing `perf`
/// fails the test there instead of skipping it.
pub fn perf_available(test: &str) -> bool {
    if cfg!(target_arch = "x86_64") || std::path::Path::new(PERF).is_file() {
        return true;
    }
    skip(
        test,
        &format!(
            "no {PERF} in this {} guest (the host's Debian perf is an x86_64 program)",
            std::env::consts::ARCH
        ),
    );
    false
}
