//! Apply, revert, supersede, expire, dry-run, bounds, backends and task
//! discovery on kernel-faithful fake cgroup v2 (and v1) trees.

use std::time::{Duration, SystemTime};

use seer_actuators::test_util::{FakeCgroupFs, FakeProc, ManualClock, Recording};
use seer_actuators::{
    Action, Actuator, ActuatorError, BoundsError, CgroupMode, Controller, CpuList, Durability,
    Journal, Limit, LocateError, Locator, Reverted, Setting, State, TaskRef,
};

const CG: &str = "/nomad.slice/share.slice/a1.web.scope";

struct Rig {
    fake: FakeCgroupFs,
    _dir: tempfile::TempDir,
    journal: std::path::PathBuf,
}

fn rig(mode: CgroupMode) -> Rig {
    let fake = FakeCgroupFs::new(mode);
    fake.add(CG);
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = dir.path().join("actions.jsonl");
    Rig {
        fake,
        _dir: dir,
        journal,
    }
}

impl Rig {
    fn actuator(&self) -> Actuator {
        self.actuator_with(Durability::Fsync)
    }
    fn actuator_with(&self, d: Durability) -> Actuator {
        let j = Journal::open(&self.journal, d).expect("open journal");
        Actuator::new(self.fake.cgroup_fs(), j)
    }
    fn get(&self, c: Controller, f: &str) -> String {
        self.fake.get(c, CG, f).trim().to_string()
    }
}

fn quota(cores: f64) -> Action {
    Action::CpuQuota {
        cgroup: CG.into(),
        cores: Some(cores),
        period_us: None,
    }
}

#[test]
fn cpu_quota_apply_revert_idempotent_v2() {
    let r = rig(CgroupMode::V2);
    let mut a = r.actuator();
    let applied = a.apply(&quota(0.25), None).expect("apply");
    assert_eq!(
        applied.previous,
        Setting::CpuMax {
            quota_us: None,
            period_us: 100_000
        }
    );
    assert_eq!(r.get(Controller::Cpu, "cpu.max"), "25000 100000");
    // Applying the same action again leaves the node as once, and the
    // revert still restores the original value.
    let again = a.apply(&quota(0.25), None).expect("apply again");
    assert_eq!(again.baseline, applied.previous);
    assert_eq!(r.get(Controller::Cpu, "cpu.max"), "25000 100000");
    assert_eq!(
        a.revert(applied.id).expect("revert superseded"),
        Reverted::AlreadyFinished {
            id: applied.id,
            state: State::Superseded
        }
    );
    assert_eq!(r.get(Controller::Cpu, "cpu.max"), "25000 100000");
    assert!(matches!(
        a.revert(again.id).expect("revert"),
        Reverted::Restored { .. }
    ));
    assert_eq!(r.get(Controller::Cpu, "cpu.max"), "max 100000");
    assert_eq!(
        a.revert(again.id).expect("revert twice"),
        Reverted::AlreadyFinished {
            id: again.id,
            state: State::Reverted
        }
    );
    assert!(matches!(a.revert(999), Err(ActuatorError::UnknownId(999))));
    assert!(a.journal().live().next().is_none());
}

#[test]
fn shares_become_weight_on_v2_and_stay_shares_on_v1() {
    for (mode, file, before, after) in [
        (CgroupMode::V2, "cpu.weight", "100", "39"),
        (CgroupMode::V1, "cpu.shares", "1024", "512"),
    ] {
        let r = rig(mode);
        let mut a = r.actuator();
        let shares = if mode == CgroupMode::V2 { 1024 } else { 512 };
        let ap = a
            .apply(
                &Action::CpuShares {
                    cgroup: CG.into(),
                    shares,
                },
                None,
            )
            .expect("apply");
        assert_eq!(r.get(Controller::Cpu, file), after, "{mode:?}");
        a.revert(ap.id).expect("revert");
        assert_eq!(r.get(Controller::Cpu, file), before, "{mode:?}");
    }
}

