//! The emulator behaves as the kernel's resctrl does, seen through plain
//! file operations, and the library works end to end on it: every refusal,
//! Seer's own validation first, CDP and AMD layouts, the allocator, the
//! lock and monitoring.

mod common;

use std::path::Path;
use std::time::Duration;

use cat_rdt::lock::{LockError, RootLock};
use cat_rdt::mount::MountTable;
use cat_rdt::schemata::{Resource, Schemata, Value};
use cat_rdt::validate::ValidateError;
use cat_rdt::{Mode, Owned, Resctrl, ResctrlError, monitor};
use common::{Sleeper, emu, errno};

fn status(root: &Path) -> String {
    std::fs::read_to_string(root.join("info/last_cmd_status"))
        .expect("status")
        .trim()
        .to_string()
}

fn write(p: &Path, s: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(p)?;
    let n = f.write(s.as_bytes())?;
    assert_eq!(n, s.len());
    Ok(())
}

#[test]
fn kernel_semantics_through_the_filesystem() {
    let Some(m) = emu("skylake-sp", "") else {
        return;
    };
    let root = m.path();
    // mkdir populates a group.
    std::fs::create_dir(root.join("g")).expect("mkdir");
    let mut names: Vec<String> = std::fs::read_dir(root.join("g"))
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cpus",
            "cpus_list",
            "mode",
            "mon_data",
            "mon_groups",
            "schemata",
            "size",
            "tasks"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(root.join("g/schemata")).expect("read"),
        "L3:0=7ff;1=7ff\nMB:0=100;1=100\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("g/size")).expect("read"),
        "L3:0=28835840;1=28835840\nMB:0=100;1=100\n"
    );
    // Refusals: EINVAL with the kernel's explanation.
    let e = write(&root.join("g/schemata"), "L3:0=5\n").expect_err("sparse");
    assert_eq!(errno(&e), libc::EINVAL);
    assert_eq!(status(root), "The mask 5 has non-consecutive 1-bits");
    let e = write(&root.join("g/schemata"), "MB:1=120\n").expect_err("range");
    assert_eq!(errno(&e), libc::EINVAL);
    assert_eq!(status(root), "MB value 120 out of range [10,100]");
    // Read-only files.
    assert_eq!(
        errno(&write(&root.join("info/L3/cbm_mask"), "1\n").expect_err("ro")),
        libc::EACCES
    );
    // mkdir past num_closids: ENOSPC, "Out of CLOSIDs" (MBA has 8 here).
    for i in 1..7 {
        std::fs::create_dir(root.join(format!("g{i}"))).expect("closid free");
    }
    let e = std::fs::create_dir(root.join("g7")).expect_err("no closid");
    assert_eq!(errno(&e), libc::ENOSPC);
    assert_eq!(status(root), "Out of CLOSIDs");
    // mkdir elsewhere is not allowed; info cannot be removed.
    assert_eq!(
        errno(&std::fs::create_dir(root.join("g/x")).expect_err("nested")),
        libc::EPERM
    );
    assert_eq!(
        errno(&std::fs::remove_dir(root.join("info")).expect_err("info")),
        libc::EPERM
    );
    // A monitoring group.
    std::fs::create_dir(root.join("g/mon_groups/m")).expect("mon mkdir");
    assert!(
        root.join("g/mon_groups/m/mon_data/mon_L3_01/mbm_total_bytes")
            .is_file()
    );
    std::fs::remove_dir(root.join("g")).expect("rmdir");
    assert!(!root.join("g").exists());
}

