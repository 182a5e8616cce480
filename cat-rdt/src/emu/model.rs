//! The resctrl state machine behind the emulator, as pure code: groups,
//! CLOSIDs and RMIDs, per-domain controls, tasks and CPUs, and every file
//! the kernel shows, with the kernel's checks and its `last_cmd_status`
//! messages (from `fs/resctrl/rdtgroup.c` and `ctrlmondata.c`).
//!
//! Paths are relative to the mount root, split into components. Errors are
//! `errno` values, as the kernel would return them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use super::profile::{CacheProfile, Profile};
use crate::cbm;
use crate::cpulist::{self, CpuSet};
use crate::schemata::Resource;
use crate::validate::Mode;

/// An errno value (positive).
pub type Errno = i32;

pub use crate::mount::MountOpts;

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// A directory.
    Dir,
    /// A file with its permission bits.
    File(u16),
}

#[derive(Debug, Clone)]
enum SchemaKind {
    Cache {
        cbm_mask: u64,
        min_cbm_bits: u32,
        shareable: u64,
        sparse: bool,
        cache_bytes: u64,
        closids: u32,
    },
    Mb {
        min: u64,
        gran: u64,
        max: u64,
        closids: u32,
    },
}

#[derive(Debug, Clone)]
struct Schema {
    res: Resource,
    kind: SchemaKind,
    domains: Vec<u32>,
}

impl Schema {
    fn closids(&self) -> u32 {
        match self.kind {
            SchemaKind::Cache { closids, .. } | SchemaKind::Mb { closids, .. } => closids,
        }
    }
    fn is_cache(&self) -> bool {
        matches!(self.kind, SchemaKind::Cache { .. })
    }
}

#[derive(Debug, Clone, Default)]
struct MonGroup {
    rmid: u32,
    cpus: CpuSet,
}

#[derive(Debug, Clone)]
struct CtrlGroup {
    closid: u32,
    rmid: u32,
    mode: Mode,
    /// resource → domain → value
    ctrl: BTreeMap<Resource, BTreeMap<u32, u64>>,
    cpus: CpuSet,
    mon: BTreeMap<String, MonGroup>,
}

/// Where a task is: control group (`""` is the default group) and monitoring group.
type Place = (String, Option<String>);

/// The emulated resctrl filesystem.
#[derive(Debug)]
pub struct Model {
    profile: Profile,
    opts: MountOpts,
    schemas: Vec<Schema>,
    groups: BTreeMap<String, CtrlGroup>,
    tasks: BTreeMap<u32, Place>,
    last_cmd: String,
    proc_root: Option<PathBuf>,
    start: Instant,
    online: CpuSet,
    num_rmids: u32,
}

fn hex(v: u64) -> String {
    format!("{v:x}")
}

const EINVAL: Errno = libc::EINVAL;
const ENOENT: Errno = libc::ENOENT;
const EPERM: Errno = libc::EPERM;
const ENOSPC: Errno = libc::ENOSPC;
const EEXIST: Errno = libc::EEXIST;
const EACCES: Errno = libc::EACCES;

impl Model {
    /// A freshly mounted resctrl for `profile` with `opts`. `proc_root` is
    /// where task ids are looked up (`/proc`); `None` accepts any id.
    pub fn new(
        profile: Profile,
        opts: MountOpts,
        proc_root: Option<PathBuf>,
    ) -> Result<Model, String> {
        let mut schemas = Vec::new();
        let cache = |res: Resource, c: &CacheProfile, halve: bool| Schema {
            res,
            kind: SchemaKind::Cache {
                cbm_mask: c.cbm_mask(),
                min_cbm_bits: c.min_cbm_bits,
                shareable: c.shareable_bits(),
                sparse: c.sparse_masks,
                cache_bytes: c.cache_bytes,
                closids: if halve {
                    c.num_closids / 2
                } else {
                    c.num_closids
                },
            },
            domains: c.domains.clone(),
        };
        if let Some(l3) = &profile.l3 {
            if opts.cdp {
                if !l3.cdp {
                    return Err(format!(
                        "profile {} has no L3 CDP: -o cdp is refused",
                        profile.name
                    ));
                }
                schemas.push(cache(Resource::L3Data, l3, true));
                schemas.push(cache(Resource::L3Code, l3, true));
            } else {
                schemas.push(cache(Resource::L3, l3, false));
            }
        } else if opts.cdp {
            return Err(format!(
                "profile {} has no L3: -o cdp is refused",
                profile.name
            ));
        }
        if let Some(l2) = &profile.l2 {
            if opts.cdpl2 {
                if !l2.cdp {
                    return Err(format!(
                        "profile {} has no L2 CDP: -o cdpl2 is refused",
                        profile.name
                    ));
                }
                schemas.push(cache(Resource::L2Data, l2, true));
                schemas.push(cache(Resource::L2Code, l2, true));
            } else {
                schemas.push(cache(Resource::L2, l2, false));
            }
        } else if opts.cdpl2 {
            return Err(format!(
                "profile {} has no L2: -o cdpl2 is refused",
                profile.name
            ));
        }
        if let Some(mb) = &profile.mb {
            if opts.mba_mbps
                && profile
                    .mon
                    .as_ref()
                    .is_none_or(|m| !m.features.iter().any(|f| f == "mbm_local_bytes"))
            {
                return Err(format!(
                    "profile {} has no mbm_local_bytes: -o mba_MBps is refused",
                    profile.name
                ));
            }
            schemas.push(Schema {
                res: Resource::Mb,
                kind: SchemaKind::Mb {
                    min: mb.min_bandwidth,
                    gran: mb.bandwidth_gran,
                    max: if opts.mba_mbps {
                        u64::from(u32::MAX)
                    } else {
                        mb.max
                    },
                    closids: mb.num_closids,
                },
                domains: mb.domains.clone(),
            });
        } else if opts.mba_mbps {
            return Err(format!(
                "profile {} has no MBA: -o mba_MBps is refused",
                profile.name
            ));
        }
        let online: CpuSet = (0..profile.cpus).collect();
        let mut m = Model {
            num_rmids: profile.mon.as_ref().map_or(0, |m| m.num_rmids),
            profile,
            opts,
            schemas,
            groups: BTreeMap::new(),
            tasks: BTreeMap::new(),
            last_cmd: String::new(),
            proc_root,
            start: Instant::now(),
            online: online.clone(),
        };
        let ctrl = m
            .schemas
            .iter()
            .map(|s| {
                (
                    s.res.clone(),
                    s.domains.iter().map(|&d| (d, m.default_ctrl(s))).collect(),
                )
            })
            .collect();
        m.groups.insert(
            String::new(),
            CtrlGroup {
                closid: 0,
                rmid: 0,
                mode: Mode::Shareable,
                ctrl,
                cpus: online,
                mon: BTreeMap::new(),
            },
        );
        Ok(m)
    }