#[test]
fn cpuset_and_io_v2() {
    let r = rig(CgroupMode::V2);
    r.fake.set(Controller::Cpuset, CG, "cpuset.mems", "0\n");
    let mut a = r.actuator();
    let cpus: CpuList = "0-1".parse().expect("list");
    let ap = a
        .apply(
            &Action::Cpuset {
                cgroup: CG.into(),
                cpus,
                mems: None,
            },
            None,
        )
        .expect("cpuset");
    assert_eq!(r.get(Controller::Cpuset, "cpuset.cpus"), "0-1");
    assert_eq!(r.get(Controller::Cpuset, "cpuset.mems"), "0");
    a.revert(ap.id).expect("revert");
    assert_eq!(r.get(Controller::Cpuset, "cpuset.cpus"), "");

    let dev = "8:0".parse().expect("dev");
    let ap = a
        .apply(
            &Action::IoThrottle {
                cgroup: CG.into(),
                device: dev,
                read_bps: None,
                write_bps: Some(Limit::Value(1 << 20)),
                read_iops: None,
                write_iops: None,
            },
            None,
        )
        .expect("io");
    assert_eq!(
        r.get(Controller::Blkio, "io.max"),
        "8:0 rbps=max wbps=1048576 riops=max wiops=max"
    );
    a.revert(ap.id).expect("revert io");
    assert_eq!(
        r.get(Controller::Blkio, "io.max"),
        "8:0 rbps=max wbps=max riops=max wiops=max"
    );
}

