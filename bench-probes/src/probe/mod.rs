//! The ten contention probes, from the core outwards: `cpu`, `fpu`, `l1i`,
//! `l1d`, `l2`, `llc`, `membw`, `memcap`, `disk`, `net`.
//!
//! A probe is built once with [`Probe::prepare`] (buffers sized from the cache
//! topology, allocated and pre-faulted, files created, sockets connected) and
//! then run any number of times with [`Probe::run`] at an intensity 0–100 %
//! for a duration (default 10 ms), pinned to its CPU. What the intensity means
//! depends on the probe (see [`ProbeKind::intensity_meaning`]): a duty cycle
//! within sub-millisecond periods for throughput probes, a fraction of the
//! target cache or memory cap for footprint probes. Every run reports what it
//! achieved ([`ProbeReport`]) so its own effect is visible.

mod cache;
mod compute;
mod disk;
mod membw;
mod memcap;
mod net;

pub use cache::{LlcCalibration, calibrate_llc};
pub use membw::{TriadResult, stream_triad};

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::memlimit::MemLimitError;
use crate::topology::{Topology, TopologyError};

/// The default probe duration (the paper's ~10 ms).
pub const DEFAULT_DURATION: Duration = Duration::from_millis(10);
/// The default duty-cycle period (sub-millisecond).
pub const DEFAULT_PERIOD: Duration = Duration::from_micros(500);

/// Errors from preparing or running a probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The topology could not be read or the CPU is not online.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Memory limits could not be read.
    #[error(transparent)]
    MemLimit(#[from] MemLimitError),
    /// A file operation failed.
    #[error("failed to {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("failed to {what}: {source}")]
    Sys {
        /// What was being done, with its values.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A network operation failed.
    #[error("failed to {what} {addr}: {source}")]
    Net {
        /// What was being done.
        what: &'static str,
        /// The peer or local address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The probe cannot run on this machine.
    #[error("probe {probe} is not supported here: {reason}")]
    Unsupported {
        /// The probe.
        probe: ProbeKind,
        /// Why.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid probe setting: {0}")]
    Config(String),
}

/// Where a probe must run relative to the workload it contends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// A core-private resource: the probe runs on the SMT sibling of the
    /// target's CPU (or time-shares the target's CPU when there is none).
    Core,
    /// A resource shared between cores: the probe runs on another CPU.
    Uncore,
}

/// The ten probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// Integer ALU work.
    Cpu,
    /// Floating-point / SIMD work (FMA on AVX2 where present).
    Fpu,
    /// L1 instruction cache footprint (x86-64 only: generated code).
    L1i,
    /// L1 data cache footprint.
    L1d,
    /// L2 cache footprint.
    L2,
    /// Last-level cache footprint.
    Llc,
    /// Memory bandwidth (STREAM triad).
    Membw,
    /// Memory capacity.
    Memcap,
    /// Disk write bandwidth with data syncs.
    Disk,
    /// Network send bandwidth to a sink.
    Net,
}

impl ProbeKind {
    /// All probes, from the core outwards.
    pub const ALL: [ProbeKind; 10] = [
        ProbeKind::Cpu,
        ProbeKind::Fpu,
        ProbeKind::L1i,
        ProbeKind::L1d,
        ProbeKind::L2,
        ProbeKind::Llc,
        ProbeKind::Membw,
        ProbeKind::Memcap,
        ProbeKind::Disk,
        ProbeKind::Net,
    ];

    /// The probe's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Cpu => "cpu",
            ProbeKind::Fpu => "fpu",
            ProbeKind::L1i => "l1i",
            ProbeKind::L1d => "l1d",
            ProbeKind::L2 => "l2",
            ProbeKind::Llc => "llc",
            ProbeKind::Membw => "membw",
            ProbeKind::Memcap => "memcap",
            ProbeKind::Disk => "disk",
            ProbeKind::Net => "net",
        }
    }

    /// Core-private or shared.
    pub fn scope(self) -> Scope {
        match self {
            ProbeKind::Cpu | ProbeKind::Fpu | ProbeKind::L1i | ProbeKind::L1d | ProbeKind::L2 => {
                Scope::Core
            }
            _ => Scope::Uncore,
        }
    }

    /// What the probe stresses, in one line.
    pub fn description(self) -> &'static str {
        match self {
            ProbeKind::Cpu => "integer ALU: independent multiply/xorshift chains",
            ProbeKind::Fpu => "floating point: fused multiply-add chains (AVX2+FMA when present)",
            ProbeKind::L1i => "L1 instruction cache: a chain of jumps over generated code",
            ProbeKind::L1d => "L1 data cache: random pointer chase, 4 chains",
            ProbeKind::L2 => "L2 cache: random pointer chase, 4 chains",
            ProbeKind::Llc => "last-level cache: random pointer chase, 8 chains",
            ProbeKind::Membw => "memory bandwidth: STREAM triad a=b+s*c over 3 arrays of 4x LLC",
            ProbeKind::Memcap => "memory capacity: holds and touches anonymous memory",
            ProbeKind::Disk => {
                "disk: 64 KiB O_DIRECT writes (buffered + writeback where unsupported), in a capped file"
            }
            ProbeKind::Net => "network: bulk TCP send to a sink",
        }
    }

    /// What the intensity 0–100 % means for this probe.
    pub fn intensity_meaning(self) -> &'static str {
        match self {
            ProbeKind::Cpu
            | ProbeKind::Fpu
            | ProbeKind::Membw
            | ProbeKind::Disk
            | ProbeKind::Net => "duty cycle within each 500 us period",
            ProbeKind::L1i => "footprint as a fraction of the L1i size",
            ProbeKind::L1d => "footprint as a fraction of the L1d size",
            ProbeKind::L2 => "footprint as a fraction of the L2 size",
            ProbeKind::Llc => "footprint as a fraction of the LLC size",
            ProbeKind::Memcap => {
                "footprint as a fraction of the memory cap (share of MemAvailable or cgroup limit)"
            }
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProbeKind {
    type Err = ProbeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProbeKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                ProbeError::Config(format!(
                    "unknown probe {s:?} (known: {})",
                    ProbeKind::ALL.map(|k| k.name()).join(", ")
                ))
            })
    }
}

