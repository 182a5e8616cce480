//! Shared fixtures for the validation tests: priority boost, LLC
//! calibration, a test memory cgroup, a network namespace with a shaped
//! veth, and victim servers in their own processes. Every kernel object has
//! a unique name and is removed on drop, also when a test panics.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bench_probes::probe::{ProbeSettings, calibrate_llc};

static LOCK: Mutex<()> = Mutex::new(());
static SEQ: AtomicU32 = AtomicU32::new(0);

/// Timing tests run one at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Keep other load on the machine out of the measurements: once per
/// process, move into a session of our own (so the scheduler gives the test
/// its own autogroup) and set that autogroup's nice to -20 (root only); then
/// set this thread's nice to -20. Threads and processes spawned afterwards
/// inherit both. Best effort: without root only the thread nice applies.
pub fn boost() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // SAFETY: setsid has no memory-safety preconditions; failure (we
        // already lead a group) leaves the process where it was.
        unsafe {
            libc::setsid();
        }
        let _ = fs::write("/proc/self/autogroup", "-20");
    });
    // SAFETY: setpriority on the calling thread (who = 0).
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, -20);
    }
}

pub struct Machine {
    pub settings: ProbeSettings,
    /// Effective LLC measured by a pointer chase.
    pub llc: u64,
    pub sysfs_llc: u64,
}

/// This machine's settings (probe windows real-time when root) and its
/// calibrated LLC; `None` (after printing SKIPPED) with fewer than 2 CPUs.
pub fn machine() -> Option<&'static Machine> {
    static M: OnceLock<Option<Machine>> = OnceLock::new();
    M.get_or_init(|| {
        let mut settings = ProbeSettings::discover().expect("topology");
        if settings.topology.online().len() < 2 {
            println!("SKIPPED: needs 2 CPUs to place a victim and a probe apart");
            return None;
        }
        // IO probes issue their IO under SCHED_FIFO (root); CPU-bound probes
        // run at the test's own boosted priority.
        if is_root() {
            settings.realtime = Some(10);
        }
        let l2 = settings.topology.data_cache(1, 2).unwrap_or(512 << 10);
        let sysfs_llc = settings.topology.llc(1).unwrap_or(8 << 20);
        let cal = {
            boost();
            calibrate_llc(l2, sysfs_llc, Duration::from_millis(10)).expect("calibrate")
        };
        // bound the effective size to something sane for the probe buffers
        let llc = cal.effective_bytes.clamp(1 << 20, sysfs_llc.max(1 << 20));
        println!(
            "LLC: sysfs {} KiB, effective {} KiB ({:?})",
            sysfs_llc >> 10,
            llc >> 10,
            cal.points
        );
        settings.llc_bytes = Some(llc);
        Some(Machine {
            settings,
            llc,
            sysfs_llc,
        })
    })
    .as_ref()
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// A cgroup v1 memory cgroup with a limit, removed on drop (its processes
/// are killed first).
pub struct MemCgroup {
    pub path: PathBuf,
}

