//! perf.data files (`perf record -e user_events:otlp_metrics`), normal and pipe mode.
//!
//! `tracepoint_perf` reads the container (headers, attrs, tracing data, event order); this
//! module takes each sample's raw bytes and decodes our fields itself, with the formats the
//! file carries. Samples of other events are counted and skipped; `PERF_RECORD_LOST` counts
//! are added up.
//!
//! Records come in time order (`RECORD_ORDER`): perf writes each CPU's buffer into the file
//! in turn, so one writer that moved between CPUs has its samples out of order in the file.
//!
//! A file recorded on a machine of the other byte order (its `PERFILE2` magic reads swapped)
//! is read too: `tracepoint_perf` swaps the container's fields, and the records' own fields
//! (`common_type`, `protocol`, `__rel_loc`, the C++ exporter's length) are read in the
//! recording machine's order.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// Sorted by sample time within each round perf marks (`PERF_RECORD_FINISHED_ROUND`: every
/// CPU's buffer was written up to there), ties in file order; records without a time (lost
/// counts in files without sample ids) sort first in their round.
const RECORD_ORDER: PerfDataFileEventOrder = PerfDataFileEventOrder::Time;

use tracepoint_decode::{
    EventHeaderEnumeratorContext, PerfEventAttrSampleType as SampleType, PerfEventBytes,
    PerfEventFormat, PerfEventHeaderType,
};
use tracepoint_perf::{PerfDataFileEventOrder, PerfDataFileReader};

use crate::event::EventDecoder;
use crate::format::{FieldFormat, RecordFormat};
use crate::layout::{is_event, ByteOrder};
use crate::record::{DecodeStats, Record, SampleMeta};
use crate::DecodeError;

/// Why a perf.data file cannot be read (as opposed to one bad record in it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PerfDataError {
    /// The file cannot be opened or is not a perf.data file.
    #[error("cannot read {path} as a perf.data file: {source} (expected the output of `perf record`, normal or pipe mode)")]
    Open {
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An event format in the file's tracing data is damaged in a way the format parser of
    /// `tracepoint_decode` cannot take (it would panic); nothing was read.
    #[error("{path} cannot be read: {reason}")]
    DamagedFormat {
        /// The path given.
        path: PathBuf,
        /// Which format, and what is wrong with it.
        reason: String,
    },
    /// The file is damaged past some point; records before it were delivered.
    #[error("{path} is damaged after event {events}: {source}")]
    Corrupt {
        /// The path given.
        path: PathBuf,
        /// Events read successfully before the damage.
        events: u64,
        /// The underlying error.
        source: io::Error,
    },
}

/// Reads our records from a perf.data file.
pub struct PerfDataSource {
    path: PathBuf,
    reader: PerfDataFileReader,
    decoders: HashMap<u32, Option<Result<EventDecoder, DecodeError>>>,
    context: EventHeaderEnumeratorContext,
    stats: DecodeStats,
    events: u64,
    byte_order: ByteOrder,
    names: Vec<String>,
}