/// Settings shared by all probes: sizes, safety bounds and where to write or send.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// The machine's CPU and cache topology.
    pub topology: Topology,
    /// LLC size to use instead of the sysfs one (see [`calibrate_llc`]).
    pub llc_bytes: Option<u64>,
    /// Duty-cycle period.
    pub period: Duration,
    /// Directory under which `disk` creates (and removes) its files.
    pub disk_dir: PathBuf,
    /// Most bytes `disk` may write to its file (it rewrites within this).
    pub disk_cap: u64,
    /// Where `net` sends; `None` starts a discard sink on loopback.
    pub net_sink: Option<SocketAddr>,
    /// Largest share of `MemAvailable` (or of the cgroup limit) `memcap` takes.
    pub mem_share: f64,
    /// Absolute bound on `memcap`'s footprint.
    pub mem_max: u64,
    /// Charge `memcap`'s memory to this cgroup (a child process joins it);
    /// `None`: the probe's own process and its cgroup.
    pub mem_cgroup: Option<PathBuf>,
    /// The meminfo file (normally `/proc/meminfo`).
    pub meminfo: PathBuf,
    /// The cgroup filesystem root (normally `/sys/fs/cgroup`).
    pub cgroup_root: PathBuf,
    /// This process's cgroup file (normally `/proc/self/cgroup`).
    pub proc_self_cgroup: PathBuf,
    /// Run the IO probes' windows (`disk`, `net`) under `SCHED_FIFO` at this
    /// priority (1–99), so they issue IO on time on a loaded machine (needs
    /// `CAP_SYS_NICE`; RT throttling still applies). CPU-bound probes never
    /// run real-time: they would starve the kernel threads (softirq,
    /// writeback, journal) on their CPU, which leaks into other resources.
    /// `None`: normal scheduling for all.
    pub realtime: Option<i32>,
}

