//! Configuration of a [`MetricsExporter`]: every option has a default that existing agents
//! understand, and every value is checked before anything touches the kernel.

use std::path::PathBuf;

use opentelemetry_sdk::metrics::Temporality;

use crate::error::{BuildError, Unavailable};
use crate::exporter::MetricsExporter;
use crate::sink::{Sink, UserEventsSink};

/// Event name registered by default (group `user_events`), the one agents listen to.
pub const DEFAULT_EVENT_NAME: &str = "otlp_metrics";

/// Protocol version string written in every event by default.
pub const DEFAULT_PROTOCOL_VERSION: &str = "v0.19.00";

/// Bytes of fixed fields before the OTLP buffer: `u32 protocol`, `char[8] version`,
/// `u32 rel_loc`.
pub const PAYLOAD_HEADER_BYTES: usize = 16;

/// Default event size: the largest payload every kind of listener (perf and ftrace) receives.
pub const DEFAULT_MAX_EVENT_BYTES: usize = user_events_sys::MAX_PAYLOAD_ALL_LISTENERS;

/// Largest accepted event size: perf listeners drop anything bigger (and the kernel may print
/// a WARNING), so the exporter never writes past it.
pub const MAX_EVENT_BYTES_LIMIT: usize = user_events_sys::PERF_MAX_PAYLOAD;

/// Smallest accepted event size: below this not even a resource and one point fit.
pub const MIN_MAX_EVENT_BYTES: usize = 128;

/// Longest accepted event name (the kernel's limit for a whole registration is much larger;
/// this keeps names readable and tracefs paths short).
pub const MAX_EVENT_NAME_LEN: usize = 128;

/// Options for [`MetricsExporter`]; start with [`MetricsExporter::builder`].
///
/// ```no_run
/// use ue_metrics_exporter::MetricsExporter;
/// use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
///
/// let exporter = MetricsExporter::builder()
///     .with_temporality(Temporality::Delta)
///     .build()?;
/// let provider = SdkMeterProvider::builder().with_periodic_exporter(exporter).build();
/// # drop(provider);
/// # Ok::<(), ue_metrics_exporter::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetricsExporterBuilder {
    pub(crate) event_name: String,
    pub(crate) temporality: Temporality,
    pub(crate) max_event_bytes: usize,
    pub(crate) protocol_version: String,
    pub(crate) tracefs_root: Option<PathBuf>,
    pub(crate) require_user_events: bool,
    #[cfg(feature = "eventheader")]
    pub(crate) eventheader_provider: Option<String>,
}

impl Default for MetricsExporterBuilder {
    fn default() -> Self {
        Self {
            event_name: DEFAULT_EVENT_NAME.to_owned(),
            temporality: Temporality::Delta,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            protocol_version: DEFAULT_PROTOCOL_VERSION.to_owned(),
            tracefs_root: None,
            require_user_events: false,
            #[cfg(feature = "eventheader")]
            eventheader_provider: None,
        }
    }
}

impl MetricsExporterBuilder {
    /// A builder with the defaults (same as [`MetricsExporter::builder`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Event name under `user_events` (default [`DEFAULT_EVENT_NAME`]). Letters, digits and
    /// `_`, not starting with a digit, at most [`MAX_EVENT_NAME_LEN`] bytes.
    pub fn with_event_name(mut self, name: impl Into<String>) -> Self {
        self.event_name = name.into();
        self
    }

