//! Shared helpers for the emulator-backed tests: mount a profile on a
//! unique directory, or say why the test is skipped.

#![allow(dead_code)]

use cat_rdt::emu::{EmulatorMount, MountOpts};

/// Mount `profile` with `opts`, or print SKIPPED and return `None` when
/// FUSE cannot be used here (not root, no /dev/fuse).
pub fn emu(profile: &str, opts: &str) -> Option<EmulatorMount> {
    if !std::path::Path::new("/dev/fuse").exists() {
        println!("SKIPPED: no /dev/fuse on this machine");
        return None;
    }
    if !nix::unistd::geteuid().is_root() && which_fusermount().is_none() {
        println!("SKIPPED: not root and no fusermount3 to mount FUSE");
        return None;
    }
    let opts = MountOpts::parse(opts).expect("valid options");
    match EmulatorMount::mount_temp(profile, opts, &std::env::temp_dir()) {
        Ok(m) => Some(m),
        Err(e) => {
            println!("SKIPPED: cannot mount the resctrl emulator: {e}");
            None
        }
    }
}

fn which_fusermount() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join("fusermount3"))
        .find(|p| p.exists())
}

/// `errno` of an io error.
pub fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// A child process that sleeps, killed and reaped on drop.
pub struct Sleeper(pub std::process::Child);

impl Sleeper {
    /// Start `sleep 30`.
    pub fn start() -> Sleeper {
        Sleeper(
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("spawn sleep"),
        )
    }
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory under the temp dir, removed with its content on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// Create `<tmp>/<prefix>-<pid>`.
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
