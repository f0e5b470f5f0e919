//! The end-to-end suite on a real `user_events` kernel (run in the VM by `cargo xtask e2e`, as
//! root, one test at a time). Each module is one thing the suite must show:
//!
//! - `roundtrip`: every instrument kind, value type and temporality, app -> kernel -> decoder;
//! - `sizes`: exports from one point to W3 through perf, complete, within the limits;
//! - `listeners`: a listener attaching and detaching mid-run; the exporter's stats equal what
//!   the collector received;
//! - `permissions`: no permission (documented error, app keeps running); a tracers group;
//! - `perf_tool`: Debian's `perf record`/`perf script`, the decoder CLI, Microsoft's
//!   `tracepoint_perf`/`tracepoint_decode` on the same perf.data;
//! - `peer`: the upstream `opentelemetry-user-events-metrics` exporter next to ours;
//! - `perf_data_file`: a perf.data file written by the suite's own recorder (no `perf` needed),
//!   read back by the decoder and sent to the host (the big-endian fixture comes from s390x);
//! - `compat32`: a 32-bit (i686) build of the app on the 64-bit kernel: told why, runs on;
//! - `throughput`: the agent (`ue-metrics-decode live`) reading three producers at the demo's
//!   rate, 20 times it and flat out: records/s, every record decoded or counted lost.
//!
//! Each test prints `UE-MEASURE` lines that `cargo xtask e2e` turns into its summary.

#[path = "kernel/common.rs"]
mod common;
#[path = "kernel/compat32.rs"]
mod compat32;
#[path = "kernel/listeners.rs"]
mod listeners;
#[path = "kernel/peer.rs"]
mod peer;
#[path = "kernel/perf_data_file.rs"]
mod perf_data_file;
#[path = "kernel/perf_tool.rs"]
mod perf_tool;
#[path = "kernel/permissions.rs"]
mod permissions;
#[path = "kernel/roundtrip.rs"]
mod roundtrip;
#[path = "kernel/sizes.rs"]
mod sizes;
#[path = "kernel/throughput.rs"]
mod throughput;
