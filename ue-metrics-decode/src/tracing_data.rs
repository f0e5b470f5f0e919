//! Checks the tracing data of a perf.data file (the tracefs `format` texts perf copies into it)
//! before `tracepoint_perf` parses it.
//!
//! `tracepoint_decode` 0.5 panics on some damaged format texts: a byte above 0x7f inside a
//! field declaration (its tokenizer slices the Latin-1-decoded text at byte offsets that are
//! not character boundaries), and, with debug assertions, a number past `u32::MAX`. The reader
//! parses the formats inside `open_file` (normal mode) or `move_next_event` (pipe mode, when the
//! tracing data record arrives), so the only place to reject them is before that: walk the
//! tracing data ourselves and refuse a file whose formats would trip the parser.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

const PIPE_HEADER_SIZE: u64 = 16;
/// Smallest header of a normal-mode file (the reader takes any larger size as normal mode).
const NORMAL_HEADER_SIZE: u64 = 104;
/// `PERF_RECORD_HEADER_TRACING_DATA`: a `u32` size after the 8-byte header; that many bytes of
/// tracing data follow the record.
const RECORD_TRACING_DATA: u32 = 66;
/// Feature bits: each set bit has a section entry after the data section, in bit order.
const FEATURE_RESERVED: u64 = 1 << 0;
const FEATURE_TRACING_DATA: u64 = 1 << 1;

/// Checks every format text the file at `path` carries, wherever the reader would take them
/// from: the tracing data feature section (normal mode) and `HEADER_TRACING_DATA` records in
/// the event stream (both modes). `Err` says which format is damaged and how; I/O errors and
/// damaged framing are left for the reader to report with their context. A stream that cannot
/// be read ahead (a pipe) is not checked: its formats arrive while it is read.
pub(crate) fn check_file(path: &Path) -> Result<(), String> {
    // Look before opening: opening a FIFO would take the stream's writer from the reader.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    let mut file = BufReader::new(file);
    match check_stream(&mut file) {
        Ok(()) | Err(Problem::Io) => Ok(()),
        Err(Problem::Damaged(reason)) => Err(reason),
    }
}

fn check_stream(file: &mut BufReader<File>) -> Result<(), Problem> {
    let mut header = [0u8; 16];
    file.read_exact(&mut header)?;
    let order = match &header[..8] {
        b"PERFILE2" => Order::Little,
        b"2ELIFREP" => Order::Big,
        _ => return Ok(()), // Not a perf.data file: the reader says so.
    };
    let header_size = order.u64(&header[8..]);
    if header_size == PIPE_HEADER_SIZE {
        return check_records(file, order, u64::MAX);
    }
    if header_size < NORMAL_HEADER_SIZE {
        return Ok(());
    }
    let mut rest = [0u8; (NORMAL_HEADER_SIZE - PIPE_HEADER_SIZE) as usize];
    file.read_exact(&mut rest)?;
    // attr_size, attrs {offset, size}, data {offset, size}, event_types {offset, size}, flags.
    let data_offset = order.u64(&rest[24..32]);
    let data_size = order.u64(&rest[32..40]);
    let flags = order.u64(&rest[56..64]);
    let Some(data_end) = data_offset.checked_add(data_size) else {
        return Ok(());
    };
    if flags & FEATURE_TRACING_DATA != 0 {
        let index = u64::from(flags & FEATURE_RESERVED != 0);
        file.seek(SeekFrom::Start(data_end + 16 * index))?;
        let mut section = [0u8; 16];
        file.read_exact(&mut section)?;
        let (offset, size) = (order.u64(&section[..8]), order.u64(&section[8..]));
        file.seek(SeekFrom::Start(offset))?;
        check_tracing_data(&read_at_most(file, size)?)?;
    }
    file.seek(SeekFrom::Start(data_offset))?;
    check_records(file, order, data_end)
}

/// Why the check stopped.
enum Problem {
    /// The file could not be read further (the reader reports this itself).
    Io,
    /// A format text the parser cannot take.
    Damaged(String),
}

impl From<io::Error> for Problem {
    fn from(_: io::Error) -> Self {
        Problem::Io
    }
}

/// The byte order of the file's own fields.
#[derive(Clone, Copy)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u64(self, bytes: &[u8]) -> u64 {
        let bytes: [u8; 8] = bytes.try_into().expect("8 bytes");
        match self {
            Order::Little => u64::from_le_bytes(bytes),
            Order::Big => u64::from_be_bytes(bytes),
        }
    }

    fn u32(self, bytes: &[u8]) -> u32 {
        let bytes: [u8; 4] = bytes.try_into().expect("4 bytes");
        match self {
            Order::Little => u32::from_le_bytes(bytes),
            Order::Big => u32::from_be_bytes(bytes),
        }
    }

    fn u16(self, bytes: &[u8]) -> u16 {
        let bytes: [u8; 2] = bytes.try_into().expect("2 bytes");
        match self {
            Order::Little => u16::from_le_bytes(bytes),
            Order::Big => u16::from_be_bytes(bytes),
        }
    }
}

