//! Small helpers shared by the tasks: paths and running programs.

use crate::error::{Error, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
///
/// xtask's own manifest directory is `<root>/xtask`, fixed at compile time, so this works from
/// any current directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The `cargo` that started us (so the same toolchain is used), else `cargo` from `PATH`.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(project_root());
    command
}

/// Renders a command line for messages.
pub fn describe(command: &Command) -> String {
    let program = Path::new(command.get_program())
        .file_name()
        .unwrap_or(command.get_program())
        .to_string_lossy()
        .into_owned();
    let args: Vec<_> = command.get_args().map(OsStr::to_string_lossy).collect();
    if args.is_empty() {
        program
    } else {
        format!("{program} {}", args.join(" "))
    }
}

/// Runs a command with inherited stdio and fails unless it exits 0.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .map_err(|source| spawn_error(command, source))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            command: describe(command),
            status,
        })
    }
}

/// Runs a command, captures stdout, and fails unless it exits 0 (stderr is passed through).
pub fn output(command: &mut Command) -> Result<String> {
    let out = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| spawn_error(command, source))?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: describe(command),
            status: out.status,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The error for a program that could not be started, with the Debian package that provides it.
pub fn spawn_error(command: &Command, source: std::io::Error) -> Error {
    let program = describe(command)
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let package = match program.as_str() {
        "qemu-system-x86_64" => Some("qemu-system-x86"),
        "flex" => Some("flex"),
        "bison" => Some("bison"),
        "bc" => Some("bc"),
        "make" => Some("make"),
        "gcc" => Some("gcc"),
        "tar" | "xz" => Some("xz-utils"),
        _ => None,
    };
    let hint = match (package, source.kind()) {
        (Some(package), std::io::ErrorKind::NotFound) => {
            format!("\n  install it: apt-get install {package}")
        }
        _ => String::new(),
    };
    Error::Spawn {
        program,
        hint,
        source,
    }
}
