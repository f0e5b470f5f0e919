//! Reading the records of the per-CPU perf rings between `data_tail` and `data_head`, merged
//! into time order. Pure logic over [`RingBytes`], so the wrap-around, ordering and resync
//! handling is tested without a kernel.

use super::abi::{PERF_RECORD_LOST, PERF_RECORD_SAMPLE};
use super::{PerfRecord, PerfSample};

/// Read access to the published part of a ring's data area.
pub(crate) trait RingBytes {
    /// Size of the data area (a power of two, a multiple of 8).
    fn size(&self) -> usize;
    /// `len` bytes at `pos` (`pos + len <= size`), or `None` if that range is not published.
    fn bytes(&self, pos: usize, len: usize) -> Option<&[u8]>;
}

/// A ring's reading position, kept from one drain to the next.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Our `data_tail`: every record before it was handed over (or skipped by a resync).
    pub tail: u64,
    /// Time of the last sample handed over from this ring: where the ring's records that
    /// carry no time (lost counts, resyncs) fall among the other rings' samples.
    last_time: u64,
    /// A sample the last drain held back (its time was after that drain began).
    held_at: Option<u64>,
}

impl Cursor {
    /// A ring read from `tail` on.
    pub(crate) fn at(tail: u64) -> Cursor {
        Cursor {
            tail,
            last_time: 0,
            held_at: None,
        }
    }
}

/// What one drain did on one ring.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Walked {
    /// Records handed to the callback.
    pub records: usize,
    /// Sum of the `lost` counts of `PERF_RECORD_LOST` records, plus one per resync.
    pub lost: u64,
    /// Set when a malformed record made the drain skip to `data_head`.
    pub resync: Option<Resync>,
    /// A sample was left in the ring for the next drain (written after this one began).
    pub held_back: bool,
}

/// A skip over unreadable ring data: the rest of the published data, from a malformed record
/// to `data_head`, reported as one lost record. Without it, the same bad record would be read
/// again on every drain while the kernel drops everything for that CPU.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resync {
    /// Where the malformed record starts (bytes since the ring was opened).
    pub position: u64,
    /// Bytes skipped, from `position` to `data_head`.
    pub skipped_bytes: u64,
    /// What was wrong with the record.
    pub reason: &'static str,
}

/// One ring taking part in a drain.
pub(crate) struct Draining<'c, R> {
    /// The ring's published bytes.
    pub bytes: R,
    /// `data_head` as loaded for this drain.
    pub head: u64,
    /// Where reading starts; moved past what the drain hands over.
    pub cursor: &'c mut Cursor,
    /// What the drain did.
    pub walked: Walked,
    next: Next,
}

impl<'c, R: RingBytes> Draining<'c, R> {
    /// `bytes` published up to `head`, read from `cursor` on.
    pub(crate) fn new(bytes: R, head: u64, cursor: &'c mut Cursor) -> Self {
        Draining {
            bytes,
            head,
            cursor,
            walked: Walked::default(),
            next: Next::End,
        }
    }
}

