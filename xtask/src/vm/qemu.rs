//! Booting the kernel and initramfs under qemu, with a hard time limit.
//!
//! The guest's console (ttyS0; ttyAMA0 on aarch64, ttysclp0 on s390x) comes back on qemu's stdout
//! and is streamed line by line; a results port (ttyS1; a virtio console, hvc0, elsewhere) is
//! written to a file and carries machine-readable results, apart from whatever the kernel or the
//! tests print. After the run, the console and the guest's `dmesg` (sent over the results port
//! at the end) are checked for kernel problems.

use super::arch::Arch;
use crate::error::{Error, Result};
use crate::util::spawn_error;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The console line a test prints before it triggers a kernel warning on purpose, e.g.
/// `UE-EXPECT-KERNEL-WARNING perf buffer not large enough`. A `WARNING:` whose text or
/// preceding lines contain the given text is then not a failure.
pub const EXPECT_WARNING_MARKER: &str = "UE-EXPECT-KERNEL-WARNING ";

/// Lines between these markers on the results port are the guest's `dmesg`.
pub const DMESG_BEGIN: &str = "UE-DMESG-BEGIN";
/// See [`DMESG_BEGIN`].
pub const DMESG_END: &str = "UE-DMESG-END";
/// The last line the guest writes on the results port: the run was complete.
pub const DONE_MARKER: &str = "UE-DONE";

/// How to boot.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// The guest's architecture (its kernel and qemu); the host's by default.
    pub arch: Arch,
    /// Kill the guest after this long.
    pub timeout: Duration,
    /// Guest CPUs.
    pub cpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Print console lines as they arrive (lines starting with `UE-` markers are kept quiet).
    pub stream: bool,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            arch: Arch::host(),
            timeout: Duration::from_secs(300),
            cpus: 2,
            memory_mib: 1024,
            stream: true,
        }
    }
}

/// What a boot produced.
#[derive(Debug, Default)]
pub struct BootOutcome {
    /// Every console line, `\r` removed.
    pub console: Vec<String>,
    /// Every results-port line except the dmesg dump.
    pub results: Vec<String>,
    /// The guest's kernel log, as dumped at the end of the run (empty if it never got there).
    pub dmesg: Vec<String>,
    /// Wall time from starting qemu to its exit.
    pub elapsed: Duration,
    /// Wall time from starting qemu until `/init` reported itself (`UE-BOOTED` on the console).
    pub boot_time: Option<Duration>,
    /// True when the guest was killed at the time limit.
    pub timed_out: bool,
    /// Kernel problems found (panics, oopses, unexpected warnings), each with some context.
    pub kernel_problems: Vec<String>,
}

impl BootOutcome {
    /// True when the guest reached the end of its script ([`DONE_MARKER`]).
    pub fn completed(&self) -> bool {
        self.results.iter().any(|line| line == DONE_MARKER)
    }

    /// The last `n` console lines, for error messages.
    pub fn console_tail(&self, n: usize) -> String {
        self.console[self.console.len().saturating_sub(n)..].join("\n")
    }

    /// `Ok` when the guest completed without kernel problems; else an error with the console tail.
    pub fn check_guest(&self) -> Result<()> {
        let mut reasons = Vec::new();
        if self.timed_out {
            reasons.push(format!(
                "the guest did not finish within the time limit ({:.0} s)",
                self.elapsed.as_secs_f64()
            ));
        } else if !self.completed() {
            reasons.push("the guest stopped before the end of its script".to_string());
        }
        for problem in &self.kernel_problems {
            reasons.push(format!("kernel problem:\n{problem}"));
        }
        if reasons.is_empty() {
            return Ok(());
        }
        Err(Error::Failed(format!(
            "{}\n--- last console lines ---\n{}\n---\n(if a test triggers a kernel warning on \
             purpose, it prints `{EXPECT_WARNING_MARKER}<text of the warning>` first)",
            reasons.join("\n"),
            self.console_tail(40)
        )))
    }
}

