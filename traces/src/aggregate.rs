//! The aggregator: spans (and queue-depth gauges) into per-service ticks.
//!
//! Each span touches only the ticks it overlaps. Ticks stay *open* until the
//! watermark — the latest span end seen minus the configured lateness, or a time the
//! caller gives — passes their end; then they are finalised in order, every tick
//! index once, empty ones included. Memory is bounded by services × open ticks:
//! per open tick and service the aggregator keeps a few counters, a sub-slot
//! difference array for the peak queue depth and a bounded latency sketch; beside
//! them, the halves of calls waiting for their other half (bounded, see below).
//!
//! Queue depth of a service = its server-side spans outstanding (start ≤ t < end):
//! `queue_mean` is exact (time-weighted), `queue_max` is the most spans overlapping
//! any one sub-slot (a tick is cut into [`AggregatorConfig::sub_slots`] slots, so at
//! 100 ms and 10 slots it resolves 10 ms).
//!
//! A call's time in the network (`hop_mean`, charged to the service called) is its
//! client span's duration minus its server span's: the two halves meet by the
//! server span's parent id in two generations of bounded maps (the order they
//! arrive in does not matter), and the difference counts in the tick where the
//! client span ended, when that tick is still open.
//!
//! A span whose completion tick is already finalised is *late*: it is counted in
//! [`AggregatorStats::late_spans`] and its parts that fall in still-open ticks are
//! applied. A span that started before the open window is *clipped* and counted too.

use crate::graph::Generations;
use crate::latency::LatencySketch;
use crate::latency::window_histogram;
use crate::span::{Span, SpanKind, SpanStatus};
use crate::tick::{
    DEFAULT_INTERVAL_NS, DEFAULT_QOS_WINDOW_TICKS, EntryTick, QosSpan, QueueSource, ServiceTick,
    Tick,
};
use hdrhistogram::Histogram;
use std::collections::{HashMap, VecDeque};

/// How ticks are cut and finalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatorConfig {
    /// Tick length, ns (default 100 ms).
    pub interval_ns: u64,
    /// How far behind the latest span end a tick is finalised, ns (default 5 s).
    pub lateness_ns: u64,
    /// Sub-slots per tick for `queue_max` (default 10).
    pub sub_slots: usize,
    /// Where `queue_mean`/`queue_max` come from.
    pub queue_source: QueueSource,
    /// Ticks in the window of [`EntryTick::p99_window_ms`] (default 10).
    pub qos_window_ticks: usize,
    /// Completions the QoS window stretches back to hold ([`QosSpan`]; default 0:
    /// exactly `qos_window_ticks`).
    pub qos_min_requests: u64,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            interval_ns: DEFAULT_INTERVAL_NS,
            lateness_ns: 5_000_000_000,
            sub_slots: 10,
            queue_source: QueueSource::Spans,
            qos_window_ticks: DEFAULT_QOS_WINDOW_TICKS,
            qos_min_requests: 0,
        }
    }
}

/// An entry point's latencies over its QoS window: one histogram per tick and
/// their running sum (added when a tick enters, subtracted when it leaves).
#[derive(Debug)]
struct EntWindow {
    ticks: VecDeque<Histogram<u32>>,
    sum: Histogram<u32>,
    span: QosSpan,
    /// A histogram that left, for the next tick.
    spare: Option<Histogram<u32>>,
}

/// Counters of what the aggregator did with its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregatorStats {
    /// Spans accepted.
    pub spans: u64,
    /// Spans whose completion tick was already finalised.
    pub late_spans: u64,
    /// Spans that started before the open window (their early part is lost).
    pub clipped_spans: u64,
    /// Gauge points accepted.
    pub gauge_points: u64,
    /// Gauge points whose tick was already finalised.
    pub late_gauge_points: u64,
    /// Ticks finalised.
    pub ticks: u64,
    /// Calls whose client and server spans met (their network time is known).
    pub calls_paired: u64,
}