impl ProbeSettings {
    /// Settings for this machine: sysfs topology, the system temp directory
    /// with a 64 MiB cap, a loopback sink, half of MemAvailable up to 256 MiB.
    pub fn discover() -> Result<Self, ProbeError> {
        Ok(Self::with_topology(Topology::discover()?))
    }

    /// Default settings around a given topology.
    pub fn with_topology(topology: Topology) -> Self {
        ProbeSettings {
            topology,
            llc_bytes: None,
            period: DEFAULT_PERIOD,
            disk_dir: std::env::temp_dir(),
            disk_cap: 64 << 20,
            net_sink: None,
            mem_share: 0.5,
            mem_max: 256 << 20,
            mem_cgroup: None,
            meminfo: PathBuf::from("/proc/meminfo"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_self_cgroup: PathBuf::from("/proc/self/cgroup"),
            realtime: None,
        }
    }

    /// The LLC size in bytes for `cpu`: the override, else sysfs, else 8 MiB.
    pub fn llc_size(&self, cpu: usize) -> u64 {
        self.llc_bytes
            .or_else(|| self.topology.llc(cpu))
            .unwrap_or(8 << 20)
    }
}

/// What one probe run achieved.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The probe.
    pub probe: ProbeKind,
    /// Requested intensity, percent.
    pub intensity: u8,
    /// CPU it ran on.
    pub cpu: usize,
    /// Requested duration, ms.
    pub duration_ms: f64,
    /// Wall time of the timed window, ms.
    pub wall_ms: f64,
    /// Time spent before the window (building chains, faulting memory), ms.
    pub setup_ms: f64,
    /// Fraction of the window spent working (duty cycle achieved).
    pub busy_fraction: f64,
    /// Operations done in the window.
    pub ops: u64,
    /// What one operation is.
    pub op_unit: &'static str,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Bytes moved per second (0 for compute probes).
    pub bytes_per_sec: f64,
    /// Bytes the probe held or cycled through (0 for compute probes).
    pub footprint_bytes: u64,
    /// Anything worth knowing about this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Outcome of a duty-cycled loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DutyStats {
    pub units: u64,
    pub busy: Duration,
    pub wall: Duration,
}

static GLOBAL_STOP: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while a run reports the start of its timed window to a caller.
    static WINDOW_STARTED: std::cell::Cell<Option<*const AtomicBool>> = const { std::cell::Cell::new(None) };
}

/// Mark the timed window as started (for runs that do not use `duty_loop`).
pub(crate) fn mark_window_started() {
    WINDOW_STARTED.with(|f| {
        if let Some(flag) = f.get() {
            // SAFETY: as in duty_loop.
            unsafe { (*flag).store(true, Ordering::SeqCst) };
        }
    });
}

/// Ask every running probe and diagnosis to stop (used by the Ctrl-C handler;
/// async-signal-safe: a single atomic store).
pub fn request_global_stop() {
    GLOBAL_STOP.store(true, Ordering::SeqCst);
}

/// True once [`request_global_stop`] was called.
pub fn global_stop_requested() -> bool {
    GLOBAL_STOP.load(Ordering::Relaxed)
}

#[inline]
pub(crate) fn stopped(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed) || GLOBAL_STOP.load(Ordering::Relaxed)
}

