//! Test support: uniquely named network namespaces joined by a veth pair,
//! removed on drop (also when a test panics), and an in-process TCP sender
//! and receiver to measure shaped throughput across them.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Prefix of every namespace the tests create: `tchtb-<pid>-<n>-<tag>`.
pub const PREFIX: &str = "tchtb-";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether kernel tests can run here; prints `SKIPPED: why` when not.
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: {test}: needs root to create network namespaces");
        return false;
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            println!("SKIPPED: {test}: `ip` (iproute2) not found");
            false
        }
    }
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("run ip")
}

fn check(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Names of the namespaces that exist now.
pub fn netns_list() -> Vec<String> {
    let out = ip(&["netns", "list"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// A network namespace named `tchtb-<pid>-<n>-<tag>`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{tag}", std::process::id());
        check(&["netns", "add", &name]);
        let ns = Netns { name };
        check(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Runs `tc -n NS ARGS`, returns stdout; panics with stderr on failure.
    pub fn tc(&self, args: &[&str]) -> String {
        let out = Command::new("tc")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run tc");
        assert!(
            out.status.success(),
            "tc -n {} {}: {}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Deletes the namespace now and asserts it is gone.
    pub fn close(self) {
        let name = self.name.clone();
        drop(self);
        assert!(
            !netns_list().contains(&name),
            "namespace {name} still exists after delete"
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = ip(&["netns", "del", &self.name]);
        if !out.status.success() {
            eprintln!(
                "warning: ip netns del {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Two namespaces joined by a veth pair: `va` (10.99.0.1) in `a`, `vb`
/// (10.99.0.2) in `b`. Shape `va`'s egress to shape a → b traffic.
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
}

pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

impl Pair {
    pub fn new(tag: &str) -> Pair {
        let a = Netns::new(&format!("{tag}a"));
        let b = Netns::new(&format!("{tag}b"));
        check(&[
            "-n", &a.name, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
            &b.name,
        ]);
        check(&["-n", &a.name, "addr", "add", "10.99.0.1/24", "dev", "va"]);
        check(&["-n", &b.name, "addr", "add", "10.99.0.2/24", "dev", "vb"]);
        check(&["-n", &a.name, "link", "set", "va", "up"]);
        check(&["-n", &b.name, "link", "set", "vb", "up"]);
        Pair { a, b }
    }

    /// Deletes both namespaces and asserts they are gone.
    pub fn close(self) {
        self.a.close();
        self.b.close();
    }
}

/// Runs `f` on a new thread that has entered the namespace at `path`.
pub fn in_netns<T: Send + 'static>(
    path: PathBuf,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// Arrival record of one TCP flow: (time since `origin`, bytes so far).
pub struct Flow {
    pub samples: Vec<(Duration, u64)>,
}

impl Flow {
    /// Goodput in bits/s between `from` and `to` (times since origin).
    pub fn rate_bps(&self, from: Duration, to: Duration) -> f64 {
        let at = |t: Duration| -> (Duration, u64) {
            *self
                .samples
                .iter()
                .find(|(ts, _)| *ts >= t)
                .or(self.samples.last())
                .expect("no samples")
        };
        let (t0, b0) = at(from);
        let (t1, b1) = at(to);
        let dt = (t1 - t0).as_secs_f64();
        assert!(
            dt > 0.2,
            "flow too short to measure: {dt}s between {from:?} and {to:?}"
        );
        (b1 - b0) as f64 * 8.0 / dt
    }
}

/// Starts a TCP flow a → b to `port` for `duration`; returns when it ends.
/// Times are measured from `origin`.
pub fn tcp_flow(
    pair: &Pair,
    port: u16,
    duration: Duration,
    origin: Instant,
) -> std::thread::JoinHandle<Flow> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let receiver = in_netns(pair.b.path(), move || {
        let listener = TcpListener::bind(SocketAddrV4::new(ADDR_B, port)).expect("bind");
        ready_tx.send(()).expect("ready");
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        let mut samples = Vec::with_capacity(100_000);
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n as u64;
                    samples.push((origin.elapsed(), total));
                }
            }
        }
        Flow { samples }
    });
    ready_rx.recv().expect("receiver ready");
    let sender = in_netns(pair.a.path(), move || {
        let mut conn = TcpStream::connect(SocketAddrV4::new(ADDR_B, port)).expect("connect");
        let chunk = vec![0x5au8; 128 * 1024];
        let end = Instant::now() + duration;
        while Instant::now() < end {
            if conn.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = conn.shutdown(std::net::Shutdown::Both);
    });
    std::thread::spawn(move || {
        sender.join().expect("sender");
        receiver.join().expect("receiver")
    })
}

/// Serializes traffic tests across threads and processes (nextest runs
/// each test in its own process): concurrent flows on a small machine starve
/// each other of CPU and measure the machine, not the shaper.
pub fn traffic_lock() -> std::fs::File {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/tchtb-traffic.lock")
        .expect("open lock file");
    // SAFETY: flock on a valid, open descriptor; blocks until granted.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock /tmp/tchtb-traffic.lock");
    file
}

/// One rate measurement: what, measured bits/s, target bits/s.
pub type Measure = (String, f64, f64);

/// Runs `attempt` until every measurement is within ±`tolerance` of its
/// target, at most `tries` times. A rate *above* the tolerance fails at once
/// (the shaper let too much through); one below is retried, because a
/// CPU-starved sender on a busy machine cannot fill the class.
pub fn within_tolerance(tries: u32, tolerance: f64, mut attempt: impl FnMut() -> Vec<Measure>) {
    for n in 1..=tries {
        let results = attempt();
        let mut low = Vec::new();
        for (what, measured, target) in &results {
            let err = (measured - target) / target;
            println!(
                "attempt {n}: {what}: measured {:.1} Mbit/s, target {:.1} Mbit/s ({:+.1} %)",
                measured / 1e6,
                target / 1e6,
                err * 100.0
            );
            assert!(
                err <= tolerance,
                "{what}: measured {:.1} Mbit/s is above the class rate {:.1} Mbit/s by {:+.1} % (allowed {:.0} %)",
                measured / 1e6,
                target / 1e6,
                err * 100.0,
                tolerance * 100.0
            );
            if err < -tolerance {
                low.push(format!(
                    "{what}: {:.1} of {:.1} Mbit/s ({:+.1} %)",
                    measured / 1e6,
                    target / 1e6,
                    err * 100.0
                ));
            }
        }
        if low.is_empty() {
            return;
        }
        assert!(
            n < tries,
            "below the class rate after {tries} tries: {}",
            low.join("; ")
        );
    }
}

/// Asserts `measured` is within ±`tolerance` (fraction) of `target` bits/s.
pub fn assert_rate(what: &str, measured: f64, target: f64, tolerance: f64) {
    let err = (measured - target) / target;
    println!(
        "{what}: measured {:.1} Mbit/s, target {:.1} Mbit/s ({:+.1} %)",
        measured / 1e6,
        target / 1e6,
        err * 100.0
    );
    assert!(
        err.abs() <= tolerance,
        "{what}: measured {:.1} Mbit/s, target {:.1} Mbit/s: off by {:+.1} % (allowed ±{:.0} %)",
        measured / 1e6,
        target / 1e6,
        err * 100.0,
        tolerance * 100.0
    );
}