impl MemCgroup {
    pub fn new(limit: u64) -> Result<Self, String> {
        let root = Path::new("/sys/fs/cgroup/memory");
        if !root.join("memory.limit_in_bytes").exists() {
            return Err("no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory".into());
        }
        let path = root.join(format!(
            "seer-probe-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        let g = MemCgroup { path };
        fs::write(g.path.join("memory.limit_in_bytes"), limit.to_string())
            .map_err(|e| format!("limit: {e}"))?;
        Ok(g)
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if let Ok(t) = fs::read_to_string(self.path.join("cgroup.procs")) {
                for pid in t.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: killing a process we placed in our own test cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.path.display());
    }
}

/// A victim server process (`seer-probe victim KIND`) on CPU 0, optionally
/// inside a cgroup; killed on drop.
pub struct VictimProc {
    child: Child,
    pub addr: SocketAddr,
}

impl VictimProc {
    pub fn spawn(kind: &str, cgroup: Option<&Path>, extra: &[&str]) -> Result<Self, String> {
        let mut c = Command::new(env!("CARGO_BIN_EXE_seer-probe"));
        c.args(["victim", kind, "--listen", "127.0.0.1:0", "--cpu", "0"])
            .args(extra);
        c.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let procs = match cgroup {
            Some(cg) => Some(
                fs::OpenOptions::new()
                    .write(true)
                    .open(cg.join("cgroup.procs"))
                    .map_err(|e| format!("open cgroup.procs: {e}"))?,
            ),
            None => None,
        };
        if let Some(f) = &procs {
            let fd = f.as_raw_fd();
            // SAFETY: runs in the child before exec; one write(2) of a static buffer.
            unsafe {
                c.pre_exec(move || {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = c.spawn().map_err(|e| format!("spawn victim: {e}"))?;
        drop(procs);
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| format!("read victim address: {e}"))?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                let _ = child.kill();
                format!("victim said {line:?}")
            })?;
        Ok(VictimProc { child, addr })
    }
}

impl Drop for VictimProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A network namespace joined to the root namespace by a veth pair whose
/// root-side end is shaped with tbf (a NIC of limited bandwidth). Deleting
/// the namespace deletes the pair.
pub struct NetLab {
    pub ns: String,
    pub host_if: String,
    pub ns_ip: String,
}

impl NetLab {
    pub fn new(rate: &str) -> Result<Self, String> {
        if !is_root() {
            return Err("needs root for network namespaces".into());
        }
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{}", std::process::id() % 100_000, n);
        let ns = format!("seerprobe{id}");
        let host_if = format!("spr{id}");
        let ns_if = format!("spn{id}");
        let net = format!("10.{}.{}", 100 + std::process::id() % 100, n % 250);
        run("ip", &["netns", "add", &ns])?;
        let lab = NetLab {
            ns: ns.clone(),
            host_if: host_if.clone(),
            ns_ip: format!("{net}.2"),
        };
        run(
            "ip",
            &[
                "-n", &ns, "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
        )?;
        run("ip", &["-n", &ns, "link", "set", &host_if, "netns", "1"])?;
        run(
            "ip",
            &["addr", "add", &format!("{net}.1/24"), "dev", &host_if],
        )?;
        run("ip", &["link", "set", &host_if, "up"])?;
        run(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{net}.2/24"),
                "dev",
                &ns_if,
            ],
        )?;
        run("ip", &["-n", &ns, "link", "set", &ns_if, "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        run(
            "tc",
            &[
                "qdisc", "add", "dev", &host_if, "root", "tbf", "rate", rate, "burst", "32kb",
                "limit", "512kb",
            ],
        )?;
        Ok(lab)
    }

    /// Run `f` on a thread inside the namespace.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let fd = fs::File::open(&path).expect("open netns");
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }

    /// A one-byte echo server in the namespace; returns its address.
    pub fn echo_server(&self) -> SocketAddr {
        let ip = self.ns_ip.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.spawn_in(move || {
            // the echo server is part of the victim: on the target's CPU
            let mut set = nix::sched::CpuSet::new();
            let _ = set.set(0);
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
            let l = TcpListener::bind(format!("{ip}:0")).expect("bind echo");
            tx.send(l.local_addr().expect("addr")).expect("send");
            while let Ok((mut s, _)) = l.accept() {
                let _ = s.set_nodelay(true);
                let mut b = [0u8; 1];
                while let Ok(1) = s.read(&mut b) {
                    if b[0] == b'q' || s.write_all(&b).is_err() {
                        break;
                    }
                }
                if b[0] == b'q' {
                    break;
                }
            }
        });
        rx.recv().expect("echo address")
    }

    /// A discard server in the namespace (accepts any number of connections).
    pub fn discard_server(&self) -> SocketAddr {
        let ip = self.ns_ip.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.spawn_in(move || {
            let l = TcpListener::bind(format!("{ip}:0")).expect("bind discard");
            tx.send(l.local_addr().expect("addr")).expect("send");
            while let Ok((mut s, _)) = l.accept() {
                std::thread::spawn(move || {
                    // keep the receiving copies off the victim's CPU, and
                    // above a real-time probe there so the sink keeps draining
                    let mut set = nix::sched::CpuSet::new();
                    let _ = set.set(1);
                    let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
                    let p = libc::sched_param { sched_priority: 20 };
                    // SAFETY: sets this thread's own policy; failure leaves it normal.
                    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) };
                    let mut buf = vec![0u8; 256 << 10];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
        rx.recv().expect("discard address")
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.ns]);
        // the pair dies with the namespace; make sure
        let _ = run("ip", &["link", "del", &self.host_if]);
    }
}

/// Connect to a one-byte request/response server.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}