#[test]
fn seer_refuses_before_the_kernel() {
    let Some(m) = emu("skylake-sp", "") else {
        return;
    };
    let rc = Resctrl::at(m.path()).expect("open");
    rc.create_group("g").expect("create");
    let bad = [
        ("L3:0=101", "non-consecutive"),
        ("L3:0=0", "empty"),
        ("L3:0=fff", "outside cbm_mask"),
        ("L3:5=f", "no domain 5"),
        ("L3DATA:0=f", "CDP is off"),
        ("MB:0=55", "bandwidth_gran"),
        ("MB:0=5", "outside [10, 100]"),
        ("L2:0=1", "not available"),
    ];
    for (text, why) in bad {
        let upd = Schemata::parse(text).expect("parses");
        let e = rc.update_schemata("g", &upd).expect_err(text);
        assert!(matches!(e, ResctrlError::Invalid(_)), "{text}: {e}");
        assert!(e.to_string().contains(why), "{text}: {e}");
        // The kernel never saw it.
        assert_eq!(rc.last_cmd_status().expect("status"), "ok", "{text}");
    }
    // A good update changes only the listed domain.
    rc.update_schemata("g", &Schemata::parse("L3:1=0f0").expect("parses"))
        .expect("valid");
    let s = rc.schemata("g").expect("read");
    assert_eq!(s.get(&Resource::L3, 0), Some(Value::Cbm(0x7ff)));
    assert_eq!(s.get(&Resource::L3, 1), Some(Value::Cbm(0x0f0)));
    // Exclusive mode against overlapping groups is refused by Seer too.
    let e = rc
        .set_mode("g", Mode::Exclusive)
        .expect_err("overlaps root");
    assert!(
        matches!(
            e,
            ResctrlError::Invalid(ValidateError::ExclusiveOverlaps { .. })
        ),
        "{e}"
    );
    // A refusal only the kernel can make is reported with its reason.
    let e = rc.assign_tid("g", 999_999_999).expect_err("no such task");
    assert!(e.to_string().contains("kernel: No task 999999999"), "{e}");
    assert!(e.to_string().contains("/g/tasks"), "{e}");
    // Past num_closids, refused before mkdir.
    for i in 1..7 {
        rc.create_group(&format!("g{i}")).expect("room");
    }
    let e = rc.create_group("g7").expect_err("full");
    assert!(
        matches!(e, ResctrlError::OutOfClosids { num_closids: 8, .. }),
        "{e}"
    );
    assert!(matches!(
        rc.create_group("info"),
        Err(ResctrlError::BadName(_))
    ));
    assert!(matches!(
        rc.create_group("g1"),
        Err(ResctrlError::Exists { .. })
    ));
}

#[test]
fn tasks_cpus_and_delete() {
    let Some(m) = emu("skylake-sp", "") else {
        return;
    };
    let rc = Resctrl::at(m.path()).expect("open");
    rc.create_group("web").expect("create");
    let child = Sleeper::start();
    let tids = rc.assign_pid("web", child.pid()).expect("assign");
    assert_eq!(tids, vec![child.pid()]);
    assert_eq!(rc.tasks("web").expect("tasks"), vec![child.pid()]);
    assert!(!rc.tasks("/").expect("root tasks").contains(&child.pid()));
    rc.assign_cpus("web", &[2, 3].into()).expect("cpus");
    assert_eq!(rc.cpus("web").expect("cpus"), [2, 3].into());
    assert!(!rc.cpus("/").expect("cpus").contains(&2));
    assert!(matches!(
        rc.assign_pid("web", 999_999_999),
        Err(ResctrlError::NoProcess { .. })
    ));
    let e = rc.delete_group("web", false).expect_err("holds a task");
    assert!(matches!(e, ResctrlError::Busy { tasks: 1, .. }), "{e}");
    let d = rc.delete_group("web", true).expect("forced");
    assert_eq!(d.tasks, vec![child.pid()]);
    assert_eq!(d.cpus, vec![2, 3]);
    assert!(
        rc.tasks("/").expect("root tasks").contains(&child.pid()),
        "task back in the default group"
    );
    assert!(rc.cpus("/").expect("cpus").contains(&2));
    assert!(rc.groups().expect("groups").is_empty());
}

#[test]
fn cdp_layout_on_icelake() {
    let Some(m) = emu("icelake-sp", "cdp") else {
        return;
    };
    let rc = Resctrl::at(m.path()).expect("open");
    assert!(rc.layout().l3_cdp());
    assert_eq!(rc.layout().num_closids(), 8);
    rc.create_group("g").expect("create");
    rc.update_schemata(
        "g",
        &Schemata::parse("L3DATA:0=ff0\nL3CODE:0=00f").expect("parses"),
    )
    .expect("valid");
    let s = rc.schemata("g").expect("read");
    assert_eq!(s.get(&Resource::L3Data, 0), Some(Value::Cbm(0xff0)));
    assert_eq!(s.get(&Resource::L3Code, 0), Some(Value::Cbm(0x00f)));
    let e = rc
        .update_schemata("g", &Schemata::parse("L3:0=f").expect("parses"))
        .expect_err("no plain L3");
    assert!(e.to_string().contains("CDP is on"), "{e}");
    // The allocator under CDP gives both halves the same ways.
    let ch = rc.give_ways("g", 3, &Owned::None).expect("ways");
    let s = rc.schemata("g").expect("read");
    for d in [0, 1] {
        assert_eq!(s.get(&Resource::L3Data, d), s.get(&Resource::L3Code, d));
        assert_eq!(
            s.get(&Resource::L3Data, d)
                .map(Value::raw)
                .map(u64::count_ones),
            Some(3)
        );
    }
    assert_eq!(rc.mode("g").expect("mode"), Mode::Exclusive);
    rc.restore(&ch).expect("restore");
    assert_eq!(rc.mode("g").expect("mode"), Mode::Shareable);
    assert_eq!(
        rc.schemata("/").expect("root").get(&Resource::L3Data, 0),
        Some(Value::Cbm(0xfff))
    );
}

