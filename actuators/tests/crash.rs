//! Crash safety: a child process runs a fixed scenario of applies and
//! reverts and is SIGKILLed at step boundary k (the [`Step`] hook), for every
//! k in turn; then `reconcile()` must leave every knob exactly as the journal
//! says: the journaled new value where an entry is still applied, the value
//! from before the scenario everywhere else. Runs on a real v1 test cgroup
//! (when root) and on a fake v2 tree. Odd k also leave a torn half-record at
//! the end of the journal, as a crash in the middle of a write would.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use seer_actuators::test_util::{FakeCgroupFs, TestCgroup};
use seer_actuators::{
    Action, Actuator, CgroupFs, CgroupMode, CpuList, Durability, Journal, Knob, Limit, Setting,
    State, Step,
};

const ENV_CHILD: &str = "SEER_CRASH_CHILD";
const ENV_AT: &str = "SEER_CRASH_AT";
const ENV_JOURNAL: &str = "SEER_CRASH_JOURNAL";
const ENV_ROOT: &str = "SEER_CRASH_ROOT";
const ENV_MODE: &str = "SEER_CRASH_MODE";
const ENV_CGROUP: &str = "SEER_CRASH_CGROUP";
const ENV_PHASE: &str = "SEER_CRASH_PHASE";

/// The scenario the child runs: overlapping applies (one supersedes
/// another), reverts, multi-file writes.
fn scenario(act: &mut Actuator, cg: &str) {
    let quota = |c| Action::CpuQuota {
        cgroup: cg.into(),
        cores: Some(c),
        period_us: None,
    };
    let q1 = act.apply(&quota(0.5), None).expect("quota 0.5");
    let mem = act
        .apply(
            &Action::Memory {
                cgroup: cg.into(),
                limit: Limit::Value(64 << 20),
                swap: Some(Limit::Value(128 << 20)),
                force: false,
            },
            None,
        )
        .expect("memory");
    act.apply(
        &Action::CpuShares {
            cgroup: cg.into(),
            shares: 512,
        },
        None,
    )
    .expect("shares");
    let q2 = act.apply(&quota(0.25), None).expect("quota 0.25");
    assert_eq!(q2.baseline, q1.previous);
    act.revert(q2.id).expect("revert quota");
    act.revert(mem.id).expect("revert memory");
    act.apply(
        &Action::Cpuset {
            cgroup: cg.into(),
            cpus: "0".parse::<CpuList>().expect("list"),
            mems: None,
        },
        None,
    )
    .expect("cpuset");
}

fn knobs(cg: &str) -> Vec<Knob> {
    vec![
        Knob::CpuMax { cgroup: cg.into() },
        Knob::Memory { cgroup: cg.into() },
        Knob::CpuWeight { cgroup: cg.into() },
        Knob::Cpuset { cgroup: cg.into() },
    ]
}

fn mode_name(m: CgroupMode) -> &'static str {
    match m {
        CgroupMode::V1 => "v1",
        CgroupMode::Hybrid => "hybrid",
        CgroupMode::V2 => "v2",
    }
}

fn mode_from(s: &str) -> CgroupMode {
    match s {
        "v2" => CgroupMode::V2,
        "v1" => CgroupMode::V1,
        _ => CgroupMode::Hybrid,
    }
}

/// The child: not a test of its own; runs only when the parent sets
/// `SEER_CRASH_CHILD`.
#[test]
fn crash_child() {
    if std::env::var_os(ENV_CHILD).is_none() {
        return;
    }
    let var = |k| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let at: usize = var(ENV_AT).parse().expect("crash step");
    let fs = CgroupFs::at(var(ENV_ROOT), mode_from(&var(ENV_MODE)));
    let journal = Journal::open(var(ENV_JOURNAL), Durability::Fsync).expect("journal");
    let mut seen = 0usize;
    let mut act = Actuator::new(fs, journal).with_step_hook(Box::new(move |s: Step| {
        seen += 1;
        if seen == at {
            // The boundary: die here, with no chance to clean up.
            let _ =
                std::io::stderr().write_all(format!("killed at step {seen}: {s:?}\n").as_bytes());
            let _ = nix::sys::signal::raise(nix::sys::signal::SIGKILL);
        }
        if at == 0 {
            println!("STEP {seen} {s:?}");
        }
    }));
    if std::env::var(ENV_PHASE).as_deref() == Ok("reconcile") {
        let report = act.reconcile().expect("reconcile in child");
        assert!(report.failed.is_empty(), "{report:?}");
    } else {
        scenario(&mut act, &var(ENV_CGROUP));
    }
}

