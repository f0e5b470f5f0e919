//! Size-bounded requests written in place: the planner's size arithmetic and the writer that
//! keeps one request open in the output buffer.
//!
//! Every data point is encoded straight into the open request, after the headers of its scope
//! and metric. The planner ([`OpenChunk`] and the size functions on [`Layout`]) knows the exact
//! size of the request with the point, from the lengths of the identity parts and the points'
//! byte counts, without writing the outer lengths. A point that fits stays where it was
//! written; the request is only closed (tails written, length prefixes patched) when a point
//! does not fit, and then that one point is lifted out, the request sent, and the next request
//! started with the headers and the point. Points are therefore written once and copied only
//! at request boundaries.
//!
//! The length prefixes of the `ScopeMetrics`, `Metric` and data messages are reserved with the
//! width the section at the same position (counting sections in write order) needed in the
//! previous export, so in steady state none moves; the outermost `ResourceMetrics` prefix is
//! written into a gap left before the request, right-aligned against its body, so it never
//! moves.

use crate::encode::{slot, Layout, DATA_TAIL};
use crate::wire::{
    copy_up_to_two_short, finish_len_width, len_field_size, patch_len, put_varint_at, reserve_len,
    tag, varint_len, Buf, SHORT, WIRE_LEN,
};

/// `Run::metric` of a scope with no metrics (the SDK never produces one, but the type allows it).
pub(crate) const NO_METRIC: usize = usize::MAX;

/// The part of a request's identity that alone exceeds the limit (see
/// [`Layout::identity_over`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentityPart {
    Resource,
    Scope,
    Metric,
}

/// What was left open while planning a chunk: sizes of closed parts, and the open scope and
/// metric with the bytes they hold so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OpenChunk {
    closed_scopes: usize,
    /// (scope index, bytes of its closed `Metric` fields)
    scope: Option<(usize, usize)>,
    /// (metric index, bytes of its points)
    metric: Option<(usize, usize)>,
    /// Whether the chunk holds anything.
    pub used: bool,
}

impl OpenChunk {
    /// Adds `bytes` of points to the open metric if it is `metric`; false otherwise.
    #[inline(always)]
    pub(crate) fn extend_open_metric(&mut self, metric: usize, bytes: usize) -> bool {
        match self.metric.as_mut() {
            Some((open, points)) if *open == metric => {
                *points += bytes;
                true
            }
            _ => false,
        }
    }
}

/// Length of a part of `Layout::meta`. Plain subtraction: a part never ends before it
/// starts, and `Range::len` pays for that case in every size computation.
#[inline(always)]
fn span(part: &std::ops::Range<usize>) -> usize {
    part.end - part.start
}

/// Bodies below this have a length prefix of 1 or 2 bytes: every body inside a request of
/// the usual limits (below 16 KiB).
const BELOW_16K: usize = 1 << 14;

/// [`len_field_size`] of a body below [`BELOW_16K`], with one comparison instead of a bit
/// scan: the planner computes sizes at every request boundary and first point of a metric.
/// Only exact below 16 KiB; callers check that.
#[inline(always)]
fn len_field_size_below_16k(body: usize) -> usize {
    2 + usize::from(body >= 1 << 7) + body
}

/// Bytes a body below [`BELOW_16K`] can grow before its length prefix gets longer.
#[inline(always)]
fn room_below_16k(body: usize) -> usize {
    (if body < 1 << 7 { 1 << 7 } else { BELOW_16K }) - body
}

impl Layout {
    /// Size of a `Metric` field (key, length, body) carrying `points` bytes of points.
    #[inline]
    pub(crate) fn metric_entry_size(&self, metric: usize, points: usize) -> usize {
        let m = &self.metrics[metric];
        // The usual case first (see `len_field_size_below_16k`).
        let body = span(&m.head) + len_field_size_below_16k(points + m.tail_len);
        if body < BELOW_16K {
            return len_field_size_below_16k(body);
        }
        len_field_size(span(&m.head) + len_field_size(points + m.tail_len))
    }

    /// Size of a `ScopeMetrics` field carrying `metrics` bytes of `Metric` fields.
    #[inline]
    pub(crate) fn scope_entry_size(&self, scope: usize, metrics: usize) -> usize {
        let s = &self.scopes[scope];
        len_field_size(span(&s.scope) + metrics + span(&s.schema_url))
    }

    /// Body size of the `ResourceMetrics` that carries `scopes` bytes of `ScopeMetrics` fields.
    #[inline]
    fn resource_metrics_body(&self, scopes: usize) -> usize {
        span(&self.resource) + scopes + span(&self.resource_schema_url)
    }

