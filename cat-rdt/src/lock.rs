//! An exclusive `flock(2)` on the resctrl root while changing it, as `pqos`
//! takes one, so that two agents never interleave their writes.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The root could not be opened.
    #[error("failed to open {path} for locking: {source}")]
    Open {
        /// The root.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `flock` failed.
    #[error("failed to lock {path}: {source}")]
    Flock {
        /// The root.
        path: PathBuf,
        /// The cause.
        source: nix::errno::Errno,
    },
    /// Another process holds the lock (non-blocking attempt).
    #[error("{0} is locked by another process (another seer agent or pqos is changing resctrl)")]
    Busy(PathBuf),
}

/// Held lock; released on drop.
#[derive(Debug)]
pub struct RootLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl RootLock {
    fn take(root: &Path, arg: FlockArg) -> Result<RootLock, LockError> {
        let f = File::open(root).map_err(|e| LockError::Open {
            path: root.to_path_buf(),
            source: e,
        })?;
        match Flock::lock(f, arg) {
            Ok(l) => Ok(RootLock {
                _lock: l,
                path: root.to_path_buf(),
            }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Busy(root.to_path_buf())),
            Err((_, e)) => Err(LockError::Flock {
                path: root.to_path_buf(),
                source: e,
            }),
        }
    }

    /// Wait for and take the exclusive lock on the directory `root`.
    pub fn exclusive(root: &Path) -> Result<RootLock, LockError> {
        RootLock::take(root, FlockArg::LockExclusive)
    }

    /// Take the exclusive lock on `root` or fail at once with [`LockError::Busy`].
    pub fn try_exclusive(root: &Path) -> Result<RootLock, LockError> {
        RootLock::take(root, FlockArg::LockExclusiveNonblock)
    }

    /// The locked directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
