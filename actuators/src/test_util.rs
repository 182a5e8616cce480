//! Test support (feature `testing`): fake cgroup trees laid out as the kernel
//! lays them out, a guard for real, uniquely named v1 test cgroups that are
//! removed on drop (even on panic), recording cache/bandwidth backends, and a
//! manual clock.
//!
//! The fake trees are plain files: a write replaces the file's content, where
//! the kernel would merge per-device lines (`io.max`,
//! `blkio.throttle.*_device`); tests use one device per cgroup.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::actuator::Clock;
use crate::backend::{BackendError, BandwidthShaper, CacheAllocator};
use crate::cgroup::{CgroupFs, CgroupMode, Controller};

/// A fake cgroup hierarchy in a temporary directory.
#[derive(Debug)]
pub struct FakeCgroupFs {
    dir: tempfile::TempDir,
    mode: CgroupMode,
}

/// Files of a fresh v2 cgroup with the cpu, cpuset, io and memory
/// controllers enabled, and their initial content as the kernel shows it.
const V2_FILES: &[(&str, &str)] = &[
    ("cgroup.procs", ""),
    ("cgroup.threads", ""),
    ("cgroup.controllers", "cpuset cpu io memory pids\n"),
    ("cgroup.subtree_control", ""),
    ("cgroup.type", "domain\n"),
    ("cpu.max", "max 100000\n"),
    ("cpu.weight", "100\n"),
    ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"),
    ("cpuset.cpus", "\n"),
    ("cpuset.cpus.effective", "0-3\n"),
    ("cpuset.mems", "\n"),
    ("cpuset.mems.effective", "0\n"),
    ("memory.max", "max\n"),
    ("memory.high", "max\n"),
    ("memory.swap.max", "max\n"),
    ("memory.current", "1048576\n"),
    ("io.max", ""),
];

/// v1 controller files (per controller directory) and their initial content.
const V1_FILES: &[(&str, &[(&str, &str)])] = &[
    (
        "cpu",
        &[
            ("tasks", ""),
            ("cgroup.procs", ""),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.shares", "1024\n"),
        ],
    ),
    (
        "cpuset",
        &[
            ("tasks", ""),
            ("cgroup.procs", ""),
            ("cpuset.cpus", "0-3\n"),
            ("cpuset.mems", "0\n"),
        ],
    ),
    (
        "memory",
        &[
            ("tasks", ""),
            ("cgroup.procs", ""),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory.usage_in_bytes", "1048576\n"),
        ],
    ),
    (
        "blkio",
        &[
            ("tasks", ""),
            ("cgroup.procs", ""),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_bps_device", ""),
            ("blkio.throttle.read_iops_device", ""),
            ("blkio.throttle.write_iops_device", ""),
        ],
    ),
];

impl FakeCgroupFs {
    /// An empty hierarchy in `mode` (v2: root files; v1/hybrid: one
    /// directory per controller, plus `unified/` for hybrid).
    pub fn new(mode: CgroupMode) -> FakeCgroupFs {
        let dir = tempfile::tempdir().expect("create temp dir for fake cgroup tree");
        let f = FakeCgroupFs { dir, mode };
        f.add("/");
        if mode == CgroupMode::Hybrid {
            fs::create_dir_all(f.dir.path().join("unified")).expect("create unified");
        }
        f
    }

    /// The root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A [`CgroupFs`] on this tree.
    pub fn cgroup_fs(&self) -> CgroupFs {
        CgroupFs::at(self.root(), self.mode)
    }

    /// Creates cgroup `rel` (and its parents) with the kernel's files.
    pub fn add(&self, rel: &str) -> &Self {
        let rel = rel.trim_start_matches('/');
        let mut cur = String::new();
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let mut levels = vec![String::new()];
        for p in parts {
            cur = if cur.is_empty() {
                p.to_string()
            } else {
                format!("{cur}/{p}")
            };
            levels.push(cur.clone());
        }
        for level in levels {
            if self.mode.is_v1() {
                for (ctrl, files) in V1_FILES {
                    write_missing(&self.root().join(ctrl).join(&level), files);
                }
            } else {
                write_missing(&self.root().join(&level), V2_FILES);
            }
        }
        self
    }

