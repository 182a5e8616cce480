//! The simulator's built-in monitor: exact per-service counters (time-weighted
//! queue length, waits, sojourn times) and the last closed tick, for validation
//! and for controllers that act on a running simulation.
//!
//! The monitor measures the same thing the trace pipeline does (server spans
//! outstanding), but exactly and without going through spans.

use seer_traces::tick::QosSpan;

/// Cumulative counters of one service since the start of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServiceTotals {
    /// Requests outstanding now (waiting or in service, or blocked on callees).
    pub outstanding: u32,
    /// Requests that arrived.
    pub arrivals: u64,
    /// Requests that got a worker.
    pub started: u64,
    /// Requests that replied.
    pub completions: u64,
    /// Sum of waits for a worker, ns.
    pub wait_ns: f64,
    /// Sum of sojourn times (arrival to reply), ns.
    pub sojourn_ns: f64,
    /// Time integral of `outstanding`, request·ns.
    pub area: f64,
    /// Requests waiting for a worker now.
    pub waiting: u32,
    /// Time integral of `waiting`, request·ns.
    pub wait_area: f64,
    /// Workers computing now (not waiting on callees or a lock).
    pub computing: u32,
    /// Time integral of `computing`, worker·ns.
    pub compute_area: f64,
    last_t: u64,
}

impl ServiceTotals {
    /// Mean number outstanding over `[0, t_ns)` (call after the run reached `t_ns`).
    pub fn mean_outstanding(&self, t_ns: u64) -> f64 {
        let extra = self.outstanding as f64 * t_ns.saturating_sub(self.last_t) as f64;
        (self.area + extra) / t_ns as f64
    }

    /// Mean wait for a worker, ns.
    pub fn mean_wait_ns(&self) -> f64 {
        self.wait_ns / self.started.max(1) as f64
    }

    /// Mean sojourn time, ns.
    pub fn mean_sojourn_ns(&self) -> f64 {
        self.sojourn_ns / self.completions.max(1) as f64
    }

    #[inline]
    fn advance(&mut self, t: u64) {
        let dt = (t - self.last_t) as f64;
        self.area += self.outstanding as f64 * dt;
        self.wait_area += self.waiting as f64 * dt;
        self.compute_area += self.computing as f64 * dt;
        self.last_t = t;
    }
}

/// One service during the last closed tick.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServiceTickStat {
    /// Time-weighted mean outstanding.
    pub queue_mean: f64,
    /// Most outstanding at once.
    pub queue_max: u32,
    /// Arrivals.
    pub arrivals: u32,
    /// Completions.
    pub completions: u32,
    /// Time-weighted mean waiting for a worker.
    pub wait_mean: f64,
    /// Mean share of the workers computing (CPU utilisation), 0–1.
    pub cpu_util: f64,
    /// 99th percentile time in the service (arrival to completion, a server
    /// span's duration) of the requests completed in the tick, ms (`NaN` when
    /// none): the per-service latency a trace pipeline computes.
    pub p99_ms: f64,
    /// Calls to the service in the network: the network time (client span minus
    /// server span) of the calls whose reply reached their caller in the tick, over
    /// the tick's length — what the trace pipeline computes from client spans.
    pub hop_mean: f64,
}

/// What the trace pipeline cannot compute from server spans alone, per service
/// and closed tick ([`Monitor::keep_history`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryRow {
    /// [`ServiceTickStat::wait_mean`].
    pub wait_mean: f32,
    /// [`ServiceTickStat::cpu_util`].
    pub cpu_util: f32,
    /// [`ServiceTickStat::hop_mean`].
    pub hop_mean: f32,
}

