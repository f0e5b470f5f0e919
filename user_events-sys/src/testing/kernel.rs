//! Helpers for the kernel tests in the VM (feature `kernel-tests`): the few things those tests
//! need that take `unsafe` (fork, dropping privileges, raw registrations), kept here so the
//! test files need none.

use std::ffi::CString;
use std::io::{self, IoSlice, Write};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;

use crate::abi::{user_reg, user_unreg};
use crate::error::{Error, Result};
use crate::event::{self, DataFile, Event, RegisterOptions};
use crate::os;

/// Runs `child` in a forked copy of this process and waits for it; returns its exit code
/// (see [`Forked::wait`]).
pub fn fork_and_wait(child: impl FnOnce() -> i32) -> io::Result<i32> {
    fork(child)?.wait()
}

/// Runs `child` in a forked copy of this process, which leaves with `_exit(child())` so no
/// destructor of the parent's state runs twice (a panic exits with 101).
///
/// Meant for single-threaded test runs (`--test-threads=1`): after `fork` only this thread
/// exists in the child, and a lock another thread held stays locked there.
pub fn fork(child: impl FnOnce() -> i32) -> io::Result<Forked> {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: fork has no memory-safety preconditions; the child only runs `child` and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = panic::catch_unwind(AssertUnwindSafe(child)).unwrap_or(101);
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        // SAFETY: `_exit` ends the child at once, without running the parent's atexit
        // handlers or destructors a second time.
        unsafe { libc::_exit(code) }
    }
    Ok(Forked { pid: Some(pid) })
}

/// A forked child that has not been waited for yet (reaped on drop).
#[derive(Debug)]
pub struct Forked {
    pid: Option<libc::pid_t>,
}

impl Forked {
    /// Waits for the child: its exit code, or `128 + n` if signal `n` killed it.
    pub fn wait(mut self) -> io::Result<i32> {
        match self.pid.take() {
            Some(pid) => wait_for(pid),
            None => Ok(-1),
        }
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = wait_for(pid);
        }
    }
}

fn wait_for(pid: libc::pid_t) -> io::Result<i32> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Ok(128 + libc::WTERMSIG(status))
    } else {
        Ok(-1)
    }
}

/// Becomes `uid`/`gid` with exactly the supplementary `groups` (for a forked test child).
pub fn become_user(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let gids: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: `gids` is a valid array of `len` group ids.
    check(unsafe { libc::setgroups(gids.len(), gids.as_ptr()) })?;
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setgid(gid) })?;
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setuid(uid) })?;
    Ok(())
}

/// Moves the calling thread onto `cpu` (and keeps it there): `sched_setaffinity` with that
/// one CPU. For tests that make one thread write from several CPUs in turn.
pub fn pin_current_thread_to_cpu(cpu: u32) -> io::Result<()> {
    let cpu = usize::try_from(cpu).map_err(|_| io::ErrorKind::InvalidInput)?;
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    check(unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) })
}

