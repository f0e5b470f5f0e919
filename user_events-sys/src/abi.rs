//! The raw kernel ABI of `include/uapi/linux/user_events.h` (Linux 6.4+).
//!
//! Nothing here does I/O: these are the structures passed to the `user_events_data` ioctls,
//! the ioctl request numbers (computed from the kernel's `_IOC` encoding for the target
//! architecture, never hard-coded x86 values) and the registration flags.

use core::mem::{offset_of, size_of};

/// The tracefs event group (system) that single-format user events appear in.
pub const USER_EVENTS_SYSTEM: &str = "user_events";
/// The tracefs event group of events registered with [`USER_EVENT_REG_MULTI_FORMAT`].
pub const USER_EVENTS_MULTI_SYSTEM: &str = "user_events_multi";
/// Prefix of user events in `dynamic_events` (`u:name fields...`).
pub const USER_EVENTS_PREFIX: &str = "u:";
/// Longest `name_args` string the kernel copies, including its terminating NUL
/// (`MAX_EVENT_DESC` in `kernel/trace/trace_events_user.c`).
pub const MAX_EVENT_DESC: usize = 512;

/// Registration flag: the event is not deleted when its last reference goes away (6.7+).
/// Needs `CAP_PERFMON`, otherwise the kernel answers `EPERM`.
pub const USER_EVENT_REG_PERSIST: u16 = 1 << 0;
/// Registration flag: the same name may exist with several formats (6.9+). The tracepoint is
/// then called `name.<hex id>` in the [`USER_EVENTS_MULTI_SYSTEM`] group.
pub const USER_EVENT_REG_MULTI_FORMAT: u16 = 1 << 1;
/// First flag value that is not ABI: any flag at or above it gives `EINVAL`.
pub const USER_EVENT_REG_MAX: u16 = 1 << 2;

/// `struct user_reg`: the argument of [`DIAG_IOCSREG`]. Packed, 28 bytes.
#[allow(non_camel_case_types)]
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct user_reg {
    /// Input: `size_of::<user_reg>()`.
    pub size: u32,
    /// Input: the bit of the enable word the kernel sets and clears.
    pub enable_bit: u8,
    /// Input: size of the enable word in bytes (4, or 8 on 64-bit kernels).
    pub enable_size: u8,
    /// Input: `USER_EVENT_REG_*` flags.
    pub flags: u16,
    /// Input: address of the enable word (naturally aligned, writable).
    pub enable_addr: u64,
    /// Input: address of the NUL-terminated `name[:flags] [field;...]` string.
    pub name_args: u64,
    /// Output: the index to put in front of every write for this event.
    pub write_index: u32,
}

/// `struct user_unreg`: the argument of [`DIAG_IOCSUNREG`]. Packed, 16 bytes.
#[allow(non_camel_case_types)]
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct user_unreg {
    /// Input: `size_of::<user_unreg>()`.
    pub size: u32,
    /// Input: the bit given at registration.
    pub disable_bit: u8,
    /// Reserved, must be 0.
    pub reserved: u8,
    /// Reserved, must be 0.
    pub reserved2: u16,
    /// Input: the enable word address given at registration.
    pub disable_addr: u64,
}

const _: () = {
    assert!(size_of::<user_reg>() == 28);
    assert!(offset_of!(user_reg, size) == 0);
    assert!(offset_of!(user_reg, enable_bit) == 4);
    assert!(offset_of!(user_reg, enable_size) == 5);
    assert!(offset_of!(user_reg, flags) == 6);
    assert!(offset_of!(user_reg, enable_addr) == 8);
    assert!(offset_of!(user_reg, name_args) == 16);
    assert!(offset_of!(user_reg, write_index) == 24);

    assert!(size_of::<user_unreg>() == 16);
    assert!(offset_of!(user_unreg, size) == 0);
    assert!(offset_of!(user_unreg, disable_bit) == 4);
    assert!(offset_of!(user_unreg, reserved) == 5);
    assert!(offset_of!(user_unreg, reserved2) == 6);
    assert!(offset_of!(user_unreg, disable_addr) == 8);
};

/// `DYN_LOC(offset, size)`: the 32-bit value of a `__rel_loc`/`__data_loc` field.
pub const fn dyn_loc(offset: u16, size: u16) -> u32 {
    ((size as u32) << 16) | offset as u32
}

