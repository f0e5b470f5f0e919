//! `cargo xtask e2e`: every crate's kernel tests, run in one boot of the user_events VM.
//!
//! A crate takes part when it has a `kernel-tests` feature and a test target named `kernel`
//! (found with `cargo metadata`). Each such test binary is built statically (so the guest needs
//! no libraries) into `target/vm-bins`, packed with a static xtask (for `check-kernel` in the
//! guest) into one initramfs, and run as root with `--test-threads=1 --nocapture`. The libtest
//! `test result:` lines, `UE-MEASURE key=value` lines and `UE-SKIP <test>: <why>` lines are
//! collected from the console.
//!
//! `--arch aarch64|s390x|all` does the same in guests of other architectures (qemu TCG): the
//! binaries are cross-built for that Rust target and linked statically with Debian's cross gcc;
//! host programs of another architecture (Debian's `perf`) are left out of that guest, and the
//! tests that need them report `UE-SKIP`. With several architectures, a table compares them
//! (test counts, the limits measured, boot and run times).
//!
//! A crate's manifest can ask for more guest content (`[package.metadata.ue-vm]`):
//! `host-programs` (host programs at their host paths, with their libraries), `guest-bins` (bin
//! targets of the workspace, release builds, as `/opt/ue/bin/<bin>`) and `guest-workspaces`
//! (directories of own cargo workspaces with their own `Cargo.lock`, relative to the crate; their
//! bins release-built statically and packed as `/opt/ue/bin/<bin>`), `guest-examples-compat32` (`<package>/<example>`
//! built for the architecture's 32-bit compat target, i686 on x86_64, packed as
//! `/opt/ue/bin/<example>-i686`; left out where the guest kernel has no 32-bit compat layer). The bins a crate's test build
//! produces are packed at their host paths, so `env!("CARGO_BIN_EXE_<name>")` holds in the guest.

mod showed;

use crate::error::{Error, Result};
use crate::json::{self, Value};
use crate::util::{cargo, describe};
use crate::vm::arch::Arch;
use crate::vm::initramfs::{Initramfs, BINARY_DIR};
use crate::vm::{guest, kernel, qemu};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Where the kernel test binaries go in the guest (`/opt/ue/bin` holds programs and bins).
pub const TEST_DIR: &str = "/opt/ue/tests";

/// The marker kernel tests print to report a measured value.
pub const MEASURE_MARKER: &str = "UE-MEASURE ";

/// The marker of a file a kernel test sends to the host: `UE-ARTIFACT <name> <base64 chunk>`
/// lines, joined per name and saved under `target/vm-run/e2e-<arch>/artifacts/<name>`.
pub const ARTIFACT_MARKER: &str = "UE-ARTIFACT ";

/// The marker a kernel test prints when it cannot run on this guest and returns:
/// `UE-SKIP <test>: <why>` (e.g. no `perf` in a foreign-architecture guest).
pub const SKIP_MARKER: &str = "UE-SKIP ";

/// Options of `cargo xtask e2e`.
#[derive(Debug, Clone)]
pub struct E2eOptions {
    /// How to boot (time limit, CPUs).
    pub boot: qemu::BootOptions,
    /// Host programs to pack at their host paths (with their libraries), besides those the
    /// crates ask for.
    pub with: Vec<PathBuf>,
    /// The guest architectures, one boot each, in order (empty: the host's).
    pub arches: Vec<Arch>,
}

impl Default for E2eOptions {
    fn default() -> Self {
        E2eOptions {
            boot: qemu::BootOptions {
                timeout: Duration::from_secs(600),
                ..qemu::BootOptions::default()
            },
            with: Vec::new(),
            arches: Vec::new(),
        }
    }
}

/// A program to run in the guest: a label and the host binary.
#[derive(Debug, Clone)]
pub struct GuestProgram {
    /// One word naming it in reports (the crate name for test binaries).
    pub label: String,
    /// The static binary on the host.
    pub binary: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// True for libtest binaries, whose `test result:` lines are counted.
    pub is_test: bool,
}

/// What one program did in the guest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProgramReport {
    /// The program's label.
    pub label: String,
    /// Exit code; `None` if the guest never reported one.
    pub exit_code: Option<i32>,
    /// Sums over the `test result:` lines.
    pub passed: u32,
    /// See `passed`.
    pub failed: u32,
    /// See `passed`.
    pub ignored: u32,
    /// How many `test result:` lines were seen.
    pub result_lines: u32,
    /// `UE-MEASURE` values in the order printed.
    pub measures: Vec<(String, String)>,
    /// Names of the tests libtest reported as `FAILED`.
    pub failed_tests: Vec<String>,
    /// Names of the tests libtest reported `ok`, in the order they ran.
    pub passed_tests: Vec<String>,
    /// `UE-SKIP` reasons (`<test>: <why>`): tests that returned early on this guest.
    pub skipped: Vec<String>,
}

