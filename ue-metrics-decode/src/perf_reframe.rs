//! Normal-mode perf.data files from a machine of the other byte order, re-framed as pipe mode.
//!
//! `tracepoint_perf` 0.5.0 reads byte-swapped pipe-mode streams, but in normal mode it reads
//! the `perf_file_section`s of the attr ids and of the feature headers without swapping them,
//! so it rejects every such file as invalid data. A pipe-mode stream carries the same
//! information in records it does swap: this module writes the header, one `HEADER_ATTR`
//! record per attr (attr and ids as they are), the tracing data as a `HEADER_TRACING_DATA`
//! record, then the data section unchanged, all in the recorder's byte order.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::layout::ByteOrder;

const MAGIC_LE: u64 = u64::from_le_bytes(*b"PERFILE2");
const FILE_HEADER_SIZE: u64 = 104;
const PIPE_HEADER_SIZE: u64 = 16;
const RECORD_HEADER_ATTR: u32 = 64;
const RECORD_HEADER_TRACING_DATA: u32 = 66;
/// Feature bit of the tracing data (`HEADER_TRACING_DATA`).
const FEATURE_TRACING_DATA: u32 = 1;
/// perf_event_attr's `size` field and the smallest attr (`PERF_ATTR_SIZE_VER0`).
const ATTR_SIZE_OFFSET: usize = 4;
const ATTR_SIZE_VER0: u32 = 64;
/// Sections larger than this are not from `perf record` (tracepoint_perf's own limit).
const MAX_SECTION: u64 = 0x8000_0000;

/// The byte order of a normal-mode file whose magic reads swapped on this machine, or `None`
/// (native order, pipe mode, or not a perf.data file: left to `tracepoint_perf`).
pub(crate) fn foreign_normal_mode(path: &Path) -> io::Result<Option<ByteOrder>> {
    if !std::fs::metadata(path)?.is_file() {
        return Ok(None); // a pipe: reading its start here would lose it
    }
    let mut head = [0u8; 16];
    let mut file = File::open(path)?;
    if file.read_exact(&mut head).is_err() {
        return Ok(None);
    }
    let foreign = match ByteOrder::NATIVE {
        ByteOrder::Little => ByteOrder::Big,
        ByteOrder::Big => ByteOrder::Little,
    };
    let is_foreign = foreign.u64_at(&head, 0) == Some(MAGIC_LE);
    let is_pipe = foreign.u64_at(&head, 8) == Some(PIPE_HEADER_SIZE);
    Ok((is_foreign && !is_pipe).then_some(foreign))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("byte-swapped perf.data: {what}"),
    )
}

/// Reads `size` bytes at `offset`.
fn read_at(file: &mut File, offset: u64, size: u64, len: u64) -> io::Result<Vec<u8>> {
    if size >= MAX_SECTION || offset.checked_add(size).is_none_or(|end| end > len) {
        return Err(invalid("a section lies outside the file"));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = vec![0u8; size as usize];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A perf record header (type, misc 0, size) in `order`.
fn record_header(order: ByteOrder, ty: u32, size: usize) -> io::Result<Vec<u8>> {
    let size = u16::try_from(size).map_err(|_| invalid("an attr with too many ids"))?;
    let mut out = order.u32_bytes(ty).to_vec();
    out.extend_from_slice(&order.u16_bytes(0));
    out.extend_from_slice(&order.u16_bytes(size));
    Ok(out)
}

/// Writes the pipe-mode form of the normal-mode file at `path` (recorded in `order`) to a new
/// temporary file and returns its path. The caller opens and then removes it.
pub(crate) fn reframe_as_pipe(path: &Path, order: ByteOrder) -> io::Result<PathBuf> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let header = read_at(&mut file, 0, FILE_HEADER_SIZE, len)?;
    let u64_at = |bytes: &[u8], at: usize| order.u64_at(bytes, at).expect("inside the header");
    let attr_entry = u64_at(&header, 16);
    let (attrs_at, attrs_size) = (u64_at(&header, 24), u64_at(&header, 32));
    let (data_at, data_size) = (u64_at(&header, 40), u64_at(&header, 48));
    let features = u64_at(&header, 72);
    if !(u64::from(ATTR_SIZE_VER0) + 16..=0x10000).contains(&attr_entry) {
        return Err(invalid("the attr size is out of range"));
    }
    let attr_bytes_in_file = (attr_entry - 16) as usize;

    let mut out = Vec::new();
    out.extend_from_slice(&order.u64_bytes(MAGIC_LE));
    out.extend_from_slice(&order.u64_bytes(PIPE_HEADER_SIZE));
    let attrs = read_at(&mut file, attrs_at, attrs_size, len)?;
    for entry in attrs.chunks_exact(attr_entry as usize) {
        let (attr, ids_section) = entry.split_at(attr_bytes_in_file);
        let attr_size = order
            .u32_at(attr, ATTR_SIZE_OFFSET)
            .filter(|s| (ATTR_SIZE_VER0..=u32::from(u16::MAX)).contains(s))
            .ok_or_else(|| invalid("an attr's size is out of range"))?
            as usize;
        let ids = read_at(
            &mut file,
            u64_at(ids_section, 0),
            u64_at(ids_section, 8),
            len,
        )?;
        // In a HEADER_ATTR record the ids start at the attr's own `size`.
        let mut attr = attr.to_vec();
        attr.resize(attr_size, 0);
        out.extend(record_header(
            order,
            RECORD_HEADER_ATTR,
            8 + attr.len() + ids.len(),
        )?);
        out.extend_from_slice(&attr);
        out.extend_from_slice(&ids);
    }
    if features & (1 << FEATURE_TRACING_DATA) != 0 {
        // Feature sections follow the data section, one per set bit, in bit order.
        let index = (features & ((1 << FEATURE_TRACING_DATA) - 1)).count_ones() as u64;
        let at = data_at
            .checked_add(data_size)
            .and_then(|end| end.checked_add(16 * index))
            .ok_or_else(|| invalid("the feature table lies outside the file"))?;
        let section = read_at(&mut file, at, 16, len)?;
        let mut tracing = read_at(&mut file, u64_at(&section, 0), u64_at(&section, 8), len)?;
        tracing.resize(tracing.len().next_multiple_of(8), 0);
        out.extend(record_header(order, RECORD_HEADER_TRACING_DATA, 16)?);
        out.extend_from_slice(&order.u32_bytes(tracing.len() as u32));
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&tracing);
    }
    if data_at.checked_add(data_size).is_none_or(|end| end > len) {
        return Err(invalid("the data section lies outside the file"));
    }

    let temp = temp_path();
    let mut writer = io::BufWriter::new(File::create(&temp)?);
    let copied = (|| {
        writer.write_all(&out)?;
        file.seek(SeekFrom::Start(data_at))?;
        io::copy(&mut (&mut file).take(data_size), &mut writer)?;
        writer.flush()
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    Ok(temp)
}

fn temp_path() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "ue-metrics-decode-{}-{}.pipe.data",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}
