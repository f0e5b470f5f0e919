//! One error type for the whole crate. Every kernel error number is mapped to a variant that
//! says what happened and what to do about it; the original `io::Error` stays attached as the
//! source.

use std::io;
use std::path::PathBuf;

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong, with a remedy in every message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No tracefs found at `/sys/kernel/tracing` nor in `/proc/mounts`.
    #[error(
        "tracefs is not mounted (looked at /sys/kernel/tracing and in /proc/mounts): \
         mount it with `mount -t tracefs nodev /sys/kernel/tracing` (as root); that helps \
         only if the kernel has user_events (Linux 6.4+ with CONFIG_USER_EVENTS=y, see \
         /proc/config.gz or /boot/config-$(uname -r))"
    )]
    TracefsNotMounted,

    /// tracefs is there but has no `user_events_data`: the kernel lacks user_events.
    #[error(
        "this kernel has no user_events: {path} does not exist. user_events needs Linux 6.4+ \
         built with CONFIG_USER_EVENTS=y (`cargo xtask check-kernel` shows what is missing; \
         `cargo xtask e2e` runs the tests in a VM with such a kernel)"
    )]
    UserEventsUnavailable {
        /// The `user_events_data` path that is missing.
        path: PathBuf,
    },

    /// Opening or reading a tracefs file was refused.
    #[error(
        "permission denied on {path}: run as root, or grant a group once per boot (as root, \
         with T the tracefs directory, usually /sys/kernel/tracing): `groupadd tracers; \
         chgrp tracers T T/user_events_data; chmod g+x T; chmod g+rw T/user_events_data`, \
         then add the user to `tracers` (effective at the next login)"
    )]
    PermissionDenied {
        /// The file or directory that was refused.
        path: PathBuf,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// A persistent event (or deleting one) needs `CAP_PERFMON`.
    #[error(
        "{operation} needs CAP_PERFMON (EPERM): give the process the capability (e.g. \
         `setcap cap_perfmon+ep <binary>`), run it as root, or register without `persist`"
    )]
    NeedsCapPerfmon {
        /// What was attempted.
        operation: &'static str,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The name is registered already with a different field list (`EADDRINUSE`).
    #[error(
        "event `{name}` already exists with a different field list (EADDRINUSE): register \
         exactly the same fields, pick another name, delete the old event once nothing uses it \
         (DataFile::delete), or register with `multi_format`"
    )]
    FormatMismatch {
        /// The event name.
        name: String,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The same enable word and bit are registered twice in this process (`EADDRINUSE`).
    #[error(
        "bit {bit} of this enable word is already registered in this process (EADDRINUSE): \
         use another bit or word, or unregister the first registration"
    )]
    EnablerInUse {
        /// The enable bit.
        bit: u8,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The kernel refused the name, the field list or the flags (`EINVAL`).
    #[error(
        "the kernel rejected registering `{name_args}` (EINVAL): the form is \
         `name type field;type field` (name without spaces, sized types such as u32, s64, \
         char[8], __rel_loc u8[] buf), or a flag is unknown to this kernel; see \
         Documentation/trace/user_events.rst"
    )]
    InvalidNameArgs {
        /// The name and field list that was given.
        name_args: String,
        /// The error from the kernel, or `None` if refused before asking it (e.g. a NUL byte).
        #[source]
        source: Option<io::Error>,
    },

    /// The name and field list do not fit the kernel's 512-byte buffer.
    #[error(
        "the event name and field list are {len} bytes, the kernel accepts at most {max}: \
         shorten the name or the field list"
    )]
    NameTooLong {
        /// Bytes given.
        len: usize,
        /// Bytes accepted.
        max: usize,
    },

    /// A 32-bit process got `ENOTTY` from the register ioctl: user_events has no 32-bit
    /// compat ioctl, so a 32-bit process on a 64-bit kernel gets this for every registration.
    #[error(
        "the kernel refused the user_events register ioctl (ENOTTY): user_events has no 32-bit \
         compat ioctl, so a 32-bit program on a 64-bit kernel cannot register events (this \
         process is {process_bits}-bit). Build the program for the 64-bit target (e.g. \
         x86_64-unknown-linux-gnu instead of i686-unknown-linux-gnu, aarch64 instead of \
         armv7)"
    )]
    NoCompatIoctl {
        /// Pointer width of this process (32 or 64).
        process_bits: u32,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// A 64-bit process got `ENOTTY` from the register ioctl: the file it opened as
    /// `user_events_data` does not take user_events ioctls, so it is not the kernel's (a
    /// tracefs root that points elsewhere, e.g. at a directory holding a regular file of
    /// that name).
    #[error(
        "the register ioctl got ENOTTY: the opened user_events_data is not the kernel's \
         user_events_data file (is the tracefs root a mounted tracefs?)"
    )]
    NotUserEventsData {
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// Unregistering failed, but the kernel holds no enabler for the event's word any more:
    /// it had none (`ENOENT`), or removed it and then could not clear the bit (`EFAULT`).
    #[error(
        "unregistering `{name}`: the kernel holds no enabler for its enable word any more \
         ({source}); the Event counts as unregistered, there is nothing to retry"
    )]
    EnablerGone {
        /// The event name.
        name: String,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The enable bit does not fit the 32-bit enable word.
    #[error("enable bit {bit} does not fit the 32-bit enable word: use a bit from 0 to 31")]
    InvalidEnableBit {
        /// The bit asked for.
        bit: u8,
    },

    /// Nothing listens to the event, so the write was refused (`EBADF`).
    #[error(
        "no listener is attached to this event (EBADF), nothing was recorded: check \
         Event::enabled() before building and writing a payload"
    )]
    NoListener {
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// The write index is not registered on this `user_events_data` file.
    #[error(
        "write index {index} is not registered on this user_events_data file: write through \
         the Event that `register` returned, on the DataFile it was registered on"
    )]
    BadWriteIndex {
        /// The index written.
        index: u32,
        /// The error from the kernel (`ENOENT`, or `EINVAL` for an index above `i32::MAX`).
        #[source]
        source: io::Error,
    },

    /// The payload is shorter than the event's fixed-size fields (`EINVAL`).
    #[error(
        "the payload is shorter than the event's fixed-size fields (EINVAL): write at least \
         every field declared at registration"
    )]
    PayloadTooShort {
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// A dynamic location points outside the payload, or the payload memory faulted (`EFAULT`).
    #[error(
        "a __rel_loc/__data_loc field points outside the payload or a char[] string lacks \
         its NUL (EFAULT): the location word is `len << 16 | offset`, with a __rel_loc offset \
         counted from the end of the 4-byte location field"
    )]
    BadLocation {
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// More payload slices than the on-stack iovec array holds.
    #[error(
        "{given} payload slices given, at most {max} fit the on-stack iovec array: join small \
         slices into one buffer"
    )]
    TooManySlices {
        /// Slices given.
        given: usize,
        /// Slices accepted.
        max: usize,
    },

    /// The event cannot be deleted while anything references it (`EBUSY`).
    #[error(
        "event `{name}` is still in use (EBUSY): unregister or drop every Event of it, close \
         the user_events_data files that registered it and detach listeners (ftrace enable, \
         perf), then delete it"
    )]
    EventBusy {
        /// The event name.
        name: String,
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// There is no such event (`ENOENT`).
    #[error(
        "there is no event `{name}`: it was never registered, already deleted, or (multi-format \
         events) has a `.<id>` suffix in the user_events_multi group"
    )]
    EventNotFound {
        /// The event (`group/name` for tracefs look-ups).
        name: String,
        /// The error from the kernel, if it gave one.
        #[source]
        source: Option<io::Error>,
    },

    /// The event was unregistered by this handle; it cannot write any more.
    #[error("this Event was unregistered: register the event again to write it")]
    Unregistered,

    /// The kernel-wide limit of user events is reached (`EMFILE`).
    #[error(
        "the kernel's limit of user events is reached (EMFILE): delete unused events or raise \
         the `kernel.user_events_max` sysctl"
    )]
    TooManyEvents {
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// `perf_event_open` refused to give raw tracepoint samples.
    #[error(
        "perf_event_open was denied: raw tracepoint samples need root or CAP_PERFMON, or \
         `sysctl kernel.perf_event_paranoid=-1`, plus read access to tracefs"
    )]
    PerfPermissionDenied {
        /// The error from the kernel.
        #[source]
        source: io::Error,
    },

    /// Perf session options that cannot work.
    #[error("invalid perf options: {reason}")]
    InvalidPerfOptions {
        /// What is wrong and what to use instead.
        reason: &'static str,
    },

    /// A tracefs or sysfs file does not have the expected content.
    #[error(
        "cannot understand {path}: {reason}; is the file from a kernel this crate supports \
         (Linux 6.4+)?"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// user_events and perf exist only on Linux.
    #[error("{what} is not supported on this platform: user_events needs Linux 6.4+")]
    Unsupported {
        /// What was attempted.
        what: &'static str,
    },

    /// Any other system error, with what was being done.
    #[error(
        "{context} failed: {source}; check that tracefs is mounted and that this kernel has \
         user_events (`cargo xtask check-kernel`)"
    )]
    Io {
        /// What was being done, on what.
        context: String,
        /// The error from the system.
        #[source]
        source: io::Error,
    },
}

