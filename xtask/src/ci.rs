//! `cargo xtask ci`: everything CI checks, in order, stopping at the first failure.

use crate::error::{Error, Result};
use crate::util::{cargo, describe, project_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Options of `cargo xtask ci`.
#[derive(Debug, Default)]
pub struct CiOptions {
    /// Run every step even after one failed, then report all failures.
    pub keep_going: bool,
    /// Skip the VM end-to-end step (for machines without qemu).
    pub skip_e2e: bool,
    /// Run only the steps with these names (all when empty).
    pub only: Vec<String>,
}

/// The step names, in order.
pub const STEP_NAMES: [&str; 10] = [
    "fmt", "clippy", "targets", "docs", "test", "benches", "fuzz", "publish", "msrv", "e2e",
];

/// The crates users depend on: published, documented, and held to [`MSRV`].
pub const LIBRARY_CRATES: [&str; 4] = [
    "user_events-sys",
    "otlp-metrics-encode",
    "ue-metrics-exporter",
    "ue-metrics-decode",
];

/// The oldest Rust the library crates promise to build with (`rust-version` in Cargo.toml).
pub const MSRV: &str = "1.85";

/// The fuzz targets of `ue-metrics-decode/fuzz` (its own workspace).
pub const FUZZ_TARGETS: [&str; 5] = ["payload", "format", "raw_sample", "trace_line", "perf_data"];

/// Fuzz targets built as production builds are (`cargo fuzz -O`: no debug assertions, no
/// overflow checks). `perf_data` drives `tracepoint_perf`/`tracepoint_decode`, whose format
/// parser has `debug_assert!`s and unchecked arithmetic that damaged formats trip; release
/// builds (what users run) wrap or skip there, and a debug build's panic is turned into a typed
/// error by `perf_data::isolated`, which the fuzzer's aborting panic hook cannot show. The other
/// targets keep debug assertions and overflow checks on our own code.
pub const FUZZ_RELEASE_TARGETS: [&str; 1] = ["perf_data"];

/// How long each fuzz target runs in the smoke step.
pub const FUZZ_SECONDS_PER_TARGET: u32 = 20;

/// How a step ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and passed.
    Passed,
    /// It could not run here; the reason says why and what to install.
    Skipped(String),
}

/// One CI step: a name and what runs it.
struct Step {
    name: &'static str,
    run: Box<dyn Fn() -> Result<Outcome>>,
}

/// A step that runs one cargo command.
fn cargo_step(name: &'static str, args: &'static [&'static str]) -> Step {
    Step {
        name,
        run: Box::new(move || {
            let mut command = cargo();
            command.args(args);
            run_loud(&mut command).map(|()| Outcome::Passed)
        }),
    }
}

/// Prints the command, then runs it.
fn run_loud(command: &mut Command) -> Result<()> {
    eprintln!("$ {}", describe(command));
    crate::util::run(command)
}

/// The workspace's target directory: `$CARGO_TARGET_DIR`, else `<root>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// Runs fmt, clippy, the workspace tests, the benchmarks once each, a fuzz smoke run and the VM
/// end-to-end suite.
pub fn ci(options: &CiOptions) -> Result<()> {
    let mut steps = vec![
        cargo_step("fmt", &["fmt", "--all", "--check"]),
        Step {
            name: "clippy",
            run: Box::new(clippy),
        },
        Step {
            name: "targets",
            run: Box::new(check_targets),
        },
        Step {
            name: "docs",
            run: Box::new(docs),
        },
        cargo_step("test", &["test", "--workspace"]),
        // Each criterion benchmark built (test profile, cheap after `test`) and run once in
        // criterion's test mode: the benchmarks keep compiling and working. Timing runs are
        // `cargo bench`, by hand.
        cargo_step("benches", &["test", "--workspace", "--bench", "*"]),
        Step {
            name: "fuzz",
            run: Box::new(fuzz_smoke),
        },
        Step {
            name: "publish",
            run: Box::new(publish_dry_run),
        },
        Step {
            name: "msrv",
            run: Box::new(msrv),
        },
    ];
    if !options.skip_e2e {
        steps.push(Step {
            name: "e2e",
            run: Box::new(|| {
                // The kernel suite in a guest of every architecture (x86_64, aarch64,
                // big-endian s390x), one boot each.
                let options = crate::e2e::E2eOptions {
                    arches: crate::vm::arch::Arch::ALL.to_vec(),
                    ..crate::e2e::E2eOptions::default()
                };
                crate::e2e::e2e(&options).map(|()| Outcome::Passed)
            }),
        });
    }
    debug_assert!(steps.iter().all(|s| STEP_NAMES.contains(&s.name)));
    if let Some(unknown) = options
        .only
        .iter()
        .find(|name| !STEP_NAMES.contains(&name.as_str()))
    {
        return Err(Error::Usage(format!(
            "ci: no step `{unknown}` (steps: {})",
            STEP_NAMES.join(", ")
        )));
    }
    if !options.only.is_empty() {
        steps.retain(|step| options.only.iter().any(|name| name == step.name));
    }

    let mut results = Vec::new();
    for step in &steps {
        eprintln!("\n==> ci: {}", step.name);
        let started = Instant::now();
        let result = (step.run)();
        let seconds = started.elapsed().as_secs_f64();
        let failed = result.is_err();
        match &result {
            Err(error) => {
                eprintln!("==> ci: {} FAILED after {seconds:.1} s: {error}", step.name)
            }
            Ok(Outcome::Skipped(why)) => eprintln!("==> ci: {} SKIPPED: {why}", step.name),
            Ok(Outcome::Passed) => {}
        }
        results.push((step.name, seconds, result));
        if failed && !options.keep_going {
            break;
        }
    }

    eprintln!("\n==> ci summary");
    let mut total = 0.0;
    for (name, seconds, result) in &results {
        total += seconds;
        let verdict = match result {
            Ok(Outcome::Passed) => "ok".to_string(),
            Ok(Outcome::Skipped(why)) => format!("SKIPPED ({why})"),
            Err(_) => "FAILED".to_string(),
        };
        eprintln!("  {name:<8} {seconds:>7.1} s  {verdict}");
    }
    for step in steps.iter().skip(results.len()) {
        eprintln!(
            "  {:<8} {:>9}  not run (an earlier step failed)",
            step.name, ""
        );
    }
    eprintln!("  {:<8} {total:>7.1} s", "total");
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, _, result)| result.is_err())
        .map(|(name, _, _)| *name)
        .collect();
    if failed.is_empty() {
        eprintln!("==> ci passed");
        Ok(())
    } else {
        Err(Error::Failed(format!("ci failed: {}", failed.join(", "))))
    }
}

