//! Synthetic victims: small request handlers that each depend on one
//! resource, for validating probes and for calibrating a diagnosis on a new
//! machine. [`serve`] answers one-byte requests over TCP so a victim can run
//! in its own process (and cgroup) and be diagnosed as a `--target-tcp`.

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::mem::{Mapping, permutation};

/// Which resource a victim depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VictimKind {
    /// Integer work (about 0.2 ms per request).
    Cpu,
    /// A dependent pointer chase over half the LLC.
    Llc,
    /// A streaming read of 4 MiB from a 256 MiB buffer.
    Membw,
    /// One byte read from every page of a memory-mapped 16 MiB file: free
    /// while the page cache holds it, major faults when memory runs short.
    Memcap,
    /// A 4 KiB write followed by `fdatasync`.
    Disk,
    /// Nothing: an echo, so the request's latency is the network's.
    Echo,
}

impl VictimKind {
    /// All kinds.
    pub const ALL: [VictimKind; 6] = [
        VictimKind::Cpu,
        VictimKind::Llc,
        VictimKind::Membw,
        VictimKind::Memcap,
        VictimKind::Disk,
        VictimKind::Echo,
    ];

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            VictimKind::Cpu => "cpu",
            VictimKind::Llc => "llc",
            VictimKind::Membw => "membw",
            VictimKind::Memcap => "memcap",
            VictimKind::Disk => "disk",
            VictimKind::Echo => "echo",
        }
    }
}

impl FromStr for VictimKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        VictimKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown victim {s:?} (known: cpu, llc, membw, memcap, disk, echo)")
            })
    }
}

/// Sizes and places for victims.
#[derive(Debug, Clone)]
pub struct VictimConfig {
    /// LLC size; the `llc` victim chases over half of it.
    pub llc_bytes: u64,
    /// Directory for the `disk` and `memcap` victims' files.
    pub dir: PathBuf,
    /// Size of the `memcap` victim's file.
    pub file_bytes: u64,
}

enum Work {
    Cpu,
    Llc {
        map: Mapping,
        pos: usize,
        steps: usize,
    },
    Membw {
        map: Mapping,
        pos: usize,
    },
    Memcap {
        map: FileMap,
    },
    Disk {
        file: File,
        buf: Vec<u8>,
    },
    Echo,
}

/// A prepared victim.
pub struct Victim {
    kind: VictimKind,
    work: Work,
    files: Vec<PathBuf>,
}

const MEMBW_BUF: usize = 256 << 20;
const MEMBW_REQ: usize = 4 << 20;

impl Victim {
    /// Prepare a victim: allocate and fault its memory, create its files.
    pub fn new(kind: VictimKind, cfg: &VictimConfig) -> Result<Self, String> {
        let mut files = Vec::new();
        let work = match kind {
            VictimKind::Cpu => Work::Cpu,
            VictimKind::Llc => {
                let lines = (cfg.llc_bytes as usize / 2 / 64).max(64);
                let mut map = Mapping::anon(lines * 64, true, true)
                    .map_err(|e| format!("map llc victim: {e}"))?;
                let perm = permutation(lines, 7);
                let w = map.words_mut();
                for i in 0..lines {
                    w[perm[i] * 8] = (perm[(i + 1) % lines] * 8) as u64;
                }
                Work::Llc {
                    map,
                    pos: perm[0] * 8,
                    steps: 8192,
                }
            }
            VictimKind::Membw => {
                let mut map = Mapping::anon(MEMBW_BUF, true, true)
                    .map_err(|e| format!("map membw victim: {e}"))?;
                for (i, w) in map.words_mut().iter_mut().enumerate() {
                    *w = i as u64;
                }
                Work::Membw { map, pos: 0 }
            }
            VictimKind::Memcap => {
                let path = unique(&cfg.dir, "memcap");
                let mut f = create(&path)?;
                files.push(path.clone());
                let len = cfg.file_bytes.max(1 << 20);
                let block = vec![0xa5u8; 1 << 20];
                let mut left = len;
                while left > 0 {
                    let n = left.min(block.len() as u64) as usize;
                    f.write_all(&block[..n])
                        .map_err(|e| format!("write {}: {e}", path.display()))?;
                    left -= n as u64;
                }
                f.sync_all()
                    .map_err(|e| format!("sync {}: {e}", path.display()))?;
                Work::Memcap {
                    map: FileMap::new(&f, len as usize)
                        .map_err(|e| format!("mmap {}: {e}", path.display()))?,
                }
            }
            VictimKind::Disk => {
                let path = unique(&cfg.dir, "disk");
                let f = create(&path)?;
                files.push(path);
                Work::Disk {
                    file: f,
                    buf: vec![0x3c; 4096],
                }
            }
            VictimKind::Echo => Work::Echo,
        };
        let mut v = Victim { kind, work, files };
        v.request()?; // warm
        Ok(v)
    }

