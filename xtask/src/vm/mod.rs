//! `cargo xtask vm`: a small user_events kernel booted under qemu.
//!
//! - [`arch`]: what differs between the guest architectures (x86_64, aarch64, s390x).
//! - [`kernel`]: build the kernel once per architecture and cache it.
//! - [`initramfs`]: pack busybox, users, test binaries and extra host files into a cpio archive.
//! - [`guest`]: the `/init` script: mounts, runs programs, reports exit codes on ttyS1.
//! - [`qemu`]: boot it, stream the console, collect results, enforce a time limit.

pub mod arch;
pub mod guest;
pub mod initramfs;
pub mod kernel;
pub mod qemu;

use crate::error::{Error, Result};
use arch::Arch;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `cargo xtask vm build [--arch A|all]`: builds (or finds in the cache) the kernel of each
/// architecture and prints its path.
pub fn build(args: &[String]) -> Result<()> {
    let arches = match args {
        [] => vec![Arch::host()],
        [flag, value] if flag == "--arch" => Arch::parse_list(value)?,
        _ => return Err(Error::Usage("vm build: expected [--arch ARCH|all]".into())),
    };
    for arch in arches {
        let kernel = kernel::ensure_kernel_for(arch)?;
        eprintln!("vm: {arch} kernel config {}", kernel.config.display());
        println!("{}", kernel.bzimage.display());
    }
    Ok(())
}

/// Options of `cargo xtask vm run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The program to run in the guest (static, or dynamic with its libraries packed).
    pub binary: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// How to boot.
    pub boot: qemu::BootOptions,
    /// Host programs to pack at their host paths (with their libraries), e.g. `/usr/bin/perf`.
    pub with: Vec<PathBuf>,
}

/// Parses `vm run [--arch A] [--timeout SECS] [--cpus N] [--with PATH]... <binary> [args...]`.
pub fn parse_run_args(args: &[String]) -> Result<RunOptions> {
    let mut boot = qemu::BootOptions {
        timeout: Duration::from_secs(120),
        ..qemu::BootOptions::default()
    };
    let mut with = Vec::new();
    let mut arches = Vec::new();
    let rest = parse_guest_flags(args, &mut boot, &mut with, &mut arches)?;
    match arches.as_slice() {
        [] => {}
        [arch] => boot.arch = *arch,
        _ => return Err(Error::Usage("vm run: one --arch at a time".into())),
    }
    let Some((binary, args)) = rest.split_first() else {
        return Err(Error::Usage("vm run: no binary given".into()));
    };
    if binary.starts_with("--") {
        return Err(Error::Usage(format!("vm run: unknown flag `{binary}`")));
    }
    Ok(RunOptions {
        binary: PathBuf::from(binary),
        args: args.to_vec(),
        boot,
        with,
    })
}

/// Applies leading `--timeout SECS`, `--cpus N`, `--with PATH` and `--arch A|all` flags (the
/// architectures are added to `arches`); returns the arguments after them.
pub fn parse_guest_flags<'a>(
    args: &'a [String],
    boot: &mut qemu::BootOptions,
    with: &mut Vec<PathBuf>,
    arches: &mut Vec<Arch>,
) -> Result<&'a [String]> {
    let mut rest = args;
    while let Some((flag, tail)) = rest.split_first() {
        let number = |what: &str| -> Result<u64> {
            tail.first()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::Usage(format!("{flag} needs {what}")))
        };
        match flag.as_str() {
            "--timeout" => boot.timeout = Duration::from_secs(number("seconds")?),
            "--with" => with
                .push(PathBuf::from(tail.first().ok_or_else(|| {
                    Error::Usage("--with needs a host program path".into())
                })?)),
            "--arch" => arches.extend(Arch::parse_list(tail.first().ok_or_else(|| {
                Error::Usage("--arch needs x86_64, aarch64, s390x or all".into())
            })?)?),
            "--cpus" => {
                boot.cpus = u32::try_from(number("a CPU count")?)
                    .map_err(|_| Error::Usage("--cpus is too large".into()))?
            }
            _ => break,
        }
        rest = &tail[1..];
    }
    Ok(rest)
}

/// `cargo xtask vm run`: boots the VM, runs one program as root, streams its output and returns
/// its exit code. A kernel problem or a hung guest is an error.
pub fn run(options: &RunOptions) -> Result<i32> {
    let binary = &options.binary;
    let bytes = std::fs::read(binary).map_err(|e| Error::io("read", binary, e))?;
    let arch = options.boot.arch;
    let kernel = kernel::ensure_kernel_for(arch)?;
    let mut initramfs = initramfs::Initramfs::base_for(arch)?;
    for program in &options.with {
        initramfs.add_host_program(program)?;
    }
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".into());
    let guest_path = if initramfs::is_dynamic_elf(&bytes) {
        initramfs.add_host_program(binary)?
    } else {
        initramfs.add_binary(binary, &name)?
    };
    let mut script = guest::Script::for_arch(arch);
    let mut argv = vec![guest_path.to_string_lossy().into_owned()];
    argv.extend(options.args.iter().cloned());
    script.run("run", &argv);
    initramfs.add_file("/init", script.render(), 0o755);

    let run_dir = qemu::RunDir::create("run")?;
    let dir = run_dir.path();
    let image = dir.join("initramfs.cpio");
    let size = initramfs.write(&image)?;
    eprintln!(
        "vm: booting {} in the {arch} guest (initramfs {:.1} MB, {} CPUs, time limit {} s)",
        Path::new(&name).display(),
        size as f64 / 1e6,
        options.boot.cpus,
        options.boot.timeout.as_secs()
    );
    let outcome = qemu::boot(
        &kernel.bzimage,
        &image,
        &dir.join("results.txt"),
        &options.boot,
    )?;
    outcome.check_guest()?;
    let code = guest::exit_codes(&outcome.results)
        .into_iter()
        .find(|(label, _)| label == "run")
        .map(|(_, code)| code)
        .ok_or_else(|| {
            Error::Failed(format!(
                "the guest reported no exit code\n--- last console lines ---\n{}",
                outcome.console_tail(40)
            ))
        })?;
    let booted = outcome.boot_time.map_or(f64::NAN, |t| t.as_secs_f64());
    eprintln!(
        "vm: {name} exited with {code}; boot to /init {booted:.1} s, qemu ran {:.1} s in all",
        outcome.elapsed.as_secs_f64()
    );
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_args_take_flags_before_the_binary_only() {
        let options = parse_run_args(&strings(&[
            "--timeout",
            "30",
            "--arch",
            "s390x",
            "--with",
            "/usr/bin/perf",
            "t",
            "--timeout",
            "x",
        ]))
        .unwrap();
        assert_eq!(options.boot.timeout, Duration::from_secs(30));
        assert_eq!(options.boot.arch, Arch::S390x);
        assert_eq!(options.with, [PathBuf::from("/usr/bin/perf")]);
        assert_eq!(options.binary, PathBuf::from("t"));
        assert_eq!(options.args, strings(&["--timeout", "x"]));
        assert!(parse_run_args(&[]).is_err());
        assert!(parse_run_args(&strings(&["--bogus", "t"])).is_err());
        assert!(parse_run_args(&strings(&["--cpus"])).is_err());
        assert!(parse_run_args(&strings(&["--arch", "all", "t"])).is_err());
    }
}
