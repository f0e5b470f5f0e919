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

/// Whether the last run panicked, so a panic every interval is logged once, not every time.
#[derive(Debug, Default)]
pub(crate) struct PanicState(AtomicBool);

impl PanicState {
    /// Notes a panic; true when the run before did not panic (log it).
    pub(crate) fn panicked(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }

    /// Notes a run without a panic; true when the run before panicked (log the recovery).
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
        let state = PanicState::default();
        assert!(!state.ran_clean());
        assert!(state.panicked());
        assert!(!state.panicked());
        assert!(state.ran_clean());
        assert!(!state.ran_clean());
        assert!(state.panicked());
    }
}
