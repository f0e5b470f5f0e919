//! The guest's root filesystem: a `newc` cpio archive, written here directly so every entry is
//! owned by root with exactly the mode we choose, without root rights on the host. It is not
//! compressed: under TCG the guest kernel needs ~5 s to gunzip 25 MB of test binaries, while
//! the 80 MB uncompressed archive boots in under 2 s.
//!
//! [`Initramfs::base_for`] gives busybox (a shell init and the usual tools; for a foreign
//! architecture Debian's `busybox-static` of that architecture, see [`guest_busybox`]),
//! `/etc/passwd` and
//! `/etc/group` with the users the kernel tests need, and the mount points. Callers then add test
//! binaries ([`Initramfs::add_binary`]), any host file ([`Initramfs::add_host_file`]), a
//! dynamically linked program with its libraries and loader at their host paths
//! ([`Initramfs::add_dynamic_program`], e.g. Debian's `perf`), and the `/init` script.

use super::arch::{elf_machine, Arch};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The statically linked busybox from Debian's `busybox-static`.
const BUSYBOX: &str = "/bin/busybox";

/// Users of the guest: root; `app` (uid 1000) with no extra groups, to test that an app without
/// permission gets the documented error; `tracer` (uid 1001) in group `tracers`, to test access
/// granted through a group.
pub const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
tracer:x:1001:1001:tracer:/home/tracer:/bin/sh
";

/// Groups of the guest (see [`PASSWD`]).
pub const GROUP: &str = "\
root:x:0:
app:x:1000:
tracers:x:1001:tracer
";

/// Where [`Initramfs::add_binary`] puts programs.
pub const BINARY_DIR: &str = "/opt/ue/bin";

/// What one archive entry holds.
#[derive(Debug, Clone)]
enum Content {
    Dir,
    /// Bytes read from a host file at write time (symlinks followed, like `cp -L`).
    HostFile(PathBuf),
    Bytes(Vec<u8>),
    Symlink(String),
    /// A character device node (major, minor).
    CharDevice(u32, u32),
}

#[derive(Debug, Clone)]
struct Entry {
    content: Content,
    mode: u32,
}

/// An initramfs being assembled. Paths are absolute guest paths; parents are created as needed
/// (mode 0755).
#[derive(Debug, Default, Clone)]
pub struct Initramfs {
    entries: BTreeMap<PathBuf, Entry>,
}

impl Initramfs {
    /// An empty archive (only the root directory).
    pub fn empty() -> Initramfs {
        let mut initramfs = Initramfs::default();
        initramfs.insert(
            PathBuf::from("/"),
            Entry {
                content: Content::Dir,
                mode: 0o755,
            },
        );
        initramfs
    }

    /// [`Initramfs::base_for`] the host's architecture.
    pub fn base() -> Result<Initramfs> {
        Initramfs::base_for(Arch::host())
    }

    /// Busybox for `arch`, users and groups, and the directories every guest needs. No `/init`
    /// yet.
    pub fn base_for(arch: Arch) -> Result<Initramfs> {
        let busybox = guest_busybox(arch)?;
        let mut initramfs = Initramfs::empty();
        for dir in [
            "/bin",
            "/sbin",
            "/usr/bin",
            "/usr/sbin",
            "/dev",
            "/proc",
            "/sys",
            "/etc",
            "/root",
            "/run",
            "/var",
        ] {
            initramfs.add_dir(dir, 0o755);
        }
        initramfs.add_dir("/root", 0o700);
        initramfs.add_dir("/tmp", 0o1777);
        initramfs.add_dir("/home/app", 0o755);
        initramfs.add_dir("/home/tracer", 0o755);
        // The kernel opens /dev/console for init's stdio before any devtmpfs is mounted.
        initramfs.insert(
            PathBuf::from("/dev/console"),
            Entry {
                content: Content::CharDevice(5, 1),
                mode: 0o600,
            },
        );
        initramfs.add_host_file(&busybox, BUSYBOX, 0o755)?;
        initramfs.add_symlink("/bin/sh", "busybox");
        initramfs.add_file("/etc/passwd", PASSWD, 0o644);
        initramfs.add_file("/etc/group", GROUP, 0o644);
        Ok(initramfs)
    }

    fn insert(&mut self, path: PathBuf, entry: Entry) {
        let mut parent = path.parent();
        while let Some(dir) = parent {
            self.entries.entry(dir.to_path_buf()).or_insert(Entry {
                content: Content::Dir,
                mode: 0o755,
            });
            parent = dir.parent();
        }
        self.entries.insert(path, entry);
    }

