//! OpenTelemetry SDK metrics to OTLP protobuf bytes, optionally split into size-bounded requests.
//!
//! [`MetricsEncoder`] writes `opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest`
//! bytes straight from the SDK's [`ResourceMetrics`], without building intermediate message
//! structs. Its buffers are kept between calls: after the first export of a given shape, an
//! export allocates nothing.
//!
//! - [`MetricsEncoder::encode_request`] (mode a): one request with everything, e.g. for OTLP/HTTP.
//! - [`MetricsEncoder::encode_chunks`] (mode b): a sequence of complete requests, each at most
//!   `max_request_bytes` long and each carrying its resource, scope and metric identity, packed
//!   with as many data points as fit. A data point that cannot fit even alone is skipped, counted
//!   and reported in the [`ChunkSummary`]; everything else is delivered exactly once, in order.
//!
//! The output decodes to what `opentelemetry-proto`'s transform produces for the same input,
//! with the deviations listed in the crate README (u64 values above `i64::MAX` are clamped
//! instead of zeroed; all-zero exemplar span/trace ids are omitted). It is also the canonical
//! encoding: fields in field-number order, proto3 defaults omitted, as prost writes them.
//!
//! ```
//! use opentelemetry_sdk::metrics::data::ResourceMetrics;
//! use otlp_metrics_encode::{MetricsEncoder, DEFAULT_MAX_REQUEST_BYTES};
//!
//! let metrics = ResourceMetrics::default(); // normally filled by a MetricReader
//! let mut encoder = MetricsEncoder::new();
//! let request: &[u8] = encoder.encode_request(&metrics);
//! assert!(!request.is_empty());
//!
//! let mut events = Vec::new();
//! let summary = encoder
//!     .encode_chunks(&metrics, DEFAULT_MAX_REQUEST_BYTES, |chunk| {
//!         events.push(chunk.to_vec());
//!         Ok::<(), std::convert::Infallible>(())
//!     })
//!     .unwrap();
//! assert_eq!(summary.chunks, events.len());
//! ```
#![forbid(unsafe_code)]

#[cfg(feature = "sdk")]
mod chunk;
#[cfg(feature = "sdk")]
mod encode;
pub mod proto;
#[cfg(feature = "sdk")]
mod wire;

#[cfg(feature = "workloads")]
#[doc(hidden)]
pub mod check;
#[cfg(feature = "workloads")]
#[doc(hidden)]
pub mod workloads;

#[cfg(feature = "sdk")]
use std::ops::Range;

#[cfg(feature = "sdk")]
use opentelemetry_sdk::metrics::data::ResourceMetrics;

#[cfg(feature = "sdk")]
use chunk::{Assembler, IdentityPart, OpenChunk, NO_METRIC};
#[cfg(feature = "sdk")]
use encode::{Layout, RequestWriter};

/// The request size budget that reaches every kind of `user_events` listener: the 4064-byte
/// payload an ftrace listener receives, minus the 16 fixed payload bytes (protocol, version,
/// rel_loc) that precede the OTLP buffer. See the workspace's `DESIGN.md`; `user_events-sys`
/// measures the kernel edge in its VM tests and the exporter checks this value against it.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4048;

#[cfg(feature = "sdk")]
/// Encodes SDK metrics as OTLP protobuf, reusing its buffers across calls.
#[derive(Debug, Default)]
pub struct MetricsEncoder {
    /// Mode (a): length prefix widths of the previous request.
    request: RequestWriter,
    /// Mode (b): the leaves of the last export.
    layout: Layout,
    /// Mode (b) scratch, and the output buffer of both modes.
    assembler: Assembler,
}

#[cfg(feature = "sdk")]
/// What [`MetricsEncoder::encode_chunks`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkSummary {
    /// Requests handed to the sink.
    pub chunks: usize,
    /// Data points delivered in those requests (oversized points not included).
    pub points: usize,
    /// Total bytes handed to the sink.
    pub bytes: usize,
    /// Data points skipped because a request carrying only that point (with its resource,
    /// scope and metric identity) exceeds the limit. A metric without points or a scope without
    /// metrics whose identity alone exceeds the limit counts here too (the SDK produces neither).
    pub oversized_points: usize,
    /// The first skipped point, for the error message.
    pub first_oversized: Option<OversizedPoint>,
}

