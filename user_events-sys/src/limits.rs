//! How big one event may be. `writev` succeeds even when the kernel drops an event that is
//! too big for a listener, so a writer must know these numbers.
//!
//! All sizes count the payload: the bytes after the 4-byte write index.
//!
//! Derived from the Linux 6.12 source and confirmed in the VM by
//! `tests/kernel.rs` (`perf_limit_edge`, `ftrace_limit_edge`), which write every payload size
//! around each edge, check which arrive, print `UE-MEASURE perf_max_payload=N` and
//! `UE-MEASURE ftrace_max_payload=N`, and assert they equal these constants
//! (x86_64, 4 KiB pages).

/// Largest payload a perf listener (`perf record`, `perf_event_open`) receives.
///
/// `user_event_perf` asks `perf_trace_buf_alloc` for `ALIGN(8 + payload, 8)` bytes (the
/// 8-byte `trace_entry` first), which fails above `PERF_MAX_TRACE_SIZE` = 8192: so
/// 8192 - 8 = 8184. One byte more rounds up to 8200 and is dropped, and the kernel logs
/// `WARNING: ... perf buffer not large enough` once per boot.
pub const PERF_MAX_PAYLOAD: usize = 8184;

/// Largest payload an ftrace listener (`events/.../enable`, `trace`, `trace_pipe`) receives.
///
/// `user_event_ftrace` reserves `8 + payload` bytes in the trace ring buffer, which refuses
/// more than `max_data_size` = sub-buffer capacity (4096 - 16-byte page header) - 8 = 4072
/// bytes: so 4072 - 8 = 4064 with 4 KiB pages. `max_data_size` is fixed when the buffer is
/// allocated, so raising `buffer_subbuf_size_kb` later does not raise it. Larger pages
/// (16/64 KiB arm64 kernels) give a larger limit; this constant is the 4 KiB value, the
/// smallest in use.
pub const FTRACE_MAX_PAYLOAD: usize = 4064;

/// The payload that reaches every kind of listener: the smaller of the two.
pub const MAX_PAYLOAD_ALL_LISTENERS: usize = if PERF_MAX_PAYLOAD < FTRACE_MAX_PAYLOAD {
    PERF_MAX_PAYLOAD
} else {
    FTRACE_MAX_PAYLOAD
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_listeners_is_the_smaller_limit() {
        assert_eq!(
            MAX_PAYLOAD_ALL_LISTENERS,
            PERF_MAX_PAYLOAD.min(FTRACE_MAX_PAYLOAD)
        );
    }
}