/// One entry point during the last closed tick.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ApiTickStat {
    /// Requests completed.
    pub requests: u32,
    /// Of which failed.
    pub errors: u32,
    /// Median end-to-end latency, ms (`NaN` when none).
    pub p50_ms: f64,
    /// 99th percentile end-to-end latency, ms (`NaN` when none).
    pub p99_ms: f64,
    /// 99th percentile over the QoS window ending with this tick (the last
    /// [`seer_traces::tick::DEFAULT_QOS_WINDOW_TICKS`] ticks, stretched back to hold
    /// [`Monitor::set_qos_min_requests`] completions), ms (`NaN` when none).
    pub p99_window_ms: f64,
}

/// The last closed tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickSnapshot {
    /// Tick number since the start of the run.
    pub index: u64,
    /// Start, ns since the epoch.
    pub start_ns: u64,
    /// Per service id.
    pub services: Vec<ServiceTickStat>,
    /// Per API id.
    pub apis: Vec<ApiTickStat>,
}

#[derive(Debug, Clone, Default)]
struct ServiceTick {
    area_start: f64,
    wait_start: f64,
    compute_start: f64,
    max: u32,
    arrivals: u32,
    completions: u32,
    hop_ns: u64,
}

/// Counters and the last tick.
#[derive(Debug, Clone)]
pub struct Monitor {
    tick_ns: u64,
    epoch_ns: u64,
    next_boundary: u64,
    index: u64,
    totals: Vec<ServiceTotals>,
    cur: Vec<ServiceTick>,
    /// Per service, the sojourns of the requests completed in the open tick.
    sojourns: Vec<Vec<u64>>,
    lat: Vec<Vec<u64>>,
    /// Per API, the latencies of the ticks of the QoS window, and its extent.
    window: Vec<(std::collections::VecDeque<Vec<u64>>, QosSpan)>,
    /// Completions the QoS window stretches back to hold (0: none).
    qos_min_requests: u64,
    /// Tick buffers that left a window, for reuse.
    spare: Vec<Vec<u64>>,
    scratch: Vec<u64>,
    errors: Vec<u32>,
    latest: Option<TickSnapshot>,
    capacity: Vec<u32>,
    history: Option<Vec<HistoryRow>>,
}

fn quantile_ms(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let k = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    let (_, x, _) = v.select_nth_unstable(k);
    *x as f64 / 1e6
}

impl Monitor {
    /// A monitor for `n_services` and `n_apis` with ticks of `tick_ns`.
    pub fn new(n_services: usize, n_apis: usize, tick_ns: u64, epoch_ns: u64) -> Self {
        Self {
            tick_ns,
            epoch_ns,
            next_boundary: tick_ns,
            index: 0,
            totals: vec![ServiceTotals::default(); n_services],
            cur: vec![ServiceTick::default(); n_services],
            sojourns: vec![Vec::new(); n_services],
            lat: vec![Vec::new(); n_apis],
            window: vec![Default::default(); n_apis],
            qos_min_requests: 0,
            spare: Vec::new(),
            scratch: Vec::new(),
            errors: vec![0; n_apis],
            latest: None,
            capacity: vec![1; n_services],
            history: None,
        }
    }

    /// Stretches each API's QoS window back until it holds `n` completions
    /// ([`QosSpan`]; 0, the default, keeps exactly the window's ticks).
    pub fn set_qos_min_requests(&mut self, n: u64) {
        self.qos_min_requests = n;
    }

    /// Keeps a [`HistoryRow`] of every service and closed tick, for datasets (the
    /// trace pipeline cannot tell waiting from being served).
    pub fn keep_history(&mut self) {
        self.history.get_or_insert_with(Vec::new);
    }

    /// A [`HistoryRow`] per closed tick and service id, `[tick * services +
    /// service]`, when [`Monitor::keep_history`] was called.
    pub fn history(&self) -> Option<&[HistoryRow]> {
        self.history.as_deref()
    }

    /// Sets the workers of service `sid` (all its active instances), the
    /// denominator of its CPU utilisation.
    pub(crate) fn set_capacity(&mut self, sid: usize, workers: u32) {
        self.capacity[sid] = workers.max(1);
    }

