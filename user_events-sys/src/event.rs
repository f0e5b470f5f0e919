//! Registering events, their enable words, writing and unregistering.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use crate::abi::{
    user_reg, user_unreg, MAX_EVENT_DESC, USER_EVENT_REG_MULTI_FORMAT, USER_EVENT_REG_PERSIST,
};
use crate::error::{event_name, Errno, Error, Result};
use crate::hooks;
use crate::os;
use crate::tracefs::Tracefs;

/// Most payload slices one [`Event::write`] takes (the iovec array lives on the stack).
pub const MAX_PAYLOAD_SLICES: usize = 16;

/// An open `user_events_data` file. Registrations and writes go through it; share it between
/// events as `Arc<DataFile>`.
#[derive(Debug)]
pub struct DataFile {
    file: File,
    path: PathBuf,
}

/// How to register an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegisterOptions {
    /// The bit of the event's enable word the kernel flips (0..=31).
    pub enable_bit: u8,
    /// Keep the event after its last reference goes (`USER_EVENT_REG_PERSIST`, Linux 6.7+,
    /// needs `CAP_PERFMON`). Dropped silently on kernels that do not know the flag.
    pub persist: bool,
    /// Allow other formats under the same name (`USER_EVENT_REG_MULTI_FORMAT`, Linux 6.9+):
    /// the tracepoint is then `user_events_multi/<name>.<hex id>`. Dropped silently on kernels
    /// that do not know the flag.
    pub multi_format: bool,
}

impl RegisterOptions {
    fn flags(&self) -> u16 {
        let mut flags = 0;
        if self.persist {
            flags |= USER_EVENT_REG_PERSIST;
        }
        if self.multi_format {
            flags |= USER_EVENT_REG_MULTI_FORMAT;
        }
        flags
    }
}

