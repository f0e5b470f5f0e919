//! Where the guest suite finds the programs `cargo xtask e2e` packed, and how it reports
//! measured values.
//!
//! `cargo xtask e2e` packs, per this crate's `[package.metadata.ue-vm]`:
//! - host programs (`/usr/bin/perf`) at their host paths, with their libraries;
//! - the bins of this package at their host paths, so `env!("CARGO_BIN_EXE_<name>")` is valid
//!   in the guest as on the host;
//! - release builds of the bins in `guest-bins` (`ue-metrics-decode`, `ue-e2e-app`) and of the
//!   own workspaces in `guest-workspaces` (`peer-upstream`) as `/opt/ue/bin/<bin>`.
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

/// This package's app, release-built (`guest-bins`) for the throughput test (the debug build
/// is at its host path, `env!("CARGO_BIN_EXE_ue-e2e-app")`).
pub const E2E_APP: &str = "ue-e2e-app";

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

/// The marker of an artifact line: `UE-ARTIFACT <name> <base64 chunk>`. `cargo xtask e2e`
/// joins the chunks of each name and saves the file as
/// `target/vm-run/e2e-<arch>/artifacts/<name>` (e.g. a perf.data file recorded in the s390x
/// guest, kept as the decoder's big-endian fixture).
pub const ARTIFACT_MARKER: &str = "UE-ARTIFACT ";

/// Sends `bytes` to the host as the artifact `name` (one word) over the console, in
/// [`ARTIFACT_MARKER`] lines of 76 base64 characters.
pub fn artifact(name: &str, bytes: &[u8]) {
    assert!(
        !name.is_empty() && !name.contains(char::is_whitespace),
        "artifact names are one word: {name:?}"
    );
    let text = base64(bytes);
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(76) {
        out.push_str(ARTIFACT_MARKER);
        out.push_str(name);
        out.push(' ');
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    // One write: the lines stay together on the console.
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .expect("write to the console");
    stdout.flush().expect("flush the console");
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }
}