    /// The profile this model emulates.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The mount options in force.
    pub fn opts(&self) -> MountOpts {
        self.opts
    }

    fn default_ctrl(&self, s: &Schema) -> u64 {
        match s.kind {
            SchemaKind::Cache { cbm_mask, .. } => cbm_mask,
            SchemaKind::Mb { max, .. } => max,
        }
    }

    fn closids_supported(&self) -> u32 {
        self.schemas.iter().map(Schema::closids).min().unwrap_or(1)
    }

    fn mon_enabled(&self) -> bool {
        self.profile.mon.is_some()
    }

    fn set_status(&mut self, msg: impl Into<String>) {
        self.last_cmd = msg.into();
    }

    // ----- tree --------------------------------------------------------

    fn group_files(&self, mon: bool) -> Vec<(&'static str, Node)> {
        let mut v = vec![
            ("cpus", Node::File(0o644)),
            ("cpus_list", Node::File(0o644)),
            ("tasks", Node::File(0o644)),
        ];
        if !mon {
            v.push(("schemata", Node::File(0o644)));
            v.push(("mode", Node::File(0o644)));
            v.push(("size", Node::File(0o444)));
            if self.mon_enabled() {
                v.push(("mon_groups", Node::Dir));
            }
        }
        if self.mon_enabled() {
            v.push(("mon_data", Node::Dir));
        }
        v
    }