impl DataFile {
    /// Opens `user_events_data` under `tracefs` for reading and writing.
    pub fn open(tracefs: &Tracefs) -> Result<Arc<DataFile>> {
        if !cfg!(target_os = "linux") {
            return Err(Error::Unsupported {
                what: "user_events",
            });
        }
        let path = tracefs.data_file_path();
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => Ok(Arc::new(DataFile { file, path })),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                if tracefs.root().join("trace").exists() {
                    Err(Error::UserEventsUnavailable { path })
                } else {
                    Err(Error::TracefsNotMounted)
                }
            }
            Err(err) => Err(Error::from_open(path, err)),
        }
    }

    /// The path that was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers `name_args` (`name type field;type field...`) and returns the event, whose
    /// enable word the kernel updates from now on. Registering the same name and fields again
    /// (from any process) gives the same tracepoint.
    ///
    /// Flags the kernel does not know (`EINVAL`) are dropped and the registration retried:
    /// first without `multi_format` (added in 6.9), then without any flag. See
    /// [`Event::persist`] and [`Event::multi_format`] for what was applied.
    pub fn register(self: &Arc<Self>, name_args: &str, options: RegisterOptions) -> Result<Event> {
        self.register_flags(name_args, options, |attempt| {
            register_with_fallback(options.flags(), attempt)
        })
    }

    /// Registers with exactly `flags`, without dropping unknown ones.
    #[cfg(feature = "kernel-tests")]
    pub(crate) fn register_exact(
        self: &Arc<Self>,
        name_args: &str,
        options: RegisterOptions,
        flags: u16,
    ) -> Result<Event> {
        self.register_flags(name_args, options, |attempt| {
            attempt(flags).map(|index| (index, flags))
        })
    }

    /// Registers through `strategy`, which calls the ioctl (the closure it gets) with the
    /// flags it chooses and returns the write index and the flags that worked.
    fn register_flags(
        self: &Arc<Self>,
        name_args: &str,
        options: RegisterOptions,
        strategy: impl FnOnce(&mut dyn FnMut(u16) -> io::Result<u32>) -> io::Result<(u32, u16)>,
    ) -> Result<Event> {
        if options.enable_bit >= 32 {
            return Err(Error::InvalidEnableBit {
                bit: options.enable_bit,
            });
        }
        let c_name_args = kernel_string(name_args)?;
        let enable_word = Box::new(AtomicU32::new(0));
        let enable_addr = enable_word.as_ptr() as usize as u64;
        let mut attempt = |flags| {
            let mut reg = user_reg {
                size: size_of::<user_reg>() as u32,
                enable_bit: options.enable_bit,
                enable_size: 4,
                flags,
                enable_addr,
                name_args: c_name_args.as_ptr() as usize as u64,
                write_index: 0,
            };
            hooks::register(|| {
                // SAFETY: `enable_addr` is the heap address of `enable_word`, a 4-byte aligned
                // AtomicU32 that the returned Event owns and frees only after the enabler is
                // removed (it leaks it otherwise); on failure the kernel keeps no enabler, so
                // the word may be freed. `name_args` points to a live NUL-terminated CString.
                unsafe { os::register(&self.file, &mut reg) }?;
                Ok(reg.write_index)
            })
        };
        let (write_index, flags) =
            strategy(&mut attempt).map_err(|err| Error::from_register(name_args, err))?;
        Ok(Event {
            data: Arc::clone(self),
            enable_word: ManuallyDrop::new(enable_word),
            enable_bit: options.enable_bit,
            write_index,
            flags,
            registered: AtomicBool::new(true),
            name: event_name(name_args).into(),
        })
    }

    /// Deletes the event `name` (`DIAG_IOCSDEL`). Fails with [`Error::EventBusy`] while any
    /// enabler, open `user_events_data` registration or listener still uses it. Use a
    /// `DataFile` that did not register the event: its registrations count as uses until it
    /// is closed.
    pub fn delete(&self, name: &str) -> Result<()> {
        let c_name = kernel_string(name)?;
        os::delete(&self.file, &c_name).map_err(|err| Error::from_delete(name, err))
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

/// `s` as a C string the kernel accepts: no NUL inside, at most `MAX_EVENT_DESC - 1` bytes.
fn kernel_string(s: &str) -> Result<CString> {
    if s.len() >= MAX_EVENT_DESC {
        return Err(Error::NameTooLong {
            len: s.len(),
            max: MAX_EVENT_DESC - 1,
        });
    }
    CString::new(s).map_err(|_| Error::InvalidNameArgs {
        name_args: s.replace('\0', "\\0"),
        source: None,
    })
}

/// Calls `attempt` with `flags`, and again with fewer flags while the kernel answers
/// `EINVAL` (unknown flag): without `USER_EVENT_REG_MULTI_FORMAT`, then without any.
/// Returns the write index and the flags that worked.
fn register_with_fallback(
    flags: u16,
    mut attempt: impl FnMut(u16) -> io::Result<u32>,
) -> io::Result<(u32, u16)> {
    let candidates = [flags, flags & !USER_EVENT_REG_MULTI_FORMAT, 0];
    let mut last_tried = None;
    let mut result = Err(io::ErrorKind::InvalidInput.into());
    for candidate in candidates {
        if last_tried == Some(candidate) {
            continue;
        }
        last_tried = Some(candidate);
        result = attempt(candidate).map(|index| (index, candidate));
        match &result {
            Err(err) if Errno::of(err) == Errno::Invalid => continue,
            _ => break,
        }
    }
    result
}

/// A registered event. The kernel keeps bit [`Event::enable_bit`] of a heap word owned by
/// this value up to date: set while any listener (ftrace, perf, ...) is attached.
/// Unregisters on drop.
#[derive(Debug)]
pub struct Event {
    data: Arc<DataFile>,
    /// The kernel writes this word while the enabler exists; its heap address never changes
    /// while the Event lives. Freed in `Drop` only after a successful unregister.
    enable_word: ManuallyDrop<Box<AtomicU32>>,
    enable_bit: u8,
    write_index: u32,
    flags: u16,
    /// Cleared once by the first successful unregister; an atomic so that `unregister` takes
    /// `&self` and export threads can keep calling `enabled` without a lock around the event.
    registered: AtomicBool,
    name: Box<str>,
}

const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Event>();
    shareable::<DataFile>();
};

