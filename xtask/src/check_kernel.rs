//! `cargo xtask check-kernel`: can an app export metrics to user_events on this machine, as this
//! user? Reads only files (`/proc`, `/sys`, `/boot`); the verdict is the exit code.
//!
//! Facts are gathered first ([`Facts::gather`]) and judged separately ([`judge`]), so the rules
//! are tested without the machine.

use crate::error::Result;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The usual tracefs mount point.
const TRACEFS_DEFAULT: &str = "/sys/kernel/tracing";

/// Capability bits in `/proc/self/status` (see `linux/capability.h`).
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;

/// What this user can do with `user_events_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataFile {
    /// Opened for writing: apps can register and write events.
    Writable,
    /// The file does not exist under the tracefs root.
    Missing,
    /// It exists (or cannot be seen) but this user may not open it.
    PermissionDenied,
    /// Some other error, with its text.
    Error(String),
    /// Not looked for: no tracefs.
    NotChecked,
}

/// `CONFIG_USER_EVENTS` as the kernel's config says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigValue {
    /// `=y`.
    Enabled,
    /// `is not set`, or absent (kernels before 6.4 lack the option).
    NotSet,
    /// No readable config (no `/proc/config.gz`, no `/boot/config-<release>`).
    Unknown,
}

/// Everything the verdict depends on.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `uname -r`.
    pub release: Option<String>,
    /// The tracefs root, if mounted.
    pub tracefs: Option<PathBuf>,
    /// Access to `<tracefs>/user_events_data`.
    pub data_file: DataFile,
    /// `CONFIG_USER_EVENTS` and where it was read.
    pub config: (ConfigValue, Option<String>),
    /// `/proc/sys/kernel/perf_event_paranoid`.
    pub perf_event_paranoid: Option<i32>,
    /// Effective uid.
    pub euid: Option<u32>,
    /// Effective capabilities bitmask.
    pub cap_effective: Option<u64>,
}

impl Facts {
    /// Reads the facts of the running machine and user.
    pub fn gather() -> Facts {
        let release = read_trimmed("/proc/sys/kernel/osrelease");
        let tracefs = find_tracefs();
        let data_file = match &tracefs {
            Some(root) => probe_data_file(&root.join("user_events_data")),
            None => DataFile::NotChecked,
        };
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let status_field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
                .map(str::to_string)
        };
        Facts {
            config: read_config(release.as_deref()),
            release,
            tracefs,
            data_file,
            perf_event_paranoid: read_trimmed("/proc/sys/kernel/perf_event_paranoid")
                .and_then(|v| v.parse().ok()),
            // "Uid:\treal\teffective\tsaved\tfs"
            euid: status_field("Uid:")
                .and_then(|v| v.split_whitespace().nth(1).and_then(|u| u.parse().ok())),
            cap_effective: status_field("CapEff:").and_then(|v| u64::from_str_radix(&v, 16).ok()),
        }
    }

    fn has_capability(&self, bit: u32) -> bool {
        self.cap_effective
            .is_some_and(|caps| caps & (1 << bit) != 0)
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// `/sys/kernel/tracing` if tracefs is mounted there, else any tracefs mount, else debugfs's
/// `tracing` directory (older setups), as listed in `/proc/mounts`.
fn find_tracefs() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = Vec::new();
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (_, Some(dir), Some(kind)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        match kind {
            "tracefs" => candidates.push(PathBuf::from(dir)),
            "debugfs" => candidates.push(Path::new(dir).join("tracing")),
            _ => {}
        }
    }
    candidates.sort_by_key(|dir| dir != Path::new(TRACEFS_DEFAULT));
    candidates.into_iter().next()
}

/// Opens `user_events_data` for writing (which registers nothing) to see if this user may.
fn probe_data_file(path: &Path) -> DataFile {
    match fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => DataFile::Writable,
        Err(e) if e.kind() == ErrorKind::NotFound => DataFile::Missing,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => DataFile::PermissionDenied,
        Err(e) => DataFile::Error(e.to_string()),
    }
}

/// `CONFIG_USER_EVENTS` from `/proc/config.gz` (via `gzip -dc`), else `/boot/config-<release>`.
fn read_config(release: Option<&str>) -> (ConfigValue, Option<String>) {
    if Path::new("/proc/config.gz").exists() {
        if let Ok(out) = Command::new("gzip")
            .args(["-dc", "/proc/config.gz"])
            .output()
        {
            if out.status.success() {
                let text = String::from_utf8_lossy(&out.stdout);
                return (config_value(&text), Some("/proc/config.gz".into()));
            }
        }
    }
    if let Some(release) = release {
        let path = format!("/boot/config-{release}");
        if let Ok(text) = fs::read_to_string(&path) {
            return (config_value(&text), Some(path));
        }
    }
    (ConfigValue::Unknown, None)
}

/// The value of `CONFIG_USER_EVENTS` in a kernel config text.
pub fn config_value(config: &str) -> ConfigValue {
    if config
        .lines()
        .any(|line| line.trim() == "CONFIG_USER_EVENTS=y")
    {
        ConfigValue::Enabled
    } else {
        ConfigValue::NotSet
    }
}

