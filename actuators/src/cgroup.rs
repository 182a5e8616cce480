//! cgroup v1, v2 and hybrid hierarchies: detection by filesystem magic,
//! reading each knob's current value, and planning the exact sequence of file
//! writes that moves a knob from one value to another (the order matters:
//! v1 `memory.limit_in_bytes` vs `memory.memsw.limit_in_bytes`, CFS period vs
//! quota).
//!
//! Nothing here hard-codes `/sys`: a [`CgroupFs`] is built on a root given by
//! the caller ([`CgroupFs::at`], [`CgroupFs::detect`]); only
//! [`CgroupFs::discover`] reads the real `/proc/self/mountinfo`.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::action::{Knob, Setting};
use crate::units::{CpuList, DevNum, Limit, UnitError};

/// `CGROUP_SUPER_MAGIC` from `linux/magic.h` (cgroup v1).
pub const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
/// `CGROUP2_SUPER_MAGIC` from `linux/magic.h`.
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// `TMPFS_MAGIC` from `linux/magic.h`: the tmpfs that holds v1 mounts.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Errors from cgroup filesystem access.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `statfs` on the root failed.
    #[error("failed to statfs {path}: {source}")]
    Statfs {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: nix::Error,
    },
    /// The root is not a cgroup mount or the tmpfs holding v1 mounts.
    #[error("{path} is not a cgroup filesystem (magic {magic:#x})")]
    NotCgroup {
        /// The path.
        path: PathBuf,
        /// The filesystem magic found.
        magic: i64,
    },
    /// No cgroup mount in the mount table.
    #[error("no cgroup or cgroup2 mount found in {0}")]
    NoMount(PathBuf),
    /// Reading a cgroup file failed.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Writing a cgroup file failed.
    #[error("failed to write {value:?} to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The OS error.
        source: io::Error,
    },
    /// A cgroup file held something this crate cannot parse.
    #[error("failed to parse {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        source: UnitError,
    },
    /// A cgroup file held an unexpected format.
    #[error("unexpected content {content:?} in {path}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The content.
        content: String,
    },
    /// The knob is not a cgroup knob.
    #[error("{0} is not a cgroup knob")]
    NotCgroupKnob(String),
    /// The cgroup directory does not exist.
    #[error("cgroup {0} does not exist")]
    Missing(PathBuf),
}

/// Which cgroup layout a host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupMode {
    /// Only v1 hierarchies, one mount per controller under a tmpfs.
    V1,
    /// v1 controllers plus an empty v2 hierarchy at `<root>/unified`;
    /// resources are controlled through v1.
    Hybrid,
    /// The unified v2 hierarchy mounted at the root.
    V2,
}

impl CgroupMode {
    /// Decides the mode from the magic of the root and, when the root is a
    /// tmpfs, of `<root>/unified` (`None` when it does not exist). This is the
    /// rule runc and systemd use.
    pub fn from_magic(root: i64, unified: Option<i64>) -> Option<CgroupMode> {
        match root {
            CGROUP2_SUPER_MAGIC => Some(CgroupMode::V2),
            TMPFS_MAGIC | CGROUP_SUPER_MAGIC => Some(match unified {
                Some(CGROUP2_SUPER_MAGIC) => CgroupMode::Hybrid,
                _ => CgroupMode::V1,
            }),
            _ => None,
        }
    }

    /// True when resources are set through v1 controller files.
    pub fn is_v1(self) -> bool {
        matches!(self, CgroupMode::V1 | CgroupMode::Hybrid)
    }
}

/// A v1 controller (its mount directory name under the root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Controller {
    /// `cpu` (CFS quota, shares).
    Cpu,
    /// `cpuset`.
    Cpuset,
    /// `memory`.
    Memory,
    /// `blkio`.
    Blkio,
}

impl Controller {
    /// The directory name of the v1 mount (and the name in `/proc/<pid>/cgroup`).
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Blkio => "blkio",
        }
    }

    /// All controllers this crate writes.
    pub const ALL: [Controller; 4] = [
        Controller::Cpu,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Blkio,
    ];
}

/// One file write in a planned change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// The file.
    pub path: PathBuf,
    /// The exact string written.
    pub value: String,
}