/// Whether to use KVM for a guest of the host's architecture (see [`use_kvm_for`]).
pub fn use_kvm() -> bool {
    use_kvm_for(Arch::host())
}

/// Whether to use KVM for a guest of `arch`: never for a foreign architecture; for the host's
/// only when `$UE_VM_ACCEL=kvm`, or when unset and a real `kvm_intel` or `kvm_amd` module is
/// loaded. These hosts' `/dev/kvm` is a nested PVM device (`kvm_pvm`) under which plain kernels
/// die, so its mere presence means nothing.
pub fn use_kvm_for(arch: Arch) -> bool {
    if arch != Arch::host() {
        return false;
    }
    match std::env::var("UE_VM_ACCEL").as_deref() {
        Ok("kvm") => true,
        Ok(_) => false,
        Err(_) => {
            let module = |name: &str| Path::new("/sys/module").join(name).exists();
            (module("kvm_intel") || module("kvm_amd"))
                && !module("kvm_pvm")
                && fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/kvm")
                    .is_ok()
        }
    }
}

/// The guest kernel's command line for `arch`, plus `$UE_VM_APPEND` if set.
///
/// - `panic=-1` with qemu's `-no-reboot`: a panicking guest ends qemu at once.
/// - `loglevel=5`: no boot chatter on the console, but warnings (level 4) and worse.
/// - `tsc=unstable`: under TCG on a busy host the kernel's TSC calibration against the PIT can
///   come out several times too low (seen: 751 MHz instead of 2595), which makes guest time run
///   3.5x too fast; marking the TSC unstable makes the kernel keep time with the HPET.
///   `trace_clock=global` is what the kernel then picks for ftrace anyway (said explicitly, it
///   does not print a notice about it). x86_64 only: the other guests have no TSC.
pub fn kernel_command_line(arch: Arch) -> String {
    let mut line = format!("console={} panic=-1 oops=panic loglevel=5", arch.console());
    if arch == Arch::X86_64 && !use_kvm_for(arch) {
        line.push_str(" tsc=unstable trace_clock=global");
    }
    if let Ok(extra) = std::env::var("UE_VM_APPEND") {
        line.push(' ');
        line.push_str(&extra);
    }
    line
}

