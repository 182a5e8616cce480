//! `seer-rdt` end to end on the emulator: every verb, its refusals, the
//! output formats, and the one-line answer when resctrl is absent.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Sleeper, emu};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seer-rdt"))
}

fn run(root: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run seer-rdt")
}

fn ok(root: &Path, args: &[&str]) -> String {
    let o = run(root, args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf8")
}

/// Fails with exactly one line on stderr; returns it.
fn fails(root: &Path, args: &[&str]) -> String {
    let o = run(root, args);
    assert!(!o.status.success(), "{args:?} should fail");
    let e = String::from_utf8(o.stderr).expect("utf8");
    assert_eq!(e.lines().count(), 1, "{args:?}: not one line: {e}");
    assert!(e.starts_with("seer-rdt: "), "{e}");
    e
}

#[test]
fn verbs_end_to_end() {
    let Some(m) = emu("skylake-sp", "") else {
        return;
    };
    let root = m.path();
    let info = ok(root, &["info"]);
    assert!(info.contains("8 CLOSIDs usable"), "{info}");
    assert!(
        info.contains("L3     11    7ff       1             600"),
        "{info}"
    );
    let j: serde_json::Value = serde_json::from_str(&ok(root, &["info", "--json"])).expect("json");
    assert_eq!(j["mb"]["bandwidth_gran"], 10);

    assert!(ok(root, &["create", "web"]).contains("created group web"));
    let e = fails(root, &["create", "web"]);
    assert!(e.contains("already exists"), "{e}");

    let out = ok(
        root,
        &["set", "web", "--l3", "0=0x0f0;1=0x0f0", "--mb", "0=50"],
    );
    assert!(out.contains("···████···· 4"), "way bars: {out}");
    assert!(out.contains("50%"), "{out}");
    // Seer's own refusals, one line each, and the kernel untouched.
    for (args, why) in [
        (vec!["set", "web", "--l3", "0=0x101"], "non-consecutive"),
        (vec!["set", "web", "--l3", "0=0x800"], "outside cbm_mask"),
        (vec!["set", "web", "--l3", "9=0xf"], "no domain 9"),
        (vec!["set", "web", "--mb", "0=55"], "round it up to 60"),
        (vec!["set", "web", "--l3data", "0=f"], "CDP is off"),
        (vec!["set", "web", "--l3", "0=zz"], "bad --l3 value"),
        (vec!["set", "web"], "nothing to set"),
        (vec!["set", "nope", "--l3", "0=f"], "no resctrl group"),
        (vec!["set", "web", "--mode", "exclusive"], "overlaps"),
    ] {
        let e = fails(root, &args);
        assert!(e.contains(why), "{args:?}: {e}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("info/last_cmd_status")).expect("status"),
        "ok\n"
    );

    let out = ok(root, &["ways", "web", "3"]);
    assert!(
        out.contains("shrank /") && out.contains("exclusive"),
        "{out}"
    );

    let child = Sleeper::start();
    let pid = child.pid().to_string();
    let out = ok(root, &["assign", "web", "--pid", &pid, "--cpus", "4-5"]);
    assert!(
        out.contains("CPUs 4-5") && out.contains("1 thread(s)"),
        "{out}"
    );
    let show = ok(root, &["show"]);
    assert!(
        show.lines()
            .any(|l| l.starts_with("web") && l.contains("exclusive  1      4-5")),
        "{show}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&ok(root, &["show", "web", "--json"])).expect("json");
    assert_eq!(j[0]["schemata"]["MB"]["0"], 50);
    assert_eq!(j[0]["mode"], "exclusive");

    let csv = ok(
        root,
        &["monitor", "--interval", "100ms", "--count", "2", "--csv"],
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "time_s,group,domain,llc_occupancy_bytes,mbm_total_bytes_per_s,mbm_local_bytes_per_s"
    );
    assert_eq!(lines.len(), 1 + 2 * 2 * 2, "{csv}");
    let js = ok(
        root,
        &[
            "monitor",
            "web",
            "--interval",
            "100ms",
            "--count",
            "1",
            "--json",
        ],
    );
    for l in js.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json line");
        assert_eq!(v["group"], "web");
        assert!(
            v["mbm_total_bytes_per_s"].as_f64().is_some_and(|x| x > 0.0),
            "{l}"
        );
    }
    let txt = ok(root, &["monitor", "--interval", "100ms", "--count", "1"]);
    assert!(txt.starts_with("TIME_S"), "{txt}");

    let e = fails(root, &["delete", "web"]);
    assert!(e.contains("holds 1 task") && e.contains("force"), "{e}");
    let e = fails(root, &["reset"]);
    assert!(e.contains("force"), "{e}");
    let out = ok(root, &["delete", "web", "--force"]);
    assert!(
        out.contains("1 task(s) and CPUs [4-5] returned to the default group"),
        "{out}"
    );
    ok(root, &["create", "a"]);
    let out = ok(root, &["reset"]);
    assert!(out.contains("deleted 1 group(s)"), "{out}");
    assert!(ok(root, &["show", "/"]).contains("7ff"));
}

#[test]
fn closids_run_out_clearly() {
    let Some(m) = emu("skylake-sp", "") else {
        return;
    };
    for i in 0..7 {
        ok(m.path(), &["create", &format!("g{i}")]);
    }
    let e = fails(m.path(), &["create", "g7"]);
    assert!(e.contains("all 8 CLOSIDs are in use"), "{e}");
}

#[test]
fn cdp_flags() {
    let Some(m) = emu("icelake-sp", "cdp") else {
        return;
    };
    ok(m.path(), &["create", "g"]);
    let out = ok(
        m.path(),
        &["set", "g", "--l3data", "0=ff0", "--l3code", "0=00f"],
    );
    assert!(out.contains("L3DATA") && out.contains("L3CODE"), "{out}");
    let e = fails(m.path(), &["set", "g", "--l3", "0=f"]);
    assert!(e.contains("use L3DATA and L3CODE"), "{e}");
}

#[test]
fn resctrl_absent_says_so_in_one_line() {
    let tmp = common::TempDir::new("not-resctrl");
    let dir = tmp.0.clone();
    for args in [
        vec!["info"],
        vec!["show"],
        vec!["create", "x"],
        vec!["set", "x", "--l3", "0=f"],
        vec!["assign", "x", "--cpus", "0"],
        vec!["monitor", "--count", "1"],
        vec!["delete", "x"],
        vec!["reset"],
    ] {
        let e = fails(&dir, &args);
        assert!(e.contains("not a resctrl mount"), "{args:?}: {e}");
        let e = fails(&dir.join("missing"), &args);
        assert!(e.contains("resctrl is not mounted"), "{args:?}: {e}");
    }
}

#[test]
fn help_names_pqos() {
    for verb in [
        "info", "show", "create", "set", "assign", "monitor", "delete", "reset",
    ] {
        let o = bin().args([verb, "--help"]).output().expect("help");
        let t = String::from_utf8_lossy(&o.stdout);
        assert!(t.contains("pqos equivalent"), "{verb}: {t}");
    }
}

/// Kills the emulate child and detaches its mount, whatever happens.
struct EmulateChild(std::process::Child, std::path::PathBuf);

impl Drop for EmulateChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = nix::mount::umount2(&self.1, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.1);
    }
}

#[test]
fn emulate_verb_mounts_until_signalled() {
    if emu("skylake-sp", "").is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("seer-rdt-emulate-{}", std::process::id()));
    let child = bin()
        .args(["emulate", "--profile", "epyc-milan"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let guard = EmulateChild(child, dir.clone());
    let t0 = Instant::now();
    while !dir.join("info").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "emulator did not mount"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok(&dir, &["info"]).contains("ffff"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(guard.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    let mut guard = guard;
    let t0 = Instant::now();
    while guard.0.try_wait().expect("wait").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "emulator did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!dir.join("info").exists(), "still mounted");
    assert!(!dir.exists(), "mountpoint it created is left behind");
    // Bad profile: one line.
    let e = fails(
        Path::new("/"),
        &["emulate", "--profile", "pentium", "/tmp/x"],
    );
    assert!(e.contains("unknown profile"), "{e}");
}
