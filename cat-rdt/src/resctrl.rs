//! A resctrl mount: groups, schemata, modes, tasks, CPUs, monitoring, and
//! the two operations an actuator needs, [`Resctrl::give_ways`] and
//! [`Resctrl::set_mb_percent`]. Every change is validated by Seer first
//! ([`crate::validate`]) and made under an exclusive `flock` on the root;
//! a write the kernel still refuses is reported with
//! `info/last_cmd_status`.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::alloc::{self, AllocError, CacheLimits, GroupMask};
use crate::cpulist::{self, CpuSet};
use crate::info::{self, InfoError, Layout, MbScale};
use crate::lock::{LockError, RootLock};
use crate::monitor::{self, Counters, Sample};
use crate::mount::{self, MountError};
use crate::schemata::{Resource, SchemaLine, Schemata, SchemataError, Value};
use crate::validate::{self, Mode, Peer, ValidateError};

/// Why a resctrl operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ResctrlError {
    /// resctrl is not mounted (or the path is not a resctrl tree).
    #[error(
        "resctrl is not mounted (no resctrl in /proc/self/mountinfo); mount it with `mount -t resctrl resctrl /sys/fs/resctrl`, or try `seer-rdt emulate`"
    )]
    NotMounted,
    /// Reading `info/` failed.
    #[error(transparent)]
    Info(#[from] InfoError),
    /// The mount table could not be read.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Seer refused the change before writing.
    #[error(transparent)]
    Invalid(#[from] ValidateError),
    /// The allocator found no way to do it.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// A file read back could not be parsed.
    #[error("failed to parse {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: SchemataError,
    },
    /// Unexpected content in a file.
    #[error("unexpected content {value:?} in {path}")]
    Content {
        /// The file.
        path: PathBuf,
        /// The content.
        value: String,
    },
    /// Reading failed.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The kernel refused a write.
    #[error("failed to write {value:?} to {path}: {source}{}", status_suffix(.status))]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The error.
        source: std::io::Error,
        /// `info/last_cmd_status` after the refusal.
        status: Option<String>,
    },
    /// mkdir or rmdir failed.
    #[error("failed to {op} {path}: {source}{}", status_suffix(.status))]
    Dir {
        /// `create` or `remove`.
        op: &'static str,
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
        /// `info/last_cmd_status` after the refusal.
        status: Option<String>,
    },
    /// A group name resctrl cannot hold.
    #[error(
        "invalid group name {0:?}: use letters, digits, '-', '_' and '.', not 'info', 'mon_groups' or 'mon_data'"
    )]
    BadName(String),
    /// No such group.
    #[error("no resctrl group {name:?} under {root}")]
    NoGroup {
        /// The group.
        name: String,
        /// The mount.
        root: PathBuf,
    },
    /// The group exists already.
    #[error("resctrl group {name:?} already exists under {root}")]
    Exists {
        /// The group.
        name: String,
        /// The mount.
        root: PathBuf,
    },
    /// All CLOSIDs are taken.
    #[error(
        "cannot create group {name:?}: all {num_closids} CLOSIDs are in use (the default group and {groups} groups); delete a group first"
    )]
    OutOfClosids {
        /// The group.
        name: String,
        /// CLOSIDs on this machine (the smallest over all resources).
        num_closids: u32,
        /// Groups that exist.
        groups: usize,
    },
    /// A destructive change to a group that holds tasks, without force.
    #[error(
        "group {name:?} holds {tasks} task(s); they would return to the default group: pass force to go on"
    )]
    Busy {
        /// The group.
        name: String,
        /// Its task count.
        tasks: usize,
    },
    /// No such process.
    #[error("no process {pid} under {proc_root}")]
    NoProcess {
        /// The pid.
        pid: u32,
        /// Where it was looked for.
        proc_root: PathBuf,
    },
    /// The resource is absent.
    #[error("this machine has no {0}")]
    NoResource(&'static str),
    /// MB percent asked in MBps mode.
    #[error("MB is in MBps (mount option mba_MBps): give an absolute MBps value, not a percent")]
    MbpsMode,
    /// Percent out of 1..=100.
    #[error("MB percent {0} is outside 1..=100")]
    BadPercent(u32),
}