    /// Size of the request `chunk` describes, and its headroom: how many more bytes of points
    /// of the open metric can be added before any of the four enclosing length prefixes (data
    /// message, Metric, ScopeMetrics, ResourceMetrics) needs one more byte. Below it, the size
    /// grows exactly by the bytes added. 0 when no metric is open.
    #[inline(always)]
    pub(crate) fn chunk_size_and_headroom(&self, chunk: &OpenChunk) -> (usize, usize) {
        /// Bytes a body of `len` can grow before its varint length gets longer (the largest
        /// body of `n` varint bytes is `2^(7n) - 1`).
        #[inline(always)]
        fn room(len: usize) -> usize {
            let bits = 7 * varint_len(len as u64) as u32;
            1usize
                .checked_shl(bits)
                .map_or(usize::MAX - len, |edge| edge - len)
        }
        let (Some((scope, closed)), Some((metric, points))) = (chunk.scope, chunk.metric) else {
            return (self.chunk_size(chunk), 0);
        };
        let m = &self.metrics[metric];
        let s = &self.scopes[scope];
        let data = points + m.tail_len;
        // The usual case first (see `len_field_size_below_16k`): the outermost body tells
        // whether it holds, as an inner body of 16 KiB or more would make it larger.
        let metric_body = span(&m.head) + len_field_size_below_16k(data);
        let scope_body =
            span(&s.scope) + closed + len_field_size_below_16k(metric_body) + span(&s.schema_url);
        let rm_body =
            self.resource_metrics_body(chunk.closed_scopes + len_field_size_below_16k(scope_body));
        if rm_body < BELOW_16K {
            let headroom = room_below_16k(data)
                .min(room_below_16k(metric_body))
                .min(room_below_16k(scope_body))
                .min(room_below_16k(rm_body));
            return (len_field_size_below_16k(rm_body), headroom);
        }
        let metric_body = span(&m.head) + len_field_size(data);
        let scope_body =
            span(&s.scope) + closed + len_field_size(metric_body) + span(&s.schema_url);
        let rm_body = self.resource_metrics_body(chunk.closed_scopes + len_field_size(scope_body));
        let headroom = room(data)
            .min(room(metric_body))
            .min(room(scope_body))
            .min(room(rm_body));
        (len_field_size(rm_body), headroom)
    }

    /// When the identity that every request carrying a point of `metric` (of `scope`) must
    /// repeat is larger than `limit` on its own, which part makes it so and the size of the
    /// smallest request holding that part: the resource alone, the resource with the scope, or
    /// those with the metric's identity (and no point). `None` when the identity fits, i.e. the
    /// point's own bytes make it too big.
    pub(crate) fn identity_over(
        &self,
        scope: usize,
        metric: usize,
        limit: usize,
    ) -> Option<(IdentityPart, usize)> {
        let resource = len_field_size(self.resource_metrics_body(0));
        if resource > limit {
            return Some((IdentityPart::Resource, resource));
        }
        let with_scope =
            self.chunk_size(&self.chunk_with(&OpenChunk::default(), scope, NO_METRIC, 0));
        if with_scope > limit {
            return Some((IdentityPart::Scope, with_scope));
        }
        if metric == NO_METRIC {
            return None;
        }
        let with_metric =
            self.chunk_size(&self.chunk_with(&OpenChunk::default(), scope, metric, 0));
        (with_metric > limit).then_some((IdentityPart::Metric, with_metric))
    }

    /// Size of the request `chunk` describes.
    #[inline]
    pub(crate) fn chunk_size(&self, chunk: &OpenChunk) -> usize {
        let open = chunk.scope.map_or(0, |(scope, closed)| {
            let metric = chunk
                .metric
                .map_or(0, |(metric, points)| self.metric_entry_size(metric, points));
            self.scope_entry_size(scope, closed + metric)
        });
        len_field_size(self.resource_metrics_body(chunk.closed_scopes + open))
    }

