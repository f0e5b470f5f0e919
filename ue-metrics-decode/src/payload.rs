//! The event's own fields: `u32 protocol; char[8] version; __rel_loc u8[] buffer`.
//!
//! [`decode_payload`] reads them from the bytes a producer wrote after the write index (what
//! `ue-metrics-exporter` hands to `writev`); [`crate::decode_raw_sample`] reads them from a whole
//! tracepoint record through [`FieldLayout`]. Both borrow the OTLP buffer from the input.

use crate::format::{FieldKind, RecordFormat};
use crate::layout::ByteOrder;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::DecodeError;

/// `protocol` value of a protobuf-encoded `ExportMetricsServiceRequest`.
pub const PROTOCOL_PROTOBUF: u32 = 0;
/// The version string current producers write.
pub const VERSION: &str = "v0.19.00";
/// Bytes before the buffer in a payload: protocol (4), version (8), rel_loc (4).
pub const PAYLOAD_FIXED_BYTES: usize = 16;

/// One decoded record: its fixed fields and the OTLP buffer, borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The `protocol` field: always [`PROTOCOL_PROTOBUF`] after validation.
    pub protocol: u32,
    /// The `version` field without NUL padding, e.g. `v0.19.00`.
    pub version: &'a str,
    /// The serialized `ExportMetricsServiceRequest`.
    pub buffer: &'a [u8],
    /// Offset of `buffer` in the input it was decoded from (for error offsets).
    pub buffer_offset: usize,
}

impl Payload<'_> {
    /// Decodes the buffer into prost types.
    pub fn to_request(&self) -> Result<ExportMetricsServiceRequest, DecodeError> {
        decode_request(self.buffer).map_err(|e| e.shifted(self.buffer_offset))
    }
}

/// Decodes a serialized `ExportMetricsServiceRequest`; error offsets are relative to `buffer`.
pub fn decode_request(buffer: &[u8]) -> Result<ExportMetricsServiceRequest, DecodeError> {
    use prost::Message as _;
    if buffer.is_empty() {
        return Err(DecodeError::EmptyBuffer { offset: 0 });
    }
    ExportMetricsServiceRequest::decode(buffer).map_err(|e| DecodeError::Protobuf {
        offset: 0,
        reason: e.to_string(),
    })
}

/// Decodes a user payload: the bytes after the write index, fields at offsets 0, 4 and 12.
pub fn decode_payload(payload: &[u8]) -> Result<Payload<'_>, DecodeError> {
    FieldLayout::PAYLOAD.decode(payload)
}

/// [`decode_payload`] for a payload written on a machine of the given byte order (`protocol`
/// and the `__rel_loc` are in the writer's order).
pub fn decode_payload_in(
    payload: &[u8],
    byte_order: ByteOrder,
) -> Result<Payload<'_>, DecodeError> {
    FieldLayout::PAYLOAD
        .with_byte_order(byte_order)
        .decode(payload)
}

/// Where the three fields sit in a record. Built once per format, then used for every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    protocol: usize,
    version: usize,
    loc: usize,
    loc_is_relative: bool,
    end: usize,
    byte_order: ByteOrder,
}

impl FieldLayout {
    /// The layout of a user payload (what the producer writes after the write index).
    pub const PAYLOAD: FieldLayout = FieldLayout {
        protocol: 0,
        version: 4,
        loc: 12,
        loc_is_relative: true,
        end: PAYLOAD_FIXED_BYTES,
        byte_order: ByteOrder::NATIVE,
    };

    /// Finds `protocol` (4 bytes), `version` (8 bytes) and `buffer` (a 4-byte `__rel_loc` or
    /// `__data_loc`) in a parsed format. Offsets are from the start of the record.
    pub fn from_format(format: &RecordFormat) -> Result<FieldLayout, DecodeError> {
        let find = |name: &str, size: usize| {
            let field = format.field(name).ok_or_else(|| DecodeError::Format {
                offset: 0,
                reason: format!("the event has no `{name}` field"),
            })?;
            if field.size != size {
                return Err(DecodeError::Format {
                    offset: 0,
                    reason: format!("field `{name}` has {} bytes, expected {size}", field.size),
                });
            }
            Ok(field)
        };
        let protocol = find("protocol", 4)?;
        let version = find("version", 8)?;
        let buffer = find("buffer", 4)?;
        let loc_is_relative = match buffer.kind {
            FieldKind::RelLoc => true,
            FieldKind::DataLoc => false,
            kind => {
                return Err(DecodeError::Format {
                    offset: 0,
                    reason: format!("field `buffer` is {kind:?}, expected __rel_loc or __data_loc"),
                })
            }
        };
        Ok(FieldLayout {
            protocol: protocol.offset,
            version: version.offset,
            loc: buffer.offset,
            loc_is_relative,
            end: protocol.end().max(version.end()).max(buffer.end()),
            byte_order: ByteOrder::NATIVE,
        })
    }

