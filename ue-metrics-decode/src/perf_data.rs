//! perf.data files (`perf record -e user_events:otlp_metrics`), normal and pipe mode.
//!
//! `tracepoint_perf` reads the container (headers, attrs, tracing data, event order); this
//! module takes each sample's raw bytes and decodes our fields itself, with the formats the
//! file carries. Samples of other events are counted and skipped; `PERF_RECORD_LOST` counts
//! are added up.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use tracepoint_decode::{
    EventHeaderEnumeratorContext, PerfEventAttrSampleType as SampleType, PerfEventBytes,
    PerfEventFormat, PerfEventHeaderType,
};
use tracepoint_perf::{PerfDataFileEventOrder, PerfDataFileReader};

use crate::event::EventDecoder;
use crate::format::{FieldFormat, RecordFormat};
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
    /// The file was written on a machine of the other byte order.
    #[error("{path} was recorded on a machine of the other byte order; only native-endian perf.data files are supported")]
    ForeignByteOrder {
        /// The path given.
        path: PathBuf,
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
        let mut reader = PerfDataFileReader::new();
        reader
            .open_file(path_str, PerfDataFileEventOrder::File)
            .map_err(open_error)?;
        if reader.byte_reader().byte_swap_needed() {
            return Err(PerfDataError::ForeignByteOrder { path });
        }
        Ok(PerfDataSource {
            path,
            reader,
            decoders: HashMap::new(),
            context: EventHeaderEnumeratorContext::new(),
            stats: DecodeStats::default(),
            events: 0,
        })
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
            match self.reader.move_next_event() {
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
                    let record =
                        decode_sample(&self.reader, &mut self.decoders, &mut self.context, &event);
                    if let Some(record) = record {
                        self.stats.count(&record);
                        on_record(record);
                    }
                }
                PerfEventHeaderType::Lost => {
                    // struct { header; u64 id; u64 lost; sample_id }
                    if let Some(lost) = event.data.get(16..24) {
                        let lost = u64::from_ne_bytes(lost.try_into().expect("8 bytes"));
                        self.stats.lost = self.stats.lost.saturating_add(lost);
                    }
                }
                _ => {}
            }
        }
    }
}

/// One sample: `None` if it is not one of ours.
fn decode_sample(
    reader: &PerfDataFileReader,
    decoders: &mut HashMap<u32, Option<Result<EventDecoder, DecodeError>>>,
    context: &mut EventHeaderEnumeratorContext,
    event: &PerfEventBytes<'_>,
) -> Option<Record> {
    let (mut meta, raw) = match reader.get_sample_event_info(event) {
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
        // Files of one event often have no sample ids: parse the sample ourselves.
        Err(_) => sample_without_id(reader, event.data)?,
    };
    // The trace_entry starts with common_type, the tracepoint id: it selects the format.
    let common_type = u32::from(u16::from_ne_bytes(raw.get(..2)?.try_into().ok()?));
    if !decoders.contains_key(&common_type) {
        // Pipe-mode files deliver their formats as they go: look again.
        for desc in reader.event_desc_list() {
            if let Some(format) = desc.format() {
                decoders
                    .entry(format.id())
                    .or_insert_with(|| EventDecoder::for_format(&record_format(format)));
            }
        }
    }
    let decoder = decoders.entry(common_type).or_insert(None).as_ref()?;
    let decoder = match decoder {
        Ok(decoder) => decoder,
        Err(e) => return Some(Record::failed(meta, e.clone())),
    };
    if meta.pid.is_none() {
        meta.pid = decoder.common_pid(raw).and_then(|p| u32::try_from(p).ok());
    }
    Some(match decoder.decode(context, raw) {
        Ok(None) => return None,
        Ok(Some(payload)) => Record::from_payload(meta, &payload),
        Err(error) => Record::failed(meta, error),
    })
}

/// Parses a sample whose attr has no id, when every attr in the file has the same
/// sample_type (so the layout is known anyway).
fn sample_without_id<'a>(
    reader: &PerfDataFileReader,
    data: &'a [u8],
) -> Option<(SampleMeta, &'a [u8])> {
    let descs = reader.event_desc_list();
    let sample_type = descs.first()?.attr().sample_type;
    if descs.iter().any(|d| d.attr().sample_type != sample_type) {
        return None;
    }
    parse_sample(sample_type, data)
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
/// `None` if the sample has fields this parser does not step over or is truncated.
pub fn parse_sample(sample_type: SampleType, data: &[u8]) -> Option<(SampleMeta, &[u8])> {
    let unsupported = SampleType::Read.0
        | SampleType::BranchStack.0
        | SampleType::RegsUser.0
        | SampleType::StackUser.0;
    if sample_type.0 & unsupported != 0 {
        return None;
    }
    let mut pos = 8; // perf_event_header
    let u64_at = |pos: &mut usize| -> Option<u64> {
        let v = u64::from_ne_bytes(data.get(*pos..*pos + 8)?.try_into().ok()?);
        *pos += 8;
        Some(v)
    };
    let mut meta = SampleMeta::default();
    let has = |flag: SampleType| sample_type.has_flag(flag);
    if has(SampleType::Identifier) {
        u64_at(&mut pos)?;
    }
    if has(SampleType::IP) {
        u64_at(&mut pos)?;
    }
    if has(SampleType::Tid) {
        let v = u64_at(&mut pos)?.to_ne_bytes();
        meta.pid = Some(u32::from_ne_bytes(v[..4].try_into().ok()?));
        meta.tid = Some(u32::from_ne_bytes(v[4..].try_into().ok()?));
    }
    if has(SampleType::Time) {
        meta.time = Some(u64_at(&mut pos)?);
    }
    if has(SampleType::Addr) {
        u64_at(&mut pos)?;
    }
    if has(SampleType::Id) {
        u64_at(&mut pos)?;
    }
    if has(SampleType::StreamId) {
        u64_at(&mut pos)?;
    }
    if has(SampleType::Cpu) {
        let v = u64_at(&mut pos)?.to_ne_bytes();
        meta.cpu = Some(u32::from_ne_bytes(v[..4].try_into().ok()?));
    }
    if has(SampleType::Period) {
        u64_at(&mut pos)?;
    }
    if has(SampleType::Callchain) {
        let n = u64_at(&mut pos)?;
        pos = pos.checked_add(usize::try_from(n).ok()?.checked_mul(8)?)?;
    }
    if !has(SampleType::Raw) {
        return None;
    }
    let size = u32::from_ne_bytes(data.get(pos..pos + 4)?.try_into().ok()?) as usize;
    let raw = data.get(pos + 4..(pos + 4).checked_add(size)?)?;
    Some((meta, raw))
}