    /// `chunk` with `bytes` more bytes of points of `metric` (of `scope`) appended.
    #[inline(always)]
    pub(crate) fn chunk_with(
        &self,
        chunk: &OpenChunk,
        scope: usize,
        metric: usize,
        bytes: usize,
    ) -> OpenChunk {
        let mut next = *chunk;
        next.used = true;
        match next.scope {
            Some((open, _)) if open == scope => {}
            Some((open, closed)) => {
                let metric_part = next
                    .metric
                    .map_or(0, |(m, points)| self.metric_entry_size(m, points));
                next.closed_scopes += self.scope_entry_size(open, closed + metric_part);
                next.scope = Some((scope, 0));
                next.metric = None;
            }
            None => next.scope = Some((scope, 0)),
        }
        if metric == NO_METRIC {
            return next;
        }
        match next.metric {
            Some((open, points)) if open == metric => next.metric = Some((metric, points + bytes)),
            Some((open, points)) => {
                if let Some((_, closed)) = next.scope.as_mut() {
                    *closed += self.metric_entry_size(open, points);
                }
                next.metric = Some((metric, bytes));
            }
            None => next.metric = Some((metric, bytes)),
        }
        next
    }
}

/// Room before a request for its outermost key and length: a key byte and the longest varint.
const GAP: usize = 1 + 10;

/// Appends `bytes` (a short identity part from the layout) unless there are none: the
/// schema URLs are mostly unset.
#[inline(always)]
fn extend_unless_empty(out: &mut Buf, bytes: &[u8]) {
    if !bytes.is_empty() {
        out.extend_from_short(bytes);
    }
}

/// A length prefix reserved in the output: where, and how many bytes.
#[derive(Debug, Clone, Copy)]
struct Reserved {
    at: usize,
    width: usize,
}

/// The `ScopeMetrics` section open in the request being written.
#[derive(Debug, Clone, Copy)]
struct OpenScope {
    scope: usize,
    /// Where its key is (the section starts there).
    key_at: usize,
    len: Reserved,
}

/// The `Metric` section open in the request being written.
#[derive(Debug, Clone, Copy)]
struct OpenMetric {
    metric: usize,
    /// Where its key is (the section starts there).
    key_at: usize,
    metric_len: Reserved,
    data_len: Reserved,
}

/// Writes size-bounded requests in place into the output buffer: the request open there, its
/// open sections, and the length prefix widths of the previous export by position. The
/// packing decisions are the caller's (`Packer` in `lib.rs`); this type keeps the bytes in
/// the output consistent with them.
///
/// The output holds `[gap][resource][sections...]`: the sections of items placed so far
/// (committed), then possibly the headers of a section opened for the next item but holding
/// nothing yet (tentative: dropped if that item does not go into this request), then the
/// bytes of the item being decided on, from [`ChunkWriter::mark`] to the end.
#[derive(Debug, Default)]
pub(crate) struct ChunkWriter {
    /// Whether the output holds the start of a request (gap and resource).
    started: bool,
    /// Where the resource ends in the output, once written in this export: it stays there
    /// (only the gap before it and what follows it change), so a request starts by cutting the
    /// output back to it. 0: not written yet.
    resource_end: usize,
    scope: Option<OpenScope>,
    metric: Option<OpenMetric>,
    /// The scope and width of the `ScopeMetrics` header right after the resource, once
    /// written in this export: every request starts its first section there, so a request
    /// that starts with the same header finds its bytes in place.
    scope_in_place: Option<(usize, usize)>,
    /// Where the headers of sections holding nothing yet start.
    tentative: Option<usize>,
    /// End of the last item placed (or of the headers before the first): where the item being
    /// decided on starts.
    pub mark: usize,
    /// The item lifted out of a full request, for the next one.
    carry: Buf,
    /// Width of each `ScopeMetrics` length prefix of the previous export, in the order the
    /// sections were closed, and how many were closed in this export so far.
    scope_widths: Vec<u8>,
    scopes_closed: usize,
    /// Same for each `Metric` section: widths of its `Metric` and data message prefixes.
    metric_widths: Vec<[u8; 2]>,
    metrics_closed: usize,
    /// Widths for a section with no remembered width: (scope, metric and data).
    usual: (u8, u8),
}

impl ChunkWriter {
    /// Starts an export whose requests are at most `limit` bytes.
    pub(crate) fn begin(&mut self, limit: usize) {
        self.started = false;
        self.resource_end = 0;
        self.scope_in_place = None;
        self.scope = None;
        self.metric = None;
        self.tentative = None;
        self.scopes_closed = 0;
        self.metrics_closed = 0;
        // A section is never larger than its request: 2 bytes cover the usual limits.
        let most = varint_len(limit as u64) as u8;
        self.usual = (most.min(3), most.min(2));
    }