#[test]
fn amd_units_and_per_ccd_domains() {
    let Some(m) = emu("epyc-milan", "") else {
        return;
    };
    let rc = Resctrl::at(m.path()).expect("open");
    assert_eq!(rc.layout().mb_scale, Some(cat_rdt::MbScale::AmdUnits));
    assert_eq!(rc.layout().domain_ids(&Resource::L3).len(), 8);
    rc.create_group("g").expect("create");
    assert_eq!(rc.set_mb_percent("g", 50).expect("mb"), 1024);
    let s = rc.schemata("g").expect("read");
    assert!((0..8).all(|d| s.get(&Resource::Mb, d) == Some(Value::Bw(1024))));
    // AMD takes an empty mask and a sparse one.
    rc.update_schemata("g", &Schemata::parse("L3:2=0;3=f0f").expect("parses"))
        .expect("valid on AMD");
    let ch = rc.give_ways("g", 6, &Owned::None).expect("ways");
    assert_eq!(ch.region.len(), 8);
    assert!(ch.region.values().all(|m| m.count_ones() == 6));
}

#[test]
fn mbps_mode() {
    let Some(m) = emu("skylake-sp", "mba_MBps") else {
        return;
    };
    let rc = Resctrl::at(m.path()).expect("open");
    assert_eq!(rc.layout().mb_scale, Some(cat_rdt::MbScale::Mbps));
    rc.create_group("g").expect("create");
    assert!(matches!(
        rc.set_mb_percent("g", 50),
        Err(ResctrlError::MbpsMode)
    ));
    rc.update_schemata("g", &Schemata::parse("MB:0=20000").expect("parses"))
        .expect("MBps value");
    assert_eq!(
        rc.schemata("g").expect("read").get(&Resource::Mb, 0),
        Some(Value::Bw(20000))
    );
}

#[test]
fn give_ways_respects_foreign_groups_and_restores() {
    let Some(m) = emu("sapphire-rapids", "") else {
        return;
    };
    let rc = Resctrl::at(m.path()).expect("open");
    for g in ["seer-a", "seer-b", "theirs"] {
        rc.create_group(g).expect("create");
    }
    // Someone else holds ways 12-14 exclusively.
    rc.update_schemata("/", &Schemata::parse("L3:0=0fff;1=0fff").expect("p"))
        .expect("shrink root");
    for g in ["seer-a", "seer-b"] {
        rc.update_schemata(g, &Schemata::parse("L3:0=0fff;1=0fff").expect("p"))
            .expect("shrink");
    }
    rc.update_schemata("theirs", &Schemata::parse("L3:0=7000;1=7000").expect("p"))
        .expect("theirs");
    rc.set_mode("theirs", Mode::Exclusive).expect("exclusive");
    let before_theirs = rc.schemata("theirs").expect("read");
    let ch = rc
        .give_ways("seer-a", 5, &Owned::Prefix("seer-".into()))
        .expect("ways");
    for (d, region) in &ch.region {
        assert_eq!(region & 0x7000, 0, "domain {d}: foreign ways untouched");
        assert_eq!(region.count_ones(), 5);
        for g in ["/", "seer-b", "theirs"] {
            let other = rc
                .schemata(g)
                .expect("read")
                .get(&Resource::L3, *d)
                .map_or(0, Value::raw);
            assert_eq!(other & region, 0, "{g} overlaps the new region");
        }
    }
    assert_eq!(rc.schemata("theirs").expect("read"), before_theirs);
    assert_eq!(rc.mode("seer-a").expect("mode"), Mode::Exclusive);
    // Asking for more than is free fails without changing anything.
    let snapshot: Vec<Schemata> = ["/", "seer-a", "seer-b"]
        .iter()
        .map(|g| rc.schemata(g).expect("read"))
        .collect();
    assert!(matches!(
        rc.give_ways("seer-a", 13, &Owned::None),
        Err(ResctrlError::Alloc(_))
    ));
    let after: Vec<Schemata> = ["/", "seer-a", "seer-b"]
        .iter()
        .map(|g| rc.schemata(g).expect("read"))
        .collect();
    assert_eq!(snapshot, after);
    rc.restore(&ch).expect("restore");
    assert_eq!(
        rc.schemata("seer-a").expect("read").get(&Resource::L3, 0),
        Some(Value::Cbm(0x0fff))
    );
    assert_eq!(
        rc.schemata("/").expect("read").get(&Resource::L3, 1),
        Some(Value::Cbm(0x0fff))
    );
    assert_eq!(rc.mode("seer-a").expect("mode"), Mode::Shareable);
    // reset leaves only the default group with everything.
    rc.reset(true).expect("reset");
    assert!(rc.groups().expect("groups").is_empty());
    assert_eq!(
        rc.schemata("/").expect("read").get(&Resource::L3, 0),
        Some(Value::Cbm(0x7fff))
    );
    assert_eq!(
        rc.schemata("/").expect("read").get(&Resource::Mb, 0),
        Some(Value::Bw(100))
    );
}

