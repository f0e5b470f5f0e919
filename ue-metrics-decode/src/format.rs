//! Parse a tracefs `format` file (`events/<group>/<event>/format`) into field positions.
//!
//! The kernel prints one line per field, e.g.
//! `\tfield:__rel_loc u8 buffer[];\toffset:20;\tsize:4;\tsigned:0;`. Only `offset` and `size` are
//! trusted: the array length in the declaration of a user_events `__rel_loc` field is sometimes
//! uninitialised kernel memory (see DESIGN.md), so it is parsed past and dropped.

use crate::DecodeError;

/// The `format` text of `user_events:otlp_metrics` as a 6.12 kernel prints it, including the
/// garbage array length the kernel sometimes shows for the `__rel_loc` field. For tests and docs.
pub const EXAMPLE_FORMAT: &str = "name: otlp_metrics\nID: 1535\nformat:\n\
    \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
    \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
    \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
    \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
    \n\
    \tfield:u32 protocol;\toffset:8;\tsize:4;\tsigned:0;\n\
    \tfield:char version[8];\toffset:12;\tsize:8;\tsigned:0;\n\
    \tfield:__rel_loc u8 buffer[3735928559];\toffset:20;\tsize:4;\tsigned:0;\n\
    \n\
    print fmt: \"protocol=%u version=%s\", REC->protocol, REC->version\n";

/// How a field's bytes are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldKind {
    /// A plain value of `size` bytes.
    Scalar,
    /// A fixed-size array of `size` bytes (e.g. `char version[8]`).
    Array,
    /// `__rel_loc`: a 4-byte `(len << 16) | offset`, the offset counted from the end of the field.
    RelLoc,
    /// `__data_loc`: a 4-byte `(len << 16) | offset`, the offset counted from the record start.
    DataLoc,
}

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFormat {
    /// Field name, e.g. `buffer`.
    pub name: String,
    /// The declared type without the name and without any array suffix, e.g. `__rel_loc u8`.
    pub type_name: String,
    /// Byte offset from the start of the record (the `trace_entry` is at 0).
    pub offset: usize,
    /// Size in bytes of the field itself (4 for a `__rel_loc`, not the data it points to).
    pub size: usize,
    /// The `signed:` property, when the line has one.
    pub signed: Option<bool>,
    /// How the bytes are to be read.
    pub kind: FieldKind,
}

impl FieldFormat {
    /// Builds a field from a C-like declaration (`char version[8]`, `__rel_loc u8[] buffer`) and
    /// its offset and size. Any array length in `declaration` is ignored.
    pub fn from_declaration(
        declaration: &str,
        offset: usize,
        size: usize,
        signed: Option<bool>,
    ) -> Result<FieldFormat, String> {
        let mut rest = declaration.trim();
        let mut array = false;
        if rest.ends_with(']') {
            let open = rest
                .rfind('[')
                .ok_or_else(|| format!("unbalanced ']' in field declaration {declaration:?}"))?;
            rest = rest[..open].trim_end();
            array = true;
        }
        let split = rest
            .rfind(|c: char| c.is_ascii_whitespace())
            .ok_or_else(|| format!("field declaration {declaration:?} has no type"))?;
        let name = &rest[split + 1..];
        let type_name = rest[..split].trim();
        if !is_identifier(name) {
            return Err(format!("invalid field name {name:?} in {declaration:?}"));
        }
        if type_name.is_empty() {
            return Err(format!("field declaration {declaration:?} has no type"));
        }
        array |= type_name.contains('[');
        let kind = if type_name.starts_with("__rel_loc") {
            FieldKind::RelLoc
        } else if type_name.starts_with("__data_loc") {
            FieldKind::DataLoc
        } else if array {
            FieldKind::Array
        } else {
            FieldKind::Scalar
        };
        Ok(FieldFormat {
            name: name.to_owned(),
            type_name: type_name.to_owned(),
            offset,
            size,
            signed,
            kind,
        })
    }