impl std::fmt::Debug for PerfDataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfDataSource")
            .field("path", &self.path)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PerfDataSource {
    /// Opens a perf.data file. A pipe-mode stream can be read from `/dev/stdin`.
    pub fn open(path: impl AsRef<Path>) -> Result<PerfDataSource, PerfDataError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |source| PerfDataError::Open {
            path: path.clone(),
            source,
        };
        let path_str = path.to_str().ok_or_else(|| {
            open_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path is not UTF-8",
            ))
        })?;
        if let Err(reason) = crate::tracing_data::check_file(&path) {
            return Err(PerfDataError::DamagedFormat { path, reason });
        }
        let mut reader = PerfDataFileReader::new();
        match crate::perf_reframe::foreign_normal_mode(&path) {
            Ok(Some(order)) => isolated(|| open_reframed(&mut reader, &path, order))
                .and_then(|opened| opened)
                .map_err(open_error)?,
            _ => isolated(|| reader.open_file(path_str, RECORD_ORDER))
                .and_then(|opened| opened)
                .map_err(open_error)?,
        }
        let byte_order = ByteOrder::from_big_endian(reader.source_big_endian());
        Ok(PerfDataSource {
            path,
            reader,
            decoders: HashMap::new(),
            context: EventHeaderEnumeratorContext::new(),
            stats: DecodeStats::default(),
            events: 0,
            byte_order,
            names: Vec::new(),
        })
    }

    /// The byte order of the machine that recorded the file (from its `PERFILE2` magic).
    pub fn byte_order(&self) -> ByteOrder {
        self.byte_order
    }

    /// Reads only the events named `names` (`otlp_metrics` also selects multi-format
    /// `otlp_metrics.<hex id>`); samples of other tracepoints count as other events. By
    /// default every event whose format is one of ours is read.
    pub fn select_events(&mut self, names: Vec<String>) {
        self.names = names;
        self.decoders.clear();
    }

    /// Counts so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Reads the rest of the file, handing every record of our events to `on_record`.
    ///
    /// Bad records are handed over as errors and counted; the read goes on. An error is
    /// returned only when the container itself is damaged (records before it were delivered).
    pub fn for_each(&mut self, mut on_record: impl FnMut(Record)) -> Result<(), PerfDataError> {
        loop {
            match self.next_event() {
                Ok(true) => self.events += 1,
                Ok(false) => return Ok(()),
                Err(source) => {
                    return Err(PerfDataError::Corrupt {
                        path: self.path.clone(),
                        events: self.events,
                        source,
                    })
                }
            }
            let event = self.reader.current_event();
            match event.header.ty {
                PerfEventHeaderType::Sample => {
                    let record = decode_sample(
                        &self.reader,
                        &mut self.decoders,
                        &mut self.context,
                        &event,
                        (self.byte_order, &self.names),
                    );
                    match record {
                        Some(record) => {
                            self.stats.count(&record);
                            on_record(record);
                        }
                        None => self.stats.other_events += 1,
                    }
                }
                PerfEventHeaderType::Lost => {
                    // struct { header; u64 id; u64 lost; sample_id }
                    if let Some(lost) = self.byte_order.u64_at(event.data, 16) {
                        self.stats.lost = self.stats.lost.saturating_add(lost);
                    }
                }
                _ => {}
            }
        }
    }
}

impl PerfDataSource {
    /// Moves the reader to the next event (isolated, see [`isolated`]).
    fn next_event(&mut self) -> io::Result<bool> {
        let reader = &mut self.reader;
        isolated(|| reader.move_next_event()).unwrap_or_else(|panicked| {
            // The reader's state is unknown after the panic: never use it again.
            self.reader = PerfDataFileReader::new();
            Err(panicked)
        })
    }
}

/// Runs a call into `tracepoint_perf`, whose format parser (`tracepoint_decode`) panics on some
/// damaged format texts. [`crate::tracing_data`] refuses every such text it knows of before the
/// reader sees it; a pipe cannot be checked ahead, and the parser may have more such paths, so
/// as a last resort a panic here becomes an error (`Err`: the read ends as at any damage)
/// instead of ending the process.
fn isolated<T>(call: impl FnOnce() -> io::Result<T>) -> Result<io::Result<T>, io::Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "an event format in the tracing data is damaged (tracepoint_decode's format parser \
             panicked on it)",
        )
    })
}

/// Opens a normal-mode file of the other byte order through its pipe-mode form (see
/// `perf_reframe`); the temporary copy is removed once open.
fn open_reframed(reader: &mut PerfDataFileReader, path: &Path, order: ByteOrder) -> io::Result<()> {
    let temp = crate::perf_reframe::reframe_as_pipe(path, order)?;
    let opened = match temp.to_str() {
        Some(temp_str) => reader.open_file(temp_str, RECORD_ORDER),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "temporary path is not UTF-8",
        )),
    };
    // The reader keeps the file open; its name is no longer needed.
    let _ = std::fs::remove_file(&temp);
    opened
}

