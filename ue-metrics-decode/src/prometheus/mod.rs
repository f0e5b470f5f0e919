//! Decoded requests as a Prometheus endpoint (`--prometheus ADDR`).
//!
//! - [`naming`]: OpenTelemetry names, units and attributes as Prometheus names and labels
//!   (the OpenTelemetry specification's Prometheus compatibility rules);
//! - [`PrometheusState`]: the series, with deltas accumulated into cumulative counters and
//!   histograms, restarts detected from start times, and expiry of series not updated;
//! - [`render()`](fn@render): the text exposition format 0.0.4;
//! - `PrometheusEndpoint` (feature `cli`): the `/metrics` HTTP server.
//!
//! Resources give `job` (`service.namespace/service.name`) and `instance`
//! (`service.instance.id`) labels on every series and one `target_info` per job/instance with
//! the other resource attributes; scopes give `otel_scope_name` and `otel_scope_version`
//! labels (and `otel_scope_info` when they have attributes). Since the endpoint carries
//! `job`/`instance` itself, Prometheus should scrape it with `honor_labels: true` (otherwise
//! it renames them `exported_job`/`exported_instance`).

pub mod naming;
pub mod render;
#[cfg(feature = "cli")]
mod server;
mod state;

#[cfg(feature = "cli")]
pub use render::render_forward_telemetry;
pub use render::{render, render_self_telemetry, CONTENT_TYPE};
#[cfg(feature = "cli")]
pub use server::PrometheusEndpoint;
pub use state::{
    DropReason, PrometheusCounts, PrometheusOptions, PrometheusState, DEFAULT_MAX_SERIES,
};

#[cfg(test)]
mod tests;
