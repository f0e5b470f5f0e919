//! File descriptors on `user_events_data` that other libraries opened.

use std::ffi::c_int as RawFd;
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::os;

/// Where a process lists its open file descriptors (links to what each one is open on).
const OWN_FDS: &str = "/proc/self/fd";

/// Sets close-on-exec on every file descriptor of this process that is open on a file named
/// `user_events_data` and lacks it; returns how many it changed.
///
/// For descriptors other libraries open without `O_CLOEXEC` (the `tracepoint` crate behind
/// EventHeader does): without the flag, every program this process executes inherits a
/// descriptor it can write events with. This crate's own [`crate::DataFile`] is always opened
/// close-on-exec.
///
/// A descriptor another thread closes and reuses between the look-up and the change could
/// get the flag instead; call this right after the library opened its file, not in a loop.
pub fn close_data_files_on_exec() -> Result<usize> {
    if !cfg!(target_os = "linux") {
        return Err(Error::Unsupported {
            what: "user_events",
        });
    }
    let entries =
        fs::read_dir(OWN_FDS).map_err(|err| Error::io(format!("listing {OWN_FDS}"), err))?;
    let mut changed = 0;
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<RawFd>().ok())
        else {
            continue;
        };
        // A descriptor closed since the listing has no link any more: skip it.
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        if !is_data_file(&target) {
            continue;
        }
        match os::set_close_on_exec(fd) {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(err) => {
                return Err(Error::io(
                    format!("setting close-on-exec on fd {fd} ({})", target.display()),
                    err,
                ))
            }
        }
    }
    Ok(changed)
}

fn is_data_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name == crate::tracefs::DATA_FILE_NAME)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn close_on_exec(fd: RawFd) -> bool {
        // SAFETY: F_GETFD reads the flags of `fd`, which the test keeps open.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(flags >= 0);
        flags & libc::FD_CLOEXEC != 0
    }

    #[test]
    fn inherited_data_file_descriptors_get_close_on_exec() {
        let dir = crate::test_util::TempDir::new("cloexec");
        let path = dir.path().join("user_events_data");
        fs::write(&path, b"").unwrap();
        let file = fs::File::open(&path).unwrap();
        let other = fs::File::open(std::env::current_exe().unwrap()).unwrap();
        for fd in [file.as_raw_fd(), other.as_raw_fd()] {
            // As the `tracepoint` crate opens it: without O_CLOEXEC.
            // SAFETY: F_SETFD changes only the descriptor flags of an fd the test owns.
            assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
        }
        assert!(!close_on_exec(file.as_raw_fd()));

        assert!(close_data_files_on_exec().unwrap() >= 1);
        assert!(close_on_exec(file.as_raw_fd()));
        assert!(
            !close_on_exec(other.as_raw_fd()),
            "other files are left alone"
        );
        assert!(
            !os::set_close_on_exec(file.as_raw_fd()).unwrap(),
            "already set: nothing changed"
        );
    }

    #[test]
    fn only_files_named_user_events_data_match() {
        assert!(is_data_file(Path::new(
            "/sys/kernel/tracing/user_events_data"
        )));
        assert!(is_data_file(Path::new(
            "/sys/kernel/debug/tracing/user_events_data"
        )));
        assert!(!is_data_file(Path::new(
            "/sys/kernel/tracing/user_events_status"
        )));
        assert!(!is_data_file(Path::new("/tmp/user_events_data.bak")));
    }
}
