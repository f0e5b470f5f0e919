//! Test support (feature `testing`; not a stable API).
//!
//! - [`ScriptedIoctls`]: the user_events ioctls of the calling thread answered from a script,
//!   so error paths (an errno the host kernel never gives) are tested without a kernel or
//!   privileges.
//! - With `kernel-tests` on Linux: fork, dropping privileges, raw registrations and a
//!   `tracepoint` cross-check for the tests in the VM.

pub use crate::hooks::{IoctlCalls, ScriptedIoctls};

#[cfg(all(feature = "kernel-tests", target_os = "linux"))]
mod kernel;
#[cfg(all(feature = "kernel-tests", target_os = "linux"))]
pub use kernel::*;