/// The workspace crates with a `kernel-tests` feature (their VM-only `kernel` test targets).
const KERNEL_TEST_FEATURES: &str =
    "ue-metrics-decode/kernel-tests,ue-metrics-e2e/kernel-tests,ue-metrics-exporter/kernel-tests,user_events-sys/kernel-tests";

/// The clippy step: the workspace as built by default, then with every `kernel-tests` feature,
/// so the VM-only test targets keep compiling on machines without the VM, then the library
/// crates without their default features.
fn clippy() -> Result<Outcome> {
    for features in [None, Some(KERNEL_TEST_FEATURES)] {
        let mut command = cargo();
        command.args(["clippy", "--workspace", "--all-targets"]);
        command.args(
            features
                .map(|list| ["--features", list])
                .into_iter()
                .flatten(),
        );
        command.args(["--", "-D", "warnings"]);
        run_loud(&mut command)?;
    }
    // The library crates as collectors embed them: without their default features (the
    // decoder without its CLI, the encoder without the SDK).
    let mut lean = cargo();
    lean.args(["clippy", "--lib", "--no-default-features"])
        .args(library_packages())
        .args(["--", "-D", "warnings"]);
    run_loud(&mut lean)?;
    Ok(Outcome::Passed)
}

/// The publish step: packages each library crate as crates.io would get it (our path
/// dependencies resolved from the packaged siblings) and builds it from that package alone.
///
/// Cargo unpacks the packaged siblings from its temporary registry into
/// `$CARGO_HOME/registry/src/<temporary registry>/<crate>-<version>` and reuses an unpacked copy
/// of the same version from an earlier dry run, however stale. Our crates never come from a
/// real registry, so every unpacked copy of them is such a leftover: removed first.
fn publish_dry_run() -> Result<Outcome> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    if let Some(sources) = cargo_home.map(|home| home.join("registry").join("src")) {
        for registry in std::fs::read_dir(&sources).into_iter().flatten().flatten() {
            for unpacked in std::fs::read_dir(registry.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = unpacked.file_name().to_string_lossy().into_owned();
                let ours = LIBRARY_CRATES
                    .iter()
                    .any(|krate| name.starts_with(&format!("{krate}-")));
                if ours && unpacked.path().is_dir() {
                    eprintln!(
                        "ci: removing a stale unpacked {}",
                        unpacked.path().display()
                    );
                    std::fs::remove_dir_all(unpacked.path())
                        .map_err(|e| Error::io("remove", unpacked.path(), e))?;
                }
            }
        }
    }
    run_loud(cargo().args(["publish", "--workspace", "--dry-run"])).map(|()| Outcome::Passed)
}