    /// Adds (or changes the mode of) a directory.
    pub fn add_dir(&mut self, guest: impl Into<PathBuf>, mode: u32) {
        self.insert(
            guest.into(),
            Entry {
                content: Content::Dir,
                mode,
            },
        );
    }

    /// Adds a file with the given contents.
    pub fn add_file(&mut self, guest: impl Into<PathBuf>, contents: impl Into<Vec<u8>>, mode: u32) {
        self.insert(
            guest.into(),
            Entry {
                content: Content::Bytes(contents.into()),
                mode,
            },
        );
    }

    /// Adds a symbolic link at `guest` pointing to `target`.
    pub fn add_symlink(&mut self, guest: impl Into<PathBuf>, target: &str) {
        self.insert(
            guest.into(),
            Entry {
                content: Content::Symlink(target.to_string()),
                mode: 0o777,
            },
        );
    }

    /// Adds a host file at `guest`, following symlinks (like `cp -L`). It is read when the archive
    /// is written; its existence is checked now.
    pub fn add_host_file(
        &mut self,
        host: impl AsRef<Path>,
        guest: impl Into<PathBuf>,
        mode: u32,
    ) -> Result<()> {
        let host = host.as_ref();
        fs::metadata(host).map_err(|e| Error::io("find", host, e))?;
        self.insert(
            guest.into(),
            Entry {
                content: Content::HostFile(host.to_path_buf()),
                mode,
            },
        );
        Ok(())
    }

    /// Adds an executable under [`BINARY_DIR`] with the name `name`; returns its guest path.
    pub fn add_binary(&mut self, host: impl AsRef<Path>, name: &str) -> Result<PathBuf> {
        let guest = Path::new(BINARY_DIR).join(name);
        self.add_host_file(host, &guest, 0o755)?;
        Ok(guest)
    }

    /// Adds a host program at its own (absolute) path: with its libraries and loader when it is
    /// dynamically linked. Returns the guest path.
    pub fn add_host_program(&mut self, host: impl AsRef<Path>) -> Result<PathBuf> {
        let host = host.as_ref();
        let absolute = std::path::absolute(host).map_err(|e| Error::io("resolve", host, e))?;
        let bytes = fs::read(&absolute).map_err(|e| Error::io("read", &absolute, e))?;
        if is_dynamic_elf(&bytes) {
            self.add_dynamic_program(&absolute)?;
        } else {
            self.add_host_file(&absolute, &absolute, 0o755)?;
        }
        Ok(absolute)
    }

    /// Adds a dynamically linked host program at its own path, with every library `ldd` lists and
    /// the dynamic loader, all at their host paths (symlinks followed). Used for Debian's `perf`.
    pub fn add_dynamic_program(&mut self, host: impl AsRef<Path>) -> Result<()> {
        let host = host.as_ref();
        let mut ldd = Command::new("ldd");
        ldd.arg(host);
        let listing = crate::util::output(&mut ldd)?;
        if let Some(line) = listing.lines().find(|line| line.contains("not found")) {
            return Err(Error::Failed(format!(
                "{}: a library is missing on the host: {}",
                host.display(),
                line.trim()
            )));
        }
        self.add_host_file(host, host, 0o755)?;
        for library in libraries_in_ldd_output(&listing) {
            self.add_host_file(&library, &library, 0o755)?;
        }
        Ok(())
    }

    /// Writes the archive to `path`; returns its size in bytes.
    pub fn write(&self, path: &Path) -> Result<u64> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        let file = fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
        let mut writer = CpioWriter::new(BufWriter::with_capacity(1 << 20, file));
        self.write_entries(&mut writer)?;
        Ok(writer.offset)
    }

    fn write_entries<W: Write>(&self, writer: &mut CpioWriter<W>) -> Result<()> {
        let io = |e| Error::io("write", "the initramfs", e);
        for (path, entry) in &self.entries {
            let name = archive_name(path);
            match &entry.content {
                Content::Dir => writer
                    .entry(&name, 0o040_000 | entry.mode, &[])
                    .map_err(io)?,
                Content::CharDevice(major, minor) => writer
                    .device(&name, 0o020_000 | entry.mode, *major, *minor)
                    .map_err(io)?,
                Content::Bytes(bytes) => writer
                    .entry(&name, 0o100_000 | entry.mode, bytes)
                    .map_err(io)?,
                Content::Symlink(target) => writer
                    .entry(&name, 0o120_000 | entry.mode, target.as_bytes())
                    .map_err(io)?,
                Content::HostFile(host) => {
                    let bytes = fs::read(host).map_err(|e| Error::io("read", host, e))?;
                    writer
                        .entry(&name, 0o100_000 | entry.mode, &bytes)
                        .map_err(io)?;
                }
            }
        }
        writer.trailer().map_err(io)
    }
}