#[test]
fn lock_excludes_a_second_writer() {
    let Some(m) = emu("skylake-sp", "") else {
        return;
    };
    let held = RootLock::exclusive(m.path()).expect("lock");
    assert!(matches!(
        RootLock::try_exclusive(m.path()),
        Err(LockError::Busy(_))
    ));
    drop(held);
    RootLock::try_exclusive(m.path()).expect("free again");
}

#[test]
fn monitoring_rates() {
    let Some(m) = emu("skylake-sp", "") else {
        return;
    };
    let rc = Resctrl::at(m.path()).expect("open");
    rc.create_group("g").expect("create");
    rc.create_mon_group("g", "m").expect("mon");
    assert_eq!(rc.mon_groups("g").expect("list"), vec!["m".to_string()]);
    let a = rc.sample("/", None).expect("sample");
    std::thread::sleep(Duration::from_millis(120));
    let b = rc.sample("/", None).expect("sample");
    let r = monitor::rates(&a, &b, Duration::from_millis(120));
    assert_eq!(r.len(), 2);
    assert!(r[&0].mbm_total_bps.is_some_and(|x| x > 0.0), "{r:?}");
    assert!(r[&0].llc_occupancy.is_some_and(|x| x > 0));
    // An idle group moves nothing.
    let idle = rc.sample("g", Some("m")).expect("sample");
    assert_eq!(idle[&0].mbm_total_bytes, Some(0));
    rc.delete_mon_group("g", "m").expect("rmdir");
}

#[test]
fn discovery_finds_the_emulator() {
    let Some(m) = emu("skylake-sp", "") else {
        return;
    };
    let t = MountTable::from_path(Path::new("/proc/self/mountinfo")).expect("mountinfo");
    let canon = m.path().canonicalize().expect("canon");
    assert!(
        t.entries
            .iter()
            .any(|e| e.is_resctrl() && e.mount_point == canon)
    );
}

