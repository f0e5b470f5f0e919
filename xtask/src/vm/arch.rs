//! The guest architectures: everything that differs between x86_64, aarch64 and s390x guests
//! (kernel build, qemu machine, consoles, Rust target, guest programs) in one table.

use crate::error::{Error, Result};
use std::fmt;

/// A guest architecture the VM can boot (under qemu TCG on any host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    /// x86_64 (little-endian, 4 KiB pages).
    X86_64,
    /// aarch64 / arm64 (little-endian), qemu `-M virt`.
    Aarch64,
    /// s390x (big-endian), qemu `-M s390-ccw-virtio`.
    S390x,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Arch {
    /// Every architecture, in the order `--arch all` runs them.
    pub const ALL: [Arch; 3] = [Arch::X86_64, Arch::Aarch64, Arch::S390x];

    /// The architecture xtask itself was built for (the default guest).
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else if cfg!(target_arch = "s390x") {
            Arch::S390x
        } else {
            Arch::X86_64
        }
    }

    /// Parses `x86_64`, `aarch64` (or `arm64`), `s390x`.
    pub fn parse(name: &str) -> Result<Arch> {
        match name {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            "s390x" | "s390" => Ok(Arch::S390x),
            other => Err(Error::Usage(format!(
                "unknown architecture `{other}` (x86_64, aarch64, s390x, or all)"
            ))),
        }
    }

    /// Parses an `--arch` value: one architecture, or `all`.
    pub fn parse_list(value: &str) -> Result<Vec<Arch>> {
        if value == "all" {
            Ok(Arch::ALL.to_vec())
        } else {
            Ok(vec![Arch::parse(value)?])
        }
    }

    /// The name used in flags, reports and cache keys.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::S390x => "s390x",
        }
    }

    /// The Rust target triple of the guest's (statically linked) programs.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
            Arch::S390x => "s390x-unknown-linux-gnu",
        }
    }

    /// The C compiler that links the guest's programs for [`Arch::rust_target`] and prefixes the
    /// kernel's cross toolchain (`CROSS_COMPILE`); `None` on x86_64 (the host's own `gcc`).
    pub fn cross_prefix(self) -> Option<&'static str> {
        match self {
            Arch::X86_64 => None,
            Arch::Aarch64 => Some("aarch64-linux-gnu-"),
            Arch::S390x => Some("s390x-linux-gnu-"),
        }
    }

    /// The gcc that builds this architecture's kernel and links its programs.
    pub fn gcc(self) -> String {
        format!("{}gcc", self.cross_prefix().unwrap_or_default())
    }

    /// The Debian packages that provide [`Arch::gcc`] with static glibc, and the qemu binary.
    pub fn packages(self) -> &'static str {
        match self {
            Arch::X86_64 => "gcc qemu-system-x86",
            Arch::Aarch64 => "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-system-arm",
            Arch::S390x => "gcc-s390x-linux-gnu libc6-dev-s390x-cross qemu-system-misc",
        }
    }

    /// Debian's name of the architecture (`dpkg --print-architecture`).
    pub fn debian_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::S390x => "s390x",
        }
    }

    /// The kernel's `ARCH=`.
    pub fn kernel_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86",
            Arch::Aarch64 => "arm64",
            Arch::S390x => "s390",
        }
    }

    /// The `make` target that builds the bootable image, and where kbuild puts it.
    pub fn kernel_image(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("bzImage", "arch/x86/boot/bzImage"),
            Arch::Aarch64 => ("Image", "arch/arm64/boot/Image"),
            Arch::S390x => ("bzImage", "arch/s390/boot/bzImage"),
        }
    }

    /// True for big-endian guests.
    pub fn big_endian(self) -> bool {
        self == Arch::S390x
    }

    /// The qemu system emulator.
    pub fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
            Arch::S390x => "qemu-system-s390x",
        }
    }

    /// The machine flags (`-M`), if qemu's default machine is not the one.
    pub fn machine(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &[],
            Arch::Aarch64 => &["-M", "virt"],
            Arch::S390x => &["-M", "s390-ccw-virtio"],
        }
    }

    /// The guest console device (qemu's first `-serial`, shown on xtask's stdout).
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
            Arch::S390x => "ttysclp0",
        }
    }

    /// The guest device of the results port, written to a host file: a second 16550 UART on
    /// x86_64; a virtio console elsewhere (`-M virt` has one PL011 only, and s390's second SCLP
    /// console is a line-mode terminal that rewrites what it carries).
    pub fn results_device(self) -> &'static str {
        match self {
            Arch::X86_64 => "/dev/ttyS1",
            Arch::Aarch64 | Arch::S390x => "/dev/hvc0",
        }
    }

    /// qemu flags that connect the results port to the chardev `chardev` (the file).
    pub fn results_port_flags(self, chardev: &str) -> Vec<String> {
        let virtio_serial = match self {
            Arch::X86_64 => return vec!["-serial".into(), format!("chardev:{chardev}")],
            Arch::Aarch64 => "virtio-serial-device",
            Arch::S390x => "virtio-serial-ccw",
        };
        vec![
            "-device".into(),
            virtio_serial.into(),
            "-device".into(),
            format!("virtconsole,chardev={chardev}"),
        ]
    }

    /// How the guest's `/init` ends the VM so that qemu exits: a reboot under `-no-reboot` on
    /// x86_64 (the tiny kernel's ACPI power-off is not reliable there), a power-off (PSCI, SCLP)
    /// elsewhere.
    pub fn shutdown_command(self) -> &'static str {
        match self {
            Arch::X86_64 => "reboot -f",
            Arch::Aarch64 | Arch::S390x => "poweroff -f",
        }
    }

    /// The 32-bit compat target whose programs this architecture's guest kernel runs
    /// (`CONFIG_IA32_EMULATION` on x86_64), with its linker; `None` where the guest kernel has no
    /// 32-bit compat layer.
    pub fn compat32(self) -> Option<(&'static str, &'static str)> {
        match self {
            Arch::X86_64 => Some(("i686-unknown-linux-gnu", "i686-linux-gnu-gcc")),
            Arch::Aarch64 | Arch::S390x => None,
        }
    }

    /// The ELF `e_machine` of this architecture's programs.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Aarch64 => 183,
            Arch::S390x => 22,
        }
    }
}

