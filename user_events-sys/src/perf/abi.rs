//! The parts of `include/uapi/linux/perf_event.h` the tracepoint reader needs.

use core::mem::{offset_of, size_of};

/// `PERF_TYPE_TRACEPOINT`: `config` is a tracepoint id from tracefs `events/<g>/<n>/id`.
pub const PERF_TYPE_TRACEPOINT: u32 = 2;

/// `PERF_SAMPLE_TID`: samples carry `u32 pid, tid`.
pub const PERF_SAMPLE_TID: u64 = 1 << 1;
/// `PERF_SAMPLE_TIME`: samples carry `u64 time`.
pub const PERF_SAMPLE_TIME: u64 = 1 << 2;
/// `PERF_SAMPLE_CPU`: samples carry `u32 cpu, res`.
pub const PERF_SAMPLE_CPU: u64 = 1 << 7;
/// `PERF_SAMPLE_RAW`: samples carry `u32 size; u8 data[size]` (the tracepoint record).
pub const PERF_SAMPLE_RAW: u64 = 1 << 10;

/// `PERF_RECORD_LOST`: `u64 id; u64 lost` follow the header.
pub const PERF_RECORD_LOST: u32 = 2;
/// `PERF_RECORD_SAMPLE`: the fields chosen by `sample_type` follow the header.
pub const PERF_RECORD_SAMPLE: u32 = 9;

/// `PERF_EVENT_IOC_SET_OUTPUT` (`_IO('$', 5)`): send an event's records to another event's
/// ring buffer (same CPU).
pub const PERF_EVENT_IOC_SET_OUTPUT: u32 =
    crate::abi::IocEncoding::NATIVE.ioc(crate::abi::IocEncoding::NATIVE.none, b'$', 5, 0);

/// `PERF_FLAG_FD_CLOEXEC` for `perf_event_open`'s `flags` argument.
pub const PERF_FLAG_FD_CLOEXEC: u64 = 1 << 3;

/// `PERF_ATTR_SIZE_VER8`: the size of [`perf_event_attr`] as defined here (Linux 6.3+ layout;
/// older kernels accept it too as long as the fields they do not know are zero).
pub const PERF_ATTR_SIZE_VER8: u32 = 136;

/// The bit of [`perf_event_attr::flags`] for the bit-field declared `index`-th in
/// `<linux/perf_event.h>` (`disabled` is 0). C compilers fill a bit-field word from its least
/// significant bit on little-endian targets and from its most significant bit on big-endian
/// ones (s390x, powerpc), so the same field is a different bit of the `u64` there.
pub const fn attr_flag(index: u32) -> u64 {
    if cfg!(target_endian = "big") {
        1 << (63 - index)
    } else {
        1 << index
    }
}

/// Bit of [`perf_event_attr::flags`]: start disabled.
pub const ATTR_FLAG_DISABLED: u64 = attr_flag(0);
/// Bit of [`perf_event_attr::flags`]: `wakeup_watermark` instead of `wakeup_events`.
pub const ATTR_FLAG_WATERMARK: u64 = attr_flag(14);
/// Bit of [`perf_event_attr::flags`]: non-sample records carry the sample id fields too.
pub const ATTR_FLAG_SAMPLE_ID_ALL: u64 = attr_flag(18);
/// Bit of [`perf_event_attr::flags`]: time samples with [`perf_event_attr::clockid`].
pub const ATTR_FLAG_USE_CLOCKID: u64 = attr_flag(25);
/// `CLOCK_MONOTONIC` (`<linux/time.h>`), for [`perf_event_attr::clockid`].
pub const CLOCK_MONOTONIC: i32 = 1;