    /// Prepares the output for the items of `metric` (of `scope`; [`NO_METRIC`] for a scope
    /// without metrics), the next metric of the export: closes the sections it does not
    /// belong to and writes the headers of its own, tentatively; sets the mark after them.
    pub(crate) fn open(&mut self, out: &mut Buf, layout: &Layout, scope: usize, metric: usize) {
        self.drop_tentative(out);
        if !self.started {
            self.start(out, layout);
        }
        if let Some(open) = self.metric.take() {
            self.close_metric(out, layout, open);
        }
        if let Some(open) = self.scope.filter(|open| open.scope != scope) {
            self.scope = None;
            self.close_scope(out, layout, open);
        }
        self.tentative = Some(out.len());
        self.open_sections(out, layout, scope, metric);
        self.mark = out.len();
    }

    /// The item after the mark goes into this request: its sections are committed.
    #[inline(always)]
    pub(crate) fn commit(&mut self, out: &Buf) {
        self.tentative = None;
        self.mark = out.len();
    }

    /// The item after the mark goes nowhere (it cannot fit even alone).
    pub(crate) fn discard(&mut self, out: &mut Buf) {
        out.truncate(self.mark);
    }

    /// Lifts the item after the mark out of the request (it goes into the next one), with the
    /// headers of sections that would hold only it.
    #[inline(always)]
    pub(crate) fn lift(&mut self, out: &mut Buf) {
        self.carry.clear();
        self.carry.extend_from_slice(&out[self.mark..]);
        #[cfg(feature = "workloads")]
        crate::wire::moves::record_carry(self.carry.len());
        out.truncate(self.mark);
        self.drop_tentative(out);
    }

    /// Starts the next request with the sections of `metric` (of `scope`) and the item lifted
    /// by [`ChunkWriter::lift`], committed.
    #[inline(always)]
    pub(crate) fn start_with_lifted(
        &mut self,
        out: &mut Buf,
        layout: &Layout,
        scope: usize,
        metric: usize,
    ) {
        self.start(out, layout);
        self.open_sections(out, layout, scope, metric);
        out.extend_from_slice(&self.carry);
        self.mark = out.len();
    }

