//! Test support (feature `testing`; not a stable API).
//!
//! - [`ScriptedIoctls`]: the user_events ioctls of the calling thread answered from a script,
//!   so error paths (an errno the host kernel never gives) are tested without a kernel or
//!   privileges; [`FakeTracefs`] gives them a `user_events_data` file to open.
//! - With `kernel-tests` on Linux: fork, dropping privileges, raw registrations and a
//!   `tracepoint` cross-check for the tests in the VM.

pub use crate::hooks::{IoctlCalls, ScriptedIoctls};

use std::path::PathBuf;
use std::sync::Arc;

use crate::{DataFile, Error, Tracefs};

/// A directory holding an empty file named `user_events_data`, for tests whose ioctls are
/// scripted ([`ScriptedIoctls`]): opening it works anywhere, without tracefs. Removed on drop.
#[derive(Debug)]
pub struct FakeTracefs(PathBuf);

impl FakeTracefs {
    /// Creates `<temp dir>/user_events-fake-tracefs-<label>-<pid>` with the file.
    pub fn new(label: &str) -> std::io::Result<FakeTracefs> {
        let dir = std::env::temp_dir().join(format!(
            "user_events-fake-tracefs-{label}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("user_events_data"), b"")?;
        Ok(FakeTracefs(dir))
    }

    /// The [`Tracefs`] rooted at the directory.
    pub fn tracefs(&self) -> Tracefs {
        Tracefs::at(&self.0)
    }

    /// Its `user_events_data`, opened.
    pub fn data_file(&self) -> Result<Arc<DataFile>, Error> {
        DataFile::open(&self.tracefs())
    }
}

impl Drop for FakeTracefs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(all(feature = "kernel-tests", target_os = "linux"))]
mod kernel;
#[cfg(all(feature = "kernel-tests", target_os = "linux"))]
pub use kernel::*;
