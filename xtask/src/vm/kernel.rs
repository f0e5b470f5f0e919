//! Building (once) and caching a small kernel with `CONFIG_USER_EVENTS=y`.
//!
//! Source: Debian's `linux-source-6.12` tarball under `/usr/src`. Recipe: `make tinyconfig`, merge
//! [`FRAGMENT`], `make olddefconfig`, check that every fragment line survived (Kconfig silently
//! drops options whose dependencies are missing), `make bzImage`. The result lives in
//! `$XDG_CACHE_HOME/ue-metrics/vm/<key>/` (else `~/.cache/...`), where the key hashes everything
//! that changes the kernel: the tarball's name, size and mtime, the fragment, and `gcc --version`.
//!
//! Other architectures ([`Arch`]) are cross-built from the same tarball with Debian's cross
//! compilers (`make ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-`): their fragment is
//! [`FRAGMENT`] without its x86-only lines ([`X86_ONLY_OPTIONS`]) plus the architecture's own
//! file (`fragment-<arch>.config`), and their cache key also hashes the architecture. The
//! x86_64 key is computed exactly as before architectures existed, so its cached kernel stays.

use super::arch::Arch;
use crate::error::{Error, Result};
use crate::util::{describe, spawn_error};
use std::fs;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The kernel config fragment merged over `tinyconfig` (x86_64; the common base of the others).
pub const FRAGMENT: &str = include_str!("fragment.config");

/// The lines of [`FRAGMENT`] other architectures leave out: x86 hardware and paravirt options,
/// and `CONFIG_KERNEL_GZIP` (arm64 boots an uncompressed `Image`; s390x sets it again itself).
pub const X86_ONLY_OPTIONS: [&str; 10] = [
    "CONFIG_SERIAL_8250",
    "CONFIG_SERIAL_8250_CONSOLE",
    "CONFIG_HYPERVISOR_GUEST",
    "CONFIG_PARAVIRT",
    "CONFIG_KVM_GUEST",
    "CONFIG_PVH",
    "CONFIG_ACPI",
    "CONFIG_IA32_EMULATION",
    "CONFIG_COMPAT_32BIT_TIME",
    "CONFIG_KERNEL_GZIP",
];

/// The config fragment for `arch`: [`FRAGMENT`] itself on x86_64; elsewhere its lines without
/// [`X86_ONLY_OPTIONS`] (and the comments about them) followed by `fragment-<arch>.config`.
pub fn fragment(arch: Arch) -> String {
    let own = match arch {
        Arch::X86_64 => return FRAGMENT.to_string(),
        Arch::Aarch64 => include_str!("fragment-aarch64.config"),
        Arch::S390x => include_str!("fragment-s390x.config"),
    };
    let mut text = format!("# fragment.config without its x86-only lines, for {arch}\n");
    for line in FRAGMENT.lines() {
        let option = line.split('=').next().unwrap_or_default();
        if line.starts_with("CONFIG_") && !X86_ONLY_OPTIONS.contains(&option) {
            text.push_str(line);
            text.push('\n');
        }
    }
    text.push_str(own);
    text
}

/// About how many kbuild steps (`CC`, `LD`, ...) the image build prints for 6.12 with these
/// fragments, for a rough percentage while building.
fn expected_steps(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => 1550,
        Arch::Aarch64 => 1250,
        Arch::S390x => 1300,
    }
}

/// Bump to rebuild every cached kernel when the recipe (not the inputs) changes.
const RECIPE_VERSION: &str = "1";

/// Where Debian's `linux-source-*` packages put their tarballs.
const SOURCE_DIR: &str = "/usr/src";

/// A built kernel in the cache.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The bootable image.
    pub bzimage: PathBuf,
    /// The `.config` it was built from.
    pub config: PathBuf,
}

/// Returns the cached kernel of the host's architecture, building it first if needed.
pub fn ensure_kernel() -> Result<Kernel> {
    ensure_kernel_for(Arch::host())
}

