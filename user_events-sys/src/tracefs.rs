//! Finding tracefs and reading the per-event files under it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Errno, Error, Result};

/// The file in tracefs that registrations and writes go through.
pub(crate) const DATA_FILE_NAME: &str = "user_events_data";
/// Where tracefs is mounted on current systems.
pub const DEFAULT_TRACEFS: &str = "/sys/kernel/tracing";

/// A tracefs mount (the directory holding `user_events_data`, `trace`, `events/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracefs {
    root: PathBuf,
}

/// One line of `/proc/mounts` that can hold tracefs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracefsMount {
    /// The directory to use as the tracefs root (`<debugfs>/tracing` for debugfs).
    pub root: PathBuf,
    /// `tracefs` or `debugfs`.
    pub fs_type: String,
}

impl Tracefs {
    /// Finds tracefs: `/sys/kernel/tracing` if it holds `user_events_data` or `trace`, else
    /// every tracefs mount and then every debugfs mount (`+ /tracing`) from `/proc/mounts`.
    pub fn discover() -> Result<Tracefs> {
        if !cfg!(target_os = "linux") {
            return Err(Error::Unsupported {
                what: "tracefs discovery",
            });
        }
        let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
        Tracefs::discover_from(Path::new(DEFAULT_TRACEFS), &mounts)
    }

    /// [`Tracefs::discover`] with the default directory and the `/proc/mounts` text given
    /// (for tests and unusual layouts).
    pub fn discover_from(default_root: &Path, proc_mounts: &str) -> Result<Tracefs> {
        let candidates = std::iter::once(default_root.to_path_buf())
            .chain(parse_mounts(proc_mounts).into_iter().map(|m| m.root));
        let mut denied: Option<(PathBuf, io::Error)> = None;
        for root in candidates {
            match looks_like_tracefs(&root) {
                Ok(true) => return Ok(Tracefs { root }),
                Ok(false) => {}
                Err(err) => {
                    denied.get_or_insert((root, err));
                }
            }
        }
        match denied {
            Some((path, source)) => Err(Error::PermissionDenied { path, source }),
            None => Err(Error::TracefsNotMounted),
        }
    }

    /// A tracefs at a known directory (no checks).
    pub fn at(root: impl Into<PathBuf>) -> Tracefs {
        Tracefs { root: root.into() }
    }

    /// The tracefs directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/user_events_data`.
    pub fn data_file_path(&self) -> PathBuf {
        self.root.join(DATA_FILE_NAME)
    }

    /// `<root>/user_events_status`.
    pub fn status_file_path(&self) -> PathBuf {
        self.root.join("user_events_status")
    }

    /// `<root>/events/<group>/<name>`.
    pub fn event_dir(&self, group: &str, name: &str) -> Result<PathBuf> {
        for part in [group, name] {
            if part.is_empty() || part == "." || part == ".." || part.contains('/') {
                return Err(Error::EventNotFound {
                    name: format!("{group}/{name}"),
                    source: None,
                });
            }
        }
        Ok(self.root.join("events").join(group).join(name))
    }

    /// Whether `events/<group>/<name>` exists.
    pub fn event_exists(&self, group: &str, name: &str) -> bool {
        self.event_dir(group, name).is_ok_and(|dir| dir.exists())
    }

    /// The tracepoint id from `events/<group>/<name>/id` (perf's `config`).
    pub fn event_id(&self, group: &str, name: &str) -> Result<u64> {
        let path = self.event_dir(group, name)?.join("id");
        let text = read_event_file(&path, group, name)?;
        text.trim().parse().map_err(|_| Error::Parse {
            path,
            reason: format!("expected a decimal tracepoint id, found {:?}", text.trim()),
        })
    }

    /// The text of `events/<group>/<name>/format` (field offsets and sizes).
    pub fn event_format(&self, group: &str, name: &str) -> Result<String> {
        let path = self.event_dir(group, name)?.join("format");
        read_event_file(&path, group, name)
    }

