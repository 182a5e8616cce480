//! The crate's error type, [`HtbError`], merging the per-module errors.

use std::path::PathBuf;

use crate::handle::HandleError;
use crate::msg::MsgError;
use crate::rate::RateError;

/// Everything that can go wrong talking traffic control to the kernel.
///
/// `op` fields spell the request as the matching `tc` command, e.g.
/// `tc class change dev veth0 classid 1:10 (netns /run/netns/x)`.
#[derive(Debug, thiserror::Error)]
pub enum HtbError {
    /// No interface of that name in the socket's network namespace.
    #[error("interface {name:?} not found in network namespace {netns}")]
    NoSuchInterface {
        /// The name looked up.
        name: String,
        /// The namespace searched.
        netns: String,
    },
    /// The kernel refused with `EPERM` and this thread lacks `CAP_NET_ADMIN`.
    #[error("{op} failed: missing CAP_NET_ADMIN (run as root or grant the capability)")]
    MissingCapability {
        /// The request.
        op: String,
    },
    /// The kernel rejected a request.
    #[error("{op} failed: {}{source}", .message.as_deref().map(|m| format!("{m}: ")).unwrap_or_default())]
    Kernel {
        /// The request.
        op: String,
        /// The kernel's extended-ack text, when it gave one.
        message: Option<String>,
        /// The errno.
        source: std::io::Error,
    },
    /// Sending to or receiving from the netlink socket failed.
    #[error("{op} failed on the netlink socket: {source}")]
    Io {
        /// The request.
        op: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The rtnetlink socket could not be opened.
    #[error("failed to open an rtnetlink socket in network namespace {netns}: {source}")]
    Socket {
        /// The namespace.
        netns: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The network namespace file could not be opened or entered.
    #[error("failed to enter network namespace {path}: {source}")]
    Netns {
        /// The namespace file, e.g. `/run/netns/x`.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A request was invalid or a reply malformed.
    #[error("{op}: {source}")]
    Msg {
        /// The request.
        op: String,
        /// What was wrong.
        source: MsgError,
    },
    /// What exists cannot be brought to what was asked without destroying it.
    #[error("{op}: {reason}")]
    Mismatch {
        /// The request.
        op: String,
        /// What differs and what to do.
        reason: String,
    },
    /// A bad rate, size or `/proc/net/psched`.
    #[error(transparent)]
    Rate(#[from] RateError),
    /// A bad handle string.
    #[error(transparent)]
    Handle(#[from] HandleError),
}

impl HtbError {
    /// The errno of a kernel rejection, if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            HtbError::Kernel { source, .. } => source.raw_os_error(),
            HtbError::MissingCapability { .. } => Some(libc::EPERM),
            _ => None,
        }
    }

    /// Whether the kernel said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno(), Some(libc::ENOENT))
    }
}
