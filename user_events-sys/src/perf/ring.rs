//! Walking the records of a perf ring buffer between `data_tail` and `data_head`.
//! Pure logic over [`RingBytes`], so the wrap-around handling is tested without a kernel.

use super::abi::{PERF_RECORD_LOST, PERF_RECORD_SAMPLE};
use super::{PerfRecord, PerfSample};

/// Read access to the published part of a ring's data area.
pub(crate) trait RingBytes {
    /// Size of the data area (a power of two, a multiple of 8).
    fn size(&self) -> usize;
    /// `len` bytes at `pos` (`pos + len <= size`), or `None` if that range is not published.
    fn bytes(&self, pos: usize, len: usize) -> Option<&[u8]>;
}

/// What one walk did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Walked {
    /// The new `data_tail`.
    pub tail: u64,
    /// Records handed to the callback.
    pub records: usize,
    /// Sum of the `lost` counts of `PERF_RECORD_LOST` records, plus one per resync.
    pub lost: u64,
    /// Set when a malformed record made the walk skip to `data_head`.
    pub resync: Option<Resync>,
}

/// A skip over unreadable ring data (see [`walk_resyncing`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resync {
    /// Where the malformed record starts (bytes since the ring was opened).
    pub position: u64,
    /// Bytes skipped, from `position` to `data_head`.
    pub skipped_bytes: u64,
    /// What was wrong with the record.
    pub reason: &'static str,
}

/// Why a ring could not be walked, and where; the records before `position` were handed
/// over already.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Corrupt {
    pub position: u64,
    pub reason: &'static str,
    /// Records handed to the callback before the malformed one.
    pub records: usize,
    /// `lost` counts of the `PERF_RECORD_LOST` records among them.
    pub lost: u64,
}

const HEADER: usize = 8;

/// Hands every record in `[tail, head)` to `f`. Records that wrap around the end of the
/// ring are copied into `scratch`; others are borrowed from the ring.
pub(crate) fn walk<R: RingBytes>(
    ring: &R,
    tail: u64,
    head: u64,
    scratch: &mut Vec<u8>,
    f: &mut dyn FnMut(PerfRecord<'_>),
) -> Result<Walked, Corrupt> {
    let size = ring.size();
    let mut walked = Walked {
        tail,
        records: 0,
        lost: 0,
        resync: None,
    };
    let corrupt = |walked: &Walked, reason: &'static str| Corrupt {
        position: walked.tail,
        reason,
        records: walked.records,
        lost: walked.lost,
    };
    if head < tail || head - tail > size as u64 {
        return Err(corrupt(
            &walked,
            "data_head is behind data_tail or more than a ring ahead",
        ));
    }
    while walked.tail < head {
        let at = walked.tail;
        let available = head - at;
        // The ring size is a power of two, so this is `at % size`.
        let pos = (at & (size as u64 - 1)) as usize;
        if available < HEADER as u64 || pos + HEADER > size {
            return Err(corrupt(&walked, "truncated or misaligned record header"));
        }
        let header = ring
            .bytes(pos, HEADER)
            .ok_or_else(|| corrupt(&walked, "record header outside the published data"))?;
        let record_type = u32::from_ne_bytes(header[0..4].try_into().unwrap_or_default());
        let record_size = usize::from(u16::from_ne_bytes([header[6], header[7]]));
        if record_size < HEADER || record_size as u64 > available {
            return Err(corrupt(
                &walked,
                "record size smaller than its header or past data_head",
            ));
        }
        let record: &[u8] = if pos + record_size <= size {
            ring.bytes(pos, record_size)
                .ok_or_else(|| corrupt(&walked, "record outside the published data"))?
        } else {
            let first = size - pos;
            let (Some(end_part), Some(start_part)) =
                (ring.bytes(pos, first), ring.bytes(0, record_size - first))
            else {
                return Err(corrupt(
                    &walked,
                    "wrapped record outside the published data",
                ));
            };
            scratch.clear();
            scratch.extend_from_slice(end_part);
            scratch.extend_from_slice(start_part);
            scratch
        };
        match parse_record(record_type, record) {
            Ok(Some(parsed)) => {
                if let PerfRecord::Lost { lost } = parsed {
                    walked.lost += lost;
                }
                walked.records += 1;
                f(parsed);
            }
            Ok(None) => {}
            Err(reason) => return Err(corrupt(&walked, reason)),
        }
        walked.tail = at + record_size as u64;
    }
    Ok(walked)
}

