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
    /// Time-weighted mean of the calls to the service that are in the network
    /// (on their way there or their reply on its way back): each call's client span
    /// minus its server span, summed over the calls whose client span ended in the
    /// tick, over the tick's length. The caller's queue shows a slow link as its
    /// own; this shows it at the service whose link it is. `NaN` when the source has
    /// no client spans paired with server spans.
    #[serde(default = "nan")]
    pub hop_mean: f32,
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
            hop_mean: f32::NAN,
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

/// How far a QoS window may stretch to hold its minimum of requests: this many
/// times its length in ticks (10 s for the default 1 s window).
pub const QOS_WINDOW_MAX_STRETCH: usize = 10;

/// The extent of an entry point's QoS window, tick by tick: the last `ticks`
/// ticks, stretched back (to at most [`QOS_WINDOW_MAX_STRETCH`] times that) as far
/// as it takes to hold `min_requests` completions.
///
/// A p99 over 80 requests is their maximum, and judging it judges one request:
/// a low-rate entry point then "violates" whenever a single request is slow.
/// With a minimum the window keeps enough requests for the 99th percentile to be
/// one (1,000 requests: the 10th slowest). `min_requests = 0` keeps exactly
/// `ticks` ticks.
///
/// The window is the *shortest* such suffix. Its start never moves back (a new
/// tick only adds requests), so a running count of the ticks inside is enough:
/// [`QosSpan::push`] says how many of the oldest ticks leave.
#[derive(Debug, Clone, Default)]
pub struct QosSpan {
    counts: std::collections::VecDeque<u64>,
    total: u64,
}

impl QosSpan {
    /// Takes the newest tick's completions `n` and returns how many of the oldest
    /// ticks leave the window (the caller drops as many from its own buffers).
    pub fn push(&mut self, n: u64, ticks: usize, min_requests: u64) -> usize {
        let ticks = ticks.max(1);
        let max = if min_requests == 0 {
            ticks
        } else {
            ticks.saturating_mul(QOS_WINDOW_MAX_STRETCH)
        };
        self.counts.push_back(n);
        self.total += n;
        let mut leave = 0;
        while self.counts.len() > ticks {
            let oldest = self.counts[0];
            if self.counts.len() > max || self.total - oldest >= min_requests {
                self.counts.pop_front();
                self.total -= oldest;
                leave += 1;
            } else {
                break;
            }
        }
        leave
    }

    /// Completions in the window.
    pub fn requests(&self) -> u64 {
        self.total
    }

    /// Ticks in the window.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no tick has been pushed.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The window the span keeps, checked against a brute-force shortest suffix.
    fn brute(counts: &[u64], ticks: usize, min: u64) -> usize {
        let max = if min == 0 {
            ticks
        } else {
            ticks * QOS_WINDOW_MAX_STRETCH
        };
        let n = counts.len();
        (ticks.min(n)..=max.min(n))
            .find(|&len| counts[n - len..].iter().sum::<u64>() >= min)
            .unwrap_or(max.min(n))
    }

    #[test]
    fn the_window_is_the_shortest_suffix_holding_the_minimum() {
        // A rate that rises, falls to nothing and comes back.
        let counts: Vec<u64> = (0..400u64)
            .map(|t| match t {
                0..100 => 1 + t / 10,
                100..200 => 40,
                200..260 => 0,
                _ => (t * 7919) % 13,
            })
            .collect();
        for (ticks, min) in [(10, 0), (10, 100), (10, 1000), (1, 5), (3, 60)] {
            let mut span = QosSpan::default();
            for i in 0..counts.len() {
                span.push(counts[i], ticks, min);
                let want = brute(&counts[..=i], ticks, min);
                assert_eq!(span.len(), want, "tick {i}, window {ticks}, minimum {min}");
                let held: u64 = counts[i + 1 - want..=i].iter().sum();
                assert_eq!(span.requests(), held, "tick {i}");
            }
        }
    }

    #[test]
    fn without_a_minimum_the_window_is_fixed() {
        let mut span = QosSpan::default();
        let left: Vec<usize> = (0..15).map(|_| span.push(3, 10, 0)).collect();
        assert_eq!(left[..10], [0; 10]);
        assert_eq!(left[10..], [1; 5]);
        assert_eq!((span.len(), span.requests()), (10, 30));
    }

    #[test]
    fn a_starved_window_stops_stretching() {
        let mut span = QosSpan::default();
        for _ in 0..500 {
            span.push(1, 10, 1000);
        }
        assert_eq!(span.len(), 10 * QOS_WINDOW_MAX_STRETCH);
        assert_eq!(span.requests(), 100);
    }
}
