//! Project tasks for the ue-metrics workspace: `cargo xtask <task>`.
//!
//! Run `cargo xtask help` for the list. Everything here uses std and external programs (cargo,
//! make, qemu); there is no unsafe code.
#![forbid(unsafe_code)]

mod ci;
mod error;
mod util;

use error::{Error, Result};

/// The help text, also shown after a usage error.
pub const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  ci [--keep-going] [--skip-e2e]   fmt check, clippy -D warnings, workspace tests (stops at the first failure)
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
            for flag in rest {
                match flag.as_str() {
                    "--keep-going" => options.keep_going = true,
                    "--skip-e2e" => options.skip_e2e = true,
                    other => return Err(Error::Usage(format!("ci: unknown flag `{other}`"))),
                }
            }
            ci::ci(&options)?;
            Ok(0)
        }
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => Err(Error::Usage(format!("unknown task `{other}`"))),
    }
}
