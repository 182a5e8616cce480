//! A CPU-quota action end to end (read the knob, journal `pending`, write
//! `cpu.cfs_quota_us`/`cpu.max`, journal `applied`), with and without the
//! journal's fsync, side by side with the bare file write and with a shell
//! `echo` into the same file (fork + exec of `sh`, as a script would do).
//! `docker update` is the other anchor; it needs a Docker engine and is not
//! measured here.
//!
//! Runs on a real, uniquely named v1 test cgroup when root on a v1/hybrid
//! host; otherwise on a fake v2 tree (and says so). The journal lives in a
//! temporary directory under `SEER_BENCH_DIR` (default: the system temp dir);
//! put it on the disk the agent would use to measure a meaningful fsync.
//!
//! `cargo bench -p seer-actuators --bench cpu_quota`

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use seer_actuators::test_util::{FakeCgroupFs, TestCgroup};
use seer_actuators::{
    Action, Actuator, CgroupFs, CgroupMode, Controller, Durability, Journal, Knob,
};

struct Target {
    fs: CgroupFs,
    rel: String,
    _real: Option<TestCgroup>,
    _fake: Option<FakeCgroupFs>,
}

fn target() -> Target {
    if let Some(cg) = TestCgroup::create("cpu_quota bench on a real cgroup") {
        println!("target: real cgroup v1 {}", cg.rel());
        return Target {
            fs: cg.cgroup_fs().clone(),
            rel: cg.rel().to_string(),
            _real: Some(cg),
            _fake: None,
        };
    }
    println!(
        "target: fake v2 tree (no writable v1 hierarchy): figures are file-system, not cgroup, writes"
    );
    let fake = FakeCgroupFs::new(CgroupMode::V2);
    fake.add("/bench");
    Target {
        fs: fake.cgroup_fs(),
        rel: "/bench".into(),
        _real: None,
        _fake: Some(fake),
    }
}

fn journal_dir() -> tempfile::TempDir {
    match std::env::var_os("SEER_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).expect("temp dir in SEER_BENCH_DIR"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn bench(c: &mut Criterion) {
    let t = target();
    let quota_file: PathBuf = if t.fs.mode().is_v1() {
        t.fs.file(Controller::Cpu, &t.rel, "cpu.cfs_quota_us")
    } else {
        t.fs.file(Controller::Cpu, &t.rel, "cpu.max")
    };
    let (v_a, v_b) = if t.fs.mode().is_v1() {
        ("25000", "50000")
    } else {
        ("25000 100000", "50000 100000")
    };
    let actions = [0.25, 0.5].map(|cores| Action::CpuQuota {
        cgroup: t.rel.clone(),
        cores: Some(cores),
        period_us: None,
    });
    println!("docker update: not measured (no Docker engine on this host)");

    let mut g = c.benchmark_group("cpu_quota_action");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));

    for (name, durability) in [
        ("seer_apply_nofsync", Durability::NoSync),
        ("seer_apply_fsync", Durability::Fsync),
    ] {
        let dir = journal_dir();
        let j = Journal::open(dir.path().join("actions.jsonl"), durability).expect("journal");
        let mut act = Actuator::new(t.fs.clone(), j);
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                black_box(act.apply(&actions[i % 2], None).expect("apply"))
            })
        });
        // Leave the cgroup as found.
        let live: Vec<u64> = act.journal().live().map(|e| e.id).collect();
        for id in live {
            act.revert(id).expect("revert");
        }
    }

    {
        let dir = journal_dir();
        let j =
            Journal::open(dir.path().join("actions.jsonl"), Durability::NoSync).expect("journal");
        let mut act = Actuator::new(t.fs.clone(), j);
        let knob = Knob::CpuMax {
            cgroup: t.rel.clone(),
        };
        g.bench_function("read_knob", |b| {
            b.iter(|| black_box(act.read(&knob).expect("read")))
        });
    }

    let mut i = 0usize;
    g.bench_function("raw_file_write", |b| {
        b.iter(|| {
            i += 1;
            seer_actuators::cgroup::write_file(
                &quota_file,
                if i.is_multiple_of(2) { v_a } else { v_b },
            )
            .expect("write")
        })
    });
    let mut i = 0usize;
    let kept = t.fs.clone();
    g.bench_function("kept_fd_write", |b| {
        b.iter(|| {
            i += 1;
            kept.write_path(&quota_file, if i.is_multiple_of(2) { v_a } else { v_b })
                .expect("write")
        })
    });

    g.sample_size(20);
    let mut i = 0usize;
    g.bench_function("shell_echo", |b| {
        b.iter(|| {
            i += 1;
            let v = if i.is_multiple_of(2) { v_a } else { v_b };
            let st = Command::new("sh")
                .arg("-c")
                .arg(format!("echo {v} > {}", quota_file.display()))
                .status()
                .expect("sh");
            assert!(st.success());
        })
    });
    g.finish();
    let _ = seer_actuators::cgroup::write_file(
        &quota_file,
        if t.fs.mode().is_v1() {
            "-1"
        } else {
            "max 100000"
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
