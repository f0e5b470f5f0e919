//! The exporter's optional EventHeader mode: the OTLP buffer travels as a field of an
//! EventHeader event (tracepoint `<Provider>_L<level>K<keyword>`, e.g. `MyApp_L4K1`) instead of
//! in `user_events:otlp_metrics`.
//!
//! What is accepted (the contract with producers): a top-level field named `buffer` holding the
//! serialized `ExportMetricsServiceRequest`, encoded as binary (`BinaryLength16Char8`, what
//! `eventheader_dynamic::EventBuilder::add_binary` writes; recommended), as a counted string
//! (`StringLength16Char8`) or as an array of 8-bit values. An optional top-level `protocol` field
//! (any unsigned integer encoding) must be 0. Other fields are ignored. Events without a
//! `buffer` field are not ours and are skipped without error.

use eventheader_types::FieldEncoding;
use tracepoint_decode::{EventHeaderEnumeratorContext, EventHeaderEnumeratorState};

use crate::layout::ByteOrder;
use crate::DecodeError;

/// Most `move_next` calls spent on one event (bounds the work on hostile input).
const MOVE_NEXT_LIMIT: u32 = 4096;

/// The OTLP buffer of an EventHeader event and its offset in `event_data`.
///
/// `tracepoint_name` is the tracepoint's name (e.g. `MyApp_L4K1`), `event_data` the record's user
/// data starting at the `eventheader_flags` field. Returns `Ok(None)` for events without a
/// `buffer` field.
pub fn find_buffer<'a>(
    context: &mut EventHeaderEnumeratorContext,
    tracepoint_name: &str,
    event_data: &'a [u8],
) -> Result<Option<(&'a [u8], usize)>, DecodeError> {
    check_metadata(event_data)?;
    let mut e = context
        .enumerate_with_name_and_data(tracepoint_name, event_data, MOVE_NEXT_LIMIT)
        .map_err(|err| DecodeError::EventHeader {
            offset: 0,
            reason: format!("not a readable EventHeader event: {err}"),
        })?;
    let offset_of = |bytes: &[u8]| bytes.as_ptr() as usize - event_data.as_ptr() as usize;
    let mut found = None;
    // Walk the top-level items only: move_next_sibling steps over structs and arrays.
    let mut more = e.move_next();
    while more {
        let item = e.item_info();
        let value = *item.value();
        let meta = value.metadata();
        let encoding = meta.encoding().without_flags();
        match (item.name_bytes(), e.state()) {
            (b"buffer", EventHeaderEnumeratorState::Value)
                if matches!(
                    encoding,
                    FieldEncoding::BinaryLength16Char8 | FieldEncoding::StringLength16Char8
                ) =>
            {
                found = Some((value.bytes(), offset_of(value.bytes())));
            }
            (b"buffer", EventHeaderEnumeratorState::ArrayBegin)
                if encoding == FieldEncoding::Value8 =>
            {
                found = Some((value.bytes(), offset_of(value.bytes())));
            }
            (b"buffer", _) => {
                return Err(DecodeError::EventHeader {
                    offset: offset_of(value.bytes()),
                    reason: format!("field `buffer` has unsupported encoding {encoding}"),
                })
            }
            (b"protocol", EventHeaderEnumeratorState::Value) => {
                let protocol = match meta.type_size() {
                    1 => u64::from(value.to_u8(0)),
                    2 => u64::from(value.to_u16(0)),
                    4 => u64::from(value.to_u32(0)),
                    8 => value.to_u64(0),
                    _ => u64::MAX,
                };
                if protocol != 0 {
                    return Err(DecodeError::UnknownProtocol {
                        offset: offset_of(value.bytes()),
                        protocol: u32::try_from(protocol).unwrap_or(u32::MAX),
                    });
                }
            }
            _ => {}
        }
        more = e.move_next_sibling();
    }
    if e.state() == EventHeaderEnumeratorState::Error {
        let position = e.raw_data_position();
        return Err(DecodeError::EventHeader {
            offset: event_data.len() - position.len(),
            reason: format!("malformed event: {}", e.last_error()),
        });
    }
    Ok(found)
}