/// Returns the cached kernel for `arch`, building it first if needed. `$UE_VM_KERNEL=<image>`
/// (for the host's architecture) or `$UE_VM_KERNEL_<ARCH>` (e.g. `UE_VM_KERNEL_S390X`) uses that
/// image instead (its `.config` is expected next to it as `config`).
pub fn ensure_kernel_for(arch: Arch) -> Result<Kernel> {
    let own_variable = format!("UE_VM_KERNEL_{}", arch.name().to_ascii_uppercase());
    let given = std::env::var_os(&own_variable)
        .or_else(|| (arch == Arch::host()).then(|| std::env::var_os("UE_VM_KERNEL"))?)
        .filter(|v| !v.is_empty());
    if let Some(image) = given {
        let bzimage = PathBuf::from(image);
        if !bzimage.is_file() {
            return Err(Error::Failed(format!(
                "UE_VM_KERNEL={} is not a file",
                bzimage.display()
            )));
        }
        let config = bzimage.with_file_name("config");
        return Ok(Kernel { bzimage, config });
    }
    let source = find_source()?;
    let key = cache_key(&source, arch)?;
    let dir = cache_root()?.join(&key);
    let kernel = Kernel {
        bzimage: dir.join(image_file_name(arch)),
        config: dir.join("config"),
    };
    if kernel.bzimage.is_file() {
        return Ok(kernel);
    }
    let _lock = BuildLock::acquire(&cache_root()?.join(format!("{key}.lock")))?;
    // Another process may have finished the build while we waited for the lock.
    if kernel.bzimage.is_file() {
        return Ok(kernel);
    }
    build(
        &source,
        arch,
        &dir,
        &cache_root()?.join(format!("{key}.build")),
    )?;
    Ok(kernel)
}

/// The image's file name in the cache: the name kbuild gives it (`bzImage`; arm64's
/// uncompressed `Image`).
fn image_file_name(arch: Arch) -> &'static str {
    let (_, built) = arch.kernel_image();
    built.rsplit('/').next().unwrap_or(built)
}

/// The kernel source tarball: `$UE_VM_KERNEL_SOURCE`, else the newest
/// `/usr/src/linux-source-6.*.tar.xz`.
fn find_source() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("UE_VM_KERNEL_SOURCE") {
        return Ok(PathBuf::from(path));
    }
    let entries =
        fs::read_dir(SOURCE_DIR).map_err(|source| Error::io("list", SOURCE_DIR, source))?;
    let mut tarballs: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let version = name
                .strip_prefix("linux-source-")?
                .strip_suffix(".tar.xz")?;
            let numbers: Option<Vec<u32>> = version.split('.').map(|n| n.parse().ok()).collect();
            // user_events with the current ABI needs 6.4 or newer.
            let numbers = numbers.filter(|n| n.as_slice() >= [6, 4].as_slice())?;
            Some((numbers, path))
        })
        .collect();
    tarballs.sort();
    tarballs.pop().map(|(_, path)| path).ok_or_else(|| {
        Error::Failed(format!(
            "no kernel source tarball (linux-source-6.4 or newer) in {SOURCE_DIR}\n  \
             install it: apt-get install linux-source-6.12 (or set UE_VM_KERNEL_SOURCE=<tar.xz>)"
        ))
    })
}

/// `$XDG_CACHE_HOME/ue-metrics/vm`, else `$HOME/.cache/ue-metrics/vm`.
pub fn cache_root() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => {
                return Err(Error::Failed(
                    "neither XDG_CACHE_HOME nor HOME is set: cannot place the kernel cache".into(),
                ))
            }
        },
    };
    Ok(base.join("ue-metrics").join("vm"))
}

