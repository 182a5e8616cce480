//! Hardware counters and OS statistics.
//!
//! * `perf_event_open` per process or per cgroup: cycles, instructions, LLC
//!   references/misses, stalled cycles (where the PMU has them) and task
//!   clock, turned into utilisation of CPU, cache and memory bandwidth.
//!   Public clouds often hide the PMU: [`perf_support`] detects that once per
//!   process and says why.
//! * Network and disk bandwidth from `/proc/net/dev` and `/proc/diskstats`,
//!   and per-cgroup CPU and IO from cgroup v1 (`cpuacct.usage`,
//!   `blkio.throttle.io_service_bytes`) or v2 (`cpu.stat`, `io.stat`). The
//!   parsers are pure functions; paths are arguments.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Errors from counters and statistics.
#[derive(Debug, thiserror::Error)]
pub enum CountersError {
    /// Hardware counters are not available here.
    #[error("hardware counters not supported: {0}")]
    NotSupported(String),
    /// `perf_event_open` failed for one event.
    #[error("failed to open perf event {event} for {scope}: {source}")]
    Open {
        /// The event.
        event: &'static str,
        /// pid or cgroup.
        scope: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A statistics file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A statistics file did not parse.
    #[error("invalid contents in {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

// ---------- perf_event_open ----------

const PERF_TYPE_HARDWARE: u32 = 0;
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_FLAG_PID_CGROUP: libc::c_ulong = 1 << 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const ATTR_SIZE_VER5: u32 = 112;

/// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER5` (112 bytes).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved: u16,
}

const FLAG_EXCLUDE_HV: u64 = 1 << 6;
const FLAG_INHERIT: u64 = 1 << 1;

/// A counted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// CPU cycles.
    Cycles,
    /// Retired instructions.
    Instructions,
    /// LLC references (generic cache references).
    LlcReferences,
    /// LLC misses (generic cache misses).
    LlcMisses,
    /// Front-end stalled cycles.
    StalledFrontend,
    /// Back-end stalled cycles.
    StalledBackend,
    /// Task clock, ns (software event).
    TaskClock,
}

impl Event {
    /// All events.
    pub const ALL: [Event; 7] = [
        Event::Cycles,
        Event::Instructions,
        Event::LlcReferences,
        Event::LlcMisses,
        Event::StalledFrontend,
        Event::StalledBackend,
        Event::TaskClock,
    ];

    fn code(self) -> (u32, u64) {
        match self {
            Event::Cycles => (PERF_TYPE_HARDWARE, 0),
            Event::Instructions => (PERF_TYPE_HARDWARE, 1),
            Event::LlcReferences => (PERF_TYPE_HARDWARE, 2),
            Event::LlcMisses => (PERF_TYPE_HARDWARE, 3),
            Event::StalledFrontend => (PERF_TYPE_HARDWARE, 7),
            Event::StalledBackend => (PERF_TYPE_HARDWARE, 8),
            Event::TaskClock => (PERF_TYPE_SOFTWARE, 1),
        }
    }

    /// The perf name.
    pub fn name(self) -> &'static str {
        match self {
            Event::Cycles => "cycles",
            Event::Instructions => "instructions",
            Event::LlcReferences => "cache-references",
            Event::LlcMisses => "cache-misses",
            Event::StalledFrontend => "stalled-cycles-frontend",
            Event::StalledBackend => "stalled-cycles-backend",
            Event::TaskClock => "task-clock",
        }
    }
}

fn perf_open(
    event: Event,
    pid: libc::pid_t,
    cpu: libc::c_int,
    flags: libc::c_ulong,
) -> std::io::Result<OwnedFd> {
    let (type_, config) = event.code();
    let attr = PerfEventAttr {
        type_,
        size: ATTR_SIZE_VER5,
        config,
        flags: FLAG_EXCLUDE_HV
            | if flags & PERF_FLAG_PID_CGROUP == 0 {
                FLAG_INHERIT
            } else {
                0
            },
        ..Default::default()
    };
    // SAFETY: attr is a valid, fully initialised perf_event_attr of the size
    // it declares; the kernel only reads it. The result is checked.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            pid,
            cpu,
            -1 as libc::c_int,
            flags | PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor returned by the kernel and owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Whether hardware counters work here.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum PerfSupport {
    /// Cycles can be counted for this process.
    Available,
    /// They cannot, and why.
    NotSupported(String),
}

/// Detect hardware-counter support once per process (opens a cycles counter
/// on itself) and return the cached answer afterwards.
pub fn perf_support() -> &'static PerfSupport {
    static ONCE: OnceLock<PerfSupport> = OnceLock::new();
    ONCE.get_or_init(|| match perf_open(Event::Cycles, 0, -1, 0) {
        Ok(_) => PerfSupport::Available,
        Err(e) => {
            let hint = match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) => {
                    " (no hardware PMU exposed, as on most cloud VMs)"
                }
                Some(libc::EACCES) | Some(libc::EPERM) => {
                    " (denied: see /proc/sys/kernel/perf_event_paranoid)"
                }
                Some(libc::ENOSYS) => " (kernel built without perf events)",
                _ => "",
            };
            PerfSupport::NotSupported(format!("perf_event_open(cycles) failed: {e}{hint}"))
        }
    })
}

