//! A kernel-faithful resctrl emulator: a FUSE filesystem that lays out,
//! populates and refuses exactly as the kernel's resctrl does, for machines
//! without RDT. [`model`] is the state machine (pure, testable without
//! FUSE), [`profile`] the CPU descriptions, [`fs`] the FUSE adapter and the
//! mount guard.

pub mod fs;
pub mod model;
pub mod profile;

pub use fs::{EmulatorError, EmulatorMount};
pub use model::{Model, MountOpts};
pub use profile::Profile;