    fn info_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .schemas
            .iter()
            .map(|s| s.res.name().to_string())
            .collect();
        if self.mon_enabled() {
            v.push("L3_MON".into());
        }
        v
    }

    fn info_files(&self, dir: &str) -> Vec<&'static str> {
        if dir == "L3_MON" {
            return vec!["max_threshold_occupancy", "mon_features", "num_rmids"];
        }
        match self
            .schemas
            .iter()
            .find(|s| s.res.name() == dir)
            .map(|s| &s.kind)
        {
            Some(SchemaKind::Cache { .. }) => {
                vec![
                    "bit_usage",
                    "cbm_mask",
                    "min_cbm_bits",
                    "num_closids",
                    "shareable_bits",
                    "sparse_masks",
                ]
            }
            Some(SchemaKind::Mb { .. }) => {
                let mut v = vec![
                    "bandwidth_gran",
                    "delay_linear",
                    "min_bandwidth",
                    "num_closids",
                ];
                if self
                    .profile
                    .mb
                    .as_ref()
                    .is_some_and(|m| m.thread_throttle_mode.is_some())
                {
                    v.push("thread_throttle_mode");
                }
                v
            }
            None => Vec::new(),
        }
    }

    fn mon_dirs(&self) -> Vec<String> {
        self.profile
            .l3
            .as_ref()
            .map(|l3| {
                l3.domains
                    .iter()
                    .map(|d| format!("mon_L3_{d:02}"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Resolve a group directory: `(ctrl name, mon name, rest of path)`.
    fn split_group<'a>(&self, p: &'a [&'a str]) -> Option<(String, Option<String>, &'a [&'a str])> {
        let (ctrl, rest) = match p.first() {
            Some(&n)
                if self.groups.contains_key(n)
                    && !n.is_empty()
                    && n != "info"
                    && n != "mon_groups"
                    && n != "mon_data" =>
            {
                (n.to_string(), &p[1..])
            }
            _ => (String::new(), p),
        };
        if rest.first() == Some(&"mon_groups") && rest.len() >= 2 {
            let g = self.groups.get(&ctrl)?;
            if g.mon.contains_key(rest[1]) && self.mon_enabled() {
                return Some((ctrl, Some(rest[1].to_string()), &rest[2..]));
            }
            return None;
        }
        Some((ctrl, None, rest))
    }

    /// What `path` is, or `None` if it does not exist.
    pub fn stat(&self, p: &[&str]) -> Option<Node> {
        if p.is_empty() {
            return Some(Node::Dir);
        }
        if p[0] == "info" {
            return match p.len() {
                1 => Some(Node::Dir),
                2 if p[1] == "last_cmd_status" => Some(Node::File(0o444)),
                2 if self.info_dirs().iter().any(|d| d == p[1]) => Some(Node::Dir),
                3 if self.info_files(p[1]).contains(&p[2]) => Some(Node::File(0o444)),
                _ => None,
            };
        }
        let (_, mon, rest) = self.split_group(p)?;
        match rest {
            [] => Some(Node::Dir),
            [f] => self
                .group_files(mon.is_some())
                .into_iter()
                .find(|(n, _)| n == f)
                .map(|(_, k)| k),
            ["mon_data", d] if self.mon_enabled() && self.mon_dirs().iter().any(|x| x == d) => {
                Some(Node::Dir)
            }
            ["mon_data", d, f]
                if self.mon_enabled()
                    && self.mon_dirs().iter().any(|x| x == d)
                    && self
                        .profile
                        .mon
                        .as_ref()
                        .is_some_and(|m| m.features.iter().any(|x| x == f)) =>
            {
                Some(Node::File(0o444))
            }
            _ => None,
        }
    }

    /// The entries of directory `path`.
    pub fn list(&self, p: &[&str]) -> Vec<(String, Node)> {
        let mut out: Vec<(String, Node)> = Vec::new();
        if p.first() == Some(&"info") {
            match p.len() {
                1 => {
                    out.push(("last_cmd_status".into(), Node::File(0o444)));
                    out.extend(self.info_dirs().into_iter().map(|d| (d, Node::Dir)));
                }
                2 => out.extend(
                    self.info_files(p[1])
                        .into_iter()
                        .map(|f| (f.to_string(), Node::File(0o444))),
                ),
                _ => {}
            }
            return out;
        }
        let Some((ctrl, mon, rest)) = self.split_group(p) else {
            return out;
        };
        match rest {
            [] => {
                if ctrl.is_empty() && mon.is_none() {
                    out.push(("info".into(), Node::Dir));
                    out.extend(
                        self.groups
                            .keys()
                            .filter(|k| !k.is_empty())
                            .map(|k| (k.clone(), Node::Dir)),
                    );
                }
                out.extend(
                    self.group_files(mon.is_some())
                        .into_iter()
                        .map(|(n, k)| (n.to_string(), k)),
                );
            }
            ["mon_groups"] => {
                if let Some(g) = self.groups.get(&ctrl) {
                    out.extend(g.mon.keys().map(|k| (k.clone(), Node::Dir)));
                }
            }
            ["mon_data"] => out.extend(self.mon_dirs().into_iter().map(|d| (d, Node::Dir))),
            ["mon_data", _] => {
                if let Some(m) = &self.profile.mon {
                    out.extend(m.features.iter().map(|f| (f.clone(), Node::File(0o444))));
                }
            }
            _ => {}
        }
        out
    }

    // ----- reads -------------------------------------------------------

    /// The content of file `path`.
    pub fn read(&self, p: &[&str]) -> Result<String, Errno> {
        match self.stat(p) {
            Some(Node::File(_)) => {}
            Some(Node::Dir) => return Err(libc::EISDIR),
            None => return Err(ENOENT),
        }
        if p[0] == "info" {
            return Ok(self.read_info(p));
        }
        let (ctrl, mon, rest) = self.split_group(p).ok_or(ENOENT)?;
        let g = self.groups.get(&ctrl).ok_or(ENOENT)?;
        let cpus = match &mon {
            Some(m) => g.mon.get(m).map(|m| m.cpus.clone()).unwrap_or_default(),
            None => g.cpus.clone(),
        };
        Ok(match rest {
            ["cpus"] => format!("{}\n", cpulist::format_mask(&cpus, self.profile.cpus)),
            ["cpus_list"] => format!("{}\n", cpulist::format_list(&cpus)),
            ["tasks"] => self
                .task_ids_of(&ctrl, mon.as_deref())
                .iter()
                .map(|t| format!("{t}\n"))
                .collect(),
            ["schemata"] => self.show_schemata(g),
            ["mode"] => format!("{}\n", g.mode.as_str()),
            ["size"] => self.show_size(g),
            ["mon_data", d, f] => format!("{}\n", self.counter(&ctrl, mon.as_deref(), d, f)),
            _ => return Err(ENOENT),
        })
    }

    fn name_width(&self) -> usize {
        self.schemas
            .iter()
            .map(|s| s.res.name().len())
            .max()
            .unwrap_or(0)
    }

    fn show_schemata(&self, g: &CtrlGroup) -> String {
        let w = self.name_width();
        let mut s = String::new();
        for sc in &self.schemas {
            let vals = &g.ctrl[&sc.res];
            let items: Vec<String> = sc
                .domains
                .iter()
                .map(|d| match sc.kind {
                    SchemaKind::Cache { cbm_mask, .. } => format!(
                        "{d}={:0w$x}",
                        vals[d],
                        w = cbm::hex_width(cbm::cbm_len(cbm_mask))
                    ),
                    SchemaKind::Mb { .. } => format!("{d}={:>3}", vals[d]),
                })
                .collect();
            s.push_str(&format!("{:>w$}:{}\n", sc.res.name(), items.join(";")));
        }
        s
    }

    fn show_size(&self, g: &CtrlGroup) -> String {
        let w = self.name_width();
        let mut s = String::new();
        for sc in &self.schemas {
            let vals = &g.ctrl[&sc.res];
            let items: Vec<String> = sc
                .domains
                .iter()
                .map(|d| match sc.kind {
                    SchemaKind::Cache {
                        cbm_mask,
                        cache_bytes,
                        ..
                    } => {
                        format!(
                            "{d}={}",
                            u64::from(cbm::ways(vals[d])) * cache_bytes
                                / u64::from(cbm::cbm_len(cbm_mask))
                        )
                    }
                    SchemaKind::Mb { .. } => format!("{d}={}", vals[d]),
                })
                .collect();
            s.push_str(&format!("{:>w$}:{}\n", sc.res.name(), items.join(";")));
        }
        s
    }

    fn read_info(&self, p: &[&str]) -> String {
        if p.len() == 2 {
            return if self.last_cmd.is_empty() {
                "ok\n".into()
            } else {
                self.last_cmd.clone()
            };
        }
        if p[1] == "L3_MON" {
            let m = self.profile.mon.as_ref();
            return match p[2] {
                "num_rmids" => format!("{}\n", m.map_or(0, |m| m.num_rmids)),
                "mon_features" => m
                    .map(|m| m.features.iter().map(|f| format!("{f}\n")).collect())
                    .unwrap_or_default(),
                _ => format!(
                    "{}\n",
                    self.profile.l3.as_ref().map_or(0, |l| l.cache_bytes
                        / u64::from(cbm::ways(l.cbm_mask()).max(1)))
                ),
            };
        }
        let Some(sc) = self.schemas.iter().find(|s| s.res.name() == p[1]) else {
            return String::new();
        };
        match (&sc.kind, p[2]) {
            (_, "num_closids") => format!("{}\n", sc.closids()),
            (SchemaKind::Cache { cbm_mask, .. }, "cbm_mask") => format!("{}\n", hex(*cbm_mask)),
            (SchemaKind::Cache { min_cbm_bits, .. }, "min_cbm_bits") => format!("{min_cbm_bits}\n"),
            (SchemaKind::Cache { shareable, .. }, "shareable_bits") => {
                format!("{}\n", hex(*shareable))
            }
            (SchemaKind::Cache { sparse, .. }, "sparse_masks") => {
                format!("{}\n", u8::from(*sparse))
            }
            (SchemaKind::Cache { .. }, "bit_usage") => self.bit_usage(sc),
            (SchemaKind::Mb { min, .. }, "min_bandwidth") => format!("{min}\n"),
            (SchemaKind::Mb { gran, .. }, "bandwidth_gran") => format!("{gran}\n"),
            (SchemaKind::Mb { .. }, "delay_linear") => {
                format!(
                    "{}\n",
                    u8::from(self.profile.mb.as_ref().is_some_and(|m| m.delay_linear))
                )
            }
            (SchemaKind::Mb { .. }, "thread_throttle_mode") => {
                format!(
                    "{}\n",
                    self.profile
                        .mb
                        .as_ref()
                        .and_then(|m| m.thread_throttle_mode.clone())
                        .unwrap_or_default()
                )
            }
            _ => String::new(),
        }
    }

    /// Masks of `res` and its CDP peer held by closid-owning groups other than `skip`.
    fn peer_resources(res: &Resource) -> Vec<Resource> {
        match res {
            Resource::L3Data | Resource::L3Code => vec![Resource::L3Data, Resource::L3Code],
            Resource::L2Data | Resource::L2Code => vec![Resource::L2Data, Resource::L2Code],
            r => vec![r.clone()],
        }
    }

    fn bit_usage(&self, sc: &Schema) -> String {
        let SchemaKind::Cache {
            cbm_mask,
            shareable,
            ..
        } = sc.kind
        else {
            return String::new();
        };
        let len = cbm::cbm_len(cbm_mask);
        let items: Vec<String> = sc
            .domains
            .iter()
            .map(|d| {
                let (mut sw, mut ex) = (0u64, 0u64);
                for g in self.groups.values() {
                    for r in Self::peer_resources(&sc.res) {
                        let v = g.ctrl.get(&r).and_then(|m| m.get(d)).copied().unwrap_or(0);
                        match g.mode {
                            Mode::Exclusive => ex |= v,
                            _ => sw |= v,
                        }
                    }
                }
                let bits: String = (0..len)
                    .rev()
                    .map(|i| {
                        let (h, s, e) =
                            (shareable >> i & 1 == 1, sw >> i & 1 == 1, ex >> i & 1 == 1);
                        match (h, s) {
                            (true, true) => 'X',
                            (true, false) => 'H',
                            (false, true) => 'S',
                            _ if e => 'E',
                            _ => '0',
                        }
                    })
                    .collect();
                format!("{d}={bits}")
            })
            .collect();
        format!("{}\n", items.join(";"))
    }

    fn live_tasks(&self) -> Option<BTreeSet<u32>> {
        let root = self.proc_root.as_ref()?;
        let mut out = BTreeSet::new();
        for e in std::fs::read_dir(root).ok()?.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            match std::fs::read_dir(e.path().join("task")) {
                Ok(rd) => out
                    .extend(rd.flatten().filter_map(|t| {
                        t.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                    })),
                Err(_) => {
                    out.insert(pid);
                }
            }
        }
        Some(out)
    }

    fn task_exists(&self, tid: u32) -> bool {
        match &self.proc_root {
            Some(r) => r.join(tid.to_string()).exists(),
            None => true,
        }
    }

    fn task_ids_of(&self, ctrl: &str, mon: Option<&str>) -> Vec<u32> {
        let placed: Vec<u32> = self
            .tasks
            .iter()
            .filter(|(t, (c, m))| {
                c == ctrl && (mon.is_none() || m.as_deref() == mon) && self.task_exists(**t)
            })
            .map(|(t, _)| *t)
            .collect();
        if ctrl.is_empty()
            && mon.is_none()
            && let Some(all) = self.live_tasks()
        {
            return all
                .into_iter()
                .filter(|t| self.tasks.get(t).is_none_or(|(c, _)| c.is_empty()))
                .collect();
        }
        placed
    }

    fn counter(&self, ctrl: &str, mon: Option<&str>, dir: &str, event: &str) -> u64 {
        let Some(g) = self.groups.get(ctrl) else {
            return 0;
        };
        let dom: u32 = dir.trim_start_matches("mon_L3_").parse().unwrap_or(0);
        // Synthetic but consistent counters: a group that holds tasks or
        // CPUs uses its share of the cache and moves 100 MB/s per task (or
        // per CPU) scaled by its MB value; others read 0.
        let ntasks = self.task_ids_of(ctrl, mon).len() as u64;
        let ncpus = match mon {
            Some(m) => g.mon.get(m).map_or(0, |m| m.cpus.len()),
            None => g.cpus.len(),
        } as u64;
        let active = (ntasks + ncpus).min(64);
        if active == 0 {
            return 0;
        }
        match event {
            "llc_occupancy" => {
                let Some(l3) = &self.profile.l3 else { return 0 };
                let r = if self.opts.cdp {
                    Resource::L3Data
                } else {
                    Resource::L3
                };
                let mask = g
                    .ctrl
                    .get(&r)
                    .and_then(|m| m.get(&dom))
                    .copied()
                    .unwrap_or(0);
                u64::from(cbm::ways(mask)) * l3.cache_bytes
                    / u64::from(cbm::ways(l3.cbm_mask()).max(1))
                    / 2
            }
            _ => {
                let pct = match (
                    &self.profile.mb,
                    g.ctrl.get(&Resource::Mb).and_then(|m| m.get(&dom)),
                ) {
                    (Some(mb), Some(&v)) if !self.opts.mba_mbps => v * 100 / mb.max.max(1),
                    _ => 100,
                };
                let ms = self.start.elapsed().as_millis() as u64;
                let total = active * ms * 100_000 * pct / 100; // 100 MB/s = 100_000 bytes/ms
                if event == "mbm_local_bytes" {
                    total / 10 * 8
                } else {
                    total
                }
            }
        }
    }

    // ----- writes ------------------------------------------------------

    /// Write `data` to file `path`, as one `write(2)`; `caller` is the
    /// writer's task id (what `0` means in `tasks`).
    pub fn write(&mut self, p: &[&str], data: &[u8], caller: u32) -> Result<(), Errno> {
        match self.stat(p) {
            Some(Node::File(perm)) if perm & 0o200 != 0 => {}
            Some(Node::File(_)) => return Err(EACCES),
            Some(Node::Dir) => return Err(libc::EISDIR),
            None => return Err(ENOENT),
        }
        let text = String::from_utf8_lossy(data).into_owned();
        let (ctrl, mon, rest) = self.split_group(p).ok_or(ENOENT)?;
        match rest {
            ["schemata"] => self.write_schemata(&ctrl, &text),
            ["mode"] => self.write_mode(&ctrl, &text),
            ["tasks"] => self.write_tasks(&ctrl, mon.as_deref(), &text, caller),
            ["cpus"] => self.write_cpus(&ctrl, mon.as_deref(), &text, false),
            ["cpus_list"] => self.write_cpus(&ctrl, mon.as_deref(), &text, true),
            _ => Err(EACCES),
        }
    }

    fn write_schemata(&mut self, ctrl: &str, text: &str) -> Result<(), Errno> {
        // Valid input requires a trailing newline.
        let Some(body) = text.strip_suffix('\n') else {
            return Err(EINVAL);
        };
        self.last_cmd.clear();
        let g = self.groups.get(ctrl).ok_or(ENOENT)?.clone();
        let mut staged: BTreeMap<(Resource, u32), u64> = BTreeMap::new();
        for line in body.split('\n') {
            let Some((name, tok)) = line.split_once(':') else {
                self.set_status("Missing ':'\n");
                return Err(EINVAL);
            };
            let name = name.trim();
            if tok.is_empty() {
                self.set_status(format!("Missing '{name}' value\n"));
                return Err(EINVAL);
            }
            let Some(sc) = self.schemas.iter().find(|s| s.res.name() == name).cloned() else {
                self.set_status(format!("Unknown or unsupported resource name '{name}'\n"));
                return Err(EINVAL);
            };
            for dom in tok.split(';') {
                if dom.is_empty() {
                    break;
                }
                let Some((id, val)) = dom.split_once('=') else {
                    self.set_status("Missing '=' or non-numeric domain\n");
                    return Err(EINVAL);
                };
                let Ok(id) = id.parse::<u32>() else {
                    self.set_status("Missing '=' or non-numeric domain\n");
                    return Err(EINVAL);
                };
                let val = val.trim();
                if !sc.domains.contains(&id) {
                    // The kernel refuses an unknown domain without a message.
                    return Err(EINVAL);
                }
                if staged.contains_key(&(sc.res.clone(), id)) {
                    self.set_status(format!("Duplicate domain {id}\n"));
                    return Err(EINVAL);
                }
                let v = self.parse_value(&sc, &g, ctrl, id, val)?;
                staged.insert((sc.res.clone(), id), v);
            }
        }
        let g = self.groups.get_mut(ctrl).ok_or(ENOENT)?;
        for ((r, d), v) in staged {
            g.ctrl.entry(r).or_default().insert(d, v);
        }
        Ok(())
    }

    fn parse_value(
        &mut self,
        sc: &Schema,
        g: &CtrlGroup,
        ctrl: &str,
        dom: u32,
        val: &str,
    ) -> Result<u64, Errno> {
        match sc.kind {
            SchemaKind::Mb { min, gran, max, .. } => {
                let Ok(bw) = val.parse::<u64>() else {
                    self.set_status(format!("Non-decimal digit in MB value {val}\n"));
                    return Err(EINVAL);
                };
                if !self.opts.mba_mbps && (bw < min || bw > max) {
                    self.set_status(format!("MB value {bw} out of range [{min},{max}]\n"));
                    return Err(EINVAL);
                }
                Ok(if self.opts.mba_mbps {
                    bw
                } else {
                    bw.div_ceil(gran) * gran
                })
            }
            SchemaKind::Cache {
                cbm_mask,
                min_cbm_bits,
                sparse,
                ..
            } => {
                let Some(m) = crate::schemata::parse_hex(val) else {
                    self.set_status(format!("Non-hex character in the mask {val}\n"));
                    return Err(EINVAL);
                };
                if (min_cbm_bits > 0 && m == 0) || m > cbm_mask {
                    self.set_status("Mask out of range\n");
                    return Err(EINVAL);
                }
                if !sparse && !cbm::is_contiguous(m) {
                    self.set_status(format!("The mask {m:x} has non-consecutive 1-bits\n"));
                    return Err(EINVAL);
                }
                // The kernel counts the first run of ones (zero_bit - first_bit).
                let bits = cbm::ways(cbm::first_run(m));
                if bits < min_cbm_bits {
                    self.set_status(format!("Need at least {min_cbm_bits} bits in the mask\n"));
                    return Err(EINVAL);
                }
                if self.overlaps(sc, dom, m, ctrl, true) {
                    self.set_status("Overlaps with exclusive group\n");
                    return Err(EINVAL);
                }
                if g.mode == Mode::Exclusive && self.overlaps(sc, dom, m, ctrl, false) {
                    self.set_status("Overlaps with other group\n");
                    return Err(EINVAL);
                }
                Ok(m)
            }
        }
    }

    /// `rdtgroup_cbm_overlaps()`: with `exclusive`, only exclusive groups
    /// count; without, `shareable_bits` and every other group count.
    fn overlaps(&self, sc: &Schema, dom: u32, m: u64, me: &str, exclusive: bool) -> bool {
        let SchemaKind::Cache { shareable, .. } = sc.kind else {
            return false;
        };
        if !exclusive && m & shareable != 0 {
            return true;
        }
        for (name, g) in &self.groups {
            if name == me {
                continue;
            }
            for r in Self::peer_resources(&sc.res) {
                let theirs = g
                    .ctrl
                    .get(&r)
                    .and_then(|x| x.get(&dom))
                    .copied()
                    .unwrap_or(0);
                if m & theirs != 0 && (!exclusive || g.mode == Mode::Exclusive) {
                    return true;
                }
            }
        }
        false
    }

    fn write_mode(&mut self, ctrl: &str, text: &str) -> Result<(), Errno> {
        let Some(body) = text.strip_suffix('\n') else {
            return Err(EINVAL);
        };
        self.last_cmd.clear();
        let word = body.trim();
        let cur = self.groups.get(ctrl).ok_or(ENOENT)?.mode;
        let Some(new) = Mode::parse(word) else {
            self.set_status("Unknown or unsupported mode\n");
            return Err(EINVAL);
        };
        if new == cur {
            return Ok(());
        }
        match new {
            Mode::Shareable => {}
            Mode::Exclusive => {
                let g = self.groups.get(ctrl).ok_or(ENOENT)?;
                let mut has_cache = false;
                for sc in self.schemas.iter().filter(|s| s.is_cache()) {
                    has_cache = true;
                    for &d in &sc.domains {
                        let m = g.ctrl[&sc.res][&d];
                        if self.overlaps(sc, d, m, ctrl, false) {
                            self.set_status("Schemata overlaps\n");
                            return Err(EINVAL);
                        }
                    }
                }
                if !has_cache {
                    self.set_status("Cannot be exclusive without CAT/CDP\n");
                    return Err(EINVAL);
                }
            }
            Mode::PseudoLockSetup | Mode::PseudoLocked => {
                if ctrl.is_empty() {
                    self.set_status("Cannot change default group mode\n");
                } else if new == Mode::PseudoLocked {
                    self.set_status("Unknown or unsupported mode\n");
                } else {
                    self.set_status("Pseudo-locking not supported\n");
                }
                return Err(EINVAL);
            }
        }
        self.groups.get_mut(ctrl).ok_or(ENOENT)?.mode = new;
        Ok(())
    }

    fn write_tasks(
        &mut self,
        ctrl: &str,
        mon: Option<&str>,
        text: &str,
        caller: u32,
    ) -> Result<(), Errno> {
        self.last_cmd.clear();
        for item in text.trim_end_matches('\n').split(',') {
            let s = item.trim();
            if s.is_empty() {
                continue;
            }
            let Ok(pid) = s.parse::<i64>() else {
                self.set_status(format!("Task list parsing error pid {s}\n"));
                return Err(EINVAL);
            };
            if pid < 0 || pid > i64::from(i32::MAX) {
                self.set_status(format!("Invalid pid {pid}\n"));
                return Err(EINVAL);
            }
            let tid = if pid == 0 { caller } else { pid as u32 };
            if !self.task_exists(tid) {
                self.set_status(format!("No task {tid}\n"));
                return Err(libc::ESRCH);
            }
            if let Some(m) = mon {
                let cur = self.tasks.get(&tid).map(|(c, _)| c.as_str()).unwrap_or("");
                if cur != ctrl {
                    self.set_status("Can't move task to different control group\n");
                    return Err(EINVAL);
                }
                self.tasks
                    .insert(tid, (ctrl.to_string(), Some(m.to_string())));
            } else if ctrl.is_empty() {
                self.tasks.remove(&tid);
            } else {
                self.tasks.insert(tid, (ctrl.to_string(), None));
            }
        }
        Ok(())
    }

    fn write_cpus(
        &mut self,
        ctrl: &str,
        mon: Option<&str>,
        text: &str,
        list: bool,
    ) -> Result<(), Errno> {
        self.last_cmd.clear();
        let parsed = if list {
            cpulist::parse_list(text)
        } else if text.trim().is_empty() {
            Ok(CpuSet::new())
        } else {
            cpulist::parse_mask(text)
        };
        let Ok(new) = parsed else {
            self.set_status("Bad CPU list/mask\n");
            return Err(EINVAL);
        };
        if !new.is_subset(&self.online) {
            self.set_status("Can only assign online CPUs\n");
            return Err(EINVAL);
        }
        if let Some(m) = mon {
            let g = self.groups.get_mut(ctrl).ok_or(ENOENT)?;
            if !new.is_subset(&g.cpus) {
                self.set_status("Can only add CPUs to mongroup that belong to parent\n");
                return Err(EINVAL);
            }
            for (name, mg) in g.mon.iter_mut() {
                if name == m {
                    mg.cpus = new.clone();
                } else {
                    mg.cpus.retain(|c| !new.contains(c));
                }
            }
            return Ok(());
        }
        let old = self.groups.get(ctrl).ok_or(ENOENT)?.cpus.clone();
        if ctrl.is_empty() && !old.is_subset(&new) {
            self.set_status("Can't drop CPUs from default group\n");
            return Err(EINVAL);
        }
        let dropped: CpuSet = old.difference(&new).copied().collect();
        for (name, g) in self.groups.iter_mut() {
            if name == ctrl {
                g.cpus = new.clone();
                for mg in g.mon.values_mut() {
                    mg.cpus.retain(|c| new.contains(c));
                }
            } else {
                g.cpus.retain(|c| !new.contains(c));
                for mg in g.mon.values_mut() {
                    mg.cpus.retain(|c| !new.contains(c));
                }
                if name.is_empty() {
                    g.cpus.extend(dropped.iter().copied());
                }
            }
        }
        Ok(())
    }

    // ----- mkdir / rmdir -----------------------------------------------

    fn used_rmids(&self) -> BTreeSet<u32> {
        self.groups
            .values()
            .flat_map(|g| std::iter::once(g.rmid).chain(g.mon.values().map(|m| m.rmid)))
            .collect()
    }

    fn alloc_rmid(&mut self) -> Result<u32, Errno> {
        if !self.mon_enabled() {
            return Ok(0);
        }
        let used = self.used_rmids();
        match (1..self.num_rmids).find(|r| !used.contains(r)) {
            Some(r) => Ok(r),
            None => {
                self.set_status("Out of RMIDs\n");
                Err(ENOSPC)
            }
        }
    }

    /// Create directory `path`: a control group at the root, a monitoring
    /// group under `mon_groups`.
    pub fn mkdir(&mut self, p: &[&str]) -> Result<(), Errno> {
        self.last_cmd.clear();
        if self.stat(p).is_some() {
            return Err(EEXIST);
        }
        match p {
            [name] => {
                if name.contains('\n') {
                    return Err(EINVAL);
                }
                let used: BTreeSet<u32> = self.groups.values().map(|g| g.closid).collect();
                let Some(closid) = (1..self.closids_supported()).find(|c| !used.contains(c)) else {
                    self.set_status("Out of CLOSIDs\n");
                    return Err(ENOSPC);
                };
                let rmid = self.alloc_rmid()?;
                let mut ctrl = BTreeMap::new();
                for sc in self.schemas.clone() {
                    let mut per = BTreeMap::new();
                    for &d in &sc.domains {
                        let v = match sc.kind {
                            SchemaKind::Cache {
                                cbm_mask,
                                min_cbm_bits,
                                shareable,
                                ..
                            } => {
                                // rdtgroup_init_alloc(): shareable_bits, the masks of
                                // shareable groups and the unused ways; then the
                                // first contiguous run of them.
                                let mut new = shareable;
                                let mut used_b = shareable;
                                for g in self.groups.values() {
                                    for r in Self::peer_resources(&sc.res) {
                                        let v = g
                                            .ctrl
                                            .get(&r)
                                            .and_then(|x| x.get(&d))
                                            .copied()
                                            .unwrap_or(0);
                                        used_b |= v;
                                        if g.mode == Mode::Shareable {
                                            new |= v;
                                        }
                                    }
                                }
                                new |= !used_b & cbm_mask;
                                let new = if cbm::is_contiguous(new) {
                                    new
                                } else {
                                    cbm::first_run(new)
                                };
                                if cbm::ways(new) < min_cbm_bits {
                                    self.set_status(format!("No space on {}:{d}\n", sc.res.name()));
                                    return Err(ENOSPC);
                                }
                                new
                            }
                            SchemaKind::Mb { max, .. } => max,
                        };
                        per.insert(d, v);
                    }
                    ctrl.insert(sc.res.clone(), per);
                }
                self.groups.insert(
                    name.to_string(),
                    CtrlGroup {
                        closid,
                        rmid,
                        mode: Mode::Shareable,
                        ctrl,
                        cpus: CpuSet::new(),
                        mon: BTreeMap::new(),
                    },
                );
                Ok(())
            }
            _ if self.mon_enabled()
                && p.len() >= 2
                && p[p.len() - 2] == "mon_groups"
                && p.len() <= 3 =>
            {
                let ctrl = if p.len() == 3 { p[0] } else { "" };
                if !self.groups.contains_key(ctrl) {
                    return Err(ENOENT);
                }
                let rmid = self.alloc_rmid()?;
                let g = self.groups.get_mut(ctrl).ok_or(ENOENT)?;
                g.mon.insert(
                    p[p.len() - 1].to_string(),
                    MonGroup {
                        rmid,
                        cpus: CpuSet::new(),
                    },
                );
                Ok(())
            }
            _ => Err(EPERM),
        }
    }

    /// Remove directory `path`: a control group (its tasks and CPUs go back
    /// to the default group) or a monitoring group (its tasks go back to
    /// the parent control group).
    pub fn rmdir(&mut self, p: &[&str]) -> Result<(), Errno> {
        self.last_cmd.clear();
        if self.stat(p).is_none() {
            return Err(ENOENT);
        }
        let (ctrl, mon, rest) = self.split_group(p).ok_or(ENOENT)?;
        if !rest.is_empty() || (ctrl.is_empty() && mon.is_none()) {
            return Err(EPERM);
        }
        match mon {
            Some(m) => {
                if let Some(g) = self.groups.get_mut(&ctrl) {
                    g.mon.remove(&m);
                }
                for place in self.tasks.values_mut() {
                    if place.0 == ctrl && place.1.as_deref() == Some(m.as_str()) {
                        place.1 = None;
                    }
                }
            }
            None => {
                let g = self.groups.remove(&ctrl).ok_or(ENOENT)?;
                if let Some(root) = self.groups.get_mut("") {
                    root.cpus.extend(g.cpus.iter().copied());
                }
                self.tasks.retain(|_, (c, _)| c != &ctrl);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skx() -> Model {
        Model::new(
            Profile::load("skylake-sp").expect("builtin"),
            MountOpts::default(),
            None,
        )
        .expect("mount")
    }

    fn w(m: &mut Model, path: &str, data: &str) -> Result<(), Errno> {
        let p: Vec<&str> = path.split('/').collect();
        m.write(&p, data.as_bytes(), 1)
    }

    fn r(m: &Model, path: &str) -> String {
        let p: Vec<&str> = if path.is_empty() {
            vec![]
        } else {
            path.split('/').collect()
        };
        m.read(&p).expect("readable")
    }

    #[test]
    fn root_layout_as_the_kernel_prints_it() {
        let m = skx();
        assert_eq!(r(&m, "schemata"), "L3:0=7ff;1=7ff\nMB:0=100;1=100\n");
        assert_eq!(r(&m, "info/L3/cbm_mask"), "7ff\n");
        assert_eq!(r(&m, "info/L3/bit_usage"), "0=XXSSSSSSSSS;1=XXSSSSSSSSS\n");
        assert_eq!(r(&m, "info/last_cmd_status"), "ok\n");
        assert_eq!(r(&m, "cpus_list"), "0-39\n");
        assert_eq!(r(&m, "mode"), "shareable\n");
    }

    #[test]
    fn mkdir_populates_and_runs_out_of_closids() {
        let mut m = skx();
        // MBA has 8 CLOSIDs on this CPU: the default group and 7 more.
        for i in 0..7 {
            m.mkdir(&[&format!("g{i}")]).expect("closid free");
        }
        assert_eq!(m.mkdir(&["g7"]), Err(ENOSPC));
        assert_eq!(r(&m, "info/last_cmd_status"), "Out of CLOSIDs\n");
        let names: Vec<String> = m.list(&["g0"]).into_iter().map(|(n, _)| n).collect();
        for f in [
            "cpus",
            "cpus_list",
            "tasks",
            "schemata",
            "mode",
            "size",
            "mon_groups",
            "mon_data",
        ] {
            assert!(names.iter().any(|n| n == f), "{f} missing in {names:?}");
        }
        assert_eq!(r(&m, "g0/schemata"), "L3:0=7ff;1=7ff\nMB:0=100;1=100\n");
        m.rmdir(&["g0"]).expect("rmdir");
        m.mkdir(&["g7"]).expect("closid freed");
    }

    #[test]
    fn schemata_refusals_explained() {
        let mut m = skx();
        m.mkdir(&["g"]).expect("mkdir");
        let cases = [
            ("L3:0=0\n", "Mask out of range\n"),
            ("L3:0=800\n", "Mask out of range\n"),
            ("L3:0=101\n", "The mask 101 has non-consecutive 1-bits\n"),
            ("L3:0=xyz\n", "Non-hex character in the mask xyz\n"),
            ("L3:0=f;0=f\n", "Duplicate domain 0\n"),
            ("L9:0=f\n", "Unknown or unsupported resource name 'L9'\n"),
            ("L3\n", "Missing ':'\n"),
            ("L3:\n", "Missing 'L3' value\n"),
            ("L3:a=f\n", "Missing '=' or non-numeric domain\n"),
            ("MB:0=5\n", "MB value 5 out of range [10,100]\n"),
            ("MB:0=x\n", "Non-decimal digit in MB value x\n"),
        ];
        for (input, status) in cases {
            assert_eq!(w(&mut m, "g/schemata", input), Err(EINVAL), "{input:?}");
            assert_eq!(r(&m, "info/last_cmd_status"), status, "{input:?}");
        }
        // Unknown domain: EINVAL without a message, as the kernel does.
        assert_eq!(w(&mut m, "g/schemata", "L3:7=f\n"), Err(EINVAL));
        assert_eq!(r(&m, "info/last_cmd_status"), "ok\n");
        // No trailing newline.
        assert_eq!(w(&mut m, "g/schemata", "L3:0=f"), Err(EINVAL));
        // MB rounds up to the granularity.
        w(&mut m, "g/schemata", "MB:1=55\n").expect("valid");
        assert_eq!(r(&m, "g/schemata"), "L3:0=7ff;1=7ff\nMB:0=100;1= 60\n");
    }

    #[test]
    fn exclusive_mode() {
        let mut m = skx();
        m.mkdir(&["a"]).expect("mkdir");
        assert_eq!(w(&mut m, "a/mode", "exclusive\n"), Err(EINVAL));
        assert_eq!(r(&m, "info/last_cmd_status"), "Schemata overlaps\n");
        w(&mut m, "schemata", "L3:0=00f;1=00f\n").expect("shrink root");
        w(&mut m, "a/schemata", "L3:0=0f0;1=0f0\n").expect("move a");
        w(&mut m, "a/mode", "exclusive\n").expect("exclusive");
        assert_eq!(w(&mut m, "schemata", "L3:0=01f\n"), Err(EINVAL));
        assert_eq!(
            r(&m, "info/last_cmd_status"),
            "Overlaps with exclusive group\n"
        );
        assert_eq!(w(&mut m, "a/schemata", "L3:0=1f0\n"), Ok(()));
        assert_eq!(w(&mut m, "a/schemata", "L3:0=3f0\n"), Err(EINVAL));
        assert_eq!(r(&m, "info/last_cmd_status"), "Overlaps with other group\n");
        assert_eq!(r(&m, "info/L3/bit_usage"), "0=HHEEEEESSSS;1=HH0EEEESSSS\n");
        m.mkdir(&["b"]).expect("mkdir");
        // A new group gets the shareable and unused ways, never exclusive ones.
        assert_eq!(r(&m, "b/schemata"), "L3:0=00f;1=00f\nMB:0=100;1=100\n");
    }

    #[test]
    fn cpus_move_between_groups() {
        let mut m = skx();
        m.mkdir(&["a"]).expect("mkdir");
        w(&mut m, "a/cpus_list", "2-3\n").expect("valid");
        assert_eq!(r(&m, "cpus_list"), "0-1,4-39\n");
        assert_eq!(r(&m, "a/cpus"), "00,0000000c\n");
        assert_eq!(w(&mut m, "cpus_list", "0-1\n"), Err(EINVAL));
        assert_eq!(
            r(&m, "info/last_cmd_status"),
            "Can't drop CPUs from default group\n"
        );
        assert_eq!(w(&mut m, "a/cpus_list", "99\n"), Err(EINVAL));
        assert_eq!(
            r(&m, "info/last_cmd_status"),
            "Can only assign online CPUs\n"
        );
        m.rmdir(&["a"]).expect("rmdir");
        assert_eq!(r(&m, "cpus_list"), "0-39\n");
    }

    #[test]
    fn mon_groups_tasks_and_cpus() {
        let mut m = skx();
        m.mkdir(&["a"]).expect("mkdir");
        m.mkdir(&["b"]).expect("mkdir");
        m.mkdir(&["a", "mon_groups", "m"]).expect("mon mkdir");
        w(&mut m, "a/cpus", "f0\n").expect("hex mask");
        assert_eq!(r(&m, "a/cpus_list"), "4-7\n");
        assert_eq!(w(&mut m, "a/mon_groups/m/cpus_list", "8\n"), Err(EINVAL));
        assert_eq!(
            r(&m, "info/last_cmd_status"),
            "Can only add CPUs to mongroup that belong to parent\n"
        );
        w(&mut m, "a/mon_groups/m/cpus_list", "4-5\n").expect("subset");
        // A task must be in the parent control group before its monitoring group.
        assert_eq!(w(&mut m, "a/mon_groups/m/tasks", "77\n"), Err(EINVAL));
        assert_eq!(
            r(&m, "info/last_cmd_status"),
            "Can't move task to different control group\n"
        );
        w(&mut m, "a/tasks", "77\n").expect("move");
        w(&mut m, "a/mon_groups/m/tasks", "77\n").expect("move to mon");
        assert_eq!(r(&m, "a/tasks"), "77\n");
        assert_eq!(r(&m, "a/mon_groups/m/tasks"), "77\n");
        // Moving the CPUs to another control group takes them from the mon group too.
        w(&mut m, "b/cpus_list", "4\n").expect("move cpu");
        assert_eq!(r(&m, "a/mon_groups/m/cpus_list"), "5\n");
        assert_eq!(w(&mut m, "a/tasks", "x\n"), Err(EINVAL));
        assert_eq!(
            r(&m, "info/last_cmd_status"),
            "Task list parsing error pid x\n"
        );
        m.rmdir(&["a", "mon_groups", "m"]).expect("rmdir mon");
        assert_eq!(r(&m, "a/tasks"), "77\n", "tasks stay in the parent");
        m.rmdir(&["a"]).expect("rmdir");
        assert_eq!(m.rmdir(&[]), Err(EPERM));
        assert_eq!(m.mkdir(&["info"]), Err(EEXIST));
        assert_eq!(w(&mut m, "mode", "pseudo-locksetup\n"), Err(EINVAL));
        assert_eq!(
            r(&m, "info/last_cmd_status"),
            "Cannot change default group mode\n"
        );
        assert_eq!(w(&mut m, "b/mode", "bogus\n"), Err(EINVAL));
        assert_eq!(
            r(&m, "info/last_cmd_status"),
            "Unknown or unsupported mode\n"
        );
    }

    #[test]
    fn cdp_layout() {
        let p = Profile::load("icelake-sp").expect("builtin");
        let m = Model::new(
            p,
            MountOpts {
                cdp: true,
                ..Default::default()
            },
            None,
        )
        .expect("mount");
        assert_eq!(
            r(&m, "schemata"),
            "L3DATA:0=fff;1=fff\nL3CODE:0=fff;1=fff\n    MB:0=100;1=100\n"
        );
        assert_eq!(r(&m, "info/L3DATA/num_closids"), "8\n");
        assert!(
            Model::new(
                Profile::load("skylake-sp").expect("builtin"),
                MountOpts {
                    cdp: true,
                    ..Default::default()
                },
                None
            )
            .is_err()
        );
    }

    #[test]
    fn amd_units_and_empty_masks() {
        let p = Profile::load("epyc-milan").expect("builtin");
        let mut m = Model::new(p, MountOpts::default(), None).expect("mount");
        m.mkdir(&["g"]).expect("mkdir");
        w(&mut m, "g/schemata", "L3:3=0;5=f0f\nMB:3=512\n")
            .expect("AMD takes empty and sparse masks");
        assert_eq!(w(&mut m, "g/schemata", "MB:3=2049\n"), Err(EINVAL));
        assert_eq!(
            r(&m, "info/last_cmd_status"),
            "MB value 2049 out of range [0,2048]\n"
        );
        assert!(r(&m, "g/schemata").contains("MB:0=2048;1=2048;2=2048;3=512;"));
    }
}
