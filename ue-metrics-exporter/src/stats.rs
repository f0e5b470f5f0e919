//! Counters that tell what an exporter did, readable at any time without locking.

// `AtomicU64` where the target has 64-bit atomics, else the locked stand-in: the crate's one
// 64-bit counter for every target (the test sinks count with it too).
#[cfg(target_has_atomic = "64")]
pub(crate) use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

#[cfg(not(target_has_atomic = "64"))]
pub(crate) use locked::AtomicU64;

/// Live counters shared by an exporter, its clones and [`crate::UserEventsReader`].
///
/// Each counter is one relaxed atomic: cheap to bump, and a snapshot is consistent per counter
/// (not across counters, which is fine for monitoring).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    exports_with_listener: AtomicU64,
    exports_skipped_no_listener: AtomicU64,
    exports_skipped_unavailable: AtomicU64,
    exports_interrupted: AtomicU64,
    exports_failed: AtomicU64,
    events_written: AtomicU64,
    bytes_written: AtomicU64,
    points_encoded: AtomicU64,
    points_dropped_oversized: AtomicU64,
    write_errors: AtomicU64,
    collections: AtomicU64,
    collections_skipped_no_listener: AtomicU64,
    collections_dropped: AtomicU64,
    collections_failed: AtomicU64,
    panics: AtomicU64,
}

/// Adds `n` to a counter; relaxed because counters order nothing.
fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    pub(crate) fn export_with_listener(&self) {
        add(&self.exports_with_listener, 1);
    }
    pub(crate) fn export_skipped_no_listener(&self) {
        add(&self.exports_skipped_no_listener, 1);
    }
    pub(crate) fn export_skipped_unavailable(&self) {
        add(&self.exports_skipped_unavailable, 1);
    }
    pub(crate) fn export_interrupted(&self) {
        add(&self.exports_interrupted, 1);
    }
    pub(crate) fn export_failed(&self) {
        add(&self.exports_failed, 1);
    }
    pub(crate) fn events(&self, events: u64, bytes: u64) {
        add(&self.events_written, events);
        add(&self.bytes_written, bytes);
    }
    pub(crate) fn points(&self, encoded: u64, oversized: u64) {
        add(&self.points_encoded, encoded);
        if oversized > 0 {
            add(&self.points_dropped_oversized, oversized);
        }
    }
    pub(crate) fn write_error(&self) {
        add(&self.write_errors, 1);
    }
    pub(crate) fn collection(&self) {
        add(&self.collections, 1);
    }
    pub(crate) fn collection_skipped_no_listener(&self) {
        add(&self.collections_skipped_no_listener, 1);
    }

    pub(crate) fn collection_dropped(&self) {
        add(&self.collections_dropped, 1);
    }
    pub(crate) fn collection_failed(&self) {
        add(&self.collections_failed, 1);
    }
    pub(crate) fn panic(&self) {
        add(&self.panics, 1);
    }

    pub(crate) fn snapshot(&self) -> ExporterStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let with_listener = get(&self.exports_with_listener);
        let skipped_no_listener = get(&self.exports_skipped_no_listener);
        let skipped_unavailable = get(&self.exports_skipped_unavailable);
        ExporterStats {
            exports: with_listener + skipped_no_listener + skipped_unavailable,
            exports_skipped_no_listener: skipped_no_listener,
            exports_skipped_unavailable: skipped_unavailable,
            exports_interrupted: get(&self.exports_interrupted),
            exports_failed: get(&self.exports_failed),
            events_written: get(&self.events_written),
            bytes_written: get(&self.bytes_written),
            points_encoded: get(&self.points_encoded),
            points_dropped_oversized: get(&self.points_dropped_oversized),
            write_errors: get(&self.write_errors),
            collections: get(&self.collections),
            collections_skipped_no_listener: get(&self.collections_skipped_no_listener),
            collections_dropped: get(&self.collections_dropped),
            collections_failed: get(&self.collections_failed),
            panics: get(&self.panics),
        }
    }
}

/// A snapshot of an exporter's counters, from [`crate::MetricsExporter::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExporterStats {
    /// Calls to `export`, not counting those refused because the exporter was shut down.
    pub exports: u64,
    /// Exports that did nothing because no listener was attached (nothing was encoded).
    pub exports_skipped_no_listener: u64,
    /// Exports that did nothing because the kernel offers no `user_events` to this process
    /// (see [`crate::MetricsExporter::unavailable`]).
    pub exports_skipped_unavailable: u64,
    /// Exports stopped early because the last listener detached while events were written.
    pub exports_interrupted: u64,
    /// Exports that returned an error (write error, oversized points, busy).
    pub exports_failed: u64,
    /// Events handed to the kernel (or to the sink) successfully.
    pub events_written: u64,
    /// Payload bytes of those events (fixed fields plus OTLP buffers).
    pub bytes_written: u64,
    /// Data points encoded by exports that ran to the end.
    pub points_encoded: u64,
    /// Data points dropped because one point alone was larger than the event budget.
    pub points_dropped_oversized: u64,
    /// Event writes the kernel (or sink) rejected.
    pub write_errors: u64,
    /// Collections done by [`crate::UserEventsReader`] (each followed by one export).
    pub collections: u64,
    /// Intervals in which [`crate::UserEventsReader`] skipped collecting because no listener
    /// was attached (the SDK kept aggregating, so nothing was lost).
    pub collections_skipped_no_listener: u64,
    /// Collections of [`crate::UserEventsReader`] given up after their export failed
    /// [`crate::UserEventsReader::MAX_EXPORT_ATTEMPTS`] times (write errors or panics): the
    /// only way a collected interval is not sent, and each one is counted here.
    pub collections_dropped: u64,
    /// Collections of [`crate::UserEventsReader`] that the SDK refused or that panicked (in an
    /// observable instrument's callback); nothing was exported for them.
    pub collections_failed: u64,
    /// Panics caught below an export or a collection (a `Sink`, the encoder, an observable
    /// instrument's callback); the exporter and the reader's thread go on.
    pub panics: u64,
}

/// A stand-in for `AtomicU64` on targets without 64-bit atomics (32-bit powerpc, mips,
/// sparc): the same two methods, over a mutex. Counters must not wrap at 2^32 (bytes
/// written do within hours), so a narrower atomic would not do.
// Compiled in tests everywhere so it is checked on the usual 64-bit hosts too.
#[cfg(any(test, not(target_has_atomic = "64")))]
mod locked {
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    pub(crate) struct AtomicU64(Mutex<u64>);

    impl AtomicU64 {
        pub(crate) fn fetch_add(&self, n: u64, _order: Ordering) -> u64 {
            let mut value = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let old = *value;
            *value = old.wrapping_add(n);
            old
        }

        pub(crate) fn load(&self, _order: Ordering) -> u64 {
            *self.0.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn counts_past_32_bits() {
            let counter = AtomicU64::default();
            assert_eq!(counter.fetch_add(u32::MAX as u64, Ordering::Relaxed), 0);
            counter.fetch_add(2, Ordering::Relaxed);
            assert_eq!(counter.load(Ordering::Relaxed), (1 << 32) + 1);
        }
    }
}