    /// End of the current tick, ns since the start of the run.
    #[inline]
    pub fn next_boundary(&self) -> u64 {
        self.next_boundary
    }

    /// Cumulative counters per service id.
    pub fn totals(&self) -> &[ServiceTotals] {
        &self.totals
    }

    /// The last closed tick.
    pub fn latest(&self) -> Option<&TickSnapshot> {
        self.latest.as_ref()
    }

    /// Closes every tick that ends at or before `t`.
    pub fn roll_to(&mut self, t: u64) {
        while self.next_boundary <= t {
            let b = self.next_boundary;
            let snap = self.latest.get_or_insert_with(TickSnapshot::default);
            snap.index = self.index;
            snap.start_ns = self.epoch_ns + b - self.tick_ns;
            snap.services.clear();
            let tick = self.tick_ns as f64;
            for (((tot, cur), cap), soj) in self
                .totals
                .iter_mut()
                .zip(self.cur.iter_mut())
                .zip(&self.capacity)
                .zip(self.sojourns.iter_mut())
            {
                tot.advance(b);
                let stat = ServiceTickStat {
                    queue_mean: (tot.area - cur.area_start) / tick,
                    queue_max: cur.max,
                    arrivals: cur.arrivals,
                    completions: cur.completions,
                    wait_mean: (tot.wait_area - cur.wait_start) / tick,
                    cpu_util: (tot.compute_area - cur.compute_start) / (tick * f64::from(*cap)),
                    p99_ms: quantile_ms(soj, 0.99),
                    hop_mean: cur.hop_ns as f64 / tick,
                };
                soj.clear();
                if let Some(h) = &mut self.history {
                    h.push(HistoryRow {
                        wait_mean: stat.wait_mean as f32,
                        cpu_util: stat.cpu_util as f32,
                        hop_mean: stat.hop_mean as f32,
                    });
                }
                snap.services.push(stat);
                *cur = ServiceTick {
                    area_start: tot.area,
                    wait_start: tot.wait_area,
                    compute_start: tot.compute_area,
                    max: tot.outstanding,
                    arrivals: 0,
                    completions: 0,
                    hop_ns: 0,
                };
            }
            snap.apis.clear();
            let k = seer_traces::tick::DEFAULT_QOS_WINDOW_TICKS;
            for ((lat, err), (win, span)) in self
                .lat
                .iter_mut()
                .zip(self.errors.iter_mut())
                .zip(self.window.iter_mut())
            {
                let mut stat = ApiTickStat {
                    requests: lat.len() as u32,
                    errors: *err,
                    p50_ms: quantile_ms(lat, 0.5),
                    p99_ms: quantile_ms(lat, 0.99),
                    p99_window_ms: f64::NAN,
                };
                // Slide the window; buffers that leave it serve later ticks.
                let mut keep = self.spare.pop().unwrap_or_default();
                keep.clear();
                keep.extend_from_slice(lat);
                win.push_back(keep);
                for _ in 0..span.push(lat.len() as u64, k, self.qos_min_requests) {
                    self.spare.extend(win.pop_front());
                }
                self.scratch.clear();
                for v in win.iter() {
                    self.scratch.extend_from_slice(v);
                }
                stat.p99_window_ms = quantile_ms(&mut self.scratch, 0.99);
                snap.apis.push(stat);
                lat.clear();
                *err = 0;
            }
            self.index += 1;
            self.next_boundary += self.tick_ns;
        }
    }

    #[inline]
    pub(crate) fn arrive(&mut self, sid: usize, now: u64) {
        let t = &mut self.totals[sid];
        t.advance(now);
        t.outstanding += 1;
        t.waiting += 1;
        t.arrivals += 1;
        let c = &mut self.cur[sid];
        c.arrivals += 1;
        c.max = c.max.max(t.outstanding);
    }