#[cfg(feature = "sdk")]
/// A data point that cannot be sent within the request size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OversizedPoint {
    /// Name of the metric the point belongs to.
    pub metric: String,
    /// Size of the smallest request that carries the point: the point with its resource,
    /// scope and metric identity.
    pub point_bytes: usize,
    /// The `max_request_bytes` it was measured against.
    pub limit: usize,
    /// What makes the request too large: the point itself, or the identity every request
    /// carrying it repeats.
    pub cause: OversizeCause,
}

/// Which part of the smallest request carrying a data point exceeds the limit. Every
/// request repeats the resource, the scope and the metric identity of the points it carries,
/// so when one of those alone is over the limit, none of the points under it can be sent,
/// however small they are.
#[cfg(feature = "sdk")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OversizeCause {
    /// The identity fits; the point's own fields (attributes, buckets, exemplars) do not.
    DataPoint,
    /// The resource alone (its attributes and schema URL) makes a request of `bytes` bytes:
    /// no point of the export can be sent.
    Resource {
        /// Size of a request holding only the resource.
        bytes: usize,
    },
    /// The resource with this instrumentation scope (name, version, attributes, schema URL)
    /// makes a request of `bytes` bytes: no point of the scope can be sent.
    Scope {
        /// The scope's name.
        scope: String,
        /// Size of a request holding the resource and the scope, without metrics.
        bytes: usize,
    },
    /// The resource, scope and the metric's identity (name, description, unit, kind) make a
    /// request of `bytes` bytes: no point of the metric can be sent.
    Metric {
        /// Size of a request holding the resource, scope and metric, without points.
        bytes: usize,
    },
}

#[cfg(feature = "sdk")]
impl std::fmt::Display for OversizedPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            metric,
            point_bytes,
            limit,
            cause,
        } = self;
        match cause {
            OversizeCause::DataPoint => write!(
                f,
                "a data point of metric `{metric}` needs a {point_bytes}-byte request on its \
                 own, over the {limit}-byte limit; it was not sent (fewer or shorter attributes \
                 or buckets on the point, or a larger limit, fix it)"
            ),
            OversizeCause::Resource { bytes } => write!(
                f,
                "the resource alone needs a {bytes}-byte request, over the {limit}-byte limit, \
                 so no data point can be sent (the first was of metric `{metric}`); fewer or \
                 shorter resource attributes, or a larger limit, fix it"
            ),
            OversizeCause::Scope { scope, bytes } => write!(
                f,
                "the resource with instrumentation scope `{scope}` needs a {bytes}-byte \
                 request, over the {limit}-byte limit, so no data point of that scope can be \
                 sent; fewer or shorter scope or resource attributes, or a larger limit, fix it"
            ),
            OversizeCause::Metric { bytes } => write!(
                f,
                "the resource, scope and identity of metric `{metric}` (name, description, \
                 unit) need a {bytes}-byte request, over the {limit}-byte limit, so none of its \
                 data points can be sent; a shorter description, fewer resource attributes, or \
                 a larger limit, fix it"
            ),
        }
    }
}

#[cfg(feature = "sdk")]
impl std::error::Error for OversizedPoint {}

#[cfg(feature = "sdk")]
impl MetricsEncoder {
    /// An encoder with empty buffers; they grow to the largest export seen and are reused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mode (a): one `ExportMetricsServiceRequest` with everything in `metrics`. The returned
    /// bytes live in the encoder until the next call.
    pub fn encode_request(&mut self, metrics: &ResourceMetrics) -> &[u8] {
        self.request.write(&mut self.assembler.out, metrics);
        self.assembler.out.as_slice()
    }