/// Run `work` (which should take a few microseconds and returns the units it
/// did) for `intensity` percent of each `period`, sleeping the rest, until
/// `duration` has passed. Periods are anchored to wall time.
pub(crate) fn duty_loop(
    intensity: u8,
    duration: Duration,
    period: Duration,
    stop: &AtomicBool,
    mut work: impl FnMut(Instant) -> u64,
) -> DutyStats {
    WINDOW_STARTED.with(|f| {
        if let Some(flag) = f.get() {
            // SAFETY: the pointer was set by run_signalled from a reference that
            // outlives the run, on this same thread, and is cleared after it.
            unsafe { (*flag).store(true, Ordering::SeqCst) };
        }
    });
    let start = Instant::now();
    let end = start + duration;
    let frac = f64::from(intensity.min(100)) / 100.0;
    let mut units = 0u64;
    let mut busy = Duration::ZERO;
    let mut p0 = start;
    while p0 < end && !stopped(stop) {
        let p_end = (p0 + period).min(end);
        let on_end = if intensity >= 100 {
            p_end
        } else {
            (p0 + period.mul_f64(frac)).min(p_end)
        };
        let mut now = Instant::now();
        if frac > 0.0 {
            let b0 = now;
            while now < on_end {
                units += work(on_end);
                now = Instant::now();
                if stopped(stop) {
                    break;
                }
            }
            busy += now.saturating_duration_since(b0);
        }
        if now < p_end {
            std::thread::sleep(p_end - now);
        }
        p0 = p_end;
    }
    DutyStats {
        units,
        busy,
        wall: start.elapsed(),
    }
}

/// Pins the calling thread to one CPU and restores its previous affinity on drop.
pub(crate) struct PinGuard {
    old: Option<nix::sched::CpuSet>,
}

impl PinGuard {
    /// Pin the calling thread to `cpu` and set a 1 us timer slack so sub-ms
    /// sleeps are accurate.
    pub(crate) fn pin(cpu: usize) -> Result<Self, ProbeError> {
        use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
        use nix::unistd::Pid;
        let old = sched_getaffinity(Pid::from_raw(0)).ok();
        let mut set = CpuSet::new();
        set.set(cpu).map_err(|e| ProbeError::Sys {
            what: format!("build a cpu set with cpu {cpu}"),
            source: e.into(),
        })?;
        sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| ProbeError::Sys {
            what: format!("pin thread to cpu {cpu}"),
            source: e.into(),
        })?;
        // SAFETY: PR_SET_TIMERSLACK takes an integer argument and only affects
        // the calling thread; a failure leaves the default slack, which is harmless.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        Ok(PinGuard { old })
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some(old) = self.old.take() {
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &old);
        }
        // SAFETY: as above; 0 restores the thread's default timer slack.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 0 as libc::c_ulong, 0, 0, 0);
        }
    }
}

/// Puts the calling thread under `SCHED_FIFO` and restores its policy on drop.
pub(crate) struct RtGuard {
    policy: libc::c_int,
    param: libc::sched_param,
}

impl RtGuard {
    pub(crate) fn enter(priority: i32) -> Result<Self, ProbeError> {
        if !(1..=99).contains(&priority) {
            return Err(ProbeError::Config(format!(
                "realtime priority {priority} is not in 1..=99"
            )));
        }
        // SAFETY: querying and setting the scheduling policy of the calling
        // thread (pid 0) with valid sched_param values.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            let mut param = libc::sched_param { sched_priority: 0 };
            libc::sched_getparam(0, &mut param);
            let new = libc::sched_param {
                sched_priority: priority,
            };
            if libc::sched_setscheduler(0, libc::SCHED_FIFO, &new) != 0 {
                return Err(ProbeError::Sys {
                    what: format!("set SCHED_FIFO priority {priority} (needs CAP_SYS_NICE)"),
                    source: std::io::Error::last_os_error(),
                });
            }
            Ok(RtGuard {
                policy: policy.max(0),
                param,
            })
        }
    }
}

impl Drop for RtGuard {
    fn drop(&mut self) {
        // SAFETY: restoring the calling thread's previous policy and parameters.
        unsafe {
            libc::sched_setscheduler(0, self.policy, &self.param);
        }
    }
}

enum State {
    Cpu,
    Fpu,
    L1i(cache::CodeChain),
    Chase(cache::Chase),
    Membw(membw::Triad),
    Memcap(memcap::Memcap),
    Disk(disk::DiskProbe),
    Net(net::NetProbe),
}