/// `CAP_SYS_ADMIN`, as `<linux/capability.h>` numbers it.
pub const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_PERFMON` (Linux 5.8+), as `<linux/capability.h>` numbers it.
pub const CAP_PERFMON: u32 = 38;

/// Spawns `command` with the capabilities `caps` removed from its bounding set (see
/// [`CAP_PERFMON`]), so a root child runs without them (a root process's capabilities after
/// `exec` are its bounding set). Needs `CAP_SETPCAP` (root has it).
pub fn spawn_without_capabilities(
    command: &mut std::process::Command,
    caps: &[u32],
) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt as _;
    let caps = caps.to_vec();
    // SAFETY: the hook runs in the child between fork and exec; it only calls prctl (async-
    // signal-safe) over a vector moved in before the fork, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            for &cap in &caps {
                let cap = libc::c_ulong::from(cap);
                check(libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0))?;
            }
            Ok(())
        });
    }
    command.spawn()
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Writes `payload` with any write index (e.g. one that was never registered).
pub fn write_with_index(data: &DataFile, index: u32, payload: &[IoSlice<'_>]) -> Result<usize> {
    event::write_indexed(data, index, payload)
}

/// Registers `name_args` again with `event`'s own enable word and bit, which the kernel must
/// refuse ([`Error::EnablerInUse`]).
pub fn register_same_enabler_again(event: &Event, name_args: &str) -> Result<u32> {
    let c_name_args = CString::new(name_args).map_err(|_| Error::InvalidNameArgs {
        name_args: name_args.to_owned(),
        source: None,
    })?;
    let mut reg = user_reg {
        size: size_of::<user_reg>() as u32,
        enable_bit: event.enable_bit(),
        enable_size: 4,
        flags: 0,
        enable_addr: event.enable_word_addr(),
        name_args: c_name_args.as_ptr() as usize as u64,
        write_index: 0,
    };
    // SAFETY: the address is `event`'s live enable word. Should the kernel accept a second
    // enabler on it, `event`'s unregister (DIAG_IOCSUNREG removes every enabler with this
    // address and bit) removes it before the word is freed.
    unsafe { os::register(event.data_file().file(), &mut reg) }
        .map_err(|err| Error::from_register_same_enabler(event.enable_bit(), name_args, err))?;
    Ok(reg.write_index)
}

/// Removes `event`'s enabler with a raw `DIAG_IOCSUNREG`, without telling `event`: what
/// happens when something else in the process removed it first.
pub fn unregister_behind_its_back(event: &Event) -> Result<()> {
    let unreg = user_unreg {
        size: size_of::<user_unreg>() as u32,
        disable_bit: event.enable_bit(),
        reserved: 0,
        reserved2: 0,
        disable_addr: event.enable_word_addr(),
    };
    os::unregister(event.data_file().file(), &unreg)
        .map_err(|err| Error::io("raw DIAG_IOCSUNREG", err))
}

/// Registers with exactly `flags` (no retry without unknown flags).
pub fn register_with_exact_flags(
    data: &Arc<DataFile>,
    name_args: &str,
    enable_bit: u8,
    flags: u16,
) -> Result<Event> {
    data.register_exact(
        name_args,
        RegisterOptions {
            enable_bit,
            ..RegisterOptions::default()
        },
        flags,
    )
}

/// An event registered through Microsoft's `tracepoint` crate, for cross-checks.
pub struct ForeignTracepoint {
    state: Pin<Box<tracepoint::TracepointState>>,
}

impl ForeignTracepoint {
    /// Registers `name_args` with `tracepoint::TracepointState::register`.
    pub fn register(name_args: &str) -> Result<ForeignTracepoint> {
        let c_name_args = CString::new(name_args).map_err(|_| Error::InvalidNameArgs {
            name_args: name_args.to_owned(),
            source: None,
        })?;
        let state = Box::pin(tracepoint::TracepointState::new(0));
        // SAFETY: the state is pinned on the heap and never moved; `TracepointState`
        // unregisters itself in its `Drop`, which runs before the box frees it.
        let errno = unsafe { state.as_ref().register(&c_name_args) };
        if errno != 0 {
            return Err(Error::from_register(
                name_args,
                io::Error::from_raw_os_error(errno),
            ));
        }
        Ok(ForeignTracepoint { state })
    }

    /// The crate's view of the enable state.
    pub fn enabled(&self) -> bool {
        self.state.enabled()
    }

    /// Writes `payload` through the crate.
    pub fn write(&self, payload: &[u8]) -> Result<()> {
        let mut data = [
            tracepoint::EventDataDescriptor::zero(),
            tracepoint::EventDataDescriptor::from_bytes(payload),
        ];
        match self.state.write(&mut data) {
            0 => Ok(()),
            errno => Err(Error::from_write(0, io::Error::from_raw_os_error(errno))),
        }
    }
}