    /// Mode (b): hands `sink` a sequence of complete `ExportMetricsServiceRequest`s, each at
    /// most `max_request_bytes` long, each with the resource, scope and metric identity of the
    /// points it carries, packed greedily in input order. Points that cannot fit alone are
    /// skipped and reported in the summary; the rest continues. A metrics set with no scopes
    /// produces no request. A sink error stops the export and is returned.
    pub fn encode_chunks<E>(
        &mut self,
        metrics: &ResourceMetrics,
        max_request_bytes: usize,
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<ChunkSummary, E> {
        let layout = &mut self.layout;
        layout.begin(metrics);
        let mut packer = Packer {
            assembler: &mut self.assembler,
            limit: max_request_bytes,
            chunk: OpenChunk::default(),
            exact: 0,
            since: 0,
            headroom: 0,
            summary: ChunkSummary::default(),
            first_oversized: None,
        };
        packer.assembler.runs.clear();
        // Metric by metric: encode, place its points (sending every request that fills up),
        // then drop the bytes already sent, so the leaves stay small and in cache.
        for sm in metrics.scope_metrics() {
            let scope = layout.push_scope(sm);
            let mut empty_scope = true;
            for metric in sm.metrics() {
                empty_scope = false;
                let (metric, points) = layout.push_metric(metric);
                if points == 0 {
                    let at = layout.points_end();
                    packer.place(layout, scope, metric, at..at, false, &mut sink)?;
                }
                for point in 0..points {
                    let bytes = layout.point_range(point);
                    packer.place(layout, scope, metric, bytes, true, &mut sink)?;
                }
                let keep_from = packer
                    .assembler
                    .runs
                    .first()
                    .map_or(layout.points_end(), |r| r.start);
                let moved = layout.compact(keep_from);
                if moved > 0 {
                    for run in &mut packer.assembler.runs {
                        run.start -= moved;
                        run.end -= moved;
                    }
                }
            }
            if empty_scope {
                let at = layout.points_end();
                packer.place(layout, scope, NO_METRIC, at..at, false, &mut sink)?;
            }
        }
        if packer.chunk.used {
            packer.flush(layout, &mut sink)?;
        }
        let mut summary = packer.summary;
        if let Some(first) = packer.first_oversized {
            let cause = match layout.identity_over(first.scope, first.metric, max_request_bytes) {
                None => OversizeCause::DataPoint,
                Some((IdentityPart::Resource, bytes)) => OversizeCause::Resource { bytes },
                Some((IdentityPart::Scope, bytes)) => OversizeCause::Scope {
                    scope: scope_name(metrics, first.scope),
                    bytes,
                },
                Some((IdentityPart::Metric, bytes)) => OversizeCause::Metric { bytes },
            };
            summary.first_oversized = Some(OversizedPoint {
                metric: metric_name(metrics, first.metric),
                point_bytes: first.alone_bytes,
                limit: max_request_bytes,
                cause,
            });
        }
        Ok(summary)
    }
}

/// Name of the `index`-th metric of `metrics` in iteration order ("" for [`NO_METRIC`]).
#[cfg(feature = "sdk")]
fn metric_name(metrics: &ResourceMetrics, index: usize) -> String {
    metrics
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .nth(index)
        .map(|m| m.name().to_owned())
        .unwrap_or_default()
}

/// Name of the `index`-th scope of `metrics`.
#[cfg(feature = "sdk")]
fn scope_name(metrics: &ResourceMetrics, index: usize) -> String {
    metrics
        .scope_metrics()
        .nth(index)
        .map(|s| s.scope().name().to_owned())
        .unwrap_or_default()
}

/// Where the first oversized point of an export is, and the size of the smallest request
/// carrying it.
#[cfg(feature = "sdk")]
struct FirstOversized {
    scope: usize,
    metric: usize,
    alone_bytes: usize,
}

/// The greedy packing state of one `encode_chunks` call.
#[cfg(feature = "sdk")]
struct Packer<'a> {
    assembler: &'a mut Assembler,
    limit: usize,
    chunk: OpenChunk,
    /// Exact size of `chunk` when last computed, the point bytes added since, and the headroom
    /// then (see `Layout::chunk_size_and_headroom`): while `since` stays below `headroom`,
    /// the size is exactly `exact + since`.
    exact: usize,
    since: usize,
    headroom: usize,
    summary: ChunkSummary,
    first_oversized: Option<FirstOversized>,
}