/// A crate whose kernel tests e2e runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTestCrate {
    /// The package name.
    pub name: String,
    /// Host programs its tests call in the guest, from its manifest:
    /// `[package.metadata.ue-vm] host-programs = ["/usr/bin/perf"]`. Packed at the same paths,
    /// with their libraries.
    pub host_programs: Vec<PathBuf>,
    /// Bin targets of the workspace its tests run in the guest (`guest-bins`), packed as
    /// `/opt/ue/bin/<bin>`.
    pub guest_bins: Vec<String>,
    /// Own cargo workspaces (`guest-workspaces`, resolved against the crate's directory) whose
    /// bins its tests run in the guest, built statically with `--locked` and packed as
    /// `/opt/ue/bin/<bin>`.
    pub guest_workspaces: Vec<PathBuf>,
    /// Examples of the workspace (`<package>/<example>`) built for the guest's 32-bit compat
    /// target (`guest-examples-compat32`), packed as `/opt/ue/bin/<example>-<cpu>`
    /// (`basic-i686`).
    pub guest_examples_compat32: Vec<String>,
}

/// The crates with kernel tests, sorted by name.
pub fn kernel_test_crates() -> Result<Vec<KernelTestCrate>> {
    let mut command = cargo();
    command.args(["metadata", "--format-version", "1", "--no-deps"]);
    let text = crate::util::output(&mut command)?;
    let metadata = json::parse(&text)
        .ok_or_else(|| Error::Failed("cargo metadata printed invalid JSON".into()))?;
    Ok(crates_with_kernel_tests(&metadata))
}

/// Picks the packages with a `kernel-tests` feature and a `kernel` test target.
pub fn crates_with_kernel_tests(metadata: &Value) -> Vec<KernelTestCrate> {
    let packages = metadata.get("packages").map(Value::items).unwrap_or(&[]);
    let mut crates: Vec<KernelTestCrate> = packages
        .iter()
        .filter(|package| {
            let has_feature = package
                .get("features")
                .is_some_and(|f| f.keys().any(|k| k == "kernel-tests"));
            let has_target = package
                .get("targets")
                .map(Value::items)
                .unwrap_or(&[])
                .iter()
                .any(|target| {
                    target.get("name").and_then(Value::as_str) == Some("kernel")
                        && target
                            .get("kind")
                            .is_some_and(|k| k.items().iter().any(|k| k.as_str() == Some("test")))
                });
            has_feature && has_target
        })
        .filter_map(|package| {
            let name = package.get("name")?.as_str()?.to_string();
            let dir = package
                .get("manifest_path")
                .and_then(Value::as_str)
                .and_then(|p| Path::new(p).parent())
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let strings = |key: &str| -> Vec<String> {
                package
                    .get("metadata")
                    .and_then(|m| m.get("ue-vm"))
                    .and_then(|m| m.get(key))
                    .map(Value::items)
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            };
            Some(KernelTestCrate {
                name,
                host_programs: strings("host-programs")
                    .into_iter()
                    .map(PathBuf::from)
                    .collect(),
                guest_bins: strings("guest-bins"),
                guest_workspaces: strings("guest-workspaces")
                    .into_iter()
                    .map(|w| dir.join(w))
                    .collect(),
                guest_examples_compat32: strings("guest-examples-compat32"),
            })
        })
        .collect();
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    crates
}

/// Builds statically for the host's architecture into `<target dir>/vm-bins` with `args` (for
/// the guest: glibc linked in, line tables only); returns the executables cargo reported as
/// `(target name, kinds, path)`. Shared by e2e and the demo so both use one build cache.
pub(crate) fn build_static(args: &[&str]) -> Result<Vec<(String, Vec<String>, PathBuf)>> {
    build_static_for(Arch::host().rust_target(), None, args)
}

/// [`build_static`] for the Rust target `target` (given explicitly, also for the host's, so that
/// `RUSTFLAGS` applies to the guest's programs but not to build scripts and proc macros), linked
/// by `linker` (a cross gcc) when given.
pub(crate) fn build_static_for(
    target: &str,
    linker: Option<&str>,
    args: &[&str],
) -> Result<Vec<(String, Vec<String>, PathBuf)>> {
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if !rustflags.is_empty() {
        rustflags.push(' ');
    }
    rustflags.push_str("-C target-feature=+crt-static");
    let mut command = cargo();
    if let Some(linker) = linker {
        command.env(crate::vm::arch::linker_variable(target), linker);
    }
    command
        .args(args)
        .args(["--target", target])
        .env("RUSTFLAGS", rustflags)
        // File and line in backtraces are all the guest needs; full debug info triples the
        // binaries (about 100 MB for four), and the initramfs is loaded at every boot.
        .env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
        .env("CARGO_PROFILE_TEST_DEBUG", "line-tables-only")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("CARGO_TARGET_DIR", crate::ci::target_dir().join("vm-bins"));
    run_cargo_build(command)
}

/// Runs a cargo build `command` with JSON messages and returns the executables it reported.
pub(crate) fn run_cargo_build(
    mut command: std::process::Command,
) -> Result<Vec<(String, Vec<String>, PathBuf)>> {
    command
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    eprintln!("$ {}", describe(&command));
    let out = command
        .output()
        .map_err(|e| crate::util::spawn_error(&command, e))?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: describe(&command),
            status: out.status,
        });
    }
    Ok(executables(&String::from_utf8_lossy(&out.stdout)))
}

/// The executables in cargo's JSON messages: `(target name, kinds, path)`.
pub fn executables(messages: &str) -> Vec<(String, Vec<String>, PathBuf)> {
    messages
        .lines()
        .filter_map(json::parse)
        .filter(|m| m.get("reason").and_then(Value::as_str) == Some("compiler-artifact"))
        .filter_map(|m| {
            let path = m.get("executable")?.as_str()?;
            let target = m.get("target")?;
            let name = target.get("name")?.as_str()?.to_string();
            let kinds = target
                .get("kind")?
                .items()
                .iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect();
            Some((name, kinds, PathBuf::from(path)))
        })
        .collect()
}

