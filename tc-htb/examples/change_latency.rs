//! Per-call latency percentiles of an HTB class change and a class-stats
//! read: this library vs `tc class change` (a fork per change) vs `tc
//! -batch`, in one run on the same veth. Medians are what to compare on a
//! busy machine (means are pulled up by preemption).
//!
//! Needs root. Run:
//! `cargo run --release -p tc-htb --example change_latency [CHANGES]`

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tc_htb::{Handle, HtbClass, HtbQdisc, Leaf, Rate, Tc};

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn class(rate_mbit: u64) -> HtbClass {
    HtbClass::new(
        Handle::new(1, 0),
        Handle::new(1, 0x10),
        Rate::mbit(rate_mbit),
    )
    .ceil(Rate::mbit(1000))
    .quantum(1514)
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "{what:<28} n={:<6} min {:>9.1} µs  p50 {:>9.1} µs  p90 {:>9.1} µs  p99 {:>9.1} µs",
        samples.len(),
        pct(0.0),
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
}

fn main() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: needs root to create a network namespace");
        return Ok(());
    }
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5000);
    let ns = Netns(format!("tchtb-lat-{}", std::process::id()));
    ip(&["netns", "add", &ns.0]).map_err(anyhow::Error::msg)?;
    ip(&[
        "-n", &ns.0, "link", "add", "va", "type", "veth", "peer", "name", "vb",
    ])
    .map_err(anyhow::Error::msg)?;
    ip(&["-n", &ns.0, "link", "set", "va", "up"]).map_err(anyhow::Error::msg)?;

    let mut tc = Tc::open_in_netns(format!("/run/netns/{}", ns.0))?;
    let va = tc.link("va")?;
    tc.qdisc_add(&va, &HtbQdisc::root(1, 0x10))?;
    tc.class_add(&va, &class(100))?;
    tc.leaf_add(
        &va,
        Handle::new(1, 0x10),
        Handle::new(0x10, 0),
        &Leaf::Pfifo { limit: Some(1000) },
    )?;

    let (a, b) = (class(100), class(101));
    let mut lib = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        tc.class_change(&va, if i % 2 == 0 { &a } else { &b })?;
        lib.push(t.elapsed());
    }
    report("library class_change", lib);

    let forks = (n / 50).max(20);
    let mut fork = Vec::with_capacity(forks);
    for i in 0..forks {
        let rate = if i % 2 == 0 { "100mbit" } else { "101mbit" };
        let t = Instant::now();
        let st = Command::new("tc")
            .args([
                "-n", &ns.0, "class", "change", "dev", "va", "parent", "1:", "classid", "1:10",
                "htb", "rate", rate, "ceil", "1000mbit", "quantum", "1514",
            ])
            .status()?;
        fork.push(t.elapsed());
        anyhow::ensure!(st.success(), "tc class change failed");
    }
    report("tc class change (fork)", fork);

    let mut batch = Vec::new();
    for _ in 0..5 {
        let mut script = String::new();
        for i in 0..n {
            let rate = if i % 2 == 0 { "100mbit" } else { "101mbit" };
            script.push_str(&format!("class change dev va parent 1: classid 1:10 htb rate {rate} ceil 1000mbit quantum 1514\n"));
        }
        let t = Instant::now();
        let mut child = Command::new("tc")
            .args(["-n", &ns.0, "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes())?;
        anyhow::ensure!(child.wait()?.success(), "tc -batch failed");
        batch.push(t.elapsed() / n as u32);
    }
    report("tc -batch (per change)", batch);

    let id = Handle::new(1, 0x10);
    let mut stats = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(tc.class_stats(&va, id)?);
        stats.push(t.elapsed());
    }
    report("library class_stats", stats);
    let mut root = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(tc.root_get(&va)?);
        root.push(t.elapsed());
    }
    report("library root qdisc get", root);
    Ok(())
}