/// Boots `bzimage` with `initramfs` in a guest of `options.arch`; `results_file` receives the
/// guest's results port.
pub fn boot(
    bzimage: &Path,
    initramfs: &Path,
    results_file: &Path,
    options: &BootOptions,
) -> Result<BootOutcome> {
    // qemu appends to an existing file on some versions: start empty.
    fs::write(results_file, "").map_err(|e| Error::io("create", results_file, e))?;
    let arch = options.arch;
    let mut qemu = Command::new(arch.qemu());
    qemu.args(arch.machine());
    if use_kvm_for(arch) {
        qemu.args(["-accel", "kvm", "-cpu", "host"]);
    } else {
        qemu.args(["-accel", "tcg", "-cpu", "max"]);
    }
    qemu.args(["-m", &options.memory_mib.to_string()])
        .args(["-smp", &options.cpus.to_string()])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-serial", "stdio"])
        .arg("-chardev")
        // qemu's option syntax doubles a comma inside a value.
        .arg(format!(
            "file,id=results,path={}",
            results_file.display().to_string().replace(',', ",,")
        ))
        .args(arch.results_port_flags("results"))
        .arg("-kernel")
        .arg(bzimage)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(kernel_command_line(arch))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = qemu.spawn().map_err(|e| spawn_error(&qemu, e))?;

    let (sender, receiver) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).replace('\r', "");
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = child.stderr.take().expect("stderr is piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });

    let mut outcome = BootOutcome::default();
    let deadline = started + options.timeout;
    // Blank lines are held back: the guest script puts one before each `UE-END` marker (in case
    // the program's output lacked a final newline), and that one is not shown.
    let mut held_blank_lines = 0usize;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(remaining) {
            Ok(line) => {
                if outcome.boot_time.is_none() && line.starts_with("UE-BOOTED") {
                    outcome.boot_time = Some(started.elapsed());
                }
                if options.stream {
                    if line.is_empty() {
                        held_blank_lines += 1;
                    } else {
                        if line.starts_with("UE-END ") {
                            held_blank_lines = held_blank_lines.saturating_sub(1);
                        }
                        for _ in 0..std::mem::take(&mut held_blank_lines) {
                            println!();
                        }
                        if !is_quiet_line(&line) {
                            println!("{line}");
                        }
                    }
                }
                outcome.console.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                outcome.timed_out = true;
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().map_err(|e| Error::io("wait for", "qemu", e))?;
    outcome.elapsed = started.elapsed();
    let _ = reader.join();
    let qemu_errors = stderr_reader.join().unwrap_or_default();

    let results = fs::read_to_string(results_file).unwrap_or_default();
    let mut in_dmesg = false;
    for line in results.lines().map(|l| l.replace('\r', "")) {
        match line.as_str() {
            DMESG_BEGIN => in_dmesg = true,
            DMESG_END => in_dmesg = false,
            _ if in_dmesg => outcome.dmesg.push(line),
            _ => outcome.results.push(line),
        }
    }
    if !outcome.timed_out && !status.success() && !outcome.completed() {
        return Err(Error::Failed(format!(
            "qemu failed ({status}): {}\n--- last console lines ---\n{}",
            qemu_errors.trim(),
            outcome.console_tail(40)
        )));
    }
    outcome.kernel_problems = kernel_problems(&outcome.console, &outcome.dmesg);
    Ok(outcome)
}

/// Lines not streamed: the guest script's markers for xtask, and the kernel's known, harmless
/// boot complaints about this VM (TCG timer calibration; qemu's ACPI tables need PCI, which the
/// tiny kernel leaves out). They are still checked and kept in [`BootOutcome::console`].
fn is_quiet_line(line: &str) -> bool {
    const QUIET: [&str; 12] = [
        "UE-BEGIN ",
        "UE-ARTIFACT ",
        "UE-END ",
        "UE-BOOTED",
        "tsc: Unable to calibrate against PIT",
        "tsc: Fast TSC calibration",
        "APIC calibration not consistent with PM-Timer",
        "ACPI Error: AE_BAD_PARAMETER, During Region initialization",
        "ACPI: Unable to load the System Description Tables",
        "ACPI Error: Could not remove SCI handler",
        "amd_pstate: the _CPC object is not present",
        "reboot: Restarting system",
    ];
    QUIET.iter().any(|quiet| line.starts_with(quiet))
}

/// Strips a printk timestamp (`[    1.234567] `) if present.
fn strip_timestamp(line: &str) -> &str {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((stamp, after)) = rest.split_once(']') {
            if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return after.trim_start();
            }
        }
    }
    trimmed
}

/// Which kind of kernel problem a line starts, if any.
fn problem_kind(line: &str) -> Option<&'static str> {
    let line = strip_timestamp(line);
    if line.starts_with("Kernel panic") {
        Some("panic")
    } else if line.starts_with("WARNING:") {
        Some("warning")
    } else if line.starts_with("BUG:") || line.starts_with("kernel BUG at") {
        Some("bug")
    } else if line.starts_with("Oops") || line.contains("general protection fault") {
        Some("oops")
    } else {
        None
    }
}