/// Everything an e2e boot runs and packs.
#[derive(Debug, Clone, Default)]
pub struct GuestBuild {
    /// The programs `/init` runs, in order.
    pub programs: Vec<GuestProgram>,
    /// Host programs the crates asked for (packed at their host paths with their libraries).
    pub host_programs: Vec<PathBuf>,
    /// Bins of the crates' test builds, packed at their host paths.
    pub bins_at_host_paths: Vec<PathBuf>,
    /// `(name, host path)` of bins packed as `/opt/ue/bin/<name>`.
    pub bins_in_bin_dir: Vec<(String, PathBuf)>,
    /// What this guest lacks that the crates asked for, and why (host programs of another
    /// architecture, 32-bit bins without a compat layer).
    pub lacks: Vec<String>,
}

/// Builds, for a guest of `arch`, every crate's kernel test binary, a static xtask, and the extra
/// guest bins the crates ask for.
pub fn build_programs(arch: Arch) -> Result<GuestBuild> {
    let crates = kernel_test_crates()?;
    if crates.is_empty() {
        eprintln!("e2e: no crate has a `kernel-tests` feature and a `kernel` test target yet");
    }
    let linker = arch.cross_prefix().map(|_| arch.gcc());
    let build_static =
        |args: &[&str]| build_static_for(arch.rust_target(), linker.as_deref(), args);
    if let Some(linker) = &linker {
        let found = std::process::Command::new(linker)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(Error::Failed(format!(
                "{linker} not found: the {arch} guest's programs need apt-get install {} \
                 and rustup target add {} (.ci/install-deps does both)",
                arch.packages(),
                arch.rust_target()
            )));
        }
    }
    let xtask = build_static(&["build", "-p", "xtask", "--bin", "xtask"])?
        .into_iter()
        .find(|(name, kinds, _)| name == "xtask" && kinds.iter().any(|k| k == "bin"))
        .map(|(_, _, path)| path)
        .ok_or_else(|| Error::Failed("cargo built no xtask executable".into()))?;
    let mut build = GuestBuild {
        programs: vec![GuestProgram {
            label: "check-kernel".into(),
            binary: xtask,
            args: vec!["check-kernel".into()],
            is_test: false,
        }],
        ..GuestBuild::default()
    };
    let mut wanted_bins = Vec::new();
    let mut workspaces = Vec::new();
    let mut compat32_examples = Vec::new();
    for krate in crates {
        for program in krate.host_programs {
            match foreign_program(&program, arch) {
                Some(why) => build.lacks.push(why),
                None => build.host_programs.push(program),
            }
        }
        compat32_examples.extend(krate.guest_examples_compat32);
        wanted_bins.extend(krate.guest_bins);
        workspaces.extend(krate.guest_workspaces);
        let name = krate.name;
        let built = build_static(&[
            "test",
            "--no-run",
            "-p",
            &name,
            "--features",
            "kernel-tests",
            "--test",
            "kernel",
        ])?;
        let mut binary = None;
        for (target, kinds, path) in built {
            if kinds.iter().any(|k| k == "bin") {
                build.bins_at_host_paths.push(path);
            } else if target == "kernel" && kinds.iter().any(|k| k == "test") {
                binary = Some(path);
            }
        }
        let binary = binary.ok_or_else(|| {
            Error::Failed(format!("cargo built no kernel test binary for {name}"))
        })?;
        build.programs.push(GuestProgram {
            label: name,
            binary,
            args: vec!["--test-threads=1".into(), "--nocapture".into()],
            is_test: true,
        });
    }
    // Release builds: these are the programs the suites run as a user would (the decoder's
    // CLI, apps), and the throughput test measures them: a debug build would measure the
    // compiler's unoptimised code, not the agent.
    for bin in wanted_bins {
        let path = find_bin(&build_static(&["build", "--release", "--bin", &bin])?, &bin)?;
        build.bins_in_bin_dir.push((bin, path));
    }
    for workspace in workspaces {
        let manifest = workspace.join("Cargo.toml");
        let manifest = manifest.to_string_lossy();
        let built = build_static(&[
            "build",
            "--release",
            "--locked",
            "--bins",
            "--manifest-path",
            &manifest,
        ])?;
        for (name, kinds, path) in built {
            if kinds.iter().any(|k| k == "bin") {
                build.bins_in_bin_dir.push((name, path));
            }
        }
    }
    for wanted in compat32_examples {
        let Some((package, example)) = wanted.split_once('/') else {
            return Err(Error::Failed(format!(
                "guest-examples-compat32: `{wanted}` is not `<package>/<example>`"
            )));
        };
        let Some((target, linker)) = arch.compat32() else {
            build.lacks.push(format!(
                "{example} (32-bit): the {arch} guest kernel has no 32-bit compat layer here"
            ));
            continue;
        };
        let built = build_static_for(
            target,
            Some(linker),
            &["build", "-p", package, "--example", example],
        )?;
        let path = built
            .into_iter()
            .find(|(name, kinds, _)| name == example && kinds.iter().any(|k| k == "example"))
            .map(|(_, _, path)| path)
            .ok_or_else(|| Error::Failed(format!("cargo built no example named {example}")))?;
        let cpu = target.split('-').next().unwrap_or(target);
        build
            .bins_in_bin_dir
            .push((format!("{example}-{cpu}"), path));
    }
    Ok(build)
}

