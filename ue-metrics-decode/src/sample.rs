//! Whole tracepoint records (`trace_entry` first, then the event's fields), as a perf ring,
//! a perf.data file or `trace_pipe_raw` hands them over.
//!
//! Fields are located through the parsed tracefs `format`, never at assumed offsets. A
//! `__data_loc` offset counts from the record start, a `__rel_loc` offset from the end of its
//! own 4-byte field. Bytes past the buffer (perf pads raw data to 8 bytes) are ignored.

use crate::format::{FieldKind, RecordFormat};
use crate::layout::ByteOrder;
use crate::payload::{FieldLayout, Payload};
use crate::DecodeError;

/// Decodes one raw record with the fields located by `format`.
///
/// Builds the field layout on every call; for a stream, build a [`SampleDecoder`] once.
pub fn decode_raw_sample<'a>(
    format: &RecordFormat,
    raw: &'a [u8],
) -> Result<Payload<'a>, DecodeError> {
    FieldLayout::from_format(format)?.decode(raw)
}

/// Decodes many raw records of one event: the format is looked at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleDecoder {
    layout: FieldLayout,
    common_pid: Option<usize>,
    byte_order: ByteOrder,
}

impl SampleDecoder {
    /// Locates the event's fields in `format`; fails if `protocol`, `version` or `buffer` is
    /// missing or has the wrong size or kind.
    pub fn new(format: &RecordFormat) -> Result<SampleDecoder, DecodeError> {
        let common_pid = format
            .field("common_pid")
            .filter(|f| f.size == 4 && f.kind == FieldKind::Scalar)
            .map(|f| f.offset);
        Ok(SampleDecoder {
            layout: FieldLayout::from_format(format)?,
            common_pid,
            byte_order: ByteOrder::NATIVE,
        })
    }

    /// The same decoder for records written on a machine of `byte_order` (e.g. a perf.data
    /// file from a big-endian host); the default is the machine's own.
    pub fn with_byte_order(self, byte_order: ByteOrder) -> SampleDecoder {
        SampleDecoder {
            layout: self.layout.with_byte_order(byte_order),
            byte_order,
            ..self
        }
    }

    /// Decodes one raw record.
    pub fn decode<'a>(&self, raw: &'a [u8]) -> Result<Payload<'a>, DecodeError> {
        self.layout.decode(raw)
    }

    /// The `common_pid` of the record's `trace_entry` (the writing thread's id), if the format
    /// has one and the record is long enough.
    pub fn common_pid(&self, raw: &[u8]) -> Option<i32> {
        let offset = self.common_pid?;
        Some(self.byte_order.u32_at(raw, offset)? as i32)
    }
}

/// Builds a raw record as the kernel stores it for the given format: a `trace_entry` with
/// `common_type` and `common_pid`, the fixed fields, the buffer, and zero padding to 8 bytes.
///
/// For tests and tools. Returns `None` if `format` lacks one of the fields, a `__rel_loc`
/// would need an offset the layout cannot express, or the buffer is 64 KiB or larger.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub fn encode_raw_sample(
    format: &RecordFormat,
    common_type: u16,
    pid: i32,
    buffer: &[u8],
) -> Option<Vec<u8>> {
    encode_raw_sample_in(ByteOrder::NATIVE, format, common_type, pid, buffer)
}