/// How an architecture lays out ioctl request numbers (`asm/ioctl.h`).
///
/// `_IOC(dir, type, nr, size) = dir << dir_shift | size << 16 | type << 8 | nr`, where the
/// direction field's width and the values of "read"/"write" differ between architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IocEncoding {
    /// Width of the size field (`_IOC_SIZEBITS`).
    pub size_bits: u32,
    /// `_IOC_NONE`.
    pub none: u32,
    /// `_IOC_WRITE` (userspace writes, the kernel reads).
    pub write: u32,
    /// `_IOC_READ`.
    pub read: u32,
}

impl IocEncoding {
    /// `asm-generic/ioctl.h`: x86, arm, aarch64, riscv, s390x, loongarch and most others.
    pub const GENERIC: IocEncoding = IocEncoding {
        size_bits: 14,
        none: 0,
        write: 1,
        read: 2,
    };
    /// powerpc, mips, sparc and alpha: 13 size bits, 3 direction bits, `_IOC_NONE` = 1.
    pub const THREE_DIR_BITS: IocEncoding = IocEncoding {
        size_bits: 13,
        none: 1,
        write: 4,
        read: 2,
    };
    /// parisc: the generic layout with read and write swapped.
    pub const PARISC: IocEncoding = IocEncoding {
        size_bits: 14,
        none: 0,
        write: 2,
        read: 1,
    };

    /// The encoding of the architecture this crate is compiled for.
    pub const NATIVE: IocEncoding = native_encoding();

    /// `_IOC(dir, ty, nr, size)`.
    pub const fn ioc(self, dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
        let size_shift = 16;
        let dir_shift = size_shift + self.size_bits;
        (dir << dir_shift) | ((size as u32) << size_shift) | ((ty as u32) << 8) | nr as u32
    }

    /// `_IOW(ty, nr, T)` where `size_of::<T>() == size`.
    pub const fn iow(self, ty: u8, nr: u8, size: usize) -> u32 {
        self.ioc(self.write, ty, nr, size)
    }

    /// `_IOWR(ty, nr, T)` where `size_of::<T>() == size`.
    pub const fn iowr(self, ty: u8, nr: u8, size: usize) -> u32 {
        self.ioc(self.read | self.write, ty, nr, size)
    }
}

const fn native_encoding() -> IocEncoding {
    if cfg!(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "mips32r6",
        target_arch = "mips64r6",
        target_arch = "sparc",
        target_arch = "sparc64",
    )) {
        IocEncoding::THREE_DIR_BITS
    } else {
        IocEncoding::GENERIC
    }
}

/// The ioctl magic of `user_events_data` (`DIAG_IOC_MAGIC`, `'*'`).
pub const DIAG_IOC_MAGIC: u8 = b'*';

/// The header declares the three requests with a pointer type (`struct user_reg *`, `char *`),
/// so the size field is the size of a pointer, not of the structure.
const POINTER_SIZE: usize = size_of::<*const u8>();

