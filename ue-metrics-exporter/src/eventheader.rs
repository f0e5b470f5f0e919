//! EventHeader mode: the OTLP buffer as the binary field `buffer` of an EventHeader event
//! under the user's provider name (tracepoint `<provider>_L4K1`), via `eventheader_dynamic`.

use std::io::IoSlice;
use std::sync::{Arc, Mutex};

use eventheader_dynamic::{EventBuilder, EventSet, FieldFormat, Level, Provider};

use crate::error::{Unavailable, UnavailableKind};
use crate::sink::{Sink, SinkError};

/// Longest accepted provider name (`eventheader_dynamic` panics at 234 with the suffix).
pub(crate) const MAX_PROVIDER_NAME_LEN: usize = 200;

/// Name of the field holding the OTLP buffer (what the decoder looks for).
pub(crate) const BUFFER_FIELD: &str = "buffer";

/// Keyword of the event set: the `K1` in `<provider>_L4K1`.
const KEYWORD: u64 = 1;

const EBADF: i32 = 9;
/// What a 32-bit process on a 64-bit kernel gets from the register ioctl (no compat ioctl),
/// and a 64-bit one from a `user_events_data` that is not the kernel's.
const ENOTTY: i32 = 25;

/// Payload bytes around an OTLP buffer in one EventHeader event named `event_name`:
/// the 8-byte header, the 4-byte metadata extension header, the metadata (event name, NUL,
/// field name, NUL, one encoding byte) and the field's u16 length.
pub(crate) fn overhead(event_name: &str) -> usize {
    8 + 4 + (event_name.len() + 1) + (BUFFER_FIELD.len() + 1 + 1) + 2
}

/// Writes EventHeader events with one binary field.
pub(crate) struct EventHeaderSink {
    provider: Mutex<Provider>,
    set: Arc<EventSet>,
    builder: Mutex<EventBuilder>,
    event_name: String,
}

impl EventHeaderSink {
    /// Registers `<provider>_L4K1` (level 4 = informational, keyword 1).
    pub(crate) fn register(provider_name: &str, event_name: &str) -> Result<Self, Unavailable> {
        // eventheader_dynamic reports only an errno: find out first what is missing.
        let tracefs = user_events_sys::Tracefs::discover()
            .map_err(|e| Unavailable::new(UnavailableKind::NoTracefs, e.to_string()))?;
        if !tracefs.root().join("user_events_data").exists() {
            return Err(Unavailable::new(
                UnavailableKind::NoUserEvents,
                format!("{} has no user_events_data", tracefs.root().display()),
            ));
        }
        let mut provider = Provider::new(provider_name, &Provider::new_options());
        let set = provider.register_set(Level::Informational, KEYWORD);
        match set.errno() {
            0 => {
                // The `tracepoint` crate opens user_events_data without O_CLOEXEC: programs
                // this process executes would inherit a descriptor to write events with.
                if let Err(error) = user_events_sys::close_data_files_on_exec() {
                    opentelemetry::otel_warn!(
                        name: "UserEventsMetricsExporter.CloseOnExecFailed",
                        error = error.to_string()
                    );
                }
                Ok(Self {
                    provider: Mutex::new(provider),
                    set,
                    builder: Mutex::new(EventBuilder::new()),
                    event_name: event_name.to_owned(),
                })
            }
            errno => Err(unavailable_from_errno(provider_name, errno, usize::BITS)),
        }
    }
}

/// What a failed registration means, in a process whose pointers are `process_bits` wide (a
/// parameter, so both meanings of `ENOTTY` are tested on any host).
fn unavailable_from_errno(provider_name: &str, errno: i32, process_bits: u32) -> Unavailable {
    let error = std::io::Error::from_raw_os_error(errno);
    if errno == ENOTTY && process_bits == 32 {
        return Unavailable::new(
            UnavailableKind::NoCompatIoctl,
            format!(
                "registering EventHeader tracepoint {provider_name}_L4K1: {error}: user_events \
                 has no 32-bit compat ioctl (this process is {process_bits}-bit)"
            ),
        );
    }
    if errno == ENOTTY {
        return Unavailable::new(
            UnavailableKind::Other,
            format!(
                "registering EventHeader tracepoint {provider_name}_L4K1: {error}: the opened \
                 user_events_data is not the kernel's user_events_data file"
            ),
        );
    }
    let kind = match error.kind() {
        std::io::ErrorKind::PermissionDenied => UnavailableKind::PermissionDenied,
        std::io::ErrorKind::NotFound => UnavailableKind::NoUserEvents,
        std::io::ErrorKind::AddrInUse => UnavailableKind::FormatConflict,
        _ => UnavailableKind::Other,
    };
    Unavailable::new(
        kind,
        format!("registering EventHeader tracepoint {provider_name}_L4K1: {error}"),
    )
}

impl Sink for EventHeaderSink {
    fn enabled(&self) -> bool {
        self.set.enabled()
    }

    fn write(&self, parts: &[IoSlice<'_>]) -> Result<(), SinkError> {
        let mut builder = self.builder.lock().unwrap_or_else(|p| p.into_inner());
        builder.reset(&self.event_name, 0);
        // The exporter hands us the OTLP buffer alone (framing by the sink).
        let buffer: &[u8] = parts.first().map_or(&[], |p| p);
        builder.add_binary(BUFFER_FIELD, buffer, FieldFormat::Default, 0);
        match builder.write(&self.set, None, None) {
            0 => Ok(()),
            EBADF => Err(SinkError::NoListener),
            errno => Err(SinkError::Custom(format!(
                "EventHeader write failed: {}",
                std::io::Error::from_raw_os_error(errno)
            ))),
        }
    }

    fn close(&self) -> Result<(), SinkError> {
        self.provider
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unregister();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enotty_means_no_compat_ioctl_only_in_a_32_bit_process() {
        let in_32 = unavailable_from_errno("p", ENOTTY, 32);
        assert_eq!(in_32.kind(), UnavailableKind::NoCompatIoctl);
        assert!(in_32.to_string().contains("32-bit"), "{in_32}");
        let in_64 = unavailable_from_errno("p", ENOTTY, 64);
        assert_eq!(in_64.kind(), UnavailableKind::Other);
        let text = in_64.to_string();
        assert!(!text.contains("32-bit"), "{text}");
        assert!(text.contains("not the kernel's user_events_data"), "{text}");
    }
}