    /// Attaches (`true`) or detaches the ftrace listener of an event by writing its `enable`
    /// file; the kernel flips every registered enable bit of the event.
    pub fn set_event_enabled(&self, group: &str, name: &str, enabled: bool) -> Result<()> {
        let path = self.event_dir(group, name)?.join("enable");
        let value = if enabled { "1" } else { "0" };
        fs::write(&path, value).map_err(|err| open_error(&path, group, name, err))
    }
}

fn looks_like_tracefs(root: &Path) -> io::Result<bool> {
    let mut denied = None;
    for marker in ["user_events_data", "trace"] {
        match fs::metadata(root.join(marker)) {
            Ok(_) => return Ok(true),
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => denied = Some(err),
            Err(_) => {}
        }
    }
    match denied {
        Some(err) => Err(err),
        None => Ok(false),
    }
}

fn read_event_file(path: &Path, group: &str, name: &str) -> Result<String> {
    fs::read_to_string(path).map_err(|err| open_error(path, group, name, err))
}

fn open_error(path: &Path, group: &str, name: &str, err: io::Error) -> Error {
    match Errno::of(&err) {
        Errno::NoEntry => Error::EventNotFound {
            name: format!("{group}/{name}"),
            source: Some(err),
        },
        _ => Error::from_open(path.to_path_buf(), err),
    }
}

/// The tracefs candidates of a `/proc/mounts` text, tracefs mounts first, then debugfs
/// mounts (as `<mount>/tracing`). Pure: no file system access.
pub fn parse_mounts(proc_mounts: &str) -> Vec<TracefsMount> {
    let mut tracefs = Vec::new();
    let mut debugfs = Vec::new();
    for line in proc_mounts.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(_source), Some(mount_point), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mount_point = PathBuf::from(unescape_mount_field(mount_point));
        match fs_type {
            "tracefs" => tracefs.push(TracefsMount {
                root: mount_point,
                fs_type: fs_type.to_owned(),
            }),
            "debugfs" => debugfs.push(TracefsMount {
                root: mount_point.join("tracing"),
                fs_type: fs_type.to_owned(),
            }),
            _ => {}
        }
    }
    tracefs.extend(debugfs);
    tracefs
}