/// Why the host program `path` cannot go into a guest of `arch` (it is built for another
/// architecture), or `None` when it can (or cannot be read: packing it reports that).
fn foreign_program(path: &Path, arch: Arch) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let machine = crate::vm::arch::elf_machine(&bytes)?;
    (machine != arch.elf_machine()).then(|| {
        format!(
            "{}: the host's copy is a {} program (ELF machine {machine}), not {arch}",
            path.display(),
            Arch::ALL
                .iter()
                .find(|a| a.elf_machine() == machine)
                .map_or("foreign", |a| a.name())
        )
    })
}

/// The bin `name` among cargo's artifacts.
fn find_bin(built: &[(String, Vec<String>, PathBuf)], name: &str) -> Result<PathBuf> {
    built
        .iter()
        .find(|(n, kinds, _)| n == name && kinds.iter().any(|k| k == "bin"))
        .map(|(_, _, path)| path.clone())
        .ok_or_else(|| Error::Failed(format!("cargo built no bin named {name}")))
}

/// Reads the per-program results from the console and the exit codes from the results port.
pub fn collect_reports(
    programs: &[GuestProgram],
    console: &[String],
    results: &[String],
) -> Vec<ProgramReport> {
    let codes = guest::exit_codes(results);
    let mut reports: Vec<ProgramReport> = programs
        .iter()
        .map(|p| ProgramReport {
            label: p.label.clone(),
            exit_code: codes.iter().find(|(l, _)| *l == p.label).map(|(_, c)| *c),
            ..ProgramReport::default()
        })
        .collect();
    let mut current: Option<usize> = None;
    let mut in_failures_list = false;
    let mut pending_test: Option<String> = None;
    for line in console {
        if let Some(label) = line.strip_prefix("UE-BEGIN ") {
            current = reports.iter().position(|r| r.label == label.trim());
            pending_test = None;
            continue;
        }
        if line.starts_with("UE-END ") {
            current = None;
            continue;
        }
        let Some(report) = current.map(|i| &mut reports[i]) else {
            continue;
        };
        if let Some((_, skip)) = line.split_once(SKIP_MARKER) {
            let skip = skip.trim().to_string();
            // Printed to stdout and stderr, like measures.
            if !report.skipped.contains(&skip) {
                report.skipped.push(skip);
            }
        }
        if let Some((_, measure)) = line.split_once(MEASURE_MARKER) {
            if let Some((key, value)) = measure.trim().split_once('=') {
                let measure = (key.trim().to_string(), value.trim().to_string());
                // Tests print each value to stdout and stderr; both reach the console.
                if !report.measures.contains(&measure) {
                    report.measures.push(measure);
                }
            }
        }
        // libtest ends a failed run with "failures:", one indented test name per line, a blank
        // line. (A "failures:" block with captured output comes first without --nocapture;
        // its "---- name stdout ----" lines are not indented names.)
        if line == "failures:" {
            in_failures_list = true;
            continue;
        }
        if in_failures_list {
            match line.strip_prefix("    ") {
                Some(name) if !name.contains(' ') && !name.is_empty() => {
                    if !report.failed_tests.iter().any(|n| n == name) {
                        report.failed_tests.push(name.to_string());
                    }
                    continue;
                }
                _ => in_failures_list = false,
            }
        }
        // With --nocapture libtest prints `test <name> ... ` before the test runs and `ok` (or
        // `FAILED`) after its output: on the same line, or alone on a later line.
        if let Some((name, rest)) = line
            .strip_prefix("test ")
            .and_then(|l| l.split_once(" ... "))
        {
            if !name.contains(' ') {
                pending_test = Some(name.to_string());
            }
            if rest.trim_end().ends_with("ok") {
                if let Some(name) = pending_test.take() {
                    report.passed_tests.push(name);
                }
            }
            continue;
        }
        if line.trim_end() == "ok" || line.trim_end().ends_with(" ok") {
            if let Some(name) = pending_test.take() {
                report.passed_tests.push(name);
            }
        } else if line.trim_end() == "FAILED" {
            pending_test = None;
        }
        if let Some(counts) = parse_test_result(line) {
            report.result_lines += 1;
            report.passed += counts.0;
            report.failed += counts.1;
            report.ignored += counts.2;
        }
    }
    reports
}

/// Joins the [`ARTIFACT_MARKER`] lines of `console` per name, decodes them and writes each file
/// into `dir`; returns `(name, size)` of each. A name that is not one plain file name, or
/// chunks that are not base64, fail the run.
fn save_artifacts(console: &[String], dir: &Path) -> Result<Vec<(String, usize)>> {
    let mut texts: Vec<(String, String)> = Vec::new();
    for line in console {
        let Some((_, rest)) = line.split_once(ARTIFACT_MARKER) else {
            continue;
        };
        let Some((name, chunk)) = rest.trim().split_once(' ') else {
            continue;
        };
        match texts.iter_mut().find(|(n, _)| n == name) {
            Some((_, text)) => text.push_str(chunk.trim()),
            None => texts.push((name.to_string(), chunk.trim().to_string())),
        }
    }
    let mut saved = Vec::new();
    for (name, text) in texts {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !name.starts_with('.');
        let bytes = base64_decode(&text).filter(|_| plain).ok_or_else(|| {
            Error::Failed(format!("artifact {name:?} from the guest is malformed"))
        })?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let path = dir.join(&name);
        std::fs::write(&path, &bytes).map_err(|e| Error::io("write", &path, e))?;
        saved.push((name, bytes.len()));
    }
    Ok(saved)
}

