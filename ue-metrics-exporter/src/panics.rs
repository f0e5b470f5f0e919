//! Panics below an export or a collection (a user `Sink`, the encoder, an observable
//! instrument's callback): caught, counted, and logged when the state changes.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f`; a panic becomes its message.
///
/// `AssertUnwindSafe`: callers leave nothing half-updated behind on the way out. The exporter
/// replaces its encoder after a panic, and the reader either keeps the collection it was
/// exporting (unchanged input of the export) or overwrites it with the next collection.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| message(payload.as_ref()))
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Whether the last run failed (panicked, or for the reader's collections, was refused), so a
/// failure every interval is logged once when it starts and once when it stops.
#[derive(Debug, Default)]
pub(crate) struct FailureState(AtomicBool);

impl FailureState {
    /// Notes a failure; true when the run before did not fail (log it).
    pub(crate) fn failed(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }

    /// Notes a run without failure; true when the run before failed (log the recovery).
    pub(crate) fn ran_clean(&self) -> bool {
        self.0.load(Ordering::Relaxed) && self.0.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        assert_eq!(
            catch(|| panic!("static")),
            Err::<(), _>("static".to_owned())
        );
        let n = 3;
        assert_eq!(
            catch(|| panic!("formatted {n}")),
            Err::<(), _>("formatted 3".to_owned())
        );
    }

    #[test]
    fn only_changes_are_reported() {
        let state = FailureState::default();
        assert!(!state.ran_clean());
        assert!(state.failed());
        assert!(!state.failed());
        assert!(state.ran_clean());
        assert!(!state.ran_clean());
        assert!(state.failed());
    }
}