/// What a ring offers next in a drain.
#[derive(Clone, Copy)]
enum Next {
    /// Nothing (more) this drain: at the head, or a sample written after the drain began.
    End,
    /// A record to hand over at this time.
    Record { time: u64 },
    /// A malformed record: resync at this time.
    Malformed { time: u64, reason: &'static str },
}

impl Next {
    fn time(self) -> Option<u64> {
        match self {
            Next::End => None,
            Next::Record { time } | Next::Malformed { time, .. } => Some(time),
        }
    }
}

/// Hands the records of all `rings` to `f` in time order: one thread writing on several
/// CPUs in turn has its records come out in the order it wrote them, although each CPU has
/// its own ring. Within a ring, records keep their ring order.
///
/// `now` is read on the samples' clock before the heads were loaded. A sample timed after
/// it is left in its ring for the next drain (and the rest of that ring with it): it was
/// written while the heads were loaded, and a sample an instant earlier on a ring whose head
/// was loaded before it committed is not in this drain either, so handing the later one over
/// now would put it first. A sample is held back once at most, so a clock that jumps cannot
/// stop a ring.
///
/// A malformed record does not stop the reader for good: the rest of that ring's published
/// data is skipped ([`Resync`]) and reported to `f` as `PerfRecord::Lost { lost: 1 }`.
pub(crate) fn drain_in_time_order<R: RingBytes>(
    rings: &mut [Draining<'_, R>],
    now: u64,
    scratch: &mut Vec<u8>,
    f: &mut dyn FnMut(PerfRecord<'_>),
) {
    for ring in rings.iter_mut() {
        ring.next = match head_out_of_range(&ring.bytes, ring.cursor.tail, ring.head) {
            Some(reason) => Next::Malformed {
                time: ring.cursor.last_time,
                reason,
            },
            None => peek(ring, now, scratch),
        };
    }
    // A linear scan: one ring per CPU, and most drains see one or two with records.
    while let Some(earliest) = rings
        .iter()
        .enumerate()
        .filter_map(|(index, ring)| Some((ring.next.time()?, index)))
        .min()
        .map(|(_, index)| index)
    {
        let ring = &mut rings[earliest];
        hand_over(ring, scratch, f);
        ring.next = peek(ring, now, scratch);
    }
}

/// The ring's next record (skipping record types this reader does not report).
fn peek<R: RingBytes>(ring: &mut Draining<'_, R>, now: u64, scratch: &mut Vec<u8>) -> Next {
    let cursor = &mut *ring.cursor;
    while cursor.tail < ring.head {
        let time = cursor.last_time;
        match read_at(&ring.bytes, cursor.tail, ring.head, scratch) {
            Err(reason) => return Next::Malformed { time, reason },
            Ok(Read { record: None, size }) => cursor.tail += size,
            Ok(Read {
                record: Some(PerfRecord::Lost { .. }),
                ..
            }) => return Next::Record { time },
            Ok(Read {
                record: Some(PerfRecord::Sample(sample)),
                ..
            }) => {
                if sample.time > now && cursor.held_at != Some(cursor.tail) {
                    cursor.held_at = Some(cursor.tail);
                    ring.walked.held_back = true;
                    return Next::End;
                }
                return Next::Record { time: sample.time };
            }
        }
    }
    Next::End
}

/// Hands the record `peek` found to `f`, or resyncs past a malformed one.
fn hand_over<R: RingBytes>(
    ring: &mut Draining<'_, R>,
    scratch: &mut Vec<u8>,
    f: &mut dyn FnMut(PerfRecord<'_>),
) {
    let (cursor, walked) = (&mut *ring.cursor, &mut ring.walked);
    let reason = match ring.next {
        Next::End => return,
        Next::Malformed { reason, .. } => reason,
        Next::Record { .. } => match read_at(&ring.bytes, cursor.tail, ring.head, scratch) {
            Ok(Read { size, record }) => {
                match record {
                    Some(PerfRecord::Sample(sample)) => cursor.last_time = sample.time,
                    Some(PerfRecord::Lost { lost }) => walked.lost += lost,
                    None => {}
                }
                if let Some(record) = record {
                    walked.records += 1;
                    f(record);
                }
                cursor.tail += size;
                return;
            }
            // `peek` read the same bytes: unreachable, but a resync is the safe answer.
            Err(reason) => reason,
        },
    };
    f(PerfRecord::Lost { lost: 1 });
    walked.records += 1;
    walked.lost += 1;
    walked.resync = Some(Resync {
        position: cursor.tail,
        skipped_bytes: ring.head.saturating_sub(cursor.tail),
        reason,
    });
    cursor.tail = ring.head;
}

const HEADER: usize = 8;

/// One record read at a position: its size (how far the tail moves) and the record, `None`
/// for record types this reader does not report.
struct Read<'s> {
    size: u64,
    record: Option<PerfRecord<'s>>,
}

/// Reads the record at `at` (`at < head`). Records that wrap around the end of the ring are
/// copied into `scratch`; others are borrowed from the ring. `Err` says what is malformed.
fn read_at<'s, R: RingBytes>(
    ring: &'s R,
    at: u64,
    head: u64,
    scratch: &'s mut Vec<u8>,
) -> Result<Read<'s>, &'static str> {
    let size = ring.size();
    let available = head - at;
    // The ring size is a power of two, so this is `at % size`.
    let pos = (at & (size as u64 - 1)) as usize;
    if available < HEADER as u64 || pos + HEADER > size {
        return Err("truncated or misaligned record header");
    }
    let header = ring
        .bytes(pos, HEADER)
        .ok_or("record header outside the published data")?;
    let record_type = u32::from_ne_bytes(header[0..4].try_into().unwrap_or_default());
    let record_size = usize::from(u16::from_ne_bytes([header[6], header[7]]));
    if record_size < HEADER || record_size as u64 > available {
        return Err("record size smaller than its header or past data_head");
    }
    let record: &[u8] = if pos + record_size <= size {
        ring.bytes(pos, record_size)
            .ok_or("record outside the published data")?
    } else {
        let first = size - pos;
        let (Some(end_part), Some(start_part)) =
            (ring.bytes(pos, first), ring.bytes(0, record_size - first))
        else {
            return Err("wrapped record outside the published data");
        };
        scratch.clear();
        scratch.extend_from_slice(end_part);
        scratch.extend_from_slice(start_part);
        scratch
    };
    Ok(Read {
        size: record_size as u64,
        record: parse_record(record_type, record)?,
    })
}

/// Why `head` cannot be the end of the published data after `tail`, if it cannot.
fn head_out_of_range<R: RingBytes>(ring: &R, tail: u64, head: u64) -> Option<&'static str> {
    (head < tail || head - tail > ring.size() as u64)
        .then_some("data_head is behind data_tail or more than a ring ahead")
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

    impl RingBytes for &FakeRing {
        fn size(&self) -> usize {
            (**self).size()
        }
        fn bytes(&self, pos: usize, len: usize) -> Option<&[u8]> {
            (**self).bytes(pos, len)
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

    /// One drain over `rings` (each a ring, where its cursor is, its head) at `now`: what the
    /// callback saw, and per ring the cursor after it and what the drain did.
    fn drain_at(rings: &mut [(&FakeRing, &mut Cursor, u64)], now: u64) -> (Vec<Seen>, Vec<Walked>) {
        let mut draining: Vec<_> = rings
            .iter_mut()
            .map(|(ring, cursor, head)| Draining::new(*ring, *head, cursor))
            .collect();
        let mut seen = Vec::new();
        drain_in_time_order(&mut draining, now, &mut Vec::new(), &mut |rec| {
            seen.push(match rec {
                PerfRecord::Sample(s) => Seen::Sample(s.pid, s.tid, s.time, s.cpu, s.raw.to_vec()),
                PerfRecord::Lost { lost } => Seen::Lost(lost),
            })
        });
        (seen, draining.into_iter().map(|d| d.walked).collect())
    }

    /// One ring drained from `tail` to `head`, nothing held back: the tail after it, what the
    /// drain did, what the callback saw.
    fn collect(ring: &FakeRing, tail: u64, head: u64) -> (u64, Walked, Vec<Seen>) {
        let mut cursor = Cursor::at(tail);
        let (seen, mut walked) = drain_at(&mut [(ring, &mut cursor, head)], u64::MAX);
        (cursor.tail, walked.remove(0), seen)
    }

    #[test]
    fn reads_samples_and_counts_lost() {
        let recs = [sample(10, 5, 1, b"abcd"), lost(3), sample(20, 6, 0, b"")];
        let (ring, head) = ring_with(256, 0, &recs);
        let (tail, walked, seen) = collect(&ring, 0, head);
        assert_eq!(tail, head);
        assert_eq!(
            walked,
            Walked {
                records: 3,
                lost: 3,
                resync: None,
                held_back: false,
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
        let (_, walked, seen) = collect(&ring, start, head);
        assert_eq!(walked.records, 2);
        assert_eq!(seen[1], Seen::Sample(2, 3, 2, 1, raw));
    }

    #[test]
    fn unknown_records_are_skipped() {
        let recs = [record(3, b"comm....."), sample(1, 1, 0, b"z")];
        let (ring, head) = ring_with(128, 0, &recs);
        let (tail, walked, seen) = collect(&ring, 0, head);
        assert_eq!((tail, walked.records), (head, 1));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn empty_ring_walks_nothing() {
        let (ring, _) = ring_with(64, 0, &[]);
        let (tail, walked, seen) = collect(&ring, 40, 40);
        assert_eq!((tail, walked), (40, Walked::default()));
        assert!(seen.is_empty());
    }

    #[test]
    fn malformed_rings_are_resynced_not_panicked_on() {
        let resynced_at = |ring: &FakeRing, tail, head| {
            let (new_tail, walked, seen) = collect(ring, tail, head);
            assert_eq!((new_tail, seen.last()), (head, Some(&Seen::Lost(1))));
            walked.resync.expect("a resync").position
        };
        // A zero-size record would loop forever.
        let (ring, _) = ring_with(64, 0, &[vec![9, 0, 0, 0, 0, 0, 0, 0]]);
        assert_eq!(resynced_at(&ring, 0, 8), 0);
        // A record claiming more bytes than published.
        let (ring, _) = ring_with(64, 0, &[sample(1, 1, 1, b"abc")]);
        assert_eq!(resynced_at(&ring, 0, 16), 0);
        // Head more than a ring ahead.
        assert_eq!(resynced_at(&ring, 0, 1000), 0);
        // Raw size past the record end.
        let mut bad = sample(1, 1, 1, b"abcdefgh");
        bad[32..36].copy_from_slice(&1000u32.to_ne_bytes());
        let (ring, head) = ring_with(128, 0, &[bad]);
        assert_eq!(resynced_at(&ring, 0, head), 0);
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
        let (tail, walked, seen) = collect(&ring, 0, head);
        assert_eq!(
            seen,
            vec![Seen::Sample(1, 2, 1, 0, b"ok".to_vec()), Seen::Lost(1)],
            "the sample before the bad record once, then one lost record"
        );
        assert_eq!(tail, head);
        assert_eq!(
            walked,
            Walked {
                records: 2,
                lost: 1,
                resync: Some(Resync {
                    position: bad_at,
                    skipped_bytes: head - bad_at,
                    reason: "sample raw data runs past the record",
                }),
                held_back: false,
            }
        );
    }

    #[test]
    fn after_a_resync_the_next_records_are_read_again() {
        let (mut ring, head) = ring_with(128, 0, &[vec![9, 0, 0, 0, 0, 0, 0, 0]]);
        let (tail, first, _) = collect(&ring, 0, head);
        assert_eq!(tail, head);
        assert!(first.resync.is_some());
        // The kernel writes a good record after the skipped data.
        let next = sample(7, 9, 1, b"after");
        for (i, byte) in next.iter().enumerate() {
            ring.0[(head as usize + i) % 128] = *byte;
        }
        let (_, walked, seen) = collect(&ring, tail, head + next.len() as u64);
        assert_eq!((walked.records, walked.resync), (1, None));
        assert_eq!(seen, vec![Seen::Sample(7, 8, 9, 1, b"after".to_vec())]);
    }

    #[test]
    fn a_raw_head_behind_the_tail_resyncs_to_it_skipping_nothing() {
        // What `drain` does: place the kernel's raw head, then read.
        let (ring, _) = ring_with(64, 0, &[]);
        for (tail, raw_head) in [(40, 16), ((1 << 32) + 8, u64::from(u32::MAX) - 8)] {
            let head = super::super::head_after(tail, raw_head);
            let (new_tail, walked, _) = collect(&ring, tail, head);
            assert_eq!(new_tail, head);
            assert_eq!(new_tail as u32, raw_head as u32);
            assert_eq!(walked.resync.unwrap().skipped_bytes, 0, "{tail} {raw_head}");
        }
    }

    #[test]
    fn a_head_behind_the_tail_resyncs_to_the_head() {
        let (ring, _) = ring_with(64, 0, &[]);
        let (tail, walked, _) = collect(&ring, 40, 16);
        assert_eq!(tail, 16);
        assert_eq!(walked.resync.unwrap().skipped_bytes, 0);
    }

    /// A sample as `seen` reports it, for a writer `pid` (tid `pid + 1`).
    fn seen_sample(pid: u32, time: u64, cpu: u32, raw: &[u8]) -> Seen {
        Seen::Sample(pid, pid + 1, time, cpu, raw.to_vec())
    }

    /// One drain over two rings holding `cpu0` and `cpu1` (the second starting at another
    /// position), nothing held back; checks that both were read to their heads.
    fn drain_two(cpu0: &[Vec<u8>], cpu1: &[Vec<u8>]) -> (Vec<Seen>, Vec<Walked>) {
        let (ring0, head0) = ring_with(256, 0, cpu0);
        let (ring1, head1) = ring_with(256, 64, cpu1);
        let (mut at0, mut at1) = (Cursor::at(0), Cursor::at(64));
        let drained = drain_at(
            &mut [(&ring0, &mut at0, head0), (&ring1, &mut at1, head1)],
            u64::MAX,
        );
        assert_eq!((at0.tail, at1.tail), (head0, head1), "read to the heads");
        drained
    }

    #[test]
    fn the_rings_of_several_cpus_are_merged_in_time_order() {
        // One writer moving between CPUs 0 and 1: times 10, 20, 30, 40, 50 land in two rings.
        let cpu0 = [
            sample(7, 10, 0, b"a"),
            sample(7, 30, 0, b"c"),
            sample(7, 40, 0, b"d"),
        ];
        let (seen, walked) = drain_two(&cpu0, &[sample(7, 20, 1, b"b"), sample(7, 50, 1, b"e")]);
        assert_eq!(
            seen,
            vec![
                seen_sample(7, 10, 0, b"a"),
                seen_sample(7, 20, 1, b"b"),
                seen_sample(7, 30, 0, b"c"),
                seen_sample(7, 40, 0, b"d"),
                seen_sample(7, 50, 1, b"e"),
            ]
        );
        assert_eq!((walked[0].records, walked[1].records), (3, 2));
    }

    #[test]
    fn records_without_a_time_keep_their_place_in_their_ring() {
        // CPU 0 lost 4 samples after its sample at 10; CPU 1 wrote at 5 and 20. The lost
        // count comes after what CPU 0 had before it and before what CPU 1 wrote later.
        let (seen, walked) = drain_two(
            &[sample(1, 10, 0, b"x"), lost(4)],
            &[sample(2, 5, 1, b"p"), sample(2, 20, 1, b"q")],
        );
        assert_eq!(
            seen,
            vec![
                seen_sample(2, 5, 1, b"p"),
                seen_sample(1, 10, 0, b"x"),
                Seen::Lost(4),
                seen_sample(2, 20, 1, b"q"),
            ]
        );
        assert_eq!(walked[0].lost, 4);
    }

    #[test]
    fn a_sample_written_after_the_drain_began_waits_for_the_next_drain() {
        // The drain began at 25. CPU 1's sample at 30 was committed while the heads were
        // loaded; a sample between 25 and 30 on CPU 0 may still be on its way.
        let (cpu0, head0) = ring_with(256, 0, &[sample(1, 10, 0, b"a")]);
        let (cpu1, head1) = ring_with(256, 0, &[sample(1, 20, 1, b"b"), sample(1, 30, 1, b"c")]);
        let (mut at0, mut at1) = (Cursor::at(0), Cursor::at(0));
        let (seen, walked) = drain_at(
            &mut [(&cpu0, &mut at0, head0), (&cpu1, &mut at1, head1)],
            25,
        );
        assert_eq!(
            seen,
            vec![seen_sample(1, 10, 0, b"a"), seen_sample(1, 20, 1, b"b")]
        );
        assert!(walked[1].held_back && !walked[0].held_back);
        let held_at = at1.tail;
        assert!(held_at < head1, "the sample at 30 stays in the ring");
        // It was in flight: CPU 0 publishes a sample at 27 before the next drain.
        let (cpu0, head0) = ring_with(256, 0, &[sample(1, 10, 0, b"a"), sample(1, 27, 0, b"late")]);
        let (seen, walked) = drain_at(
            &mut [(&cpu0, &mut at0, head0), (&cpu1, &mut at1, head1)],
            40,
        );
        assert_eq!(
            seen,
            vec![seen_sample(1, 27, 0, b"late"), seen_sample(1, 30, 1, b"c")]
        );
        assert!(!walked[0].held_back && !walked[1].held_back);
        assert_eq!((at0.tail, at1.tail), (head0, head1));
    }

    #[test]
    fn a_sample_is_held_back_once_at_most() {
        // A clock that went backwards between two drains must not stop a ring.
        let (ring, head) = ring_with(256, 0, &[sample(1, 1_000, 0, b"future")]);
        let mut cursor = Cursor::at(0);
        let (seen, walked) = drain_at(&mut [(&ring, &mut cursor, head)], 10);
        assert!(seen.is_empty() && walked[0].held_back);
        let (seen, walked) = drain_at(&mut [(&ring, &mut cursor, head)], 10);
        assert_eq!(seen, vec![seen_sample(1, 1_000, 0, b"future")]);
        assert!(!walked[0].held_back);
        assert_eq!(cursor.tail, head);
    }

    #[test]
    fn a_malformed_ring_does_not_stop_the_others() {
        let (seen, walked) = drain_two(
            &[vec![9, 0, 0, 0, 0, 0, 0, 0]],
            &[sample(3, 7, 1, b"g"), sample(3, 8, 1, b"h")],
        );
        assert_eq!(
            seen,
            vec![
                Seen::Lost(1),
                seen_sample(3, 7, 1, b"g"),
                seen_sample(3, 8, 1, b"h"),
            ]
        );
        assert!(walked[0].resync.is_some() && walked[1].resync.is_none());
    }
}