/// A prepared probe, ready to run repeatedly.
pub struct Probe {
    kind: ProbeKind,
    cpu: usize,
    period: Duration,
    realtime: Option<i32>,
    state: State,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("kind", &self.kind)
            .field("cpu", &self.cpu)
            .finish()
    }
}

impl Probe {
    /// Prepare probe `kind` to run on `cpu`: size buffers from the caches of
    /// `cpu`, allocate and pre-fault them (on `cpu`, so memory is local),
    /// create files, connect sockets.
    pub fn prepare(
        kind: ProbeKind,
        settings: &ProbeSettings,
        cpu: usize,
    ) -> Result<Self, ProbeError> {
        let topo = &settings.topology;
        topo.cpu(cpu)?;
        if settings.period.is_zero() {
            return Err(ProbeError::Config("duty-cycle period must be > 0".into()));
        }
        let _pin = PinGuard::pin(cpu)?;
        let state = match kind {
            ProbeKind::Cpu => State::Cpu,
            ProbeKind::Fpu => State::Fpu,
            ProbeKind::L1i => State::L1i(cache::CodeChain::new(topo.l1i(cpu).unwrap_or(32 << 10))?),
            ProbeKind::L1d => State::Chase(cache::Chase::new(
                topo.data_cache(cpu, 1).unwrap_or(32 << 10),
                4,
            )?),
            ProbeKind::L2 => State::Chase(cache::Chase::new(
                topo.data_cache(cpu, 2).unwrap_or(512 << 10),
                4,
            )?),
            ProbeKind::Llc => State::Chase(cache::Chase::new(settings.llc_size(cpu), 8)?),
            ProbeKind::Membw => State::Membw(membw::Triad::new(membw::array_bytes(
                settings.llc_size(cpu),
            ))?),
            ProbeKind::Memcap => State::Memcap(memcap::Memcap::new(settings)?),
            ProbeKind::Disk => {
                State::Disk(disk::DiskProbe::new(&settings.disk_dir, settings.disk_cap)?)
            }
            ProbeKind::Net => State::Net(net::NetProbe::new(settings.net_sink)?),
        };
        Ok(Probe {
            kind,
            cpu,
            period: settings.period,
            realtime: settings
                .realtime
                .filter(|_| matches!(kind, ProbeKind::Disk | ProbeKind::Net)),
            state,
        })
    }

    /// The probe's kind.
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The CPU it runs on.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Run at `intensity` percent (0–100) for `duration` on the calling
    /// thread, pinned to the probe's CPU for the call. Returns early when
    /// `stop` (or the global stop) is set.
    pub fn run(
        &mut self,
        intensity: u8,
        duration: Duration,
        stop: &AtomicBool,
    ) -> Result<ProbeReport, ProbeError> {
        self.run_signalled(intensity, duration, stop, &AtomicBool::new(false))
    }

    /// As [`Probe::run`], and set `started` when the timed window begins
    /// (after any per-run setup such as faulting memory in), so a caller
    /// sampling a target on another thread knows when contention is on.
    pub fn run_signalled(
        &mut self,
        intensity: u8,
        duration: Duration,
        stop: &AtomicBool,
        started: &AtomicBool,
    ) -> Result<ProbeReport, ProbeError> {
        struct Clear;
        impl Drop for Clear {
            fn drop(&mut self) {
                WINDOW_STARTED.with(|f| f.set(None));
            }
        }
        WINDOW_STARTED.with(|f| f.set(Some(started as *const AtomicBool)));
        let _clear = Clear;
        if intensity > 100 {
            return Err(ProbeError::Config(format!(
                "intensity {intensity} is above 100"
            )));
        }
        let _pin = PinGuard::pin(self.cpu)?;
        let _rt = self.realtime.map(RtGuard::enter).transpose()?;
        let period = self.period;
        let mut out = match &mut self.state {
            State::Cpu => compute::run_cpu(intensity, duration, period, stop),
            State::Fpu => compute::run_fpu(intensity, duration, period, stop),
            State::L1i(c) => c.run(intensity, duration, stop)?,
            State::Chase(c) => c.run(intensity, duration, stop),
            State::Membw(t) => t.run(intensity, duration, period, stop),
            State::Memcap(m) => m.run(intensity, duration, stop)?,
            State::Disk(d) => d.run(intensity, duration, period, stop)?,
            State::Net(n) => n.run(intensity, duration, period, stop)?,
        };
        out.probe = self.kind;
        out.intensity = intensity;
        out.cpu = self.cpu;
        out.duration_ms = duration.as_secs_f64() * 1e3;
        Ok(out)
    }
}

