//! The system calls, on Linux. Every `unsafe` call into the kernel that the safe layers use
//! is here, each with the reason it is sound.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::mem::offset_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
#[cfg(not(target_has_atomic = "64"))]
use std::sync::atomic::AtomicU32;
#[cfg(target_has_atomic = "64")]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::abi::{user_reg, user_unreg, DIAG_IOCSDEL, DIAG_IOCSREG, DIAG_IOCSUNREG};
use crate::perf::abi::{
    perf_event_attr, perf_event_mmap_page, PERF_EVENT_IOC_SET_OUTPUT, PERF_FLAG_FD_CLOEXEC,
};

/// `ioctl(fd, DIAG_IOCSREG, reg)`; on success the kernel has filled `reg.write_index`.
///
/// # Safety
/// `reg.enable_addr` must be the address of a 4-byte aligned `AtomicU32` (or an 8-byte aligned
/// `AtomicU64` with `enable_size == 8`) that stays allocated until the enabler is removed with
/// [`unregister`] or the process exits or execs: the kernel sets and clears bits in it at any
/// time. `reg.name_args` must point to a NUL-terminated string.
pub(crate) unsafe fn register(file: &File, reg: &mut user_reg) -> io::Result<()> {
    // SAFETY: `reg` is a valid, exclusive `user_reg` that the kernel reads and writes
    // (`write_index`); the two addresses in it are valid as the caller promises, and the
    // kernel checks them itself (EFAULT) before using them.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            DIAG_IOCSREG as libc::Ioctl,
            reg as *mut user_reg,
        )
    };
    result(rc)
}

/// `ioctl(fd, DIAG_IOCSUNREG, unreg)`: the kernel clears the bit and stops writing the word.
pub(crate) fn unregister(file: &File, unreg: &user_unreg) -> io::Result<()> {
    // SAFETY: the kernel only reads the 16-byte `user_unreg` we borrow; the address inside is
    // compared with registered enablers, never dereferenced unless it matches one.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            DIAG_IOCSUNREG as libc::Ioctl,
            unreg as *const user_unreg,
        )
    };
    result(rc)
}

/// `ioctl(fd, DIAG_IOCSDEL, name)`.
pub(crate) fn delete(file: &File, name: &CStr) -> io::Result<()> {
    // SAFETY: the kernel copies at most 512 bytes of the NUL-terminated string we borrow.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), DIAG_IOCSDEL as libc::Ioctl, name.as_ptr()) };
    result(rc)
}

/// Sets `FD_CLOEXEC` on `fd` unless it is set; returns whether it changed the flags.
pub(crate) fn set_close_on_exec(fd: RawFd) -> io::Result<bool> {
    // SAFETY: F_GETFD only reads the descriptor flags; a descriptor that is not open gives
    // EBADF, no memory is touched.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::FD_CLOEXEC != 0 {
        return Ok(false);
    }
    // SAFETY: F_SETFD only changes the descriptor flags (close-on-exec), no memory.
    result(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    Ok(true)
}

fn result(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The size of a memory page.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock the perf sessions time samples with).
pub(crate) fn monotonic_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the kernel (or vDSO) to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    if rc != 0 {
        // CLOCK_MONOTONIC always exists on Linux. Were it missing, "the end of time" makes
        // `PerfSession::drain` hold no sample back.
        return u64::MAX;
    }
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// One `perf_event_open` fd and its mapped ring buffer.
pub(crate) struct PerfRing {
    fd: OwnedFd,
    base: NonNull<u8>,
    map_len: usize,
    data_offset: usize,
    data_size: usize,
}

// SAFETY: the mapping is owned by this value alone (unmapped on drop) and only touched
// through `&self`/`&mut self` methods; moving it to another thread is fine.
unsafe impl Send for PerfRing {}

const DATA_HEAD: usize = offset_of!(perf_event_mmap_page, data_head);
const DATA_TAIL: usize = offset_of!(perf_event_mmap_page, data_tail);
const DATA_OFFSET: usize = offset_of!(perf_event_mmap_page, data_offset);
const DATA_SIZE: usize = offset_of!(perf_event_mmap_page, data_size);

