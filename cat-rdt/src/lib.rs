//! Intel CAT/MBA (and AMD's equivalents) through the Linux resctrl
//! filesystem: discovery, validation, groups, schemata, task and CPU
//! assignment, monitoring, a way allocator, and a kernel-faithful resctrl
//! emulator for machines without RDT.
//!
//! ```no_run
//! use cat_rdt::{Owned, Resctrl};
//! let rc = Resctrl::discover()?;
//! rc.create_group("seer-web")?;
//! rc.assign_pid("seer-web", 4242)?;
//! let change = rc.give_ways("seer-web", 4, &Owned::Prefix("seer-".into()))?;
//! rc.set_mb_percent("seer-web", 50)?;
//! rc.restore(&change)?;
//! # Ok::<(), cat_rdt::ResctrlError>(())
//! ```

pub mod alloc;
pub mod cbm;
pub mod cpulist;
pub mod emu;
pub mod info;
pub mod lock;
pub mod monitor;
pub mod mount;
pub mod report;
pub mod resctrl;
pub mod schemata;
pub mod validate;

pub use info::{Layout, MbScale};
pub use resctrl::{Deleted, GroupState, Owned, Resctrl, ResctrlError, WaysChange};
pub use schemata::{Resource, Schemata, Value};
pub use validate::Mode;

/// Every error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A resctrl operation.
    #[error(transparent)]
    Resctrl(#[from] ResctrlError),
    /// The emulator.
    #[error(transparent)]
    Emulator(#[from] emu::EmulatorError),
    /// A profile.
    #[error(transparent)]
    Profile(#[from] emu::profile::ProfileError),
    /// Schemata text.
    #[error(transparent)]
    Schemata(#[from] schemata::SchemataError),
    /// A CPU list.
    #[error(transparent)]
    CpuList(#[from] cpulist::CpuListError),
    /// Mount options or table.
    #[error(transparent)]
    Mount(#[from] mount::MountError),
}
