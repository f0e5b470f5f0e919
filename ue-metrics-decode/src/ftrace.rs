//! ftrace text output (`trace`, `trace_pipe`) of the event.
//!
//! user_events prints its records with the kernel's generic field printer: a line like
//! `  app-4242  [001] .....  123.456789: otlp_metrics: protocol=0x0 (0) version=v0.19.00 buffer=0a,1b,ff`
//! where the `__rel_loc` buffer is every byte as two hex digits, comma-separated (the kernel
//! prints `<OVERFLOW>` instead when the location points outside the record). This module reads
//! such lines back into the same payload bytes a producer wrote, then decodes them like any
//! payload.

use std::io::BufRead;

use crate::payload::{decode_payload, PAYLOAD_FIXED_BYTES};
use crate::record::{DecodeStats, Record, SampleMeta};
use crate::DecodeError;

/// Largest OTLP buffer whose ftrace text line comes out complete, with room for the longest
/// task name and pid: the kernel formats a line into an 8 KiB `trace_seq` (measured on 6.12
/// in the VM: a longer line stops at 8,155 bytes, ending in `,`) at 3 characters per buffer
/// byte, after a prefix of up to about 120 bytes. Larger buffers must be read through perf.
pub const TEXT_BUFFER_LIMIT: usize = 2_650;

/// One line of our event read from ftrace text output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    /// `time` from the timestamp column (in ns), `tid` from the task column (ftrace's "pid" is
    /// the thread id), `pid` only when the `record-tgid` option shows the thread group id,
    /// `cpu` from the `[cpu]` column.
    pub meta: SampleMeta,
    /// The payload rebuilt from the printed fields: protocol, version, rel_loc, buffer.
    pub payload: Vec<u8>,
}

/// Parses one line of `trace`/`trace_pipe` output. Returns `Ok(None)` for comment lines and
/// lines of other events; error offsets are byte offsets in `line`.
pub fn parse_trace_line(line: &str, event_name: &str) -> Result<Option<TraceLine>, DecodeError> {
    parse_trace_bytes(line.as_bytes(), event_name)
}

/// [`parse_trace_line`] for a line as read: ftrace text is not always UTF-8 (task names and
/// other events' data are arbitrary bytes). Only the body of our own event must be text; a
/// task name that is not UTF-8 does not lose the record.
pub fn parse_trace_bytes(line: &[u8], event_name: &str) -> Result<Option<TraceLine>, DecodeError> {
    let mut line = line;
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    if line.trim_ascii_start().starts_with(b"#") {
        return Ok(None);
    }
    let Some((at, body_start)) = find_event(line, event_name) else {
        return Ok(None);
    };
    let meta = parse_prefix(&String::from_utf8_lossy(&line[..at]));
    let body = std::str::from_utf8(&line[body_start..]).map_err(|e| DecodeError::Text {
        offset: body_start + e.valid_up_to(),
        reason: "the event's fields are not UTF-8 text".into(),
    })?;
    let line_len = line.len();
    let text_error = |offset: usize, reason: String| DecodeError::Text {
        offset: body_start + offset,
        reason,
    };
    let field = |name: &str| -> Result<(usize, &str), DecodeError> {
        let key = format!(" {name}=");
        let start = body
            .find(&key)
            .ok_or_else(|| text_error(0, format!("no `{name}=` field")))?
            + key.len();
        let end = body[start..].find(' ').map_or(body.len(), |e| start + e);
        Ok((start, &body[start..end]))
    };

    // protocol=0x0 (0)
    let (at, value) = field("protocol")?;
    let protocol = value
        .strip_prefix("0x")
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| text_error(at, format!("invalid protocol value {value:?}")))?;

    // version=v0.19.00 (a NUL-padded version prints shorter)
    let (at, version) = field("version")?;
    if version.len() > 8 {
        return Err(text_error(
            at,
            format!("version {version:?} is longer than 8 bytes"),
        ));
    }

    // buffer=0a,1b,... (the last field; empty when the buffer is)
    let start = body
        .rfind(" buffer=")
        .ok_or_else(|| text_error(0, "no `buffer=` field".into()))?
        + " buffer=".len();
    let hex = &body[start..];
    if hex == "<OVERFLOW>" {
        return Err(text_error(
            start,
            "the kernel printed <OVERFLOW>: the buffer location points outside the record".into(),
        ));
    }
    if hex.ends_with(',') || hex.rsplit(',').next().is_some_and(|last| last.len() == 1) {
        return Err(text_error(
            line_len - body_start,
            format!(
                "the kernel cut this line short at {line_len} bytes: ftrace text holds about 8 KiB \
                 per line, so buffers over about {TEXT_BUFFER_LIMIT} bytes cannot be read back \
                 from trace/trace_pipe (read them with perf: `live` or `perf-data`)"
            ),
        ));
    }
    let mut payload = Vec::with_capacity(PAYLOAD_FIXED_BYTES + hex.len() / 3 + 1);
    payload.extend_from_slice(&protocol.to_ne_bytes());
    let mut version_bytes = [0u8; 8];
    version_bytes[..version.len()].copy_from_slice(version.as_bytes());
    payload.extend_from_slice(&version_bytes);
    payload.extend_from_slice(&[0; 4]); // rel_loc, set below
    if !hex.is_empty() {
        for (i, pair) in hex.split(',').enumerate() {
            let byte = (pair.len() == 2)
                .then(|| u8::from_str_radix(pair, 16).ok())
                .flatten()
                .ok_or_else(|| {
                    text_error(start + 3 * i, format!("invalid buffer byte {pair:?}"))
                })?;
            payload.push(byte);
        }
    }
    let len = payload.len() - PAYLOAD_FIXED_BYTES;
    let len = u16::try_from(len)
        .map_err(|_| text_error(start, format!("buffer of {len} bytes exceeds 64 KiB")))?;
    payload[12..16].copy_from_slice(&(u32::from(len) << 16).to_ne_bytes());
    Ok(Some(TraceLine { meta, payload }))
}

