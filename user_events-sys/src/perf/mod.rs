//! A safe `perf_event_open` reader for one or several tracepoints: one ring buffer per online
//! CPU (further tracepoints write into it through `PERF_EVENT_IOC_SET_OUTPUT`), samples with
//! `PERF_SAMPLE_RAW | TID | TIME | CPU`. The raw record's `common_type` tells the tracepoints
//! apart.
//!
//! Raw tracepoint samples need root, `CAP_PERFMON`, or `kernel.perf_event_paranoid = -1`.

pub mod abi;
mod ring;

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::os::{PerfRing, PollSet, RedirectedEvent};
use abi::{
    perf_event_attr, ATTR_FLAG_USE_CLOCKID, CLOCK_MONOTONIC, PERF_ATTR_SIZE_VER8, PERF_SAMPLE_CPU,
    PERF_SAMPLE_RAW, PERF_SAMPLE_TID, PERF_SAMPLE_TIME, PERF_TYPE_TRACEPOINT,
};
use ring::{Cursor, Draining, RingBytes};

/// Where the kernel lists the online CPUs (`0-3,6`).
const ONLINE_CPUS: &str = "/sys/devices/system/cpu/online";

/// How to set up the per-CPU rings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerfOptions {
    /// Data pages per CPU ring (a power of two); the mapping is one page more.
    pub pages_per_cpu: usize,
    /// Wake [`PerfSession::wait`] after this many samples (0: the kernel's default watermark).
    pub wakeup_events: u32,
}

impl Default for PerfOptions {
    /// 16 pages (64 KiB with 4 KiB pages) per CPU, wake up on every sample.
    fn default() -> Self {
        PerfOptions {
            pages_per_cpu: 16,
            wakeup_events: 1,
        }
    }
}

/// One record from a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerfRecord<'a> {
    /// A tracepoint hit.
    Sample(PerfSample<'a>),
    /// The ring was full and the kernel dropped `lost` samples; or `drain` skipped unreadable
    /// ring data, reported as `lost: 1` (at least one record: the skipped bytes may have held
    /// more).
    Lost {
        /// Samples dropped.
        lost: u64,
    },
}

/// A tracepoint sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerfSample<'a> {
    /// Process id of the writer.
    pub pid: u32,
    /// Thread id of the writer.
    pub tid: u32,
    /// When the record was written: `CLOCK_MONOTONIC` nanoseconds (the session asks the
    /// kernel for that clock), comparable across CPUs and with [`clock_now`].
    pub time: u64,
    /// CPU the write ran on.
    pub cpu: u32,
    /// The tracepoint record: the 8-byte `trace_entry`, then the event's payload, possibly
    /// followed by padding up to an 8-byte boundary (use the payload's own lengths).
    pub raw: &'a [u8],
}

/// Bytes before the payload in [`PerfSample::raw`] (`struct trace_entry`).
pub const TRACE_ENTRY_SIZE: usize = 8;

struct CpuRing {
    cpu: u32,
    /// The further tracepoints of the session, writing into `ring` (closed before it).
    redirected: Vec<RedirectedEvent>,
    ring: PerfRing,
    cursor: Cursor,
}

/// Reads one tracepoint on every online CPU.
pub struct PerfSession {
    rings: Vec<CpuRing>,
    /// How the events were opened, for tracepoints added later.
    wakeup_events: u32,
    poll: PollSet,
    scratch: Vec<u8>,
    /// The last drain left samples in the rings (written while it loaded the heads).
    held_back: bool,
    lost: u64,
    resyncs: u64,
    skipped_bytes: u64,
}

impl PerfSession {
    /// Opens the tracepoint `tracepoint_id` (from [`crate::Tracefs::event_id`]) on every online
    /// CPU. While the session lives, the event's enable bits are set.
    pub fn open_tracepoint(tracepoint_id: u64, options: &PerfOptions) -> Result<PerfSession> {
        PerfSession::open_tracepoints(&[tracepoint_id], options)
    }