    /// Temporality asked of the SDK (default `Delta`, which agents expect).
    pub fn with_temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = temporality;
        self
    }

    /// Largest event payload in bytes, fixed fields included (default
    /// [`DEFAULT_MAX_EVENT_BYTES`], which reaches every listener). Values up to
    /// [`MAX_EVENT_BYTES_LIMIT`] suit perf-only setups; larger values are rejected by `build`
    /// because perf would drop those events silently.
    pub fn with_max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Version string in every event (default [`DEFAULT_PROTOCOL_VERSION`]): exactly 8
    /// printable ASCII bytes.
    pub fn with_protocol_version(mut self, version: impl Into<String>) -> Self {
        self.protocol_version = version.into();
        self
    }

    /// Use the tracefs mounted at `root` instead of discovering it.
    pub fn with_tracefs_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.tracefs_root = Some(root.into());
        self
    }

    /// Make `build` fail with [`BuildError::Unavailable`] when the kernel offers no usable
    /// `user_events` (default: `false`, `build` succeeds and exports are skipped and counted).
    pub fn with_require_user_events(mut self, require: bool) -> Self {
        self.require_user_events = require;
        self
    }

    /// Write EventHeader events under this provider name (tracepoint `<provider>_L4K1`)
    /// instead of the plain `otlp_metrics` event. The OTLP buffer is the field `buffer`.
    /// Provider names use letters, digits and `_`.
    #[cfg(feature = "eventheader")]
    pub fn with_eventheader_provider(mut self, provider: impl Into<String>) -> Self {
        self.eventheader_provider = Some(provider.into());
        self
    }

    /// Checks the options, registers the event and returns the exporter.
    ///
    /// Fails only for invalid options, or (with [`Self::with_require_user_events`]) when the kernel
    /// lacks `user_events`. Otherwise a missing tracefs, a kernel without `user_events`, a
    /// permission problem or a format conflict leave an exporter that skips every export (see
    /// [`MetricsExporter::unavailable`]) after one internal warning naming the remedy.
    pub fn build(self) -> Result<MetricsExporter, BuildError> {
        self.validate()?;
        #[cfg(feature = "eventheader")]
        if let Some(provider) = &self.eventheader_provider {
            self.check_eventheader_options()?;
            let sink = crate::eventheader::EventHeaderSink::register(provider, &self.event_name);
            return match sink {
                Ok(sink) => Ok(MetricsExporter::new(self, Box::new(sink))),
                Err(unavailable) => self.unavailable(unavailable),
            };
        }
        match UserEventsSink::register(self.tracefs_root.as_deref(), &self.registration_string()) {
            Ok(sink) => Ok(MetricsExporter::new(self, Box::new(sink))),
            Err(unavailable) => self.unavailable(unavailable),
        }
    }

    /// Checks the options and returns an exporter that writes to `sink` instead of the
    /// kernel (for tests, benchmarks and custom transports). Plain payload framing.
    pub fn build_with_sink(self, sink: impl Sink) -> Result<MetricsExporter, BuildError> {
        self.validate()?;
        #[cfg(feature = "eventheader")]
        let this = Self {
            eventheader_provider: None,
            ..self
        };
        #[cfg(not(feature = "eventheader"))]
        let this = self;
        Ok(MetricsExporter::new(this, Box::new(sink)))
    }

    /// EventHeader mode goes through the `tracepoint` crate, which finds tracefs itself, and
    /// its events have no version field: refuse the options it would silently ignore.
    #[cfg(feature = "eventheader")]
    fn check_eventheader_options(&self) -> Result<(), BuildError> {
        if self.tracefs_root.is_some() {
            return Err(BuildError::NotInEventHeaderMode {
                option: "with_tracefs_root",
                reason: "EventHeader events are registered through the `tracepoint` crate, \
                         which finds tracefs itself (/sys/kernel/tracing or /proc/mounts)",
            });
        }
        if self.protocol_version != DEFAULT_PROTOCOL_VERSION {
            return Err(BuildError::NotInEventHeaderMode {
                option: "with_protocol_version",
                reason: "EventHeader events carry the OTLP buffer alone, without a version field",
            });
        }
        Ok(())
    }

    fn unavailable(self, unavailable: Unavailable) -> Result<MetricsExporter, BuildError> {
        if self.require_user_events {
            return Err(BuildError::Unavailable(unavailable));
        }
        Ok(MetricsExporter::new_unavailable(self, unavailable))
    }

    /// The exact string registered with the kernel.
    pub fn registration_string(&self) -> String {
        format!(
            "{} u32 protocol;char[8] version;__rel_loc u8[] buffer",
            self.event_name
        )
    }

    /// Bytes around the OTLP buffer in one event, for the configured format.
    pub(crate) fn framing_overhead(&self) -> usize {
        #[cfg(feature = "eventheader")]
        if self.eventheader_provider.is_some() {
            return crate::eventheader::overhead(&self.event_name);
        }
        PAYLOAD_HEADER_BYTES
    }

    /// Largest OTLP buffer per event.
    pub(crate) fn max_request_bytes(&self) -> usize {
        self.max_event_bytes - self.framing_overhead()
    }

    fn validate(&self) -> Result<(), BuildError> {
        validate_name(&self.event_name, MAX_EVENT_NAME_LEN).map_err(|reason| {
            BuildError::InvalidEventName {
                name: self.event_name.clone(),
                reason,
            }
        })?;
        let version = self.protocol_version.as_bytes();
        if version.len() != 8 || !version.iter().all(|b| b.is_ascii_graphic()) {
            return Err(BuildError::InvalidProtocolVersion {
                version: self.protocol_version.clone(),
            });
        }
        if self.max_event_bytes > MAX_EVENT_BYTES_LIMIT {
            return Err(BuildError::MaxEventBytesTooLarge {
                requested: self.max_event_bytes,
                limit: MAX_EVENT_BYTES_LIMIT,
            });
        }
        if self.max_event_bytes < MIN_MAX_EVENT_BYTES + self.framing_overhead() {
            return Err(BuildError::MaxEventBytesTooSmall {
                requested: self.max_event_bytes,
                min: MIN_MAX_EVENT_BYTES + self.framing_overhead(),
            });
        }
        #[cfg(feature = "eventheader")]
        if let Some(provider) = &self.eventheader_provider {
            validate_name(provider, crate::eventheader::MAX_PROVIDER_NAME_LEN).map_err(
                |reason| BuildError::InvalidProviderName {
                    name: provider.clone(),
                    reason,
                },
            )?;
        }
        Ok(())
    }
}