/// `-p <crate>` for every library crate.
fn library_packages() -> Vec<&'static str> {
    LIBRARY_CRATES
        .iter()
        .flat_map(|name| ["-p", name])
        .collect()
}

/// The docs step: the library crates' rustdoc with every warning (broken links, missing docs)
/// an error.
fn docs() -> Result<Outcome> {
    let mut command = cargo();
    command
        .args(["doc", "--no-deps"])
        .args(library_packages())
        .env("RUSTDOCFLAGS", "-D warnings");
    run_loud(&mut command).map(|()| Outcome::Passed)
}

/// The MSRV step: the library crates (not their tests: dev-dependencies may need a newer Rust)
/// checked with the real [`MSRV`] toolchain, installed through rustup when missing.
fn msrv() -> Result<Outcome> {
    if !succeeds(Command::new("rustup").arg("--version")) {
        return Ok(Outcome::Skipped(format!(
            "rustup not found: the MSRV check needs the Rust {MSRV} toolchain through rustup"
        )));
    }
    if !succeeds(toolchain(MSRV, "rustc").arg("--version")) {
        run_loud(Command::new("rustup").args([
            "toolchain",
            "install",
            MSRV,
            "--profile",
            "minimal",
        ]))?;
    }
    let mut check = toolchain(MSRV, "cargo");
    // Its own target dir: another compiler's artifacts would only evict the stable ones.
    check
        .args(["check", "--locked"])
        .args(library_packages())
        .arg("--target-dir")
        .arg(target_dir().join("msrv"));
    run_loud(&mut check).map(|()| Outcome::Passed)
}

/// A `rustup run nightly <program>` command (see [`toolchain`]).
fn nightly(program: &str) -> Command {
    toolchain("nightly", program)
}

/// A `rustup run <toolchain> <program>` command, cleared of the variables the stable cargo that
/// started xtask set (they would pin the nested cargo to stable).
fn toolchain(name: &str, program: &str) -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", name, program])
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .current_dir(project_root());
    command
}

/// True when the command starts and exits 0 (its output is discarded).
fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// 32-bit targets the library crates keep compiling for: x86 and arm (64-bit atomics), and
/// powerpc, which has none.
pub const CHECK_TARGETS: [&str; 3] = [
    "i686-unknown-linux-gnu",
    "armv7-unknown-linux-gnueabihf",
    "powerpc-unknown-linux-gnu",
];

/// The library crates checked for [`CHECK_TARGETS`]. `ue-metrics-decode` is not among them:
/// its `tracepoint_decode` dependency (0.5) does not compile for 32-bit targets (`gmtime_r`
/// is given an `i64` where 32-bit glibc's `time_t` is `i32`).
const CHECK_TARGET_CRATES: [&str; 3] = [
    "user_events-sys",
    "otlp-metrics-encode",
    "ue-metrics-exporter",
];

/// The features of [`CHECK_TARGET_CRATES`] that add code users build (the test doubles), checked
/// for [`CHECK_TARGETS`] too.
const CHECK_TARGET_FEATURES: &str = "user_events-sys/testing,ue-metrics-exporter/testing";

/// The `targets` step: `cargo check` of the library crates, with their [`CHECK_TARGET_FEATURES`],
/// for each of [`CHECK_TARGETS`] (no linker needed), adding a missing target's standard library
/// with rustup first.
fn check_targets() -> Result<Outcome> {
    if !succeeds(Command::new("rustup").arg("--version")) {
        return Ok(Outcome::Skipped(
            "rustup not found: the other targets' standard libraries come from rustup".into(),
        ));
    }
    let installed =
        crate::util::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    let missing: Vec<&str> = CHECK_TARGETS
        .into_iter()
        .filter(|target| !installed.lines().any(|line| line.trim() == *target))
        .collect();
    if !missing.is_empty() {
        run_loud(
            Command::new("rustup")
                .args(["target", "add"])
                .args(&missing),
        )?;
    }
    for target in CHECK_TARGETS {
        let mut check = cargo();
        check.arg("check");
        for krate in CHECK_TARGET_CRATES {
            check.args(["-p", krate]);
        }
        check.args(["--features", CHECK_TARGET_FEATURES, "--target", target]);
        run_loud(&mut check)?;
    }
    Ok(Outcome::Passed)
}

