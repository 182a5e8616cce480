//! Seer's contention probes: ten tunable ~10 ms microbenchmarks that each
//! stress one shared resource (from the core outwards: `cpu`, `fpu`, `l1i`,
//! `l1d`, `l2`, `llc`, `membw`, `memcap`, `disk`, `net`), hardware-counter
//! reading where the machine allows it, and the diagnosis that injects the
//! probes next to a latency-sensitive target to find which resource it is
//! short of (the Seer paper, §4.4; iBench, IISWC'13).
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use std::time::Duration;
//! use bench_probes::{Probe, ProbeKind, ProbeSettings};
//!
//! let settings = ProbeSettings::discover()?;
//! let mut probe = Probe::prepare(ProbeKind::Membw, &settings, 1)?;
//! let report = probe.run(70, Duration::from_millis(10), &AtomicBool::new(false))?;
//! println!("{:.1} GB/s", report.bytes_per_sec / 1e9);
//! # Ok::<(), bench_probes::Error>(())
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod counters;
pub mod diagnose;
mod kernels;
mod mem;
pub mod memlimit;
pub mod probe;
pub mod target;
pub mod topology;
pub mod victim;

pub use diagnose::{DiagnoseConfig, DiagnoseError, Diagnosis, Placement, diagnose};
pub use probe::{Probe, ProbeError, ProbeKind, ProbeReport, ProbeSettings};
pub use target::{Target, TargetError};
pub use topology::{Topology, TopologyError};

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the probes.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// From the topology.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// From a target.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// From the diagnosis.
    #[error(transparent)]
    Diagnose(#[from] DiagnoseError),
    /// From the counters.
    #[error(transparent)]
    Counters(#[from] counters::CountersError),
    /// From the memory limits.
    #[error(transparent)]
    MemLimit(#[from] memlimit::MemLimitError),
}
