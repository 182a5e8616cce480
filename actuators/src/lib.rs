//! Actions on a node: the [`Action`] type, cgroup v1/v2/hybrid resizing in
//! `docker update` units, finding a task's cgroup (Nomad, Docker, systemd,
//! any pid), capability checks, and apply/revert/expire/reconcile with a
//! crash-safe, fsync'd JSON-lines journal.
//!
//! Cache ways and memory bandwidth (resctrl) and network rate (HTB) go
//! through the [`CacheAllocator`] and [`BandwidthShaper`] traits,
//! implemented on `cat-rdt` ([`ResctrlAllocator`]) and `tc-htb`
//! ([`HtbShaper`]).
//!
//! ```no_run
//! use seer_actuators::{Action, Actuator, CgroupFs, Durability, Journal};
//! # fn main() -> Result<(), seer_actuators::Error> {
//! let fs = CgroupFs::discover()?;
//! let journal = Journal::open("/var/lib/seer/actions.jsonl", Durability::Fsync)?;
//! let mut act = Actuator::new(fs, journal);
//! act.check_capabilities()?;
//! act.reconcile()?; // finish whatever a crash left behind
//! let a = act.apply(
//!     &Action::CpuQuota { cgroup: "/docker/3f2a...".into(), cores: Some(2.0), period_us: None },
//!     Some(std::time::Duration::from_secs(10)),
//! )?;
//! act.revert(a.id)?;
//! # Ok(()) }
//! ```

pub mod action;
pub mod actuator;
pub mod backend;
pub mod bounds;
pub mod caps;
pub mod cgroup;
pub mod htb;
pub mod journal;
pub mod locate;
pub mod resctrl;
#[cfg(any(test, feature = "testing"))]
pub mod test_util;
pub mod units;

pub use action::{Action, ActionError, Knob, Setting};
pub use actuator::{
    Actuator, ActuatorError, Applied, Clock, Mismatch, ReconcileReport, Reverted, Step, SystemClock,
};
pub use backend::{BackendError, BandwidthShaper, CacheAllocator};
pub use bounds::{Bounds, BoundsError};
pub use caps::{CapsError, Need};
pub use cgroup::{CgroupError, CgroupFs, CgroupMode, Controller};
pub use htb::{HtbAdapterError, HtbShaper};
pub use journal::{Durability, Entry, Journal, JournalError, State};
pub use locate::{LocateError, Locator, TaskRef};
pub use resctrl::{ResctrlAdapterError, ResctrlAllocator};
pub use units::{CpuList, DevNum, Limit, UnitError};

/// Any error from this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From applying, reverting or reconciling.
    #[error(transparent)]
    Actuator(#[from] ActuatorError),
    /// From the journal.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// From cgroup access.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// From locating a task.
    #[error(transparent)]
    Locate(#[from] LocateError),
    /// From capability checks.
    #[error(transparent)]
    Caps(#[from] CapsError),
    /// From an action's values.
    #[error(transparent)]
    Action(#[from] ActionError),
    /// From bounds.
    #[error(transparent)]
    Bounds(#[from] BoundsError),
    /// From unit parsing.
    #[error(transparent)]
    Unit(#[from] UnitError),
}
