//! Finding and making resctrl mounts: `/proc/self/mountinfo` parsing (pure)
//! and `mount -t resctrl` with its options.

use std::path::{Path, PathBuf};

/// Why the mount table could not be read or resctrl mounted.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount table could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A mountinfo line is malformed.
    #[error("malformed line {line} of {path}: {text:?}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// `mount(2)` failed.
    #[error("failed to mount resctrl on {path} with options {options:?}: {source}")]
    Mount {
        /// The target.
        path: PathBuf,
        /// The options.
        options: String,
        /// The cause.
        source: nix::errno::Errno,
    },
    /// A mount option is not one resctrl takes.
    #[error("{0}")]
    BadOption(String),
}

/// Mount options, as `mount -t resctrl -o ...` takes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountOpts {
    /// `cdp`: L3 code/data prioritisation.
    pub cdp: bool,
    /// `cdpl2`: L2 code/data prioritisation.
    pub cdpl2: bool,
    /// `mba_MBps`: MB values in MBps.
    pub mba_mbps: bool,
}

impl MountOpts {
    /// Parse `cdp,cdpl2,mba_MBps` (empty is no option).
    pub fn parse(s: &str) -> Result<MountOpts, String> {
        let mut o = MountOpts::default();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "cdp" => o.cdp = true,
                "cdpl2" => o.cdpl2 = true,
                "mba_MBps" => o.mba_mbps = true,
                other => {
                    return Err(format!(
                        "unknown resctrl mount option {other:?} (cdp, cdpl2, mba_MBps)"
                    ));
                }
            }
        }
        Ok(o)
    }
}

impl MountOpts {
    /// The `-o` string for `mount(2)`: `cdp,mba_MBps` (empty for none).
    pub fn to_option_string(&self) -> String {
        let mut v = Vec::new();
        if self.cdp {
            v.push("cdp");
        }
        if self.cdpl2 {
            v.push("cdpl2");
        }
        if self.mba_mbps {
            v.push("mba_MBps");
        }
        v.join(",")
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type (`resctrl`; `fuse` with source `resctrl` for the emulator).
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options (`rw,cdp,mba_MBps`).
    pub super_options: Vec<String>,
}

impl MountEntry {
    /// Whether this is a resctrl mount: the kernel's, or the emulator's
    /// (a FUSE mount whose source is `resctrl`).
    pub fn is_resctrl(&self) -> bool {
        self.fstype == "resctrl" || (self.fstype.starts_with("fuse") && self.source == "resctrl")
    }

    /// Whether `mba_MBps` is on, if the options can tell (the emulator's
    /// FUSE options cannot).
    pub fn mba_mbps(&self) -> Option<bool> {
        (self.fstype == "resctrl").then(|| self.super_options.iter().any(|o| o == "mba_MBps"))
    }
}

/// The mount table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountTable {
    /// The entries, in file order.
    pub entries: Vec<MountEntry>,
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl MountTable {
    /// Parse mountinfo text; `path` is used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<MountTable, MountError> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = || MountError::Malformed {
                path: path.to_path_buf(),
                line: i + 1,
                text: line.to_string(),
            };
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-").ok_or_else(bad)?;
            if sep < 6 || fields.len() < sep + 3 {
                return Err(bad());
            }
            entries.push(MountEntry {
                mount_point: PathBuf::from(unescape(fields[4])),
                fstype: fields[sep + 1].to_string(),
                source: unescape(fields[sep + 2]),
                super_options: fields
                    .get(sep + 3)
                    .map(|o| o.split(',').map(str::to_string).collect())
                    .unwrap_or_default(),
            });
        }
        Ok(MountTable { entries })
    }

    /// Read and parse a mountinfo file.
    pub fn from_path(path: &Path) -> Result<MountTable, MountError> {
        let text = std::fs::read_to_string(path).map_err(|e| MountError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        MountTable::parse(path, &text)
    }

    /// The last resctrl mount (the one that shadows the others).
    pub fn resctrl(&self) -> Option<&MountEntry> {
        self.entries.iter().rev().find(|e| e.is_resctrl())
    }
}

/// The one place that reads the real mount table: the resctrl mount of
/// this process, if any.
pub fn discover() -> Result<Option<MountEntry>, MountError> {
    Ok(MountTable::from_path(Path::new("/proc/self/mountinfo"))?
        .resctrl()
        .cloned())
}

/// `mount -t resctrl resctrl -o OPTS TARGET`.
pub fn mount_resctrl(target: &Path, opts: MountOpts) -> Result<(), MountError> {
    let o = opts.to_option_string();
    nix::mount::mount(
        Some("resctrl"),
        target,
        Some("resctrl"),
        nix::mount::MsFlags::empty(),
        (!o.is_empty()).then_some(o.as_str()),
    )
    .map_err(|e| MountError::Mount {
        path: target.to_path_buf(),
        options: o,
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as in /proc/self/mountinfo on a host with resctrl mounted with
    /// `-o cdp,mba_MBps`, and one with the emulator.
    const MOUNTINFO: &str = "\
22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
40 22 0:35 / /sys/fs/resctrl rw,relatime shared:19 - resctrl resctrl rw,cdp,mba_MBps
98 28 0:53 / /tmp/other rw,nosuid,nodev,relatime shared:51 - fuse sshfs rw,user_id=0,group_id=0
97 28 0:52 / /tmp/my\\040dir rw,nosuid,nodev,relatime shared:50 - fuse resctrl rw,user_id=0,group_id=0
";

    #[test]
    fn golden_mountinfo() {
        let t = MountTable::parse(Path::new("/proc/self/mountinfo"), MOUNTINFO).expect("valid");
        assert_eq!(t.entries.len(), 4);
        assert!(!t.entries[2].is_resctrl());
        let r = &t.entries[1];
        assert!(r.is_resctrl());
        assert_eq!(r.mount_point, PathBuf::from("/sys/fs/resctrl"));
        assert_eq!(r.mba_mbps(), Some(true));
        let e = t.resctrl().expect("emulator");
        assert_eq!(e.mount_point, PathBuf::from("/tmp/my dir"));
        assert_eq!(e.mba_mbps(), None);
        assert!(MountTable::parse(Path::new("x"), "1 2 3\n").is_err());
    }

    #[test]
    fn options() {
        let o = MountOpts::parse("cdp,mba_MBps").expect("valid");
        assert_eq!(o.to_option_string(), "cdp,mba_MBps");
        assert!(MountOpts::parse("cdp3").is_err());
    }
}