/// Decodes standard base64 with padding; `None` if it is not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, quad) in bytes.chunks(4).enumerate() {
        let last = index + 1 == bytes.len() / 4;
        let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - padding] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * padding as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - padding]);
    }
    Some(out)
}

/// `(passed, failed, ignored)` from a libtest summary line such as
/// `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
pub fn parse_test_result(line: &str) -> Option<(u32, u32, u32)> {
    let (_, rest) = line.split_once("test result: ")?;
    let (_, counts) = rest.split_once(". ")?;
    let mut found = (None, None, None);
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(number), Some(word)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        match word {
            "passed" => found.0 = Some(number),
            "failed" => found.1 = Some(number),
            "ignored" => found.2 = Some(number),
            _ => {}
        }
    }
    Some((found.0?, found.1?, found.2.unwrap_or(0)))
}

/// `cargo xtask e2e`: per architecture, build, boot once, run everything, print the summary;
/// with several architectures, then a table comparing them. Fails on any failed test, zero
/// tests, a non-zero exit, a kernel problem or a timeout in any guest (every architecture runs
/// even after one failed, so one run shows all).
pub fn e2e(options: &E2eOptions) -> Result<()> {
    let mut arches = options.arches.clone();
    if arches.is_empty() {
        arches.push(Arch::host());
    }
    arches.dedup();
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for &arch in &arches {
        if arches.len() > 1 {
            eprintln!("\n==> e2e: {arch} guest");
        }
        match e2e_on(arch, options) {
            Ok(run) => {
                if !run.problems.is_empty() {
                    failures.push(format!("{arch}: {}", run.problems.join("\n    ")));
                }
                runs.push(run);
            }
            Err(error) => failures.push(format!("{arch}: {error}")),
        }
    }
    if arches.len() > 1 {
        println!("{}", render_comparison(&runs));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "e2e failed:\n  {}",
            failures.join("\n  ")
        )))
    }
}

/// What one architecture's run gave, for the comparison table.
#[derive(Debug, Clone)]
struct ArchRun {
    arch: Arch,
    passed: u32,
    failed: u32,
    ignored: u32,
    skipped: usize,
    /// `UE-MEASURE` values of the test programs other than the end-to-end suite:
    /// `(program, key, value)`.
    measures: Vec<(String, String, String)>,
    build_time: Duration,
    boot_time: Option<Duration>,
    qemu_time: Duration,
    problems: Vec<String>,
}

/// One architecture: build, boot once, run everything, print its summary.
fn e2e_on(arch: Arch, options: &E2eOptions) -> Result<ArchRun> {
    let started = Instant::now();
    // The programs first: if the kernel is being built by another process meanwhile, the
    // compile overlaps with it.
    let GuestBuild {
        programs,
        mut host_programs,
        bins_at_host_paths,
        bins_in_bin_dir,
        mut lacks,
    } = build_programs(arch)?;
    let kernel = kernel::ensure_kernel_for(arch)?;
    for program in &options.with {
        match foreign_program(program, arch) {
            Some(why) => lacks.push(why),
            None => host_programs.push(program.clone()),
        }
    }
    let built = started.elapsed();

    let mut initramfs = Initramfs::base_for(arch)?;
    for program in &host_programs {
        initramfs.add_host_program(program).map_err(|e| {
            Error::Failed(format!(
                "cannot pack {} for the guest ({e}); if it is /usr/bin/perf: apt-get install \
                 linux-perf",
                program.display()
            ))
        })?;
    }
    for bin in &bins_at_host_paths {
        initramfs.add_host_program(bin)?;
    }
    for (name, path) in &bins_in_bin_dir {
        if bins_at_host_paths.contains(path) {
            // Packed already: link instead of a second copy.
            initramfs.add_symlink(
                Path::new(BINARY_DIR).join(name),
                &std::path::absolute(path)
                    .map_err(|e| Error::io("resolve", path, e))?
                    .to_string_lossy(),
            );
        } else {
            initramfs.add_binary(path, name)?;
        }
    }
    let mut script = guest::Script::for_arch(arch);
    for program in &programs {
        // Test binaries are named after their crate, which may also name a bin packed in
        // /opt/ue/bin (ue-metrics-decode): keep them apart.
        let guest_path = if program.is_test {
            let path = Path::new(TEST_DIR).join(&program.label);
            initramfs.add_host_file(&program.binary, &path, 0o755)?;
            path
        } else {
            initramfs.add_binary(&program.binary, &program.label)?
        };
        let mut argv = vec![guest_path.to_string_lossy().into_owned()];
        argv.extend(program.args.iter().cloned());
        script.run(&program.label, &argv);
    }
    initramfs.add_file("/init", script.render(), 0o755);
    let run_dir = qemu::RunDir::create(&format!("e2e-{arch}"))?;
    let dir = run_dir.path();
    let image = dir.join("initramfs.cpio");
    let size = initramfs.write(&image)?;
    eprintln!(
        "e2e: booting the {arch} VM with {} programs (initramfs {:.1} MB, {} CPUs, time limit {} s)",
        programs.len(),
        size as f64 / 1e6,
        options.boot.cpus,
        options.boot.timeout.as_secs()
    );
    let boot = qemu::BootOptions {
        arch,
        ..options.boot.clone()
    };
    let outcome = qemu::boot(&kernel.bzimage, &image, &dir.join("results.txt"), &boot)?;
    let reports = collect_reports(&programs, &outcome.console, &outcome.results);
    let artifacts = save_artifacts(&outcome.console, &dir.join("artifacts"))?;

    let summary = Summary {
        arch,
        programs: &programs,
        reports: &reports,
        outcome: &outcome,
        initramfs_bytes: size,
        build_time: built,
        lacks: &lacks,
        artifacts: &artifacts,
    };
    println!("{}", summary.render());
    let tests = || programs.iter().zip(&reports).filter(|(p, _)| p.is_test);
    Ok(ArchRun {
        arch,
        passed: tests().map(|(_, r)| r.passed).sum(),
        failed: tests().map(|(_, r)| r.failed).sum(),
        ignored: tests().map(|(_, r)| r.ignored).sum(),
        skipped: tests().map(|(_, r)| r.skipped.len()).sum(),
        measures: reports
            .iter()
            .filter(|r| r.label != showed::SUITE)
            .flat_map(|r| {
                r.measures
                    .iter()
                    .map(|(k, v)| (r.label.clone(), k.clone(), v.clone()))
            })
            .collect(),
        build_time: built,
        boot_time: outcome.boot_time,
        qemu_time: outcome.elapsed,
        problems: summary.problems(),
    })
}

