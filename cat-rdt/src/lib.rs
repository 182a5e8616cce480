//! Intel CAT/MBA (and AMD's equivalents) through the Linux resctrl
//! filesystem: discovery, validation, groups, schemata, task and CPU
//! assignment, monitoring, a way allocator, and a kernel-faithful resctrl
//! emulator for machines without RDT.

pub mod alloc;
pub mod cbm;
pub mod cpulist;
pub mod emu;
pub mod info;
pub mod schemata;
pub mod validate;