#[derive(Debug, Clone, Default)]
struct SvcAcc {
    busy_ns: u64,
    /// Spans covering the whole tick.
    full: u32,
    /// Difference array over sub-slots for partially covering spans (len sub_slots + 1).
    slots: Vec<i32>,
    arrivals: u32,
    completions: u32,
    errors: u32,
    /// Network time of calls to the service whose client span ended in the tick.
    hop_ns: u64,
    lat: LatencySketch,
    gauge_sum: f64,
    gauge_n: u32,
    gauge_max: f64,
}

#[derive(Debug, Default)]
struct EntAcc {
    requests: u32,
    errors: u32,
    lat: LatencySketch,
}

/// Halves of calls waiting for the other half, keyed by the client span's id: a
/// server span's callee and duration, or a client span's duration and end
/// ([`Generations`]: bounded). Server halves are kept only once a client span has
/// been seen: a source without client spans costs nothing.
#[derive(Debug, Default)]
struct CallPairs {
    server: Generations<(u32, u64)>,
    client: Generations<(u64, u64)>,
    clients_seen: bool,
}

impl CallPairs {
    /// A call's server half (callee, duration) under its client span's id; the
    /// client half when it came first.
    fn server(&mut self, client_id: u64, callee: u32, dur: u64) -> Option<(u32, u64, u64)> {
        match self.client.take(client_id) {
            Some((cdur, end)) => Some((callee, cdur.saturating_sub(dur), end)),
            None if !self.clients_seen => None,
            None => {
                self.server.insert(client_id, (callee, dur));
                None
            }
        }
    }

    /// A call's client half; the pair's (callee, network time, client end) when the
    /// server half came first.
    fn client(&mut self, id: u64, dur: u64, end: u64) -> Option<(u32, u64, u64)> {
        self.clients_seen = true;
        match self.server.take(id) {
            Some((callee, sdur)) => Some((callee, dur.saturating_sub(sdur), end)),
            None => {
                self.client.insert(id, (dur, end));
                None
            }
        }
    }
}

#[derive(Debug, Default)]
struct OpenTick {
    svc: Vec<SvcAcc>,
    ent: Vec<EntAcc>,
}

/// Streams spans into ticks. See the module docs.
#[derive(Debug)]
pub struct Aggregator {
    cfg: AggregatorConfig,
    services: Vec<String>,
    service_ids: HashMap<String, u32>,
    entries: Vec<String>,
    entry_ids: HashMap<String, u32>,
    /// Tick index of `open[0]`; `None` before the first input.
    base: Option<i64>,
    /// Whether any tick has been finalised (then `base` can no longer move back).
    sealed: bool,
    open: VecDeque<OpenTick>,
    spare: Vec<OpenTick>,
    max_end_ns: u64,
    last_gauge: Vec<f64>,
    windows: Vec<EntWindow>,
    calls: CallPairs,
    stats: AggregatorStats,
}

impl Aggregator {
    /// A new aggregator.
    ///
    /// # Panics
    /// If `interval_ns` or `sub_slots` is zero (configuration is validated by callers).
    pub fn new(cfg: AggregatorConfig) -> Self {
        assert!(
            cfg.interval_ns > 0 && cfg.sub_slots > 0,
            "interval and sub_slots must be positive"
        );
        Self {
            cfg,
            services: Vec::new(),
            service_ids: HashMap::new(),
            entries: Vec::new(),
            entry_ids: HashMap::new(),
            base: None,
            sealed: false,
            open: VecDeque::new(),
            spare: Vec::new(),
            max_end_ns: 0,
            last_gauge: Vec::new(),
            windows: Vec::new(),
            calls: CallPairs::default(),
            stats: AggregatorStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AggregatorConfig {
        &self.cfg
    }

    /// Service names by id.
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// Entry-point names by id.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Counters so far.
    pub fn stats(&self) -> &AggregatorStats {
        &self.stats
    }

    /// Number of ticks currently open (the memory bound).
    pub fn open_ticks(&self) -> usize {
        self.open.len()
    }

    /// The id of a service, registering it when new.
    pub fn service_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.service_ids.get(name) {
            return id;
        }
        let id = self.services.len() as u32;
        self.services.push(name.to_string());
        self.service_ids.insert(name.to_string(), id);
        self.last_gauge.push(0.0);
        id
    }

    fn entry_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.entry_ids.get(name) {
            return id;
        }
        let id = self.entries.len() as u32;
        self.entries.push(name.to_string());
        self.entry_ids.insert(name.to_string(), id);
        id
    }

