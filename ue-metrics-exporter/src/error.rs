//! Typed errors: each names what happened and, where there is one, the remedy.

use std::sync::atomic::{AtomicU8, Ordering};

use otlp_metrics_encode::{OversizeCause, OversizedPoint};

use crate::builder::MAX_EVENT_BYTES_LIMIT;
use crate::sink::SinkError;

/// Why `build` refused the options (or, with `with_require_user_events`, the kernel).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The event name cannot be registered as a tracepoint.
    #[error("invalid event name {name:?}: {reason}")]
    InvalidEventName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The EventHeader provider name cannot be used.
    #[error("invalid EventHeader provider name {name:?}: {reason}")]
    InvalidProviderName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The protocol version is not exactly 8 printable ASCII bytes.
    #[error(
        "invalid protocol version {version:?}: it must be exactly 8 printable ASCII bytes, \
         like \"v0.19.00\""
    )]
    InvalidProtocolVersion {
        /// The version given.
        version: String,
    },
    /// The event size is larger than what perf listeners receive.
    #[error(
        "max event bytes {requested} is above {limit}, the largest payload a perf listener \
         receives: bigger events are dropped by the kernel without an error; use at most \
         {limit} (or the default, which also reaches ftrace listeners)"
    )]
    MaxEventBytesTooLarge {
        /// The size given.
        requested: usize,
        /// The largest accepted size.
        limit: usize,
    },
    /// The event size leaves no room for data.
    #[error("max event bytes {requested} is too small: use at least {min}")]
    MaxEventBytesTooSmall {
        /// The size given.
        requested: usize,
        /// The smallest accepted size.
        min: usize,
    },
    /// An option that EventHeader mode cannot honour was set together with
    /// `with_eventheader_provider`.
    #[error(
        "{option} cannot be used with with_eventheader_provider: {reason}; remove one of the two"
    )]
    NotInEventHeaderMode {
        /// The builder method.
        option: &'static str,
        /// Why EventHeader mode cannot honour it.
        reason: &'static str,
    },
    /// `user_events` cannot be used and `with_require_user_events(true)` was set.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// What keeps the exporter from writing to `user_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnavailableKind {
    /// No tracefs is mounted (or visible to this process).
    NoTracefs,
    /// The kernel has no `user_events` (`CONFIG_USER_EVENTS` off, or older than 6.4).
    NoUserEvents,
    /// This process may not open `user_events_data` or register events.
    PermissionDenied,
    /// An event of the same name is registered with a different field list.
    FormatConflict,
    /// A 32-bit program on a 64-bit kernel: user_events has no 32-bit compat ioctl, so the
    /// kernel refuses every registration (`ENOTTY`; in a 64-bit process `ENOTTY` is `Other`:
    /// the opened `user_events_data` is not the kernel's).
    NoCompatIoctl,
    /// Anything else the kernel refused; the detail says what.
    Other,
}

impl UnavailableKind {
    /// What to do about it, in one sentence.
    pub fn remedy(self) -> &'static str {
        match self {
            UnavailableKind::NoTracefs => {
                "mount tracefs (`mount -t tracefs nodev /sys/kernel/tracing`) on a kernel with \
                 user_events (Linux 6.4+, CONFIG_USER_EVENTS=y)"
            }
            UnavailableKind::NoUserEvents => {
                "run a kernel built with CONFIG_USER_EVENTS=y (Linux 6.4 or newer)"
            }
            UnavailableKind::PermissionDenied => {
                "give this user write access to <tracefs>/user_events_data (it is 0640 root; \
                 e.g. a group with `chgrp`), or run with the needed capability"
            }
            UnavailableKind::FormatConflict => {
                "pick another event name with `with_event_name`, or remove the old event \
                 (`echo '-:<name>' >> <tracefs>/dynamic_events`) once nobody uses it"
            }
            UnavailableKind::NoCompatIoctl => {
                "build the program for the 64-bit target of this machine (e.g. \
                 x86_64-unknown-linux-gnu instead of i686-unknown-linux-gnu)"
            }
            UnavailableKind::Other => "see the detail",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            UnavailableKind::NoTracefs => "no tracefs mounted",
            UnavailableKind::NoUserEvents => "the kernel has no user_events",
            UnavailableKind::PermissionDenied => "permission denied",
            UnavailableKind::FormatConflict => {
                "an event of this name exists with another field list"
            }
            UnavailableKind::NoCompatIoctl => {
                "a 32-bit program cannot register user_events on a 64-bit kernel"
            }
            UnavailableKind::Other => "the kernel refused the registration",
        }
    }
}

/// Why the exporter cannot write: the kind, the underlying error's text and the remedy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    kind: UnavailableKind,
    detail: String,
    /// The detail already says what to do (every `user_events-sys` error does): then the
    /// message does not repeat a second, more generic remedy.
    remedy_in_detail: bool,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "user_events unavailable: {}: {}",
            self.kind.describe(),
            self.detail
        )?;
        if !self.remedy_in_detail {
            write!(f, "; remedy: {}", self.kind.remedy())?;
        }
        Ok(())
    }
}

