//! Where events go: the kernel (`user_events`), your own [`Sink`], or (feature `testing`)
//! the test doubles `CaptureSink`, `DiscardSink` and `NoListenerSink`.
//!
//! The exporter frames each event itself and hands the sink the payload as parts (the
//! 16 fixed bytes, then the encoder's buffer, not copied), so tests see the exact bytes the
//! kernel would get.

#[cfg(any(test, feature = "testing"))]
use crate::stats::AtomicU64;
use std::io::IoSlice;
use std::path::Path;
#[cfg(any(test, feature = "testing"))]
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(any(test, feature = "testing"))]
use std::sync::{Arc, Mutex};

use user_events_sys::{DataFile, Event, RegisterOptions, Tracefs};

use crate::error::{Unavailable, UnavailableKind};

/// Receives events from a [`crate::MetricsExporter`].
pub trait Sink: Send + Sync + 'static {
    /// True when someone listens; called before encoding and between events, so it must be
    /// cheap (the `user_events` sink does one relaxed load). A panic here is caught, counted
    /// in [`crate::ExporterStats::panics`] and taken as `false`.
    fn enabled(&self) -> bool;

    /// Writes one event whose payload is the concatenation of `parts`.
    ///
    /// Return [`SinkError::NoListener`] when the last listener left just before the write:
    /// the exporter then stops the export without counting an error.
    fn write(&self, parts: &[IoSlice<'_>]) -> Result<(), SinkError>;

    /// Stops writing and releases kernel resources. Called once by the exporter's shutdown.
    fn close(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A failed event write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Nobody listens any more (the kernel said `EBADF`).
    #[error("no listener is attached any more")]
    NoListener,
    /// The kernel refused the write or the unregistration.
    #[error(transparent)]
    UserEvents(user_events_sys::Error),
    /// A custom sink's failure.
    #[error("{0}")]
    Custom(String),
}

/// Writes events to a registered `user_events` tracepoint. No lock: `Event::enabled` is one
/// relaxed load and `Event::unregister` takes `&self`, so the disabled path stays a load.
pub struct UserEventsSink {
    event: Event,
}

impl UserEventsSink {
    /// Opens `user_events_data` under the tracefs at `tracefs_root` (discovered when `None`)
    /// and registers `registration` (`"<name> <fields>"`).
    pub fn register(tracefs_root: Option<&Path>, registration: &str) -> Result<Self, Unavailable> {
        let tracefs = match tracefs_root {
            Some(root) => Tracefs::at(root),
            None => Tracefs::discover().map_err(classify)?,
        };
        let data = DataFile::open(&tracefs).map_err(classify)?;
        let event = data
            .register(registration, RegisterOptions::default())
            .map_err(classify)?;
        Ok(Self { event })
    }
}

impl Sink for UserEventsSink {
    #[inline]
    fn enabled(&self) -> bool {
        // The kernel clears the bit on unregister, so this is also false after `close`.
        self.event.enabled()
    }

    fn write(&self, parts: &[IoSlice<'_>]) -> Result<(), SinkError> {
        match self.event.write(parts) {
            Ok(_) => Ok(()),
            Err(e) if is_no_listener(&e) => Err(SinkError::NoListener),
            Err(e) => Err(SinkError::UserEvents(e)),
        }
    }

    fn close(&self) -> Result<(), SinkError> {
        // Idempotent: unregistering twice does nothing.
        match self.event.unregister() {
            // The kernel holds no enabler any more: the event is unregistered, as asked.
            Ok(()) | Err(user_events_sys::Error::EnablerGone { .. }) => Ok(()),
            Err(e) => Err(SinkError::UserEvents(e)),
        }
    }
}

/// Maps a `user_events-sys` error to what the user can do about it.
fn classify(error: user_events_sys::Error) -> Unavailable {
    let kind = unavailable_kind(&error);
    Unavailable::with_remedy_in_detail(kind, error.to_string())
}

fn unavailable_kind(error: &user_events_sys::Error) -> UnavailableKind {
    use user_events_sys::Error as E;
    match error {
        E::TracefsNotMounted => UnavailableKind::NoTracefs,
        E::UserEventsUnavailable { .. } | E::Unsupported { .. } => UnavailableKind::NoUserEvents,
        E::PermissionDenied { .. } | E::NeedsCapPerfmon { .. } => UnavailableKind::PermissionDenied,
        E::FormatMismatch { .. } => UnavailableKind::FormatConflict,
        E::NoCompatIoctl { .. } => UnavailableKind::NoCompatIoctl,
        _ => UnavailableKind::Other,
    }
}

fn is_no_listener(error: &user_events_sys::Error) -> bool {
    matches!(error, user_events_sys::Error::NoListener { .. })
}

#[cfg(any(test, feature = "testing"))]
/// Keeps every event in memory, for tests (feature `testing`): a clonable handle; clones share the events.
///
/// Listening is on at first; [`Self::set_enabled`] switches it, [`Self::disable_after`] makes
/// the listener leave after a number of writes, and [`Self::fail_write`] makes one write fail.
#[derive(Clone, Default)]
pub struct CaptureSink {
    shared: Arc<CaptureShared>,
}

#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
struct CaptureShared {
    disabled: AtomicBool,
    events: Mutex<Vec<Vec<u8>>>,
    enabled_checks: AtomicU64,
    /// Writes left before the listener leaves (0 = never).
    disable_after: AtomicUsize,
    /// 1-based write number that fails (0 = none).
    fail_write: AtomicUsize,
    writes: AtomicUsize,
    closed: AtomicUsize,
}

#[cfg(any(test, feature = "testing"))]
impl CaptureSink {
    /// An enabled sink with no events.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches (`true`) or detaches (`false`) the pretend listener.
    pub fn set_enabled(&self, enabled: bool) {
        self.shared.disabled.store(!enabled, Ordering::Relaxed);
    }

    /// The listener detaches after `writes` more successful writes.
    pub fn disable_after(&self, writes: usize) {
        self.shared.disable_after.store(writes, Ordering::Relaxed);
    }

    /// The `nth` write from now (1-based) fails with [`SinkError::Custom`].
    pub fn fail_write(&self, nth: usize) {
        let done = self.shared.writes.load(Ordering::Relaxed);
        self.shared.fail_write.store(done + nth, Ordering::Relaxed);
    }

    /// Takes the payloads captured so far.
    pub fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.lock_events())
    }

    /// How many times `enabled` was asked.
    pub fn enabled_checks(&self) -> u64 {
        self.shared.enabled_checks.load(Ordering::Relaxed)
    }

    /// How many times `close` was called.
    pub fn close_calls(&self) -> usize {
        self.shared.closed.load(Ordering::Relaxed)
    }

    fn lock_events(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.shared.events.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(any(test, feature = "testing"))]
impl Sink for CaptureSink {
    fn enabled(&self) -> bool {
        self.shared.enabled_checks.fetch_add(1, Ordering::Relaxed);
        !self.shared.disabled.load(Ordering::Relaxed)
    }

    fn write(&self, parts: &[IoSlice<'_>]) -> Result<(), SinkError> {
        if self.shared.disabled.load(Ordering::Relaxed) {
            return Err(SinkError::NoListener);
        }
        let n = self.shared.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if self.shared.fail_write.load(Ordering::Relaxed) == n {
            return Err(SinkError::Custom(format!("write {n} refused by the test")));
        }
        let payload = parts.iter().flat_map(|p| p.iter().copied()).collect();
        self.lock_events().push(payload);
        let left = self.shared.disable_after.load(Ordering::Relaxed);
        if left > 0 {
            self.shared.disable_after.store(left - 1, Ordering::Relaxed);
            if left == 1 {
                self.set_enabled(false);
            }
        }
        Ok(())
    }

    fn close(&self) -> Result<(), SinkError> {
        self.shared.closed.fetch_add(1, Ordering::Relaxed);
        self.set_enabled(false);
        Ok(())
    }
}

#[cfg(any(test, feature = "testing"))]
/// Always listening, throws every event away: for benchmarks of the exporter alone (feature
/// `testing`).
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardSink;

#[cfg(any(test, feature = "testing"))]
impl Sink for DiscardSink {
    fn enabled(&self) -> bool {
        true
    }

    fn write(&self, parts: &[IoSlice<'_>]) -> Result<(), SinkError> {
        std::hint::black_box(parts);
        Ok(())
    }
}

#[cfg(any(test, feature = "testing"))]
/// Never listening: for measuring the disabled path (feature `testing`).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoListenerSink;

#[cfg(any(test, feature = "testing"))]
impl Sink for NoListenerSink {
    fn enabled(&self) -> bool {
        false
    }

    fn write(&self, _parts: &[IoSlice<'_>]) -> Result<(), SinkError> {
        Err(SinkError::NoListener)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enotty_kinds_follow_the_process_width() {
        use user_events_sys::Error as E;
        // ENOTTY (25 on every Linux architecture).
        let enotty = || std::io::Error::from_raw_os_error(25);
        let in_32 = E::NoCompatIoctl {
            process_bits: 32,
            source: enotty(),
        };
        assert_eq!(unavailable_kind(&in_32), UnavailableKind::NoCompatIoctl);
        let in_64 = E::NotUserEventsData { source: enotty() };
        assert_eq!(unavailable_kind(&in_64), UnavailableKind::Other);
        let text = classify(in_64).to_string();
        assert!(text.contains("not the kernel's user_events_data"), "{text}");
    }
}