    /// Overwrites a file of cgroup `rel` (e.g. to set `memory.current`).
    pub fn set(&self, controller: Controller, rel: &str, file: &str, value: &str) {
        let p = self.cgroup_fs().file(controller, rel, file);
        fs::write(&p, value).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    /// Reads a file of cgroup `rel`.
    pub fn get(&self, controller: Controller, rel: &str, file: &str) -> String {
        let p = self.cgroup_fs().file(controller, rel, file);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }
}

fn write_missing(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    for (name, content) in files {
        let p = dir.join(name);
        if !p.exists() {
            fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        }
    }
}

/// A fake `/proc` with `<pid>/cgroup` files.
#[derive(Debug)]
pub struct FakeProc {
    dir: tempfile::TempDir,
}

impl FakeProc {
    /// An empty fake `/proc`.
    pub fn new() -> FakeProc {
        FakeProc {
            dir: tempfile::tempdir().expect("create temp dir for fake proc"),
        }
    }

    /// The root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `<pid>/cgroup`.
    pub fn add(&self, pid: u32, cgroup_file: &str) {
        let d = self.dir.path().join(pid.to_string());
        fs::create_dir_all(&d).expect("mkdir fake pid");
        fs::write(d.join("cgroup"), cgroup_file).expect("write fake cgroup file");
    }
}

impl Default for FakeProc {
    fn default() -> Self {
        FakeProc::new()
    }
}

/// The v1 controllers a [`TestCgroup`] creates a directory in.
pub const TEST_CONTROLLERS: [Controller; 4] = Controller::ALL;

static TEST_SEQ: AtomicU32 = AtomicU32::new(0);

/// A real, uniquely named v1 test cgroup (`/seer-test-<pid>-<n>` in the cpu,
/// cpuset, memory and blkio hierarchies). On drop, even while panicking, it
/// moves every task back to the root cgroup, kills processes it was told
/// about, and removes the directories (children first).
#[derive(Debug)]
pub struct TestCgroup {
    fs: CgroupFs,
    rel: String,
    kill: Vec<u32>,
}

impl TestCgroup {
    /// Creates a test cgroup, or `None` (after printing `SKIPPED: reason`)
    /// when this host has no writable cgroup v1 hierarchy.
    pub fn create(purpose: &str) -> Option<TestCgroup> {
        let fs = match CgroupFs::detect("/sys/fs/cgroup") {
            Ok(fs) if fs.mode().is_v1() => fs,
            Ok(fs) => {
                println!(
                    "SKIPPED: {purpose}: host cgroups are {:?}, not v1/hybrid",
                    fs.mode()
                );
                return None;
            }
            Err(e) => {
                println!("SKIPPED: {purpose}: {e}");
                return None;
            }
        };
        if !nix::unistd::geteuid().is_root() {
            println!("SKIPPED: {purpose}: needs root to create cgroups");
            return None;
        }
        let n = TEST_SEQ.fetch_add(1, Ordering::SeqCst);
        let rel = format!("/seer-test-{}-{n}", std::process::id());
        let g = TestCgroup {
            fs: fs.clone(),
            rel: rel.clone(),
            kill: Vec::new(),
        };
        for c in TEST_CONTROLLERS {
            let d = fs.dir(c, &rel);
            if !fs.dir(c, "/").is_dir() {
                println!("SKIPPED: {purpose}: no v1 {} controller", c.name());
                return None;
            }
            if let Err(e) = fs::create_dir(&d) {
                println!("SKIPPED: {purpose}: cannot create {}: {e}", d.display());
                return None;
            }
        }
        // A new v1 cpuset has no cpus or mems; give it the parent's.
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let parent = fs
                .read(Controller::Cpuset, "/", f)
                .expect("read root cpuset");
            fs::write(fs.file(Controller::Cpuset, &rel, f), parent.trim())
                .expect("init test cpuset");
        }
        Some(g)
    }

    /// The cgroup path, relative to each hierarchy root.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// The hierarchy.
    pub fn cgroup_fs(&self) -> &CgroupFs {
        &self.fs
    }

    /// Kill this process on drop (before moving tasks out).
    pub fn kill_on_drop(&mut self, pid: u32) {
        self.kill.push(pid);
    }

    /// Moves thread `tid` into the test cgroup of `controller`.
    pub fn add_task(&self, controller: Controller, tid: u32) {
        let p = self.fs.file(controller, &self.rel, "tasks");
        fs::write(&p, tid.to_string())
            .unwrap_or_else(|e| panic!("move {tid} into {}: {e}", p.display()));
    }

    /// Every directory this guard made, as absolute paths.
    pub fn dirs(&self) -> Vec<PathBuf> {
        TEST_CONTROLLERS
            .iter()
            .map(|c| self.fs.dir(*c, &self.rel))
            .collect()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for pid in &self.kill {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::SIGKILL,
            );
        }
        for c in TEST_CONTROLLERS {
            remove_tree(&self.fs.dir(c, &self.rel), &self.fs.file(c, "/", "tasks"));
        }
    }
}