/// A cgroup hierarchy root and its mode.
///
/// Clones share a cache of open file descriptors for cgroup files: opening
/// a cgroupfs file costs several times more than the `read`/`write` itself,
/// and kernfs regenerates a file on every read at offset 0 and applies every
/// `write(2)` whole, so a kept descriptor behaves like a fresh open. Files on
/// other filesystems (fake trees) are opened each time.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
    mode: CgroupMode,
    fds: Arc<FdCache>,
}

/// Open descriptors of cgroup files, by (path, opened for writing).
#[derive(Default)]
struct FdCache {
    map: Mutex<HashMap<(PathBuf, bool), Cached>>,
}

#[derive(Clone)]
enum Cached {
    /// A kernfs file kept open.
    Kernfs(Arc<fs::File>),
    /// Not on a cgroup filesystem: open it every time.
    Plain,
}

impl std::fmt::Debug for FdCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.map.lock().map_or(0, |m| m.len());
        write!(f, "FdCache({n} files)")
    }
}

/// Most descriptors kept; the cache is emptied when it would grow past this.
const FD_CACHE_MAX: usize = 512;

impl CgroupFs {
    /// A hierarchy at `root` known to be in `mode` (used for fake trees).
    pub fn at(root: impl Into<PathBuf>, mode: CgroupMode) -> CgroupFs {
        CgroupFs {
            root: root.into(),
            mode,
            fds: Arc::default(),
        }
    }

    /// Detects the mode of the hierarchy at `root` by filesystem magic.
    pub fn detect(root: impl Into<PathBuf>) -> Result<CgroupFs, CgroupError> {
        let root = root.into();
        let magic = statfs_magic(&root)?;
        let unified = root.join("unified");
        let unified_magic = if magic == TMPFS_MAGIC && unified.is_dir() {
            Some(statfs_magic(&unified)?)
        } else {
            None
        };
        let mode = CgroupMode::from_magic(magic, unified_magic).ok_or(CgroupError::NotCgroup {
            path: root.clone(),
            magic,
        })?;
        Ok(CgroupFs::at(root, mode))
    }

    /// Finds the host's cgroup root in `/proc/self/mountinfo` and detects it.
    pub fn discover() -> Result<CgroupFs, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(|source| CgroupError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let root = root_from_mountinfo(&text).ok_or_else(|| CgroupError::NoMount(path.into()))?;
        CgroupFs::detect(root)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The mode.
    pub fn mode(&self) -> CgroupMode {
        self.mode
    }

    /// The directory of cgroup `rel` (e.g. `/docker/abc`) for `controller`.
    pub fn dir(&self, controller: Controller, rel: &str) -> PathBuf {
        let rel = rel.trim_start_matches('/');
        if self.mode.is_v1() {
            self.root.join(controller.name()).join(rel)
        } else {
            self.root.join(rel)
        }
    }

    /// The path of `file` in cgroup `rel` for `controller`.
    pub fn file(&self, controller: Controller, rel: &str, file: &str) -> PathBuf {
        self.dir(controller, rel).join(file)
    }

    /// Reads a cgroup file.
    pub fn read(
        &self,
        controller: Controller,
        rel: &str,
        file: &str,
    ) -> Result<String, CgroupError> {
        self.read_path(&self.file(controller, rel, file))
    }

    fn cached(&self, path: &Path, write: bool) -> io::Result<Cached> {
        let key = (path.to_path_buf(), write);
        let mut map = self.fds.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let f = fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .open(path)?;
        let magic = nix::sys::statfs::fstatfs(&f).map(|s| fs_magic(&s));
        let c = match magic {
            Ok(CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC) => Cached::Kernfs(Arc::new(f)),
            _ => Cached::Plain,
        };
        if map.len() >= FD_CACHE_MAX {
            map.clear();
        }
        map.insert(key, c.clone());
        Ok(c)
    }

    fn forget(&self, path: &Path, write: bool) {
        let mut map = self.fds.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(path.to_path_buf(), write));
    }

    /// Reads a file of this hierarchy (through a kept descriptor when it is
    /// a cgroup file).
    pub fn read_path(&self, path: &Path) -> Result<String, CgroupError> {
        if let Ok(Cached::Kernfs(f)) = self.cached(path, false) {
            match pread_to_string(&f) {
                Ok(s) => return Ok(s),
                // Removed and maybe re-created cgroup: open afresh below.
                Err(_) => self.forget(path, false),
            }
        }
        read_file(path)
    }