/// Checks a tracepoint-safe identifier; returns why it is not one.
fn validate_name(name: &str, max_len: usize) -> Result<(), &'static str> {
    let Some(first) = name.bytes().next() else {
        return Err("it is empty");
    };
    if name.len() > max_len {
        return Err("it is too long");
    }
    if first.is_ascii_digit() {
        return Err("it starts with a digit");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("only ASCII letters, digits and '_' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_wire_format_agents_expect() {
        let b = MetricsExporterBuilder::new();
        assert_eq!(
            b.registration_string(),
            "otlp_metrics u32 protocol;char[8] version;__rel_loc u8[] buffer"
        );
        assert_eq!(b.temporality, Temporality::Delta);
        assert_eq!(
            b.max_event_bytes,
            user_events_sys::MAX_PAYLOAD_ALL_LISTENERS
        );
        assert_eq!(b.protocol_version, "v0.19.00");
        assert_eq!(
            b.max_request_bytes(),
            otlp_metrics_encode::DEFAULT_MAX_REQUEST_BYTES
        );
        assert!(b.validate().is_ok());
    }

    #[test]
    fn event_name_is_configurable_in_the_registration() {
        let b = MetricsExporterBuilder::new().with_event_name("tenant_a");
        assert_eq!(
            b.registration_string(),
            "tenant_a u32 protocol;char[8] version;__rel_loc u8[] buffer"
        );
    }

    #[test]
    fn bad_event_names_are_rejected_with_the_reason() {
        for (name, reason) in [
            ("", "it is empty"),
            ("9lives", "it starts with a digit"),
            ("a b", "only ASCII letters, digits and '_' are allowed"),
            ("a;b", "only ASCII letters, digits and '_' are allowed"),
            ("a:b", "only ASCII letters, digits and '_' are allowed"),
        ] {
            let err = MetricsExporterBuilder::new()
                .with_event_name(name)
                .validate()
                .unwrap_err();
            assert_eq!(
                err,
                BuildError::InvalidEventName {
                    name: name.to_owned(),
                    reason
                }
            );
        }
        let long = "x".repeat(MAX_EVENT_NAME_LEN + 1);
        assert!(MetricsExporterBuilder::new()
            .with_event_name(long)
            .validate()
            .is_err());
    }

    #[test]
    fn protocol_version_must_be_exactly_8_printable_bytes() {
        for ok in ["v0.19.00", "v1.00.00", "12345678"] {
            assert!(MetricsExporterBuilder::new()
                .with_protocol_version(ok)
                .validate()
                .is_ok());
        }
        for bad in [
            "v0.19.0",
            "v0.19.000",
            "",
            "v0.19 00",
            "v0.19.0\0",
            "v0.19.0é",
        ] {
            let err = MetricsExporterBuilder::new()
                .with_protocol_version(bad)
                .validate()
                .unwrap_err();
            assert_eq!(
                err,
                BuildError::InvalidProtocolVersion {
                    version: bad.to_owned()
                }
            );
        }
    }

    #[test]
    fn max_event_bytes_above_the_perf_limit_is_rejected_with_a_clear_error() {
        let limit = user_events_sys::PERF_MAX_PAYLOAD;
        assert!(MetricsExporterBuilder::new()
            .with_max_event_bytes(limit)
            .validate()
            .is_ok());
        let err = MetricsExporterBuilder::new()
            .with_max_event_bytes(limit + 1)
            .validate()
            .unwrap_err();
        assert_eq!(
            err,
            BuildError::MaxEventBytesTooLarge {
                requested: limit + 1,
                limit
            }
        );
        let text = err.to_string();
        assert!(text.contains(&limit.to_string()), "{text}");
        assert!(text.contains("perf"), "{text}");
    }

    #[test]
    fn max_event_bytes_too_small_is_rejected() {
        let min = MIN_MAX_EVENT_BYTES + PAYLOAD_HEADER_BYTES;
        assert!(MetricsExporterBuilder::new()
            .with_max_event_bytes(min)
            .validate()
            .is_ok());
        assert_eq!(
            MetricsExporterBuilder::new()
                .with_max_event_bytes(min - 1)
                .validate()
                .unwrap_err(),
            BuildError::MaxEventBytesTooSmall {
                requested: min - 1,
                min
            }
        );
    }

    #[cfg(feature = "eventheader")]
    #[test]
    fn eventheader_mode_refuses_the_options_it_cannot_honour() {
        let with_root = MetricsExporterBuilder::new()
            .with_eventheader_provider("ue_test_provider")
            .with_tracefs_root("/somewhere/tracing")
            .build()
            .unwrap_err();
        assert!(
            matches!(
                with_root,
                BuildError::NotInEventHeaderMode {
                    option: "with_tracefs_root",
                    ..
                }
            ),
            "{with_root:?}"
        );
        let with_version = MetricsExporterBuilder::new()
            .with_eventheader_provider("ue_test_provider")
            .with_protocol_version("v9.99.99")
            .build()
            .unwrap_err();
        assert!(
            matches!(
                with_version,
                BuildError::NotInEventHeaderMode {
                    option: "with_protocol_version",
                    ..
                }
            ),
            "{with_version:?}"
        );
        assert!(with_version.to_string().contains("remove one of the two"));
        // Without those options the build goes on (and, on a host without user_events,
        // gives an inactive exporter).
        assert!(MetricsExporterBuilder::new()
            .with_eventheader_provider("ue_test_provider")
            .build()
            .is_ok());
    }

    #[test]
    fn build_with_sink_validates_too() {
        let err = MetricsExporterBuilder::new()
            .with_protocol_version("short")
            .build_with_sink(crate::sink::CaptureSink::new())
            .unwrap_err();
        assert!(matches!(err, BuildError::InvalidProtocolVersion { .. }));
    }
}