    /// Closes the request (dropping tentative headers; the item after the mark must have been
    /// placed, discarded or lifted) and returns its bytes.
    #[inline(always)]
    pub(crate) fn finish<'o>(&mut self, out: &'o mut Buf, layout: &Layout) -> &'o [u8] {
        debug_assert_eq!(self.mark, out.len(), "no undecided item");
        self.drop_tentative(out);
        if let Some(open) = self.metric.take() {
            self.close_metric(out, layout, open);
        }
        if let Some(open) = self.scope.take() {
            self.close_scope(out, layout, open);
        }
        extend_unless_empty(out, &layout.meta[layout.resource_schema_url.clone()]);
        self.started = false;
        // ExportMetricsServiceRequest.resource_metrics (1), right before the body.
        let body = out.len() - GAP;
        let width = varint_len(body as u64);
        let start = GAP - 1 - width;
        let prefix = &mut out[start..GAP];
        prefix[0] = tag(1, WIRE_LEN);
        if !patch_len(&mut prefix[1..], body) {
            put_varint_at(&mut prefix[1..], body as u64);
        }
        &out[start..]
    }

    /// Starts a request in the output: the gap and the resource.
    #[inline(always)]
    fn start(&mut self, out: &mut Buf, layout: &Layout) {
        if self.resource_end == 0 {
            out.clear();
            out.append(GAP);
            out.extend_from_short(&layout.meta[layout.resource.clone()]);
            self.resource_end = out.len();
        }
        out.truncate(self.resource_end);
        self.started = true;
    }

    /// Drops the headers of sections that hold nothing (after a dropped or lifted item).
    #[inline(always)]
    fn drop_tentative(&mut self, out: &mut Buf) {
        if let Some(at) = self.tentative.take() {
            out.truncate(at);
            self.mark = at;
            self.metric = self.metric.filter(|open| open.key_at < at);
            self.scope = self.scope.filter(|open| open.key_at < at);
        }
    }

    /// Writes the headers of the scope section (unless it is open) and of the metric section.
    #[inline(always)]
    fn open_sections(&mut self, out: &mut Buf, layout: &Layout, scope: usize, metric: usize) {
        if self.scope.is_none() {
            let key_at = out.len();
            let width = self.scope_widths.get(self.scopes_closed).copied();
            let width = usize::from(width.unwrap_or(self.usual.0));
            let bytes = &layout.meta[layout.scopes[scope].scope.clone()];
            if key_at == self.resource_end && self.scope_in_place == Some((scope, width)) {
                // The previous request began with the same header: its bytes are still
                // there (the length is patched when the section closes).
                out.advance(1 + width + bytes.len());
            } else {
                // ResourceMetrics.scope_metrics (2)
                out.push(tag(2, WIRE_LEN));
                reserve_len(out, width);
                out.extend_from_short(bytes);
                if key_at == self.resource_end {
                    self.scope_in_place = Some((scope, width));
                }
            }
            let at = key_at + 1;
            self.scope = Some(OpenScope {
                scope,
                key_at,
                len: Reserved { at, width },
            });
        }
        if metric == NO_METRIC {
            return;
        }
        let m = &layout.metrics[metric];
        let head = &layout.meta[m.head.clone()];
        let key_at = out.len();
        let widths = self.metric_widths.get(self.metrics_closed).copied();
        let [metric_width, data_width] = widths.unwrap_or([self.usual.1; 2]).map(usize::from);
        // ScopeMetrics.metrics (2), the Metric fields before the data, the data field's key;
        // both lengths reserved (their bytes written when the section closes). Stored into
        // one room: a section opens at every request boundary and for every metric.
        const ROOM: usize = 1 + 10 + 2 * SHORT + 1 + 10;
        // A varint has at most 10 bytes: said so for the room's bounds.
        let (metric_width, data_width) = (metric_width.min(10), data_width.min(10));
        if head.len() > 2 * SHORT {
            return self.open_metric_with_long_head(out, layout, metric, metric_width, data_width);
        }
        let room: &mut [u8; ROOM] = out.spare(ROOM).first_chunk_mut().expect("room asked for");
        room[0] = tag(2, WIRE_LEN);
        let head_at = 1 + metric_width;
        copy_up_to_two_short(&mut room[head_at..head_at + 2 * SHORT], head);
        let data_key_at = head_at + head.len();
        room[data_key_at] = m.data_key;
        let end = data_key_at + 1 + data_width;
        out.advance(end);
        let metric_at = key_at + 1;
        let data_at = key_at + end - data_width;
        self.metric = Some(OpenMetric {
            metric,
            key_at,
            metric_len: Reserved {
                at: metric_at,
                width: metric_width,
            },
            data_len: Reserved {
                at: data_at,
                width: data_width,
            },
        });
    }

    /// The metric section's headers (see [`ChunkWriter::open_sections`]) for a name,
    /// description and unit longer than two [`SHORT`] strings together.
    #[cold]
    fn open_metric_with_long_head(
        &mut self,
        out: &mut Buf,
        layout: &Layout,
        metric: usize,
        metric_width: usize,
        data_width: usize,
    ) {
        let m = &layout.metrics[metric];
        let key_at = out.len();
        out.push(tag(2, WIRE_LEN));
        out.append(metric_width);
        out.extend_from_slice(&layout.meta[m.head.clone()]);
        out.push(m.data_key);
        out.append(data_width);
        self.metric = Some(OpenMetric {
            metric,
            key_at,
            metric_len: Reserved {
                at: key_at + 1,
                width: metric_width,
            },
            data_len: Reserved {
                at: out.len() - data_width,
                width: data_width,
            },
        });
    }

    /// Writes the tail of the metric section and patches its two length prefixes.
    #[inline(always)]
    fn close_metric(&mut self, out: &mut Buf, layout: &Layout, open: OpenMetric) {
        let m = &layout.metrics[open.metric];
        *out.spare(DATA_TAIL)
            .first_chunk_mut()
            .expect("room asked for") = m.tail;
        out.advance(m.tail_len);
        let data_width = finish_len_width(out, open.data_len.at, open.data_len.width);
        let metric_width = finish_len_width(out, open.metric_len.at, open.metric_len.width);
        *slot(&mut self.metric_widths, self.metrics_closed) =
            [metric_width as u8, data_width as u8];
        self.metrics_closed += 1;
    }

    /// Writes the tail of the scope section and patches its length prefix.
    #[inline(always)]
    fn close_scope(&mut self, out: &mut Buf, layout: &Layout, open: OpenScope) {
        let s = &layout.scopes[open.scope];
        extend_unless_empty(out, &layout.meta[s.schema_url.clone()]);
        let width = finish_len_width(out, open.len.at, open.len.width);
        *slot(&mut self.scope_widths, self.scopes_closed) = width as u8;
        if open.key_at == self.resource_end {
            // The header now has the width its length needed (the body moved if not).
            self.scope_in_place = Some((open.scope, width));
        }
        self.scopes_closed += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_below_16k_match_the_general_ones() {
        for body in 0..BELOW_16K {
            assert_eq!(
                len_field_size_below_16k(body),
                len_field_size(body),
                "{body}"
            );
            let edge = 1usize << (7 * varint_len(body as u64));
            assert_eq!(room_below_16k(body), edge - body, "{body}");
        }
    }
}
