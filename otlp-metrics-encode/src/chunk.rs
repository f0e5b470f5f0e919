//! Size-bounded requests assembled from the encoded leaves of a [`Layout`].
//!
//! A request is described by a list of [`Run`]s: byte ranges of consecutive points of one
//! metric. Consecutive runs of the same metric form one `Metric`, consecutive metrics of the
//! same scope one `ScopeMetrics`. The sizes of these outer messages are sums of known lengths,
//! so assembly is: compute sizes (one pass over the runs, not over the points), then write the
//! few outer keys and lengths and copy each run with one `extend_from_slice`.
//!
//! The size-bounded mode plans runs greedily with the same size arithmetic, so it knows the
//! exact size of a request before writing a byte of it, and never has to undo a write.

use crate::encode::Layout;
use crate::wire::{len_field_size, put_len_key, varint_len, Buf};

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

/// Consecutive points of one metric, as a byte range of [`Layout::points`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub scope: usize,
    pub metric: usize,
    pub start: usize,
    pub end: usize,
}

/// One outer message of a request being assembled, in write order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Section {
    /// A `ScopeMetrics` starts; `body` is its body length.
    Scope { scope: usize, body: usize },
    /// A `Metric` made of `runs[first_run..end_run]`, whose points total `points` bytes.
    Metric {
        metric: usize,
        first_run: usize,
        end_run: usize,
        points: usize,
    },
}

/// Reusable scratch space for assembling requests.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    pub runs: Vec<Run>,
    sections: Vec<Section>,
    pub out: Buf,
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

impl Layout {
    /// Size of a `Metric` field (key, length, body) carrying `points` bytes of points.
    #[inline]
    pub(crate) fn metric_entry_size(&self, metric: usize, points: usize) -> usize {
        let m = &self.metrics[metric];
        len_field_size(m.head.len() + len_field_size(points + m.tail.len()))
    }

    /// Size of a `ScopeMetrics` field carrying `metrics` bytes of `Metric` fields.
    #[inline]
    pub(crate) fn scope_entry_size(&self, scope: usize, metrics: usize) -> usize {
        let s = &self.scopes[scope];
        len_field_size(s.scope.len() + metrics + s.schema_url.len())
    }

    /// Body size of the `ResourceMetrics` that carries `scopes` bytes of `ScopeMetrics` fields.
    #[inline]
    fn resource_metrics_body(&self, scopes: usize) -> usize {
        self.resource.len() + scopes + self.resource_schema_url.len()
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
        let data = points + m.tail.len();
        let metric_body = m.head.len() + len_field_size(data);
        let s = &self.scopes[scope];
        let scope_body = s.scope.len() + closed + len_field_size(metric_body) + s.schema_url.len();
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

impl Assembler {
    /// Appends the points `start..end` of `metric` to the run list, extending the last run when
    /// it continues it.
    #[inline]
    pub(crate) fn push_run(&mut self, scope: usize, metric: usize, start: usize, end: usize) {
        if let Some(last) = self.runs.last_mut() {
            if last.metric == metric && last.scope == scope && last.end == start {
                last.end = end;
                return;
            }
        }
        self.runs.push(Run {
            scope,
            metric,
            start,
            end,
        });
    }

    /// Writes the request made of `self.runs` into `self.out` (replacing it) and returns it.
    pub(crate) fn assemble(&mut self, layout: &Layout) -> &[u8] {
        let rm_body = self.plan_sections(layout);
        let out = &mut self.out;
        out.clear();
        out.reserve(len_field_size(rm_body));
        put_len_key(out, 1, rm_body);
        out.extend_from_slice(&layout.meta[layout.resource.clone()]);
        let mut open_scope: Option<usize> = None;
        for section in &self.sections {
            match *section {
                Section::Scope { scope, body } => {
                    if let Some(prev) = open_scope.replace(scope) {
                        out.extend_from_short(&layout.meta[layout.scopes[prev].schema_url.clone()]);
                    }
                    put_len_key(out, 2, body);
                    out.extend_from_short(&layout.meta[layout.scopes[scope].scope.clone()]);
                }
                Section::Metric {
                    metric,
                    first_run,
                    end_run,
                    points,
                } => {
                    let m = &layout.metrics[metric];
                    let data_len = points + m.tail.len();
                    put_len_key(out, 2, m.head.len() + len_field_size(data_len));
                    out.extend_from_short(&layout.meta[m.head.clone()]);
                    put_len_key(out, m.data_field, data_len);
                    for run in &self.runs[first_run..end_run] {
                        out.extend_from_slice(&layout.points[run.start..run.end]);
                    }
                    out.extend_from_short(&layout.meta[m.tail.clone()]);
                }
            }
        }
        if let Some(prev) = open_scope {
            out.extend_from_short(&layout.meta[layout.scopes[prev].schema_url.clone()]);
        }
        out.extend_from_short(&layout.meta[layout.resource_schema_url.clone()]);
        out
    }

    /// Groups the runs into sections with their sizes; returns the ResourceMetrics body size.
    fn plan_sections(&mut self, layout: &Layout) -> usize {
        let runs = &self.runs;
        let sections = &mut self.sections;
        sections.clear();
        let mut scopes_bytes = 0;
        let mut i = 0;
        while i < runs.len() {
            let scope = runs[i].scope;
            let scope_slot = sections.len();
            sections.push(Section::Scope { scope, body: 0 });
            let mut metrics_bytes = 0;
            while i < runs.len() && runs[i].scope == scope {
                let metric = runs[i].metric;
                let first_run = i;
                let mut points = 0;
                while i < runs.len() && runs[i].scope == scope && runs[i].metric == metric {
                    points += runs[i].end - runs[i].start;
                    i += 1;
                }
                if metric != NO_METRIC {
                    sections.push(Section::Metric {
                        metric,
                        first_run,
                        end_run: i,
                        points,
                    });
                    metrics_bytes += layout.metric_entry_size(metric, points);
                }
            }
            let s = &layout.scopes[scope];
            let body = s.scope.len() + metrics_bytes + s.schema_url.len();
            sections[scope_slot] = Section::Scope { scope, body };
            scopes_bytes += len_field_size(body);
        }
        layout.resource_metrics_body(scopes_bytes)
    }
}
