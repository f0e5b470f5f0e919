//! Live records from the running kernel: one perf ring per online CPU on the tracepoint
//! (through `user_events-sys`), `PERF_SAMPLE_RAW` with time, pid/tid and cpu kept next to
//! each decoded request, lost-record counts reported.
//!
//! What can be missing, and what [`LiveError`] says about it: tracefs not mounted or no
//! user_events in the kernel, no permission (perf needs root, `CAP_PERFMON` or
//! `perf_event_paranoid=-1`), or the event not registered yet (no producer has started: wait for
//! it with [`wait_for_event`], or create it ahead with [`register_event`] or [`preregister`]).
//!
//! One source reads several events at once ([`LiveOptions::extra_events`]), each decoded by
//! the layout its own `format` file shows. An event name also selects the multi-format
//! registrations of that name (`user_events_multi/<name>.<hex id>`, Linux 6.9+): those present
//! when the source opens, and those made later once [`LiveSource::rescan`] finds them.
//!
//! What the kernel does when producers come and go (Linux 6.12, `trace_events_user.c`): a
//! perf listener holds a reference on the event (`TRACE_REG_PERF_REGISTER` takes one), so when
//! the last producer exits the event is not deleted while a source reads it, and a producer
//! that registers the same name and fields again gets the same tracepoint: the source goes on
//! reading without doing anything. Only a registration the source cannot have opened (a new
//! multi-format registration, which always makes a new tracepoint when no existing one has
//! its fields) needs [`LiveSource::rescan`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracepoint_decode::EventHeaderEnumeratorContext;
use user_events_sys::perf::{PerfOptions, PerfRecord, PerfSession};
use user_events_sys::Tracefs;

use crate::event::EventDecoder;
use crate::layout::{is_event, MULTI_FORMAT_GROUP};
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
         wait for it (`live --wait`), or create it now (`live --register`, which registers \
         `{name} {fields}` through {tracefs}/user_events_data: persistent with CAP_PERFMON, \
         else for as long as the agent runs)"
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
    /// Further events read by the same source (`--event` repeated), each with its own format.
    pub extra_events: Vec<String>,
    /// Ring buffer pages per CPU (power of two); more pages survive longer bursts.
    pub pages_per_cpu: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            group: GROUP.into(),
            event: crate::event::EVENT_NAME.into(),
            extra_events: Vec::new(),
            pages_per_cpu: 64,
        }
    }
}

/// The tracepoints (group, name) the event `name` of `group` stands for: `group/name` if it
/// exists and, for the user_events group, every multi-format registration
/// `user_events_multi/name.<hex id>` (a name with its id selects that one only).
pub fn resolve_event(tracefs: &Tracefs, group: &str, name: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if tracefs.event_exists(group, name) {
        found.push((group.to_owned(), name.to_owned()));
    }
    if group == GROUP {
        let dir = tracefs.root().join("events").join(MULTI_FORMAT_GROUP);
        let mut multi: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|entry| entry != name && is_event(entry, name))
            .collect();
        if tracefs.event_exists(MULTI_FORMAT_GROUP, name) {
            multi.push(name.to_owned());
        }
        multi.sort();
        found.extend(
            multi
                .into_iter()
                .map(|n| (MULTI_FORMAT_GROUP.to_owned(), n)),
        );
    }
    found
}