    /// One past the field's last byte.
    pub fn end(&self) -> usize {
        self.offset.saturating_add(self.size)
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The parsed layout of one tracepoint's records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordFormat {
    name: Option<String>,
    id: Option<u32>,
    fields: Vec<FieldFormat>,
    common_count: usize,
}

/// Offsets and sizes larger than this are not from a tracepoint record (perf caps them at 64 KiB).
const MAX_FIELD_END: usize = 1 << 16;

impl RecordFormat {
    /// Parses the text of a tracefs `format` file.
    ///
    /// Requires at least one `field:` line, each with `offset:` and `size:`; `name:` and `ID:`
    /// are optional. Fields before the first blank line of the `format:` section are the common
    /// (`trace_entry`) fields.
    pub fn parse(text: &str) -> Result<RecordFormat, DecodeError> {
        let mut format = RecordFormat::default();
        let mut in_format = false;
        let mut in_common = true;
        let mut line_start = 0;
        for raw_line in text.split_inclusive('\n') {
            let offset = line_start;
            line_start += raw_line.len();
            let line = raw_line.trim();
            if line.is_empty() {
                if in_format && !format.fields.is_empty() {
                    in_common = false;
                }
                continue;
            }
            if line.starts_with("field:") || line.starts_with("field special:") {
                let field = parse_field_line(line).map_err(|reason| DecodeError::Format {
                    offset: offset + (raw_line.len() - raw_line.trim_start().len()),
                    reason,
                })?;
                format.fields.push(field);
                if in_common {
                    format.common_count += 1;
                }
                continue;
            }
            let (key, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.trim();
            match key {
                "name" => format.name = Some(value.to_owned()),
                "ID" => {
                    format.id = Some(value.parse().map_err(|_| DecodeError::Format {
                        offset,
                        reason: format!("invalid ID {value:?}"),
                    })?)
                }
                "format" => in_format = true,
                _ => in_format = false, // "print fmt:" and anything newer ends the field list.
            }
        }
        if format.fields.is_empty() {
            return Err(DecodeError::Format {
                offset: text.len(),
                reason: "no `field:` lines".into(),
            });
        }
        if format.common_count == format.fields.len() {
            // No blank line between common and event fields: fall back on the kernel's naming.
            format.common_count = format
                .fields
                .iter()
                .take_while(|f| f.name.starts_with("common_"))
                .count();
        }
        Ok(format)
    }

    /// Builds a format from already parsed fields (e.g. from a perf.data file's tracing data).
    /// `common_count` leading fields are the `trace_entry` fields.
    pub fn from_fields(
        name: Option<String>,
        id: Option<u32>,
        fields: Vec<FieldFormat>,
        common_count: usize,
    ) -> RecordFormat {
        let common_count = common_count.min(fields.len());
        RecordFormat {
            name,
            id,
            fields,
            common_count,
        }
    }

    /// The `name:` line, e.g. `otlp_metrics`.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The `ID:` line: the tracepoint id perf_event_open takes as `config`.
    pub fn id(&self) -> Option<u32> {
        self.id
    }

    /// All fields, common fields first.
    pub fn fields(&self) -> &[FieldFormat] {
        &self.fields
    }

    /// The common (`trace_entry`) fields.
    pub fn common_fields(&self) -> &[FieldFormat] {
        &self.fields[..self.common_count]
    }

    /// The event's own fields, after the common ones.
    pub fn event_fields(&self) -> &[FieldFormat] {
        &self.fields[self.common_count..]
    }

    /// Looks a field up by name.
    pub fn field(&self, name: &str) -> Option<&FieldFormat> {
        self.fields.iter().find(|f| f.name == name)
    }
}

fn parse_field_line(line: &str) -> Result<FieldFormat, String> {
    let mut declaration = None;
    let mut offset = None;
    let mut size = None;
    let mut signed = None;
    for part in line.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once(':') else {
            return Err(format!("expected `key:value` in {part:?}"));
        };
        let value = value.trim();
        match key.trim() {
            "field" | "field special" => declaration = Some(value),
            "offset" => offset = Some(parse_number(key, value)?),
            "size" => size = Some(parse_number(key, value)?),
            "signed" => signed = Some(parse_number(key, value)? != 0),
            _ => {} // Properties added by newer kernels are not needed.
        }
    }
    let declaration = declaration.ok_or("no field declaration")?;
    let offset = offset.ok_or("field line without offset")?;
    let size = size.ok_or("field line without size")?;
    if offset + size > MAX_FIELD_END {
        return Err(format!(
            "field ends at byte {}, past the 64 KiB a record can hold",
            offset + size
        ));
    }
    FieldFormat::from_declaration(declaration, offset, size, signed)
}

fn parse_number(key: &str, value: &str) -> Result<usize, String> {
    value
        .parse::<u32>()
        .map(|n| n as usize)
        .map_err(|_| format!("invalid {key} {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format_of_otlp_metrics() {
        let format = RecordFormat::parse(EXAMPLE_FORMAT).unwrap();
        assert_eq!(format.name(), Some("otlp_metrics"));
        assert_eq!(format.id(), Some(1535));
        assert_eq!(format.common_fields().len(), 4);
        let names: Vec<_> = format.event_fields().iter().map(|f| &f.name[..]).collect();
        assert_eq!(names, ["protocol", "version", "buffer"]);
        let buffer = format.field("buffer").unwrap();
        assert_eq!(
            (buffer.offset, buffer.size, buffer.kind),
            (20, 4, FieldKind::RelLoc)
        );
        assert_eq!(buffer.type_name, "__rel_loc u8");
        let version = format.field("version").unwrap();
        assert_eq!(version.kind, FieldKind::Array);
        let pid = format.field("common_pid").unwrap();
        assert_eq!(
            (pid.offset, pid.size, pid.signed, pid.kind),
            (4, 4, Some(true), FieldKind::Scalar)
        );
    }

    #[test]
    fn declarations_with_the_array_marker_on_the_type() {
        let f = FieldFormat::from_declaration("__data_loc char[] name", 8, 4, None).unwrap();
        assert_eq!((f.name.as_str(), f.kind), ("name", FieldKind::DataLoc));
        let f = FieldFormat::from_declaration("u8[] raw", 8, 0, None).unwrap();
        assert_eq!(f.kind, FieldKind::Array);
    }

    #[test]
    fn rejects_lines_without_offset_or_size_with_their_position() {
        let text = "format:\n\tfield:int a;\toffset:0;\tsize:4;\n\tfield:int b;\tsize:4;\n";
        let err = RecordFormat::parse(text).unwrap_err();
        let DecodeError::Format { offset, reason } = err else {
            panic!("unexpected {err:?}")
        };
        assert_eq!(offset, text.find("field:int b").unwrap());
        assert!(reason.contains("offset"), "{reason}");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for text in [
            "",
            "field:",
            "field:;offset:x;size:1",
            "field:]x;offset:0;size:1",
            "field:int 9a;offset:0;size:4",
            "field:int a;offset:65535;size:2",
            "ID: -1\nfield:int a;offset:0;size:4",
            "\u{0}field:int a; offset:0; size:4",
        ] {
            assert!(RecordFormat::parse(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn common_fields_fall_back_on_names_without_blank_line() {
        let text = "format:\n\tfield:int common_pid;\toffset:4;\tsize:4;\n\tfield:u32 protocol;\toffset:8;\tsize:4;\n";
        let format = RecordFormat::parse(text).unwrap();
        assert_eq!(format.common_fields().len(), 1);
        assert_eq!(format.event_fields()[0].name, "protocol");
    }
}