    /// Writes `value` to a file of this hierarchy in one `write(2)` (through
    /// a kept descriptor when it is a cgroup file).
    pub fn write_path(&self, path: &Path, value: &str) -> Result<(), CgroupError> {
        if let Ok(Cached::Kernfs(f)) = self.cached(path, true) {
            match f.write_at(value.as_bytes(), 0) {
                Ok(n) if n == value.len() => return Ok(()),
                // A stale descriptor (cgroup removed) or a rejected value:
                // retry once with a fresh open, which reports the error.
                _ => self.forget(path, true),
            }
        }
        write_file(path, value)
    }

    /// Memory currently charged to cgroup `rel` (`memory.usage_in_bytes` on
    /// v1, `memory.current` on v2).
    pub fn memory_usage(&self, rel: &str) -> Result<u64, CgroupError> {
        let name = if self.mode.is_v1() {
            "memory.usage_in_bytes"
        } else {
            "memory.current"
        };
        let path = self.file(Controller::Memory, rel, name);
        let text = self.read_path(&path)?;
        text.trim().parse().map_err(|_| CgroupError::Format {
            path,
            content: text,
        })
    }

    /// Reads the current value of a cgroup knob.
    pub fn read_setting(&self, knob: &Knob) -> Result<Setting, CgroupError> {
        let v1 = self.mode.is_v1();
        match knob {
            Knob::CpuMax { cgroup } => {
                if v1 {
                    let q = self.file(Controller::Cpu, cgroup, "cpu.cfs_quota_us");
                    let p = self.file(Controller::Cpu, cgroup, "cpu.cfs_period_us");
                    let quota = parse_i64(self, &q)?;
                    let period = parse_u64(self, &p)?;
                    Ok(Setting::CpuMax {
                        quota_us: u64::try_from(quota).ok(),
                        period_us: period,
                    })
                } else {
                    let path = self.file(Controller::Cpu, cgroup, "cpu.max");
                    let text = self.read_path(&path)?;
                    parse_cpu_max(&text).ok_or(CgroupError::Format {
                        path,
                        content: text,
                    })
                }
            }
            Knob::CpuWeight { cgroup } => {
                if v1 {
                    let p = self.file(Controller::Cpu, cgroup, "cpu.shares");
                    Ok(Setting::CpuShares {
                        shares: parse_u64(self, &p)?,
                    })
                } else {
                    let p = self.file(Controller::Cpu, cgroup, "cpu.weight");
                    Ok(Setting::CpuWeight {
                        weight: parse_u64(self, &p)?,
                    })
                }
            }
            Knob::Cpuset { cgroup } => {
                let c = self.file(Controller::Cpuset, cgroup, "cpuset.cpus");
                let m = self.file(Controller::Cpuset, cgroup, "cpuset.mems");
                Ok(Setting::Cpuset {
                    cpus: parse_list(self, &c)?,
                    mems: parse_list(self, &m)?,
                })
            }
            Knob::Memory { cgroup } => {
                if v1 {
                    let l = self.file(Controller::Memory, cgroup, "memory.limit_in_bytes");
                    let s = self.file(Controller::Memory, cgroup, "memory.memsw.limit_in_bytes");
                    let limit = parse_limit(self, &l, Limit::parse_v1_bytes)?;
                    let swap = if s.exists() {
                        Some(parse_limit(self, &s, Limit::parse_v1_bytes)?)
                    } else {
                        None
                    };
                    Ok(Setting::Memory { limit, swap })
                } else {
                    let l = self.file(Controller::Memory, cgroup, "memory.max");
                    let s = self.file(Controller::Memory, cgroup, "memory.swap.max");
                    let limit = parse_limit(self, &l, Limit::parse_v2)?;
                    let swap = if s.exists() {
                        Some(parse_limit(self, &s, Limit::parse_v2)?)
                    } else {
                        None
                    };
                    Ok(Setting::Memory { limit, swap })
                }
            }
            Knob::Io { cgroup, device } => {
                if v1 {
                    let mut vals = [Limit::Max; 4];
                    for (slot, name) in vals.iter_mut().zip(V1_IO_FILES) {
                        let p = self.file(Controller::Blkio, cgroup, name);
                        let text = self.read_path(&p)?;
                        *slot = parse_v1_throttle(&text, *device).map_err(|source| {
                            CgroupError::Parse {
                                path: p.clone(),
                                source,
                            }
                        })?;
                    }
                    Ok(Setting::Io {
                        device: *device,
                        rbps: vals[0],
                        wbps: vals[1],
                        riops: vals[2],
                        wiops: vals[3],
                    })
                } else {
                    let p = self.file(Controller::Blkio, cgroup, "io.max");
                    let text = self.read_path(&p)?;
                    parse_io_max(&text, *device)
                        .map_err(|source| CgroupError::Parse { path: p, source })
                }
            }
            other => Err(CgroupError::NotCgroupKnob(other.to_string())),
        }
    }