/// One sample: `None` if it is a sample of an event that is not selected or not ours. A sample
/// that cannot be taken apart, or whose record is too short to name its event, is a failed
/// record with the reason: nothing the reader hands over goes uncounted. `selection`: the
/// recording machine's byte order and the event names to read (empty: all of ours).
fn decode_sample(
    reader: &PerfDataFileReader,
    decoders: &mut HashMap<u32, Option<Result<EventDecoder, DecodeError>>>,
    context: &mut EventHeaderEnumeratorContext,
    event: &PerfEventBytes<'_>,
    (byte_order, names): (ByteOrder, &[String]),
) -> Option<Record> {
    let (meta, raw) = match reader.get_sample_event_info(event) {
        Ok(info) => {
            let types = info.sample_type();
            let meta = SampleMeta {
                time: types.has_flag(SampleType::Time).then_some(info.time),
                pid: types.has_flag(SampleType::Tid).then_some(info.pid),
                tid: types.has_flag(SampleType::Tid).then_some(info.tid),
                cpu: types.has_flag(SampleType::Cpu).then_some(info.cpu),
            };
            (meta, info.raw_data())
        }
        // Files of one event often have no sample ids, and the reader does not say what is
        // wrong with a damaged sample: parse it ourselves.
        Err(_) => match sample_without_id(reader, event.data, byte_order) {
            Ok(parsed) => parsed,
            Err(error) => return Some(Record::failed(SampleMeta::default(), error)),
        },
    };
    // The trace_entry starts with common_type, the tracepoint id: it selects the format.
    let Some(common_type) = byte_order.u16_at(raw, 0) else {
        let error = DecodeError::truncated(0, 2, raw.len());
        return Some(Record::failed(meta, error));
    };
    let common_type = u32::from(common_type);
    if !decoders.contains_key(&common_type) {
        // Pipe-mode files deliver their formats as they go: look again.
        for desc in reader.event_desc_list() {
            if let Some(format) = desc.format() {
                decoders
                    .entry(format.id())
                    .or_insert_with(|| selected_decoder(format, byte_order, names));
            }
        }
    }
    match decoders.entry(common_type).or_insert(None) {
        None => None,
        Some(Err(e)) => Some(Record::failed(meta, e.clone())),
        Some(Ok(decoder)) => decoder.decode_record(context, meta, raw),
    }
}

/// The decoder of one tracepoint of the file, if it is selected and one of ours.
fn selected_decoder(
    format: &PerfEventFormat,
    byte_order: ByteOrder,
    names: &[String],
) -> Option<Result<EventDecoder, DecodeError>> {
    if !names.is_empty() && !names.iter().any(|n| is_event(format.name(), n)) {
        return None;
    }
    let decoder = EventDecoder::for_format(&record_format(format))?;
    Some(decoder.map(|d| d.with_byte_order(byte_order)))
}

/// Parses a sample the reader could not place: possible when every attr in the file has the
/// same sample_type (so the layout is known without the id).
fn sample_without_id<'a>(
    reader: &PerfDataFileReader,
    data: &'a [u8],
    byte_order: ByteOrder,
) -> Result<(SampleMeta, &'a [u8]), DecodeError> {
    let unknown = |reason: &str| DecodeError::Sample {
        offset: 0,
        reason: reason.into(),
    };
    let descs = reader.event_desc_list();
    let sample_type = descs
        .first()
        .ok_or_else(|| unknown("the file describes no event"))?
        .attr()
        .sample_type;
    if descs.iter().any(|d| d.attr().sample_type != sample_type) {
        return Err(unknown(
            "its id matches no event of the file, and the events differ in layout",
        ));
    }
    parse_sample_in(byte_order, sample_type, data)
}

/// Converts the file's parsed format into ours (dropping fields whose declaration we cannot
/// read: they cannot be ours).
pub fn record_format(format: &PerfEventFormat) -> RecordFormat {
    let mut fields = Vec::new();
    let mut common = 0;
    for (i, f) in format.fields().iter().enumerate() {
        let field = FieldFormat::from_declaration(
            f.field(),
            usize::from(f.offset()),
            usize::from(f.size()),
            f.signed(),
        );
        if let Ok(field) = field {
            fields.push(field);
            if i < format.common_field_count() {
                common += 1;
            }
        }
    }
    RecordFormat::from_fields(
        Some(format.name().to_owned()),
        Some(format.id()),
        fields,
        common,
    )
}