/// Fill a report from duty-loop statistics.
pub(crate) fn report_from(
    stats: DutyStats,
    op_unit: &'static str,
    bytes_per_op: f64,
    footprint: u64,
) -> ProbeReport {
    let secs = stats.wall.as_secs_f64().max(1e-9);
    ProbeReport {
        probe: ProbeKind::Cpu,
        intensity: 0,
        cpu: 0,
        duration_ms: 0.0,
        wall_ms: secs * 1e3,
        setup_ms: 0.0,
        busy_fraction: stats.busy.as_secs_f64() / secs,
        ops: stats.units,
        op_unit,
        ops_per_sec: stats.units as f64 / secs,
        bytes_per_sec: stats.units as f64 * bytes_per_op / secs,
        footprint_bytes: footprint,
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_roundtrip() {
        for k in ProbeKind::ALL {
            assert_eq!(k.name().parse::<ProbeKind>().unwrap(), k);
            assert!(!k.description().is_empty());
            assert!(!k.intensity_meaning().is_empty());
        }
        let err = "l4".parse::<ProbeKind>().unwrap_err().to_string();
        assert!(err.contains("\"l4\"") && err.contains("membw"), "{err}");
    }

    #[test]
    fn scopes() {
        assert_eq!(ProbeKind::Cpu.scope(), Scope::Core);
        assert_eq!(ProbeKind::L2.scope(), Scope::Core);
        assert_eq!(ProbeKind::Llc.scope(), Scope::Uncore);
        assert_eq!(ProbeKind::Net.scope(), Scope::Uncore);
    }

    #[test]
    fn duty_loop_keeps_the_duration_and_duty() {
        let stop = AtomicBool::new(false);
        let s = duty_loop(50, Duration::from_millis(20), DEFAULT_PERIOD, &stop, |_| {
            std::hint::black_box((0..200u64).sum::<u64>());
            1
        });
        assert!(s.wall >= Duration::from_millis(20), "{:?}", s.wall);
        assert!(s.wall < Duration::from_millis(200), "{:?}", s.wall);
        assert!(s.units > 0);
        // the achieved duty depends on how loaded the machine is; it can
        // only fall short of the request, never reach 100 %
        let frac = s.busy.as_secs_f64() / s.wall.as_secs_f64();
        assert!(frac > 0.0 && frac < 0.9, "busy fraction {frac}");
    }

    #[test]
    fn duty_loop_zero_does_no_work_and_stop_ends_it() {
        let stop = AtomicBool::new(false);
        let s = duty_loop(0, Duration::from_millis(5), DEFAULT_PERIOD, &stop, |_| 1);
        assert_eq!(s.units, 0);
        let stop = AtomicBool::new(true);
        let s = duty_loop(100, Duration::from_secs(10), DEFAULT_PERIOD, &stop, |_| 1);
        assert!(s.wall < Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn probe_names_parse_case_insensitively(i in 0usize..10, upper in any::<bool>()) {
            let k = ProbeKind::ALL[i];
            let n = if upper { k.name().to_uppercase() } else { k.name().to_string() };
            prop_assert_eq!(n.parse::<ProbeKind>().unwrap(), k);
        }
    }
}