    fn tick_of(&self, ns: u64) -> i64 {
        (ns / self.cfg.interval_ns) as i64
    }

    /// Makes ticks `lo..=hi` addressable where the window allows; returns the
    /// first addressable tick (ticks before it are finalised).
    fn ensure_open(&mut self, lo: i64, hi: i64) -> i64 {
        let base = match self.base {
            None => {
                self.base = Some(lo);
                lo
            }
            Some(b) => b,
        };
        let mut base = base;
        if lo < base && !self.sealed {
            for _ in lo..base {
                let t = self.fresh_tick();
                self.open.push_front(t);
            }
            base = lo;
            self.base = Some(lo);
        }
        let want_len = (hi - base + 1).max(0) as usize;
        while self.open.len() < want_len {
            let t = self.fresh_tick();
            self.open.push_back(t);
        }
        base
    }

    fn fresh_tick(&mut self) -> OpenTick {
        self.spare.pop().unwrap_or_default()
    }

    fn svc_acc(tick: &mut OpenTick, sid: u32, slots: usize) -> &mut SvcAcc {
        let i = sid as usize;
        if tick.svc.len() <= i {
            tick.svc.resize_with(i + 1, SvcAcc::default);
        }
        let acc = &mut tick.svc[i];
        if acc.slots.len() != slots + 1 {
            acc.slots = vec![0; slots + 1];
        }
        acc
    }

    /// Adds one span. Spans may come in any order within the lateness.
    pub fn push(&mut self, span: &Span) {
        self.stats.spans += 1;
        let iv = self.cfg.interval_ns;
        let (start, end) = (span.start_ns, span.end_ns.max(span.start_ns));
        // Half-open [start, end): a span ending on a boundary completes in the tick before it.
        let (t_start, t_end) = (
            self.tick_of(start),
            self.tick_of(end.saturating_sub(1).max(start)),
        );
        let base = self.ensure_open(t_start, t_end);
        if t_end < base {
            self.stats.late_spans += 1;
            self.max_end_ns = self.max_end_ns.max(end);
            return;
        }
        if t_start < base {
            self.stats.clipped_spans += 1;
        }
        let server = span.kind.is_server_side();
        let is_root = span.parent_id.is_none();
        let sid = if server || is_root {
            Some(self.service_id(&span.service))
        } else {
            None
        };
        let slots = self.cfg.sub_slots;
        let dur_us = span.duration_ns() / 1000;
        if let Some(sid) = sid.filter(|_| server) {
            let lo = t_start.max(base);
            for t in lo..=t_end {
                let tick_start = t as u64 * iv;
                let tick_end = tick_start + iv;
                let (a, b) = (start.max(tick_start), end.min(tick_end));
                let tick = &mut self.open[(t - base) as usize];
                let acc = Self::svc_acc(tick, sid, slots);
                if t == t_start {
                    acc.arrivals += 1;
                }
                if t == t_end {
                    acc.completions += 1;
                    if span.status == SpanStatus::Error {
                        acc.errors += 1;
                    }
                    acc.lat.record(dur_us);
                }
                if a == tick_start && b == tick_end {
                    acc.full += 1;
                    acc.busy_ns += iv;
                } else if b > a || start == end {
                    acc.busy_ns += b - a;
                    let sa = ((a - tick_start) * slots as u64 / iv) as usize;
                    let sb = (((b - tick_start) * slots as u64).div_ceil(iv) as usize)
                        .clamp(sa + 1, slots);
                    acc.slots[sa] += 1;
                    acc.slots[sb] -= 1;
                }
            }
        }
        let call = match (span.kind, span.parent_id, sid) {
            (SpanKind::Client, ..) => self.calls.client(span.span_id, span.duration_ns(), end),
            (SpanKind::Server | SpanKind::Unspecified, Some(p), Some(sid)) => {
                self.calls.server(p, sid, span.duration_ns())
            }
            _ => None,
        };
        if let Some((callee, hop_ns, client_end)) = call {
            self.stats.calls_paired += 1;
            let t = self.tick_of(client_end.saturating_sub(1));
            if let Some(tick) = usize::try_from(t - base)
                .ok()
                .and_then(|i| self.open.get_mut(i))
            {
                Self::svc_acc(tick, callee, slots).hop_ns += hop_ns;
            }
        }
        if is_root {
            let eid = self.entry_id(&span.operation) as usize;
            let tick = &mut self.open[(t_end - base) as usize];
            if tick.ent.len() <= eid {
                tick.ent.resize_with(eid + 1, EntAcc::default);
            }
            let e = &mut tick.ent[eid];
            e.requests += 1;
            if span.status == SpanStatus::Error {
                e.errors += 1;
            }
            e.lat.record(dur_us);
        }
        self.max_end_ns = self.max_end_ns.max(end);
    }

