//! Stand-ins for the system calls on systems without user_events: every call fails with
//! `io::ErrorKind::Unsupported`, which the safe layers turn into `Error::Unsupported`.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::time::Duration;

use crate::abi::{user_reg, user_unreg};
use crate::perf::abi::perf_event_attr;

fn unsupported() -> io::Error {
    io::ErrorKind::Unsupported.into()
}

/// Always fails: there is no user_events here.
///
/// # Safety
/// None needed; the signature matches the Linux version.
pub(crate) unsafe fn register(_file: &File, _reg: &mut user_reg) -> io::Result<()> {
    Err(unsupported())
}

/// Always fails: there is no user_events here.
pub(crate) fn unregister(_file: &File, _unreg: &user_unreg) -> io::Result<()> {
    Err(unsupported())
}

/// Always fails: there is no user_events here.
pub(crate) fn delete(_file: &File, _name: &CStr) -> io::Result<()> {
    Err(unsupported())
}

/// Always fails: there are no user_events descriptors here.
pub(crate) fn set_close_on_exec(_fd: std::ffi::c_int) -> io::Result<bool> {
    Err(unsupported())
}

/// A common page size; nothing here maps memory.
pub(crate) fn page_size() -> usize {
    4096
}

/// No sample clock here (no perf session can be opened): 0.
pub(crate) fn monotonic_nanos() -> u64 {
    0
}

/// Uninhabited: no perf ring can be opened here.
pub(crate) enum PerfRing {}

// On Linux this module is only compiled for its unit test, which cannot call methods of an
// uninhabited type.
#[cfg_attr(target_os = "linux", allow(dead_code))]
impl PerfRing {
    pub(crate) fn open(
        _attr: &perf_event_attr,
        _cpu: u32,
        _data_pages: usize,
    ) -> io::Result<PerfRing> {
        Err(unsupported())
    }

    pub(crate) fn redirect(
        &self,
        _attr: &perf_event_attr,
        _cpu: u32,
    ) -> io::Result<RedirectedEvent> {
        match *self {}
    }

    pub(crate) fn load_head(&self) -> u64 {
        match *self {}
    }

    pub(crate) fn store_tail(&self, _tail: u64) {
        match *self {}
    }

    pub(crate) fn data_size(&self) -> usize {
        match *self {}
    }

    /// # Safety
    /// Unreachable: no value of this type exists.
    pub(crate) unsafe fn data(&self, _pos: usize, _len: usize) -> &[u8] {
        match *self {}
    }
}

/// No event writes anywhere here.
pub(crate) enum RedirectedEvent {}

/// Nothing to poll here.
pub(crate) struct PollSet;

impl PollSet {
    pub(crate) fn new<'a>(_rings: impl IntoIterator<Item = &'a PerfRing>) -> PollSet {
        PollSet
    }

    pub(crate) fn wait(&mut self, _timeout: Duration) -> io::Result<bool> {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_unsupported<T>(result: io::Result<T>) -> bool {
        matches!(result, Err(err) if err.kind() == io::ErrorKind::Unsupported)
    }

    #[test]
    fn every_call_reports_unsupported() {
        let file = File::open(std::env::current_exe().unwrap()).unwrap();
        let mut reg = user_reg::default();
        // SAFETY: the stand-in touches nothing.
        assert!(is_unsupported(unsafe { register(&file, &mut reg) }));
        assert!(is_unsupported(unregister(&file, &user_unreg::default())));
        assert!(is_unsupported(delete(&file, c"x")));
        assert!(is_unsupported(set_close_on_exec(0)));
        assert!(is_unsupported(PerfRing::open(
            &perf_event_attr::default(),
            0,
            1
        )));
        assert!(is_unsupported(PollSet::new([]).wait(Duration::ZERO)));
        assert!(page_size().is_power_of_two());
        assert_eq!(monotonic_nanos(), 0);
    }
}