    /// Opens several tracepoints on every online CPU, all writing into one ring per CPU, so
    /// one [`PerfSession::wait`] covers them all. Tell the samples apart by the `common_type`
    /// at the start of [`PerfSample::raw`] (the tracepoint id).
    pub fn open_tracepoints(tracepoint_ids: &[u64], options: &PerfOptions) -> Result<PerfSession> {
        let Some((&first_id, more_ids)) = tracepoint_ids.split_first() else {
            return Err(Error::InvalidPerfOptions {
                reason: "no tracepoint to open",
            });
        };
        if !options.pages_per_cpu.is_power_of_two() {
            return Err(Error::InvalidPerfOptions {
                reason: "pages_per_cpu must be a power of two (1, 2, 4, ...)",
            });
        }
        if !cfg!(target_os = "linux") {
            return Err(Error::Unsupported {
                what: "perf_event_open",
            });
        }
        let cpus = online_cpus(Path::new(ONLINE_CPUS))?;
        let attr = |tracepoint_id| tracepoint_attr(tracepoint_id, options.wakeup_events);
        let mut rings = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            let ring = PerfRing::open(&attr(first_id), cpu, options.pages_per_cpu)
                .map_err(|err| Error::from_perf_open(first_id, cpu, err))?;
            let redirected = more_ids
                .iter()
                .map(|&id| {
                    ring.redirect(&attr(id), cpu)
                        .map_err(|err| Error::from_perf_open(id, cpu, err))
                })
                .collect::<Result<Vec<_>>>()?;
            let cursor = Cursor::at(ring.load_head());
            rings.push(CpuRing {
                cpu,
                redirected,
                ring,
                cursor,
            });
        }
        let poll = PollSet::new(rings.iter().map(|r| &r.ring));
        Ok(PerfSession {
            rings,
            wakeup_events: options.wakeup_events,
            poll,
            scratch: Vec::new(),
            held_back: false,
            lost: 0,
            resyncs: 0,
            skipped_bytes: 0,
        })
    }

    /// Adds the tracepoint `tracepoint_id` to the running session: its samples go into the
    /// existing per-CPU rings (`PERF_EVENT_IOC_SET_OUTPUT`) from now on, so the same
    /// [`PerfSession::wait`] and [`PerfSession::drain`] cover it. For events registered after
    /// the session opened, such as a new multi-format registration. On error nothing is added
    /// (the CPUs already attached are detached again).
    pub fn add_tracepoint(&mut self, tracepoint_id: u64) -> Result<()> {
        let attr = tracepoint_attr(tracepoint_id, self.wakeup_events);
        let added = self
            .rings
            .iter()
            .map(|r| {
                r.ring
                    .redirect(&attr, r.cpu)
                    .map_err(|err| Error::from_perf_open(tracepoint_id, r.cpu, err))
            })
            .collect::<Result<Vec<_>>>()?;
        for (cpu_ring, event) in self.rings.iter_mut().zip(added) {
            cpu_ring.redirected.push(event);
        }
        Ok(())
    }

    /// How many tracepoints each ring gets samples from.
    pub fn tracepoint_count(&self) -> usize {
        self.rings.first().map_or(0, |r| 1 + r.redirected.len())
    }

    /// The CPUs this session reads.
    pub fn cpus(&self) -> impl Iterator<Item = u32> + '_ {
        self.rings.iter().map(|r| r.cpu)
    }

    /// Waits with `poll(2)` until a ring has data (`true`), or `timeout` passes or a signal
    /// handler runs (`false`), so a caller's Ctrl-C flag is seen at once.
    /// Returns `true` at once when the last drain left records for the next one.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        if self.held_back {
            return Ok(true);
        }
        self.poll
            .wait(timeout)
            .map_err(|err| Error::io("poll(2) on the perf rings", err))
    }

    /// Hands the records in the rings to `f` in time order and frees their space; returns how
    /// many records were handed over. Samples are borrowed from the ring (or from a scratch
    /// buffer when a record wraps the ring's end) for the duration of the call to `f`.
    ///
    /// Each CPU has its own ring, and a thread that moves between CPUs writes into several:
    /// the records are merged by sample time, so one writer's records come out in the order
    /// it wrote them. A sample written while the drain starts may be left for the next drain
    /// (then [`Self::wait`] returns at once), so that an earlier one still being committed on
    /// another CPU is not overtaken.
    ///
    /// A ring holding a malformed record is resynchronised: what the kernel published from
    /// that record on is skipped ([`Self::skipped_bytes`]) and reported to `f` as
    /// `PerfRecord::Lost { lost: 1 }` (at least one record was lost: how many the skipped
    /// bytes held is unknown), and the other rings are read as usual.
    pub fn drain(&mut self, mut f: impl FnMut(PerfRecord<'_>)) -> Result<usize> {
        // Before any head is loaded: every sample timed up to now is in the heads loaded next.
        let now = clock_now();
        let mut draining: Vec<Draining<'_, Published<'_>>> = self
            .rings
            .iter_mut()
            .map(|CpuRing { ring, cursor, .. }| {
                let head = head_after(cursor.tail, ring.load_head());
                let published = Published {
                    ring,
                    tail: cursor.tail,
                    head,
                };
                Draining::new(published, head, cursor)
            })
            .collect();
        ring::drain_in_time_order(&mut draining, now, &mut self.scratch, &mut f);
        let mut total = 0;
        self.held_back = false;
        for ring in &draining {
            ring.bytes.ring.store_tail(ring.cursor.tail);
            let walked = &ring.walked;
            self.lost += walked.lost;
            if let Some(resync) = &walked.resync {
                self.resyncs += 1;
                self.skipped_bytes += resync.skipped_bytes;
            }
            self.held_back |= walked.held_back;
            total += walked.records;
        }
        Ok(total)
    }

    /// Samples the kernel dropped because a ring was full, plus one per resync (at least one
    /// record each), as reported so far by `drain`.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// How many times `drain` met a malformed record and skipped to the ring's head.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Bytes of ring data skipped by resyncs.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }
}