/// What to count.
#[derive(Debug, Clone)]
pub enum PerfScope {
    /// A process and the threads it creates after opening.
    Pid(i32),
    /// A cgroup directory (perf_event controller), counted on each listed CPU.
    Cgroup(PathBuf, Vec<usize>),
}

/// Open counters; events the PMU lacks are left out.
pub struct CounterSet {
    fds: Vec<(Event, Vec<OwnedFd>)>,
    _cgroup: Option<OwnedFd>,
    opened: Instant,
    scope: String,
}

/// A reading of a [`CounterSet`].
#[derive(Debug, Clone, Serialize)]
pub struct CounterReading {
    /// Wall time since the set was opened, seconds.
    pub seconds: f64,
    /// Raw values.
    pub values: BTreeMap<Event, u64>,
}

/// Utilisation derived from two readings.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Utilisation {
    /// CPUs busy (task clock / wall time).
    pub cpus_busy: Option<f64>,
    /// Instructions per cycle.
    pub ipc: Option<f64>,
    /// LLC misses / references.
    pub llc_miss_ratio: Option<f64>,
    /// Estimated memory bandwidth from LLC misses × 64 bytes, bytes/s.
    pub mem_bytes_per_sec: Option<f64>,
    /// Stalled cycles (front + back end) / cycles.
    pub stalled_fraction: Option<f64>,
}

impl CounterSet {
    /// Open every event for `scope`. Fails with [`CountersError::NotSupported`]
    /// when [`perf_support`] says so, and when not even cycles open.
    pub fn open(scope: &PerfScope) -> Result<Self, CountersError> {
        if let PerfSupport::NotSupported(r) = perf_support() {
            return Err(CountersError::NotSupported(r.clone()));
        }
        let (desc, cg) = match scope {
            PerfScope::Pid(p) => (format!("pid {p}"), None),
            PerfScope::Cgroup(dir, _) => {
                let f = fs::File::open(dir).map_err(|source| CountersError::Read {
                    path: dir.clone(),
                    source,
                })?;
                (format!("cgroup {}", dir.display()), Some(OwnedFd::from(f)))
            }
        };
        let mut fds = Vec::new();
        for ev in Event::ALL {
            let opened: std::io::Result<Vec<OwnedFd>> = match (scope, &cg) {
                (PerfScope::Pid(p), _) => perf_open(ev, *p, -1, 0).map(|f| vec![f]),
                (PerfScope::Cgroup(_, cpus), Some(c)) => cpus
                    .iter()
                    .map(|&cpu| {
                        perf_open(ev, c.as_raw_fd(), cpu as libc::c_int, PERF_FLAG_PID_CGROUP)
                    })
                    .collect(),
                (PerfScope::Cgroup(..), None) => continue,
            };
            match opened {
                Ok(f) => fds.push((ev, f)),
                Err(source) if ev == Event::Cycles => {
                    return Err(CountersError::Open {
                        event: ev.name(),
                        scope: desc,
                        source,
                    });
                }
                Err(_) => {} // this PMU lacks the event
            }
        }
        Ok(CounterSet {
            fds,
            _cgroup: cg,
            opened: Instant::now(),
            scope: desc,
        })
    }

    /// The events that opened.
    pub fn events(&self) -> Vec<Event> {
        self.fds.iter().map(|(e, _)| *e).collect()
    }

