//! The seam where tests replace the kernel's answer to a user_events ioctl (feature
//! `testing`, see `testing::ScriptedIoctls`). Without the feature every call goes
//! straight to the kernel.

use std::io;

/// Runs the `DIAG_IOCSREG` ioctl `real` (which returns the write index), unless a script of
/// this thread answers instead.
#[inline]
pub(crate) fn register(real: impl FnOnce() -> io::Result<u32>) -> io::Result<u32> {
    #[cfg(feature = "testing")]
    if let Some(answer) = scripted::next(|script| {
        script.calls.register += 1;
        script.register.pop_front()
    }) {
        return answer.map_err(io::Error::from_raw_os_error);
    }
    real()
}

/// Runs the `DIAG_IOCSUNREG` ioctl `real`, unless a script of this thread answers instead.
#[inline]
pub(crate) fn unregister(real: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    #[cfg(feature = "testing")]
    if let Some(answer) = scripted::next(|script| {
        script.calls.unregister += 1;
        script.unregister.pop_front()
    }) {
        return answer.map_err(io::Error::from_raw_os_error);
    }
    real()
}

#[cfg(feature = "testing")]
pub use scripted::{IoctlCalls, ScriptedIoctls};

#[cfg(feature = "testing")]
mod scripted {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::marker::PhantomData;

    /// How many ioctls of each kind the calling thread made while a script was active
    /// (answered by the script or passed on to the kernel).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct IoctlCalls {
        /// `DIAG_IOCSREG` calls.
        pub register: usize,
        /// `DIAG_IOCSUNREG` calls.
        pub unregister: usize,
    }

    #[derive(Default)]
    pub(super) struct Script {
        pub(super) register: VecDeque<Result<u32, i32>>,
        pub(super) unregister: VecDeque<Result<(), i32>>,
        pub(super) calls: IoctlCalls,
    }

    thread_local! {
        static SCRIPT: RefCell<Option<Script>> = const { RefCell::new(None) };
    }

    /// Takes the next scripted answer of the calling thread, if a script is active and has one
    /// for this call (`take` also counts the call).
    pub(super) fn next<T>(take: impl FnOnce(&mut Script) -> Option<T>) -> Option<T> {
        SCRIPT.with(|cell| cell.borrow_mut().as_mut().and_then(take))
    }

    /// While this guard lives, the user_events ioctls of the calling thread take their
    /// answers from a script, in order per kind; a call with no scripted answer left goes to
    /// the kernel. A scripted successful registration gives an `Event` the kernel knows
    /// nothing about: its enable word is never written, so nothing listens to it.
    ///
    /// ```
    /// use user_events_sys::testing::ScriptedIoctls;
    ///
    /// let script = ScriptedIoctls::start();
    /// script.register_fails(25); // ENOTTY on Linux
    /// // ... a registration on this thread now fails with ENOTTY ...
    /// assert_eq!(script.calls().register, 0);
    /// ```
    pub struct ScriptedIoctls {
        /// The script belongs to the thread that started it.
        _not_send: PhantomData<*const ()>,
    }

    impl ScriptedIoctls {
        /// Starts an empty script on the calling thread (replacing any earlier one).
        pub fn start() -> ScriptedIoctls {
            SCRIPT.with(|cell| *cell.borrow_mut() = Some(Script::default()));
            ScriptedIoctls {
                _not_send: PhantomData,
            }
        }

        /// The next registration succeeds with `write_index`, without the kernel.
        pub fn register_ok(&self, write_index: u32) -> &Self {
            self.edit(|s| s.register.push_back(Ok(write_index)))
        }

        /// The next registration fails with `errno`, as if the kernel said so.
        pub fn register_fails(&self, errno: i32) -> &Self {
            self.edit(|s| s.register.push_back(Err(errno)))
        }

        /// The next unregistration succeeds, without the kernel.
        pub fn unregister_ok(&self) -> &Self {
            self.edit(|s| s.unregister.push_back(Ok(())))
        }

        /// The next unregistration fails with `errno`, as if the kernel said so.
        pub fn unregister_fails(&self, errno: i32) -> &Self {
            self.edit(|s| s.unregister.push_back(Err(errno)))
        }

        /// The calls made so far under this script.
        pub fn calls(&self) -> IoctlCalls {
            SCRIPT.with(|cell| cell.borrow().as_ref().map(|s| s.calls).unwrap_or_default())
        }

        fn edit(&self, f: impl FnOnce(&mut Script)) -> &Self {
            SCRIPT.with(|cell| {
                if let Some(script) = cell.borrow_mut().as_mut() {
                    f(script);
                }
            });
            self
        }
    }

    impl Drop for ScriptedIoctls {
        fn drop(&mut self) {
            let _ = SCRIPT.try_with(|cell| cell.borrow_mut().take());
        }
    }
}