/// Hashes everything that changes the built kernel into a short directory name. For x86_64 the
/// inputs (and so the key) are exactly those from before other architectures existed; the others
/// add their name, and their fragment and cross compiler stand where x86_64's are.
fn cache_key(source: &Path, arch: Arch) -> Result<String> {
    let meta = fs::metadata(source).map_err(|e| Error::io("stat", source, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut gcc = Command::new(arch.gcc());
    gcc.arg("--version");
    let compiler = crate::util::output(&mut gcc).map_err(|e| missing_compiler(arch, e))?;
    let compiler = compiler.lines().next().unwrap_or_default();
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fragment = fragment(arch);
    let (size, mtime) = (meta.len().to_string(), mtime.to_string());
    let mut hash = Fnv1a::default();
    let mut parts = vec![RECIPE_VERSION, &name, &size, &mtime, &fragment, compiler];
    if arch != Arch::X86_64 {
        parts.push(arch.name());
    }
    for part in parts {
        hash.write(part.as_bytes());
        hash.write(&[0]);
    }
    let version = name
        .trim_start_matches("linux-source-")
        .trim_end_matches(".tar.xz");
    Ok(match arch {
        Arch::X86_64 => format!("linux-{version}-{:016x}", hash.0),
        _ => format!("linux-{version}-{arch}-{:016x}", hash.0),
    })
}

/// Turns "cannot start aarch64-linux-gnu-gcc" into the packages to install.
fn missing_compiler(arch: Arch, error: Error) -> Error {
    match error {
        Error::Spawn { .. } => Error::Failed(format!(
            "{error}\n  the {arch} guest needs: apt-get install {} (.ci/install-deps installs it)",
            arch.packages()
        )),
        other => other,
    }
}

/// FNV-1a, 64 bit: stable across Rust versions (unlike `DefaultHasher`), enough for a cache key.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The programs the kernel build needs, and the Debian package of each.
const BUILD_TOOLS: [(&str, &str); 8] = [
    ("make", "make"),
    ("gcc", "gcc"),
    ("tar", "tar"),
    ("xz", "xz-utils"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("perl", "perl"),
];

/// Fails early (before the minute of unpacking) when a build tool or libelf's header is missing.
fn check_build_tools() -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = |program: &str| std::env::split_paths(&path).any(|d| d.join(program).is_file());
    let mut missing: Vec<&str> = BUILD_TOOLS
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| *package)
        .collect();
    // objtool (x86_64) includes gelf.h.
    if !Path::new("/usr/include/gelf.h").exists() {
        missing.push("libelf-dev");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "the kernel build needs more packages: apt-get install {}",
            missing.join(" ")
        )))
    }
}

/// Unpacks, configures and builds the kernel in `work`, then copies the results into `dir`.
fn build(source: &Path, arch: Arch, dir: &Path, work: &Path) -> Result<()> {
    check_build_tools()?;
    let started = Instant::now();
    if work.exists() {
        // Left over from an interrupted build: start clean.
        fs::remove_dir_all(work).map_err(|e| Error::io("remove", work, e))?;
    }
    let src = work.join("src");
    let out = work.join("out");
    for d in [&src, &out] {
        fs::create_dir_all(d).map_err(|e| Error::io("create", d, e))?;
    }
    let log_path = work.join("build.log");
    let mut log = Log::create(&log_path)?;
    eprintln!(
        "vm: building a user_events kernel for {arch} from {} (once; a few minutes)",
        source.display()
    );
    eprintln!("vm: work dir {}", work.display());

    let mut tar = Command::new("tar");
    tar.arg("-xf")
        .arg(source)
        .arg("--strip-components=1")
        .arg("-C")
        .arg(&src);
    log.step(&mut tar, "unpacking the source")?;

    let cross = |command: &mut Command| {
        if let Some(prefix) = arch.cross_prefix() {
            command
                .env("ARCH", arch.kernel_arch())
                .env("CROSS_COMPILE", prefix);
        }
    };
    let make = |args: &[&str]| {
        let mut command = Command::new("make");
        command
            .arg("-C")
            .arg(&src)
            .arg(format!("O={}", out.display()));
        command.args(args);
        cross(&mut command);
        command
    };
    log.step(&mut make(&["tinyconfig"]), "make tinyconfig")?;
    let fragment_text = fragment(arch);
    let fragment_path = work.join("fragment.config");
    fs::write(&fragment_path, &fragment_text).map_err(|e| Error::io("write", &fragment_path, e))?;
    let mut merge = Command::new(src.join("scripts/kconfig/merge_config.sh"));
    cross(&mut merge);
    merge
        .current_dir(&src)
        .arg("-m")
        .arg("-O")
        .arg(&out)
        .arg(out.join(".config"))
        .arg(&fragment_path);
    log.step(&mut merge, "merging the config fragment")?;
    log.step(&mut make(&["olddefconfig"]), "make olddefconfig")?;
    let config_path = out.join(".config");
    let config =
        fs::read_to_string(&config_path).map_err(|e| Error::io("read", &config_path, e))?;
    let missing = missing_options(&fragment_text, &config);
    if !missing.is_empty() {
        return Err(Error::Failed(format!(
            "kernel config: these fragment lines did not survive olddefconfig (missing \
             dependencies?):\n  {}\n  see {}",
            missing.join("\n  "),
            config_path.display()
        )));
    }

    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (target, built_image) = arch.kernel_image();
    let mut compile = make(&[&format!("-j{jobs}"), target]);
    log.compile(
        &mut compile,
        &format!("make {target}"),
        expected_steps(arch),
    )?;

    fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let image = out.join(built_image);
    let image_name = image_file_name(arch);
    let partial = dir.join(format!("{image_name}.partial"));
    // The bzImage's presence marks a finished cache entry: it comes last, renamed into place
    // so that an interrupted copy never looks finished.
    for (from, to) in [
        (&config_path, dir.join("config")),
        (&log_path, dir.join("build.log")),
        (&image, partial.clone()),
    ] {
        fs::copy(from, &to).map_err(|e| Error::io("copy to", &to, e))?;
    }
    let bzimage = dir.join(image_name);
    fs::rename(&partial, &bzimage).map_err(|e| Error::io("rename into place", &bzimage, e))?;
    // The unpacked source is 1.7 GB and the objects ~130 MB: only the image is needed.
    fs::remove_dir_all(work).map_err(|e| Error::io("remove", work, e))?;
    eprintln!(
        "vm: kernel built in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        bzimage.display()
    );
    Ok(())
}