/// `(major, minor)` of a release string like `6.12.117-amd64`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Ok,
    /// Exporting does not work here.
    Fail,
    /// Exporting works, but something (e.g. reading events back) needs attention.
    Note,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub found: String,
    /// What to do about it (empty when fine).
    pub remedy: String,
}

fn check(name: &'static str, status: Status, found: String, remedy: &str) -> Check {
    Check {
        name,
        status,
        found,
        remedy: remedy.to_string(),
    }
}

const VM_HINT: &str = "the project's kernel tests run in a VM: `cargo xtask e2e` \
     (or `cargo xtask vm run <static-binary>` for one program)";

/// Judges the facts: one [`Check`] per question.
pub fn judge(facts: &Facts) -> Vec<Check> {
    let mut checks = Vec::new();
    let release = facts.release.clone().unwrap_or_else(|| "unknown".into());
    let new_enough = facts
        .release
        .as_deref()
        .and_then(kernel_version)
        .is_some_and(|version| version >= (6, 4));
    checks.push(if new_enough {
        check(
            "kernel version",
            Status::Ok,
            format!("{release} (6.4+ needed)"),
            "",
        )
    } else {
        check(
            "kernel version",
            Status::Fail,
            format!("{release}: user_events (current ABI) needs Linux 6.4 or newer"),
            &format!("boot a 6.4+ kernel with CONFIG_USER_EVENTS=y; {VM_HINT}"),
        )
    });

    let (config, source) = &facts.config;
    let source = source.clone().unwrap_or_default();
    checks.push(match config {
        ConfigValue::Enabled => check(
            "CONFIG_USER_EVENTS",
            Status::Ok,
            format!("=y (from {source})"),
            "",
        ),
        ConfigValue::NotSet => check(
            "CONFIG_USER_EVENTS",
            Status::Fail,
            format!("not set in {source}: this kernel lacks user_events"),
            &format!(
                "use a kernel built with CONFIG_USER_EVENTS=y (Debian's own kernels lack it); \
                 {VM_HINT}"
            ),
        ),
        ConfigValue::Unknown => check(
            "CONFIG_USER_EVENTS",
            Status::Note,
            "unknown (no /proc/config.gz or /boot/config-<release>)".into(),
            "the user_events_data check below decides",
        ),
    });

    checks.push(match &facts.tracefs {
        Some(root) => check(
            "tracefs",
            Status::Ok,
            format!("mounted at {}", root.display()),
            "",
        ),
        None => check(
            "tracefs",
            Status::Fail,
            "not mounted".into(),
            "as root: mount -t tracefs nodev /sys/kernel/tracing",
        ),
    });

    let data_path = facts.tracefs.as_ref().map_or_else(
        || format!("{TRACEFS_DEFAULT}/user_events_data"),
        |root| root.join("user_events_data").display().to_string(),
    );
    let lacks_user_events = *config == ConfigValue::NotSet || !new_enough;
    checks.push(match &facts.data_file {
        DataFile::Writable => check(
            "user_events_data",
            Status::Ok,
            format!("{data_path} is writable by this user"),
            "",
        ),
        DataFile::Missing => check(
            "user_events_data",
            Status::Fail,
            format!("{data_path} does not exist: the kernel has no user_events"),
            &format!("use a kernel with CONFIG_USER_EVENTS=y; {VM_HINT}"),
        ),
        DataFile::PermissionDenied => check(
            "user_events_data",
            Status::Fail,
            format!("{data_path}: permission denied for this user"),
            "run as root, or grant a group (as root): groupadd -f tracers; \
             chgrp tracers /sys/kernel/tracing /sys/kernel/tracing/user_events_data; \
             chmod g+x /sys/kernel/tracing; chmod g+rw /sys/kernel/tracing/user_events_data; \
             then add the app's user to `tracers`",
        ),
        DataFile::Error(error) => check(
            "user_events_data",
            Status::Fail,
            format!("{data_path}: {error}"),
            "check the tracefs mount",
        ),
        DataFile::NotChecked if lacks_user_events => check(
            "user_events_data",
            Status::Fail,
            "not present (no tracefs, and the kernel lacks user_events anyway)".into(),
            VM_HINT,
        ),
        DataFile::NotChecked => check(
            "user_events_data",
            Status::Fail,
            "not checked: tracefs is not mounted".into(),
            "mount tracefs (see above), then run this again",
        ),
    });

    let paranoid = facts.perf_event_paranoid;
    checks.push(check(
        "perf_event_paranoid",
        Status::Ok,
        paranoid.map_or_else(|| "unknown".into(), |p| p.to_string()),
        "",
    ));
    let root = facts.euid == Some(0);
    let capable = facts.has_capability(CAP_PERFMON) || facts.has_capability(CAP_SYS_ADMIN);
    let reader_ok = root || capable || paranoid.is_some_and(|p| p <= -1);
    let who = if root {
        "yes (root)".to_string()
    } else if capable {
        "yes (CAP_PERFMON or CAP_SYS_ADMIN)".to_string()
    } else if reader_ok {
        "yes (perf_event_paranoid <= -1)".to_string()
    } else {
        format!("no (not root, no CAP_PERFMON, perf_event_paranoid {paranoid:?} > -1)")
    };
    checks.push(if reader_ok {
        check("read raw samples", Status::Ok, who, "")
    } else {
        check(
            "read raw samples",
            Status::Note,
            who,
            "only listeners need this, not apps: run perf/ue-metrics-decode as root, give the \
             collector CAP_PERFMON (setcap cap_perfmon+ep <binary>), or set \
             sysctl kernel.perf_event_paranoid=-1",
        )
    });
    checks
}