/// Where `: <event_name>:` (or a multi-format `: <event_name>.<hex id>:`) is in the line:
/// its start and the end of the marker.
fn find_event(line: &[u8], event_name: &str) -> Option<(usize, usize)> {
    let marker = format!(": {event_name}");
    let marker = marker.as_bytes();
    let mut from = 0;
    while let Some(found) = line[from..]
        .windows(marker.len())
        .position(|window| window == marker)
    {
        let at = from + found;
        let rest = &line[at + marker.len()..];
        let suffix = rest.strip_prefix(b".").map_or(0, |r| {
            1 + r.iter().take_while(|b| b.is_ascii_hexdigit()).count()
        });
        if suffix != 1 && rest[suffix..].starts_with(b":") {
            return Some((at, at + marker.len() + suffix + 1));
        }
        from = at + marker.len();
    }
    None
}

/// Reads `comm-tid (tgid) [cpu] flags timestamp`, leniently: unreadable parts stay `None`.
fn parse_prefix(prefix: &str) -> SampleMeta {
    let mut meta = SampleMeta::default();
    let Some(open) = prefix.rfind('[') else {
        return meta;
    };
    let Some(close) = prefix[open..].find(']').map(|c| open + c) else {
        return meta;
    };
    meta.cpu = prefix[open + 1..close].trim().parse().ok();
    let mut task = prefix[..open].trim_end();
    if task.ends_with(')') {
        if let Some(paren) = task.rfind('(') {
            meta.pid = task[paren + 1..task.len() - 1].trim().parse().ok();
            task = task[..paren].trim_end();
        }
    }
    meta.tid = task
        .rsplit_once('-')
        .and_then(|(_, tid)| tid.trim().parse().ok());
    if let Some(stamp) = prefix[close + 1..].split_whitespace().last() {
        meta.time = parse_timestamp(stamp);
    }
    meta
}

/// `123.456789` (µs clock) or `123.456789012` (ns) into nanoseconds.
fn parse_timestamp(stamp: &str) -> Option<u64> {
    let (secs, frac) = stamp.split_once('.')?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let frac_ns: u64 = frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32);
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

impl TraceLine {
    /// Decodes the rebuilt payload into a record.
    pub fn to_record(&self) -> Record {
        Record::from_payload(self.meta, decode_payload(&self.payload))
    }
}