/// `DIAG_IOCSREG = _IOWR('*', 0, struct user_reg *)`: register an event.
pub const DIAG_IOCSREG: u32 = IocEncoding::NATIVE.iowr(DIAG_IOC_MAGIC, 0, POINTER_SIZE);
/// `DIAG_IOCSDEL = _IOW('*', 1, char *)`: delete an event by name.
pub const DIAG_IOCSDEL: u32 = IocEncoding::NATIVE.iow(DIAG_IOC_MAGIC, 1, POINTER_SIZE);
/// `DIAG_IOCSUNREG = _IOW('*', 2, struct user_unreg *)`: remove an enabler.
pub const DIAG_IOCSUNREG: u32 = IocEncoding::NATIVE.iow(DIAG_IOC_MAGIC, 2, POINTER_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(enc: IocEncoding, pointer_size: usize) -> [u32; 3] {
        [
            enc.iowr(DIAG_IOC_MAGIC, 0, pointer_size),
            enc.iow(DIAG_IOC_MAGIC, 1, pointer_size),
            enc.iow(DIAG_IOC_MAGIC, 2, pointer_size),
        ]
    }

    #[test]
    fn generic_64_bit_matches_x86_64_header_values() {
        assert_eq!(
            requests(IocEncoding::GENERIC, 8),
            [0xC008_2A00, 0x4008_2A01, 0x4008_2A02]
        );
    }

    #[test]
    fn generic_32_bit_uses_four_byte_size() {
        assert_eq!(
            requests(IocEncoding::GENERIC, 4),
            [0xC004_2A00, 0x4004_2A01, 0x4004_2A02]
        );
    }

    #[test]
    fn powerpc_mips_sparc_write_is_bit_31() {
        // _IOC_WRITE = 4 in a 3-bit field at bit 29; read|write = 6.
        assert_eq!(
            requests(IocEncoding::THREE_DIR_BITS, 8),
            [0xC008_2A00, 0x8008_2A01, 0x8008_2A02]
        );
        assert_eq!(
            requests(IocEncoding::THREE_DIR_BITS, 4),
            [0xC004_2A00, 0x8004_2A01, 0x8004_2A02]
        );
    }

    #[test]
    fn parisc_swaps_read_and_write() {
        assert_eq!(
            requests(IocEncoding::PARISC, 4),
            [0xC004_2A00, 0x8004_2A01, 0x8004_2A02]
        );
    }

    #[test]
    fn none_direction_is_encoded() {
        assert_eq!(IocEncoding::GENERIC.ioc(0, b'$', 0, 0), 0x2400);
        assert_eq!(IocEncoding::THREE_DIR_BITS.ioc(1, b'$', 0, 0), 0x2000_2400);
    }

    #[test]
    fn native_constants_use_native_encoding() {
        assert_eq!(
            [DIAG_IOCSREG, DIAG_IOCSDEL, DIAG_IOCSUNREG],
            requests(IocEncoding::NATIVE, size_of::<usize>())
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            [DIAG_IOCSREG, DIAG_IOCSDEL, DIAG_IOCSUNREG],
            [0xC008_2A00, 0x4008_2A01, 0x4008_2A02]
        );
        #[cfg(target_arch = "aarch64")]
        assert_eq!(
            [DIAG_IOCSREG, DIAG_IOCSDEL, DIAG_IOCSUNREG],
            [0xC008_2A00, 0x4008_2A01, 0x4008_2A02]
        );
    }

    #[test]
    fn structs_serialise_in_kernel_layout() {
        let reg = user_reg {
            size: 28,
            enable_bit: 5,
            enable_size: 4,
            flags: USER_EVENT_REG_MULTI_FORMAT,
            enable_addr: 0x1122_3344_5566_7788,
            name_args: 0x0102_0304_0506_0708,
            write_index: 0xAABB_CCDD,
        };
        let mut expected = Vec::new();
        expected.extend_from_slice(&28u32.to_ne_bytes());
        expected.extend_from_slice(&[5, 4]);
        expected.extend_from_slice(&USER_EVENT_REG_MULTI_FORMAT.to_ne_bytes());
        expected.extend_from_slice(&0x1122_3344_5566_7788u64.to_ne_bytes());
        expected.extend_from_slice(&0x0102_0304_0506_0708u64.to_ne_bytes());
        expected.extend_from_slice(&0xAABB_CCDDu32.to_ne_bytes());
        assert_eq!(as_bytes_reg(&reg), expected.as_slice());
    }

    /// The struct's memory, byte by byte, to check the layout the kernel will read.
    fn as_bytes_reg(reg: &user_reg) -> &[u8] {
        // SAFETY: `user_reg` is `repr(C, packed)` plain data (integers only, no padding, every
        // byte initialised), `size_of` bytes long, and the slice borrows `reg` for its lifetime.
        unsafe {
            core::slice::from_raw_parts(
                (reg as *const user_reg).cast::<u8>(),
                size_of::<user_reg>(),
            )
        }
    }

    #[test]
    fn unreg_serialises_in_kernel_layout() {
        let unreg = user_unreg {
            size: 16,
            disable_bit: 31,
            reserved: 0,
            reserved2: 0,
            disable_addr: 0x0102_0304_0506_0708,
        };
        // SAFETY: as in `as_bytes_reg`: packed plain data, 16 bytes, borrowed for the slice's life.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                (&unreg as *const user_unreg).cast::<u8>(),
                size_of::<user_unreg>(),
            )
        };
        let mut expected = Vec::new();
        expected.extend_from_slice(&16u32.to_ne_bytes());
        expected.extend_from_slice(&[31, 0, 0, 0]);
        expected.extend_from_slice(&0x0102_0304_0506_0708u64.to_ne_bytes());
        assert_eq!(bytes, expected.as_slice());
    }

    #[test]
    fn flags_and_dyn_loc() {
        assert_eq!(USER_EVENT_REG_PERSIST, 1);
        assert_eq!(USER_EVENT_REG_MULTI_FORMAT, 2);
        assert_eq!(USER_EVENT_REG_MAX, 4);
        assert_eq!(dyn_loc(0, 5), 0x0005_0000);
        assert_eq!(dyn_loc(4, 0x10), 0x0010_0004);
    }
}