    /// Read every counter.
    pub fn read(&self) -> Result<CounterReading, CountersError> {
        let mut values = BTreeMap::new();
        for (ev, fds) in &self.fds {
            let mut sum = 0u64;
            for fd in fds {
                let mut v = 0u64;
                // SAFETY: reading 8 bytes into a u64 from a perf fd we own.
                let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
                if n != 8 {
                    return Err(CountersError::Open {
                        event: ev.name(),
                        scope: self.scope.clone(),
                        source: std::io::Error::last_os_error(),
                    });
                }
                sum += v;
            }
            values.insert(*ev, sum);
        }
        Ok(CounterReading {
            seconds: self.opened.elapsed().as_secs_f64(),
            values,
        })
    }
}

/// Utilisation between two readings.
pub fn utilisation(a: &CounterReading, b: &CounterReading) -> Utilisation {
    let dt = (b.seconds - a.seconds).max(1e-9);
    let d = |e: Event| -> Option<f64> {
        Some(b.values.get(&e)?.saturating_sub(*a.values.get(&e)?) as f64)
    };
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    };
    let stalled = match (d(Event::StalledFrontend), d(Event::StalledBackend)) {
        (Some(f), Some(bk)) => Some(f + bk),
        (Some(x), None) | (None, Some(x)) => Some(x),
        _ => None,
    };
    Utilisation {
        cpus_busy: d(Event::TaskClock).map(|ns| ns / 1e9 / dt),
        ipc: ratio(d(Event::Instructions), d(Event::Cycles)),
        llc_miss_ratio: ratio(d(Event::LlcMisses), d(Event::LlcReferences)),
        mem_bytes_per_sec: d(Event::LlcMisses).map(|m| m * 64.0 / dt),
        stalled_fraction: ratio(stalled, d(Event::Cycles)),
    }
}

// ---------- /proc and cgroup statistics ----------

/// One interface's counters from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetDev {
    /// Interface name.
    pub iface: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

/// Parse `/proc/net/dev`.
pub fn parse_net_dev(text: &str) -> Result<Vec<NetDev>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            return Err(format!("line {}: no interface name", i + 1));
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        if f.len() < 16 {
            return Err(format!("line {}: {} fields, expected 16", i + 1, f.len()));
        }
        out.push(NetDev {
            iface: name.trim().to_string(),
            rx_bytes: f[0],
            rx_packets: f[1],
            tx_bytes: f[8],
            tx_packets: f[9],
        });
    }
    Ok(out)
}

/// One block device's counters from `/proc/diskstats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskStat {
    /// Device name.
    pub name: String,
    /// Reads completed.
    pub reads: u64,
    /// Sectors (512 B) read.
    pub read_sectors: u64,
    /// Writes completed.
    pub writes: u64,
    /// Sectors (512 B) written.
    pub write_sectors: u64,
    /// Milliseconds spent doing IO.
    pub io_ms: u64,
}

/// Parse `/proc/diskstats`.
pub fn parse_diskstats(text: &str) -> Result<Vec<DiskStat>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 14 {
            return Err(format!(
                "line {}: {} fields, expected at least 14",
                i + 1,
                f.len()
            ));
        }
        let n = |k: usize| {
            f[k].parse::<u64>()
                .map_err(|e| format!("line {} field {}: {e}", i + 1, k + 1))
        };
        out.push(DiskStat {
            name: f[2].to_string(),
            reads: n(3)?,
            read_sectors: n(5)?,
            writes: n(7)?,
            write_sectors: n(9)?,
            io_ms: n(12)?,
        });
    }
    Ok(out)
}

/// Read and write bytes of a cgroup, summed over devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct IoBytes {
    /// Bytes read.
    pub read: u64,
    /// Bytes written.
    pub write: u64,
}

/// Parse cgroup v2 `io.stat` (`8:0 rbytes=1 wbytes=2 rios=3 …`).
pub fn parse_io_stat(text: &str) -> Result<IoBytes, String> {
    let mut io = IoBytes::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        for kv in line.split_whitespace().skip(1) {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(format!("bad field {kv:?}"));
            };
            let v: u64 = v.parse().map_err(|e| format!("field {kv:?}: {e}"))?;
            match k {
                "rbytes" => io.read += v,
                "wbytes" => io.write += v,
                _ => {}
            }
        }
    }
    Ok(io)
}