/// Walks the records from the current position up to `end`; each `HEADER_TRACING_DATA` is
/// followed by its data, which is checked.
fn check_records(file: &mut BufReader<File>, order: Order, end: u64) -> Result<(), Problem> {
    let mut pos = file.stream_position()?;
    let mut header = [0u8; 8];
    while pos < end {
        match file.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let size = order.u16(&header[6..8]);
        if size < 8 {
            return Ok(()); // Damaged framing: the reader reports it where it happens.
        }
        pos += u64::from(size);
        if order.u32(&header[..4]) == RECORD_TRACING_DATA && size >= 12 {
            let mut data_size = [0u8; 4];
            file.read_exact(&mut data_size)?;
            file.seek_relative(i64::from(size) - 12)?;
            let data_size = u64::from(order.u32(&data_size));
            check_tracing_data(&read_at_most(file, data_size)?)?;
            pos += data_size;
        } else {
            file.seek_relative(i64::from(size) - 8)?;
        }
    }
    Ok(())
}

/// Reads `size` bytes, or what is there if the file ends first.
fn read_at_most(file: &mut BufReader<File>, size: u64) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    file.take(size).read_to_end(&mut data)?;
    Ok(data)
}

/// Walks tracing data ("\x17\x08\x44tracing", version, byte order, long size, page size,
/// header_page, header_event, ftrace formats, then per system the event formats) the way
/// `tracepoint_perf` does, checking each event format text. Stops quietly where the reader
/// would stop too (it ignores the rest of damaged tracing data).
fn check_tracing_data(data: &[u8]) -> Result<(), Problem> {
    const SIGNATURE: &[u8] = b"\x17\x08\x44tracing";
    let Some(rest) = data.strip_prefix(SIGNATURE) else {
        return Ok(());
    };
    let mut walk = Walk {
        data,
        pos: data.len() - rest.len(),
        big_endian: false,
    };
    let Some(_version) = walk.string() else {
        return Ok(());
    };
    let Some(&[big_endian, _long_size]) = walk.bytes(2) else {
        return Ok(());
    };
    walk.big_endian = big_endian != 0;
    let Some(_page_size) = walk.bytes(4) else {
        return Ok(());
    };
    // A section under another name is not an error to the reader: it stays where it is and
    // reads the next item from there (a fuzzed file hid its event formats this way). A section
    // whose size runs past the data ends its walk.
    for name in [&b"header_page\0"[..], b"header_event\0"] {
        if walk.data[walk.pos..].starts_with(name) {
            walk.pos += name.len();
            if walk.section(8).is_none() {
                return Ok(());
            }
        }
    }
    let Some(ftraces) = walk.number(4) else {
        return Ok(());
    };
    for _ in 0..ftraces {
        if walk.section(8).is_none() {
            return Ok(());
        }
    }
    let Some(systems) = walk.number(4) else {
        return Ok(());
    };
    for _ in 0..systems {
        let Some(system) = walk.string() else {
            return Ok(());
        };
        let system = String::from_utf8_lossy(system).into_owned();
        let Some(events) = walk.number(4) else {
            return Ok(());
        };
        for index in 0..events {
            let Some(text) = walk.section(8) else {
                return Ok(());
            };
            if let Some(reason) = format_text_problem(text) {
                return Err(Problem::Damaged(format!(
                    "event format {index} of system {system:?} in the tracing data is damaged \
                     ({reason}); tracepoint_decode cannot parse it"
                )));
            }
        }
    }
    Ok(())
}

/// A cursor over tracing data.
struct Walk<'a> {
    data: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Walk<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(bytes)
    }

    /// A NUL-terminated string (without the NUL).
    fn string(&mut self) -> Option<&'a [u8]> {
        let rest = self.data.get(self.pos..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        self.pos += len + 1;
        Some(&rest[..len])
    }

    /// A 4- or 8-byte unsigned number in the tracing data's byte order.
    fn number(&mut self, width: usize) -> Option<u64> {
        let bytes = self.bytes(width)?;
        let mut value = 0u64;
        for i in 0..width {
            let byte = if self.big_endian {
                bytes[i]
            } else {
                bytes[width - 1 - i]
            };
            value = value << 8 | u64::from(byte);
        }
        Some(value)
    }

    /// A size (`width` bytes) and that many bytes.
    fn section(&mut self, width: usize) -> Option<&'a [u8]> {
        let size = usize::try_from(self.number(width)?).ok()?;
        self.bytes(size)
    }
}