/// The `CONFIG_` lines of `fragment` that are not in `config` exactly as written.
pub fn missing_options(fragment: &str, config: &str) -> Vec<String> {
    fragment
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("CONFIG_"))
        .filter(|line| !config.lines().any(|c| c.trim() == *line))
        .map(str::to_string)
        .collect()
}

/// The build log file plus progress display on stderr.
struct Log {
    path: PathBuf,
    file: fs::File,
}

impl Log {
    fn create(path: &Path) -> Result<Log> {
        let file = fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
        Ok(Log {
            path: path.to_path_buf(),
            file,
        })
    }

    /// A second handle on the log, to hand to a child process.
    fn handle(&self) -> Result<fs::File> {
        self.file
            .try_clone()
            .map_err(|e| Error::io("duplicate handle of", &self.path, e))
    }

    /// Runs a quick step with its output in the log, showing a spinner with the elapsed time.
    fn step(&mut self, command: &mut Command, what: &str) -> Result<()> {
        writeln!(self.file, "$ {}", describe(command))
            .map_err(|e| Error::io("write", &self.path, e))?;
        command
            .stdin(Stdio::null())
            .stdout(self.handle()?)
            .stderr(self.handle()?);
        let mut child = command.spawn().map_err(|e| spawn_error(command, e))?;
        let mut progress = Progress::new(what);
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| Error::io("wait for", command.get_program(), e))?
            {
                break status;
            }
            progress.tick("");
            std::thread::sleep(Duration::from_millis(200));
        };
        progress.finish();
        self.check(command, status)
    }

    /// Runs the compile step, counting kbuild's step lines (`CC`, `LD`, `AR`, ...) as progress
    /// against about `expected_steps`.
    fn compile(&mut self, command: &mut Command, what: &str, expected_steps: u32) -> Result<()> {
        writeln!(self.file, "$ {}", describe(command))
            .map_err(|e| Error::io("write", &self.path, e))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(self.handle()?);
        let mut child = command.spawn().map_err(|e| spawn_error(command, e))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut progress = Progress::new(what);
        let mut steps = 0u32;
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| Error::io("read output of", "make", e))?;
            writeln!(self.file, "{line}").map_err(|e| Error::io("write", &self.path, e))?;
            let mut words = line.split_whitespace();
            if let (Some(tool), Some(target)) = (words.next(), words.next()) {
                if tool.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    steps += 1;
                    let percent = (steps * 100 / expected_steps).min(99);
                    progress.tick(&format!("~{percent}% ({steps} steps) {tool} {target}"));
                }
            }
        }
        let status = child.wait().map_err(|e| Error::io("wait for", "make", e))?;
        progress.finish();
        self.check(command, status)
    }

    /// Turns a failed step into an error that shows the log's tail.
    fn check(&self, command: &Command, status: std::process::ExitStatus) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        let text = fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        Err(Error::Failed(format!(
            "kernel build step `{}` failed ({status}); last lines of {}:\n{tail}",
            describe(command),
            self.path.display()
        )))
    }
}

/// One status line on stderr: redrawn in place on a terminal, else printed every 15 s.
struct Progress {
    what: String,
    started: Instant,
    last_print: Instant,
    frame: usize,
    terminal: bool,
}