/// Reads ftrace text line by line, handing every line of the `event_names` (and of their
/// multi-format registrations, `name.<hex id>`) to `on_record`. Lines of other events are
/// counted in `other_events`, whatever bytes they hold; the kernel's `CPU:N [LOST M EVENTS]`
/// markers in `lost`; unreadable lines of ours are handed over as errors (offsets within the
/// line) and the read goes on. Only an I/O error of `input` ends the read early.
pub fn read_trace(
    mut input: impl BufRead,
    event_names: &[&str],
    stats: &mut DecodeStats,
    mut on_record: impl FnMut(Record),
) -> std::io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let parsed = event_names
            .iter()
            .map(|name| parse_trace_bytes(&line, name))
            .find(|parsed| !matches!(parsed, Ok(None)))
            .unwrap_or(Ok(None));
        let record = match parsed {
            Ok(Some(parsed)) => parsed.to_record(),
            Ok(None) => {
                let text = line.trim_ascii();
                if let Some(lost) = lost_events(text) {
                    stats.lost = stats.lost.saturating_add(lost);
                } else if !text.is_empty() && !text.starts_with(b"#") {
                    stats.other_events += 1;
                }
                continue;
            }
            Err(error) => Record::failed(SampleMeta::default(), error),
        };
        stats.count(&record);
        on_record(record);
    }
}

/// The events a `CPU:N [LOST M EVENTS]` line says the kernel's ring dropped before the next
/// line (of any event: the ring is shared; `[LOST EVENTS]`, a count the kernel does not know,
/// counts as one). `None` for any other line.
fn lost_events(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"CPU:")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let marker = rest[digits..].strip_prefix(b" [LOST ")?;
    if digits == 0 {
        return None;
    }
    if marker == b"EVENTS]" {
        return Some(1);
    }
    let count = marker.strip_suffix(b" EVENTS]")?;
    std::str::from_utf8(count).ok()?.parse().ok()
}

