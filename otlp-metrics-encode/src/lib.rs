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
use opentelemetry_sdk::metrics::data::ResourceMetrics;

#[cfg(feature = "sdk")]
use chunk::{ChunkWriter, IdentityPart, OpenChunk, NO_METRIC};
#[cfg(feature = "sdk")]
use encode::{put_points, Layout, RequestWriter, Widths};
#[cfg(feature = "sdk")]
use wire::Buf;

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
    /// Mode (b): the identity parts of the last export.
    layout: Layout,
    /// Mode (b): length prefix widths of the resource, scopes and points of the previous export.
    widths: Widths,
    /// Mode (b): the state of the request being written.
    writer: ChunkWriter,
    /// The output buffer of both modes.
    out: Buf,
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
        self.request.write(&mut self.out, metrics);
        self.out.as_slice()
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
        let Self {
            layout,
            widths,
            writer,
            out,
            ..
        } = self;
        layout.begin(metrics, widths);
        writer.begin(max_request_bytes);
        let mut packer = Packer {
            writer,
            limit: max_request_bytes,
            chunk: OpenChunk::default(),
            size: 0,
            fast_metric: NO_METRIC,
            fast_start: 0,
            fast_end: 0,
            summary: ChunkSummary::default(),
            oversized_items: 0,
            first_oversized: None,
        };
        let mut points = 0;
        // Metric by metric, point by point: each point is encoded into the open request and
        // stays there if it fits; a full request is sent as soon as a point does not fit.
        for sm in metrics.scope_metrics() {
            let scope = layout.push_scope(sm, widths);
            let mut empty_scope = true;
            for metric in sm.metrics() {
                empty_scope = false;
                let index = layout.push_metric(metric);
                let layout = &*layout;
                packer.end_fast_path(out);
                packer.writer.open(out, layout, scope, index);
                // Called for a point past the fast path's end: see `Packer::place_slow`.
                let written = put_points(out, metric, widths.metric(index), |out, start| {
                    packer.place_slow(out, start, layout, scope, index, true, &mut sink)?;
                    Ok(packer.fast_end)
                })?;
                if written == 0 {
                    let start = packer.writer.mark;
                    packer.place_slow(out, start, layout, scope, index, false, &mut sink)?;
                }
                points += written;
            }
            if empty_scope {
                packer.end_fast_path(out);
                packer.writer.open(out, layout, scope, NO_METRIC);
                let start = packer.writer.mark;
                packer.place_slow(out, start, layout, scope, NO_METRIC, false, &mut sink)?;
            }
        }
        packer.end_fast_path(out);
        if packer.chunk.used {
            packer.flush(out, layout, &mut sink)?;
        }
        let oversized = packer.summary.oversized_points;
        packer.summary.points = points - (oversized - packer.oversized_items);
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
    writer: &'a mut ChunkWriter,
    limit: usize,
    /// What the open request holds (points taken on the fast path since `fast_start` not
    /// included), and its exact size.
    chunk: OpenChunk,
    size: usize,
    /// The fast path: the metric whose next points take it ([`NO_METRIC`]: none), the output
    /// position up to which its points are counted in `chunk` (they end there), and the
    /// position up to which further points fit with every length prefix unchanged and within
    /// the limit (0: no fast path). Positions, not sizes, so that a point on the fast path
    /// costs one comparison and no bookkeeping.
    fast_metric: usize,
    fast_start: usize,
    fast_end: usize,
    summary: ChunkSummary,
    /// Oversized items that are not points (a metric without points, a scope without metrics).
    oversized_items: usize,
    first_oversized: Option<FirstOversized>,
}

#[cfg(feature = "sdk")]
impl Packer<'_> {
    /// Counts the points taken on the fast path, which end at `end`, in `chunk` and `size`.
    #[inline(always)]
    fn settle_fast_points(&mut self, end: usize) {
        if self.fast_end != 0 && end > self.fast_start {
            let added = end - self.fast_start;
            self.chunk.extend_open_metric(self.fast_metric, added);
            self.size += added;
            self.fast_start = end;
        }
    }

    /// Settles the fast path's points (everything up to the end of `out` is placed) and ends
    /// it: the next metric starts.
    #[inline(always)]
    fn end_fast_path(&mut self, out: &Buf) {
        self.settle_fast_points(out.len());
        if self.fast_end != 0 {
            self.writer.mark = out.len();
        }
        self.fast_end = 0;
    }

    /// The chunk is now `chunk` of `size` bytes with `headroom` (see
    /// `Layout::chunk_size_and_headroom`) after an item of `metric` that ends at `end`.
    #[inline(always)]
    fn set_chunk(
        &mut self,
        chunk: OpenChunk,
        size: usize,
        headroom: usize,
        metric: usize,
        end: usize,
    ) {
        self.chunk = chunk;
        self.size = size;
        self.fast_metric = metric;
        self.fast_start = end;
        self.fast_end = end + headroom.saturating_sub(1).min(self.limit - size);
    }

    /// Places an item (written from `start` to the end of `out`) when the size must be
    /// computed: a new metric or scope, a length prefix that grows, the limit reached, or an
    /// item that is not a point.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn place_slow<E>(
        &mut self,
        out: &mut Buf,
        start: usize,
        layout: &Layout,
        scope: usize,
        metric: usize,
        is_point: bool,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.settle_fast_points(start);
        self.writer.mark = start;
        let len = out.len() - start;
        // The request grows by at least the item's bytes: only compute its exact size when
        // that much is left.
        if self.size + len <= self.limit {
            let next = layout.chunk_with(&self.chunk, scope, metric, len);
            let (next_size, headroom) = layout.chunk_size_and_headroom(&next);
            if next_size <= self.limit {
                self.writer.commit(out);
                self.set_chunk(next, next_size, headroom, metric, out.len());
                return Ok(());
            }
        }
        let alone = layout.chunk_with(&OpenChunk::default(), scope, metric, len);
        let (alone_size, headroom) = layout.chunk_size_and_headroom(&alone);
        if alone_size > self.limit {
            self.writer.discard(out);
            self.summary.oversized_points += 1;
            self.oversized_items += usize::from(!is_point);
            self.first_oversized.get_or_insert(FirstOversized {
                scope,
                metric,
                alone_bytes: alone_size,
            });
            return Ok(());
        }
        // `chunk` holds something (else it would have fitted, as alone): send it, and start
        // the next request with this item.
        self.writer.lift(out);
        self.flush(out, layout, sink)?;
        self.writer.start_with_lifted(out, layout, scope, metric);
        self.set_chunk(alone, alone_size, headroom, metric, out.len());
        Ok(())
    }

    /// Closes the open request and hands it to the sink.
    fn flush<E>(
        &mut self,
        out: &mut Buf,
        layout: &Layout,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        #[cfg(debug_assertions)]
        assert_eq!(layout.chunk_size(&self.chunk), self.size, "tracked size");
        let request = self.writer.finish(out, layout);
        debug_assert_eq!(request.len(), self.size, "planned and written sizes agree");
        debug_assert!(request.len() <= self.limit);
        sink(request)?;
        self.summary.chunks += 1;
        self.summary.bytes += request.len();
        // Position 0: no fast path until an item is placed.
        self.set_chunk(OpenChunk::default(), 0, 0, NO_METRIC, 0);
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