/// The error numbers the kernel's user_events and perf code return, as a closed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Errno {
    AddrInUse,
    Access,
    BadFd,
    Busy,
    Fault,
    Invalid,
    NoEntry,
    NotPermitted,
    NotTty,
    TooBig,
    TooManyFiles,
    Unsupported,
    Other,
}

impl Errno {
    #[cfg(target_os = "linux")]
    pub(crate) fn of(err: &io::Error) -> Errno {
        match err.raw_os_error() {
            Some(libc::EADDRINUSE) => Errno::AddrInUse,
            Some(libc::EACCES) => Errno::Access,
            Some(libc::EBADF) => Errno::BadFd,
            Some(libc::EBUSY) => Errno::Busy,
            Some(libc::EFAULT) => Errno::Fault,
            Some(libc::EINVAL) => Errno::Invalid,
            Some(libc::ENOENT) => Errno::NoEntry,
            Some(libc::EPERM) => Errno::NotPermitted,
            Some(libc::ENOTTY) => Errno::NotTty,
            Some(libc::E2BIG) => Errno::TooBig,
            Some(libc::EMFILE) => Errno::TooManyFiles,
            _ if err.kind() == io::ErrorKind::Unsupported => Errno::Unsupported,
            _ => Errno::Other,
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn of(err: &io::Error) -> Errno {
        match err.kind() {
            io::ErrorKind::Unsupported => Errno::Unsupported,
            io::ErrorKind::NotFound => Errno::NoEntry,
            io::ErrorKind::PermissionDenied => Errno::Access,
            _ => Errno::Other,
        }
    }
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        if Errno::of(&source) == Errno::Unsupported {
            return Error::Unsupported {
                what: "user_events",
            };
        }
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Opening a tracefs file (`user_events_data`, `id`, `format`, `enable`).
    pub(crate) fn from_open(path: PathBuf, source: io::Error) -> Error {
        match Errno::of(&source) {
            Errno::Access | Errno::NotPermitted => Error::PermissionDenied { path, source },
            _ => Error::io(format!("opening {}", path.display()), source),
        }
    }

    /// `DIAG_IOCSREG` failed. Our own registrations always use a fresh enable word, so
    /// `EADDRINUSE` can only mean another format under the same name.
    pub(crate) fn from_register(name_args: &str, source: io::Error) -> Error {
        Error::from_register_in(usize::BITS, name_args, source)
    }

    /// [`Error::from_register`] for a process whose pointers are `process_bits` wide, which
    /// decides what `ENOTTY` means (a parameter, so both answers are tested on any host).
    fn from_register_in(process_bits: u32, name_args: &str, source: io::Error) -> Error {
        match Errno::of(&source) {
            Errno::AddrInUse => Error::FormatMismatch {
                name: event_name(name_args).to_owned(),
                source,
            },
            Errno::Invalid => Error::InvalidNameArgs {
                name_args: name_args.to_owned(),
                source: Some(source),
            },
            Errno::TooBig => Error::NameTooLong {
                len: name_args.len(),
                max: crate::abi::MAX_EVENT_DESC - 1,
            },
            Errno::NotPermitted => Error::NeedsCapPerfmon {
                operation: "registering a persistent event",
                source,
            },
            Errno::TooManyFiles => Error::TooManyEvents { source },
            Errno::NotTty if process_bits == 32 => Error::NoCompatIoctl {
                process_bits,
                source,
            },
            Errno::NotTty => Error::NotUserEventsData { source },
            _ => Error::io(format!("registering `{name_args}`"), source),
        }
    }

    /// `DIAG_IOCSREG` with an enable word and bit that may already be registered.
    #[cfg(any(test, feature = "kernel-tests"))]
    pub(crate) fn from_register_same_enabler(bit: u8, name_args: &str, source: io::Error) -> Error {
        match Errno::of(&source) {
            Errno::AddrInUse => Error::EnablerInUse { bit, source },
            _ => Error::from_register(name_args, source),
        }
    }

    /// `DIAG_IOCSUNREG` failed. With our always well-formed `user_unreg`, the kernel answers
    /// `ENOENT` when it has no such enabler and `EFAULT` only after removing it (clearing the
    /// bit faulted): both leave no enabler behind (`user_events_ioctl_unreg`).
    pub(crate) fn from_unregister(name: &str, source: io::Error) -> Error {
        match Errno::of(&source) {
            Errno::NoEntry | Errno::Fault => Error::EnablerGone {
                name: name.to_owned(),
                source,
            },
            _ => Error::io(format!("unregistering the enabler of `{name}`"), source),
        }
    }

    /// `DIAG_IOCSDEL` failed.
    pub(crate) fn from_delete(name: &str, source: io::Error) -> Error {
        match Errno::of(&source) {
            Errno::Busy => Error::EventBusy {
                name: name.to_owned(),
                source,
            },
            Errno::NoEntry => Error::EventNotFound {
                name: name.to_owned(),
                source: Some(source),
            },
            Errno::NotPermitted => Error::NeedsCapPerfmon {
                operation: "deleting a persistent event",
                source,
            },
            Errno::Invalid => Error::InvalidNameArgs {
                name_args: name.to_owned(),
                source: Some(source),
            },
            _ => Error::io(format!("deleting `{name}`"), source),
        }
    }

    /// `writev` on `user_events_data` failed.
    pub(crate) fn from_write(index: u32, source: io::Error) -> Error {
        match Errno::of(&source) {
            Errno::BadFd => Error::NoListener { source },
            Errno::NoEntry => Error::BadWriteIndex { index, source },
            // The kernel reads the index as a signed int: negative ones are EINVAL.
            Errno::Invalid if index > i32::MAX as u32 => Error::BadWriteIndex { index, source },
            Errno::Invalid => Error::PayloadTooShort { source },
            Errno::Fault => Error::BadLocation { source },
            _ => Error::io(format!("writing event index {index}"), source),
        }
    }

    /// `perf_event_open` failed.
    pub(crate) fn from_perf_open(tracepoint_id: u64, cpu: u32, source: io::Error) -> Error {
        match Errno::of(&source) {
            Errno::Access | Errno::NotPermitted => Error::PerfPermissionDenied { source },
            Errno::NoEntry | Errno::Invalid => Error::EventNotFound {
                name: format!("tracepoint id {tracepoint_id}"),
                source: Some(source),
            },
            _ => Error::io(
                format!("perf_event_open(tracepoint {tracepoint_id}, cpu {cpu})"),
                source,
            ),
        }
    }
}

/// The event name: `name_args` up to the first space or `:` (flags).
pub(crate) fn event_name(name_args: &str) -> &str {
    let trimmed = name_args.trim_start();
    let end = trimmed
        .find(|c: char| c.is_ascii_whitespace() || c == ':')
        .unwrap_or(trimmed.len());
    &trimmed[..end]
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn register_errors_map_to_variants() {
        let args = "otlp_metrics u32 protocol";
        assert!(matches!(
            Error::from_register(args, os(libc::EADDRINUSE)),
            Error::FormatMismatch { ref name, .. } if name == "otlp_metrics"
        ));
        assert!(matches!(
            Error::from_register(args, os(libc::EINVAL)),
            Error::InvalidNameArgs {
                source: Some(_),
                ..
            }
        ));
        assert!(matches!(
            Error::from_register(args, os(libc::EPERM)),
            Error::NeedsCapPerfmon { .. }
        ));
        assert!(matches!(
            Error::from_register(args, os(libc::EMFILE)),
            Error::TooManyEvents { .. }
        ));
        assert!(matches!(
            Error::from_register(args, os(libc::ENOMEM)),
            Error::Io { .. }
        ));
        let not_tty = Error::from_register_in(32, args, os(libc::ENOTTY));
        assert!(
            matches!(
                not_tty,
                Error::NoCompatIoctl {
                    process_bits: 32,
                    ..
                }
            ),
            "{not_tty:?}"
        );
        let text = not_tty.to_string();
        assert!(text.contains("ENOTTY") && text.contains("32-bit"), "{text}");
        assert!(text.contains("64-bit target"), "{text}");
        // From a 64-bit process ENOTTY says nothing about 32-bit: the file is not the kernel's.
        let not_tty = Error::from_register_in(64, args, os(libc::ENOTTY));
        assert!(
            matches!(not_tty, Error::NotUserEventsData { .. }),
            "{not_tty:?}"
        );
        let text = not_tty.to_string();
        assert!(!text.contains("32-bit"), "{text}");
        assert!(text.contains("not the kernel's user_events_data"), "{text}");
        assert!(matches!(
            Error::from_register_same_enabler(3, args, os(libc::EADDRINUSE)),
            Error::EnablerInUse { bit: 3, .. }
        ));
    }

    #[test]
    fn write_errors_map_to_variants() {
        assert!(matches!(
            Error::from_write(0, os(libc::EBADF)),
            Error::NoListener { .. }
        ));
        assert!(matches!(
            Error::from_write(7, os(libc::ENOENT)),
            Error::BadWriteIndex { index: 7, .. }
        ));
        assert!(matches!(
            Error::from_write(u32::MAX, os(libc::EINVAL)),
            Error::BadWriteIndex { .. }
        ));
        assert!(matches!(
            Error::from_write(0, os(libc::EINVAL)),
            Error::PayloadTooShort { .. }
        ));
        assert!(matches!(
            Error::from_write(0, os(libc::EFAULT)),
            Error::BadLocation { .. }
        ));
    }

    #[test]
    fn delete_and_open_errors_map_to_variants() {
        assert!(matches!(
            Error::from_delete("e", os(libc::EBUSY)),
            Error::EventBusy { .. }
        ));
        assert!(matches!(
            Error::from_delete("e", os(libc::ENOENT)),
            Error::EventNotFound { .. }
        ));
        assert!(matches!(
            Error::from_delete("e", os(libc::EPERM)),
            Error::NeedsCapPerfmon { .. }
        ));
        assert!(matches!(
            Error::from_open("/t/user_events_data".into(), os(libc::EACCES)),
            Error::PermissionDenied { .. }
        ));
        assert!(matches!(
            Error::from_perf_open(5, 0, os(libc::EACCES)),
            Error::PerfPermissionDenied { .. }
        ));
    }

    #[test]
    fn source_is_kept() {
        use std::error::Error as _;
        let err = Error::from_write(0, os(libc::EBADF));
        let source = err.source().expect("a source");
        let io = source.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(io.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn messages_carry_a_remedy_not_a_number() {
        let err = Error::PermissionDenied {
            path: "/sys/kernel/tracing/user_events_data".into(),
            source: os(libc::EACCES),
        };
        let text = err.to_string();
        assert!(text.starts_with("permission denied on /sys/kernel/tracing/user_events_data"));
        assert!(text.contains("chgrp tracers T T/user_events_data"));
        assert!(text.contains("chmod g+x T"));
        assert!(text.contains("chmod g+rw T/user_events_data"));
        let busy = Error::from_delete("x", os(libc::EBUSY)).to_string();
        assert!(busy.contains("EBUSY") && busy.contains("unregister"));
        assert!(!busy.contains("16"), "no bare errno numbers: {busy}");
    }

    #[test]
    fn event_name_stops_at_space_or_flags() {
        assert_eq!(event_name("abc u32 x"), "abc");
        assert_eq!(event_name("abc:flag u32 x"), "abc");
        assert_eq!(event_name("abc"), "abc");
    }
}