/// Like [`walk`], but a malformed record does not stop the reader for good: the rest of the
/// published data (from the malformed record to `head`) is skipped and reported as one lost
/// record (a `PerfRecord::Lost { lost: 1 }` to `f`), so the caller stores `head` as the tail
/// and the kernel can write into the ring again. Without this, the same bad record would be
/// read again on every drain while the kernel drops everything for that CPU.
pub(crate) fn walk_resyncing<R: RingBytes>(
    ring: &R,
    tail: u64,
    head: u64,
    scratch: &mut Vec<u8>,
    f: &mut dyn FnMut(PerfRecord<'_>),
) -> Walked {
    match walk(ring, tail, head, scratch, f) {
        Ok(walked) => walked,
        Err(corrupt) => {
            f(PerfRecord::Lost { lost: 1 });
            Walked {
                tail: head,
                records: corrupt.records + 1,
                lost: corrupt.lost + 1,
                resync: Some(Resync {
                    position: corrupt.position,
                    skipped_bytes: head.saturating_sub(corrupt.position),
                    reason: corrupt.reason,
                }),
            }
        }
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_ne_bytes(word)
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_ne_bytes(word)
}

/// Sample layout for `PERF_SAMPLE_TID | TIME | CPU | RAW` (in the kernel's field order):
/// header, `u32 pid, tid`, `u64 time`, `u32 cpu, res`, `u32 raw_size`, `raw[raw_size]`.
const SAMPLE_RAW_OFFSET: usize = 36;

/// Decodes a record; `None` for record types this reader does not report.
pub(crate) fn parse_record(
    record_type: u32,
    record: &[u8],
) -> Result<Option<PerfRecord<'_>>, &'static str> {
    match record_type {
        PERF_RECORD_SAMPLE => {
            if record.len() < SAMPLE_RAW_OFFSET {
                return Err("sample shorter than its fixed fields");
            }
            let raw_size = u32_at(record, 32) as usize;
            let raw = record
                .get(SAMPLE_RAW_OFFSET..SAMPLE_RAW_OFFSET + raw_size)
                .ok_or("sample raw data runs past the record")?;
            Ok(Some(PerfRecord::Sample(PerfSample {
                pid: u32_at(record, 8),
                tid: u32_at(record, 12),
                time: u64_at(record, 16),
                cpu: u32_at(record, 24),
                raw,
            })))
        }
        PERF_RECORD_LOST => {
            if record.len() < 24 {
                return Err("lost record shorter than its fields");
            }
            Ok(Some(PerfRecord::Lost {
                lost: u64_at(record, 16),
            }))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring over a plain buffer, with every byte "published".
    struct FakeRing(Vec<u8>);

    impl RingBytes for FakeRing {
        fn size(&self) -> usize {
            self.0.len()
        }
        fn bytes(&self, pos: usize, len: usize) -> Option<&[u8]> {
            self.0.get(pos..pos + len)
        }
    }

    fn sample(pid: u32, time: u64, cpu: u32, raw: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&pid.to_ne_bytes());
        body.extend_from_slice(&(pid + 1).to_ne_bytes());
        body.extend_from_slice(&time.to_ne_bytes());
        body.extend_from_slice(&cpu.to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        body.extend_from_slice(&(raw.len() as u32).to_ne_bytes());
        body.extend_from_slice(raw);
        record(PERF_RECORD_SAMPLE, &body)
    }

    fn record(record_type: u32, body: &[u8]) -> Vec<u8> {
        let size = (8 + body.len()).div_ceil(8) * 8;
        let mut out = Vec::new();
        out.extend_from_slice(&record_type.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&(size as u16).to_ne_bytes());
        out.extend_from_slice(body);
        out.resize(size, 0);
        out
    }

    fn lost(count: u64) -> Vec<u8> {
        let mut body = 77u64.to_ne_bytes().to_vec();
        body.extend_from_slice(&count.to_ne_bytes());
        record(PERF_RECORD_LOST, &body)
    }

    /// Writes `records` into a ring of `size` bytes starting at absolute position `start`.
    fn ring_with(size: usize, start: u64, records: &[Vec<u8>]) -> (FakeRing, u64) {
        let mut ring = vec![0xEE; size];
        let mut at = start;
        for rec in records {
            for byte in rec {
                ring[(at % size as u64) as usize] = *byte;
                at += 1;
            }
        }
        (FakeRing(ring), at)
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Sample(u32, u32, u64, u32, Vec<u8>),
        Lost(u64),
    }

    fn collect(ring: &FakeRing, tail: u64, head: u64) -> (Result<Walked, Corrupt>, Vec<Seen>) {
        let mut seen = Vec::new();
        let mut scratch = Vec::new();
        let result = walk(ring, tail, head, &mut scratch, &mut |rec| {
            seen.push(match rec {
                PerfRecord::Sample(s) => Seen::Sample(s.pid, s.tid, s.time, s.cpu, s.raw.to_vec()),
                PerfRecord::Lost { lost } => Seen::Lost(lost),
            })
        });
        (result, seen)
    }

    #[test]
    fn reads_samples_and_counts_lost() {
        let recs = [sample(10, 5, 1, b"abcd"), lost(3), sample(20, 6, 0, b"")];
        let (ring, head) = ring_with(256, 0, &recs);
        let (result, seen) = collect(&ring, 0, head);
        assert_eq!(
            result.unwrap(),
            Walked {
                tail: head,
                records: 3,
                lost: 3,
                resync: None,
            }
        );
        assert_eq!(
            seen,
            vec![
                Seen::Sample(10, 11, 5, 1, b"abcd".to_vec()),
                Seen::Lost(3),
                Seen::Sample(20, 21, 6, 0, vec![]),
            ]
        );
    }

    #[test]
    fn record_wrapping_the_ring_end_is_reassembled() {
        let raw: Vec<u8> = (0..40).collect();
        let first = sample(1, 1, 0, b"x");
        let second = sample(2, 2, 1, &raw);
        // Start late in the third lap so that the second record straddles the end.
        let start = 128 * 3 + 128 - first.len() as u64 - 16;
        let (ring, head) = ring_with(128, start, &[first, second]);
        let (result, seen) = collect(&ring, start, head);
        assert_eq!(result.unwrap().records, 2);
        assert_eq!(seen[1], Seen::Sample(2, 3, 2, 1, raw));
    }

    #[test]
    fn unknown_records_are_skipped() {
        let recs = [record(3, b"comm....."), sample(1, 1, 0, b"z")];
        let (ring, head) = ring_with(128, 0, &recs);
        let (result, seen) = collect(&ring, 0, head);
        assert_eq!(result.unwrap().records, 1);
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn empty_ring_walks_nothing() {
        let (ring, _) = ring_with(64, 0, &[]);
        let (result, seen) = collect(&ring, 40, 40);
        assert_eq!(
            result.unwrap(),
            Walked {
                tail: 40,
                records: 0,
                lost: 0,
                resync: None,
            }
        );
        assert!(seen.is_empty());
    }

    #[test]
    fn malformed_rings_are_reported_not_panicked_on() {
        // A zero-size record would loop forever.
        let (ring, _) = ring_with(64, 0, &[vec![9, 0, 0, 0, 0, 0, 0, 0]]);
        assert!(collect(&ring, 0, 8).0.is_err());
        // A record claiming more bytes than published.
        let (ring, _) = ring_with(64, 0, &[sample(1, 1, 1, b"abc")]);
        assert!(collect(&ring, 0, 16).0.is_err());
        // Head behind tail, or more than a ring ahead.
        assert!(collect(&ring, 16, 8).0.is_err());
        assert!(collect(&ring, 0, 1000).0.is_err());
        // Raw size past the record end.
        let mut bad = sample(1, 1, 1, b"abcdefgh");
        bad[32..36].copy_from_slice(&1000u32.to_ne_bytes());
        let (ring, head) = ring_with(128, 0, &[bad]);
        let err = collect(&ring, 0, head).0.unwrap_err();
        assert_eq!(err.position, 0);
    }

    #[test]
    fn a_malformed_record_is_skipped_to_head_and_counted_as_lost() {
        // A good sample, then a record whose raw size runs past its end, then a good sample
        // the kernel wrote after it (unreachable: record boundaries after a bad one are
        // unknown, so everything up to head is skipped).
        let mut bad = sample(2, 2, 0, b"abcdefgh");
        bad[32..36].copy_from_slice(&1000u32.to_ne_bytes());
        let good = sample(1, 1, 0, b"ok");
        let bad_at = good.len() as u64;
        let (ring, head) = ring_with(256, 0, &[good, bad, sample(3, 3, 0, b"z")]);
        let mut seen = Vec::new();
        let walked = walk_resyncing(&ring, 0, head, &mut Vec::new(), &mut |rec| {
            seen.push(match rec {
                PerfRecord::Sample(s) => Seen::Sample(s.pid, s.tid, s.time, s.cpu, s.raw.to_vec()),
                PerfRecord::Lost { lost } => Seen::Lost(lost),
            })
        });
        assert_eq!(
            seen,
            vec![Seen::Sample(1, 2, 1, 0, b"ok".to_vec()), Seen::Lost(1)],
            "the sample before the bad record once, then one lost record"
        );
        assert_eq!(
            walked,
            Walked {
                tail: head,
                records: 2,
                lost: 1,
                resync: Some(Resync {
                    position: bad_at,
                    skipped_bytes: head - bad_at,
                    reason: "sample raw data runs past the record",
                }),
            }
        );
    }

    #[test]
    fn after_a_resync_the_next_records_are_read_again() {
        let (mut ring, head) = ring_with(128, 0, &[vec![9, 0, 0, 0, 0, 0, 0, 0]]);
        let first = walk_resyncing(&ring, 0, head, &mut Vec::new(), &mut |_| {});
        assert_eq!(first.tail, head);
        assert!(first.resync.is_some());
        // The kernel writes a good record after the skipped data.
        let next = sample(7, 9, 1, b"after");
        for (i, byte) in next.iter().enumerate() {
            ring.0[(head as usize + i) % 128] = *byte;
        }
        let (result, seen) = collect(&ring, first.tail, head + next.len() as u64);
        assert_eq!(result.unwrap().records, 1);
        assert_eq!(seen, vec![Seen::Sample(7, 8, 9, 1, b"after".to_vec())]);
    }

    #[test]
    fn a_raw_head_behind_the_tail_resyncs_to_it_skipping_nothing() {
        // What `drain` does: place the kernel's raw head, then walk.
        let (ring, _) = ring_with(64, 0, &[]);
        for (tail, raw_head) in [(40, 16), ((1 << 32) + 8, u64::from(u32::MAX) - 8)] {
            let head = super::super::head_after(tail, raw_head);
            let walked = walk_resyncing(&ring, tail, head, &mut Vec::new(), &mut |_| {});
            assert_eq!(walked.tail, head);
            assert_eq!(walked.tail as u32, raw_head as u32);
            assert_eq!(walked.resync.unwrap().skipped_bytes, 0, "{tail} {raw_head}");
        }
    }

    #[test]
    fn a_head_behind_the_tail_resyncs_to_the_head() {
        let (ring, _) = ring_with(64, 0, &[]);
        let walked = walk_resyncing(&ring, 40, 16, &mut Vec::new(), &mut |_| {});
        assert_eq!(walked.tail, 16);
        assert_eq!(walked.resync.unwrap().skipped_bytes, 0);
    }
}