/// Finds panics, oopses, BUGs and warnings in the console and the kernel log. A warning is
/// forgiven when a test announced it (see [`EXPECT_WARNING_MARKER`]) and its `WARNING:` line or
/// the message `WARN()` printed before it (after `[ cut here ]`) contains the announced text.
pub fn kernel_problems(console: &[String], dmesg: &[String]) -> Vec<String> {
    let expected: Vec<&str> = console
        .iter()
        .filter_map(|line| line.split_once(EXPECT_WARNING_MARKER))
        .map(|(_, text)| text.trim())
        .filter(|text| !text.is_empty())
        .collect();
    let mut problems: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for log in [dmesg, console] {
        for (index, line) in log.iter().enumerate() {
            let Some(kind) = problem_kind(line) else {
                continue;
            };
            let context = &log[index.saturating_sub(3)..(index + 4).min(log.len())];
            // WARN() prints "[ cut here ]", its message, then the WARNING line.
            let message_start = (index.saturating_sub(4)..index)
                .rev()
                .take_while(|&i| problem_kind(&log[i]).is_none())
                .find(|&i| log[i].contains("[ cut here ]"))
                .unwrap_or(index);
            let before = &log[message_start..=index];
            if kind == "warning"
                && expected
                    .iter()
                    .any(|text| before.iter().any(|l| l.contains(text)))
            {
                continue;
            }
            let text = strip_timestamp(line).to_string();
            // The same line shows up in both the console and dmesg: report it once.
            if seen.contains(&text) {
                continue;
            }
            seen.push(text);
            problems.push(context.join("\n"));
        }
    }
    problems
}

/// The host directory for one boot's files (initramfs, results): private to this process while
/// it runs (several `vm run`s may boot at once), then kept as `target/vm-run/<name>` for a look
/// after the run.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    last: PathBuf,
}

impl RunDir {
    /// Creates `target/vm-run/<name>.<pid>`.
    pub fn create(name: &str) -> Result<RunDir> {
        let base = crate::util::project_root().join("target").join("vm-run");
        remove_abandoned_run_dirs(&base);
        let path = base.join(format!("{name}.{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| Error::io("remove", &path, e))?;
        }
        fs::create_dir_all(&path).map_err(|e| Error::io("create", &path, e))?;
        Ok(RunDir {
            path,
            last: base.join(name),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes `<name>.<pid>` directories of processes that died without cleaning up (Ctrl-C).
fn remove_abandoned_run_dirs(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some((_, pid)) = file_name.to_str().and_then(|n| n.rsplit_once('.')) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for RunDir {
    /// Replaces `target/vm-run/<name>` with this run's files; if another run got there at the
    /// same moment, this run's files are dropped instead.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.last);
        if fs::rename(&self.path, &self.last).is_err() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn warnings_panics_and_oopses_are_found() {
        let console = lines(
            "boot\nWARNING: CPU: 1 PID: 50 at kernel/x.c:1 f+0x1/0x2\nok\n\
             Kernel panic - not syncing: Fatal exception\n",
        );
        let problems = kernel_problems(&console, &[]);
        assert_eq!(problems.len(), 2);
        assert!(problems[0].contains("WARNING: CPU: 1"));
        assert!(problems[1].contains("Kernel panic"));
    }

    #[test]
    fn announced_warning_is_forgiven_but_others_are_not() {
        let console = lines(&format!(
            "{EXPECT_WARNING_MARKER}perf buffer not large enough\nrunning\n"
        ));
        let dmesg = lines(
            "------------[ cut here ]------------\n\
             perf buffer not large enough, wanted 8200, have 8192\n\
             WARNING: CPU: 0 PID: 60 at kernel/trace/trace_event_perf.c:405 f\n\
             later\n\
             WARNING: CPU: 0 PID: 61 at mm/other.c:1 g\n",
        );
        let problems = kernel_problems(&console, &dmesg);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("mm/other.c"));
    }

    #[test]
    fn same_problem_in_console_and_dmesg_is_reported_once() {
        let console = lines("[    1.5] BUG: unable to handle page fault\n");
        let dmesg = lines("BUG: unable to handle page fault\n");
        assert_eq!(kernel_problems(&console, &dmesg).len(), 1);
    }

    #[test]
    fn ordinary_output_is_not_a_problem() {
        let console = lines("test warnings_are_reported ... ok\nno WARNING: here\n");
        assert!(kernel_problems(&console, &[]).is_empty());
    }
}