#[cfg(feature = "sdk")]
impl Packer<'_> {
    /// Adds one item (a point, or an empty metric/scope) to the current chunk, or flushes the
    /// chunk and starts the next one with it, or reports it when it cannot fit alone.
    #[inline(always)]
    fn place<E>(
        &mut self,
        layout: &Layout,
        scope: usize,
        metric: usize,
        bytes: Range<usize>,
        is_point: bool,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let len = bytes.len();
        // Fast path, inlined: another point of the open metric, while no length prefix grows
        // and the limit is not reached: the size is known exactly without the arithmetic over
        // the four levels.
        let since = self.since + len;
        if since < self.headroom
            && self.exact + since <= self.limit
            && self.chunk.extend_open_metric(metric, len)
        {
            self.since = since;
            self.assembler
                .push_run(scope, metric, bytes.start, bytes.end);
            self.summary.points += usize::from(is_point);
            Ok(())
        } else {
            self.place_slow(layout, scope, metric, bytes, is_point, sink)
        }
    }

    /// [`Packer::place`] when the size must be computed: a new metric or scope, a length
    /// prefix that grows, or the limit reached.
    #[inline(never)]
    fn place_slow<E>(
        &mut self,
        layout: &Layout,
        scope: usize,
        metric: usize,
        bytes: Range<usize>,
        is_point: bool,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let len = bytes.len();
        {
            let next = layout.chunk_with(&self.chunk, scope, metric, len);
            let (next_size, headroom) = layout.chunk_size_and_headroom(&next);
            if next_size <= self.limit {
                self.chunk = next;
                (self.exact, self.since, self.headroom) = (next_size, 0, headroom);
            } else {
                let alone = layout.chunk_with(&OpenChunk::default(), scope, metric, len);
                let (alone_size, headroom) = layout.chunk_size_and_headroom(&alone);
                if alone_size > self.limit {
                    self.summary.oversized_points += 1;
                    self.first_oversized.get_or_insert(FirstOversized {
                        scope,
                        metric,
                        alone_bytes: alone_size,
                    });
                    return Ok(());
                }
                self.flush(layout, sink)?;
                self.chunk = alone;
                (self.exact, self.since, self.headroom) = (alone_size, 0, headroom);
            }
        }
        self.assembler
            .push_run(scope, metric, bytes.start, bytes.end);
        self.summary.points += usize::from(is_point);
        Ok(())
    }

    /// Writes the current chunk and hands it to the sink.
    fn flush<E>(
        &mut self,
        layout: &Layout,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let planned = layout.chunk_size(&self.chunk);
        debug_assert_eq!(planned, self.exact + self.since, "tracked size is exact");
        let request = self.assembler.assemble(layout);
        debug_assert_eq!(request.len(), planned, "planned and written sizes agree");
        debug_assert!(request.len() <= self.limit);
        sink(request)?;
        self.summary.chunks += 1;
        self.summary.bytes += request.len();
        self.assembler.runs.clear();
        self.chunk = OpenChunk::default();
        (self.exact, self.since, self.headroom) = (0, 0, 0);
        Ok(())
    }
}

#[cfg(feature = "sdk")]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_can_move_to_and_be_shared_with_an_exporter_thread() {
        fn send_sync<T: Send + Sync + Default>() -> T {
            T::default()
        }
        let mut encoder: MetricsEncoder = send_sync();
        let empty = ResourceMetrics::default();
        let request = std::thread::spawn(move || encoder.encode_request(&empty).to_vec())
            .join()
            .expect("encoder thread");
        // An empty collection is one ResourceMetrics holding an empty Resource.
        assert_eq!(request, [0x0A, 0x02, 0x0A, 0x00]);
    }
}