/// Removes a v1 cgroup directory tree, moving its tasks to `parent_tasks`.
fn remove_tree(dir: &Path, parent_tasks: &Path) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path(), parent_tasks);
            }
        }
    }
    for attempt in 0..50 {
        if let Ok(tasks) = fs::read_to_string(dir.join("tasks")) {
            for t in tasks.split_whitespace() {
                let _ = fs::write(parent_tasks, t);
            }
        }
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if attempt == 49 => eprintln!(
                "warning: could not remove test cgroup {}: {e}",
                dir.display()
            ),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

/// Shared state of a recording backend: current values and every call.
#[derive(Debug, Default)]
pub struct Recorded {
    /// L3 masks by (group, cache id).
    pub l3: BTreeMap<(String, u32), u64>,
    /// MB percent by (group, domain).
    pub mb: BTreeMap<(String, u32), u32>,
    /// HTB (rate, ceil) by (iface, class).
    pub htb: BTreeMap<(String, String), (u64, u64)>,
    /// Calls, as text (`set_l3 g 0 0xf`).
    pub calls: Vec<String>,
    /// When set, the next set call fails with this message.
    pub fail_next_set: Option<String>,
}

/// A [`CacheAllocator`] and [`BandwidthShaper`] that keeps values in memory
/// and records calls. Clones share state, so a test keeps one to inspect.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The shared state.
    pub state: Arc<Mutex<Recorded>>,
    /// `cbm_mask` reported for every cache.
    pub cbm_mask: u64,
    /// `min_cbm_bits`.
    pub min_cbm_bits: u32,
}

impl Recording {
    /// A backend whose groups start with the full 11-way mask, 100 % MB and
    /// 1 Gbit/s HTB classes.
    pub fn new() -> Recording {
        Recording {
            state: Arc::default(),
            cbm_mask: 0x7ff,
            min_cbm_bits: 1,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_fail(&self, st: &mut Recorded) -> Result<(), BackendError> {
        match st.fail_next_set.take() {
            Some(m) => Err(m.into()),
            None => Ok(()),
        }
    }
}

impl Default for Recording {
    fn default() -> Self {
        Recording::new()
    }
}

impl CacheAllocator for Recording {
    fn l3_mask(&mut self, group: &str, cache_id: u32) -> Result<u64, BackendError> {
        let full = self.cbm_mask;
        Ok(*self
            .lock()
            .l3
            .entry((group.into(), cache_id))
            .or_insert(full))
    }

    fn set_l3_mask(&mut self, group: &str, cache_id: u32, mask: u64) -> Result<(), BackendError> {
        let mut st = self.lock();
        self.check_fail(&mut st)?;
        st.calls
            .push(format!("set_l3 {group} {cache_id} {mask:#x}"));
        st.l3.insert((group.into(), cache_id), mask);
        Ok(())
    }

    fn l3_geometry(&mut self, _cache_id: u32) -> Result<(u64, u32), BackendError> {
        Ok((self.cbm_mask, self.min_cbm_bits))
    }

    fn mb_percent(&mut self, group: &str, domain: u32) -> Result<u32, BackendError> {
        Ok(*self.lock().mb.entry((group.into(), domain)).or_insert(100))
    }

    fn set_mb_percent(
        &mut self,
        group: &str,
        domain: u32,
        percent: u32,
    ) -> Result<(), BackendError> {
        let mut st = self.lock();
        self.check_fail(&mut st)?;
        st.calls.push(format!("set_mb {group} {domain} {percent}"));
        st.mb.insert((group.into(), domain), percent);
        Ok(())
    }
}

impl BandwidthShaper for Recording {
    fn class_rate(&mut self, iface: &str, class: &str) -> Result<(u64, u64), BackendError> {
        Ok(*self
            .lock()
            .htb
            .entry((iface.into(), class.into()))
            .or_insert((1_000_000_000, 1_000_000_000)))
    }

    fn set_class_rate(
        &mut self,
        iface: &str,
        class: &str,
        rate_bps: u64,
        ceil_bps: u64,
    ) -> Result<(), BackendError> {
        let mut st = self.lock();
        self.check_fail(&mut st)?;
        st.calls
            .push(format!("set_htb {iface} {class} {rate_bps} {ceil_bps}"));
        st.htb
            .insert((iface.into(), class.into()), (rate_bps, ceil_bps));
        Ok(())
    }
}

/// A clock that moves only when told.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    /// A clock at `t`.
    pub fn at(t: SystemTime) -> ManualClock {
        ManualClock(Arc::new(Mutex::new(t)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: std::time::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
