//! Ticks: what one service and one entry point did during one interval.

use serde::{Deserialize, Serialize};

/// Default tick interval: 100 ms, as in Seer's queue sampling.
pub const DEFAULT_INTERVAL_NS: u64 = 100_000_000;

/// One service during one tick.
///
/// Latency quantiles are in milliseconds and `NaN` when nothing completed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServiceTick {
    /// Time-weighted mean of outstanding requests (queue depth) over the tick.
    pub queue_mean: f32,
    /// Most requests outstanding at once during the tick.
    pub queue_max: u32,
    /// Requests that started during the tick.
    pub arrivals: u32,
    /// Requests that ended during the tick.
    pub completions: u32,
    /// Completions with an error status.
    pub errors: u32,
    /// Median latency of the completions, ms.
    pub p50_ms: f32,
    /// 95th percentile latency of the completions, ms.
    pub p95_ms: f32,
    /// 99th percentile latency of the completions, ms.
    pub p99_ms: f32,
    /// Time-weighted mean of the requests waiting for a worker (the accept and
    /// socket backlog: the "network-only" queue); `NaN` when the source cannot
    /// tell waiting from being served (spans alone cannot).
    #[serde(default = "nan")]
    pub wait_mean: f32,
    /// Fraction of the service's workers busy computing (CPU utilisation), 0–1;
    /// `NaN` when unknown.
    #[serde(default = "nan")]
    pub cpu_util: f32,
}

fn nan() -> f32 {
    f32::NAN
}

impl Default for ServiceTick {
    fn default() -> Self {
        Self {
            queue_mean: 0.0,
            queue_max: 0,
            arrivals: 0,
            completions: 0,
            errors: 0,
            p50_ms: f32::NAN,
            p95_ms: f32::NAN,
            p99_ms: f32::NAN,
            wait_mean: f32::NAN,
            cpu_util: f32::NAN,
        }
    }
}

/// One entry point (root operation, e.g. `/wrk2-api/home-timeline/read`) during one tick.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EntryTick {
    /// End-to-end requests completed during the tick.
    pub requests: u32,
    /// Of which failed.
    pub errors: u32,
    /// End-to-end 99th percentile latency, ms (`NaN` when none completed).
    pub p99_ms: f32,
    /// End-to-end 99th percentile over the QoS window ending with this tick (the
    /// last [`DEFAULT_QOS_WINDOW_TICKS`] ticks by default), ms; `NaN` when none
    /// completed in the window or the source did not compute it.
    #[serde(default = "nan")]
    pub p99_window_ms: f32,
}

/// Ticks in the QoS window over which the end-to-end p99 is judged (1 s of
/// 100 ms ticks): per-tick p99s of a few dozen requests are too noisy to define a
/// violation.
pub const DEFAULT_QOS_WINDOW_TICKS: usize = 10;

impl Default for EntryTick {
    fn default() -> Self {
        Self {
            requests: 0,
            errors: 0,
            p99_ms: f32::NAN,
            p99_window_ms: f32::NAN,
        }
    }
}

/// One finalised interval `[start_ns, start_ns + interval)`.
///
/// `services[i]` belongs to the aggregator's service id `i` and `entries[j]` to its
/// entry id `j`; ids only grow, so a later tick may be longer than an earlier one.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// `start_ns / interval_ns`.
    pub index: i64,
    /// Start of the interval, ns since the epoch.
    pub start_ns: u64,
    /// Per service, indexed by service id.
    pub services: Vec<ServiceTick>,
    /// Per entry point, indexed by entry id.
    pub entries: Vec<EntryTick>,
}

/// Where the queue depth of a dataset came from (DESIGN.md "Queue depth").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QueueSource {
    /// Server spans outstanding (start ≤ t < end).
    #[default]
    Spans,
    /// An application up-down counter received over OTLP metrics, by metric name.
    AppMetric(String),
    /// Accept-queue and qdisc backlog read by the node agent ("network-only").
    Kernel,
}
