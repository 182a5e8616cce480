//! HTB class change latency: this library vs `tc class change` (one fork
//! per change) vs `tc -batch` (one process for many changes), side by side
//! on the same veth; plus reading one class's statistics.
//!
//! Needs root (it creates the namespace `tchtb-bench-<pid>`, removed on
//! exit). Run: `cargo bench -p tc-htb --bench class_change`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::Criterion;
use tc_htb::{Handle, HtbClass, HtbQdisc, Leaf, Rate, Tc};

struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("tchtb-bench-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ip(&[
            "-n", &ns.0, "link", "add", "va", "type", "veth", "peer", "name", "vb",
        ]);
        ip(&["-n", &ns.0, "link", "set", "va", "up"]);
        ip(&["-n", &ns.0, "link", "set", "vb", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
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

fn benches(c: &mut Criterion, ns: &Netns) {
    let mut tc = Tc::open_in_netns(format!("/run/netns/{}", ns.0)).expect("open netns");
    let va = tc.link("va").expect("va");
    tc.qdisc_add(&va, &HtbQdisc::root(1, 0x10)).expect("root");
    tc.class_add(&va, &class(100)).expect("class");
    tc.leaf_add(
        &va,
        Handle::new(1, 0x10),
        Handle::new(0x10, 0),
        &Leaf::Pfifo { limit: Some(1000) },
    )
    .expect("leaf");

    let mut g = c.benchmark_group("htb_class_change");
    // Alternate two rates so every call really changes the class.
    let (a, b) = (class(100), class(101));
    let mut flip = false;
    g.bench_function("library", |bench| {
        bench.iter(|| {
            flip = !flip;
            tc.class_change(&va, if flip { &a } else { &b })
                .expect("change");
        })
    });

    let change_args = |rate: &str| -> Vec<String> {
        [
            "-n", &ns.0, "class", "change", "dev", "va", "parent", "1:", "classid", "1:10", "htb",
            "rate", rate, "ceil", "1000mbit", "quantum", "1514",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (fa, fb) = (change_args("100mbit"), change_args("101mbit"));
    g.bench_function("tc_fork", |bench| {
        bench.iter(|| {
            flip = !flip;
            let st = Command::new("tc")
                .args(if flip { &fa } else { &fb })
                .status()
                .expect("tc");
            assert!(st.success());
        })
    });

    g.bench_function("tc_batch", |bench| {
        bench.iter_custom(|iters| {
            let mut script = String::new();
            for i in 0..iters {
                let rate = if i % 2 == 0 { "100mbit" } else { "101mbit" };
                script.push_str(&format!(
                    "class change dev va parent 1: classid 1:10 htb rate {rate} ceil 1000mbit quantum 1514\n"
                ));
            }
            let start = Instant::now();
            let mut child = Command::new("tc")
                .args(["-n", &ns.0, "-batch", "-"])
                .stdin(Stdio::piped())
                .spawn()
                .expect("tc -batch");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(script.as_bytes())
                .expect("write");
            assert!(child.wait().expect("wait").success());
            start.elapsed()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("htb_class_stats");
    let id = Handle::new(1, 0x10);
    g.bench_function("library_class_stats", |bench| {
        bench.iter(|| black_box(tc.class_stats(&va, id).expect("stats")))
    });
    g.bench_function("library_root_backlog", |bench| {
        bench.iter(|| {
            black_box(
                tc.root_get(&va)
                    .expect("root")
                    .map(|q| q.stats.backlog_bytes),
            )
        })
    });
    g.bench_function("tc_fork_class_show", |bench| {
        bench.iter(|| {
            let out = Command::new("tc")
                .args([
                    "-n", &ns.0, "-s", "class", "show", "dev", "va", "classid", "1:10",
                ])
                .output()
                .expect("tc");
            black_box(out.stdout.len())
        })
    });
    g.finish();
}

fn main() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: class_change bench needs root to create a network namespace");
        return;
    }
    let ns = Netns::new();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    benches(&mut c, &ns);
    c.final_summary();
}
