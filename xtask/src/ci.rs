//! `cargo xtask ci`: everything CI checks, in order, stopping at the first failure.

use crate::error::{Error, Result};
use crate::util::{cargo, describe};
use std::process::Command;
use std::time::Instant;

/// Options of `cargo xtask ci`.
#[derive(Debug, Default)]
pub struct CiOptions {
    /// Run every step even after one failed, then report all failures.
    pub keep_going: bool,
    /// Skip the VM end-to-end step (for machines without qemu).
    pub skip_e2e: bool,
}

/// One CI step: a name and what runs it.
struct Step {
    name: &'static str,
    run: Box<dyn Fn() -> Result<()>>,
}

/// A step that runs one cargo command.
fn cargo_step(name: &'static str, args: &'static [&'static str]) -> Step {
    Step {
        name,
        run: Box::new(move || {
            let mut command = cargo();
            command.args(args);
            run_loud(&mut command)
        }),
    }
}

/// Prints the command, then runs it.
fn run_loud(command: &mut Command) -> Result<()> {
    eprintln!("$ {}", describe(command));
    crate::util::run(command)
}

/// Runs fmt, clippy, the workspace tests and the VM end-to-end suite.
pub fn ci(options: &CiOptions) -> Result<()> {
    let mut steps = vec![
        cargo_step("fmt", &["fmt", "--all", "--check"]),
        cargo_step(
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        cargo_step("test", &["test", "--workspace"]),
    ];
    if !options.skip_e2e {
        steps.push(Step {
            name: "e2e",
            run: Box::new(|| crate::e2e::e2e(&crate::e2e::E2eOptions::default())),
        });
    }

    let mut results = Vec::new();
    for step in &steps {
        eprintln!("\n==> ci: {}", step.name);
        let started = Instant::now();
        let result = (step.run)();
        let seconds = started.elapsed().as_secs_f64();
        let failed = result.is_err();
        if let Err(error) = &result {
            eprintln!("==> ci: {} FAILED after {seconds:.1} s: {error}", step.name);
        }
        results.push((step.name, seconds, result));
        if failed && !options.keep_going {
            break;
        }
    }

    eprintln!("\n==> ci summary");
    for (name, seconds, result) in &results {
        let verdict = if result.is_ok() { "ok" } else { "FAILED" };
        eprintln!("  {name:<8} {verdict:<7} {seconds:>7.1} s");
    }
    for step in steps.iter().skip(results.len()) {
        eprintln!("  {:<8} skipped (an earlier step failed)", step.name);
    }
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
