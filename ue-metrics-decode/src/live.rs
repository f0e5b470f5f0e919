//! Live records from the running kernel: one perf ring per online CPU on the tracepoint
//! (through `user_events-sys`), `PERF_SAMPLE_RAW` with time, pid/tid and cpu kept next to
//! each decoded request, lost-record counts reported.
//!
//! What can be missing, and what [`LiveError`] says about it: tracefs not mounted or no
//! user_events in the kernel, no permission (perf needs root, `CAP_PERFMON` or
//! `perf_event_paranoid=-1`), or the event not registered yet (no producer has started: wait for
//! it with [`wait_for_event`], or create it ahead with [`preregister`], as `perf-collect` does).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracepoint_decode::EventHeaderEnumeratorContext;
use user_events_sys::perf::{PerfOptions, PerfRecord, PerfSession};
use user_events_sys::Tracefs;

use crate::event::EventDecoder;
use crate::record::{DecodeStats, Record, SampleMeta};
use crate::{DecodeError, RecordFormat};

/// The tracefs group of user_events.
pub const GROUP: &str = "user_events";
/// The field list producers register the event with.
pub const EVENT_FIELDS: &str = "u32 protocol;char[8] version;__rel_loc u8[] buffer";

/// Why live collection cannot start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// From the kernel layer; its message says what to do (mount tracefs, permissions, ...).
    #[error(transparent)]
    Sys(#[from] user_events_sys::Error),
    /// The event does not exist (yet).
    #[error(
        "the event {group}/{name} is not registered yet: no producer has started. Start one, \
         wait for it (`live --wait`), or create it now as root (`live --register`, which writes \
         `u:{name} {fields}` to {tracefs}/dynamic_events, as perf-collect does)"
    )]
    NotRegistered {
        /// Tracefs group.
        group: String,
        /// Event name.
        name: String,
        /// The field list to register.
        fields: &'static str,
        /// The tracefs root.
        tracefs: PathBuf,
    },
    /// The event exists but is not one this crate can read.
    #[error("the event {group}/{name} cannot be decoded: {source}")]
    UnusableFormat {
        /// Tracefs group.
        group: String,
        /// Event name.
        name: String,
        /// What is wrong with its format.
        source: DecodeError,
    },
    /// Writing `dynamic_events` failed.
    #[error(
        "cannot pre-register the event through {path}: {source} (needs root; or start a \
         producer, which registers it)"
    )]
    Register {
        /// The `dynamic_events` path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Settings of a [`LiveSource`].
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Tracefs group of the event.
    pub group: String,
    /// Event name: `otlp_metrics`, or an EventHeader tracepoint such as `MyApp_L4K1`.
    pub event: String,
    /// Ring buffer pages per CPU (power of two); more pages survive longer bursts.
    pub pages_per_cpu: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            group: GROUP.into(),
            event: crate::event::EVENT_NAME.into(),
            pages_per_cpu: 64,
        }
    }
}

/// Returns true once `group/name` exists, polling every 100 ms; false after `timeout`.
pub fn wait_for_event(tracefs: &Tracefs, group: &str, name: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if tracefs.event_exists(group, name) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(100)));
    }
}

/// Creates `user_events/otlp_metrics` without a producer, by writing
/// `u:otlp_metrics <fields>` to `dynamic_events` (needs root). The event stays until deleted.
pub fn preregister(tracefs: &Tracefs, name: &str) -> Result<(), LiveError> {
    use std::io::Write as _;
    let path = tracefs.root().join("dynamic_events");
    let line = format!("u:{name} {EVENT_FIELDS}\n");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|source| LiveError::Register { path, source })
}

/// Reads our records from per-CPU perf rings.
pub struct LiveSource {
    session: PerfSession,
    decoder: EventDecoder,
    context: EventHeaderEnumeratorContext,
    stats: DecodeStats,
    format: RecordFormat,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("decoder", &self.decoder)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl LiveSource {
    /// Opens the event's perf rings. The event must exist (see [`wait_for_event`] and
    /// [`preregister`]); its `format` file says where the fields are.
    pub fn open(tracefs: &Tracefs, options: &LiveOptions) -> Result<LiveSource, LiveError> {
        let (group, name) = (&options.group, &options.event);
        if !tracefs.event_exists(group, name) {
            return Err(LiveError::NotRegistered {
                group: group.clone(),
                name: name.clone(),
                fields: EVENT_FIELDS,
                tracefs: tracefs.root().to_path_buf(),
            });
        }
        let unusable = |source| LiveError::UnusableFormat {
            group: group.clone(),
            name: name.clone(),
            source,
        };
        let text = tracefs.event_format(group, name)?;
        let format = RecordFormat::parse(&text).map_err(unusable)?;
        let decoder = match EventDecoder::for_format(&format) {
            Some(Ok(decoder)) => decoder,
            Some(Err(e)) => return Err(unusable(e)),
            None => {
                return Err(unusable(DecodeError::Format {
                    offset: 0,
                    reason: "neither the otlp_metrics fields (protocol, version, buffer) nor an \
                             EventHeader event"
                        .into(),
                }))
            }
        };
        let id = tracefs.event_id(group, name)?;
        let session = PerfSession::open_tracepoint(
            id,
            &PerfOptions {
                pages_per_cpu: options.pages_per_cpu,
                wakeup_events: 1,
            },
        )?;
        Ok(LiveSource {
            session,
            decoder,
            context: EventHeaderEnumeratorContext::new(),
            stats: DecodeStats::default(),
            format,
        })
    }

    /// The event's parsed format.
    pub fn format(&self) -> &RecordFormat {
        &self.format
    }

    /// The CPUs with a ring.
    pub fn cpus(&self) -> Vec<u32> {
        self.session.cpus().collect()
    }

    /// Counts so far (`lost` from the kernel's `PERF_RECORD_LOST`).
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Waits up to `timeout` for data, then hands every record in the rings to `on_record`.
    /// Returns the number of perf records seen (0 on timeout).
    pub fn poll(
        &mut self,
        timeout: Duration,
        mut on_record: impl FnMut(Record),
    ) -> Result<usize, LiveError> {
        if !self.session.wait(timeout)? {
            return Ok(0);
        }
        let (decoder, context, stats) = (&self.decoder, &mut self.context, &mut self.stats);
        let seen = self.session.drain(|record| match record {
            PerfRecord::Sample(sample) => {
                let meta = SampleMeta {
                    time: Some(sample.time),
                    pid: Some(sample.pid),
                    tid: Some(sample.tid),
                    cpu: Some(sample.cpu),
                };
                let Some(record) = decoder.decode_record(context, meta, sample.raw) else {
                    stats.other_events += 1;
                    return;
                };
                stats.count(&record);
                on_record(record);
            }
            PerfRecord::Lost { lost } => stats.lost = stats.lost.saturating_add(lost),
        })?;
        Ok(seen)
    }
}