/// Formats a payload the way the kernel prints the event in `trace` (for tests and tools).
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub fn format_trace_line(meta_prefix: &str, event_name: &str, payload: &[u8]) -> Option<String> {
    let decoded = decode_payload(payload).ok()?;
    let hex: Vec<String> = decoded.buffer.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{meta_prefix}: {event_name}: protocol=0x{p:x} ({p}) version={v} buffer={}",
        hex.join(","),
        p = decoded.protocol,
        v = decoded.version,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::encode_payload;

    const PREFIX: &str = "     my app-4243    [001] .....  1234.567890";

    #[test]
    fn reads_a_kernel_line_back_into_the_payload() {
        let payload = encode_payload(&[0x0a, 0x00, 0xff]);
        let line = format_trace_line(PREFIX, "otlp_metrics", &payload).unwrap();
        assert!(
            line.ends_with("protocol=0x0 (0) version=v0.19.00 buffer=0a,00,ff"),
            "{line}"
        );
        let parsed = parse_trace_line(&line, "otlp_metrics").unwrap().unwrap();
        assert_eq!(parsed.payload, payload);
        assert_eq!(
            parsed.meta,
            SampleMeta {
                time: Some(1_234_567_890_000),
                pid: None,
                tid: Some(4243),
                cpu: Some(1)
            }
        );
    }

    #[test]
    fn tgid_column_and_empty_buffer() {
        let line = "  app-7 (   5) [000] d..1. 1.000000001: otlp_metrics: protocol=0x0 (0) version=v0.19.00 buffer=";
        let parsed = parse_trace_line(line, "otlp_metrics").unwrap().unwrap();
        assert_eq!(parsed.meta.pid, Some(5));
        assert_eq!(parsed.meta.tid, Some(7));
        assert_eq!(parsed.meta.time, Some(1_000_000_001));
        assert_eq!(parsed.payload.len(), 16);
        assert_eq!(
            parsed.to_record().result,
            Err(DecodeError::EmptyBuffer { offset: 16 })
        );
    }

    #[test]
    fn lines_cut_by_the_kernel_are_reported_as_such() {
        let payload = encode_payload(&[0xab; 4000]);
        let line = format_trace_line(PREFIX, "otlp_metrics", &payload).unwrap();
        for cut in [8159, 8160] {
            let err = parse_trace_line(&line[..cut], "otlp_metrics").unwrap_err();
            assert!(err.to_string().contains("cut this line short"), "{err}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_lose_no_line() {
        let payload = encode_payload(&[0x0a, 0x00]);
        let ours = format_trace_line(PREFIX, "otlp_metrics", &payload).unwrap();
        let mut input = b"  x-1 [000] 1.0: other: data=\xff\xfe\n".to_vec();
        let task_at = input.len() + PREFIX.find("my").unwrap();
        input.extend_from_slice(ours.as_bytes());
        input[task_at] = 0xe9; // the task name is Latin-1
        input.extend_from_slice(
            b"\n  y-2 [000] 1.0: otlp_metrics: protocol=0x0 (0) version=v\xff buffer=\n",
        );
        input.extend_from_slice(ours.as_bytes());
        let mut stats = DecodeStats::default();
        let mut records = Vec::new();
        read_trace(&input[..], &["otlp_metrics"], &mut stats, |r| {
            records.push(r)
        })
        .unwrap();
        assert_eq!((stats.records, stats.decoded, stats.failed), (3, 2, 1));
        assert_eq!(stats.other_events, 1);
        assert_eq!(records[0].meta.tid, Some(4243));
        let DecodeError::Text { offset, .. } = records[1].result.clone().unwrap_err() else {
            panic!("{:?}", records[1].result)
        };
        assert_eq!(offset, 57); // the 0xff byte
    }

    #[test]
    fn multi_format_event_lines_are_read_and_lookalikes_are_not() {
        let payload = encode_payload(&[0x0a, 0x00]);
        let line = format_trace_line(PREFIX, "otlp_metrics.1f", &payload).unwrap();
        let parsed = parse_trace_line(&line, "otlp_metrics").unwrap().unwrap();
        assert_eq!(parsed.payload, payload);
        for other in ["otlp_metrics2", "otlp_metrics.", "otlp_metrics.zz"] {
            let line = format_trace_line(PREFIX, other, &payload).unwrap();
            assert_eq!(parse_trace_line(&line, "otlp_metrics"), Ok(None), "{other}");
        }
        // Several events in one read, each line counted once.
        let text = [
            format_trace_line(PREFIX, "otlp_metrics", &payload).unwrap(),
            format_trace_line(PREFIX, "mine", &payload).unwrap(),
            format_trace_line(PREFIX, "theirs", &payload).unwrap(),
        ]
        .join("\n");
        let mut stats = DecodeStats::default();
        let mut seen = 0;
        read_trace(
            text.as_bytes(),
            &["otlp_metrics", "mine"],
            &mut stats,
            |_| seen += 1,
        )
        .unwrap();
        assert_eq!((seen, stats.records, stats.other_events), (2, 2, 1));
    }

    #[test]
    fn other_lines_are_not_ours() {
        assert_eq!(parse_trace_line("# tracer: nop", "otlp_metrics"), Ok(None));
        assert_eq!(
            parse_trace_line("  a-1 [000] 1.0: sched_switch: prev=1", "otlp_metrics"),
            Ok(None)
        );
    }

    #[test]
    fn errors_point_into_the_line() {
        let line =
            format!("{PREFIX}: otlp_metrics: protocol=0x0 (0) version=v0.19.00 buffer=0a,zz");
        let err = parse_trace_line(&line, "otlp_metrics").unwrap_err();
        assert_eq!(err.offset(), line.find("zz").unwrap());
        let line =
            format!("{PREFIX}: otlp_metrics: protocol=0x0 (0) version=v0.19.00 buffer=<OVERFLOW>");
        assert!(parse_trace_line(&line, "otlp_metrics").is_err());
        let line =
            format!("{PREFIX}: otlp_metrics: protocol=0x2 (2) version=v0.19.00 buffer=0a,00");
        let parsed = parse_trace_line(&line, "otlp_metrics").unwrap().unwrap();
        assert!(matches!(
            parsed.to_record().result,
            Err(DecodeError::UnknownProtocol { protocol: 2, .. })
        ));
    }

    /// The kernel marks events its ring dropped before the next line it prints (tracefs
    /// `trace`, `trace_pipe`): `CPU:N [LOST M EVENTS]`, or `[LOST EVENTS]` when it does not
    /// know how many. Those are lost records, not lines of other events.
    #[test]
    fn lost_event_markers_count_as_lost() {
        let payload = encode_payload(&[0x0a, 0x00]);
        let event = format_trace_line(PREFIX, "otlp_metrics", &payload).unwrap();
        let input = format!("CPU:1 [LOST 42 EVENTS]\n{event}\nCPU:0 [LOST EVENTS]\n{event}\n");
        let mut stats = DecodeStats::default();
        let mut seen = 0;
        read_trace(input.as_bytes(), &["otlp_metrics"], &mut stats, |_| {
            seen += 1
        })
        .unwrap();
        assert_eq!(
            (seen, stats.records, stats.lost, stats.other_events),
            (2, 2, 43, 0)
        );
    }
}
