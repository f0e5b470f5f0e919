//! Picks the decoder for a tracepoint from its format: our `otlp_metrics` layout (also the .NET
//! exporter's), the C++ exporter's length-prefixed `otlp_metrics` (no fields), an EventHeader
//! event (which may carry a `buffer` field), or someone else's event. Multi-format events
//! (`user_events_multi/otlp_metrics.<hex id>`) are read by the same rules.

use tracepoint_decode::EventHeaderEnumeratorContext;

use crate::format::RecordFormat;
use crate::layout::{base_event_name, ByteOrder, LengthPrefixedLayout};
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
    /// `otlp_metrics` registered with no fields (the C++ exporter): a `u32` length, then the
    /// request.
    LengthPrefixed(LengthPrefixedLayout),
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
        let ours = format.name().map(base_event_name) == Some(EVENT_NAME);
        if ours {
            if let Some(layout) = LengthPrefixedLayout::from_format(format) {
                return Some(Ok(EventDecoder::LengthPrefixed(layout)));
            }
        }
        match SampleDecoder::new(format) {
            Ok(decoder) => Some(Ok(EventDecoder::Fields(decoder))),
            Err(e) if ours => Some(Err(e)),
            Err(_) => None,
        }
    }

    /// The same decoder for records written on a machine of `byte_order` (the default is the
    /// machine's own). EventHeader events say their byte order themselves.
    pub fn with_byte_order(self, byte_order: ByteOrder) -> EventDecoder {
        match self {
            EventDecoder::Fields(decoder) => {
                EventDecoder::Fields(decoder.with_byte_order(byte_order))
            }
            EventDecoder::LengthPrefixed(layout) => {
                EventDecoder::LengthPrefixed(layout.with_byte_order(byte_order))
            }
            header @ EventDecoder::EventHeader { .. } => header,
        }
    }

    /// A short name of the layout, for messages: `fields`, `length-prefixed`, `eventheader`.
    pub fn layout_name(&self) -> &'static str {
        match self {
            EventDecoder::Fields(_) => "fields",
            EventDecoder::LengthPrefixed(_) => "length-prefixed",
            EventDecoder::EventHeader { .. } => "eventheader",
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
            EventDecoder::LengthPrefixed(layout) => layout.decode(raw).map(Some),
            EventDecoder::EventHeader {
                tracepoint_name,
                data_offset,
            } => {
                let data = raw.get(*data_offset..).ok_or(DecodeError::truncated(
                    *data_offset,
                    8,
                    raw.len(),
                ))?;
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

    /// The `common_pid` of a raw record, when known (the field layout only).
    pub fn common_pid(&self, raw: &[u8]) -> Option<i32> {
        match self {
            EventDecoder::Fields(decoder) => decoder.common_pid(raw),
            EventDecoder::LengthPrefixed(_) | EventDecoder::EventHeader { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::EXAMPLE_FORMAT;
    use crate::layout::{encode_length_prefixed, LENGTH_PREFIXED_FORMAT};
    use crate::sample::encode_raw_sample_in;

    fn decoder(text: &str) -> Option<Result<EventDecoder, DecodeError>> {
        EventDecoder::for_format(&RecordFormat::parse(text).unwrap())
    }

    #[test]
    fn the_layout_comes_from_the_format() {
        let name = |text: &str| decoder(text).unwrap().unwrap().layout_name();
        assert_eq!(name(EXAMPLE_FORMAT), "fields");
        assert_eq!(name(LENGTH_PREFIXED_FORMAT), "length-prefixed");
        assert_eq!(name(crate::fuzzing::EVENTHEADER_FORMAT), "eventheader");
        // Multi-format names: the same rules apply to `otlp_metrics.<hex id>`.
        let multi = LENGTH_PREFIXED_FORMAT.replace("name: otlp_metrics", "name: otlp_metrics.1f");
        assert_eq!(name(&multi), "length-prefixed");
        let multi = EXAMPLE_FORMAT.replace("name: otlp_metrics", "name: otlp_metrics.0");
        assert_eq!(name(&multi), "fields");
        // Someone else's event without fields is not ours; ours with broken fields is an error.
        let other = LENGTH_PREFIXED_FORMAT.replace("name: otlp_metrics", "name: heartbeat");
        assert!(decoder(&other).is_none());
        let broken = EXAMPLE_FORMAT.replace("size:8;", "size:4;");
        let broken = broken.replace("name: otlp_metrics", "name: otlp_metrics.2");
        assert!(matches!(decoder(&broken), Some(Err(_))));
    }

    #[test]
    fn every_layout_decodes_in_both_byte_orders() {
        let mut context = EventHeaderEnumeratorContext::new();
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let fields = decoder(EXAMPLE_FORMAT).unwrap().unwrap();
            let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
            let raw = encode_raw_sample_in(order, &format, 1535, 7, b"abc").unwrap();
            let payload = fields.with_byte_order(order).decode(&mut context, &raw);
            assert_eq!(payload.unwrap().unwrap().buffer, b"abc");

            let cpp = decoder(LENGTH_PREFIXED_FORMAT).unwrap().unwrap();
            let raw = encode_length_prefixed(order, 1536, 7, b"defg");
            let payload = cpp.with_byte_order(order).decode(&mut context, &raw);
            assert_eq!(payload.unwrap().unwrap().buffer, b"defg");
        }
    }
}
