//! What the producers of `otlp_metrics` put in a record, besides our own field layout:
//! the byte order of the machine that wrote it, the C++ exporter's length-prefixed layout, and
//! the names multi-format events get.
//!
//! - **Byte order.** The kernel reads and writes `__rel_loc`, `u32 protocol` and the C++
//!   exporter's length in the CPU's own order, so a record (or a perf.data file) from a
//!   big-endian machine (s390x, powerpc64) has them big-endian. [`ByteOrder`] says which.
//! - **Length-prefixed** ([`LengthPrefixedLayout`]): opentelemetry-cpp-contrib's user_events
//!   metrics exporter registers `otlp_metrics` with no fields and writes a native `u32` length,
//!   then the serialized request. Its format file lists only the common fields.
//! - **Multi-format events** (Linux 6.9+, `USER_EVENT_REG_MULTI_FORMAT`) live in the
//!   `user_events_multi` group as `<name>.<hex id>`: [`base_event_name`] gives `<name>` back.

use std::fmt;
use std::str::FromStr;

use crate::format::RecordFormat;
use crate::payload::{Payload, PROTOCOL_PROTOBUF};
use crate::DecodeError;

/// The tracefs group of events registered with `USER_EVENT_REG_MULTI_FORMAT`.
pub const MULTI_FORMAT_GROUP: &str = "user_events_multi";

/// Byte order of the machine that wrote a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Least significant byte first (x86_64, aarch64, riscv64, ...).
    Little,
    /// Most significant byte first (s390x, powerpc64 big-endian, ...).
    Big,
}

impl ByteOrder {
    /// The order of the machine this code runs on.
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "big") {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };

    /// `Big` when `big_endian`, else `Little`.
    pub fn from_big_endian(big_endian: bool) -> ByteOrder {
        if big_endian {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        }
    }

    /// Reads a `u16` at `offset`; `None` if the bytes are not there.
    pub fn u16_at(self, bytes: &[u8], offset: usize) -> Option<u16> {
        let b: [u8; 2] = bytes.get(offset..offset.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        })
    }

    /// Reads a `u32` at `offset`; `None` if the bytes are not there.
    pub fn u32_at(self, bytes: &[u8], offset: usize) -> Option<u32> {
        let b: [u8; 4] = bytes.get(offset..offset.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        })
    }

    /// Reads a `u64` at `offset`; `None` if the bytes are not there.
    pub fn u64_at(self, bytes: &[u8], offset: usize) -> Option<u64> {
        let b: [u8; 8] = bytes.get(offset..offset.checked_add(8)?)?.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u64::from_le_bytes(b),
            ByteOrder::Big => u64::from_be_bytes(b),
        })
    }

    /// The bytes of `value` in this order.
    pub fn u16_bytes(self, value: u16) -> [u8; 2] {
        match self {
            ByteOrder::Little => value.to_le_bytes(),
            ByteOrder::Big => value.to_be_bytes(),
        }
    }

    /// The bytes of `value` in this order.
    pub fn u32_bytes(self, value: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => value.to_le_bytes(),
            ByteOrder::Big => value.to_be_bytes(),
        }
    }

    /// The bytes of `value` in this order.
    pub fn u64_bytes(self, value: u64) -> [u8; 8] {
        match self {
            ByteOrder::Little => value.to_le_bytes(),
            ByteOrder::Big => value.to_be_bytes(),
        }
    }
}

impl FromStr for ByteOrder {
    type Err = String;

    /// `little`, `big` or `native`.
    fn from_str(text: &str) -> Result<ByteOrder, String> {
        match text {
            "little" => Ok(ByteOrder::Little),
            "big" => Ok(ByteOrder::Big),
            "native" => Ok(ByteOrder::NATIVE),
            other => Err(format!(
                "unknown byte order {other:?} (little, big, native)"
            )),
        }
    }
}

impl fmt::Display for ByteOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ByteOrder::Little => "little-endian",
            ByteOrder::Big => "big-endian",
        })
    }
}

/// The name a producer registered: a multi-format tracepoint `otlp_metrics.1a` is
/// `otlp_metrics`; other names are returned as they are.
pub fn base_event_name(tracepoint_name: &str) -> &str {
    match tracepoint_name.rsplit_once('.') {
        Some((base, id))
            if !base.is_empty() && !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            base
        }
        _ => tracepoint_name,
    }
}

/// Whether `tracepoint_name` is the event `name`, registered plainly or as a multi-format
/// event (`name.<hex id>`).
pub fn is_event(tracepoint_name: &str, name: &str) -> bool {
    tracepoint_name == name || base_event_name(tracepoint_name) == name
}

/// The C++ exporter's layout: after the common fields, a `u32` length in the writer's byte
/// order, then that many bytes of serialized request (perf pads the record to 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthPrefixedLayout {
    length_offset: usize,
    byte_order: ByteOrder,
}

impl LengthPrefixedLayout {
    /// The layout of a record whose format has no event fields (only the common ones): the
    /// length follows the last common field. `None` when the format has event fields.
    pub fn from_format(format: &RecordFormat) -> Option<LengthPrefixedLayout> {
        if !format.event_fields().is_empty() {
            return None;
        }
        let length_offset = format.common_fields().iter().map(|f| f.end()).max()?;
        Some(LengthPrefixedLayout {
            length_offset,
            byte_order: ByteOrder::NATIVE,
        })
    }

    /// The layout of the bytes the C++ exporter writes (after the write index): the length
    /// at offset 0.
    pub fn payload(byte_order: ByteOrder) -> LengthPrefixedLayout {
        LengthPrefixedLayout {
            length_offset: 0,
            byte_order,
        }
    }