    #[inline]
    pub(crate) fn start(&mut self, sid: usize, now: u64, waited_ns: u64) {
        let t = &mut self.totals[sid];
        t.advance(now);
        t.waiting -= 1;
        t.started += 1;
        t.wait_ns += waited_ns as f64;
    }

    /// A worker of `sid` starts (`true`) or stops (`false`) computing.
    #[inline]
    pub(crate) fn computing(&mut self, sid: usize, now: u64, on: bool) {
        let t = &mut self.totals[sid];
        t.advance(now);
        if on {
            t.computing += 1;
        } else {
            t.computing -= 1;
        }
    }

    #[inline]
    pub(crate) fn complete(&mut self, sid: usize, now: u64, sojourn_ns: u64) {
        let t = &mut self.totals[sid];
        t.advance(now);
        t.outstanding -= 1;
        t.completions += 1;
        t.sojourn_ns += sojourn_ns as f64;
        self.cur[sid].completions += 1;
        self.sojourns[sid].push(sojourn_ns);
    }

    /// A reply reached the caller of `sid`: its call spent `ns` in the network.
    #[inline]
    pub(crate) fn hop(&mut self, sid: usize, ns: u64) {
        self.cur[sid].hop_ns += ns;
    }

    #[inline]
    pub(crate) fn request(&mut self, api: usize, latency_ns: u64, error: bool) {
        self.lat[api].push(latency_ns);
        if error {
            self.errors[api] += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tick_queue_mean_is_time_weighted() {
        let mut m = Monitor::new(1, 1, 100, 1000);
        m.arrive(0, 10); // 1 outstanding from 10
        m.arrive(0, 60); // 2 from 60
        m.complete(0, 80, 70); // 1 from 80
        m.request(0, 5_000_000, false);
        m.roll_to(100);
        let s = m.latest().unwrap();
        // 1*50 + 2*20 + 1*20 = 110 over 100 ns
        assert!((s.services[0].queue_mean - 1.1).abs() < 1e-12);
        assert_eq!(s.services[0].queue_max, 2);
        assert_eq!(s.services[0].arrivals, 2);
        assert_eq!(s.apis[0].requests, 1);
        assert_eq!(s.apis[0].p99_ms, 5.0);
        assert_eq!(s.start_ns, 1000);
        m.roll_to(250);
        let s = m.latest().unwrap();
        assert_eq!(s.index, 1);
        assert!((s.services[0].queue_mean - 1.0).abs() < 1e-12);
        assert_eq!(s.services[0].queue_max, 1);
        assert!(s.apis[0].p99_ms.is_nan());
        assert!((m.totals()[0].mean_outstanding(200) - (110.0 + 100.0) / 200.0).abs() < 1e-12);
    }

    /// The windowed p99 of each tick: five requests a tick, one slow at tick 100.
    fn window_p99s(min_requests: u64) -> Vec<f64> {
        let mut m = Monitor::new(1, 1, 100, 0);
        m.set_qos_min_requests(min_requests);
        (0..200u64)
            .map(|t| {
                for k in 0..5 {
                    let ms = if t == 100 && k == 0 { 80 } else { 10 + k };
                    m.request(0, ms * 1_000_000, false);
                }
                m.roll_to((t + 1) * 100);
                m.latest().unwrap().apis[0].p99_window_ms
            })
            .collect()
    }

    #[test]
    fn the_qos_window_stretches_to_its_minimum_of_requests() {
        // One second holds 50 requests: its p99 is the slowest, for ten ticks.
        let second = window_p99s(0);
        let slow: Vec<usize> = (0..200).filter(|&t| second[t] > 20.0).collect();
        assert_eq!(slow, (100..110).collect::<Vec<_>>());
        // 200 requests: the 99th percentile is the second slowest, 14 ms.
        let stretched = window_p99s(200);
        assert!(stretched.iter().all(|&p| p < 20.0), "{stretched:?}");
        assert_eq!(stretched[105], 14.0);
    }
}
