//! Mode (a): the whole request written in place, in one pass, with no copy. Each of the four
//! outer length prefixes (`ResourceMetrics`, `ScopeMetrics`, `Metric`, `Sum`/`Gauge`/...) is
//! reserved with the width it had in the previous export (same index), as are the resource,
//! scopes and first points inside them (`messages::Widths`), so in steady state no guess is
//! wrong and nothing moves; a wrong guess (first export, or a size crossing 128 / 16 KiB /
//! 2 MiB) moves that message's body once.

use std::convert::Infallible;

use opentelemetry_sdk::metrics::data::ResourceMetrics;

use super::messages::{
    data_field, put_data_tail, put_metric_head, put_points, put_resource, put_schema_url,
    put_scope, slot, Widths,
};
use crate::wire::{finish_len_width, reserve_len, tag, Buf, WIRE_LEN};

/// Length prefix widths of the previous export, by position.
#[derive(Debug, Default)]
pub(crate) struct RequestWriter {
    request: u8,
    scopes: Vec<u8>,
    /// (Metric, data message) widths.
    metrics: Vec<[u8; 2]>,
    /// Widths of the messages inside those (resource, scope, points, exemplars).
    inner: Widths,
}

impl RequestWriter {
    /// Writes the `ExportMetricsServiceRequest` for `rm` into `out` (replacing its content).
    pub(crate) fn write(&mut self, out: &mut Buf, rm: &ResourceMetrics) {
        out.clear();
        // ExportMetricsServiceRequest.resource_metrics (1)
        out.push(tag(1, WIRE_LEN));
        let request_width = if self.request == 0 {
            3
        } else {
            usize::from(self.request)
        };
        let request_at = reserve_len(out, request_width);
        put_resource(out, rm, &mut self.inner);
        let mut metric_index = 0;
        for (scope_index, sm) in rm.scope_metrics().enumerate() {
            // ResourceMetrics.scope_metrics (2)
            out.push(tag(2, WIRE_LEN));
            let scope_width = usize::from(self.scopes.get(scope_index).copied().unwrap_or(3));
            let scope_at = reserve_len(out, scope_width);
            put_scope(out, sm.scope(), self.inner.scope(scope_index));
            for metric in sm.metrics() {
                // ScopeMetrics.metrics (2)
                out.push(tag(2, WIRE_LEN));
                let [metric_width, data_width] = self
                    .metrics
                    .get(metric_index)
                    .copied()
                    .unwrap_or([2, 2])
                    .map(usize::from);
                let metric_at = reserve_len(out, metric_width);
                put_metric_head(out, metric);
                out.push(tag(data_field(metric), WIRE_LEN));
                let data_at = reserve_len(out, data_width);
                // Nothing to decide per point: never called again after the first.
                let no_stop = |_: &mut Buf, _| Ok::<usize, Infallible>(usize::MAX);
                let Ok(_) = put_points(out, metric, self.inner.metric(metric_index), no_stop);
                put_data_tail(out, metric);
                let data_width = finish_len_width(out, data_at, data_width);
                let metric_width = finish_len_width(out, metric_at, metric_width);
                *slot(&mut self.metrics, metric_index) = [metric_width as u8, data_width as u8];
                metric_index += 1;
            }
            put_schema_url(out, sm.scope().schema_url());
            let scope_width = finish_len_width(out, scope_at, scope_width);
            *slot(&mut self.scopes, scope_index) = scope_width as u8;
        }
        put_schema_url(out, rm.resource().schema_url());
        self.request = finish_len_width(out, request_at, request_width) as u8;
    }
}