/// Reads the metadata and raw data of a `PERF_RECORD_SAMPLE` laid out per `sample_type`.
/// Fails, with the offset in `data`, if the sample has fields this parser does not step over,
/// records no raw data, or is shorter than its fields say.
pub fn parse_sample(
    sample_type: SampleType,
    data: &[u8],
) -> Result<(SampleMeta, &[u8]), DecodeError> {
    parse_sample_in(ByteOrder::NATIVE, sample_type, data)
}

/// [`parse_sample`] for a sample recorded on a machine of `byte_order`.
pub fn parse_sample_in(
    byte_order: ByteOrder,
    sample_type: SampleType,
    data: &[u8],
) -> Result<(SampleMeta, &[u8]), DecodeError> {
    let unsupported = SampleType::Read.0
        | SampleType::BranchStack.0
        | SampleType::RegsUser.0
        | SampleType::StackUser.0;
    if sample_type.0 & unsupported != 0 {
        return Err(DecodeError::Sample {
            offset: 0,
            reason: format!(
                "sample_type {:#x} has fields this reader does not step over (read values, \
                 branch stack, user registers or stack)",
                sample_type.0
            ),
        });
    }
    let truncated = |offset: usize, size: usize| DecodeError::truncated(offset, size, data.len());
    let mut pos = 8; // perf_event_header
    let u64_at = |pos: &mut usize| -> Result<u64, DecodeError> {
        let v = byte_order.u64_at(data, *pos).ok_or(truncated(*pos, 8))?;
        *pos += 8;
        Ok(v)
    };
    // Two u32 in one u64 slot (pid/tid, cpu/res), in the recording machine's order.
    let u32_pair = |pos: &mut usize| -> Result<(u32, u32), DecodeError> {
        let pair = byte_order
            .u32_at(data, *pos)
            .zip(byte_order.u32_at(data, *pos + 4))
            .ok_or(truncated(*pos, 8))?;
        *pos += 8;
        Ok(pair)
    };
    let mut meta = SampleMeta::default();
    let has = |flag: SampleType| sample_type.has_flag(flag);
    for skipped in [SampleType::Identifier, SampleType::IP] {
        if has(skipped) {
            u64_at(&mut pos)?;
        }
    }
    if has(SampleType::Tid) {
        let (pid, tid) = u32_pair(&mut pos)?;
        (meta.pid, meta.tid) = (Some(pid), Some(tid));
    }
    if has(SampleType::Time) {
        meta.time = Some(u64_at(&mut pos)?);
    }
    for skipped in [SampleType::Addr, SampleType::Id, SampleType::StreamId] {
        if has(skipped) {
            u64_at(&mut pos)?;
        }
    }
    if has(SampleType::Cpu) {
        meta.cpu = Some(u32_pair(&mut pos)?.0);
    }
    if has(SampleType::Period) {
        u64_at(&mut pos)?;
    }
    if has(SampleType::Callchain) {
        let at = pos;
        let n = u64_at(&mut pos)?;
        pos = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(8))
            .and_then(|bytes| pos.checked_add(bytes))
            .filter(|&end| end <= data.len())
            .ok_or_else(|| DecodeError::Sample {
                offset: at,
                reason: format!("a callchain of {n} entries runs past the end of the sample"),
            })?;
    }
    if !has(SampleType::Raw) {
        return Err(DecodeError::Sample {
            offset: 0,
            reason: "the event records no raw data (PERF_SAMPLE_RAW)".into(),
        });
    }
    let size = byte_order.u32_at(data, pos).ok_or(truncated(pos, 4))? as usize;
    let raw = data
        .get(pos + 4..)
        .and_then(|rest| rest.get(..size))
        .ok_or_else(|| DecodeError::Sample {
            offset: pos,
            reason: format!(
                "raw data of {size} bytes runs past the end of the {}-byte sample",
                data.len()
            ),
        })?;
    Ok((meta, raw))
}
