//! What every source hands out: one decoded request (or the reason it failed) with the sample's
//! metadata, and running counts.

use std::collections::BTreeMap;
use std::fmt;

use crate::payload::Payload;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::DecodeError;

/// Where and when a record was written. All processes share one event, so `pid` is how a
/// collector tells producers apart. Fields the source did not record are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SampleMeta {
    /// Kernel timestamp in nanoseconds (perf's clock, usually `CLOCK_MONOTONIC`).
    pub time: Option<u64>,
    /// Process id (thread group id) of the writer.
    pub pid: Option<u32>,
    /// Thread id of the writer.
    pub tid: Option<u32>,
    /// CPU the record was written on.
    pub cpu: Option<u32>,
}

/// One record from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The sample's metadata.
    pub meta: SampleMeta,
    /// Length of the OTLP buffer in bytes (0 when the record failed before it was located).
    pub buffer_len: usize,
    /// The decoded request, or why this record was skipped.
    pub result: Result<ExportMetricsServiceRequest, DecodeError>,
    /// The OTLP buffer exactly as the producer wrote it, when this record is one event's
    /// request: forwarding these bytes keeps fields the decoder does not know, which
    /// re-encoding `result` would drop. `None` for merged records and records that failed.
    pub original: Option<Vec<u8>>,
}

impl Record {
    /// The record of one located payload: its request decoded and its bytes kept, or why the
    /// payload could not be located or decoded. Every source builds its records here.
    pub fn from_payload(meta: SampleMeta, payload: Result<Payload<'_>, DecodeError>) -> Record {
        match payload {
            Ok(payload) => {
                let result = payload.to_request();
                Record {
                    meta,
                    buffer_len: payload.buffer.len(),
                    original: result.is_ok().then(|| payload.buffer.to_vec()),
                    result,
                }
            }
            Err(error) => Record::failed(meta, error),
        }
    }

    /// A record that failed before its buffer was located.
    pub fn failed(meta: SampleMeta, error: DecodeError) -> Record {
        Record {
            meta,
            buffer_len: 0,
            result: Err(error),
            original: None,
        }
    }
}

/// Counts kept by a source while it reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Records of our event seen (decoded + failed).
    pub records: u64,
    /// Records decoded into a request.
    pub decoded: u64,
    /// Records skipped because they could not be decoded.
    pub failed: u64,
    /// Samples of other events in the same source (ignored).
    pub other_events: u64,
    /// Records the kernel reported lost (ring buffer full).
    pub lost: u64,
    /// OTLP buffer bytes of the decoded records.
    pub buffer_bytes: u64,
    /// Failed records by [`DecodeError::kind`].
    pub errors: BTreeMap<&'static str, u64>,
}

impl DecodeStats {
    /// Counts one record.
    pub fn count(&mut self, record: &Record) {
        self.records += 1;
        match &record.result {
            Ok(_) => {
                self.decoded += 1;
                self.buffer_bytes += record.buffer_len as u64;
            }
            Err(e) => {
                self.failed += 1;
                *self.errors.entry(e.kind()).or_default() += 1;
            }
        }
    }
}

impl fmt::Display for DecodeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records: {} decoded, {} failed",
            self.records, self.decoded, self.failed
        )?;
        if !self.errors.is_empty() {
            let kinds: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            write!(f, " ({})", kinds.join(", "))?;
        }
        write!(f, "; {} lost", self.lost)?;
        if self.other_events > 0 {
            write!(f, "; {} samples of other events ignored", self.other_events)?;
        }
        Ok(())
    }
}