/// The fuzz smoke step: each `ue-metrics-decode` fuzz target for
/// [`FUZZ_SECONDS_PER_TARGET`] seconds, seeded with the kept regressions and seeds. Skipped,
/// with the reason, only when there is no nightly toolchain; installs cargo-fuzz if missing.
fn fuzz_smoke() -> Result<Outcome> {
    if !succeeds(Command::new("rustup").arg("--version")) {
        return Ok(Outcome::Skipped(
            "rustup not found: the fuzz targets need a nightly toolchain through rustup".into(),
        ));
    }
    if !succeeds(nightly("rustc").arg("--version")) {
        return Ok(Outcome::Skipped(
            "no nightly toolchain: `rustup toolchain install nightly --profile minimal` \
             (.ci/install-deps does it)"
                .into(),
        ));
    }
    if !succeeds(nightly("cargo").args(["fuzz", "--version"])) {
        eprintln!("ci: cargo-fuzz is missing; installing it (.ci/install-deps does this too)");
        run_loud(nightly("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let crate_dir = project_root().join("ue-metrics-decode");
    let seeds_dir = crate_dir.join("tests").join("fuzz_regressions");
    let corpus_root = target_dir().join("fuzz-corpus");
    // One build for all targets, then the time-boxed runs.
    let mut build = nightly("cargo");
    build.args(["fuzz", "build"]).current_dir(&crate_dir);
    run_loud(&mut build)?;
    for target in FUZZ_RELEASE_TARGETS {
        let mut build = nightly("cargo");
        build
            .args(["fuzz", "build", "-O", target])
            .current_dir(&crate_dir);
        run_loud(&mut build)?;
    }
    for target in FUZZ_TARGETS {
        let corpus = corpus_root.join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| Error::io("create", &corpus, e))?;
        let mut run = nightly("cargo");
        run.args(["fuzz", "run"]);
        if FUZZ_RELEASE_TARGETS.contains(&target) {
            run.arg("-O");
        }
        run.arg(target)
            .arg(&corpus)
            .args(existing_dir(&seeds_dir.join(target)))
            .args([
                "--",
                &format!("-max_total_time={FUZZ_SECONDS_PER_TARGET}"),
                "-print_final_stats=1",
            ])
            .current_dir(&crate_dir);
        let started = Instant::now();
        run_loud(&mut run)?;
        eprintln!(
            "ci: fuzz target {target}: no crash in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Outcome::Passed)
}

/// `dir` if it is a directory (an optional seed corpus).
fn existing_dir(dir: &Path) -> Option<&Path> {
    dir.is_dir().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_targets_match_the_fuzz_manifest() {
        let manifest = std::fs::read_to_string(
            project_root()
                .join("ue-metrics-decode")
                .join("fuzz")
                .join("Cargo.toml"),
        )
        .expect("the fuzz workspace's manifest");
        let mut declared: Vec<&str> = manifest
            .lines()
            .filter_map(|line| line.trim().strip_prefix("name = \""))
            .filter_map(|rest| rest.strip_suffix('"'))
            .filter(|name| *name != "ue-metrics-decode-fuzz")
            .collect();
        declared.sort_unstable();
        let mut ours = FUZZ_TARGETS.to_vec();
        ours.sort_unstable();
        assert_eq!(declared, ours);
    }

    #[test]
    fn clippy_lints_every_kernel_tests_feature() {
        let root = project_root();
        let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
        let members = workspace
            .split("members = [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .expect("the workspace's members");
        let mut with_feature: Vec<String> = members
            .split(',')
            .map(|member| member.trim().trim_matches('"'))
            .filter(|member| !member.is_empty())
            .filter_map(|member| std::fs::read_to_string(root.join(member).join("Cargo.toml")).ok())
            .filter(|manifest| {
                manifest
                    .lines()
                    .any(|line| line.starts_with("kernel-tests ="))
            })
            .filter_map(|manifest| {
                let name = manifest
                    .lines()
                    .find_map(|line| line.strip_prefix("name = \""))?;
                Some(format!("{}/kernel-tests", name.trim_end_matches('"')))
            })
            .collect();
        with_feature.sort_unstable();
        let listed: Vec<&str> = KERNEL_TEST_FEATURES.split(',').collect();
        assert_eq!(with_feature, listed);
    }

    #[test]
    fn nightly_commands_drop_the_stable_toolchain_pins() {
        let command = nightly("cargo");
        let removed: Vec<_> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| key.to_string_lossy().into_owned())
            .collect();
        assert!(removed.contains(&"RUSTUP_TOOLCHAIN".to_string()));
        assert!(removed.contains(&"CARGO".to_string()));
        assert_eq!(describe(&command), "rustup run nightly cargo");
    }
}
