//! QoS targets, violation labels and culprit labels.

use crate::tick::EntryTick;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The shared resource a culprit is short of (or the kind of fault it suffers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// CPU time (contention or a CPU hog).
    Cpu,
    /// Last-level cache capacity.
    Llc,
    /// Memory bandwidth.
    MemBw,
    /// Memory capacity.
    MemCap,
    /// Network bandwidth or latency.
    Net,
    /// Disk / storage I/O.
    Disk,
    /// More requests than the service can take (a load spike).
    Load,
    /// An application fault: a bug, a lock, an exception, a retry storm.
    App,
}

impl Resource {
    /// All resources, in report order.
    pub const ALL: [Resource; 8] = [
        Resource::Cpu,
        Resource::Llc,
        Resource::MemBw,
        Resource::MemCap,
        Resource::Net,
        Resource::Disk,
        Resource::Load,
        Resource::App,
    ];

    /// The snake_case name used in files.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Llc => "llc",
            Resource::MemBw => "mem_bw",
            Resource::MemCap => "mem_cap",
            Resource::Net => "net",
            Resource::Disk => "disk",
            Resource::Load => "load",
            Resource::App => "app",
        }
    }

    /// Maps a Nezha `inject_type` to a resource.
    pub fn from_nezha(inject_type: &str) -> Option<Resource> {
        match inject_type {
            "cpu_contention" | "cpu_consumed" => Some(Resource::Cpu),
            "network_delay" => Some(Resource::Net),
            "exception" | "return" => Some(Resource::App),
            _ => None,
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown resource name.
#[derive(Debug, thiserror::Error)]
#[error("unknown resource {0:?} (expected one of cpu, llc, mem_bw, mem_cap, net, disk, load, app)")]
pub struct UnknownResource(pub String);

impl FromStr for Resource {
    type Err = UnknownResource;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Resource::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownResource(s.to_string()))
    }
}

/// A ground-truth fault: `service` was short of `resource` during `[start_ns, end_ns)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Culprit {
    /// The service the fault was injected into.
    pub service: String,
    /// What it was short of.
    pub resource: Resource,
    /// Start, ns since the epoch.
    pub start_ns: u64,
    /// End, ns since the epoch.
    pub end_ns: u64,
}

/// How the end-to-end p99 target of each entry point is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QosSpec {
    /// Explicit targets in ms, by entry-point name.
    pub targets_ms: Vec<(String, f64)>,
    /// For entry points without an explicit target: `multiple` × the median of the
    /// judged p99 over the reference period (the first `reference_ticks` ticks
    /// that have requests, or the whole run when shorter).
    pub multiple: f64,
    /// Length of the reference period in ticks.
    pub reference_ticks: usize,
    /// Prediction horizon of the "violation within h" labels, ns.
    pub horizon_ns: u64,
    /// Judge the p99 over the QoS window ending at each tick
    /// ([`EntryTick::p99_window_ms`], 1 s by default) rather than the tick's own
    /// p99. Datasets written before the window existed read as `false`.
    #[serde(default)]
    pub windowed: bool,
}

impl QosSpec {
    /// The p99 an entry tick is judged by, ms (`NaN` when unknown).
    pub fn judged_p99(&self, e: &EntryTick) -> f64 {
        if self.windowed {
            f64::from(e.p99_window_ms)
        } else {
            f64::from(e.p99_ms)
        }
    }

    /// Whether an entry point violates its target `target_ms` at a tick, given
    /// its verdict at the tick before (`false` for the first).
    ///
    /// When nothing completed in the judged window the p99 is unknown, and the
    /// verdict stays what it was: a stall inside an overload, where no request
    /// finishes for seconds, is still a violation (the first to finish will
    /// have waited all that time), and an idle entry point stays quiet.
    pub fn violates(&self, e: &EntryTick, target_ms: f64, before: bool) -> bool {
        let p99 = self.judged_p99(e);
        if p99.is_finite() {
            p99 > target_ms
        } else {
            before
        }
    }
}

impl Default for QosSpec {
    fn default() -> Self {
        Self {
            targets_ms: Vec::new(),
            multiple: 2.0,
            reference_ticks: 600,
            horizon_ns: 100_000_000,
            windowed: true,
        }
    }
}