impl std::error::Error for Unavailable {}

impl Unavailable {
    /// Creates one; `detail` is the underlying error's text.
    pub fn new(kind: UnavailableKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            remedy_in_detail: false,
        }
    }

    /// Creates one from an error whose text already carries its remedy.
    pub(crate) fn with_remedy_in_detail(kind: UnavailableKind, detail: impl Into<String>) -> Self {
        Self {
            remedy_in_detail: true,
            ..Self::new(kind, detail)
        }
    }

    /// What kind of problem it is.
    pub fn kind(&self) -> UnavailableKind {
        self.kind
    }

    /// The underlying error's text.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// What went wrong in one export (from [`crate::MetricsExporter::export_metrics`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// `shutdown` was called before.
    #[error("the exporter is shut down")]
    Shutdown,
    /// The kernel offers no `user_events` to this process; nothing was encoded.
    #[error(transparent)]
    Unavailable(Unavailable),
    /// Another export of the same exporter was still running; this one was skipped rather
    /// than wait.
    #[error("another export of this exporter is still running: this one was skipped")]
    Busy,
    /// Some data points were each larger than the event budget and were dropped; all the
    /// others were written.
    #[error(
        "{count} data point(s) dropped: each is larger than the {limit}-byte OTLP budget of one \
         event (first: metric {metric:?}, {point_bytes} bytes); {events_written} event(s) \
         written. Reduce attributes or histogram buckets, or raise max event bytes"
    )]
    OversizedPoints {
        /// How many points were dropped.
        count: usize,
        /// The first dropped point's metric name.
        metric: String,
        /// The first dropped point's encoded size.
        point_bytes: usize,
        /// The OTLP buffer budget per event.
        limit: usize,
        /// Events written in this export.
        events_written: usize,
    },
    /// The resource, an instrumentation scope or a metric's identity, which every event
    /// carrying a data point repeats, is alone larger than the OTLP budget of one event, so
    /// the data points under it were dropped (counted in `points_dropped_oversized`), however
    /// small they are; all the others were written.
    #[error(
        "{points_dropped} data point(s) dropped: {part} alone needs a {bytes}-byte OTLP request, \
         over the {limit}-byte budget of one event, so no data point under it can be written; \
         {events_written} event(s) written. {remedy}, or, if only perf listens to the event, \
         raise `with_max_event_bytes` (perf-only setups allow up to {MAX_EVENT_BYTES_LIMIT})",
        remedy = part.remedy()
    )]
    IdentityTooLarge {
        /// What is too large.
        part: OversizedIdentity,
        /// Size of the smallest request holding that part (and what it is nested in).
        bytes: usize,
        /// The OTLP buffer budget per event.
        limit: usize,
        /// Data points dropped in this export (those under the part, and any other oversized).
        points_dropped: usize,
        /// Events written in this export.
        events_written: usize,
    },
    /// The SDK could not collect (e.g. the reader is not registered with a provider yet, or
    /// the provider is shut down).
    #[error("collecting metrics failed: {0}")]
    CollectFailed(#[source] opentelemetry_sdk::error::OTelSdkError),
    /// Writing an event failed; the export stopped there.
    #[error(
        "writing event {failed_event} failed ({source}); {events_written} event(s) of this \
         export were written before"
    )]
    WriteFailed {
        /// 1-based number of the event that failed in this export.
        failed_event: usize,
        /// Events written in this export before the failure.
        events_written: usize,
        /// What the kernel (or sink) said.
        #[source]
        source: SinkError,
    },
    /// Something below the export (a `Sink`, the encoder) panicked; the panic was caught and
    /// counted in [`crate::ExporterStats::panics`], and the export stopped there.
    #[error(
        "the export panicked ({message}); {events_written} event(s) of this export were \
         written before"
    )]
    Panicked {
        /// The panic's message (when it was a string).
        message: String,
        /// Events written in this export before the panic.
        events_written: usize,
    },
}

/// The part of every event's OTLP request that is too large in
/// [`ExportError::IdentityTooLarge`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OversizedIdentity {
    /// The resource: its attributes and schema URL.
    Resource,
    /// An instrumentation scope (name, version, attributes), with the resource.
    Scope {
        /// The scope's name.
        name: String,
    },
    /// A metric's name, description and unit, with the resource and its scope.
    Metric {
        /// The metric's name.
        name: String,
    },
}

impl std::fmt::Display for OversizedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Resource => f.write_str("the resource"),
            Self::Scope { name } => write!(f, "the resource with instrumentation scope {name:?}"),
            Self::Metric { name } => write!(
                f,
                "the resource, scope and identity (name, description, unit) of metric {name:?}"
            ),
        }
    }
}