/// An app could export here when no check failed.
pub fn can_export(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

/// Renders the report.
pub fn report(checks: &[Check]) -> String {
    let mut text = String::from("check-kernel: can an app export metrics to user_events here?\n");
    for c in checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Fail => "FAIL",
            Status::Note => "note",
        };
        text.push_str(&format!("  [{mark}] {:<20} {}\n", c.name, c.found));
        if !c.remedy.is_empty() && c.status != Status::Ok {
            text.push_str(&format!("         {:<20} -> {}\n", "", c.remedy));
        }
    }
    if can_export(checks) {
        text.push_str("verdict: yes, apps can export to user_events here\n");
    } else {
        text.push_str(&format!(
            "verdict: NO, apps cannot export to user_events here; {VM_HINT}\n"
        ));
    }
    text
}

/// `cargo xtask check-kernel`: prints the report; exit code 0 only when an app could export.
pub fn check_kernel() -> Result<i32> {
    let checks = judge(&Facts::gather());
    print!("{}", report(&checks));
    Ok(if can_export(&checks) { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Facts {
        Facts {
            release: Some("6.12.117".into()),
            tracefs: Some(PathBuf::from(TRACEFS_DEFAULT)),
            data_file: DataFile::Writable,
            config: (ConfigValue::Enabled, Some("/proc/config.gz".into())),
            perf_event_paranoid: Some(2),
            euid: Some(0),
            cap_effective: Some(u64::MAX >> 23),
        }
    }

    fn failed(checks: &[Check]) -> Vec<&'static str> {
        checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn user_events_kernel_as_root_can_export() {
        let checks = judge(&good());
        assert!(can_export(&checks), "{}", report(&checks));
        assert!(report(&checks).contains("verdict: yes"));
    }

    #[test]
    fn kernel_without_user_events_fails_and_points_to_the_vm() {
        let facts = Facts {
            release: Some("6.18.44".into()),
            tracefs: None,
            data_file: DataFile::NotChecked,
            config: (ConfigValue::NotSet, Some("/proc/config.gz".into())),
            ..good()
        };
        let checks = judge(&facts);
        assert_eq!(
            failed(&checks),
            ["CONFIG_USER_EVENTS", "tracefs", "user_events_data"]
        );
        let text = report(&checks);
        assert!(text.contains("this kernel lacks user_events"));
        assert!(text.contains("cargo xtask e2e"));
        assert!(text.contains("verdict: NO"));
    }

    #[test]
    fn old_kernel_fails_on_version() {
        let facts = Facts {
            release: Some("6.1.0-28-amd64".into()),
            ..good()
        };
        assert_eq!(failed(&judge(&facts)), ["kernel version"]);
    }

    #[test]
    fn non_root_without_access_gets_the_group_remedy() {
        let facts = Facts {
            data_file: DataFile::PermissionDenied,
            euid: Some(1000),
            cap_effective: Some(0),
            ..good()
        };
        let checks = judge(&facts);
        assert_eq!(failed(&checks), ["user_events_data"]);
        assert!(report(&checks).contains("chgrp tracers"));
        let reader = checks
            .iter()
            .find(|c| c.name == "read raw samples")
            .unwrap();
        assert_eq!(reader.status, Status::Note);
    }

    #[test]
    fn paranoid_minus_one_lets_a_plain_user_read_samples() {
        let facts = Facts {
            euid: Some(1001),
            cap_effective: Some(0),
            perf_event_paranoid: Some(-1),
            ..good()
        };
        let checks = judge(&facts);
        let reader = checks
            .iter()
            .find(|c| c.name == "read raw samples")
            .unwrap();
        assert_eq!(reader.status, Status::Ok);
        assert!(can_export(&checks));
    }

    #[test]
    fn unknown_config_is_only_a_note() {
        let facts = Facts {
            config: (ConfigValue::Unknown, None),
            ..good()
        };
        assert!(can_export(&judge(&facts)));
    }

    #[test]
    fn versions_and_config_values_parse() {
        assert_eq!(kernel_version("6.12.117-amd64"), Some((6, 12)));
        assert_eq!(kernel_version("6.4"), Some((6, 4)));
        assert_eq!(kernel_version("garbage"), None);
        assert_eq!(
            config_value("A=1\nCONFIG_USER_EVENTS=y\n"),
            ConfigValue::Enabled
        );
        assert_eq!(
            config_value("# CONFIG_USER_EVENTS is not set\n"),
            ConfigValue::NotSet
        );
    }
}