    /// The same layout for records written on a machine of `byte_order` (the default is the
    /// machine's own).
    pub fn with_byte_order(self, byte_order: ByteOrder) -> FieldLayout {
        FieldLayout { byte_order, ..self }
    }

    /// Decodes one record laid out as described; never reads outside `record`.
    pub fn decode<'a>(&self, record: &'a [u8]) -> Result<Payload<'a>, DecodeError> {
        if record.len() < self.end {
            // Report the first field that does not fit.
            let mut fields = [(self.protocol, 4), (self.version, 8), (self.loc, 4)];
            fields.sort_unstable();
            let (offset, size) = fields
                .into_iter()
                .find(|&(offset, size)| offset + size > record.len())
                .unwrap_or((self.end, 0));
            return Err(DecodeError::truncated(offset, size, record.len()));
        }
        let protocol = read_u32(record, self.protocol, self.byte_order);
        if protocol != PROTOCOL_PROTOBUF {
            return Err(DecodeError::UnknownProtocol {
                offset: self.protocol,
                protocol,
            });
        }
        let version_bytes: &[u8; 8] = record[self.version..self.version + 8]
            .try_into()
            .expect("slice of 8");
        let version = parse_version(version_bytes).ok_or(DecodeError::InvalidVersion {
            offset: self.version,
            version: *version_bytes,
        })?;
        let loc = read_u32(record, self.loc, self.byte_order);
        let len = (loc >> 16) as usize;
        let base = if self.loc_is_relative {
            self.loc + 4
        } else {
            0
        };
        let start = base + (loc & 0xffff) as usize;
        let end = start + len;
        if end > record.len() {
            return Err(DecodeError::LocOutOfBounds {
                offset: self.loc,
                start,
                end,
                available: record.len(),
            });
        }
        Ok(Payload {
            protocol,
            version,
            buffer: &record[start..end],
            buffer_offset: start,
        })
    }
}

fn read_u32(bytes: &[u8], offset: usize, byte_order: ByteOrder) -> u32 {
    // Records are in the writer's byte order: the kernel reads these fields natively.
    byte_order
        .u32_at(bytes, offset)
        .expect("length checked by the caller")
}

/// A version is `v` then printable ASCII, optionally NUL-padded at the end.
fn parse_version(bytes: &[u8; 8]) -> Option<&str> {
    let text_len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let (text, padding) = bytes.split_at(text_len);
    let valid = text.first() == Some(&b'v')
        && text.iter().all(|b| b.is_ascii_graphic())
        && padding.iter().all(|&b| b == 0);
    valid.then(|| std::str::from_utf8(text).expect("ASCII"))
}

/// Builds a payload as a producer writes it: the fixed fields, then `buffer`.
///
/// For tests and tools; panics if `buffer` is 64 KiB or larger (the length field has 16 bits).
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub fn encode_payload(buffer: &[u8]) -> Vec<u8> {
    encode_payload_in(buffer, ByteOrder::NATIVE)
}