    /// Plans the file writes that move `knob` from `from` (its value read
    /// just before) to `to`, in the order the kernel accepts. Files that
    /// already hold their new value are not written.
    pub fn plan_writes(
        &self,
        knob: &Knob,
        from: &Setting,
        to: &Setting,
    ) -> Result<Vec<FileWrite>, CgroupError> {
        let mut writes = self.encode_writes(knob, from, to)?;
        if std::mem::discriminant(from) == std::mem::discriminant(to)
            && let Ok(same) = self.encode_writes(knob, from, from)
        {
            writes.retain(|w| !same.contains(w));
        }
        Ok(writes)
    }

    /// Every file write that sets `to`, in order (see [`CgroupFs::plan_writes`]).
    fn encode_writes(
        &self,
        knob: &Knob,
        from: &Setting,
        to: &Setting,
    ) -> Result<Vec<FileWrite>, CgroupError> {
        let v1 = self.mode.is_v1();
        let w = |c, cg: &str, f: &str, v: String| FileWrite {
            path: self.file(c, cg, f),
            value: v,
        };
        let bad = || CgroupError::NotCgroupKnob(format!("{knob} with value {to:?}"));
        let out = match (knob, to) {
            (
                Knob::CpuMax { cgroup },
                Setting::CpuMax {
                    quota_us,
                    period_us,
                },
            ) => {
                if v1 {
                    let quota = quota_us.map_or("-1".to_string(), |q| q.to_string());
                    // Period first: runc's order; quota is checked against
                    // the hierarchy, the period only for its range.
                    vec![
                        w(
                            Controller::Cpu,
                            cgroup,
                            "cpu.cfs_period_us",
                            period_us.to_string(),
                        ),
                        w(Controller::Cpu, cgroup, "cpu.cfs_quota_us", quota),
                    ]
                } else {
                    let quota = quota_us.map_or("max".to_string(), |q| q.to_string());
                    vec![w(
                        Controller::Cpu,
                        cgroup,
                        "cpu.max",
                        format!("{quota} {period_us}"),
                    )]
                }
            }
            (Knob::CpuWeight { cgroup }, Setting::CpuShares { shares }) if v1 => {
                vec![w(Controller::Cpu, cgroup, "cpu.shares", shares.to_string())]
            }
            (Knob::CpuWeight { cgroup }, Setting::CpuWeight { weight }) if !v1 => {
                vec![w(Controller::Cpu, cgroup, "cpu.weight", weight.to_string())]
            }
            (Knob::Cpuset { cgroup }, Setting::Cpuset { cpus, mems }) => vec![
                w(Controller::Cpuset, cgroup, "cpuset.cpus", cpus.to_string()),
                w(Controller::Cpuset, cgroup, "cpuset.mems", mems.to_string()),
            ],
            (Knob::Memory { cgroup }, Setting::Memory { limit, swap }) => {
                let (lim_file, swap_file) = if v1 {
                    ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")
                } else {
                    ("memory.max", "memory.swap.max")
                };
                let enc = |l: Limit| if v1 { l.to_v1() } else { l.to_v2() };
                let lim = w(Controller::Memory, cgroup, lim_file, enc(*limit));
                match swap {
                    None => vec![lim],
                    Some(s) => {
                        let sw = w(Controller::Memory, cgroup, swap_file, enc(*s));
                        let cur_swap = match from {
                            Setting::Memory { swap, .. } => *swap,
                            _ => None,
                        };
                        if v1 && memsw_first(*limit, cur_swap) {
                            vec![sw, lim]
                        } else {
                            vec![lim, sw]
                        }
                    }
                }
            }
            (
                Knob::Io { cgroup, device },
                Setting::Io {
                    rbps,
                    wbps,
                    riops,
                    wiops,
                    ..
                },
            ) => {
                if v1 {
                    // `<dev> 0` removes a v1 throttle rule.
                    let enc = |l: Limit| format!("{device} {}", l.value().unwrap_or(0));
                    [*rbps, *wbps, *riops, *wiops]
                        .into_iter()
                        .zip(V1_IO_FILES)
                        .map(|(l, f)| w(Controller::Blkio, cgroup, f, enc(l)))
                        .collect()
                } else {
                    vec![w(
                        Controller::Blkio,
                        cgroup,
                        "io.max",
                        format!("{device} rbps={rbps} wbps={wbps} riops={riops} wiops={wiops}"),
                    )]
                }
            }
            _ => return Err(bad()),
        };
        Ok(out)
    }
}

