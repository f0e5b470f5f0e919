//! The one error type of xtask: every failure says what failed and, where it helps, what to do.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Result with the xtask [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can make a task fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line could not be understood.
    #[error("{0}\n\n{usage}", usage = crate::USAGE)]
    Usage(String),
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we tried to do, e.g. "read".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A program could not be started at all.
    #[error("cannot run `{program}`: {source}{hint}")]
    Spawn {
        /// The program name.
        program: String,
        /// Advice, e.g. which package provides the program (starts with a newline or is empty).
        hint: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("`{command}` failed ({status})")]
    CommandFailed {
        /// The command line, for the message.
        command: String,
        /// Its exit status.
        status: ExitStatus,
    },
    /// A task-specific failure with its explanation.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// Builds an [`Error::Io`] from an action, a path and the I/O error.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