/// A static busybox for a guest of `arch`: the host's `/bin/busybox` (`busybox-static`) for the
/// host's architecture; else Debian's `busybox-static` package of that architecture, downloaded
/// once with `apt-get download busybox-static:<arch>` (needs `dpkg --add-architecture <arch>`
/// and `apt-get update`, which `.ci/install-deps` does) and unpacked into the VM cache.
pub fn guest_busybox(arch: Arch) -> Result<PathBuf> {
    if arch == Arch::host() {
        if !Path::new(BUSYBOX).is_file() {
            return Err(Error::Failed(format!(
                "{BUSYBOX} not found: install it with `apt-get install busybox-static`"
            )));
        }
        return Ok(PathBuf::from(BUSYBOX));
    }
    let dir = super::kernel::cache_root()?.join(format!("busybox-{}", arch.debian_arch()));
    let busybox = dir.join("bin").join("busybox");
    if busybox.is_file() {
        return Ok(busybox);
    }
    let package = format!("busybox-static:{}", arch.debian_arch());
    let work = dir.with_extension(format!("download.{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| Error::io("create", &work, e))?;
    eprintln!("vm: fetching Debian's {package} for the {arch} guest (once)");
    let mut download = Command::new("apt-get");
    download
        .args(["download", "-q", &package])
        .current_dir(&work);
    crate::util::output(&mut download).map_err(|e| {
        Error::Failed(format!(
            "{e}\n  the {arch} guest needs Debian's {package}: run .ci/install-deps as root \
             (dpkg --add-architecture {}; apt-get update)",
            arch.debian_arch()
        ))
    })?;
    let deb = fs::read_dir(&work)
        .map_err(|e| Error::io("list", &work, e))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .ok_or_else(|| Error::Failed(format!("apt-get download {package} left no .deb")))?;
    let unpacked = work.join("root");
    let mut extract = Command::new("dpkg-deb");
    extract.arg("-x").arg(&deb).arg(&unpacked);
    crate::util::run(&mut extract)?;
    let program = unpacked.join("bin").join("busybox");
    let bytes = fs::read(&program).map_err(|e| Error::io("read", &program, e))?;
    if elf_machine(&bytes) != Some(arch.elf_machine()) || is_dynamic_elf(&bytes) {
        return Err(Error::Failed(format!(
            "{} from {package} is not a static {arch} program",
            program.display()
        )));
    }
    fs::create_dir_all(busybox.parent().expect("has a parent"))
        .map_err(|e| Error::io("create", &dir, e))?;
    // Renamed into place last, so that an interrupted fetch never looks finished.
    let partial = busybox.with_extension("partial");
    fs::copy(&program, &partial).map_err(|e| Error::io("copy to", &partial, e))?;
    fs::rename(&partial, &busybox).map_err(|e| Error::io("rename into place", &busybox, e))?;
    let _ = fs::remove_dir_all(&work);
    Ok(busybox)
}

/// The archive name of a guest path: relative, `.` for the root.
fn archive_name(path: &Path) -> String {
    let parts: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy()),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// The absolute library paths in `ldd` output, including the loader; skips the vDSO.
pub fn libraries_in_ldd_output(listing: &str) -> Vec<PathBuf> {
    listing
        .lines()
        .filter_map(|line| {
            // "libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)" or "linux-vdso.so.1 (0x...)".
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Writes the `newc` cpio format (the one the kernel unpacks): a 110-byte ASCII header per
/// entry, the NUL-terminated name, then the data, each padded to 4 bytes.
struct CpioWriter<W: Write> {
    out: W,
    offset: u64,
    next_inode: u32,
}

impl<W: Write> CpioWriter<W> {
    fn new(out: W) -> Self {
        CpioWriter {
            out,
            offset: 0,
            next_inode: 1,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> std::io::Result<()> {
        let padding = (4 - (self.offset % 4) as usize) % 4;
        self.put(&[0; 3][..padding])
    }

    /// One entry owned by root (uid 0, gid 0), mtime 0, with `mode` including the file type bits.
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        self.entry_with_rdev(name, mode, data, (0, 0))
    }

    /// A device node entry.
    fn device(&mut self, name: &str, mode: u32, major: u32, minor: u32) -> std::io::Result<()> {
        self.entry_with_rdev(name, mode, &[], (major, minor))
    }

    fn entry_with_rdev(
        &mut self,
        name: &str,
        mode: u32,
        data: &[u8],
        (rdev_major, rdev_minor): (u32, u32),
    ) -> std::io::Result<()> {
        let inode = self.next_inode;
        self.next_inode += 1;
        let links = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        let size = u32::try_from(data.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "file over 4 GiB")
        })?;
        let name_size = name.len() as u32 + 1;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize, check
        let header = format!(
            "070701{inode:08x}{mode:08x}{:08x}{:08x}{links:08x}{:08x}{size:08x}{:08x}{:08x}\
             {rdev_major:08x}{rdev_minor:08x}{name_size:08x}{:08x}",
            0, 0, 0, 0, 0, 0
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn trailer(&mut self) -> std::io::Result<()> {
        self.entry("TRAILER!!!", 0, &[])?;
        self.out.flush()
    }
}

/// True for an ELF file with a program interpreter (dynamically linked).
pub fn is_dynamic_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    // Only 64-bit little-endian ELF (what we build and boot).
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        bytes
            .get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_and_static_host_binaries_are_told_apart() {
        // The host's own tools are dynamic; busybox-static is static.
        let dynamic = std::fs::read("/bin/ls").unwrap();
        assert!(is_dynamic_elf(&dynamic));
        if let Ok(busybox) = std::fs::read("/bin/busybox") {
            assert!(!is_dynamic_elf(&busybox));
        }
        assert!(!is_dynamic_elf(b"#!/bin/sh\n"));
    }

    fn cpio_bytes(initramfs: &Initramfs) -> Vec<u8> {
        let mut writer = CpioWriter::new(Vec::new());
        initramfs.write_entries(&mut writer).unwrap();
        writer.out
    }

    #[test]
    fn cpio_entries_are_aligned_and_end_with_trailer() {
        let mut initramfs = Initramfs::empty();
        initramfs.add_file("/etc/x", "abcde", 0o644);
        let bytes = cpio_bytes(&initramfs);
        assert_eq!(bytes.len() % 4, 0);
        let text = String::from_utf8_lossy(&bytes);
        // Root, /etc, /etc/x, trailer.
        assert_eq!(text.matches("070701").count(), 4);
        assert!(text.contains("etc/x\0"));
        assert!(text.contains("abcde"));
        assert!(text.contains("TRAILER!!!\0"));
    }

    #[test]
    fn cpio_header_carries_mode_size_and_root_owner() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.entry("a", 0o100_755, b"xyz").unwrap();
        let header = std::str::from_utf8(&writer.out[..110]).unwrap();
        let field = |i: usize| u32::from_str_radix(&header[6 + 8 * i..14 + 8 * i], 16).unwrap();
        assert_eq!(field(1), 0o100_755); // mode
        assert_eq!(field(2), 0); // uid
        assert_eq!(field(3), 0); // gid
        assert_eq!(field(6), 3); // filesize
        assert_eq!(field(11), 2); // namesize with NUL
        assert_eq!(&writer.out[110..112], b"a\0");
        assert_eq!(&writer.out[112..115], b"xyz");
    }

    #[test]
    fn parents_are_created_and_modes_kept() {
        let mut initramfs = Initramfs::empty();
        initramfs.add_dir("/tmp", 0o1777);
        initramfs.add_file("/a/b/c", "x", 0o600);
        assert_eq!(initramfs.entries[Path::new("/tmp")].mode, 0o1777);
        assert_eq!(initramfs.entries[Path::new("/a/b")].mode, 0o755);
        assert_eq!(initramfs.entries[Path::new("/")].mode, 0o755);
        assert_eq!(archive_name(Path::new("/a/b/c")), "a/b/c");
        assert_eq!(archive_name(Path::new("/")), ".");
    }

    #[test]
    fn ldd_output_gives_libraries_and_loader_but_not_vdso() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n\
            \tlibfoo.so => not found\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            libraries_in_ldd_output(listing),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libm.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn users_and_groups_match_the_test_contract() {
        assert!(PASSWD.contains("app:x:1000:1000:"));
        assert!(PASSWD.contains("tracer:x:1001:1001:"));
        assert!(GROUP.contains("tracers:x:1001:tracer"));
        // `app` must not be in any supplementary group.
        assert!(!GROUP.lines().any(|g| g
            .rsplit(':')
            .next()
            .unwrap()
            .split(',')
            .any(|m| m == "app")));
    }
}