/// Why `text` would trip `tracepoint_decode`'s format parser, if it would: a byte that is not
/// ASCII; a second `format:` section (the parser clears its fields but keeps counting common
/// fields, then indexes past them); a number in an `ID:` or `field:` line that does not fit in
/// 32 bits; a field whose offset plus size does not fit in 16 bits (added as `u16`).
pub(crate) fn format_text_problem(text: &[u8]) -> Option<String> {
    if let Some(at) = text.iter().position(|&b| !b.is_ascii()) {
        return Some(format!(
            "byte {:#04x} at offset {at} is not ASCII",
            text[at]
        ));
    }
    let mut line_start = 0;
    let mut format_sections = 0;
    for line in text.split(|&b| b == b'\n' || b == b'\r') {
        let trimmed = line.trim_ascii_start();
        if trimmed.starts_with(b"format:") {
            format_sections += 1;
            if format_sections > 1 {
                return Some(format!("a second `format:` section at offset {line_start}"));
            }
        }
        if trimmed.starts_with(b"ID:") || trimmed.starts_with(b"field") {
            if let Some((at, number)) = oversized_number(line) {
                return Some(format!(
                    "number {number} at offset {} does not fit in 32 bits",
                    line_start + at
                ));
            }
        }
        if trimmed.starts_with(b"field") {
            let value = |key: &[u8]| property(line, key).unwrap_or(0);
            let end = value(b"offset") + value(b"size");
            if end > u64::from(u16::MAX) {
                return Some(format!(
                    "the field at offset {line_start} ends at byte {end}, past 64 KiB"
                ));
            }
        }
        line_start += line.len() + 1;
    }
    None
}

/// The value of `key:N` in a `field:` line (decimal or `0x` hexadecimal), as the parser reads
/// it: the low 16 bits of a 32-bit number.
fn property(line: &[u8], key: &[u8]) -> Option<u64> {
    line.split(|&b| b == b';').find_map(|part| {
        let part = part.trim_ascii();
        let value = part
            .strip_prefix(key)?
            .trim_ascii_start()
            .strip_prefix(b":")?;
        let value = std::str::from_utf8(value.trim_ascii()).ok()?;
        let number = match value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"))
        {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => value.parse::<u32>().ok()?,
        };
        Some(u64::from(number as u16))
    })
}

/// The first decimal or `0x` hexadecimal number in `line` above `u32::MAX`, with its offset.
fn oversized_number(line: &[u8]) -> Option<(usize, String)> {
    let mut pos = 0;
    while pos < line.len() {
        if !line[pos].is_ascii_digit() {
            pos += 1;
            continue;
        }
        let start = pos;
        let hex = line[pos] == b'0' && matches!(line.get(pos + 1), Some(b'x' | b'X'));
        let (digits_start, radix) = if hex { (pos + 2, 16) } else { (pos, 10) };
        let mut end = digits_start;
        while end < line.len() && char::from(line[end]).is_digit(radix) {
            end += 1;
        }
        let digits = std::str::from_utf8(&line[digits_start..end]).expect("ASCII digits");
        if !digits.is_empty() && u32::from_str_radix(digits, radix).is_err() {
            return Some((
                start,
                String::from_utf8_lossy(&line[start..end]).into_owned(),
            ));
        }
        pos = end.max(start + 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::EXAMPLE_FORMAT;

    #[test]
    fn the_kernel_format_passes() {
        assert_eq!(format_text_problem(EXAMPLE_FORMAT.as_bytes()), None);
    }

    #[test]
    fn bytes_and_numbers_the_parser_cannot_take_are_found() {
        let mut text = EXAMPLE_FORMAT.as_bytes().to_vec();
        let at = EXAMPLE_FORMAT.find("protocol;").unwrap();
        text[at] = 0xff;
        let problem = format_text_problem(&text).unwrap();
        assert!(
            problem.contains(&format!("0xff at offset {at}")),
            "{problem}"
        );
        let text = EXAMPLE_FORMAT.replace("offset:20;", "offset:42949672960;");
        let problem = format_text_problem(text.as_bytes()).unwrap();
        assert!(problem.contains("42949672960"), "{problem}");
        let text = EXAMPLE_FORMAT.replace("offset:20;", "offset:0x1ffffffff;");
        assert!(format_text_problem(text.as_bytes()).is_some());
        let text = EXAMPLE_FORMAT.replace("offset:20;\tsize:4;", "offset:65534;\tsize:4;");
        let problem = format_text_problem(text.as_bytes()).unwrap();
        assert!(problem.contains("65538"), "{problem}");
        let text = format!("{EXAMPLE_FORMAT}format:\n\tfield:int x;\toffset:0;\tsize:4;\n");
        let problem = format_text_problem(text.as_bytes()).unwrap();
        assert!(problem.contains("second `format:`"), "{problem}");
        // Large numbers outside the lines the parser reads are fine.
        let text = EXAMPLE_FORMAT.replace("REC->protocol", "REC->protocol & 0xffffffffffff");
        assert_eq!(format_text_problem(text.as_bytes()), None);
    }
}
