//! The `memcap` probe: holds `intensity × cap` bytes of anonymous memory and
//! keeps touching them for the window, where the cap is a configured share of
//! `MemAvailable` or of the cgroup's limit (whichever is smaller), bounded by
//! an absolute maximum. Memory is faulted in before the window, by a forked
//! child process (so the caller's address space, and any target thread in
//! it, sees no page faults, mmap-lock traffic or TLB shootdowns from the
//! probe). With a target cgroup the child joins that cgroup first (memory is
//! charged per process). The child asks the OOM killer to pick it first and
//! is killed and reaped after the window.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::{ProbeError, ProbeReport, ProbeSettings, duty_loop, report_from, stopped};
use crate::memlimit;

const PAGE: usize = 4096;
/// How long the child may take to fault its memory in.
const FAULT_IN_TIMEOUT_MS: i32 = 30_000;

pub(crate) struct Memcap {
    cap: u64,
    procs: Option<(PathBuf, CString)>,
    own: PathBuf,
    basis: String,
}

impl Memcap {
    pub(crate) fn new(s: &ProbeSettings) -> Result<Self, ProbeError> {
        if !(s.mem_share > 0.0 && s.mem_share <= 1.0) {
            return Err(ProbeError::Config(format!(
                "memory share {} is not in (0, 1]",
                s.mem_share
            )));
        }
        let avail = memlimit::mem_available(&s.meminfo)?;
        let (limit, procs) = match &s.mem_cgroup {
            Some(dir) => {
                let limit = memlimit::cgroup_limit(dir)?;
                let procs = dir.join("cgroup.procs");
                let c = CString::new(procs.as_os_str().as_bytes()).map_err(|_| {
                    ProbeError::Config(format!("cgroup path {} has a NUL byte", procs.display()))
                })?;
                (limit, Some((procs, c)))
            }
            None => {
                let own = std::fs::read_to_string(&s.proc_self_cgroup)
                    .ok()
                    .and_then(|t| memlimit::own_cgroup_dir(&s.cgroup_root, &t));
                (
                    own.and_then(|d| memlimit::cgroup_limit(&d).ok().flatten()),
                    None,
                )
            }
        };
        let cap = memlimit::memcap_cap(avail, limit, s.mem_share, s.mem_max);
        let basis = format!(
            "cap {} MiB = min({:.0}% of MemAvailable {} MiB{}, max {} MiB)",
            cap >> 20,
            s.mem_share * 100.0,
            avail >> 20,
            limit.map_or(String::new(), |l| format!(", cgroup limit {} MiB", l >> 20)),
            s.mem_max >> 20
        );
        Ok(Memcap {
            cap,
            procs,
            own: PathBuf::from("(own cgroup)"),
            basis,
        })
    }

    pub(crate) fn run(
        &mut self,
        intensity: u8,
        duration: Duration,
        stop: &AtomicBool,
    ) -> Result<ProbeReport, ProbeError> {
        let bytes =
            (self.cap as u128 * u128::from(intensity.min(100)) / 100) as usize / PAGE * PAGE;
        if bytes == 0 {
            let s = duty_loop(0, duration, super::DEFAULT_PERIOD, stop, |_| 0);
            let mut r = report_from(s, "page-touch", 64.0, 0);
            r.note = Some(self.basis.clone());
            return Ok(r);
        }
        match &self.procs {
            None => run_in_child(None, &self.own, bytes, duration, stop, &self.basis),
            Some((path, c)) => run_in_child(Some(c), path, bytes, duration, stop, &self.basis),
        }
    }
}

fn run_in_child(
    procs: Option<&CString>,
    path: &std::path::Path,
    bytes: usize,
    duration: Duration,
    stop: &AtomicBool,
    basis: &str,
) -> Result<ProbeReport, ProbeError> {
    let sys = |what: String| ProbeError::Sys {
        what,
        source: std::io::Error::last_os_error(),
    };
    let oom = c"/proc/self/oom_score_adj";
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(sys("create a pipe for the memcap child".into()));
    }
    let (rd, wr) = (fds[0], fds[1]);
    let t0 = Instant::now();
    // SAFETY: the child only makes async-signal-safe system calls (prctl,
    // open, write, close, mmap) and touches memory, then waits to be killed;
    // it never returns into Rust code or allocates.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        // SAFETY: closing the two pipe fds created above.
        unsafe {
            libc::close(rd);
            libc::close(wr);
        }
        return Err(sys("fork the memcap child".into()));
    }
    if pid == 0 {
        // SAFETY: see the fork above; every call is a raw system call on
        // buffers that live in this (copied) address space.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            let normal = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_OTHER, &normal);
            if let Some(procs) = procs {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    libc::_exit(3);
                }
                libc::close(fd);
            }
            let fd = libc::open(oom.as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                libc::write(fd, b"1000".as_ptr().cast(), 4);
                libc::close(fd);
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                libc::_exit(4);
            }
            let b = p.cast::<u8>();
            let mut i = 0;
            while i < bytes {
                *b.add(i) = 1;
                i += PAGE;
            }
            libc::write(wr, b"r".as_ptr().cast(), 1);
            loop {
                let mut i = 0;
                while i < bytes {
                    let q = b.add(i);
                    std::ptr::write_volatile(q, std::ptr::read_volatile(q).wrapping_add(1));
                    i += PAGE;
                }
            }
        }
    }
    // SAFETY: the parent closes its copy of the write end.
    unsafe { libc::close(wr) };
    let mut pfd = libc::pollfd {
        fd: rd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut byte = 0u8;
    // SAFETY: polling our own pipe fd with a valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, FAULT_IN_TIMEOUT_MS) };
    // SAFETY: reading one byte from our own pipe fd.
    let got = ready == 1 && unsafe { libc::read(rd, (&mut byte as *mut u8).cast(), 1) } == 1;
    // SAFETY: closing our read end.
    unsafe { libc::close(rd) };
    let setup = t0.elapsed();
    let window_start = Instant::now();
    if got {
        super::mark_window_started();
        while window_start.elapsed() < duration && !stopped(stop) {
            std::thread::sleep(
                (duration - window_start.elapsed().min(duration)).min(Duration::from_millis(1)),
            );
        }
    }
    let wall = window_start.elapsed();
    let mut status = 0;
    // SAFETY: killing and reaping the child forked above (pid > 0).
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
    if !got {
        let why = if libc::WIFEXITED(status) {
            match libc::WEXITSTATUS(status) {
                3 => format!("could not join {}", path.display()),
                4 => format!("could not map {bytes} bytes"),
                c => format!("exited with {c}"),
            }
        } else if ready == 0 {
            format!(
                "did not fault in its {} MiB within {} s (the host is short of memory or CPU)",
                bytes >> 20,
                FAULT_IN_TIMEOUT_MS / 1000
            )
        } else {
            format!("killed by signal {} (OOM?)", libc::WTERMSIG(status))
        };
        return Err(ProbeError::Config(format!(
            "memcap child in {}: {why}",
            path.display()
        )));
    }
    let mut r = report_from(
        super::DutyStats {
            units: 0,
            busy: wall,
            wall,
        },
        "page-held",
        0.0,
        bytes as u64,
    );
    r.setup_ms = setup.as_secs_f64() * 1e3;
    r.note = Some(format!(
        "{basis}; held by child {pid} in {}",
        path.display()
    ));
    r.ops = (bytes / PAGE) as u64;
    Ok(r)
}
