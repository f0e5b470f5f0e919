//! A perf listener on one event that keeps everything it received: `ue-metrics-decode`'s live
//! source (perf_event_open, one ring per online CPU), as a collector would run it.

use std::time::Duration;

use ue_metrics_decode::live::{LiveError, LiveOptions, LiveSource};
use ue_metrics_decode::Record;
use user_events_sys::Tracefs;

use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::reference::{point_count, PAYLOAD_HEADER_BYTES};

/// A perf listener attached to `user_events:<event>`. Attaching sets the event's enable bit in
/// every producer; dropping the collector clears it (when it was the last listener).
pub struct Collector {
    source: LiveSource,
    records: Vec<Record>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("records", &self.records.len())
            .field("stats", self.source.stats())
            .finish()
    }
}

impl Collector {
    /// Attaches to `user_events:<event>` (which must be registered) with `pages_per_cpu` ring
    /// pages per CPU (a power of two; the ring must hold everything written between drains).
    pub fn attach(event: &str, pages_per_cpu: usize) -> Result<Collector, LiveError> {
        let tracefs = Tracefs::discover()?;
        let source = LiveSource::open(
            &tracefs,
            &LiveOptions {
                event: event.into(),
                pages_per_cpu,
                ..LiveOptions::default()
            },
        )?;
        Ok(Collector {
            source,
            records: Vec::new(),
        })
    }

    /// Reads everything in the rings now (a short wait for stragglers included); returns the
    /// number of records added.
    pub fn drain(&mut self) -> Result<usize, LiveError> {
        let before = self.records.len();
        let records = &mut self.records;
        while self
            .source
            .poll(Duration::from_millis(20), |r| records.push(r))?
            > 0
        {}
        Ok(self.records.len() - before)
    }

    /// Drains, then hands over the records received so far.
    pub fn take(&mut self) -> Result<Received, LiveError> {
        self.drain()?;
        Ok(Received {
            records: std::mem::take(&mut self.records),
        })
    }

    /// Records the kernel reported lost so far (ring full).
    pub fn lost(&self) -> u64 {
        self.source.stats().lost
    }
}

/// Records a listener received.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// In the order the rings were read.
    pub records: Vec<Record>,
}

impl Received {
    /// Number of events.
    pub fn events(&self) -> usize {
        self.records.len()
    }

    /// Payload bytes (fixed fields plus OTLP buffer) of the events, as the exporter counts
    /// them in `bytes_written`.
    pub fn payload_bytes(&self) -> usize {
        self.records
            .iter()
            .map(|r| PAYLOAD_HEADER_BYTES + r.buffer_len)
            .sum()
    }

    /// The largest payload.
    pub fn largest_payload(&self) -> usize {
        self.records
            .iter()
            .map(|r| PAYLOAD_HEADER_BYTES + r.buffer_len)
            .max()
            .unwrap_or(0)
    }

    /// The decoded requests; the first record that failed to decode is an error.
    pub fn requests(&self) -> Result<Vec<ExportMetricsServiceRequest>, String> {
        self.records
            .iter()
            .map(|r| {
                r.result
                    .clone()
                    .map_err(|e| format!("record from pid {:?} did not decode: {e}", r.meta.pid))
            })
            .collect()
    }

    /// Data points in the decoded requests (failed records count nothing).
    pub fn points(&self) -> usize {
        let ok: Vec<_> = self
            .records
            .iter()
            .filter_map(|r| r.result.as_ref().ok().cloned())
            .collect();
        point_count(&ok)
    }

    /// Only the records written by process `pid`.
    pub fn from_pid(&self, pid: u32) -> Received {
        Received {
            records: self
                .records
                .iter()
                .filter(|r| r.meta.pid == Some(pid))
                .cloned()
                .collect(),
        }
    }

    /// The writers' process ids, each once, in order of first appearance.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for pid in self.records.iter().filter_map(|r| r.meta.pid) {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Appends `other`'s records.
    pub fn extend(&mut self, other: Received) {
        self.records.extend(other.records);
    }
}