/// `/proc/mounts` writes space, tab, newline and backslash as `\040`, `\011`, `\012`, `\134`.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() && is_octal_escape(&bytes[i + 1..i + 4]) {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_octal_escape(digits: &[u8]) -> bool {
    digits.len() == 3 && digits[0] <= b'3' && digits.iter().all(|d| (b'0'..=b'7').contains(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    const MOUNTS: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
debugfs /sys/kernel/debug debugfs rw,nosuid,nodev,noexec,relatime 0 0
tracefs /mnt/my\\040traces tracefs rw,nosuid,nodev,noexec,relatime 0 0
";

    #[test]
    fn parse_mounts_orders_tracefs_before_debugfs_and_unescapes() {
        let mounts = parse_mounts(MOUNTS);
        assert_eq!(
            mounts,
            vec![
                TracefsMount {
                    root: "/mnt/my traces".into(),
                    fs_type: "tracefs".into()
                },
                TracefsMount {
                    root: "/sys/kernel/debug/tracing".into(),
                    fs_type: "debugfs".into()
                },
            ]
        );
    }

    #[test]
    fn parse_mounts_skips_garbage() {
        assert!(parse_mounts("").is_empty());
        assert!(parse_mounts("only-two fields\n\n   \n").is_empty());
        assert_eq!(unescape_mount_field("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape_mount_field("trailing\\04"), "trailing\\04");
        assert_eq!(unescape_mount_field("not\\999octal"), "not\\999octal");
    }

    #[test]
    fn discover_prefers_default_dir_with_user_events_data() {
        let tmp = TempDir::new("discover-default");
        let default = tmp.path().join("sys-kernel-tracing");
        fs::create_dir_all(&default).unwrap();
        fs::write(default.join("user_events_data"), "").unwrap();
        let found = Tracefs::discover_from(&default, MOUNTS).unwrap();
        assert_eq!(found.root(), default);
    }

    #[test]
    fn discover_accepts_trace_file_without_user_events() {
        let tmp = TempDir::new("discover-trace");
        let default = tmp.path().join("tracing");
        fs::create_dir_all(&default).unwrap();
        fs::write(default.join("trace"), "").unwrap();
        assert_eq!(
            Tracefs::discover_from(&default, "").unwrap().root(),
            default
        );
    }

    #[test]
    fn discover_falls_back_to_mounts_tracefs_then_debugfs() {
        let tmp = TempDir::new("discover-mounts");
        let empty_default = tmp.path().join("unmounted");
        fs::create_dir_all(&empty_default).unwrap();
        let debugfs = tmp.path().join("debug");
        fs::create_dir_all(debugfs.join("tracing")).unwrap();
        fs::write(debugfs.join("tracing").join("trace"), "").unwrap();
        let tracefs = tmp.path().join("tracefs mnt");
        fs::create_dir_all(&tracefs).unwrap();

        let mounts = format!(
            "debugfs {} debugfs rw 0 0\ntracefs {} tracefs rw 0 0\n",
            debugfs.display(),
            tracefs.display().to_string().replace(' ', "\\040"),
        );
        // The tracefs mount is empty (not a real tracefs): debugfs/tracing wins.
        let found = Tracefs::discover_from(&empty_default, &mounts).unwrap();
        assert_eq!(found.root(), debugfs.join("tracing"));

        // Once the tracefs mount looks real, it comes before debugfs.
        fs::write(tracefs.join("user_events_data"), "").unwrap();
        let found = Tracefs::discover_from(&empty_default, &mounts).unwrap();
        assert_eq!(found.root(), tracefs);
    }

    #[test]
    fn discover_without_any_tracefs_says_not_mounted() {
        let tmp = TempDir::new("discover-none");
        let err = Tracefs::discover_from(&tmp.path().join("missing"), "proc /proc proc rw 0 0\n")
            .unwrap_err();
        assert!(matches!(err, Error::TracefsNotMounted), "{err:?}");
    }

    #[test]
    fn event_files_are_read_and_checked() {
        let tmp = TempDir::new("event-files");
        let tracefs = Tracefs::at(tmp.path());
        let dir = tmp.path().join("events/user_events/otlp_metrics");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("id"), "1234\n").unwrap();
        fs::write(dir.join("format"), "name: otlp_metrics\nID: 1234\n").unwrap();

        assert!(tracefs.event_exists("user_events", "otlp_metrics"));
        assert_eq!(
            tracefs.event_id("user_events", "otlp_metrics").unwrap(),
            1234
        );
        assert!(tracefs
            .event_format("user_events", "otlp_metrics")
            .unwrap()
            .starts_with("name: otlp_metrics"));

        tracefs
            .set_event_enabled("user_events", "otlp_metrics", true)
            .unwrap();
        assert_eq!(fs::read_to_string(dir.join("enable")).unwrap(), "1");

        fs::write(dir.join("id"), "abc").unwrap();
        assert!(matches!(
            tracefs.event_id("user_events", "otlp_metrics"),
            Err(Error::Parse { .. })
        ));
        assert!(matches!(
            tracefs.event_id("user_events", "missing"),
            Err(Error::EventNotFound {
                source: Some(_),
                ..
            })
        ));
        assert!(matches!(
            tracefs.event_id("user_events", "../escape"),
            Err(Error::EventNotFound { source: None, .. })
        ));
        assert_eq!(
            tracefs.data_file_path(),
            tmp.path().join("user_events_data")
        );
    }
}