/// `struct perf_event_attr` (the bit-field word is [`perf_event_attr::flags`]).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct perf_event_attr {
    /// `PERF_TYPE_*`.
    pub type_: u32,
    /// `size_of::<perf_event_attr>()`.
    pub size: u32,
    /// For tracepoints: the tracepoint id.
    pub config: u64,
    /// `sample_period` / `sample_freq`.
    pub sample_period: u64,
    /// `PERF_SAMPLE_*` bits.
    pub sample_type: u64,
    /// `PERF_FORMAT_*` bits.
    pub read_format: u64,
    /// The bit-field word (`disabled`, `inherit`, ..., `ATTR_FLAG_*`).
    pub flags: u64,
    /// `wakeup_events` / `wakeup_watermark`.
    pub wakeup_events: u32,
    /// Breakpoint type.
    pub bp_type: u32,
    /// `bp_addr` / `config1`.
    pub config1: u64,
    /// `bp_len` / `config2`.
    pub config2: u64,
    /// Branch sampling selection.
    pub branch_sample_type: u64,
    /// User registers to sample.
    pub sample_regs_user: u64,
    /// User stack bytes to sample.
    pub sample_stack_user: u32,
    /// Clock for `use_clockid`.
    pub clockid: i32,
    /// Interrupt registers to sample.
    pub sample_regs_intr: u64,
    /// AUX area wakeup watermark.
    pub aux_watermark: u32,
    /// Callchain depth limit.
    pub sample_max_stack: u16,
    /// Reserved, zero.
    pub reserved_2: u16,
    /// AUX sample size.
    pub aux_sample_size: u32,
    /// Reserved, zero (`aux_action` on newer kernels).
    pub reserved_3: u32,
    /// Signal data.
    pub sig_data: u64,
    /// `config3`.
    pub config3: u64,
}

const _: () = {
    assert!(size_of::<perf_event_attr>() == PERF_ATTR_SIZE_VER8 as usize);
    assert!(offset_of!(perf_event_attr, config) == 8);
    assert!(offset_of!(perf_event_attr, sample_type) == 24);
    assert!(offset_of!(perf_event_attr, flags) == 40);
    assert!(offset_of!(perf_event_attr, wakeup_events) == 48);
    assert!(offset_of!(perf_event_attr, config1) == 56);
    assert!(offset_of!(perf_event_attr, branch_sample_type) == 72);
    assert!(offset_of!(perf_event_attr, sample_regs_intr) == 96);
    assert!(offset_of!(perf_event_attr, aux_watermark) == 104);
    assert!(offset_of!(perf_event_attr, sig_data) == 120);
    assert!(offset_of!(perf_event_attr, config3) == 128);
};

/// `struct perf_event_header`: every record in the ring starts with it.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct perf_event_header {
    /// `PERF_RECORD_*`.
    pub type_: u32,
    /// `PERF_RECORD_MISC_*`.
    pub misc: u16,
    /// Size of the whole record, header included (a multiple of 8).
    pub size: u16,
}

const _: () = assert!(size_of::<perf_event_header>() == 8);

/// The start of `struct perf_event_mmap_page` (the first page of the mapping), up to the
/// fields the reader uses.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct perf_event_mmap_page {
    /// Version of this structure.
    pub version: u32,
    /// Lowest version this is compatible with.
    pub compat_version: u32,
    /// Self-monitoring fields this reader does not use (`lock` .. `__reserved`).
    pub self_monitoring: [u8; 1016],
    /// Where the kernel has written up to (bytes since the start; read with acquire).
    pub data_head: u64,
    /// Where the reader has read up to (written with release).
    pub data_tail: u64,
    /// Offset of the data area from the start of the mapping.
    pub data_offset: u64,
    /// Size of the data area.
    pub data_size: u64,
}

const _: () = {
    assert!(offset_of!(perf_event_mmap_page, data_head) == 1024);
    assert!(offset_of!(perf_event_mmap_page, data_tail) == 1032);
    assert!(offset_of!(perf_event_mmap_page, data_offset) == 1040);
    assert!(offset_of!(perf_event_mmap_page, data_size) == 1048);
};