/// Returns true once the event exists (see [`resolve_event`]), polling every 100 ms; false
/// after `timeout`.
pub fn wait_for_event(tracefs: &Tracefs, group: &str, name: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !resolve_event(tracefs, group, name).is_empty() {
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
/// `u:otlp_metrics <fields>` to `dynamic_events` (needs root). The kernel creates such events
/// with `USER_EVENT_REG_PERSIST`: the event stays until deleted. See [`register_event`] for the
/// same through `user_events_data`, which works without root.
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

/// How [`register_event`] made an event exist.
#[derive(Debug)]
pub enum Registration {
    /// Registered with `USER_EVENT_REG_PERSIST`: the event stays after this process exits,
    /// until deleted (`DIAG_IOCSDEL`, or `-:name` in `dynamic_events`; both need
    /// `CAP_PERFMON` for a persistent event). Should a producer have registered the same event
    /// a moment earlier, the kernel gives that one back unchanged (not persistent).
    Persistent,
    /// `PERSIST` was not allowed (EPERM: the process lacks `CAP_PERFMON`), so the event is
    /// registered without it and lives while this registration is held (keep it for as long as
    /// the event is read) or a producer or listener uses it; the kernel deletes it after that.
    Held(user_events_sys::Event),
}

/// Registers `name` with our fields (`name u32 protocol;...`, as producers do) through
/// `user_events_data`, with `USER_EVENT_REG_PERSIST` when allowed (Linux 6.7+, `CAP_PERFMON`),
/// else as a registration the caller holds ([`Registration::Held`]).
pub fn register_event(tracefs: &Tracefs, name: &str) -> Result<Registration, LiveError> {
    let data = user_events_sys::DataFile::open(tracefs)?;
    register_event_on(&data, name)
}

/// [`register_event`] on an open `user_events_data`.
pub fn register_event_on(
    data: &std::sync::Arc<user_events_sys::DataFile>,
    name: &str,
) -> Result<Registration, LiveError> {
    use user_events_sys::{Error, RegisterOptions};
    let name_args = format!("{name} {EVENT_FIELDS}");
    let persist = RegisterOptions {
        persist: true,
        ..RegisterOptions::default()
    };
    match data.register(&name_args, persist) {
        // A kernel without the flag (before 6.7) registers without it: then it is held.
        Ok(event) if event.persist() => Ok(Registration::Persistent),
        Ok(event) => Ok(Registration::Held(event)),
        Err(Error::NeedsCapPerfmon { .. }) => {
            let event = data.register(&name_args, RegisterOptions::default())?;
            Ok(Registration::Held(event))
        }
        Err(e) => Err(e.into()),
    }
}

/// One tracepoint a [`LiveSource`] reads.
#[derive(Debug, Clone)]
pub struct Tracepoint {
    /// Tracefs group, e.g. `user_events` or `user_events_multi`.
    pub group: String,
    /// Tracepoint name, e.g. `otlp_metrics` or `otlp_metrics.1a`.
    pub name: String,
    /// Its id (`common_type` of its records).
    pub id: u64,
    /// How its records are decoded, from its format.
    pub decoder: EventDecoder,
}

/// The decoder and format of one tracepoint, from its tracefs `format` file.
fn tracepoint_decoder(
    tracefs: &Tracefs,
    group: &str,
    name: &str,
) -> Result<(EventDecoder, RecordFormat), LiveError> {
    let unusable = |source| LiveError::UnusableFormat {
        group: group.to_owned(),
        name: name.to_owned(),
        source,
    };
    let text = tracefs.event_format(group, name)?;
    let format = RecordFormat::parse(&text).map_err(unusable)?;
    match EventDecoder::for_format(&format) {
        Some(Ok(decoder)) => Ok((decoder, format)),
        Some(Err(e)) => Err(unusable(e)),
        None => Err(unusable(DecodeError::Format {
            offset: 0,
            reason: "neither the otlp_metrics fields (protocol, version, buffer), the C++ \
                     exporter's length-prefixed otlp_metrics, nor an EventHeader event"
                .into(),
        })),
    }
}

/// The tracepoints (group, name) of the events `options` selects (see [`resolve_event`]) that
/// are not among `attached`.
fn unattached(
    tracefs: &Tracefs,
    options: &LiveOptions,
    attached: &[Tracepoint],
) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    for name in std::iter::once(&options.event).chain(&options.extra_events) {
        for (group, name) in resolve_event(tracefs, &options.group, name) {
            let known = attached.iter().any(|t| t.group == group && t.name == name)
                || found.iter().any(|(g, n)| *g == group && *n == name);
            if !known {
                found.push((group, name));
            }
        }
    }
    found
}

/// Reads our records from per-CPU perf rings.
pub struct LiveSource {
    session: PerfSession,
    tracefs: Tracefs,
    options: LiveOptions,
    tracepoints: Vec<Tracepoint>,
    /// Index into `tracepoints` by `common_type`.
    by_type: HashMap<u16, usize>,
    context: EventHeaderEnumeratorContext,
    stats: DecodeStats,
    format: RecordFormat,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("tracepoints", &self.tracepoints)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl LiveSource {
    /// Opens the perf rings of the events (`event` and `extra_events`). Each must exist (see
    /// [`wait_for_event`] and [`preregister`]); each tracepoint's `format` file says how its
    /// records are laid out.
    pub fn open(tracefs: &Tracefs, options: &LiveOptions) -> Result<LiveSource, LiveError> {
        let group = &options.group;
        let mut tracepoints = Vec::new();
        let mut first_format = None;
        for name in std::iter::once(&options.event).chain(&options.extra_events) {
            let found = resolve_event(tracefs, group, name);
            if found.is_empty() {
                return Err(LiveError::NotRegistered {
                    group: group.clone(),
                    name: name.clone(),
                    fields: EVENT_FIELDS,
                    tracefs: tracefs.root().to_path_buf(),
                });
            }
            for (group, name) in found {
                if tracepoints
                    .iter()
                    .any(|t: &Tracepoint| t.group == group && t.name == name)
                {
                    continue;
                }
                let (decoder, format) = tracepoint_decoder(tracefs, &group, &name)?;
                first_format.get_or_insert(format);
                let id = tracefs.event_id(&group, &name)?;
                tracepoints.push(Tracepoint {
                    group,
                    name,
                    id,
                    decoder,
                });
            }
        }
        let ids: Vec<u64> = tracepoints.iter().map(|t| t.id).collect();
        let session = PerfSession::open_tracepoints(
            &ids,
            &PerfOptions {
                pages_per_cpu: options.pages_per_cpu,
                wakeup_events: 1,
            },
        )?;
        // Tracepoint ids fit the u16 `common_type` (the kernel hands out ids up to 65535).
        let by_type = tracepoints
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((u16::try_from(t.id).ok()?, i)))
            .collect();
        Ok(LiveSource {
            session,
            tracefs: tracefs.clone(),
            options: options.clone(),
            tracepoints,
            by_type,
            context: EventHeaderEnumeratorContext::new(),
            stats: DecodeStats::default(),
            format: first_format.expect("at least one tracepoint"),
        })
    }

    /// Looks for tracepoints of the selected names that appeared since the source opened (a
    /// multi-format registration `user_events_multi/<name>.<id>` made later) and adds them to
    /// the running session, each decoded by its own format. Returns those added. Records a new
    /// tracepoint held before it was added were written while nothing listened to it (its
    /// producers saw the event disabled), so none is missed. A tracepoint whose format cannot
    /// be decoded is an error and is not added; the others are.
    pub fn rescan(&mut self) -> Result<Vec<Tracepoint>, LiveError> {
        let mut added = Vec::new();
        let mut first_error = None;
        for (group, name) in unattached(&self.tracefs, &self.options, &self.tracepoints) {
            match self.attach(group, name) {
                Ok(tracepoint) => added.push(tracepoint),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if added.is_empty() => Err(e),
            _ => Ok(added),
        }
    }

    /// Adds one tracepoint to the session.
    fn attach(&mut self, group: String, name: String) -> Result<Tracepoint, LiveError> {
        let (decoder, _) = tracepoint_decoder(&self.tracefs, &group, &name)?;
        let id = self.tracefs.event_id(&group, &name)?;
        self.session.add_tracepoint(id)?;
        let tracepoint = Tracepoint {
            group,
            name,
            id,
            decoder,
        };
        if let Ok(ty) = u16::try_from(id) {
            self.by_type.insert(ty, self.tracepoints.len());
        }
        self.tracepoints.push(tracepoint.clone());
        Ok(tracepoint)
    }

    /// The parsed format of the first tracepoint.
    pub fn format(&self) -> &RecordFormat {
        &self.format
    }

    /// The tracepoints read, with the layout each was found to have.
    pub fn tracepoints(&self) -> &[Tracepoint] {
        &self.tracepoints
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
        let (context, stats) = (&mut self.context, &mut self.stats);
        let (tracepoints, by_type) = (&self.tracepoints, &self.by_type);
        let seen = self.session.drain(|record| match record {
            PerfRecord::Sample(sample) => {
                // The trace_entry starts with common_type: which tracepoint wrote the record.
                let decoder = sample
                    .raw
                    .get(..2)
                    .map(|b| u16::from_ne_bytes([b[0], b[1]]))
                    .and_then(|ty| by_type.get(&ty))
                    .map(|&i| &tracepoints[i].decoder);
                let Some(decoder) = decoder else {
                    stats.other_events += 1;
                    return;
                };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A tracefs tree with empty event directories for `events` (group, name).
    fn fake_tracefs(label: &str, events: &[(&str, &str)]) -> (PathBuf, Tracefs) {
        let root = std::env::temp_dir().join(format!(
            "ue-metrics-decode-live-{label}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        for (group, name) in events {
            std::fs::create_dir_all(root.join("events").join(group).join(name)).unwrap();
        }
        (root.clone(), Tracefs::at(root))
    }

    fn attached(group: &str, name: &str) -> Tracepoint {
        let format = RecordFormat::parse(crate::format::EXAMPLE_FORMAT).unwrap();
        let decoder = EventDecoder::for_format(&format).unwrap().unwrap();
        Tracepoint {
            group: group.into(),
            name: name.into(),
            id: 1,
            decoder,
        }
    }

    #[test]
    fn a_rescan_finds_the_new_tracepoints_of_the_selected_names_only() {
        let (root, tracefs) = fake_tracefs(
            "rescan",
            &[
                ("user_events", "otlp_metrics"),
                ("user_events_multi", "otlp_metrics.0"),
                // Registered after the source opened.
                ("user_events_multi", "otlp_metrics.1a"),
                // Other names: not selected.
                ("user_events_multi", "otlp_metrics_other.2"),
                ("user_events_multi", "something.3"),
                ("user_events", "MyApp_L4K1"),
            ],
        );
        let options = LiveOptions {
            extra_events: vec!["otlp_metrics".into()],
            ..LiveOptions::default()
        };
        let known = [
            attached("user_events", "otlp_metrics"),
            attached("user_events_multi", "otlp_metrics.0"),
        ];
        assert_eq!(
            unattached(&tracefs, &options, &known),
            [("user_events_multi".to_owned(), "otlp_metrics.1a".to_owned())],
            "the new one, once, though the name is selected twice"
        );
        let all = [
            attached("user_events", "otlp_metrics"),
            attached("user_events_multi", "otlp_metrics.0"),
            attached("user_events_multi", "otlp_metrics.1a"),
        ];
        assert!(unattached(&tracefs, &options, &all).is_empty());
        let _ = std::fs::remove_dir_all(root);
    }
}
