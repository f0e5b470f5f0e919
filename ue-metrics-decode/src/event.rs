//! Picks the decoder for a tracepoint from its format: our `otlp_metrics` layout, an
//! EventHeader event (which may carry a `buffer` field), or someone else's event.

use tracepoint_decode::EventHeaderEnumeratorContext;

use crate::format::RecordFormat;
use crate::payload::Payload;
use crate::record::{Record, SampleMeta};
use crate::{eventheader, DecodeError, SampleDecoder};

/// The event name of the plain (non-EventHeader) layout.
pub const EVENT_NAME: &str = "otlp_metrics";

/// How to get an OTLP buffer out of one tracepoint's raw records.
#[derive(Debug, Clone)]
pub enum EventDecoder {
    /// `protocol`, `version`, `buffer` fields located through the format.
    Fields(SampleDecoder),
    /// An EventHeader event; records without a `buffer` field are not ours.
    EventHeader {
        /// Tracepoint name, e.g. `MyApp_L4K1` (the enumerator reads level and keyword from it).
        tracepoint_name: String,
        /// Offset of `eventheader_flags`: where the EventHeader data starts in the raw record.
        data_offset: usize,
    },
}

impl EventDecoder {
    /// The decoder for records of `format`: `None` when the event is not one this crate reads,
    /// `Some(Err)` when it is named `otlp_metrics` but its fields are unusable.
    pub fn for_format(format: &RecordFormat) -> Option<Result<EventDecoder, DecodeError>> {
        let first = format.event_fields().first();
        if let (Some(first), Some(name)) = (first, format.name()) {
            if first.name == "eventheader_flags" {
                return Some(Ok(EventDecoder::EventHeader {
                    tracepoint_name: name.to_owned(),
                    data_offset: first.offset,
                }));
            }
        }
        match SampleDecoder::new(format) {
            Ok(decoder) => Some(Ok(EventDecoder::Fields(decoder))),
            Err(e) if format.name() == Some(EVENT_NAME) => Some(Err(e)),
            Err(_) => None,
        }
    }

    /// Decodes one raw record (trace_entry first). `Ok(None)`: an EventHeader event without a
    /// `buffer` field. Error offsets are relative to `raw`.
    pub fn decode<'a>(
        &self,
        context: &mut EventHeaderEnumeratorContext,
        raw: &'a [u8],
    ) -> Result<Option<Payload<'a>>, DecodeError> {
        match self {
            EventDecoder::Fields(decoder) => decoder.decode(raw).map(Some),
            EventDecoder::EventHeader {
                tracepoint_name,
                data_offset,
            } => {
                let data = raw.get(*data_offset..).ok_or(DecodeError::Truncated {
                    offset: *data_offset,
                    needed: *data_offset + 8,
                    available: raw.len(),
                })?;
                let found = eventheader::find_buffer(context, tracepoint_name, data)
                    .map_err(|e| e.shifted(*data_offset))?;
                Ok(found.map(|(buffer, offset)| Payload {
                    protocol: crate::payload::PROTOCOL_PROTOBUF,
                    version: "",
                    buffer,
                    buffer_offset: data_offset + offset,
                }))
            }
        }
    }

    /// Decodes one raw record into a [`Record`] carrying `meta`; `None` when the record is not
    /// ours (an EventHeader event without a `buffer` field), for the caller to count apart.
    /// When `meta` has no pid, the record's `common_pid` is used.
    pub fn decode_record(
        &self,
        context: &mut EventHeaderEnumeratorContext,
        mut meta: SampleMeta,
        raw: &[u8],
    ) -> Option<Record> {
        if meta.pid.is_none() {
            meta.pid = self.common_pid(raw).and_then(|p| u32::try_from(p).ok());
        }
        match self.decode(context, raw) {
            Ok(None) => None,
            Ok(Some(payload)) => Some(Record::from_payload(meta, Ok(payload))),
            Err(error) => Some(Record::failed(meta, error)),
        }
    }

    /// The `common_pid` of a raw record, when known (the plain layout only).
    pub fn common_pid(&self, raw: &[u8]) -> Option<i32> {
        match self {
            EventDecoder::Fields(decoder) => decoder.common_pid(raw),
            EventDecoder::EventHeader { .. } => None,
        }
    }
}