/// Rejects field metadata that `tracepoint_decode` 0.5.0 does not handle gracefully (found by
/// fuzzing; each trips a debug assertion in its enumerator): an encoding byte with both array
/// flags (`CArray | VArray`), and a struct with zero fields. Everything else is left to the
/// enumerator.
fn check_metadata(event_data: &[u8]) -> Result<(), DecodeError> {
    const HEADER: usize = 8;
    const FLAG_LITTLE_ENDIAN: u8 = 0x02;
    const FLAG_EXTENSION: u8 = 0x04;
    const KIND_METADATA: u16 = 1;
    const KIND_CHAIN: u16 = 0x8000;
    const ARRAY_FLAGS: u8 = 0x60;
    const C_ARRAY: u8 = 0x20;
    const CHAIN: u8 = 0x80;
    const ENCODING_MASK: u8 = 0x1F;
    const STRUCT: u8 = 1;
    let bad = |offset: usize, reason: &str| DecodeError::EventHeader {
        offset,
        reason: reason.to_owned(),
    };
    let Some(&flags) = event_data.first() else {
        return Ok(()); // the enumerator reports short events
    };
    if flags & FLAG_EXTENSION == 0 {
        return Ok(());
    }
    // The event says its own byte order (a big-endian writer clears the flag).
    let order = ByteOrder::from_big_endian(flags & FLAG_LITTLE_ENDIAN == 0);
    let u16_at = |pos: usize| order.u16_at(event_data, pos);
    let mut pos = HEADER;
    loop {
        let (Some(size), Some(kind)) = (u16_at(pos), u16_at(pos + 2)) else {
            return Ok(());
        };
        let start = pos + 4;
        let end = start + usize::from(size);
        if kind & !KIND_CHAIN == KIND_METADATA {
            let meta = event_data
                .get(start..end.min(event_data.len()))
                .unwrap_or(&[]);
            // Event name, then per field: name, encoding [, format [, tag]] [, count].
            let mut i = match meta.iter().position(|&b| b == 0) {
                Some(nul) => nul + 1,
                None => return Ok(()),
            };
            while i < meta.len() {
                let Some(nul) = meta[i..].iter().position(|&b| b == 0) else {
                    return Ok(());
                };
                i += nul + 1;
                let Some(&encoding) = meta.get(i) else {
                    return Ok(());
                };
                if encoding & ARRAY_FLAGS == ARRAY_FLAGS {
                    return Err(bad(start + i, "field encoding has both array flags set"));
                }
                i += 1;
                let mut format = 0;
                if encoding & CHAIN != 0 {
                    format = meta.get(i).copied().unwrap_or(0);
                    i += 1;
                    if format & CHAIN != 0 {
                        i += 2; // tag
                    }
                }
                // For a struct the format byte is its field count: zero trips an assertion.
                if encoding & ENCODING_MASK == STRUCT && format & !CHAIN == 0 {
                    return Err(bad(start + i, "struct field with no fields"));
                }
                if encoding & C_ARRAY != 0 {
                    i += 2; // element count
                }
            }
        }
        if kind & KIND_CHAIN == 0 {
            return Ok(());
        }
        pos = end;
    }
}

/// Builds an EventHeader event's user data (little-endian, 64-bit) with the given fields, for
/// tests and tools: `fields` are (name, encoding byte, data bytes as they go into the event).
pub fn encode_event(event_name: &str, fields: &[(&str, u8, &[u8])]) -> Vec<u8> {
    encode_event_in(ByteOrder::Little, event_name, fields)
}

/// [`encode_event`] as a writer of `byte_order` builds it (the field data must already be in
/// that order, e.g. from [`binary_field_in`]).
pub fn encode_event_in(
    byte_order: ByteOrder,
    event_name: &str,
    fields: &[(&str, u8, &[u8])],
) -> Vec<u8> {
    let mut meta = Vec::new();
    meta.extend_from_slice(event_name.as_bytes());
    meta.push(0);
    let mut data = Vec::new();
    for (name, encoding, bytes) in fields {
        meta.extend_from_slice(name.as_bytes());
        meta.push(0);
        meta.push(*encoding);
        data.extend_from_slice(bytes);
    }
    let little = if byte_order == ByteOrder::Little {
        0x02
    } else {
        0
    };
    let mut out = vec![
        0x05 | little, // flags: Pointer64 | Extension, LittleEndian for little-endian writers
        0,             // version
        0,
        0, // id
        0,
        0, // tag
        0, // opcode: Info
        4, // level: Informational
    ];
    out.extend_from_slice(&byte_order.u16_bytes(meta.len() as u16));
    out.extend_from_slice(&byte_order.u16_bytes(1)); // ExtensionKind::Metadata, no chain
    out.extend_from_slice(&meta);
    out.extend_from_slice(&data);
    out
}