    /// Adds one point of an application queue-depth gauge (e.g.
    /// `http.server.active_requests`) for `service` at `t_ns`. Used when the queue
    /// source is [`QueueSource::AppMetric`].
    pub fn push_gauge(&mut self, service: &str, t_ns: u64, value: f64) {
        self.stats.gauge_points += 1;
        if !value.is_finite() {
            return;
        }
        let t = self.tick_of(t_ns);
        let base = self.ensure_open(t, t);
        if t < base {
            self.stats.late_gauge_points += 1;
            return;
        }
        let sid = self.service_id(service);
        let slots = self.cfg.sub_slots;
        let acc = Self::svc_acc(&mut self.open[(t - base) as usize], sid, slots);
        acc.gauge_sum += value;
        acc.gauge_n += 1;
        acc.gauge_max = if acc.gauge_n == 1 {
            value
        } else {
            acc.gauge_max.max(value)
        };
        self.max_end_ns = self.max_end_ns.max(t_ns);
    }

    /// Finalises the ticks that end at or before `max end seen − lateness`.
    pub fn drain_ready(&mut self) -> Vec<Tick> {
        let wm = self.max_end_ns.saturating_sub(self.cfg.lateness_ns);
        self.drain_until(wm)
    }

    /// Finalises every open tick that ends at or before `watermark_ns`.
    pub fn drain_until(&mut self, watermark_ns: u64) -> Vec<Tick> {
        let mut out = Vec::new();
        while let Some(base) = self.base {
            let tick_end = (base as u64 + 1) * self.cfg.interval_ns;
            if tick_end > watermark_ns || self.open.is_empty() {
                break;
            }
            out.push(self.finalise_front());
        }
        out
    }

    /// Finalises every open tick (end of input).
    pub fn finish(&mut self) -> Vec<Tick> {
        let mut out = Vec::new();
        while !self.open.is_empty() {
            out.push(self.finalise_front());
        }
        out
    }