impl Event {
    /// Whether a listener is attached: one relaxed load of the enable word.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enable_word.load(Ordering::Relaxed) & (1 << self.enable_bit) != 0
    }

    /// The index the kernel gave this event on its `user_events_data` file.
    pub fn write_index(&self) -> u32 {
        self.write_index
    }

    /// The enable bit the kernel flips.
    pub fn enable_bit(&self) -> u8 {
        self.enable_bit
    }

    /// The event name (without fields).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the registration carries `USER_EVENT_REG_PERSIST`.
    pub fn persist(&self) -> bool {
        self.flags & USER_EVENT_REG_PERSIST != 0
    }

    /// Whether the registration carries `USER_EVENT_REG_MULTI_FORMAT`.
    pub fn multi_format(&self) -> bool {
        self.flags & USER_EVENT_REG_MULTI_FORMAT != 0
    }

    /// Whether this handle is still registered.
    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::Acquire)
    }

    /// The file this event was registered on.
    pub fn data_file(&self) -> &Arc<DataFile> {
        &self.data
    }

    /// Writes one event: `writev` with the write index in front of `payload`. Returns the
    /// payload bytes written. Uses no heap: at most [`MAX_PAYLOAD_SLICES`] slices.
    ///
    /// A success does not mean every listener got the event: payloads above
    /// [`crate::MAX_PAYLOAD_ALL_LISTENERS`] are dropped by some listeners without an error.
    pub fn write(&self, payload: &[IoSlice<'_>]) -> Result<usize> {
        if !self.is_registered() {
            return Err(Error::Unregistered);
        }
        write_indexed(&self.data, self.write_index, payload)
    }

    /// Removes the enabler (`DIAG_IOCSUNREG`): the kernel clears the bit and stops updating
    /// the word. Doing it again does nothing. After [`Error::EnablerGone`] the event is
    /// unregistered too (the kernel holds no enabler); after any other error it stays
    /// registered and a later call tries again. Takes `&self` so a shared event can be
    /// unregistered while other threads check [`Event::enabled`]; of several concurrent calls
    /// one does the ioctl, the others return `Ok` at once.
    pub fn unregister(&self) -> Result<()> {
        if self
            .registered
            .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(());
        }
        let unreg = user_unreg {
            size: size_of::<user_unreg>() as u32,
            disable_bit: self.enable_bit,
            reserved: 0,
            reserved2: 0,
            disable_addr: self.enable_word_addr(),
        };
        hooks::unregister(|| os::unregister(self.data.file(), &unreg)).map_err(|err| {
            let error = Error::from_unregister(&self.name, err);
            if !matches!(error, Error::EnablerGone { .. }) {
                // The kernel may still hold the enabler: let a later call retry.
                self.registered.store(true, Ordering::Release);
            }
            error
        })
    }

    pub(crate) fn enable_word_addr(&self) -> u64 {
        self.enable_word.as_ptr() as usize as u64
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        let _ = self.unregister();
        if self.is_registered() {
            // The kernel may still write into the word: leak it rather than free it.
            return;
        }
        // SAFETY: no enabler refers to the word any more (unregistered just now or before),
        // and this is the only place that drops it, once.
        unsafe { ManuallyDrop::drop(&mut self.enable_word) };
    }
}