/// Now on the clock of [`PerfSample::time`] (`CLOCK_MONOTONIC`, nanoseconds): how long ago a
/// sample was written is `clock_now() - sample.time`.
pub fn clock_now() -> u64 {
    crate::os::monotonic_nanos()
}

/// A tracepoint sampled on every hit, with what [`PerfSample`] reports.
fn tracepoint_attr(tracepoint_id: u64, wakeup_events: u32) -> perf_event_attr {
    perf_event_attr {
        type_: PERF_TYPE_TRACEPOINT,
        size: PERF_ATTR_SIZE_VER8,
        config: tracepoint_id,
        sample_period: 1,
        sample_type: PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CPU | PERF_SAMPLE_RAW,
        // Sample times on one clock for all CPUs, the one `clock_now` reads: `drain` merges
        // the rings by it.
        flags: ATTR_FLAG_USE_CLOCKID,
        clockid: CLOCK_MONOTONIC,
        wakeup_events,
        ..perf_event_attr::default()
    }
}

/// The kernel's `data_head` as a position comparable with our 64-bit `tail`. A 32-bit kernel
/// publishes the head modulo 2^32 (its ring positions are `unsigned long`), and targets
/// without 64-bit atomics read only the low half; the head is never more than a ring ahead
/// of the tail (a ring is at most 2^31 bytes), so its low 32 bits are enough, read as a signed
/// distance: a head behind the tail (impossible from a sane kernel) stays behind it, and the
/// walk resyncs to it skipping nothing, instead of counting ~4 GiB as skipped.
fn head_after(tail: u64, raw_head: u64) -> u64 {
    let distance = (raw_head as u32).wrapping_sub(tail as u32) as i32;
    tail.wrapping_add_signed(i64::from(distance))
}

/// The part of a ring between our tail and a head loaded with acquire ordering.
struct Published<'a> {
    ring: &'a PerfRing,
    tail: u64,
    head: u64,
}

impl RingBytes for Published<'_> {
    fn size(&self) -> usize {
        self.ring.data_size()
    }

    fn bytes(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let size = self.size();
        if pos.checked_add(len)? > size {
            return None;
        }
        let start = (self.tail % size as u64) as usize;
        let distance = (pos + size - start) % size;
        if (distance + len) as u64 > self.head - self.tail {
            return None;
        }
        // SAFETY: the range is inside the data area and between our tail and the head we
        // loaded (checked just above): the kernel has finished writing it and will not touch
        // it until we store a tail beyond it.
        Some(unsafe { self.ring.data(pos, len) })
    }
}