/// Parse cgroup v1 `blkio.throttle.io_service_bytes` (`8:0 Read 123`, … `Total 9`).
pub fn parse_blkio_service_bytes(text: &str) -> Result<IoBytes, String> {
    let mut io = IoBytes::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue; // the "Total N" line
        }
        let v: u64 = f[2].parse().map_err(|e| format!("line {line:?}: {e}"))?;
        match f[1] {
            "Read" => io.read += v,
            "Write" => io.write += v,
            _ => {}
        }
    }
    Ok(io)
}

/// CPU time of a cgroup in ns: v2 `cpu.stat` `usage_usec`, or v1 `cpuacct.usage`.
pub fn parse_cpu_usage_ns(text: &str, v2: bool) -> Result<u64, String> {
    if v2 {
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("usage_usec ") {
                return v
                    .trim()
                    .parse::<u64>()
                    .map(|u| u * 1000)
                    .map_err(|e| format!("usage_usec: {e}"));
            }
        }
        Err("no usage_usec line".into())
    } else {
        text.trim()
            .parse()
            .map_err(|e| format!("cpuacct.usage: {e}"))
    }
}

/// A snapshot of OS statistics.
#[derive(Debug, Clone, Serialize)]
pub struct OsSnapshot {
    /// Seconds since an arbitrary origin.
    #[serde(skip)]
    pub at: Option<Instant>,
    /// Per interface.
    pub net: Vec<NetDev>,
    /// Per block device.
    pub disks: Vec<DiskStat>,
    /// Cgroup IO, when a cgroup was given and has IO accounting.
    pub cgroup_io: Option<IoBytes>,
    /// Cgroup CPU time, ns.
    pub cgroup_cpu_ns: Option<u64>,
}

fn read_file(p: &Path) -> Result<String, CountersError> {
    fs::read_to_string(p).map_err(|source| CountersError::Read {
        path: p.to_path_buf(),
        source,
    })
}

impl OsSnapshot {
    /// Read `<proc>/net/dev`, `<proc>/diskstats` and, for a cgroup directory
    /// (v2 unified, or a v1 controller directory), its CPU and IO statistics.
    /// For v1, `cgroup` may be any controller directory: sibling controllers
    /// are found by replacing the controller component (`cpuacct`, `blkio`).
    pub fn read(proc_root: &Path, cgroup: Option<&Path>) -> Result<Self, CountersError> {
        let nd = proc_root.join("net/dev");
        let net = parse_net_dev(&read_file(&nd)?)
            .map_err(|reason| CountersError::Parse { path: nd, reason })?;
        let ds = proc_root.join("diskstats");
        let disks = parse_diskstats(&read_file(&ds)?)
            .map_err(|reason| CountersError::Parse { path: ds, reason })?;
        let (mut cgroup_io, mut cgroup_cpu_ns) = (None, None);
        if let Some(dir) = cgroup {
            if dir.join("cgroup.controllers").exists() {
                let p = dir.join("io.stat");
                if let Ok(t) = fs::read_to_string(&p) {
                    cgroup_io = Some(
                        parse_io_stat(&t)
                            .map_err(|reason| CountersError::Parse { path: p, reason })?,
                    );
                }
                let p = dir.join("cpu.stat");
                if let Ok(t) = fs::read_to_string(&p) {
                    cgroup_cpu_ns = Some(
                        parse_cpu_usage_ns(&t, true)
                            .map_err(|reason| CountersError::Parse { path: p, reason })?,
                    );
                }
            } else {
                let sib = |ctrl: &str| v1_sibling(dir, ctrl);
                if let Some(p) = sib("blkio").map(|d| d.join("blkio.throttle.io_service_bytes"))
                    && let Ok(t) = fs::read_to_string(&p)
                {
                    cgroup_io = Some(
                        parse_blkio_service_bytes(&t)
                            .map_err(|reason| CountersError::Parse { path: p, reason })?,
                    );
                }
                if let Some(p) = sib("cpuacct").map(|d| d.join("cpuacct.usage"))
                    && let Ok(t) = fs::read_to_string(&p)
                {
                    cgroup_cpu_ns = Some(
                        parse_cpu_usage_ns(&t, false)
                            .map_err(|reason| CountersError::Parse { path: p, reason })?,
                    );
                }
            }
        }
        Ok(OsSnapshot {
            at: Some(Instant::now()),
            net,
            disks,
            cgroup_io,
            cgroup_cpu_ns,
        })
    }
}