/// v1 blkio throttle files, in the order of `Setting::Io`'s fields.
const V1_IO_FILES: [&str; 4] = [
    "blkio.throttle.read_bps_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_iops_device",
];

/// runc's rule for v1: write `memory.memsw.limit_in_bytes` before
/// `memory.limit_in_bytes` when the new memory limit would exceed the current
/// memory+swap limit (the kernel keeps memory ≤ memsw at every step).
pub fn memsw_first(new_limit: Limit, current_memsw: Option<Limit>) -> bool {
    match (new_limit, current_memsw) {
        (Limit::Max, _) => true,
        (Limit::Value(n), Some(Limit::Value(c))) => n > c,
        _ => false,
    }
}

/// Writes `value` to `path` in one `write(2)`, opened like the shell's `>`
/// (`O_TRUNC`, which kernfs ignores) but never created: a missing file is
/// an error, not a new file.
pub fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    let err = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(err)?;
    f.write_all(value.as_bytes()).map_err(err)
}

fn pread_to_string(f: &fs::File) -> io::Result<String> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = f.read_at(&mut buf[len..], len as u64)?;
        if n == 0 {
            break;
        }
        len += n;
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads a whole cgroup file.
pub fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_u64(fs: &CgroupFs, path: &Path) -> Result<u64, CgroupError> {
    let text = fs.read_path(path)?;
    text.trim().parse().map_err(|_| CgroupError::Format {
        path: path.to_path_buf(),
        content: text,
    })
}

fn parse_i64(fs: &CgroupFs, path: &Path) -> Result<i64, CgroupError> {
    let text = fs.read_path(path)?;
    text.trim().parse().map_err(|_| CgroupError::Format {
        path: path.to_path_buf(),
        content: text,
    })
}