impl PerfRing {
    /// `perf_event_open(attr, pid = -1, cpu)` then `mmap` of 1 + `data_pages` pages,
    /// read-write so that the kernel honours our `data_tail` (no overwriting).
    pub(crate) fn open(
        attr: &perf_event_attr,
        cpu: u32,
        data_pages: usize,
    ) -> io::Result<PerfRing> {
        let fd = perf_event_open(attr, cpu)?;
        let page = page_size();
        let map_len = data_pages
            .checked_add(1)
            .and_then(|pages| pages.checked_mul(page))
            .ok_or(io::ErrorKind::InvalidInput)?;
        // SAFETY: a fresh shared mapping of the perf fd; the kernel validates the length.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(io::ErrorKind::InvalidData)?;
        let mut ring = PerfRing {
            fd,
            base,
            map_len,
            data_offset: page,
            data_size: map_len - page,
        };
        // Kernels since 4.1 publish where the data area is; older ones leave zeros.
        let (offset, size) = (
            ring.read_header_u64(DATA_OFFSET),
            ring.read_header_u64(DATA_SIZE),
        );
        if offset != 0 && size != 0 {
            let offset = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidData)?;
            let size = usize::try_from(size).map_err(|_| io::ErrorKind::InvalidData)?;
            if offset.checked_add(size).is_none_or(|end| end > map_len) {
                return Err(io::ErrorKind::InvalidData.into());
            }
            ring.data_offset = offset;
            ring.data_size = size;
        }
        Ok(ring)
    }

    /// Opens `attr` on `cpu` with its samples written to this ring
    /// (`PERF_EVENT_IOC_SET_OUTPUT`): several tracepoints, one ring per CPU.
    pub(crate) fn redirect(&self, attr: &perf_event_attr, cpu: u32) -> io::Result<RedirectedEvent> {
        let fd = perf_event_open(attr, cpu)?;
        // SAFETY: both arguments are perf event fds we own and keep open; the ioctl takes the
        // target fd as a plain integer.
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                PERF_EVENT_IOC_SET_OUTPUT as libc::Ioctl,
                self.fd.as_raw_fd(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RedirectedEvent { _fd: fd })
    }

    /// The 64-bit header field at `offset`, for single aligned loads and stores.
    #[cfg(target_has_atomic = "64")]
    fn header_atomic(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset + 8 <= self.data_offset && offset % 8 == 0);
        // SAFETY: `offset` is one of the 8-byte aligned header fields inside the first page of
        // our live mapping (page-aligned base), and the kernel only accesses these fields with
        // single aligned 64-bit loads and stores.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast::<u64>()) }
    }

    /// The low 32 bits of the 64-bit header field at `offset`, on targets without 64-bit
    /// atomics (32-bit powerpc, mips, sparc). Enough for `data_head`/`data_tail`: the reader
    /// only needs positions modulo 2^32 (see `perf::head_after`), and the kernel masks the
    /// tail with the ring size.
    #[cfg(not(target_has_atomic = "64"))]
    fn header_atomic(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset + 8 <= self.data_offset && offset % 8 == 0);
        let low_half = if cfg!(target_endian = "big") { 4 } else { 0 };
        // SAFETY: `offset + low_half` is a 4-byte aligned half of a header field inside the
        // first page of our live mapping; the kernel writes these fields whole, so the half
        // read or written here is never torn.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset + low_half).cast::<u32>()) }
    }

    fn read_header_u64(&self, offset: usize) -> u64 {
        // `u64::from` is the identity with 64-bit atomics and widens the low half without.
        #[allow(clippy::useless_conversion)]
        u64::from(self.header_atomic(offset).load(Ordering::Acquire))
    }

    /// `data_head`, with acquire ordering: every record before it is fully written. Only the
    /// low 32 bits are meaningful on 32-bit kernels and on targets without 64-bit atomics.
    pub(crate) fn load_head(&self) -> u64 {
        self.read_header_u64(DATA_HEAD)
    }

    /// `data_tail`, with release ordering: our reads of the records before it are done, so
    /// the kernel may reuse that space.
    pub(crate) fn store_tail(&self, tail: u64) {
        // Without 64-bit atomics only the low half is written; the kernel masks the tail with
        // the ring size, so the high half does not matter.
        #[cfg(not(target_has_atomic = "64"))]
        let tail = tail as u32;
        self.header_atomic(DATA_TAIL).store(tail, Ordering::Release);
    }

    /// Size of the data area (a power of two).
    pub(crate) fn data_size(&self) -> usize {
        self.data_size
    }

    /// `len` bytes at `pos` of the data area.
    ///
    /// # Safety
    /// The range must hold published records: between the `data_tail` we last stored and a
    /// `data_head` loaded with [`PerfRing::load_head`]. The kernel does not write there until
    /// we move `data_tail` past it, so the bytes do not change while borrowed.
    pub(crate) unsafe fn data(&self, pos: usize, len: usize) -> &[u8] {
        assert!(pos
            .checked_add(len)
            .is_some_and(|end| end <= self.data_size));
        // SAFETY: the range lies inside our live mapping (checked above) and is not written
        // concurrently, as the caller promises.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(self.data_offset + pos), len) }
    }
}

/// A perf event that writes into another event's ring; closed on drop.
pub(crate) struct RedirectedEvent {
    _fd: OwnedFd,
}

/// `perf_event_open(attr, pid = -1, cpu)`, close-on-exec.
fn perf_event_open(attr: &perf_event_attr, cpu: u32) -> io::Result<OwnedFd> {
    let cpu = libc::c_int::try_from(cpu).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: perf_event_open reads `attr.size` bytes of the attr we borrow; the other
    // arguments are plain integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr as *const perf_event_attr,
            -1 as libc::pid_t,
            cpu,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let raw = RawFd::try_from(rc).map_err(|_| io::ErrorKind::InvalidData)?;
    // SAFETY: the syscall returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

impl Drop for PerfRing {
    fn drop(&mut self) {
        // SAFETY: `base`/`map_len` describe the mapping created in `open`, unmapped only here.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.map_len);
        }
    }
}

/// `poll(2)` over every ring of a session.
pub(crate) struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    pub(crate) fn new<'a>(rings: impl IntoIterator<Item = &'a PerfRing>) -> PollSet {
        let fds = rings
            .into_iter()
            .map(|ring| libc::pollfd {
                fd: ring.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        PollSet { fds }
    }

    /// Waits until a ring has data (`true`), the timeout passes or a signal arrives (`false`:
    /// returning on a signal lets the caller look at flags its handlers set, e.g. Ctrl-C).
    pub(crate) fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a valid array of `len` pollfd structures the kernel may update.
        let rc = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                millis,
            )
        };
        if rc >= 0 {
            let ready = self
                .fds
                .iter()
                .any(|fd| fd.revents & (libc::POLLIN | libc::POLLHUP) != 0);
            return Ok(rc > 0 && ready);
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        Err(err)
    }
}