impl OversizedIdentity {
    fn remedy(&self) -> &'static str {
        match self {
            Self::Resource => {
                "Use fewer or shorter resource attributes (leave out resource detectors or \
                 copied labels and annotations that the backend does not need)"
            }
            Self::Scope { .. } => "Use fewer or shorter scope or resource attributes",
            Self::Metric { .. } => {
                "Shorten the metric's description, or use fewer or shorter resource attributes"
            }
        }
    }
}

impl ExportError {
    /// The error for an export that dropped `count` oversized points, `first` being the first.
    pub(crate) fn oversized(first: OversizedPoint, count: usize, events_written: usize) -> Self {
        let (part, bytes) = match first.cause {
            OversizeCause::Resource { bytes } => (OversizedIdentity::Resource, bytes),
            OversizeCause::Scope { scope, bytes } => {
                (OversizedIdentity::Scope { name: scope }, bytes)
            }
            OversizeCause::Metric { bytes } => (
                OversizedIdentity::Metric {
                    name: first.metric.clone(),
                },
                bytes,
            ),
            _ => {
                return Self::OversizedPoints {
                    count,
                    metric: first.metric,
                    point_bytes: first.point_bytes,
                    limit: first.limit,
                    events_written,
                }
            }
        };
        Self::IdentityTooLarge {
            part,
            bytes,
            limit: first.limit,
            points_dropped: count,
            events_written,
        }
    }

    /// Which oversize condition this error is, for [`OversizeLog`] (0: none).
    fn oversize_kind(&self) -> u8 {
        match self {
            Self::OversizedPoints { .. } => 1,
            Self::IdentityTooLarge { part, .. } => match part {
                OversizedIdentity::Resource => 2,
                OversizedIdentity::Scope { .. } => 3,
                OversizedIdentity::Metric { .. } => 4,
            },
            _ => 0,
        }
    }
}

/// The oversize condition an exporter last logged, so it logs when the condition changes,
/// not at every export.
#[derive(Debug, Default)]
pub(crate) struct OversizeLog(AtomicU8);

impl OversizeLog {
    /// Records the condition of the export that just ended (`None`: nothing dropped); true
    /// when it differs from the previous export's, i.e. when it should be logged.
    pub(crate) fn changed(&self, now: Option<&ExportError>) -> bool {
        let kind = now.map_or(0, ExportError::oversize_kind);
        self.0.load(Ordering::Relaxed) != kind && self.0.swap(kind, Ordering::Relaxed) != kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource_too_large() -> ExportError {
        ExportError::oversized(
            OversizedPoint {
                metric: "requests".to_owned(),
                point_bytes: 5200,
                limit: 4048,
                cause: OversizeCause::Resource { bytes: 5100 },
            },
            7,
            0,
        )
    }

    #[test]
    fn an_oversized_identity_is_its_own_error_and_logged_once_per_change() {
        let resource = resource_too_large();
        assert!(matches!(
            resource,
            ExportError::IdentityTooLarge {
                part: OversizedIdentity::Resource,
                bytes: 5100,
                limit: 4048,
                points_dropped: 7,
                events_written: 0
            }
        ));
        let point = ExportError::oversized(
            OversizedPoint {
                metric: "requests".to_owned(),
                point_bytes: 5200,
                limit: 4048,
                cause: OversizeCause::DataPoint,
            },
            1,
            3,
        );
        assert!(matches!(
            point,
            ExportError::OversizedPoints { count: 1, .. }
        ));

        let log = OversizeLog::default();
        let logged: Vec<bool> = [
            Some(&resource),
            Some(&resource),
            Some(&resource),
            Some(&point),
            Some(&point),
            None,
            None,
            Some(&resource),
        ]
        .into_iter()
        .map(|now| log.changed(now))
        .collect();
        assert_eq!(logged, [true, false, false, true, false, true, false, true]);
    }

    #[test]
    fn unavailable_names_the_problem_and_the_remedy() {
        let u = Unavailable::new(UnavailableKind::NoTracefs, "not in /proc/mounts");
        let text = u.to_string();
        assert!(text.contains("no tracefs mounted"), "{text}");
        assert!(text.contains("not in /proc/mounts"), "{text}");
        assert!(text.contains("mount -t tracefs"), "{text}");
        assert_eq!(u.kind(), UnavailableKind::NoTracefs);
    }

    #[test]
    fn a_remedy_already_in_the_detail_is_not_repeated() {
        let detail = "tracefs is not mounted: mount it with `mount -t tracefs nodev /x`";
        let u = Unavailable::with_remedy_in_detail(UnavailableKind::NoTracefs, detail);
        let text = u.to_string();
        assert_eq!(text.matches("mount -t tracefs").count(), 1, "{text}");
        assert!(!text.contains("remedy:"), "{text}");
    }
}