/// [`encode_payload`] as a producer on a machine of `byte_order` writes it.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub fn encode_payload_in(buffer: &[u8], byte_order: ByteOrder) -> Vec<u8> {
    let len = u16::try_from(buffer.len()).expect("buffer under 64 KiB");
    let mut out = Vec::with_capacity(PAYLOAD_FIXED_BYTES + buffer.len());
    out.extend_from_slice(&byte_order.u32_bytes(PROTOCOL_PROTOBUF));
    out.extend_from_slice(VERSION.as_bytes());
    out.extend_from_slice(&byte_order.u32_bytes(u32::from(len) << 16));
    out.extend_from_slice(buffer);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_payload_and_borrows_its_buffer() {
        let bytes = encode_payload(b"\x0a\x00");
        let payload = decode_payload(&bytes).unwrap();
        assert_eq!(payload.protocol, 0);
        assert_eq!(payload.version, "v0.19.00");
        assert_eq!(payload.buffer, b"\x0a\x00");
        assert_eq!(payload.buffer_offset, 16);
        assert!(std::ptr::eq(payload.buffer.as_ptr(), bytes[16..].as_ptr()));
    }

    #[test]
    fn the_rel_loc_offset_counts_from_the_end_of_the_loc_field() {
        // Two junk bytes between the loc field and the buffer: offset 2, length 3.
        let mut bytes = encode_payload(b"");
        bytes[12..16].copy_from_slice(&((3u32 << 16) | 2).to_ne_bytes());
        bytes.extend_from_slice(b"..abc");
        assert_eq!(decode_payload(&bytes).unwrap().buffer, b"abc");
    }

    #[test]
    fn trailing_bytes_past_the_buffer_are_ignored() {
        let mut bytes = encode_payload(b"xyz");
        bytes.extend_from_slice(&[0xAA; 5]);
        assert_eq!(decode_payload(&bytes).unwrap().buffer, b"xyz");
    }

    #[test]
    fn every_error_says_where() {
        let good = encode_payload(b"abc");
        assert_eq!(
            decode_payload(&good[..10]),
            Err(DecodeError::Truncated {
                offset: 4,
                needed: 12,
                available: 10
            })
        );
        let mut bad = good.clone();
        bad[0] = 1;
        assert_eq!(
            decode_payload(&bad),
            Err(DecodeError::UnknownProtocol {
                offset: 0,
                protocol: u32::from_ne_bytes([1, 0, 0, 0])
            })
        );
        let mut bad = good.clone();
        bad[4] = b'x';
        assert_eq!(decode_payload(&bad).unwrap_err().offset(), 4);
        let mut bad = good.clone();
        bad.truncate(18);
        assert_eq!(
            decode_payload(&bad),
            Err(DecodeError::LocOutOfBounds {
                offset: 12,
                start: 16,
                end: 19,
                available: 18
            })
        );
    }

    #[test]
    fn payloads_of_either_byte_order_decode_when_the_order_is_given() {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let bytes = encode_payload_in(b"abc", order);
            let payload = decode_payload_in(&bytes, order).unwrap();
            assert_eq!((payload.buffer, payload.buffer_offset), (&b"abc"[..], 16));
        }
        // A big-endian payload read as little-endian: the rel_loc says offset 3 << 8, length 0.
        let big = encode_payload_in(b"abc", ByteOrder::Big);
        assert_eq!(&big[12..16], &[0, 3, 0, 0]);
        assert!(matches!(
            decode_payload_in(&big, ByteOrder::Little),
            Err(DecodeError::LocOutOfBounds { offset: 12, .. })
        ));
        // protocol 1, written big-endian, is reported as 1 when read big-endian.
        let mut bad = big.clone();
        bad[..4].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            decode_payload_in(&bad, ByteOrder::Big),
            Err(DecodeError::UnknownProtocol {
                offset: 0,
                protocol: 1
            })
        );
    }

    #[test]
    fn versions_may_be_nul_padded_but_not_garbage() {
        assert_eq!(parse_version(b"v1.0\0\0\0\0"), Some("v1.0"));
        assert_eq!(parse_version(b"v0.19.00"), Some("v0.19.00"));
        assert_eq!(parse_version(b"\0\0\0\0\0\0\0\0"), None);
        assert_eq!(parse_version(b"v1\0.0000"), None);
        assert_eq!(parse_version(b"v0 19.00"), None);
    }

    #[test]
    fn protobuf_errors_point_at_the_buffer() {
        let bytes = encode_payload(&[0x0a, 0x05, 0x01]); // field 1, length 5, 1 byte present
        let err = decode_payload(&bytes).unwrap().to_request().unwrap_err();
        assert!(
            matches!(err, DecodeError::Protobuf { offset: 16, .. }),
            "{err:?}"
        );
        let bytes = encode_payload(&[]);
        let err = decode_payload(&bytes).unwrap().to_request().unwrap_err();
        assert_eq!(err, DecodeError::EmptyBuffer { offset: 16 });
    }
}