/// The cargo environment variable that names the linker for `target`
/// (`CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER`).
pub fn linker_variable(target: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// The ELF `e_machine` of an executable, read in the byte order its header declares; `None` for
/// anything that is not ELF.
pub fn elf_machine(bytes: &[u8]) -> Option<u16> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return None;
    }
    let raw: [u8; 2] = bytes.get(18..20)?.try_into().ok()?;
    match bytes.get(5)? {
        1 => Some(u16::from_le_bytes(raw)),
        2 => Some(u16::from_be_bytes(raw)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_all_lists_every_arch() {
        for arch in Arch::ALL {
            assert_eq!(Arch::parse(arch.name()).unwrap(), arch);
        }
        assert_eq!(Arch::parse_list("all").unwrap(), Arch::ALL);
        assert_eq!(Arch::parse_list("arm64").unwrap(), [Arch::Aarch64]);
        assert!(Arch::parse("riscv64").is_err());
    }

    #[test]
    fn linker_variable_follows_cargo_naming() {
        assert_eq!(
            linker_variable("s390x-unknown-linux-gnu"),
            "CARGO_TARGET_S390X_UNKNOWN_LINUX_GNU_LINKER"
        );
    }

    #[test]
    fn elf_machine_reads_both_byte_orders() {
        let host = std::fs::read("/bin/ls").unwrap();
        assert_eq!(elf_machine(&host), Some(Arch::host().elf_machine()));
        let mut big = vec![0x7f, b'E', b'L', b'F', 2, 2];
        big.resize(20, 0);
        big[18..20].copy_from_slice(&22u16.to_be_bytes());
        assert_eq!(elf_machine(&big), Some(Arch::S390x.elf_machine()));
        assert_eq!(elf_machine(b"#!/bin/sh\n"), None);
    }
}