/// `writev(index, payload...)` on `data`. Shared by [`Event::write`] and the test helpers.
pub(crate) fn write_indexed(data: &DataFile, index: u32, payload: &[IoSlice<'_>]) -> Result<usize> {
    let index_bytes = index.to_ne_bytes();
    let mut iovecs = [IoSlice::new(&[]); MAX_PAYLOAD_SLICES + 1];
    let count = build_iovecs(&index_bytes, payload, &mut iovecs)?;
    match data.file().write_vectored(&iovecs[..count]) {
        Ok(written) => Ok(written.saturating_sub(index_bytes.len())),
        Err(err) => Err(Error::from_write(index, err)),
    }
}

/// Puts `index` then `payload` into `out`; returns how many entries are used.
fn build_iovecs<'a>(
    index: &'a [u8; 4],
    payload: &[IoSlice<'a>],
    out: &mut [IoSlice<'a>; MAX_PAYLOAD_SLICES + 1],
) -> Result<usize> {
    if payload.len() > MAX_PAYLOAD_SLICES {
        return Err(Error::TooManySlices {
            given: payload.len(),
            max: MAX_PAYLOAD_SLICES,
        });
    }
    out[0] = IoSlice::new(index);
    out[1..=payload.len()].copy_from_slice(payload);
    Ok(payload.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iovecs_put_the_index_first() {
        let index = 7u32.to_ne_bytes();
        let (a, b) = (b"hello".as_slice(), b"world!".as_slice());
        let mut out = [IoSlice::new(&[]); MAX_PAYLOAD_SLICES + 1];
        let count = build_iovecs(&index, &[IoSlice::new(a), IoSlice::new(b)], &mut out).unwrap();
        assert_eq!(count, 3);
        assert_eq!(&*out[0], &index);
        assert_eq!(&*out[1], a);
        assert_eq!(&*out[2], b);
    }

    #[test]
    fn iovecs_take_an_empty_payload_and_the_maximum() {
        let index = 0u32.to_ne_bytes();
        let mut out = [IoSlice::new(&[]); MAX_PAYLOAD_SLICES + 1];
        assert_eq!(build_iovecs(&index, &[], &mut out).unwrap(), 1);
        let bytes = [1u8; MAX_PAYLOAD_SLICES];
        let slices: Vec<IoSlice<'_>> = bytes.chunks(1).map(IoSlice::new).collect();
        assert_eq!(
            build_iovecs(&index, &slices, &mut out).unwrap(),
            MAX_PAYLOAD_SLICES + 1
        );
    }

    #[test]
    fn too_many_slices_is_an_error() {
        let index = 0u32.to_ne_bytes();
        let bytes = [1u8; MAX_PAYLOAD_SLICES + 1];
        let slices: Vec<IoSlice<'_>> = bytes.chunks(1).map(IoSlice::new).collect();
        let mut out = [IoSlice::new(&[]); MAX_PAYLOAD_SLICES + 1];
        assert!(matches!(
            build_iovecs(&index, &slices, &mut out),
            Err(Error::TooManySlices { given: 17, max: 16 })
        ));
    }

    #[cfg(target_os = "linux")]
    fn einval() -> io::Error {
        io::Error::from_raw_os_error(libc::EINVAL)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn unknown_flags_are_dropped_newest_first() {
        let all = USER_EVENT_REG_PERSIST | USER_EVENT_REG_MULTI_FORMAT;
        // A 6.7/6.8 kernel: knows PERSIST, not MULTI_FORMAT.
        let mut tried = Vec::new();
        let result = register_with_fallback(all, |flags| {
            tried.push(flags);
            if flags & USER_EVENT_REG_MULTI_FORMAT != 0 {
                Err(einval())
            } else {
                Ok(3)
            }
        });
        assert_eq!(result.unwrap(), (3, USER_EVENT_REG_PERSIST));
        assert_eq!(tried, vec![all, USER_EVENT_REG_PERSIST]);

        // A 6.4 kernel: no flags at all.
        let mut tried = Vec::new();
        let result = register_with_fallback(all, |flags| {
            tried.push(flags);
            if flags != 0 {
                Err(einval())
            } else {
                Ok(0)
            }
        });
        assert_eq!(result.unwrap(), (0, 0));
        assert_eq!(tried, vec![all, USER_EVENT_REG_PERSIST, 0]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn fallback_stops_at_other_errors_and_does_not_repeat() {
        let mut tried = Vec::new();
        let result = register_with_fallback(0, |flags| {
            tried.push(flags);
            Err(einval())
        });
        assert_eq!(Errno::of(&result.unwrap_err()), Errno::Invalid);
        assert_eq!(tried, vec![0], "no flags: one attempt");

        let mut tried = Vec::new();
        let result = register_with_fallback(USER_EVENT_REG_PERSIST, |flags| {
            tried.push(flags);
            Err(io::Error::from_raw_os_error(libc::EPERM))
        });
        assert!(result.is_err());
        assert_eq!(tried, vec![USER_EVENT_REG_PERSIST], "EPERM is not retried");
    }

    #[test]
    fn names_are_checked_before_the_kernel_sees_them() {
        let long = "x".repeat(MAX_EVENT_DESC);
        assert!(matches!(
            kernel_string(&long),
            Err(Error::NameTooLong { len: 512, max: 511 })
        ));
        assert!(kernel_string(&long[..511]).is_ok());
        assert!(matches!(
            kernel_string("a\0b"),
            Err(Error::InvalidNameArgs { source: None, .. })
        ));
    }

    #[test]
    fn options_map_to_flags() {
        assert_eq!(RegisterOptions::default().flags(), 0);
        let both = RegisterOptions {
            enable_bit: 3,
            persist: true,
            multi_format: true,
        };
        assert_eq!(both.flags(), 3);
    }
}
