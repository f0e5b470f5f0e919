//! Linux `user_events`: the raw kernel ABI and a small safe layer over it, plus a
//! `perf_event_open` reader for one tracepoint. This is the only crate of the workspace with
//! `unsafe` code.
//!
//! ```no_run
//! use std::io::IoSlice;
//! use user_events_sys::{DataFile, RegisterOptions, Tracefs};
//!
//! # fn main() -> user_events_sys::Result<()> {
//! let tracefs = Tracefs::discover()?;
//! let data = DataFile::open(&tracefs)?;
//! let event = data.register("my_event u32 value", RegisterOptions::default())?;
//! if event.enabled() {
//!     event.write(&[IoSlice::new(&42u32.to_ne_bytes())])?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! - [`abi`]: `struct user_reg`/`user_unreg`, the ioctl numbers per architecture, the flags.
//! - [`Tracefs`]: finding tracefs, event ids and formats, ftrace enable files.
//! - [`DataFile`], [`Event`]: register (enable word + bit), `enabled()`, `write`, unregister,
//!   delete.
//! - [`perf`]: per-CPU ring buffers of one tracepoint.
//! - [`PERF_MAX_PAYLOAD`], [`FTRACE_MAX_PAYLOAD`], [`MAX_PAYLOAD_ALL_LISTENERS`]: how big an
//!   event may be.
//!
//! On systems other than Linux everything compiles and every call returns
//! [`Error::Unsupported`].

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod abi;
mod error;
mod event;
mod fds;
mod hooks;
mod limits;
mod os;
pub mod perf;
mod tracefs;

#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

#[cfg(test)]
mod test_util;

pub use error::{Error, Result};
pub use event::{DataFile, Event, RegisterOptions, MAX_PAYLOAD_SLICES};
pub use fds::close_data_files_on_exec;
pub use limits::{FTRACE_MAX_PAYLOAD, MAX_PAYLOAD_ALL_LISTENERS, PERF_MAX_PAYLOAD};
pub use tracefs::{parse_mounts, Tracefs, TracefsMount, DEFAULT_TRACEFS};