/// The table that compares the architectures of one `--arch all` run: test counts, every
/// measured limit side by side (a row whose values differ is marked), times.
fn render_comparison(runs: &[ArchRun]) -> String {
    let mut text = String::from("\n==> e2e across architectures\n");
    let mut row = |name: &str, cells: Vec<String>, mark: &str| {
        text.push_str(&format!("  {name:<48}"));
        for cell in cells {
            text.push_str(&format!(" {cell:>14}"));
        }
        text.push_str(mark);
        text.push('\n');
    };
    row(
        "",
        runs.iter().map(|r| r.arch.name().to_string()).collect(),
        "",
    );
    row(
        "kernel tests passed / failed / ignored",
        runs.iter()
            .map(|r| format!("{}/{}/{}", r.passed, r.failed, r.ignored))
            .collect(),
        "",
    );
    row(
        "tests skipped on this guest (UE-SKIP)",
        runs.iter().map(|r| r.skipped.to_string()).collect(),
        "",
    );
    let mut keys: Vec<(String, String)> = Vec::new();
    for run in runs {
        for (label, key, _) in &run.measures {
            if !keys.contains(&(label.clone(), key.clone())) {
                keys.push((label.clone(), key.clone()));
            }
        }
    }
    for (label, key) in &keys {
        let cells: Vec<String> = runs
            .iter()
            .map(|r| {
                r.measures
                    .iter()
                    .find(|(l, k, _)| l == label && k == key)
                    .map_or("-".to_string(), |(_, _, v)| v.clone())
            })
            .collect();
        // A limit that differs between architectures is news; timings (`_ns`) always differ,
        // and a value missing on one guest (its test failed or was skipped) is not a difference.
        let present: Vec<&String> = cells.iter().filter(|c| *c != "-").collect();
        let differs = !key.ends_with("_ns") && present.iter().any(|c| *c != present[0]);
        let short_label = label.trim_start_matches("ue-metrics-");
        row(
            &format!("{short_label}: {key}"),
            cells,
            if differs { "  <- differs" } else { "" },
        );
    }
    let seconds = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    row(
        "kernel + binaries ready after",
        runs.iter().map(|r| seconds(r.build_time)).collect(),
        "",
    );
    row(
        "boot to /init",
        runs.iter()
            .map(|r| r.boot_time.map_or("?".into(), seconds))
            .collect(),
        "",
    );
    row(
        "qemu ran (boot + all tests)",
        runs.iter().map(|r| seconds(r.qemu_time)).collect(),
        "",
    );
    row(
        "result",
        runs.iter()
            .map(|r| {
                if r.problems.is_empty() {
                    "PASS"
                } else {
                    "FAIL"
                }
                .to_string()
            })
            .collect(),
        "",
    );
    text
}

/// The end-of-run report and verdict.
struct Summary<'a> {
    arch: Arch,
    programs: &'a [GuestProgram],
    reports: &'a [ProgramReport],
    outcome: &'a qemu::BootOutcome,
    initramfs_bytes: u64,
    build_time: Duration,
    lacks: &'a [String],
    /// `(name, bytes)` of the artifacts saved.
    artifacts: &'a [(String, usize)],
}

