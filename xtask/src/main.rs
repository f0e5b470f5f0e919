//! Project tasks for the ue-metrics workspace: `cargo xtask <task>`.
//!
//! Run `cargo xtask help` for the list. Everything here uses std and external programs (cargo,
//! make, qemu); there is no unsafe code.
#![forbid(unsafe_code)]

mod check_kernel;
mod ci;
mod demo;
mod e2e;
mod error;
mod json;
mod scrape;
mod util;
mod vm;

use error::{Error, Result};

/// The help text, also shown after a usage error.
pub const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  demo [--seconds N] [--json] [--native|--vm]
                                   the example app exports every second through user_events; the live
                                   collector shows what arrives (natively if this kernel can, else in the VM)
  ci [--keep-going] [--skip-e2e] [--only STEP,...]
                                   fmt check, clippy -D warnings, 32-bit target checks
                                   (i686, armv7, powerpc), rustdoc -D warnings, workspace tests,
                                   benchmarks once, fuzz smoke (20 s per target, nightly), publish
                                   --dry-run, MSRV check (Rust 1.85), e2e on x86_64, aarch64
                                   and s390x; stops at the first failure
  e2e [--arch x86_64|aarch64|s390x|all] [--timeout S] [--cpus N] [--with PATH]...
                                   build every crate's kernel tests statically, run them all in one VM boot
                                   per architecture (default: the host's; others under qemu TCG)
  check-kernel                     can an app export to user_events here? (exit 0 = yes)
  vm build [--arch A|all]          build (once) and cache the user_events kernel; print its path
  vm run [--arch A] [--timeout S] [--cpus N] [--with PATH]... <binary> [args...]
                                   boot the VM, run <binary> as root, stream its output, exit with its code;
                                   --with packs a host program (e.g. /usr/bin/perf) with its libraries
  help                             this text";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}

/// Runs the task named by `args` and returns the process exit code.
fn dispatch(args: &[String]) -> Result<i32> {
    let Some((task, rest)) = args.split_first() else {
        return Err(Error::Usage("no task given".into()));
    };
    match task.as_str() {
        "ci" => {
            let mut options = ci::CiOptions::default();
            let mut flags = rest.iter();
            while let Some(flag) = flags.next() {
                match flag.as_str() {
                    "--keep-going" => options.keep_going = true,
                    "--skip-e2e" => options.skip_e2e = true,
                    "--only" => options.only.extend(
                        flags
                            .next()
                            .ok_or_else(|| Error::Usage("ci: --only needs step names".into()))?
                            .split(',')
                            .map(str::to_string),
                    ),
                    other => return Err(Error::Usage(format!("ci: unknown flag `{other}`"))),
                }
            }
            ci::ci(&options)?;
            Ok(0)
        }
        "demo" => demo::demo(&demo::parse_args(rest)?),
        // Internal: the demo's run in the guest (or natively), started by `demo`.
        "demo-session" => Ok(if demo::session(&demo::parse_session_args(rest)?)? {
            0
        } else {
            1
        }),
        "e2e" => {
            let mut options = e2e::E2eOptions::default();
            let rest = vm::parse_guest_flags(
                rest,
                &mut options.boot,
                &mut options.with,
                &mut options.arches,
            )?;
            if let Some(extra) = rest.first() {
                return Err(Error::Usage(format!("e2e: unexpected argument `{extra}`")));
            }
            e2e::e2e(&options)?;
            Ok(0)
        }
        "check-kernel" => match rest.first() {
            None => check_kernel::check_kernel(),
            Some(extra) => Err(Error::Usage(format!(
                "check-kernel: unexpected argument `{extra}`"
            ))),
        },
        "vm" => match rest.first().map(String::as_str) {
            Some("build") => {
                vm::build(&rest[1..])?;
                Ok(0)
            }
            Some("run") => vm::run(&vm::parse_run_args(&rest[1..])?),
            _ => Err(Error::Usage("vm: expected `vm build` or `vm run`".into())),
        },
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => Err(Error::Usage(format!("unknown task `{other}`"))),
    }
}