/// For a v1 path `<root>/<ctrl>/<rel>`, the same `<rel>` under controller `ctrl`.
fn v1_sibling(dir: &Path, ctrl: &str) -> Option<PathBuf> {
    let comps: Vec<_> = dir.components().collect();
    for i in (0..comps.len()).rev() {
        let name = comps[i].as_os_str().to_string_lossy();
        if [
            "memory",
            "cpu",
            "cpuacct",
            "cpu,cpuacct",
            "blkio",
            "cpuset",
            "pids",
            "devices",
            "freezer",
        ]
        .contains(&name.as_ref())
        {
            let mut p: PathBuf = comps[..i].iter().collect();
            p.push(ctrl);
            for c in &comps[i + 1..] {
                p.push(c);
            }
            return p.is_dir().then_some(p);
        }
    }
    None
}

/// Rates between two snapshots.
#[derive(Debug, Clone, Serialize, Default)]
pub struct OsRates {
    /// Per interface: (rx bytes/s, tx bytes/s).
    pub net: BTreeMap<String, (f64, f64)>,
    /// Per device: (read bytes/s, write bytes/s).
    pub disks: BTreeMap<String, (f64, f64)>,
    /// Cgroup IO (read, write) bytes/s.
    pub cgroup_io: Option<(f64, f64)>,
    /// Cgroup CPUs busy.
    pub cgroup_cpus: Option<f64>,
}