fn parse_list(fs: &CgroupFs, path: &Path) -> Result<CpuList, CgroupError> {
    let text = fs.read_path(path)?;
    text.parse().map_err(|source| CgroupError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_limit(
    fs: &CgroupFs,
    path: &Path,
    f: fn(&str) -> Result<Limit, UnitError>,
) -> Result<Limit, CgroupError> {
    let text = fs.read_path(path)?;
    f(&text).map_err(|source| CgroupError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses v2 `cpu.max` (`max 100000` or `25000 100000`).
pub fn parse_cpu_max(text: &str) -> Option<Setting> {
    let mut it = text.split_whitespace();
    let quota = match it.next()? {
        "max" => None,
        q => Some(q.parse().ok()?),
    };
    let period = it.next().map_or(Some(100_000), |p| p.parse().ok())?;
    Some(Setting::CpuMax {
        quota_us: quota,
        period_us: period,
    })
}

/// Finds `device`'s limit in a v1 `blkio.throttle.*_device` file (lines of
/// `major:minor value`); an absent device has no limit.
pub fn parse_v1_throttle(text: &str, device: DevNum) -> Result<Limit, UnitError> {
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(d), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        if d.parse::<DevNum>()? == device {
            let v: u64 = v.parse().map_err(|_| UnitError::Limit(v.to_string()))?;
            return Ok(if v == 0 { Limit::Max } else { Limit::Value(v) });
        }
    }
    Ok(Limit::Max)
}

/// Finds `device`'s line in v2 `io.max`
/// (`8:16 rbps=2097152 wbps=max riops=max wiops=max`); an absent device has
/// no limits.
pub fn parse_io_max(text: &str, device: DevNum) -> Result<Setting, UnitError> {
    let mut s = Setting::Io {
        device,
        rbps: Limit::Max,
        wbps: Limit::Max,
        riops: Limit::Max,
        wiops: Limit::Max,
    };
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(d) = it.next() else { continue };
        if d.parse::<DevNum>()? != device {
            continue;
        }
        if let Setting::Io {
            rbps,
            wbps,
            riops,
            wiops,
            ..
        } = &mut s
        {
            for kv in it {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| UnitError::Limit(kv.to_string()))?;
                let v = Limit::parse_v2(v)?;
                match k {
                    "rbps" => *rbps = v,
                    "wbps" => *wbps = v,
                    "riops" => *riops = v,
                    "wiops" => *wiops = v,
                    _ => {}
                }
            }
        }
    }
    Ok(s)
}

/// Picks the cgroup root from a mountinfo text: the cgroup2 mount when it is
/// the whole hierarchy, else the directory that holds the v1 mounts.
pub fn root_from_mountinfo(text: &str) -> Option<PathBuf> {
    let mut v1_parent = None;
    let mut v2 = None;
    for line in text.lines() {
        // Fields: id parent maj:min root mountpoint opts ... - fstype source superopts
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = PathBuf::from(left.split_whitespace().nth(4)?);
        match fstype {
            "cgroup2" if v2.is_none() => v2 = Some(mount_point),
            "cgroup" if v1_parent.is_none() => {
                v1_parent = mount_point.parent().map(Path::to_path_buf)
            }
            _ => {}
        }
    }
    match (v1_parent, v2) {
        (Some(p), _) => Some(p),
        (None, Some(v2)) => Some(v2),
        (None, None) => None,
    }
}

fn statfs_magic(path: &Path) -> Result<i64, CgroupError> {
    let st = nix::sys::statfs::statfs(path).map_err(|source| CgroupError::Statfs {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(fs_magic(&st))
}

// `f_type` is a C long: i64 here, i32 on 32-bit targets.
#[allow(clippy::unnecessary_cast)]
fn fs_magic(st: &nix::sys::statfs::Statfs) -> i64 {
    st.filesystem_type().0 as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_from_magic_rules() {
        assert_eq!(
            CgroupMode::from_magic(CGROUP2_SUPER_MAGIC, None),
            Some(CgroupMode::V2)
        );
        assert_eq!(
            CgroupMode::from_magic(TMPFS_MAGIC, Some(CGROUP2_SUPER_MAGIC)),
            Some(CgroupMode::Hybrid)
        );
        assert_eq!(
            CgroupMode::from_magic(TMPFS_MAGIC, None),
            Some(CgroupMode::V1)
        );
        assert_eq!(CgroupMode::from_magic(0xEF53, None), None);
    }

    #[test]
    fn detect_this_host() {
        match CgroupFs::detect("/sys/fs/cgroup") {
            Ok(fs) => eprintln!("host cgroup mode: {:?}", fs.mode()),
            Err(e) => eprintln!("SKIPPED: {e:#}"),
        }
        // A plain directory is refused with its magic in the message.
        let dir = tempfile::tempdir().expect("tempdir");
        let err = CgroupFs::detect(dir.path()).expect_err("not a cgroup fs");
        let msg = err.to_string();
        assert!(
            msg.contains("is not a cgroup filesystem") || msg.contains("statfs"),
            "{msg}"
        );
    }

    #[test]
    fn mountinfo_golden() {
        // Lines from this machine (hybrid) and from a pure v2 host.
        let hybrid = "\
35 24 0:30 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
40 35 0:35 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
";
        assert_eq!(
            root_from_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let v2 = "30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            root_from_mountinfo(v2),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            root_from_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }

    #[test]
    fn cpu_max_golden() {
        assert_eq!(
            parse_cpu_max("max 100000\n"),
            Some(Setting::CpuMax {
                quota_us: None,
                period_us: 100_000
            })
        );
        assert_eq!(
            parse_cpu_max("25000 50000"),
            Some(Setting::CpuMax {
                quota_us: Some(25_000),
                period_us: 50_000
            })
        );
        assert_eq!(parse_cpu_max("x 1"), None);
    }

    #[test]
    fn io_golden() {
        let d: DevNum = "8:16".parse().expect("dev");
        let text = "8:0 rbps=1 wbps=max riops=max wiops=max\n8:16 rbps=2097152 wbps=max riops=max wiops=120\n";
        assert_eq!(
            parse_io_max(text, d),
            Ok(Setting::Io {
                device: d,
                rbps: Limit::Value(2_097_152),
                wbps: Limit::Max,
                riops: Limit::Max,
                wiops: Limit::Value(120),
            })
        );
        let other: DevNum = "254:0".parse().expect("dev");
        assert!(matches!(
            parse_io_max(text, other),
            Ok(Setting::Io {
                rbps: Limit::Max,
                ..
            })
        ));
        assert_eq!(
            parse_v1_throttle("8:16 1048576\n254:0 10\n", other),
            Ok(Limit::Value(10))
        );
        assert_eq!(parse_v1_throttle("", other), Ok(Limit::Max));
    }

    #[test]
    fn v1_memory_write_order() {
        let fs = CgroupFs::at("/r", CgroupMode::V1);
        let knob = Knob::Memory {
            cgroup: "/a".into(),
        };
        let from = Setting::Memory {
            limit: Limit::Value(100),
            swap: Some(Limit::Value(200)),
        };
        // Growing past the current memsw: memsw first.
        let up = Setting::Memory {
            limit: Limit::Value(300),
            swap: Some(Limit::Value(600)),
        };
        let w = fs.plan_writes(&knob, &from, &up).expect("plan");
        assert_eq!(
            w[0].path,
            PathBuf::from("/r/memory/a/memory.memsw.limit_in_bytes")
        );
        assert_eq!(
            w[1].path,
            PathBuf::from("/r/memory/a/memory.limit_in_bytes")
        );
        // Shrinking: memory first.
        let down = Setting::Memory {
            limit: Limit::Value(50),
            swap: Some(Limit::Value(100)),
        };
        let w = fs.plan_writes(&knob, &from, &down).expect("plan");
        assert_eq!(
            w[0].path,
            PathBuf::from("/r/memory/a/memory.limit_in_bytes")
        );
        assert_eq!(w[0].value, "50");
        // Back to unlimited: memsw first, spelled -1.
        let max = Setting::Memory {
            limit: Limit::Max,
            swap: Some(Limit::Max),
        };
        let w = fs.plan_writes(&knob, &down, &max).expect("plan");
        assert_eq!(w[0].value, "-1");
        assert!(w[0].path.ends_with("memory.memsw.limit_in_bytes"));
    }

    #[test]
    fn v2_writes_golden() {
        let fs = CgroupFs::at("/r", CgroupMode::V2);
        let cpu = Knob::CpuMax {
            cgroup: "/x.scope".into(),
        };
        let to = Setting::CpuMax {
            quota_us: Some(25_000),
            period_us: 100_000,
        };
        let none = Setting::CpuMax {
            quota_us: None,
            period_us: 100_000,
        };
        assert_eq!(fs.plan_writes(&cpu, &to, &to).expect("plan"), vec![]);
        let w = fs.plan_writes(&cpu, &none, &to).expect("plan");
        assert_eq!(
            w,
            vec![FileWrite {
                path: "/r/x.scope/cpu.max".into(),
                value: "25000 100000".into()
            }]
        );
        let d: DevNum = "8:0".parse().expect("dev");
        let io = Knob::Io {
            cgroup: "/x".into(),
            device: d,
        };
        let to = Setting::Io {
            device: d,
            rbps: Limit::Value(1024),
            wbps: Limit::Max,
            riops: Limit::Max,
            wiops: Limit::Value(5),
        };
        let unlimited = Setting::Io {
            device: d,
            rbps: Limit::Max,
            wbps: Limit::Max,
            riops: Limit::Max,
            wiops: Limit::Max,
        };
        let w = fs.plan_writes(&io, &unlimited, &to).expect("plan");
        assert_eq!(w[0].value, "8:0 rbps=1024 wbps=max riops=max wiops=5");
        let v1 = CgroupFs::at("/r", CgroupMode::Hybrid);
        // Only the two files that change are written.
        let w = v1.plan_writes(&io, &unlimited, &to).expect("plan");
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].value, "8:0 1024");
        assert!(w[1].path.ends_with("blkio.throttle.write_iops_device"));
        assert_eq!(w[1].value, "8:0 5");
        let w = v1.plan_writes(&io, &to, &unlimited).expect("plan back");
        assert_eq!(w[1].value, "8:0 0");
        // v1 CPU quota with the same period: only the quota file.
        let w = v1
            .plan_writes(
                &cpu,
                &none,
                &Setting::CpuMax {
                    quota_us: Some(25_000),
                    period_us: 100_000,
                },
            )
            .expect("plan");
        assert_eq!(w.len(), 1);
        assert!(w[0].path.ends_with("cpu.cfs_quota_us"));
    }
}