#[test]
fn memory_below_usage_is_refused_unless_forced() {
    let r = rig(CgroupMode::V2);
    r.fake
        .set(Controller::Memory, CG, "memory.current", "209715200\n");
    let mut a = r.actuator();
    let m = |force| Action::Memory {
        cgroup: CG.into(),
        limit: Limit::Value(100 << 20),
        swap: Some(Limit::Value(300 << 20)),
        force,
    };
    let e = a.apply(&m(false), None).expect_err("below usage");
    assert!(
        matches!(
            e,
            ActuatorError::Bounds(BoundsError::BelowUsage {
                usage: 209_715_200,
                ..
            })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("below current usage"), "{e}");
    // Refused before anything was journaled.
    assert_eq!(a.journal().next_id(), 1);
    let ap = a.apply(&m(true), None).expect("forced");
    assert_eq!(r.get(Controller::Memory, "memory.max"), "104857600");
    // Docker's --memory-swap is memory + swap; v2's swap.max is swap only.
    assert_eq!(r.get(Controller::Memory, "memory.swap.max"), "209715200");
    a.revert(ap.id).expect("revert");
    assert_eq!(r.get(Controller::Memory, "memory.max"), "max");
    assert_eq!(r.get(Controller::Memory, "memory.swap.max"), "max");
    // Limits are whole pages, as the kernel keeps them.
    r.fake.set(Controller::Memory, CG, "memory.current", "0\n");
    let odd = Action::Memory {
        cgroup: CG.into(),
        limit: Limit::Value((64 << 20) + 123),
        swap: None,
        force: false,
    };
    let ap = a.apply(&odd, None).expect("odd");
    assert_eq!(
        r.get(Controller::Memory, "memory.max"),
        (64u64 << 20).to_string()
    );
    assert!(a.verify().expect("verify").is_empty());
    a.revert(ap.id).expect("revert");
}

#[test]
fn v1_memory_uses_memsw_and_minus_one() {
    let r = rig(CgroupMode::Hybrid);
    let mut a = r.actuator();
    let ap = a
        .apply(
            &Action::Memory {
                cgroup: CG.into(),
                limit: Limit::Value(256 << 20),
                swap: Some(Limit::Value(512 << 20)),
                force: false,
            },
            None,
        )
        .expect("apply");
    assert_eq!(
        r.get(Controller::Memory, "memory.limit_in_bytes"),
        (256u64 << 20).to_string()
    );
    assert_eq!(
        r.get(Controller::Memory, "memory.memsw.limit_in_bytes"),
        (512u64 << 20).to_string()
    );
    a.revert(ap.id).expect("revert");
    assert_eq!(r.get(Controller::Memory, "memory.limit_in_bytes"), "-1");
}

#[test]
fn bounds_refuse_before_journaling() {
    let r = rig(CgroupMode::V2);
    let mut a = r.actuator().with_bounds(seer_actuators::Bounds {
        min_cpu_cores: 0.5,
        max_cpu_step_cores: Some(2.0),
        node_cores: 8.0,
        ..Default::default()
    });
    let e = a.apply(&quota(0.25), None).expect_err("below min");
    assert!(
        e.to_string().contains("below the minimum of 0.500 cores"),
        "{e}"
    );
    // 8 (unlimited) → 4 cores is a 4-core step.
    let e = a.apply(&quota(4.0), None).expect_err("step");
    assert!(e.to_string().contains("maximum step"), "{e}");
    a.apply(&quota(6.5), None).expect("within bounds");
    assert_eq!(r.get(Controller::Cpu, "cpu.max"), "650000 100000");
    assert_eq!(a.journal().next_id(), 2);
}

#[test]
fn expiry_follows_the_injected_clock() {
    let r = rig(CgroupMode::V2);
    let clock = ManualClock::at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let mut a = r.actuator().with_clock(Box::new(clock.clone()));
    let short = a
        .apply(&quota(1.0), Some(Duration::from_secs(5)))
        .expect("apply");
    let other = a
        .apply(
            &Action::CpuShares {
                cgroup: CG.into(),
                shares: 512,
            },
            Some(Duration::from_secs(60)),
        )
        .expect("apply shares");
    clock.advance(Duration::from_secs(4));
    assert_eq!(a.expire().expect("expire"), Vec::<u64>::new());
    assert_eq!(r.get(Controller::Cpu, "cpu.max"), "100000 100000");
    clock.advance(Duration::from_secs(1));
    assert_eq!(a.expire().expect("expire"), vec![short.id]);
    assert_eq!(r.get(Controller::Cpu, "cpu.max"), "max 100000");
    assert_eq!(r.get(Controller::Cpu, "cpu.weight"), "20");
    assert_eq!(
        a.journal().get(other.id).map(|e| e.state),
        Some(State::Applied)
    );
}

#[test]
fn dry_run_journals_and_touches_nothing() {
    let r = rig(CgroupMode::V2);
    let before = std::fs::read_to_string(r.fake.cgroup_fs().file(Controller::Cpu, CG, "cpu.max"))
        .expect("read");
    let mut a = r.actuator().with_dry_run(true);
    a.check_capabilities()
        .expect("a dry run needs no capability");
    let ap = a.apply(&quota(0.5), None).expect("dry apply");
    assert!(ap.dry_run);
    assert_eq!(
        ap.new,
        Setting::CpuMax {
            quota_us: Some(50_000),
            period_us: 100_000
        }
    );
    assert_eq!(
        std::fs::read_to_string(r.fake.cgroup_fs().file(Controller::Cpu, CG, "cpu.max"))
            .expect("read"),
        before
    );
    let text = std::fs::read_to_string(&r.journal).expect("journal");
    assert!(
        text.contains("\"state\":\"dry_run\"") && text.contains("\"quota_us\":50000"),
        "{text}"
    );
    assert_eq!(
        a.revert(ap.id).expect("revert"),
        Reverted::AlreadyFinished {
            id: ap.id,
            state: State::DryRun
        }
    );
}

#[test]
fn cache_and_network_actions_through_backends() {
    let r = rig(CgroupMode::V2);
    let rec = Recording::new();
    let mut a = r
        .actuator()
        .with_cache(Box::new(rec.clone()))
        .with_shaper(Box::new(rec.clone()));
    let llc = a
        .apply(
            &Action::LlcWays {
                group: "web".into(),
                cache_id: 0,
                ways: 4,
            },
            None,
        )
        .expect("llc");
    assert_eq!(llc.previous, Setting::L3Mask { mask: 0x7ff });
    assert_eq!(llc.new, Setting::L3Mask { mask: 0xf });
    let mb = a
        .apply(
            &Action::MbaPercent {
                group: "web".into(),
                domain: 0,
                percent: 40,
            },
            None,
        )
        .expect("mba");
    let net = a
        .apply(
            &Action::NetRate {
                iface: "eth0".into(),
                class: "1:10".into(),
                rate_bps: 100_000_000,
                ceil_bps: Some(200_000_000),
            },
            None,
        )
        .expect("net");
    for id in [net.id, mb.id, llc.id] {
        a.revert(id).expect("revert");
    }
    let st = rec.state.lock().expect("lock");
    assert_eq!(
        st.calls,
        vec![
            "set_l3 web 0 0xf",
            "set_mb web 0 40",
            "set_htb eth0 1:10 100000000 200000000",
            "set_htb eth0 1:10 1000000000 1000000000",
            "set_mb web 0 100",
            "set_l3 web 0 0x7ff",
        ]
    );
    drop(st);
    // Too many ways, and a failing backend: refused or rolled back.
    let e = a
        .apply(
            &Action::LlcWays {
                group: "web".into(),
                cache_id: 0,
                ways: 12,
            },
            None,
        )
        .expect_err("12 ways");
    assert!(
        e.to_string()
            .contains("12 ways do not fit cache 0 (cbm_mask 0x7ff"),
        "{e}"
    );
    rec.state.lock().expect("lock").fail_next_set = Some("resctrl says no".into());
    let e = a
        .apply(
            &Action::MbaPercent {
                group: "web".into(),
                domain: 0,
                percent: 10,
            },
            None,
        )
        .expect_err("backend fails");
    assert!(
        e.to_string()
            .contains("failed to set resctrl:web#MB:0: resctrl says no"),
        "{e}"
    );
    let last = a.journal().next_id() - 1;
    assert_eq!(a.journal().finished_state(last), Some(State::RolledBack));
    assert_eq!(
        rec.state
            .lock()
            .expect("lock")
            .mb
            .get(&("web".to_string(), 0)),
        Some(&100)
    );
}

#[test]
fn missing_backend_is_named() {
    let r = rig(CgroupMode::V2);
    let mut a = r.actuator();
    let e = a
        .apply(
            &Action::NetRate {
                iface: "eth0".into(),
                class: "1:10".into(),
                rate_bps: 1,
                ceil_bps: None,
            },
            None,
        )
        .expect_err("no shaper");
    assert_eq!(
        e.to_string(),
        "no bandwidth shaper configured; cannot act on htb:eth0#1:10"
    );
}

#[test]
fn reconcile_readopts_and_repairs_drift() {
    let r = rig(CgroupMode::V2);
    let id = {
        let mut a = r.actuator();
        a.apply(&quota(2.0), None).expect("apply").id
    };
    // Someone rewrote the knob behind our back.
    r.fake.set(Controller::Cpu, CG, "cpu.max", "max 100000\n");
    let mut a = r.actuator();
    assert_eq!(a.verify().expect("verify").len(), 1);
    let rep = a.reconcile().expect("reconcile");
    assert_eq!(rep.readopted, vec![id]);
    assert_eq!(rep.repaired, vec![id]);
    assert_eq!(r.get(Controller::Cpu, "cpu.max"), "200000 100000");
    assert!(a.verify().expect("verify").is_empty());
    let rep = a.reconcile().expect("reconcile again");
    assert!(rep.repaired.is_empty());
}

#[test]
fn locate_v2_tasks() {
    let fake = FakeCgroupFs::new(CgroupMode::V2);
    let id = "3f2a5c0e9b1d4e7f8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";
    let id2 = "3f2b5c0e9b1d4e7f8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";
    fake.add("/nomad.slice/share.slice/a1.web.scope")
        .add("/nomad.slice/reserve.slice/a2.db.scope")
        .add(&format!("/system.slice/docker-{id}.scope"))
        .add(&format!("/docker/{id2}"))
        .add("/system.slice/nginx.service")
        .add("/machine.slice/machine-qemu.scope/payload.service")
        .add("/user.slice/user-1000.slice");
    let proc = FakeProc::new();
    proc.add(42, "0::/system.slice/nginx.service\n");
    let l = Locator::new(fake.cgroup_fs(), proc.root());
    let loc = |t: TaskRef| l.locate(&t);
    let nomad = |a: &str, t: &str| TaskRef::Nomad {
        alloc_id: a.into(),
        task: t.into(),
    };
    assert_eq!(
        loc(nomad("a1", "web")).expect("share"),
        "/nomad.slice/share.slice/a1.web.scope"
    );
    assert_eq!(
        loc(nomad("a2", "db")).expect("reserve"),
        "/nomad.slice/reserve.slice/a2.db.scope"
    );
    assert!(matches!(
        loc(nomad("a3", "x")),
        Err(LocateError::NotFound { .. })
    ));
    assert!(loc(nomad("..", "x")).is_err());
    let docker = |i: &str| TaskRef::Docker { id: i.into() };
    assert_eq!(
        loc(docker("3f2a")).expect("systemd driver"),
        format!("/system.slice/docker-{id}.scope")
    );
    assert_eq!(
        loc(docker(id2)).expect("cgroupfs driver"),
        format!("/docker/{id2}")
    );
    let e = loc(docker("3f2")).expect_err("ambiguous");
    assert!(e.to_string().contains("ambiguous"), "{e}");
    assert!(loc(docker("zz")).is_err());
    let unit = |u: &str| TaskRef::SystemdUnit { unit: u.into() };
    assert_eq!(
        loc(unit("nginx.service")).expect("unit"),
        "/system.slice/nginx.service"
    );
    assert_eq!(
        loc(unit("user-1000.slice")).expect("slice"),
        "/user.slice/user-1000.slice"
    );
    assert_eq!(
        loc(unit("payload.service")).expect("nested"),
        "/machine.slice/machine-qemu.scope/payload.service"
    );
    assert!(loc(unit("nginx")).is_err());
    assert_eq!(
        loc(TaskRef::Pid { pid: 42 }).expect("pid"),
        "/system.slice/nginx.service"
    );
    let e = loc(TaskRef::Pid { pid: 43 }).expect_err("no such pid");
    assert!(e.to_string().contains("43/cgroup"), "{e}");
}

#[test]
fn locate_v1_tasks() {
    let fake = FakeCgroupFs::new(CgroupMode::Hybrid);
    let id = "aa".repeat(32);
    fake.add("/nomad/a1.web").add(&format!("/docker/{id}"));
    let proc = FakeProc::new();
    proc.add(7, &format!("4:memory:/docker/{id}\n3:cpu,cpuacct:/docker/{id}\n2:cpuset:/docker/{id}\n1:blkio:/docker/{id}\n0::/\n"));
    proc.add(8, "4:memory:/a\n3:cpu,cpuacct:/b\n0::/\n");
    let l = Locator::new(fake.cgroup_fs(), proc.root());
    assert_eq!(
        l.locate(&TaskRef::Nomad {
            alloc_id: "a1".into(),
            task: "web".into()
        })
        .expect("nomad v1"),
        "/nomad/a1.web"
    );
    assert_eq!(
        l.locate(&TaskRef::Docker { id: "aaaa".into() })
            .expect("docker"),
        format!("/docker/{id}")
    );
    assert_eq!(
        l.locate(&TaskRef::Pid { pid: 7 }).expect("pid"),
        format!("/docker/{id}")
    );
    let e = l.locate(&TaskRef::Pid { pid: 8 }).expect_err("split");
    assert!(e.to_string().contains("cpu:/b, memory:/a"), "{e}");
}

#[test]
fn locate_this_process_on_the_host() {
    let fs = match seer_actuators::CgroupFs::discover() {
        Ok(fs) => fs,
        Err(e) => {
            println!("SKIPPED: no cgroup hierarchy: {e}");
            return;
        }
    };
    let l = Locator::new(fs, "/proc");
    // Either a path or an honest "split" error naming the controllers.
    match l.locate(&TaskRef::Pid {
        pid: std::process::id(),
    }) {
        Ok(p) => assert!(p.starts_with('/'), "{p}"),
        Err(LocateError::Split { paths, .. }) => assert!(paths.contains("cpu:"), "{paths}"),
        Err(e) => panic!("unexpected: {e}"),
    }
}

mod model {
    //! Random sequences of applies, reverts, expiries and restarts: after
    //! every step each knob holds the journaled value of its active entry
    //! (or the value from before any action), and a reopened journal agrees
    //! with the one in memory.

    use super::*;
    use proptest::prelude::*;
    use seer_actuators::Knob;

    #[derive(Debug, Clone)]
    enum Op {
        Quota(u8),
        Shares(u16),
        Memory(u8),
        Revert(u8),
        Advance(u8),
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u8..=16).prop_map(Op::Quota),
            (2u16..=4096).prop_map(Op::Shares),
            (1u8..=8).prop_map(Op::Memory),
            any::<u8>().prop_map(Op::Revert),
            (0u8..=10).prop_map(Op::Advance),
            Just(Op::Restart),
        ]
    }

    fn check(a: &mut Actuator, initial: &[(Knob, Setting)]) {
        for (knob, init) in initial {
            let now = a.read(knob).expect("read");
            let expected = a.journal().active_on(knob).map_or(init, |e| &e.new);
            assert_eq!(&now, expected, "{knob}");
        }
        assert!(a.journal().live().all(|e| e.state == State::Applied));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
        #[test]
        fn node_always_matches_journal(ops in proptest::collection::vec(op(), 1..40)) {
            let r = rig(CgroupMode::V2);
            let clock = ManualClock::at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
            let open = |r: &Rig| r.actuator_with(Durability::NoSync).with_clock(Box::new(clock.clone()));
            let mut a = open(&r);
            let knobs = [
                Knob::CpuMax { cgroup: CG.into() },
                Knob::CpuWeight { cgroup: CG.into() },
                Knob::Memory { cgroup: CG.into() },
            ];
            let initial: Vec<(Knob, Setting)> = knobs.iter().map(|k| (k.clone(), a.read(k).expect("read"))).collect();
            let ttl = |n: u8| Some(Duration::from_secs(u64::from(n % 7) + 1));
            for op in ops {
                match op {
                    Op::Quota(n) => { a.apply(&quota(f64::from(n) / 4.0), ttl(n)).expect("quota"); }
                    Op::Shares(s) => { a.apply(&Action::CpuShares { cgroup: CG.into(), shares: u64::from(s) }, None).expect("shares"); }
                    Op::Memory(n) => {
                        a.apply(&Action::Memory { cgroup: CG.into(), limit: Limit::Value(u64::from(n) << 24), swap: None, force: false }, ttl(n)).expect("memory");
                    }
                    Op::Revert(i) => {
                        let next = a.journal().next_id();
                        let id = u64::from(i) % next.max(1) + 1;
                        match a.revert(id) {
                            Ok(_) => {}
                            Err(ActuatorError::UnknownId(x)) => prop_assert_eq!(x, next),
                            Err(e) => panic!("revert {id}: {e}"),
                        }
                    }
                    Op::Advance(s) => {
                        clock.advance(Duration::from_secs(u64::from(s)));
                        a.expire().expect("expire");
                    }
                    Op::Restart => {
                        let live: Vec<_> = a.journal().live().cloned().collect();
                        drop(a);
                        a = open(&r);
                        let back: Vec<_> = a.journal().live().cloned().collect();
                        prop_assert_eq!(back, live);
                        a.reconcile().expect("reconcile");
                    }
                }
                check(&mut a, &initial);
            }
        }
    }
}