    /// The kind.
    pub fn kind(&self) -> VictimKind {
        self.kind
    }

    /// Handle one request.
    pub fn request(&mut self) -> Result<(), String> {
        match &mut self.work {
            Work::Cpu => {
                let mut s = [1u64, 2, 3, 4];
                crate::kernels::int_work(&mut s, 100_000);
                black_box(s);
            }
            Work::Llc { map, pos, steps } => {
                let w = map.words_mut();
                *pos = black_box(crate::kernels::chase(w, *pos, *steps as u64));
            }
            Work::Membw { map, pos } => {
                let w = map.words_mut();
                let n = MEMBW_REQ / 8;
                black_box(crate::kernels::sum(&w[*pos..*pos + n]));
                *pos = (*pos + n) % (w.len() - n);
            }
            Work::Memcap { map } => {
                black_box(map.touch());
            }
            Work::Disk { file, buf } => {
                file.write_all_at(buf, 0)
                    .map_err(|e| format!("write disk victim: {e}"))?;
                file.sync_data()
                    .map_err(|e| format!("fdatasync disk victim: {e}"))?;
            }
            Work::Echo => {}
        }
        Ok(())
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = fs::remove_file(f);
        }
    }
}

/// A read-only shared mapping of a file.
struct FileMap {
    ptr: *const u8,
    len: usize,
}

impl FileMap {
    fn new(f: &File, len: usize) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        // SAFETY: maps `len` bytes of a file we hold open, read-only and
        // shared; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: advice on our own mapping; failure is harmless.
        unsafe { libc::madvise(p, len, libc::MADV_RANDOM) };
        Ok(FileMap { ptr: p.cast(), len })
    }

    /// Read one byte of every page.
    fn touch(&self) -> u64 {
        let mut acc = 0u64;
        let mut i = 0;
        while i < self.len {
            // SAFETY: i < len, inside the live mapping.
            acc += u64::from(unsafe { std::ptr::read_volatile(self.ptr.add(i)) });
            i += 4096;
        }
        acc
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what new() mapped.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

// SAFETY: the mapping is read-only and owned by this value alone.
unsafe impl Send for FileMap {}

fn unique(dir: &Path, what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    dir.join(format!(
        "seer-victim-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn create(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("create {}: {e}", path.display()))
}

/// Serve one-byte requests on `listener` until a client sends `q`, the
/// listener fails, or a global stop is requested (Ctrl-C in `seer-probe`):
/// each byte received is one request, answered with one byte after the
/// victim's work. Connections are served one at a time.
pub fn serve(listener: TcpListener, victim: &mut Victim) -> std::io::Result<()> {
    use crate::probe::global_stop_requested;
    use std::io::ErrorKind;
    listener.set_nonblocking(true)?;
    loop {
        let mut s = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                if global_stop_requested() {
                    return Err(ErrorKind::Interrupted.into());
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            }
            Err(e) => return Err(e),
        };
        s.set_nonblocking(false)?;
        let _ = s.set_nodelay(true);
        s.set_read_timeout(Some(std::time::Duration::from_millis(100)))?;
        let mut b = [0u8; 1];
        loop {
            match s.read(&mut b) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if global_stop_requested() {
                        return Err(ErrorKind::Interrupted.into());
                    }
                    continue;
                }
                Err(_) => break,
            }
            if b[0] == b'q' {
                return Ok(());
            }
            let ok = victim.request().is_ok();
            if s.write_all(if ok { b"k" } else { b"e" }).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_victim_serves_requests_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let cfg = VictimConfig {
            llc_bytes: 1 << 20,
            dir: d.path().to_path_buf(),
            file_bytes: 1 << 20,
        };
        for k in VictimKind::ALL {
            assert_eq!(k.name().parse::<VictimKind>().unwrap(), k);
            let mut v = Victim::new(k, &cfg).unwrap();
            v.request().unwrap();
            assert_eq!(v.kind(), k);
        }
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
        assert!("x".parse::<VictimKind>().is_err());
    }

    #[test]
    fn serve_answers_and_quits() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let d = tempfile::tempdir().unwrap();
            let cfg = VictimConfig {
                llc_bytes: 1 << 20,
                dir: d.path().into(),
                file_bytes: 1 << 20,
            };
            let mut v = Victim::new(VictimKind::Echo, &cfg).unwrap();
            serve(l, &mut v)
        });
        let mut s = std::net::TcpStream::connect(a).unwrap();
        let mut b = [0u8; 1];
        for _ in 0..3 {
            s.write_all(b"r").unwrap();
            s.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"k");
        }
        s.write_all(b"q").unwrap();
        h.join().unwrap().unwrap();
    }
}
