//! The `disk` probe: 64 KiB `O_DIRECT` writes, duty cycled, into one file
//! under a configured directory, so every write reaches the device and no
//! call blocks for long (a buffered write plus `fdatasync` can block for
//! tens of milliseconds). Where `O_DIRECT` is refused (tmpfs) it falls back
//! to buffered writes with `sync_file_range` starting writeback every 1 MiB.
//! The file is allocated to its size cap before the window, writes wrap
//! around inside the cap, and the file and its directory are removed when
//! the probe is dropped.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::{ProbeError, ProbeReport, duty_loop, report_from};
use crate::mem::Mapping;

const BLOCK: usize = 64 << 10;
const SYNC_EVERY: u64 = 1 << 20;

pub(crate) struct DiskProbe {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
    direct: bool,
    cap: u64,
    off: u64,
    buf: Mapping,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl DiskProbe {
    pub(crate) fn new(parent: &Path, cap: u64) -> Result<Self, ProbeError> {
        if cap < SYNC_EVERY {
            return Err(ProbeError::Config(format!(
                "disk cap {cap} bytes is below 1 MiB"
            )));
        }
        let meta = fs::metadata(parent).map_err(|source| ProbeError::Io {
            what: "stat disk directory",
            path: parent.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(ProbeError::Config(format!(
                "disk directory {} is not a directory",
                parent.display()
            )));
        }
        let dir = parent.join(format!(
            "seer-probe-disk-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&dir).map_err(|source| ProbeError::Io {
            what: "create probe directory",
            path: dir.clone(),
            source,
        })?;
        let path = dir.join("probe.dat");
        let mut buf = Mapping::anon(BLOCK, false, true).map_err(|e| ProbeError::Sys {
            what: "map the disk probe buffer".into(),
            source: e,
        })?;
        for (i, b) in buf.bytes_mut().iter_mut().enumerate() {
            *b = (i * 31 % 251) as u8;
        }
        let mut me = DiskProbe {
            dir,
            path: path.clone(),
            file: None,
            direct: true,
            cap: cap / BLOCK as u64 * BLOCK as u64,
            off: 0,
            buf,
        };
        let open = |flags: i32| {
            OpenOptions::new()
                .create(true)
                .read(true)
                .write(true)
                .custom_flags(flags)
                .open(&path)
        };
        let file = match open(libc::O_DIRECT) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                me.direct = false;
                open(0)
            }
            .map_err(|source| ProbeError::Io {
                what: "create probe file",
                path: path.clone(),
                source,
            })?,
            Err(source) => {
                return Err(ProbeError::Io {
                    what: "create probe file",
                    path: path.clone(),
                    source,
                });
            }
        };
        // SAFETY: posix_fallocate on a file descriptor we own, in bounds of i64.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, me.cap as libc::off_t) };
        if rc != 0 {
            return Err(ProbeError::Io {
                what: "allocate probe file",
                path,
                source: std::io::Error::from_raw_os_error(rc),
            });
        }
        me.file = Some(file);
        Ok(me)
    }

    pub(crate) fn run(
        &mut self,
        intensity: u8,
        duration: Duration,
        period: Duration,
        stop: &AtomicBool,
    ) -> Result<ProbeReport, ProbeError> {
        let Some(file) = self.file.as_ref() else {
            return Err(ProbeError::Config("disk probe file is closed".into()));
        };
        let mut err = None;
        let mut since_sync = 0u64;
        let mut off = self.off;
        let cap = self.cap;
        let direct = self.direct;
        let fd = file.as_raw_fd();
        let buf: &[u8] = self.buf.bytes_mut();
        let stats = duty_loop(intensity, duration, period, stop, |_| {
            if err.is_some() {
                return 0;
            }
            if let Err(e) = file.write_all_at(buf, off) {
                err = Some(e);
                return 0;
            }
            if !direct {
                since_sync += BLOCK as u64;
                if since_sync >= SYNC_EVERY {
                    // SAFETY: starts writeback of a byte range of a file we own; no waiting.
                    unsafe {
                        libc::sync_file_range(
                            fd,
                            (off + BLOCK as u64).saturating_sub(since_sync) as libc::off64_t,
                            since_sync as libc::off64_t,
                            libc::SYNC_FILE_RANGE_WRITE,
                        )
                    };
                    since_sync = 0;
                }
            }
            off = (off + BLOCK as u64) % cap;
            1
        });
        self.off = off;
        if let Some(source) = err {
            return Err(ProbeError::Io {
                what: "write probe file",
                path: self.path.clone(),
                source,
            });
        }
        let mut r = report_from(stats, "64KiB-write", BLOCK as f64, self.cap);
        r.note = Some(format!(
            "{} writes to {}",
            if direct { "O_DIRECT" } else { "buffered" },
            self.path.display()
        ));
        Ok(r)
    }

    /// The file the probe writes.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DiskProbe {
    fn drop(&mut self) {
        self.file = None;
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_inside_the_cap_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let mut p = DiskProbe::new(d.path(), 2 << 20).unwrap();
        let path = p.path().to_path_buf();
        let stop = AtomicBool::new(false);
        let r = p
            .run(
                100,
                Duration::from_millis(20),
                super::super::DEFAULT_PERIOD,
                &stop,
            )
            .unwrap();
        assert!(r.ops > 0);
        assert!(fs::metadata(&path).unwrap().len() <= 2 << 20);
        drop(p);
        assert!(!path.exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_tiny_caps_and_missing_dirs() {
        let d = tempfile::tempdir().unwrap();
        assert!(DiskProbe::new(d.path(), 1000).is_err());
        let err = DiskProbe::new(&d.path().join("nope"), 4 << 20)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