/// The online CPUs listed in `path` (`/sys/devices/system/cpu/online`).
fn online_cpus(path: &Path) -> Result<Vec<u32>> {
    let text = fs::read_to_string(path)
        .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
    parse_cpu_list(&text).ok_or_else(|| Error::Parse {
        path: path.to_path_buf(),
        reason: format!(
            "expected a CPU list such as `0-3,6`, found {:?}",
            text.trim()
        ),
    })
}

/// Parses a kernel CPU list (`0-3,6,8-9`). `None` if malformed or empty.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last): (u32, u32) = (first.parse().ok()?, last.parse().ok()?);
                if first > last {
                    return None;
                }
                cpus.extend(first..=last);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0\n"), Some(vec![0]));
        assert_eq!(parse_cpu_list("0-3"), Some(vec![0, 1, 2, 3]));
        assert_eq!(parse_cpu_list("0-1,4,6-7\n"), Some(vec![0, 1, 4, 6, 7]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
    }

    #[test]
    fn the_head_is_placed_after_the_tail_across_32_bit_wraps() {
        // 64-bit kernel: the raw head is the full position.
        assert_eq!(head_after(1000, 1400), 1400);
        assert_eq!(head_after(5 << 32, (5 << 32) + 64), (5 << 32) + 64);
        // 32-bit kernel (or low half only): the head wrapped past 2^32, our tail did not.
        assert_eq!(head_after(u32::MAX as u64 - 7, 24), (1 << 32) + 24);
        assert_eq!(head_after((3 << 32) + 100, 200), (3 << 32) + 200);
        // Nothing new.
        assert_eq!(head_after(77, 77), 77);
        // A head behind the tail stays behind it (the walk resyncs to it, skipping nothing).
        assert_eq!(head_after(1000, 900), 900);
        assert_eq!(
            head_after((1 << 32) + 8, u32::MAX as u64 - 8),
            u32::MAX as u64 - 8
        );
    }

    #[test]
    fn options_are_checked_before_any_syscall() {
        let options = PerfOptions {
            pages_per_cpu: 3,
            wakeup_events: 1,
        };
        assert!(matches!(
            PerfSession::open_tracepoint(1, &options),
            Err(Error::InvalidPerfOptions { .. })
        ));
        assert!(matches!(
            PerfSession::open_tracepoints(&[], &PerfOptions::default()),
            Err(Error::InvalidPerfOptions { .. })
        ));
    }

    #[test]
    fn attr_flags_sit_where_c_puts_the_bit_fields() {
        // `use_clockid` is the 26th bit-field: in the word's fourth byte, its second bit from
        // the bottom on little-endian targets, from the top on big-endian ones (GCC's layout).
        let in_memory = abi::ATTR_FLAG_USE_CLOCKID.to_ne_bytes();
        let byte = if cfg!(target_endian = "big") {
            0x40
        } else {
            0x02
        };
        assert_eq!(in_memory, [0, 0, 0, byte, 0, 0, 0, 0]);
        // `disabled` is the very first bit.
        let first = if cfg!(target_endian = "big") {
            0x80
        } else {
            0x01
        };
        assert_eq!(abi::ATTR_FLAG_DISABLED.to_ne_bytes()[0], first);
        assert_eq!(
            tracepoint_attr(7, 1).flags,
            abi::ATTR_FLAG_USE_CLOCKID,
            "the only flag the reader sets"
        );
    }

    #[test]
    fn set_output_request_number() {
        // `_IO('$', 5)` as <linux/perf_event.h> defines it, on the generic ioctl layout.
        let generic = crate::abi::IocEncoding::GENERIC;
        assert_eq!(generic.ioc(generic.none, b'$', 5, 0), 0x2405);
        let three = crate::abi::IocEncoding::THREE_DIR_BITS;
        assert_eq!(three.ioc(three.none, b'$', 5, 0), 0x2000_2405);
    }
}