fn status_suffix(s: &Option<String>) -> String {
    match s {
        Some(s) if s != "ok" => format!(" (kernel: {s})"),
        Some(_) => " (kernel gave no reason in info/last_cmd_status)".into(),
        None => String::new(),
    }
}

/// What deleting a group did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Deleted {
    /// Tasks that went back to the default group.
    pub tasks: Vec<u32>,
    /// CPUs that went back to the default group.
    pub cpus: Vec<u32>,
}

/// A group's state, for display.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupState {
    /// Name (`/` for the default group).
    pub name: String,
    /// Mode.
    pub mode: Mode,
    /// Schemata.
    pub schemata: Schemata,
    /// Task count.
    pub tasks: usize,
    /// CPUs.
    pub cpus: String,
}

/// What [`Resctrl::give_ways`] changed, with what is needed to undo it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WaysChange {
    /// The group given the ways.
    pub group: String,
    /// Its new mask per L3 domain.
    pub region: BTreeMap<u32, u64>,
    /// Whether the group is now in exclusive mode (false when its other
    /// cache masks, such as L2, overlap other groups).
    pub exclusive: bool,
    /// Schemata and mode of every group changed, before the change.
    pub before: Vec<(String, Schemata, Mode)>,
}

/// Which groups Seer may shrink when giving ways. The default group is
/// always shrinkable: it starts with every way and holds every task not
/// placed elsewhere, so no exclusive allocation is possible without
/// shrinking it (as with `pqos -e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// Groups whose names start with this prefix.
    Prefix(String),
    /// These groups.
    Names(Vec<String>),
    /// Only the default group and the target.
    None,
}

impl Owned {
    fn owns(&self, name: &str) -> bool {
        name == "/"
            || match self {
                Owned::Prefix(p) => name.starts_with(p.as_str()),
                Owned::Names(v) => v.iter().any(|n| n == name),
                Owned::None => false,
            }
    }
}

/// A resctrl mount.
#[derive(Debug, Clone)]
pub struct Resctrl {
    root: PathBuf,
    proc_root: PathBuf,
    layout: Layout,
    mbps_option: Option<bool>,
}

/// `""` and `"/"` both name the default group.
fn is_root(name: &str) -> bool {
    name.is_empty() || name == "/"
}

/// Check a group name the way resctrl users expect.
pub fn check_name(name: &str) -> Result<(), ResctrlError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !matches!(name, "info" | "mon_groups" | "mon_data")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ResctrlError::BadName(name.to_string()))
    }
}

impl Resctrl {
    /// Open the resctrl tree at `root` (the kernel's or the emulator's).
    pub fn at(root: &Path) -> Result<Resctrl, ResctrlError> {
        Resctrl::at_with(root, None)
    }