impl Summary<'_> {
    fn render(&self) -> String {
        let mut text = format!("\n==> e2e summary ({})\n", self.arch);
        let booted = self.outcome.boot_time.map(|t| t.as_secs_f64());
        text.push_str(&format!(
            "  kernel (cached or built) and static binaries ready after {:.1} s\n",
            self.build_time.as_secs_f64()
        ));
        text.push_str(&format!(
            "  VM: {} ({}-endian) {} (CPUs {} online), initramfs {:.1} MB, boot to /init {} s, qemu ran \
             {:.1} s in all (wall clock)\n",
            self.arch,
            if self.arch.big_endian() { "big" } else { "little" },
            if qemu::use_kvm_for(self.arch) {
                "KVM"
            } else {
                "qemu TCG"
            },
            self.outcome_cpus(),
            self.initramfs_bytes as f64 / 1e6,
            booted.map_or("?".into(), |s| format!("{s:.1}")),
            self.outcome.elapsed.as_secs_f64()
        ));
        let width = self
            .reports
            .iter()
            .map(|r| r.label.len())
            .chain(["total (kernel tests)".len()])
            .max()
            .unwrap_or(0);
        text.push_str("  in the guest:\n");
        let (mut passed, mut failed, mut ignored) = (0, 0, 0);
        for (program, report) in self.programs.iter().zip(self.reports) {
            let exit = report
                .exit_code
                .map_or("no exit code".to_string(), |c| format!("exit {c}"));
            if program.is_test {
                text.push_str(&format!(
                    "    {:<width$}  {:>4} passed, {:>3} failed, {:>3} ignored  ({exit})\n",
                    report.label, report.passed, report.failed, report.ignored
                ));
                passed += report.passed;
                failed += report.failed;
                ignored += report.ignored;
            } else {
                text.push_str(&format!("    {:<width$}  {exit}\n", report.label));
            }
        }
        text.push_str(&format!(
            "    {:<width$}  {passed:>4} passed, {failed:>3} failed, {ignored:>3} ignored\n",
            "total (kernel tests)"
        ));
        // The end-to-end suite's values are summarised in sentences below, not listed.
        let summarised = |r: &ProgramReport| r.label == showed::SUITE;
        let measures: Vec<_> = self
            .reports
            .iter()
            .filter(|r| !summarised(r))
            .flat_map(|r| r.measures.iter().map(move |(k, v)| (&r.label, k, v)))
            .collect();
        if !measures.is_empty() {
            text.push_str("  measured in the guest (UE-MEASURE):\n");
            for (label, key, value) in measures {
                text.push_str(&format!("    {label}: {key} = {value}\n"));
            }
        }
        for (name, bytes) in self.artifacts {
            text.push_str(&format!(
                "  artifact: target/vm-run/e2e-{}/artifacts/{name} ({bytes} bytes)\n",
                self.arch
            ));
        }
        for lack in self.lacks {
            text.push_str(&format!("  this guest lacks: {lack}\n"));
        }
        for report in self.reports {
            for skip in &report.skipped {
                text.push_str(&format!("    {}: skipped {skip}\n", report.label));
            }
        }
        for report in self.reports.iter().filter(|r| summarised(r)) {
            text.push_str(&format!(
                "    {}: {} values, summarised below (all in the console above)\n",
                report.label,
                report.measures.len()
            ));
        }
        for report in self.reports {
            if let Some(showed) = showed::render(report) {
                text.push_str(&showed);
            }
        }
        if self.outcome.kernel_problems.is_empty() {
            text.push_str("  kernel warnings/oopses: none\n");
        } else {
            text.push_str(&format!(
                "  kernel problems: {}\n",
                self.outcome.kernel_problems.len()
            ));
        }
        text.push_str(if self.problems().is_empty() {
            "  result: PASS"
        } else {
            "  result: FAIL"
        });
        text
    }

    /// The guest's online CPU list as it reported it (e.g. `0-1`).
    fn outcome_cpus(&self) -> String {
        self.outcome
            .results
            .iter()
            .find_map(|l| l.strip_prefix("UE-CPUS "))
            .unwrap_or("?")
            .trim()
            .to_string()
    }

    /// Every reason to fail, empty when the run passed.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(error) = self.outcome.check_guest() {
            problems.push(error.to_string());
        }
        let mut total = 0;
        for (program, report) in self.programs.iter().zip(self.reports) {
            match report.exit_code {
                Some(0) => {}
                Some(code) => problems.push(format!("{} exited with {code}", report.label)),
                None => problems.push(format!("{} reported no exit code", report.label)),
            }
            if program.is_test {
                total += report.passed + report.failed;
                if report.failed > 0 {
                    problems.push(format!(
                        "{}: {} tests failed: {}",
                        report.label,
                        report.failed,
                        report.failed_tests.join(", ")
                    ));
                }
                if report.result_lines == 0 && report.exit_code.is_some() {
                    problems.push(format!("{}: no `test result:` line", report.label));
                }
            }
        }
        if total == 0 {
            problems.push("zero kernel tests ran in the guest".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_joined_per_name_and_decoded() {
        let console: Vec<String> = [
            "UE-ARTIFACT a.bin Zm9v",
            "noise",
            "UE-ARTIFACT b.json e30=",
            "UE-ARTIFACT a.bin YmFy",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let dir = crate::ci::target_dir().join("xtask-test-artifacts");
        let _ = std::fs::remove_dir_all(&dir);
        let saved = save_artifacts(&console, &dir).unwrap();
        assert_eq!(saved, [("a.bin".to_string(), 6), ("b.json".to_string(), 2)]);
        assert_eq!(std::fs::read(dir.join("a.bin")).unwrap(), b"foobar");
        assert_eq!(std::fs::read(dir.join("b.json")).unwrap(), b"{}");
        let bad = vec!["UE-ARTIFACT ../x Zm9v".to_string()];
        assert!(save_artifacts(&bad, &dir).is_err());
        assert_eq!(base64_decode("Zm9vYg=="), Some(b"foob".to_vec()));
        assert_eq!(base64_decode("Zg=a"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn libtest_summary_lines_parse() {
        assert_eq!(
            parse_test_result(
                "test result: ok. 12 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; \
                 finished in 0.31s"
            ),
            Some((12, 0, 2))
        );
        assert_eq!(
            parse_test_result("test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured"),
            Some((3, 1, 0))
        );
        assert_eq!(parse_test_result("test foo ... ok"), None);
    }

    #[test]
    fn kernel_test_crates_come_from_features_and_targets() {
        let metadata = json::parse(
            r#"{"packages": [
              {"name": "b", "features": {"kernel-tests": []},
               "targets": [{"name": "kernel", "kind": ["test"]}],
               "metadata": {"ue-vm": {"host-programs": ["/usr/bin/perf"]}}},
              {"name": "a", "features": {"kernel-tests": []},
               "targets": [{"name": "kernel", "kind": ["test"]}, {"name": "a", "kind": ["lib"]}]},
              {"name": "no-feature", "features": {},
               "targets": [{"name": "kernel", "kind": ["test"]}]},
              {"name": "no-target", "features": {"kernel-tests": []},
               "targets": [{"name": "kernel", "kind": ["bench"]}]}
            ]}"#,
        )
        .unwrap();
        let crates = crates_with_kernel_tests(&metadata);
        let names: Vec<_> = crates.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(crates[0].host_programs.is_empty());
        assert_eq!(crates[1].host_programs, [PathBuf::from("/usr/bin/perf")]);
    }

    #[test]
    fn guest_bins_and_workspaces_come_from_the_manifest() {
        let metadata = json::parse(
            r#"{"packages": [
              {"name": "e", "features": {"kernel-tests": []},
               "manifest_path": "/w/e2e/Cargo.toml",
               "targets": [{"name": "kernel", "kind": ["test"]}],
               "metadata": {"ue-vm": {"guest-bins": ["ue-metrics-decode"],
                                      "guest-workspaces": ["peer-upstream"]}}}
            ]}"#,
        )
        .unwrap();
        let crates = crates_with_kernel_tests(&metadata);
        assert_eq!(crates[0].guest_bins, ["ue-metrics-decode"]);
        assert_eq!(
            crates[0].guest_workspaces,
            [PathBuf::from("/w/e2e/peer-upstream")]
        );
    }

    #[test]
    fn passed_test_names_are_collected_around_test_output() {
        let programs = vec![GuestProgram {
            label: "e".into(),
            binary: "/e".into(),
            args: vec![],
            is_test: true,
        }];
        let console: Vec<String> = [
            "UE-BEGIN e",
            "running 3 tests",
            "test m::quiet ... ok",
            "test m::talks ... UE-MEASURE k=1",
            "UE-MEASURE k=1",
            "ok",
            "test m::breaks ... thread 'm::breaks' panicked",
            "FAILED",
            "test result: FAILED. 2 passed; 1 failed; 0 ignored",
            "UE-END e 101",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let reports = collect_reports(&programs, &console, &["UE-EXIT e 101".into()]);
        assert_eq!(reports[0].passed_tests, ["m::quiet", "m::talks"]);
        assert_eq!(reports[0].measures, [("k".to_string(), "1".to_string())]);
    }

    #[test]
    fn executables_come_from_compiler_artifacts() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"kernel","kind":["test"]},"executable":"/t/kernel-1"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"dep","kind":["lib"]},"executable":null}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n"
        );
        assert_eq!(
            executables(messages),
            vec![(
                "kernel".to_string(),
                vec!["test".to_string()],
                PathBuf::from("/t/kernel-1")
            )]
        );
    }

    #[test]
    fn reports_split_console_by_program() {
        let programs = vec![
            GuestProgram {
                label: "check-kernel".into(),
                binary: "/x".into(),
                args: vec![],
                is_test: false,
            },
            GuestProgram {
                label: "sys".into(),
                binary: "/y".into(),
                args: vec![],
                is_test: true,
            },
        ];
        let console: Vec<String> = [
            "UE-BEGIN check-kernel",
            "test result: ok. 99 passed; 0 failed; 0 ignored",
            "UE-END check-kernel 0",
            "UE-BEGIN sys",
            "test a ... UE-MEASURE perf_max=8184",
            "UE-MEASURE perf_max=8184",
            "ok",
            "test b ... ",
            "thread 'b' panicked at x.rs:1:1:",
            "FAILED",
            "",
            "failures:",
            "",
            "failures:",
            "    b",
            "",
            "test result: ok. 5 passed; 1 failed; 0 ignored; 0 measured",
            "UE-END sys 101",
            "UE-MEASURE outside=1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let results = vec![
            "UE-EXIT check-kernel 0".to_string(),
            "UE-EXIT sys 101".into(),
        ];
        let reports = collect_reports(&programs, &console, &results);
        assert_eq!(reports[0].exit_code, Some(0));
        assert_eq!(reports[0].passed, 99); // counted, but not a test program in the totals
        assert_eq!(reports[1].exit_code, Some(101));
        assert_eq!((reports[1].passed, reports[1].failed), (5, 1));
        assert_eq!(reports[1].failed_tests, ["b"]);
        assert_eq!(
            reports[1].measures,
            vec![("perf_max".to_string(), "8184".to_string())]
        );
    }
}