/// [`encode_raw_sample`] as a kernel of `byte_order` stores the record.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub fn encode_raw_sample_in(
    byte_order: ByteOrder,
    format: &RecordFormat,
    common_type: u16,
    pid: i32,
    buffer: &[u8],
) -> Option<Vec<u8>> {
    let len = u16::try_from(buffer.len()).ok()?;
    let protocol = format.field("protocol")?;
    let version = format.field("version")?;
    let loc = format.field("buffer")?;
    let fixed_end = format.fields().iter().map(|f| f.end()).max()?;
    let data_start = fixed_end;
    let mut raw = vec![0u8; data_start + buffer.len()];
    if let Some(f) = format.field("common_type").filter(|f| f.size == 2) {
        raw[f.offset..f.end()].copy_from_slice(&byte_order.u16_bytes(common_type));
    }
    if let Some(f) = format.field("common_pid").filter(|f| f.size == 4) {
        raw[f.offset..f.end()].copy_from_slice(&byte_order.u32_bytes(pid as u32));
    }
    raw.get_mut(protocol.offset..protocol.end())?
        .copy_from_slice(&byte_order.u32_bytes(crate::payload::PROTOCOL_PROTOBUF));
    raw.get_mut(version.offset..version.end())?
        .copy_from_slice(crate::payload::VERSION.as_bytes());
    let offset = match loc.kind {
        FieldKind::RelLoc => data_start.checked_sub(loc.end())?,
        FieldKind::DataLoc => data_start,
        _ => return None,
    };
    let offset = u16::try_from(offset).ok()?;
    let loc_value = (u32::from(len) << 16) | u32::from(offset);
    raw.get_mut(loc.offset..loc.end())?
        .copy_from_slice(&byte_order.u32_bytes(loc_value));
    raw[data_start..].copy_from_slice(buffer);
    raw.resize(raw.len().next_multiple_of(8), 0);
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp_format() -> RecordFormat {
        RecordFormat::parse(crate::format::EXAMPLE_FORMAT).unwrap()
    }

    #[test]
    fn decodes_a_record_with_trace_entry_and_padding() {
        let format = otlp_format();
        let raw = encode_raw_sample(&format, 1535, 4242, b"hello").unwrap();
        assert_eq!(raw.len(), 32); // 24 fixed + 5 data, padded to 8
        let decoder = SampleDecoder::new(&format).unwrap();
        let payload = decoder.decode(&raw).unwrap();
        assert_eq!(payload.buffer, b"hello");
        assert_eq!(payload.buffer_offset, 24);
        assert_eq!(payload.version, "v0.19.00");
        assert_eq!(decoder.common_pid(&raw), Some(4242));
        assert_eq!(decode_raw_sample(&format, &raw).unwrap(), payload);
    }

    #[test]
    fn records_of_the_other_byte_order_decode_with_it() {
        let format = otlp_format();
        let native = SampleDecoder::new(&format).unwrap();
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let raw = encode_raw_sample_in(order, &format, 1535, 4242, b"hello").unwrap();
            let decoder = native.with_byte_order(order);
            assert_eq!(decoder.decode(&raw).unwrap().buffer, b"hello");
            assert_eq!(decoder.common_pid(&raw), Some(4242));
            let wrong = if order == ByteOrder::Big {
                ByteOrder::Little
            } else {
                ByteOrder::Big
            };
            // Read in the wrong order the rel_loc points outside the record.
            assert!(native.with_byte_order(wrong).decode(&raw).is_err());
        }
    }

    #[test]
    fn data_loc_offsets_count_from_the_record_start() {
        let text = crate::format::EXAMPLE_FORMAT
            .replace("__rel_loc u8 buffer[3735928559]", "__data_loc u8[] buffer");
        let format = RecordFormat::parse(&text).unwrap();
        assert_eq!(format.field("buffer").unwrap().kind, FieldKind::DataLoc);
        let raw = encode_raw_sample(&format, 1, 2, b"abc").unwrap();
        assert_eq!(
            u32::from_ne_bytes(raw[20..24].try_into().unwrap()),
            (3 << 16) | 24
        );
        assert_eq!(decode_raw_sample(&format, &raw).unwrap().buffer, b"abc");
    }

    #[test]
    fn fields_are_found_where_the_format_says() {
        // Same fields, other order and offsets: nothing may be assumed.
        let text = "format:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
            \tfield:__rel_loc u8 buffer[];\toffset:8;\tsize:4;\tsigned:0;\n\
            \tfield:u64 extra;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:char version[8];\toffset:24;\tsize:8;\tsigned:0;\n\
            \tfield:u32 protocol;\toffset:32;\tsize:4;\tsigned:0;\n";
        let format = RecordFormat::parse(text).unwrap();
        let raw = encode_raw_sample(&format, 7, 8, b"payload").unwrap();
        let payload = decode_raw_sample(&format, &raw).unwrap();
        assert_eq!(payload.buffer, b"payload");
        assert_eq!(payload.buffer_offset, 36);
    }

    #[test]
    fn errors_carry_offsets_within_the_record() {
        let format = otlp_format();
        let raw = encode_raw_sample(&format, 1, 2, b"hello").unwrap();
        assert_eq!(
            decode_raw_sample(&format, &raw[..22]).unwrap_err(),
            DecodeError::Truncated {
                offset: 20,
                needed: 24,
                available: 22
            }
        );
        let mut bad = raw.clone();
        bad[20..24].copy_from_slice(&((100u32 << 16) | 4).to_ne_bytes());
        assert_eq!(
            decode_raw_sample(&format, &bad).unwrap_err(),
            DecodeError::LocOutOfBounds {
                offset: 20,
                start: 28,
                end: 128,
                available: 32
            }
        );
        let mut bad = raw;
        bad[12] = b'x';
        assert_eq!(decode_raw_sample(&format, &bad).unwrap_err().offset(), 12);
    }

    #[test]
    fn formats_without_the_fields_are_rejected() {
        let text = "format:\n\tfield:int common_pid;\toffset:4;\tsize:4;\n\n\tfield:u32 protocol;\toffset:8;\tsize:4;\n";
        let format = RecordFormat::parse(text).unwrap();
        let err = SampleDecoder::new(&format).unwrap_err();
        assert!(matches!(err, DecodeError::Format { .. }), "{err:?}");
        let text = crate::format::EXAMPLE_FORMAT.replace("size:8;", "size:4;");
        let err = SampleDecoder::new(&RecordFormat::parse(&text).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
    }
}