    fn at_with(root: &Path, mbps_option: Option<bool>) -> Result<Resctrl, ResctrlError> {
        let layout = match info::read_layout(root, mbps_option) {
            Ok(l) => l,
            Err(InfoError::NotResctrl(_)) if !root.exists() => {
                return Err(ResctrlError::NotMounted);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Resctrl {
            root: root.to_path_buf(),
            proc_root: PathBuf::from("/proc"),
            layout,
            mbps_option,
        })
    }

    /// Find the resctrl mount in `/proc/self/mountinfo` and open it.
    pub fn discover() -> Result<Resctrl, ResctrlError> {
        let e = mount::discover()?.ok_or(ResctrlError::NotMounted)?;
        Resctrl::at_with(&e.mount_point, e.mba_mbps())
    }

    /// Look task ids up under `proc_root` instead of `/proc`.
    pub fn with_proc_root(mut self, proc_root: &Path) -> Resctrl {
        self.proc_root = proc_root.to_path_buf();
        self
    }

    /// Read `info/` and the root domains again (after a remount).
    pub fn refresh(&mut self) -> Result<(), ResctrlError> {
        self.layout = info::read_layout(&self.root, self.mbps_option)?;
        Ok(())
    }

    /// The mount root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layout read when opened.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Take the exclusive lock on the root (waits).
    pub fn lock(&self) -> Result<RootLock, ResctrlError> {
        Ok(RootLock::exclusive(&self.root)?)
    }

    /// Directory of a group (`/` or `""` is the root).
    pub fn group_dir(&self, name: &str) -> PathBuf {
        if is_root(name) {
            self.root.clone()
        } else {
            self.root.join(name)
        }
    }

    fn read(&self, path: &Path) -> Result<String, ResctrlError> {
        std::fs::read_to_string(path).map_err(|e| ResctrlError::Read {
            path: path.to_path_buf(),
            source: e,
        })
    }

    /// `info/last_cmd_status`, trimmed.
    pub fn last_cmd_status(&self) -> Result<String, ResctrlError> {
        Ok(self
            .read(&self.root.join("info/last_cmd_status"))?
            .trim()
            .to_string())
    }

    fn status(&self) -> Option<String> {
        self.last_cmd_status().ok()
    }

    /// One `write(2)` of `value` to `path`, as the kernel wants it.
    fn write(&self, path: &Path, value: &str) -> Result<(), ResctrlError> {
        let werr = |e: std::io::Error, me: &Resctrl| ResctrlError::Write {
            path: path.to_path_buf(),
            value: value.trim_end().to_string(),
            status: matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::ENOSPC | libc::ESRCH | libc::EBUSY)
            )
            .then(|| me.status())
            .flatten(),
            source: e,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| werr(e, self))?;
        let n = f.write(value.as_bytes()).map_err(|e| werr(e, self))?;
        if n != value.len() {
            return Err(werr(
                std::io::Error::new(ErrorKind::WriteZero, format!("short write of {n} bytes")),
                self,
            ));
        }
        Ok(())
    }

    fn check_group(&self, name: &str) -> Result<PathBuf, ResctrlError> {
        let d = self.group_dir(name);
        if is_root(name) || d.join("schemata").is_file() {
            Ok(d)
        } else {
            Err(ResctrlError::NoGroup {
                name: name.to_string(),
                root: self.root.clone(),
            })
        }
    }

    /// Control groups, the default group excluded, sorted.
    pub fn groups(&self) -> Result<Vec<String>, ResctrlError> {
        let rd = std::fs::read_dir(&self.root).map_err(|e| ResctrlError::Read {
            path: self.root.clone(),
            source: e,
        })?;
        let mut v: Vec<String> = rd
            .flatten()
            .filter(|e| e.path().join("schemata").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Create a control group (`mkdir`). Refused before the kernel when all
    /// CLOSIDs are taken. Equivalent of allocating a class of service with `pqos -e`.
    pub fn create_group(&self, name: &str) -> Result<(), ResctrlError> {
        check_name(name)?;
        let _l = self.lock()?;
        let d = self.root.join(name);
        if d.exists() {
            return Err(ResctrlError::Exists {
                name: name.into(),
                root: self.root.clone(),
            });
        }
        let groups = self.groups()?.len();
        let n = self.layout.num_closids();
        if groups as u32 + 1 >= n {
            return Err(ResctrlError::OutOfClosids {
                name: name.into(),
                num_closids: n,
                groups,
            });
        }
        std::fs::create_dir(&d).map_err(|e| ResctrlError::Dir {
            op: "create",
            path: d.clone(),
            status: self.status(),
            source: e,
        })
    }

    /// Create the group unless it exists; `true` if it was created.
    pub fn ensure_group(&self, name: &str) -> Result<bool, ResctrlError> {
        match self.create_group(name) {
            Ok(()) => Ok(true),
            Err(ResctrlError::Exists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete a control group (`rmdir`): its tasks and CPUs return to the
    /// default group, and the returned [`Deleted`] says which. A group that
    /// holds tasks is only deleted with `force`.
    pub fn delete_group(&self, name: &str, force: bool) -> Result<Deleted, ResctrlError> {
        if is_root(name) {
            return Err(ResctrlError::BadName("/".into()));
        }
        let _l = self.lock()?;
        let d = self.check_group(name)?;
        let tasks = self.tasks(name)?;
        if !tasks.is_empty() && !force {
            return Err(ResctrlError::Busy {
                name: name.into(),
                tasks: tasks.len(),
            });
        }
        let cpus = self.cpus(name)?.into_iter().collect();
        std::fs::remove_dir(&d).map_err(|e| ResctrlError::Dir {
            op: "remove",
            path: d.clone(),
            status: self.status(),
            source: e,
        })?;
        Ok(Deleted { tasks, cpus })
    }

    /// A group's schemata.
    pub fn schemata(&self, name: &str) -> Result<Schemata, ResctrlError> {
        let p = self.check_group(name)?.join("schemata");
        Schemata::parse(&self.read(&p)?).map_err(|e| ResctrlError::Parse { path: p, source: e })
    }

    /// A group's mode.
    pub fn mode(&self, name: &str) -> Result<Mode, ResctrlError> {
        let p = self.check_group(name)?.join("mode");
        let t = self.read(&p)?;
        Mode::parse(&t).ok_or(ResctrlError::Content {
            path: p,
            value: t.trim().to_string(),
        })
    }

    fn peers(&self, except: &str) -> Result<Vec<(String, Mode, Schemata)>, ResctrlError> {
        let mut v = Vec::new();
        for g in std::iter::once("/".to_string()).chain(self.groups()?) {
            if g == except || (is_root(&g) && is_root(except)) {
                continue;
            }
            v.push((g.clone(), self.mode(&g)?, self.schemata(&g)?));
        }
        Ok(v)
    }

    /// Set a group's mode (`shareable` or `exclusive`), checked first
    /// against the other groups. Equivalent of nothing in `pqos`, which has no modes.
    pub fn set_mode(&self, name: &str, mode: Mode) -> Result<(), ResctrlError> {
        let _l = self.lock()?;
        self.set_mode_locked(name, mode)
    }

    fn set_mode_locked(&self, name: &str, mode: Mode) -> Result<(), ResctrlError> {
        let d = self.check_group(name)?;
        if mode == Mode::Exclusive {
            let peers = self.peers(name)?;
            let p: Vec<Peer<'_>> = peers
                .iter()
                .map(|(n, m, s)| Peer {
                    name: n,
                    mode: *m,
                    schemata: s,
                })
                .collect();
            validate::validate_overlaps(&self.layout, Mode::Exclusive, &self.schemata(name)?, &p)?;
        }
        self.write(&d.join("mode"), &format!("{}\n", mode.as_str()))
    }

    /// Change the listed domains of a group's schemata and leave the others
    /// as they are, after checking every value (masks, MB range and grid,
    /// domains, CDP lines) and the overlap rules. Equivalent of `pqos -e`.
    pub fn update_schemata(&self, name: &str, update: &Schemata) -> Result<(), ResctrlError> {
        let _l = self.lock()?;
        self.update_locked(name, update)
    }

    fn update_locked(&self, name: &str, update: &Schemata) -> Result<(), ResctrlError> {
        validate::validate_update(&self.layout, update)?;
        let d = self.check_group(name)?;
        // Overlap rules concern cache masks only: an MB-only update skips them.
        if update.lines.iter().any(|l| l.resource.is_cache()) {
            self.check_overlaps(name, update)?;
        }
        // Write only the listed lines, each with only the listed domains.
        let text = update.to_write_string();
        if text.is_empty() {
            return Ok(());
        }
        self.write(&d.join("schemata"), &text)
    }

    fn check_overlaps(&self, name: &str, update: &Schemata) -> Result<(), ResctrlError> {
        let current = self.schemata(name)?;
        let merged = current.merged(update);
        let peers = self.peers(name)?;
        let p: Vec<Peer<'_>> = peers
            .iter()
            .map(|(n, m, s)| Peer {
                name: n,
                mode: *m,
                schemata: s,
            })
            .collect();
        validate::validate_overlaps(&self.layout, self.mode(name)?, &merged, &p)?;
        Ok(())
    }

    /// Task ids in a group.
    pub fn tasks(&self, name: &str) -> Result<Vec<u32>, ResctrlError> {
        let p = self.check_group(name)?.join("tasks");
        let t = self.read(&p)?;
        t.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim().parse().map_err(|_| ResctrlError::Content {
                    path: p.clone(),
                    value: l.to_string(),
                })
            })
            .collect()
    }

    /// Move one thread into a group.
    pub fn assign_tid(&self, name: &str, tid: u32) -> Result<(), ResctrlError> {
        let p = self.check_group(name)?.join("tasks");
        self.write(&p, &format!("{tid}\n"))
    }

    /// Move every thread of process `pid` into a group (resctrl moves one
    /// thread per write). Returns the thread ids moved. Equivalent of `pqos -I -a pid:COS=PID`.
    pub fn assign_pid(&self, name: &str, pid: u32) -> Result<Vec<u32>, ResctrlError> {
        let _l = self.lock()?;
        let dir = self.proc_root.join(pid.to_string()).join("task");
        let rd = std::fs::read_dir(&dir).map_err(|_| ResctrlError::NoProcess {
            pid,
            proc_root: self.proc_root.clone(),
        })?;
        let mut tids: Vec<u32> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        tids.sort_unstable();
        for &t in &tids {
            match self.assign_tid(name, t) {
                // A thread that exited meanwhile is not an error.
                Err(ResctrlError::Write { source, .. })
                    if source.raw_os_error() == Some(libc::ESRCH) && t != pid => {}
                r => r?,
            }
        }
        Ok(tids)
    }

    /// CPUs of a group (`cpus_list`).
    pub fn cpus(&self, name: &str) -> Result<CpuSet, ResctrlError> {
        let p = self.check_group(name)?.join("cpus_list");
        let t = self.read(&p)?;
        cpulist::parse_list(&t).map_err(|_| ResctrlError::Content {
            path: p,
            value: t.trim().to_string(),
        })
    }

    /// Set the CPUs of a group; CPUs move from their old group, dropped
    /// ones go back to the default group. Equivalent of `pqos -a llc:COS=CPUS`.
    pub fn assign_cpus(&self, name: &str, cpus: &CpuSet) -> Result<(), ResctrlError> {
        let _l = self.lock()?;
        let p = self.check_group(name)?.join("cpus_list");
        self.write(&p, &format!("{}\n", cpulist::format_list(cpus)))
    }

    /// A group's state, for display.
    pub fn state(&self, name: &str) -> Result<GroupState, ResctrlError> {
        Ok(GroupState {
            name: if is_root(name) {
                "/".into()
            } else {
                name.to_string()
            },
            mode: self.mode(name)?,
            schemata: self.schemata(name)?,
            tasks: self.tasks(name)?.len(),
            cpus: cpulist::format_list(&self.cpus(name)?),
        })
    }

    /// The default schemata of the mount: every way, the largest MB value.
    pub fn default_schemata(&self) -> Schemata {
        let mut s = Schemata::default();
        for (r, ids) in &self.layout.domains {
            let v = match (self.layout.caches.get(r), r) {
                (Some(c), _) => Value::Cbm(c.cbm_mask),
                (None, Resource::Mb) => Value::Bw(self.layout.mb_scale.map_or(100, MbScale::max)),
                _ => continue,
            };
            s.lines.push(SchemaLine {
                resource: r.clone(),
                domains: ids.iter().map(|&d| (d, v)).collect(),
            });
        }
        s
    }

    /// Remove every group and give the default group every way and full
    /// bandwidth. Groups holding tasks need `force`. Equivalent of `pqos -R`.
    pub fn reset(&self, force: bool) -> Result<Vec<(String, Deleted)>, ResctrlError> {
        let groups = self.groups()?;
        if !force {
            for g in &groups {
                let n = self.tasks(g)?.len();
                if n > 0 {
                    return Err(ResctrlError::Busy {
                        name: g.clone(),
                        tasks: n,
                    });
                }
            }
        }
        let mut out = Vec::new();
        for g in groups {
            let d = self.delete_group(&g, true)?;
            out.push((g, d));
        }
        let _l = self.lock()?;
        let def = self.default_schemata();
        self.update_locked("/", &def)?;
        Ok(out)
    }

    /// Give `group` `ways` L3 ways exclusively on every L3 domain (both
    /// CDP halves under CDP), shrinking the default group and the groups
    /// `owned` names out of its way; groups Seer does not own and
    /// `shareable_bits` are left alone. The group ends in `exclusive`
    /// mode when its other cache masks allow it (see
    /// [`WaysChange::exclusive`]). Returns what changed, for [`Resctrl::restore`].
    pub fn give_ways(
        &self,
        group: &str,
        ways: u32,
        owned: &Owned,
    ) -> Result<WaysChange, ResctrlError> {
        let resources = self.layout.l3_resources();
        let Some(info) = resources
            .first()
            .and_then(|r| self.layout.caches.get(r))
            .cloned()
        else {
            return Err(ResctrlError::NoResource("L3 cache allocation (CAT)"));
        };
        let _l = self.lock()?;
        self.check_group(group)?;
        let target = if is_root(group) {
            "/".to_string()
        } else {
            group.to_string()
        };
        let mut all: Vec<(String, Mode, Schemata)> =
            vec![(target.clone(), self.mode(group)?, self.schemata(group)?)];
        all.extend(self.peers(group)?);
        let limits = CacheLimits {
            cbm_mask: info.cbm_mask,
            min_cbm_bits: info.min_cbm_bits,
            shareable_bits: info.shareable_bits,
        };
        let domains = self.layout.domain_ids(&resources[0]).to_vec();
        let mut region = BTreeMap::new();
        // New schemata per group (only groups that change).
        let mut new: BTreeMap<String, Schemata> = BTreeMap::new();
        for &d in &domains {
            let masks: Vec<GroupMask> = all
                .iter()
                .map(|(n, m, s)| GroupMask {
                    name: n.clone(),
                    mask: resources
                        .iter()
                        .map(|r| s.get(r, d).map_or(0, Value::raw))
                        .fold(0, |a, b| a | b),
                    mode: *m,
                    owned: n == &target || owned.owns(n),
                })
                .collect();
            let a = alloc::give_ways(&limits, &masks, &target, ways)?;
            region.insert(d, a.region);
            let excl: u64 = masks
                .iter()
                .filter(|g| g.name != target && g.mode != Mode::Shareable)
                .fold(0, |x, g| x | g.mask);
            for r in &resources {
                new.entry(target.clone())
                    .or_default()
                    .set(r, d, Value::Cbm(a.region));
            }
            for (n, _) in &a.shrunk {
                let (_, _, s) =
                    all.iter()
                        .find(|(x, _, _)| x == n)
                        .ok_or(ResctrlError::NoGroup {
                            name: n.clone(),
                            root: self.root.clone(),
                        })?;
                for r in &resources {
                    let old = s.get(r, d).map_or(0, Value::raw);
                    let m = alloc::shrink(
                        old,
                        a.region | excl,
                        info.cbm_mask & !excl,
                        info.min_cbm_bits.max(1),
                    )
                    .ok_or(AllocError::NoRoomForOthers {
                        ways,
                        need: info.min_cbm_bits.max(1),
                    })?;
                    new.entry(n.clone()).or_default().set(r, d, Value::Cbm(m));
                }
            }
        }
        let before: Vec<(String, Schemata, Mode)> = all
            .iter()
            .filter(|(n, _, _)| new.contains_key(n))
            .map(|(n, m, s)| (n.clone(), s.clone(), *m))
            .collect();
        // Order: target shareable, shrink the others, move the target, exclusive.
        if all[0].1 == Mode::Exclusive {
            self.set_mode_locked(&target, Mode::Shareable)?;
        }
        for (n, s) in new.iter().filter(|(n, _)| **n != target) {
            self.update_locked(n, s)?;
        }
        self.update_locked(&target, &new[&target])?;
        // The kernel's exclusive mode covers every cache resource: when the
        // group's other cache masks (L2) overlap other groups, the L3 ways
        // are still held by no one else but the mode stays shareable.
        let exclusive =
            match self.set_mode_locked(&target, Mode::Exclusive) {
                Ok(()) => true,
                Err(ResctrlError::Invalid(ValidateError::ExclusiveOverlaps {
                    resource, ..
                })) if !resources.contains(&resource) => false,
                Err(e) => return Err(e),
            };
        Ok(WaysChange {
            group: target,
            region,
            exclusive,
            before,
        })
    }

    /// Undo a [`WaysChange`]: the target back to shareable, every changed
    /// group back to its old masks, then the old modes.
    pub fn restore(&self, change: &WaysChange) -> Result<(), ResctrlError> {
        let _l = self.lock()?;
        self.set_mode_locked(&change.group, Mode::Shareable)?;
        let caches = |s: &Schemata| Schemata {
            lines: s
                .lines
                .iter()
                .filter(|l| l.resource.is_cache())
                .cloned()
                .collect(),
        };
        for (n, s, _) in change.before.iter().filter(|(n, _, _)| *n != change.group) {
            self.update_locked(n, &caches(s))?;
        }
        for (n, s, m) in change.before.iter().filter(|(n, _, _)| *n == change.group) {
            self.update_locked(n, &caches(s))?;
            if *m != Mode::Shareable {
                self.set_mode_locked(n, *m)?;
            }
        }
        Ok(())
    }

    /// The MB value that `percent` of full bandwidth means here: Intel
    /// percent rounded up to `bandwidth_gran` and raised to `min_bandwidth`;
    /// AMD units of 1/8 GB/s (`percent × 2048 / 100`, rounded up).
    pub fn mb_value_for_percent(&self, percent: u32) -> Result<u64, ResctrlError> {
        let (Some(mb), Some(scale)) = (&self.layout.mb, self.layout.mb_scale) else {
            return Err(ResctrlError::NoResource(
                "memory bandwidth allocation (MBA)",
            ));
        };
        if percent == 0 || percent > 100 {
            return Err(ResctrlError::BadPercent(percent));
        }
        let p = u64::from(percent);
        Ok(match scale {
            MbScale::Percent => {
                validate::round_to_grid(p.max(mb.min_bandwidth), mb.bandwidth_gran).min(100)
            }
            MbScale::AmdUnits => (p * 2048).div_ceil(100).max(mb.min_bandwidth),
            MbScale::Mbps => return Err(ResctrlError::MbpsMode),
        })
    }

    /// Limit `group` to `percent` of memory bandwidth on every MB domain
    /// (see [`Resctrl::mb_value_for_percent`]). Returns the value written.
    /// Equivalent of `pqos -e "mba:COS=PERCENT"`.
    pub fn set_mb_percent(&self, group: &str, percent: u32) -> Result<u64, ResctrlError> {
        let v = self.mb_value_for_percent(percent)?;
        let ids = self.layout.domain_ids(&Resource::Mb).to_vec();
        let upd = Schemata {
            lines: vec![SchemaLine {
                resource: Resource::Mb,
                domains: ids.iter().map(|&d| (d, Value::Bw(v))).collect(),
            }],
        };
        self.update_schemata(group, &upd)?;
        Ok(v)
    }

    /// Monitoring groups of a control group.
    pub fn mon_groups(&self, group: &str) -> Result<Vec<String>, ResctrlError> {
        let d = self.check_group(group)?.join("mon_groups");
        let rd = std::fs::read_dir(&d).map_err(|e| ResctrlError::Read {
            path: d.clone(),
            source: e,
        })?;
        let mut v: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Create a monitoring group under a control group.
    pub fn create_mon_group(&self, group: &str, name: &str) -> Result<(), ResctrlError> {
        check_name(name)?;
        let d = self.check_group(group)?.join("mon_groups").join(name);
        std::fs::create_dir(&d).map_err(|e| ResctrlError::Dir {
            op: "create",
            path: d.clone(),
            status: self.status(),
            source: e,
        })
    }

    /// Remove a monitoring group; its tasks stay in the control group.
    pub fn delete_mon_group(&self, group: &str, name: &str) -> Result<(), ResctrlError> {
        let d = self.check_group(group)?.join("mon_groups").join(name);
        std::fs::remove_dir(&d).map_err(|e| ResctrlError::Dir {
            op: "remove",
            path: d.clone(),
            status: self.status(),
            source: e,
        })
    }

    /// Read the counters of a group (or of its monitoring group `mon`).
    pub fn sample(&self, group: &str, mon: Option<&str>) -> Result<Sample, ResctrlError> {
        let mut d = self.check_group(group)?;
        if let Some(m) = mon {
            d = d.join("mon_groups").join(m);
        }
        let d = d.join("mon_data");
        let rd = std::fs::read_dir(&d).map_err(|e| ResctrlError::Read {
            path: d.clone(),
            source: e,
        })?;
        let mut out = Sample::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(dom) = monitor::domain_of(&name) else {
                continue;
            };
            let get = |f: &str| {
                std::fs::read_to_string(e.path().join(f))
                    .ok()
                    .and_then(|t| monitor::parse_counter(&t))
            };
            out.insert(
                dom,
                Counters {
                    llc_occupancy: get("llc_occupancy"),
                    mbm_total_bytes: get("mbm_total_bytes"),
                    mbm_local_bytes: get("mbm_local_bytes"),
                },
            );
        }
        Ok(out)
    }
}