/// The data bytes of a `BinaryLength16Char8` field: u16 length, then the bytes. `None` if
/// `bytes` is 64 KiB or larger.
pub fn binary_field(bytes: &[u8]) -> Option<Vec<u8>> {
    binary_field_in(ByteOrder::Little, bytes)
}

/// [`binary_field`] with its length in `byte_order`.
pub fn binary_field_in(byte_order: ByteOrder, bytes: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(bytes.len()).ok()?;
    let mut out = byte_order.u16_bytes(len).to_vec();
    out.extend_from_slice(bytes);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BINARY: u8 = 13;
    const VALUE32: u8 = 4;
    const VALUE8_VARRAY: u8 = 2 | 0x40;

    fn find(name: &str, data: &[u8]) -> Result<Option<(Vec<u8>, usize)>, DecodeError> {
        let mut ctx = EventHeaderEnumeratorContext::new();
        find_buffer(&mut ctx, name, data).map(|o| o.map(|(b, off)| (b.to_vec(), off)))
    }

    #[test]
    fn finds_a_binary_buffer_field() {
        let data = encode_event(
            "otlp",
            &[
                ("protocol", VALUE32, &0u32.to_le_bytes()),
                ("buffer", BINARY, &binary_field(b"\x0a\x00").unwrap()),
            ],
        );
        let (buffer, offset) = find("MyApp_L4K1", &data).unwrap().unwrap();
        assert_eq!(buffer, b"\x0a\x00");
        assert_eq!(&data[offset..offset + 2], b"\x0a\x00");
    }

    #[test]
    fn finds_a_byte_array_buffer_field() {
        let mut bytes = 3u16.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let data = encode_event("otlp", &[("buffer", VALUE8_VARRAY, &bytes)]);
        assert_eq!(find("MyApp_L4K1", &data).unwrap().unwrap().0, b"abc");
    }

    #[test]
    fn big_endian_events_are_read_in_their_order() {
        let data = encode_event_in(
            ByteOrder::Big,
            "otlp",
            &[
                ("protocol", VALUE32, &0u32.to_be_bytes()),
                (
                    "buffer",
                    BINARY,
                    &binary_field_in(ByteOrder::Big, b"\x0a\x00big").unwrap(),
                ),
            ],
        );
        assert_eq!(data[0] & 0x02, 0, "no LittleEndian flag");
        let (buffer, offset) = find("MyApp_L4K1", &data).unwrap().unwrap();
        assert_eq!(buffer, b"\x0a\x00big");
        assert_eq!(&data[offset..offset + 5], b"\x0a\x00big");
        // The metadata check reads the extension header in the event's order too: a struct
        // with zero fields is caught in a big-endian event as well.
        const STRUCT_WITH_FORMAT: u8 = 1 | 0x80;
        let mut bad = encode_event_in(ByteOrder::Big, "otlp", &[("s", STRUCT_WITH_FORMAT, &[])]);
        bad.push(0); // its format byte (field count): 0, in the metadata
        let meta_len = u16::from_be_bytes([bad[8], bad[9]]) + 1;
        bad[8..10].copy_from_slice(&meta_len.to_be_bytes());
        let err = find("MyApp_L4K1", &bad).unwrap_err();
        assert!(
            err.to_string().contains("struct field with no fields"),
            "{err}"
        );
    }

    #[test]
    fn events_without_buffer_are_not_ours() {
        let data = encode_event("other", &[("x", VALUE32, &7u32.to_le_bytes())]);
        assert_eq!(find("MyApp_L4K1", &data).unwrap(), None);
    }

    #[test]
    fn bad_protocol_and_bad_events_are_errors() {
        let data = encode_event(
            "otlp",
            &[
                ("protocol", VALUE32, &1u32.to_le_bytes()),
                ("buffer", BINARY, &binary_field(b"x").unwrap()),
            ],
        );
        assert!(matches!(
            find("MyApp_L4K1", &data),
            Err(DecodeError::UnknownProtocol { protocol: 1, .. })
        ));
        let data = encode_event(
            "otlp",
            &[("buffer", BINARY, &binary_field(b"xyz").unwrap())],
        );
        // Truncated data: the length says 3 bytes, 1 is there.
        let err = find("MyApp_L4K1", &data[..data.len() - 2]).unwrap_err();
        assert!(matches!(err, DecodeError::EventHeader { .. }), "{err:?}");
        // Not an EventHeader tracepoint name.
        assert!(find("otlp_metrics", &data).is_err());
        assert!(find("MyApp_L4K1", &[]).is_err());
    }
}