#[test]
fn unmounted_on_panic() {
    if !Path::new("/dev/fuse").exists() {
        println!("SKIPPED: no /dev/fuse");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::thread::spawn(move || {
        let Some(m) = emu("skylake-sp", "") else {
            return;
        };
        tx.send(m.path().canonicalize().expect("canon"))
            .expect("send");
        panic!("test failure inside a mounted emulator");
    })
    .join();
    let Ok(path) = rx.recv() else { return };
    assert!(r.is_err());
    let t = MountTable::from_path(Path::new("/proc/self/mountinfo")).expect("mountinfo");
    assert!(
        !t.entries.iter().any(|e| e.mount_point == path),
        "still mounted after panic"
    );
    assert!(!path.exists(), "mountpoint left behind");
}

#[test]
fn mounting_real_resctrl_reports_path_and_options() {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if fs.lines().any(|l| l.trim_end().ends_with("resctrl")) {
        println!("SKIPPED: this kernel has resctrl; not mounting a second one in a test");
        return;
    }
    let tmp = common::TempDir::new("resctrl-mount");
    let dir = tmp.0.clone();
    let opts = cat_rdt::mount::MountOpts::parse("cdp,mba_MBps").expect("valid");
    let e = cat_rdt::mount::mount_resctrl(&dir, opts).expect_err("no resctrl in this kernel");
    let msg = e.to_string();
    assert!(
        msg.contains(&dir.display().to_string()) && msg.contains("\"cdp,mba_MBps\""),
        "{msg}"
    );
}

/// A layout described in a profile file: L2 with CDP, 2-bit minimum masks
/// and hardware-shared ways.
const CUSTOM: &str = r#"
name = "custom"
description = "made-up CPU with L2 CDP"
cpus = 8
[l3]
cbm_mask = "fffff"
num_closids = 4
min_cbm_bits = 2
shareable_bits = "c0000"
domains = [0]
cache_bytes = 20971520
[l2]
cbm_mask = "ff"
num_closids = 8
min_cbm_bits = 1
cdp = true
domains = [0, 1, 2, 3]
cache_bytes = 1048576
"#;

#[test]
fn profile_file_with_l2_cdp_and_min_bits() {
    if !Path::new("/dev/fuse").exists() {
        println!("SKIPPED: no /dev/fuse");
        return;
    }
    let tmp = common::TempDir::new("rdt-profile");
    let file = tmp.0.join("custom.toml");
    std::fs::write(&file, CUSTOM).expect("write profile");
    let m = match cat_rdt::emu::EmulatorMount::mount_temp(
        file.to_str().expect("utf8"),
        cat_rdt::emu::MountOpts::parse("cdpl2").expect("opts"),
        &tmp.0,
    ) {
        Ok(m) => m,
        Err(e) => {
            println!("SKIPPED: cannot mount: {e}");
            return;
        }
    };
    let rc = Resctrl::at(m.path()).expect("open");
    assert!(rc.layout().l2_cdp());
    assert_eq!(rc.layout().num_closids(), 4);
    assert_eq!(
        std::fs::read_to_string(m.path().join("schemata")).expect("read"),
        "    L3:0=fffff\nL2DATA:0=ff;1=ff;2=ff;3=ff\nL2CODE:0=ff;1=ff;2=ff;3=ff\n"
    );
    rc.create_group("g").expect("create");
    // min_cbm_bits 2: Seer refuses one way, and so would the kernel.
    let e = rc
        .update_schemata("g", &Schemata::parse("L3:0=1").expect("p"))
        .expect_err("one way");
    assert!(
        matches!(
            e,
            ResctrlError::Invalid(ValidateError::TooFewBits {
                bits: 1,
                min: 2,
                ..
            })
        ),
        "{e}"
    );
    let raw = write(&m.path().join("g/schemata"), "L3:0=1\n").expect_err("kernel refuses too");
    assert_eq!(errno(&raw), libc::EINVAL);
    assert_eq!(status(m.path()), "Need at least 2 bits in the mask");
    rc.update_schemata(
        "g",
        &Schemata::parse("L2DATA:3=0f\nL2CODE:3=f0").expect("p"),
    )
    .expect("L2 CDP");
    assert!(
        rc.update_schemata("g", &Schemata::parse("L2:0=f").expect("p"))
            .is_err()
    );
    // Exclusive groups may not hold the hardware-shared ways.
    rc.update_schemata("g", &Schemata::parse("L3:0=c0000").expect("p"))
        .expect("shareable ways");
    let e = rc
        .set_mode("g", Mode::Exclusive)
        .expect_err("hardware ways");
    assert!(e.to_string().contains("shareable_bits"), "{e}");
    // The allocator keeps clear of them: 4 ways below bit 18, default group shrunk.
    let ch = rc.give_ways("g", 4, &Owned::None).expect("ways");
    assert_eq!(ch.region[&0] & 0xc0000, 0);
    assert_eq!(ch.region[&0].count_ones(), 4);
    // Its L2 masks overlap the default group's, so the kernel would refuse
    // exclusive mode: the ways are still held by no other group.
    assert!(!ch.exclusive);
    assert_eq!(rc.mode("g").expect("mode"), Mode::Shareable);
    let root_l3 = rc
        .schemata("/")
        .expect("read")
        .get(&Resource::L3, 0)
        .map_or(0, Value::raw);
    assert_eq!(root_l3 & ch.region[&0], 0);
    assert!(rc.ensure_group("g").is_ok_and(|created| !created));
}
