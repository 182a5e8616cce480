//! The FUSE side of the emulator: serves a [`Model`] through `fuser`
//! (pure-Rust mount, no libfuse), and [`EmulatorMount`], a guard that
//! unmounts on drop, lazily if the mount is busy, even while a test panics.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, WriteFlags,
};

use super::model::{Model, MountOpts, Node};
use super::profile::Profile;

/// Why the emulator could not be mounted.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The profile refuses these mount options.
    #[error("cannot mount profile {profile} with these options: {message}")]
    Options {
        /// The profile.
        profile: String,
        /// Why.
        message: String,
    },
    /// The mountpoint could not be created.
    #[error("failed to create mountpoint {path}: {source}")]
    Mountpoint {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// FUSE refused the mount (no /dev/fuse, no permission, no fusermount3).
    #[error("failed to mount the resctrl emulator on {path}: {source}")]
    Mount {
        /// The mountpoint.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

struct Inodes {
    by_path: HashMap<Vec<String>, u64>,
    by_ino: HashMap<u64, Vec<String>>,
    next: u64,
}

struct ResctrlFs {
    model: Mutex<Model>,
    inodes: Mutex<Inodes>,
}

// Entries and attributes do not change behind the kernel's back (every change
// goes through this mount, and rmdir drops the dentry), so they may be cached.
const TTL: Duration = Duration::from_secs(1);

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

impl ResctrlFs {
    fn new(model: Model) -> ResctrlFs {
        let mut by_path = HashMap::new();
        let mut by_ino = HashMap::new();
        by_path.insert(Vec::new(), 1);
        by_ino.insert(1, Vec::new());
        ResctrlFs {
            model: Mutex::new(model),
            inodes: Mutex::new(Inodes {
                by_path,
                by_ino,
                next: 2,
            }),
        }
    }

    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        // A panic while holding the lock leaves the model usable; keep serving.
        self.model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path_of(&self, ino: INodeNo) -> Option<Vec<String>> {
        let inodes = self
            .inodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inodes.by_ino.get(&ino.0).cloned()
    }

    fn ino_of(&self, path: &[String]) -> u64 {
        let mut inodes = self
            .inodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&i) = inodes.by_path.get(path) {
            return i;
        }
        let i = inodes.next;
        inodes.next += 1;
        inodes.by_path.insert(path.to_vec(), i);
        inodes.by_ino.insert(i, path.to_vec());
        i
    }

    fn attr(&self, ino: u64, node: Node) -> FileAttr {
        let now = SystemTime::now();
        let (kind, perm, nlink) = match node {
            Node::Dir => (FileType::Directory, 0o755, 2),
            Node::File(p) => (FileType::RegularFile, p, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            // kernfs files report size 0 too; reads are direct.
            size: 0,
            blocks: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Option<Vec<String>> {
        let mut p = self.path_of(parent)?;
        p.push(name.to_str()?.to_string());
        Some(p)
    }
}

fn refs(p: &[String]) -> Vec<&str> {
    p.iter().map(String::as_str).collect()
}

impl Filesystem for ResctrlFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(p) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let node = self.model().stat(&refs(&p));
        match node {
            Some(n) => {
                let ino = self.ino_of(&p);
                reply.entry(&TTL, &self.attr(ino, n), Generation(0));
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(p) = self.path_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let node = self.model().stat(&refs(&p));
        match node {
            Some(n) => reply.attr(&TTL, &self.attr(ino.0, n)),
            None => reply.error(Errno::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // O_TRUNC on open arrives here; kernfs ignores truncation too.
        self.getattr(req, ino, fh, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let Some(p) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let mut m = self.model();
        match m.mkdir(&refs(&p)) {
            Ok(()) => {
                drop(m);
                let ino = self.ino_of(&p);
                reply.entry(&TTL, &self.attr(ino, Node::Dir), Generation(0));
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(p) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let r = self.model().rmdir(&refs(&p));
        match r {
            Ok(()) => {
                let mut inodes = self
                    .inodes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let gone: Vec<Vec<String>> = inodes
                    .by_path
                    .keys()
                    .filter(|k| k.starts_with(&p))
                    .cloned()
                    .collect();
                for k in gone {
                    if let Some(i) = inodes.by_path.remove(&k) {
                        inodes.by_ino.remove(&i);
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(p) = self.path_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let node = self.model().stat(&refs(&p));
        let wants_write = flags.0 & libc::O_ACCMODE != libc::O_RDONLY;
        match node {
            Some(Node::File(perm)) if wants_write && perm & 0o200 == 0 => {
                reply.error(Errno::EACCES)
            }
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(p) = self.path_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let r = self.model().read(&refs(&p));
        match r {
            Ok(s) => {
                let b = s.as_bytes();
                let start = (offset as usize).min(b.len());
                let end = (start + size as usize).min(b.len());
                reply.data(&b[start..end]);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(p) = self.path_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let r = self.model().write(&refs(&p), data, req.pid());
        match r {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(p) = self.path_of(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let entries = self.model().list(&refs(&p));
        let mut all: Vec<(u64, FileType, String)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (1, FileType::Directory, "..".into()),
        ];
        for (name, node) in entries {
            let mut cp = p.clone();
            cp.push(name.clone());
            let kind = if node == Node::Dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            all.push((self.ino_of(&cp), kind, name));
        }
        for (i, (ino, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A mounted emulator. Dropping it unmounts (lazily if busy) and, for a
/// mountpoint it created itself, removes the directory.
#[derive(Debug)]
pub struct EmulatorMount {
    path: PathBuf,
    session: Option<fuser::BackgroundSession>,
    owns_dir: bool,
}

impl EmulatorMount {
    /// Mount `profile` with `opts` on `mountpoint` (created if missing).
    /// Task ids written to `tasks` are looked up under `proc_root`.
    pub fn mount(
        profile: Profile,
        opts: MountOpts,
        mountpoint: &Path,
        proc_root: Option<PathBuf>,
    ) -> Result<EmulatorMount, EmulatorError> {
        let owns_dir = !mountpoint.exists();
        std::fs::create_dir_all(mountpoint).map_err(|e| EmulatorError::Mountpoint {
            path: mountpoint.to_path_buf(),
            source: e,
        })?;
        let name = profile.name.clone();
        let model = Model::new(profile, opts, proc_root).map_err(|m| EmulatorError::Options {
            profile: name,
            message: m,
        })?;
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("resctrl".into()),
            MountOption::Subtype("resctrl".into()),
        ];
        let session =
            fuser::spawn_mount(ResctrlFs::new(model), mountpoint, &config).map_err(|e| {
                if owns_dir {
                    let _ = std::fs::remove_dir(mountpoint);
                }
                EmulatorError::Mount {
                    path: mountpoint.to_path_buf(),
                    source: e,
                }
            })?;
        Ok(EmulatorMount {
            path: mountpoint.to_path_buf(),
            session: Some(session),
            owns_dir,
        })
    }

    /// Mount a built-in or file profile on a fresh, uniquely named directory
    /// under `parent` (for tests and demos); tasks are looked up in `/proc`.
    pub fn mount_temp(
        profile: &str,
        opts: MountOpts,
        parent: &Path,
    ) -> Result<EmulatorMount, Box<dyn std::error::Error + Send + Sync>> {
        let p = Profile::load(profile)?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = parent.join(format!("resctrl-emu-{}-{n}-{nanos}", std::process::id()));
        Ok(EmulatorMount::mount(
            p,
            opts,
            &dir,
            Some(PathBuf::from("/proc")),
        )?)
    }

    /// The mountpoint: the root of the emulated resctrl tree.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the filesystem is still served (false once it was unmounted
    /// from outside with `umount` or `fusermount3 -u`).
    pub fn is_running(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Block until the filesystem is unmounted from outside (`umount`,
    /// `fusermount3 -u`).
    pub fn wait(mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.join();
        }
    }

    /// Unmount now: `umount`, or a lazy detach if the mount is busy.
    pub fn unmount(&mut self) {
        if self.session.is_none() {
            return;
        }
        if nix::mount::umount2(&self.path, nix::mount::MntFlags::empty()).is_err() {
            let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        }
        // The session's own unmount now finds nothing mounted; its thread
        // ends when the kernel closes the connection.
        drop(self.session.take());
        if self.owns_dir {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

impl Drop for EmulatorMount {
    fn drop(&mut self) {
        self.unmount();
    }
}