impl Progress {
    fn new(what: &str) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        if !terminal {
            eprintln!("vm: {what} ...");
        }
        Progress {
            what: what.to_string(),
            started: Instant::now(),
            last_print: Instant::now(),
            frame: 0,
            terminal,
        }
    }

    fn tick(&mut self, detail: &str) {
        let seconds = self.started.elapsed().as_secs();
        if self.terminal {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            self.frame = (self.frame + 1) % FRAMES.len();
            let line: String = format!(
                "vm: {} {} {seconds:>4} s  {detail}",
                FRAMES[self.frame], self.what
            )
            .chars()
            .take(100)
            .collect();
            eprint!("\r\x1b[K{line}");
        } else if self.last_print.elapsed() >= Duration::from_secs(15) {
            self.last_print = Instant::now();
            eprintln!("vm: {} {seconds} s {detail}", self.what);
        }
    }

    fn finish(&self) {
        let seconds = self.started.elapsed().as_secs_f64();
        if self.terminal {
            eprint!("\r\x1b[K");
        }
        eprintln!("vm: {} done in {seconds:.0} s", self.what);
    }
}

/// Serialises kernel builds between processes: a directory created atomically, holding the pid.
struct BuildLock {
    path: PathBuf,
}

impl BuildLock {
    fn acquire(path: &Path) -> Result<BuildLock> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        let mut announced = false;
        loop {
            match fs::create_dir(path) {
                Ok(()) => {
                    let pid_file = path.join("pid");
                    fs::write(&pid_file, std::process::id().to_string())
                        .map_err(|e| Error::io("write", &pid_file, e))?;
                    return Ok(BuildLock {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(path.join("pid")).unwrap_or_default();
                    let owner = owner.trim();
                    let alive = !owner.is_empty() && Path::new("/proc").join(owner).exists();
                    let young = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age < Duration::from_secs(5));
                    if !alive && !young {
                        // The builder died: take over its lock.
                        let _ = fs::remove_dir_all(path);
                        continue;
                    }
                    if !announced {
                        eprintln!(
                            "vm: another process (pid {owner}) is building this kernel; waiting"
                        );
                        announced = true;
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
                Err(e) => return Err(Error::io("create lock", path, e)),
            }
        }
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_enables_user_events_and_perf() {
        let options = missing_options(FRAGMENT, "");
        assert!(options.contains(&"CONFIG_USER_EVENTS=y".to_string()));
        assert!(options.contains(&"CONFIG_PERF_EVENTS=y".to_string()));
        assert!(options.iter().all(|line| line.starts_with("CONFIG_")));
    }

    #[test]
    fn x86_64_keeps_its_fragment_and_others_drop_its_x86_lines() {
        assert_eq!(fragment(Arch::X86_64), FRAGMENT);
        for arch in [Arch::Aarch64, Arch::S390x] {
            let text = fragment(arch);
            for option in ["CONFIG_USER_EVENTS=y", "CONFIG_NET=y", "CONFIG_UNIX=y"] {
                assert!(text.lines().any(|l| l == option), "{arch} lacks {option}");
            }
            for line in text.lines().filter(|l| l.starts_with("CONFIG_")) {
                let option = line.split('=').next().unwrap();
                assert!(
                    !X86_ONLY_OPTIONS.contains(&option) || option == "CONFIG_KERNEL_GZIP",
                    "{arch} has {line}"
                );
            }
        }
        assert!(fragment(Arch::S390x).contains("CONFIG_SCLP_VT220_CONSOLE=y"));
        assert!(fragment(Arch::Aarch64).contains("CONFIG_SERIAL_AMBA_PL011_CONSOLE=y"));
        assert!(!fragment(Arch::Aarch64).contains("CONFIG_KERNEL_GZIP"));
    }

    #[test]
    fn missing_options_reports_only_lines_absent_from_config() {
        let fragment = "# comment\nCONFIG_A=y\nCONFIG_B=y\n\nCONFIG_C=4\n";
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=4\n";
        assert_eq!(missing_options(fragment, config), vec!["CONFIG_B=y"]);
    }

    #[test]
    fn fnv1a_matches_reference_values() {
        // Reference values of 64-bit FNV-1a.
        let mut empty = Fnv1a::default();
        empty.write(b"");
        assert_eq!(empty.0, 0xcbf2_9ce4_8422_2325);
        let mut a = Fnv1a::default();
        a.write(b"a");
        assert_eq!(a.0, 0xaf63_dc4c_8601_ec8c);
    }
}