    /// The same layout for records written in `byte_order`.
    pub fn with_byte_order(self, byte_order: ByteOrder) -> LengthPrefixedLayout {
        LengthPrefixedLayout { byte_order, ..self }
    }

    /// Where the length field is.
    pub fn length_offset(&self) -> usize {
        self.length_offset
    }

    /// Locates the request in one record; never reads outside `record`.
    pub fn decode<'a>(&self, record: &'a [u8]) -> Result<Payload<'a>, DecodeError> {
        let at = self.length_offset;
        let len = self
            .byte_order
            .u32_at(record, at)
            .ok_or(DecodeError::truncated(at, 4, record.len()))?;
        let start = at + 4;
        let end = start.saturating_add(len as usize);
        let buffer = record.get(start..end).ok_or(DecodeError::LocOutOfBounds {
            offset: at,
            start,
            end,
            available: record.len(),
        })?;
        Ok(Payload {
            protocol: PROTOCOL_PROTOBUF,
            version: "",
            buffer,
            buffer_offset: start,
        })
    }
}

/// Builds a C++-exporter record: a `trace_entry` (`common_type`, `pid`), the `u32` length in
/// `byte_order`, the request bytes, zero padding to 8 bytes. For tests and tools.
pub fn encode_length_prefixed(
    byte_order: ByteOrder,
    common_type: u16,
    pid: i32,
    request: &[u8],
) -> Vec<u8> {
    let mut raw = Vec::with_capacity(16 + request.len());
    raw.extend_from_slice(&byte_order.u16_bytes(common_type));
    raw.extend_from_slice(&[0, 0]); // common_flags, common_preempt_count
    raw.extend_from_slice(&byte_order.u32_bytes(pid as u32));
    raw.extend_from_slice(&byte_order.u32_bytes(request.len() as u32));
    raw.extend_from_slice(request);
    raw.resize(raw.len().next_multiple_of(8), 0);
    raw
}

/// The `format` text of a no-field `otlp_metrics` (the C++ exporter's registration) as a 6.12
/// kernel prints it. For tests and docs.
pub const LENGTH_PREFIXED_FORMAT: &str = "name: otlp_metrics\nID: 1536\nformat:\n\
    \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
    \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
    \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
    \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
    \n\
    print fmt: \"\"\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_orders_read_and_write_what_they_say() {
        let bytes = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(ByteOrder::Little.u32_at(&bytes, 0), Some(0x0403_0201));
        assert_eq!(ByteOrder::Big.u32_at(&bytes, 0), Some(0x0102_0304));
        assert_eq!(ByteOrder::Big.u16_at(&bytes, 6), Some(0x0708));
        assert_eq!(
            ByteOrder::Big.u64_at(&bytes, 0),
            Some(0x0102_0304_0506_0708)
        );
        assert_eq!(ByteOrder::Little.u32_at(&bytes, 5), None);
        assert_eq!(ByteOrder::Big.u32_at(&bytes, usize::MAX), None);
        for order in [ByteOrder::Little, ByteOrder::Big] {
            assert_eq!(
                order.u32_at(&order.u32_bytes(0xdead_beef), 0),
                Some(0xdead_beef)
            );
            assert_eq!(order.u64_at(&order.u64_bytes(7 << 40), 0), Some(7 << 40));
        }
        assert_eq!(
            ByteOrder::NATIVE.u32_bytes(0x0102_0304),
            0x0102_0304u32.to_ne_bytes()
        );
        assert_eq!("big".parse(), Ok(ByteOrder::Big));
        assert_eq!("native".parse(), Ok(ByteOrder::NATIVE));
        assert!("middle".parse::<ByteOrder>().is_err());
    }

    #[test]
    fn multi_format_names_give_the_registered_name() {
        assert_eq!(base_event_name("otlp_metrics.1a"), "otlp_metrics");
        assert_eq!(base_event_name("otlp_metrics"), "otlp_metrics");
        assert_eq!(base_event_name("otlp_metrics.x"), "otlp_metrics.x");
        assert_eq!(base_event_name(".1"), ".1");
        assert!(is_event("otlp_metrics.0", "otlp_metrics"));
        assert!(!is_event("otlp_metrics2.0", "otlp_metrics"));
    }

    #[test]
    fn length_prefixed_records_in_both_orders() {
        let format = RecordFormat::parse(LENGTH_PREFIXED_FORMAT).unwrap();
        let layout = LengthPrefixedLayout::from_format(&format).unwrap();
        assert_eq!(layout.length_offset(), 8);
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let raw = encode_length_prefixed(order, 1536, 42, b"\x0a\x00abc");
            assert_eq!(raw.len(), 24);
            let payload = layout.with_byte_order(order).decode(&raw).unwrap();
            assert_eq!(
                (payload.buffer, payload.buffer_offset),
                (&b"\x0a\x00abc"[..], 12)
            );
        }
        // Read in the wrong order, the length points far outside the record.
        let raw = encode_length_prefixed(ByteOrder::Big, 1, 2, b"xyz");
        let err = layout
            .with_byte_order(ByteOrder::Little)
            .decode(&raw)
            .unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::LocOutOfBounds {
                    offset: 8,
                    start: 12,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            layout.decode(&raw[..10]).unwrap_err(),
            DecodeError::Truncated {
                offset: 8,
                needed: 12,
                available: 10
            }
        );
        let payload = LengthPrefixedLayout::payload(ByteOrder::Big)
            .decode(&raw[8..])
            .unwrap();
        assert_eq!(payload.buffer, b"xyz");
    }

    #[test]
    fn formats_with_event_fields_are_not_length_prefixed() {
        let format = RecordFormat::parse(crate::format::EXAMPLE_FORMAT).unwrap();
        assert_eq!(LengthPrefixedLayout::from_format(&format), None);
    }
}