/// Rates from `a` to `b` over `dt`.
pub fn os_rates(a: &OsSnapshot, b: &OsSnapshot, dt: Duration) -> OsRates {
    let s = dt.as_secs_f64().max(1e-9);
    let mut r = OsRates::default();
    for nb in &b.net {
        if let Some(na) = a.net.iter().find(|x| x.iface == nb.iface) {
            r.net.insert(
                nb.iface.clone(),
                (
                    nb.rx_bytes.saturating_sub(na.rx_bytes) as f64 / s,
                    nb.tx_bytes.saturating_sub(na.tx_bytes) as f64 / s,
                ),
            );
        }
    }
    for db in &b.disks {
        if let Some(da) = a.disks.iter().find(|x| x.name == db.name) {
            r.disks.insert(
                db.name.clone(),
                (
                    db.read_sectors.saturating_sub(da.read_sectors) as f64 * 512.0 / s,
                    db.write_sectors.saturating_sub(da.write_sectors) as f64 * 512.0 / s,
                ),
            );
        }
    }
    if let (Some(x), Some(y)) = (a.cgroup_io, b.cgroup_io) {
        r.cgroup_io = Some((
            y.read.saturating_sub(x.read) as f64 / s,
            y.write.saturating_sub(x.write) as f64 / s,
        ));
    }
    if let (Some(x), Some(y)) = (a.cgroup_cpu_ns, b.cgroup_cpu_ns) {
        r.cgroup_cpus = Some(y.saturating_sub(x) as f64 / 1e9 / s);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     100    0    0    0     0          0         0   123456     100    0    0    0     0       0          0
  eth0: 9876543   20000    0    5    0     0          0        10  1234567   15000    0    0    0     0       0          0
";

    const DISKSTATS: &str =
        " 254       0 vda 11234 123 567890 4321 22345 678 901234 5678 0 6789 9999 0 0 0 0 0 0
 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn net_dev_golden() {
        let v = parse_net_dev(NET_DEV).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[1],
            NetDev {
                iface: "eth0".into(),
                rx_bytes: 9876543,
                rx_packets: 20000,
                tx_bytes: 1234567,
                tx_packets: 15000
            }
        );
        assert!(parse_net_dev("h\nh\neth0: 1 2\n").is_err());
    }

    #[test]
    fn diskstats_golden() {
        let v = parse_diskstats(DISKSTATS).unwrap();
        assert_eq!(
            v[0],
            DiskStat {
                name: "vda".into(),
                reads: 11234,
                read_sectors: 567890,
                writes: 22345,
                write_sectors: 901234,
                io_ms: 6789
            }
        );
        assert!(parse_diskstats("1 2 vda x").is_err());
    }

    #[test]
    fn cgroup_io_golden() {
        assert_eq!(
            parse_io_stat(
                "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n254:0 rbytes=1 wbytes=2 rios=0 wios=0\n"
            ),
            Ok(IoBytes {
                read: 101,
                write: 202
            })
        );
        assert!(parse_io_stat("8:0 rbytes\n").is_err());
        assert_eq!(
            parse_blkio_service_bytes(
                "254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 0\n254:0 Total 12288\nTotal 12288\n"
            ),
            Ok(IoBytes {
                read: 4096,
                write: 8192
            })
        );
        assert_eq!(
            parse_cpu_usage_ns("usage_usec 1500\nuser_usec 1000\n", true),
            Ok(1_500_000)
        );
        assert_eq!(parse_cpu_usage_ns("123456789\n", false), Ok(123456789));
        assert!(parse_cpu_usage_ns("user_usec 1\n", true).is_err());
    }

    #[test]
    fn snapshot_reads_a_fake_proc_and_v1_cgroup() {
        let d = tempfile::tempdir().unwrap();
        let proc_ = d.path().join("proc");
        fs::create_dir_all(proc_.join("net")).unwrap();
        fs::write(proc_.join("net/dev"), NET_DEV).unwrap();
        fs::write(proc_.join("diskstats"), DISKSTATS).unwrap();
        let cg = d.path().join("cg");
        fs::create_dir_all(cg.join("memory/app")).unwrap();
        fs::create_dir_all(cg.join("cpuacct/app")).unwrap();
        fs::create_dir_all(cg.join("blkio/app")).unwrap();
        fs::write(cg.join("cpuacct/app/cpuacct.usage"), "2000000000\n").unwrap();
        fs::write(
            cg.join("blkio/app/blkio.throttle.io_service_bytes"),
            "8:0 Read 10\n8:0 Write 20\nTotal 30\n",
        )
        .unwrap();
        let a = OsSnapshot::read(&proc_, Some(&cg.join("memory/app"))).unwrap();
        assert_eq!(a.cgroup_cpu_ns, Some(2_000_000_000));
        assert_eq!(
            a.cgroup_io,
            Some(IoBytes {
                read: 10,
                write: 20
            })
        );
        fs::write(cg.join("cpuacct/app/cpuacct.usage"), "3000000000\n").unwrap();
        fs::write(proc_.join("net/dev"), NET_DEV.replace("9876543", "9877543")).unwrap();
        let b = OsSnapshot::read(&proc_, Some(&cg.join("memory/app"))).unwrap();
        let r = os_rates(&a, &b, Duration::from_secs(2));
        assert_eq!(r.cgroup_cpus, Some(0.5));
        assert_eq!(r.net["eth0"].0, 500.0);
        let err = OsSnapshot::read(&d.path().join("none"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none/net/dev"), "{err}");
    }

    #[test]
    fn utilisation_from_readings() {
        let mk = |s: f64, c: u64, i: u64, r: u64, m: u64, t: u64| CounterReading {
            seconds: s,
            values: [
                (Event::Cycles, c),
                (Event::Instructions, i),
                (Event::LlcReferences, r),
                (Event::LlcMisses, m),
                (Event::TaskClock, t),
            ]
            .into_iter()
            .collect(),
        };
        let u = utilisation(
            &mk(0.0, 0, 0, 0, 0, 0),
            &mk(1.0, 1000, 2000, 100, 25, 500_000_000),
        );
        assert_eq!(u.ipc, Some(2.0));
        assert_eq!(u.llc_miss_ratio, Some(0.25));
        assert_eq!(u.mem_bytes_per_sec, Some(1600.0));
        assert_eq!(u.cpus_busy, Some(0.5));
        assert_eq!(u.stalled_fraction, None);
    }

    #[test]
    fn perf_support_is_detected_and_cached() {
        let a = perf_support();
        let b = perf_support();
        assert!(std::ptr::eq(a, b));
        match a {
            PerfSupport::Available => {
                let set = CounterSet::open(&PerfScope::Pid(0)).unwrap();
                assert!(set.events().contains(&Event::Cycles));
                let r0 = set.read().unwrap();
                std::hint::black_box((0..1_000_000u64).sum::<u64>());
                let r1 = set.read().unwrap();
                assert!(r1.values[&Event::Cycles] > r0.values[&Event::Cycles]);
            }
            PerfSupport::NotSupported(why) => {
                println!("SKIPPED: hardware counters: {why}");
                assert!(why.contains("perf_event_open"));
                assert!(matches!(
                    CounterSet::open(&PerfScope::Pid(0)),
                    Err(CountersError::NotSupported(_))
                ));
            }
        }
    }
}