    fn finalise_front(&mut self) -> Tick {
        let base = self.base.unwrap_or(0);
        let mut t = self.open.pop_front().unwrap_or_default();
        self.base = Some(base + 1);
        self.sealed = true;
        self.stats.ticks += 1;
        let iv = self.cfg.interval_ns as f64;
        let use_gauge = matches!(self.cfg.queue_source, QueueSource::AppMetric(_));
        // Network time is known once calls have been paired; before that it is not.
        let hop_known = self.stats.calls_paired > 0;
        let mut services = vec![
            ServiceTick {
                hop_mean: if hop_known { 0.0 } else { f32::NAN },
                ..ServiceTick::default()
            };
            self.services.len()
        ];
        for (i, acc) in t.svc.iter_mut().enumerate() {
            let s = &mut services[i];
            s.queue_mean = (acc.busy_ns as f64 / iv) as f32;
            let mut run = 0i32;
            let mut peak = 0i32;
            for d in &acc.slots {
                run += d;
                peak = peak.max(run);
            }
            s.queue_max = acc.full + peak.max(0) as u32;
            s.arrivals = acc.arrivals;
            s.completions = acc.completions;
            s.errors = acc.errors;
            if hop_known {
                s.hop_mean = (acc.hop_ns as f64 / iv) as f32;
            }
            [s.p50_ms, s.p95_ms, s.p99_ms] = acc.lat.quantiles_ms([0.5, 0.95, 0.99]);
        }
        if use_gauge {
            // A gauge is a state: with no point in a tick, it keeps its last value.
            for (i, s) in services.iter_mut().enumerate() {
                match t.svc.get(i).filter(|a| a.gauge_n > 0) {
                    Some(a) => {
                        s.queue_mean = (a.gauge_sum / a.gauge_n as f64) as f32;
                        s.queue_max = a.gauge_max.max(0.0).round() as u32;
                        self.last_gauge[i] = s.queue_mean as f64;
                    }
                    None => {
                        s.queue_mean = self.last_gauge[i] as f32;
                        s.queue_max = self.last_gauge[i].max(0.0).round() as u32;
                    }
                }
            }
        }
        let mut entries = vec![EntryTick::default(); self.entries.len()];
        for (i, e) in t.ent.iter_mut().enumerate() {
            entries[i] = EntryTick {
                requests: e.requests,
                errors: e.errors,
                p99_ms: e.lat.quantiles_ms([0.99])[0],
                p99_window_ms: f32::NAN,
            };
        }
        // Slide every entry's QoS window by this tick.
        let k = self.cfg.qos_window_ticks.max(1);
        while self.windows.len() < self.entries.len() {
            self.windows.push(EntWindow {
                ticks: VecDeque::with_capacity(k + 1),
                sum: window_histogram(),
                span: QosSpan::default(),
                spare: None,
            });
        }
        for (i, w) in self.windows.iter_mut().enumerate() {
            let mut h = w.spare.take().unwrap_or_else(window_histogram);
            if let Some(e) = t.ent.get(i) {
                e.lat.add_to(&mut h);
            }
            // Same bounds throughout: adding and subtracting ticks cannot fail.
            let _ = w.sum.add(&h);
            let leave = w.span.push(h.len(), k, self.cfg.qos_min_requests);
            w.ticks.push_back(h);
            for _ in 0..leave {
                if let Some(mut old) = w.ticks.pop_front() {
                    let _ = w.sum.subtract(&old);
                    old.reset();
                    w.spare = Some(old);
                }
            }
            if !w.sum.is_empty() {
                entries[i].p99_window_ms = w.sum.value_at_quantile(0.99) as f32 / 1000.0;
            }
        }
        // Recycle the tick's allocations.
        for acc in &mut t.svc {
            let slots = std::mem::take(&mut acc.slots);
            let mut lat = std::mem::take(&mut acc.lat);
            lat.clear();
            *acc = SvcAcc {
                slots,
                lat,
                ..SvcAcc::default()
            };
            acc.slots.iter_mut().for_each(|x| *x = 0);
        }
        for e in &mut t.ent {
            let mut lat = std::mem::take(&mut e.lat);
            lat.clear();
            *e = EntAcc {
                lat,
                ..EntAcc::default()
            };
        }
        self.spare.push(t);
        Tick {
            index: base,
            start_ns: base as u64 * self.cfg.interval_ns,
            services,
            entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::SpanKind;

    const MS: u64 = 1_000_000;

    fn span(id: u64, parent: Option<u64>, svc: &str, start_ms: u64, end_ms: u64) -> Span {
        Span {
            trace_id: 1,
            span_id: id,
            parent_id: parent,
            service: svc.into(),
            operation: format!("{svc}-op"),
            kind: SpanKind::Server,
            start_ns: 1_000_000 * MS + start_ms * MS,
            end_ns: 1_000_000 * MS + end_ms * MS,
            status: SpanStatus::Ok,
        }
    }

    fn agg() -> Aggregator {
        Aggregator::new(AggregatorConfig {
            lateness_ns: 1_000 * MS,
            ..Default::default()
        })
    }

    #[test]
    fn queue_mean_is_time_weighted_and_max_counts_overlap() {
        let mut a = agg();
        // Tick 0: a span over the whole tick, one over its first half, one over its last 10 ms.
        a.push(&span(1, None, "a", 0, 100));
        a.push(&span(2, Some(1), "a", 0, 50));
        a.push(&span(3, Some(1), "a", 90, 100));
        let ticks = a.finish();
        assert_eq!(ticks.len(), 1);
        let s = ticks[0].services[0];
        assert!((s.queue_mean - 1.6).abs() < 1e-6, "{}", s.queue_mean);
        assert_eq!(s.queue_max, 2);
        assert_eq!((s.arrivals, s.completions), (3, 3));
        assert_eq!(ticks[0].entries[0].requests, 1);
        assert_eq!(ticks[0].entries[0].p99_ms, 100.0);
    }

    #[test]
    fn long_span_covers_every_tick_and_gaps_are_emitted() {
        let mut a = agg();
        a.push(&span(1, None, "a", 50, 450));
        a.push(&span(2, None, "b", 850, 860));
        let ticks = a.finish();
        assert_eq!(ticks.len(), 9);
        let q: Vec<f32> = ticks.iter().map(|t| t.services[0].queue_mean).collect();
        assert_eq!(q[..6], [0.5, 1.0, 1.0, 1.0, 0.5, 0.0]);
        assert_eq!(ticks[0].services[0].arrivals, 1);
        assert_eq!(ticks[4].services[0].completions, 1);
        assert_eq!(ticks[5].services.len(), 2, "b is registered by then");
        assert!(ticks[5].services[1].completions == 0 && ticks[8].services[1].completions == 1);
    }

    #[test]
    fn client_spans_do_not_count_in_queue() {
        let mut a = agg();
        let mut c = span(2, Some(1), "a", 0, 50);
        c.kind = SpanKind::Client;
        a.push(&c);
        a.push(&span(1, None, "a", 0, 100));
        let t = a.finish();
        assert_eq!(t[0].services[0].queue_mean, 1.0);
    }

    #[test]
    fn late_spans_are_counted_not_dropped_silently() {
        let mut a = Aggregator::new(AggregatorConfig {
            lateness_ns: 200 * MS,
            ..Default::default()
        });
        a.push(&span(1, None, "a", 0, 10));
        a.push(&span(2, None, "a", 1000, 1010));
        let first = a.drain_ready();
        assert_eq!(first.len(), 8, "ticks 0..8 end by 1010-200 ms");
        a.push(&span(3, None, "a", 20, 30));
        assert_eq!(a.stats().late_spans, 1);
        a.push(&span(4, None, "a", 700, 950));
        assert_eq!(a.stats().clipped_spans, 1);
        let rest = a.finish();
        assert_eq!(
            rest[0].index,
            first.last().map(|t| t.index + 1).unwrap_or(0)
        );
        assert_eq!(
            rest[1].services[0].queue_mean, 0.5,
            "950 ms end half-covers tick 9"
        );
    }

    #[test]
    fn out_of_order_before_first_finalisation_extends_backwards() {
        let mut a = agg();
        a.push(&span(1, None, "a", 500, 510));
        a.push(&span(2, None, "a", 0, 10));
        let t = a.finish();
        assert_eq!(t.len(), 6);
        assert_eq!(t[0].services[0].completions, 1);
        assert_eq!(a.stats().late_spans, 0);
    }

    #[test]
    fn gauges_give_queue_when_configured() {
        let mut a = Aggregator::new(AggregatorConfig {
            queue_source: QueueSource::AppMetric("http.server.active_requests".into()),
            ..Default::default()
        });
        let t0 = 1_000_000 * MS;
        a.push_gauge("a", t0 + 10 * MS, 4.0);
        a.push_gauge("a", t0 + 60 * MS, 6.0);
        a.push_gauge("a", t0 + 250 * MS, 1.0);
        let t = a.finish();
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].services[0].queue_mean, t[0].services[0].queue_max),
            (5.0, 6)
        );
        assert_eq!(t[1].services[0].queue_mean, 5.0, "carried forward");
        assert_eq!(t[2].services[0].queue_mean, 1.0);
    }

    #[test]
    fn memory_is_bounded_by_open_ticks() {
        let mut a = Aggregator::new(AggregatorConfig {
            lateness_ns: 500 * MS,
            ..Default::default()
        });
        let mut n = 0;
        for i in 0..20_000u64 {
            a.push(&span(i + 1, None, "a", i * 10, i * 10 + 5));
            n += a.drain_ready().len();
            assert!(a.open_ticks() <= 7, "open {}", a.open_ticks());
        }
        n += a.finish().len();
        assert_eq!(n, 2000);
    }

    fn client(id: u64, parent: u64, svc: &str, start_ms: u64, end_ms: u64) -> Span {
        Span {
            kind: SpanKind::Client,
            ..span(id, Some(parent), svc, start_ms, end_ms)
        }
    }

    #[test]
    fn network_time_is_charged_to_the_callee_in_either_arrival_order() {
        let mut a = agg();
        a.push(&span(1, None, "front", 0, 300));
        // front calls db twice: 10 ms on the wire around 60 ms of work (client
        // half first, ending in tick 2), then 40 ms around 20 ms (server half first).
        a.push(&client(4, 1, "front", 140, 210));
        a.push(&span(5, Some(4), "db", 145, 205));
        a.push(&span(3, Some(2), "db", 30, 50));
        a.push(&client(2, 1, "front", 10, 70));
        // A call that timed out has no server half; a server span whose parent is
        // no client span pairs with nothing.
        a.push(&client(6, 1, "front", 100, 150));
        a.push(&span(7, Some(1), "cache", 100, 120));
        let ticks = a.finish();
        let hop = |t: usize, svc: &str| {
            let i = a.services().iter().position(|s| s == svc).unwrap();
            ticks[t].services[i].hop_mean
        };
        // 40 ms of network time over a 100 ms tick: 0.4 calls in the network.
        assert!((hop(0, "db") - 0.4).abs() < 1e-6, "{}", hop(0, "db"));
        assert_eq!(hop(1, "db"), 0.0);
        assert!((hop(2, "db") - 0.1).abs() < 1e-6, "{}", hop(2, "db"));
        for t in 0..3 {
            assert_eq!((hop(t, "front"), hop(t, "cache")), (0.0, 0.0));
        }
        assert_eq!(a.stats().calls_paired, 2);
        // The client spans do not count in the caller's queue.
        assert!((ticks[0].services[0].queue_mean - 1.0).abs() < 1e-6);
    }

    #[test]
    fn network_time_is_unknown_without_client_spans_and_never_negative() {
        let mut a = agg();
        a.push(&span(1, None, "front", 0, 100));
        a.push(&span(2, Some(1), "db", 10, 50));
        let ticks = a.finish();
        assert!(ticks[0].services.iter().all(|s| s.hop_mean.is_nan()));
        // Clocks that disagree (the server half longer than the client's) give 0.
        // Server halves wait for their client half only once client spans have been
        // seen: the first call here, its server half first, stays unpaired.
        let mut a = agg();
        a.push(&span(1, None, "front", 0, 100));
        a.push(&span(5, Some(4), "db", 5, 8));
        a.push(&client(4, 1, "front", 1, 9));
        a.push(&client(2, 1, "front", 20, 50));
        a.push(&span(3, Some(2), "db", 10, 60));
        let ticks = a.finish();
        assert!(ticks[0].services.iter().all(|s| s.hop_mean == 0.0));
        assert_eq!(a.stats().calls_paired, 1);
    }
}