struct Target<'a> {
    fs: CgroupFs,
    cg: &'a str,
}

fn run_child(t: &Target<'_>, journal: &Path, at: usize) -> std::process::Output {
    run_child_phase(t, journal, at, "scenario")
}

fn run_child_phase(t: &Target<'_>, journal: &Path, at: usize, phase: &str) -> std::process::Output {
    Command::new(std::env::current_exe().expect("test binary"))
        .env(ENV_PHASE, phase)
        .args([
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ENV_CHILD, "1")
        .env(ENV_AT, at.to_string())
        .env(ENV_JOURNAL, journal)
        .env(ENV_ROOT, t.fs.root())
        .env(ENV_MODE, mode_name(t.fs.mode()))
        .env(ENV_CGROUP, t.cg)
        .output()
        .expect("spawn child")
}

fn read_all(fs: &CgroupFs, cg: &str) -> Vec<Setting> {
    let j = tempfile::tempdir().expect("tempdir");
    let mut a = Actuator::new(
        fs.clone(),
        Journal::open(j.path().join("r.jsonl"), Durability::NoSync).expect("scratch journal"),
    );
    knobs(cg)
        .iter()
        .map(|k| a.read(k).expect("read knob"))
        .collect()
}

/// Counts the steps of the scenario (child run with k = 0 to completion).
fn count_steps(t: &Target<'_>) -> usize {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_child(t, &dir.path().join("j.jsonl"), 0);
    assert!(
        out.status.success(),
        "full scenario failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("STEP "))
        .count()
}

/// Kills the child at step `k`, reconciles, and checks the node against the
/// journal. `fresh` gives a clean target for each k.
fn crash_at(t: &Target<'_>, k: usize, initial: &[Setting]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let jpath = dir.path().join("actions.jsonl");
    let out = run_child(t, &jpath, k);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "child was not killed at step {k}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if k % 2 == 1 {
        // A record cut in the middle of its write.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&jpath)
            .expect("append");
        f.write_all(br#"{"v":1,"id":2,"state":"rev"#)
            .expect("torn write");
    }
    let journal = Journal::open(&jpath, Durability::Fsync).expect("reopen journal after crash");
    assert_eq!(journal.open_report().torn_bytes > 0, k % 2 == 1, "step {k}");
    let mut act = Actuator::new(t.fs.clone(), journal);
    let report = act.reconcile().expect("reconcile");
    assert!(report.failed.is_empty(), "step {k}: {report:?}");
    // Every entry is finished or applied; applied ones hold their value.
    for e in act.journal().live() {
        assert_eq!(
            e.state,
            State::Applied,
            "step {k}: entry {} left {:?}",
            e.id,
            e.state
        );
    }
    assert!(act.verify().expect("verify").is_empty(), "step {k}");
    for (knob, init) in knobs(t.cg).iter().zip(initial) {
        let now = act.read(knob).expect("read");
        let expected = act.journal().active_on(knob).map_or(init, |e| &e.new);
        assert_eq!(
            &now, expected,
            "step {k}: {knob} after reconcile ({report:?})"
        );
    }
    // Reconciling again changes nothing.
    drop(act);
    let mut again = Actuator::new(
        t.fs.clone(),
        Journal::open(&jpath, Durability::Fsync).expect("reopen"),
    );
    let r2 = again.reconcile().expect("reconcile again");
    assert!(
        r2.rolled_back.is_empty() && r2.reverted.is_empty() && r2.repaired.is_empty(),
        "step {k}: {r2:?}"
    );
}

#[test]
fn sigkill_at_every_step_then_reconcile_fake_v2() {
    let fake = FakeCgroupFs::new(CgroupMode::V2);
    let cg = "/system.slice/docker-crash.scope";
    fake.add(cg);
    fake.set(seer_actuators::Controller::Cpuset, cg, "cpuset.mems", "0\n");
    let fs = fake.cgroup_fs();
    let t = Target { fs: fs.clone(), cg };
    let initial = read_all(&fs, cg);
    let n = count_steps(&t);
    assert!(n >= 18, "scenario has {n} steps");
    for k in 1..=n {
        // Start each run from the same kernel state.
        for f in [
            "cpu.max",
            "cpu.weight",
            "memory.max",
            "memory.swap.max",
            "cpuset.cpus",
        ] {
            let init = match f {
                "cpu.max" => "max 100000",
                "cpu.weight" => "100",
                "cpuset.cpus" => "",
                _ => "max",
            };
            std::fs::write(fs.file(seer_actuators::Controller::Cpu, cg, f), init).expect("reset");
        }
        crash_at(&t, k, &initial);
    }
    println!("fake v2: killed at each of {n} steps, reconciled every time");
}

#[test]
fn sigkill_at_every_step_then_reconcile_real_v1() {
    let Some(probe) = TestCgroup::create("crash safety on real cgroups") else {
        return;
    };
    let n = count_steps(&Target {
        fs: probe.cgroup_fs().clone(),
        cg: probe.rel(),
    });
    drop(probe);
    assert!(n >= 15, "scenario has {n} steps");
    for k in 1..=n {
        let cg = TestCgroup::create("crash safety on real cgroups").expect("test cgroup");
        let dirs = cg.dirs();
        let t = Target {
            fs: cg.cgroup_fs().clone(),
            cg: cg.rel(),
        };
        let initial = read_all(&t.fs, t.cg);
        crash_at(&t, k, &initial);
        drop(cg);
        for d in dirs {
            assert!(!d.exists(), "test cgroup {} left behind", d.display());
        }
    }
    println!("real v1: killed at each of {n} steps, reconciled every time");
}

/// A crash during `reconcile` itself: after the scenario is killed at step
/// k, a second child reconciles and is killed at each of its own steps j;
/// a final reconcile must still converge.
#[test]
fn sigkill_during_reconcile_fake_v2() {
    let fake = FakeCgroupFs::new(CgroupMode::V2);
    let cg = "/system.slice/docker-recon.scope";
    fake.add(cg);
    fake.set(seer_actuators::Controller::Cpuset, cg, "cpuset.mems", "0\n");
    let fs = fake.cgroup_fs();
    let t = Target { fs: fs.clone(), cg };
    let dir_of_cg = fs.dir(seer_actuators::Controller::Cpu, cg);
    let snapshot = || -> Vec<(std::path::PathBuf, Vec<u8>)> {
        std::fs::read_dir(&dir_of_cg)
            .expect("list")
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| (e.path(), std::fs::read(e.path()).expect("read")))
            .collect()
    };
    let restore = |snap: &[(std::path::PathBuf, Vec<u8>)]| {
        for (p, b) in snap {
            std::fs::write(p, b).expect("restore");
        }
    };
    let pristine = snapshot();
    let initial = read_all(&fs, cg);
    let n = count_steps(&t);
    let mut runs = 0;
    for k in 1..=n {
        restore(&pristine);
        let dir = tempfile::tempdir().expect("tempdir");
        let jpath = dir.path().join("actions.jsonl");
        let out = run_child(&t, &jpath, k);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "scenario not killed at {k}"
        );
        let after_crash = snapshot();
        let journal_after_crash = std::fs::read(&jpath).expect("journal");
        for j in 1.. {
            restore(&after_crash);
            std::fs::write(&jpath, &journal_after_crash).expect("journal copy");
            let out = run_child_phase(&t, &jpath, j, "reconcile");
            runs += 1;
            let killed = out.status.signal() == Some(libc::SIGKILL);
            assert!(
                killed || out.status.success(),
                "reconcile child failed at k={k} j={j}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Whatever happened, one more reconcile converges.
            let mut act = Actuator::new(
                fs.clone(),
                Journal::open(&jpath, Durability::Fsync).expect("reopen"),
            );
            let report = act.reconcile().expect("final reconcile");
            assert!(report.failed.is_empty(), "k={k} j={j}: {report:?}");
            assert!(
                act.journal().live().all(|e| e.state == State::Applied),
                "k={k} j={j}"
            );
            for (knob, init) in knobs(cg).iter().zip(&initial) {
                let now = act.read(knob).expect("read");
                let expected = act.journal().active_on(knob).map_or(init, |e| &e.new);
                assert_eq!(&now, expected, "k={k} j={j}: {knob}");
            }
            if !killed {
                break;
            }
        }
    }
    println!("fake v2: {runs} reconcile runs killed at every step of their own, all converged");
}
