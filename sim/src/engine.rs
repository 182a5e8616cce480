//! The discrete-event engine: stations, requests, events, and the control API.
//!
//! # Model
//!
//! Each service has instances (stations); each station has `workers` and one FIFO
//! queue. A call reaches the callee after the hop latency and goes to the active
//! instance with the fewest requests outstanding. A request waits for a worker,
//! does its own work (sampled from its operation's distribution, times the
//! contention slowdown of [`crate::inject`]), then runs its steps; it keeps its
//! worker until its last synchronous call has returned, then replies (one more hop).
//! The server span of a request lasts from its arrival at the callee to its reply,
//! so the number of server spans outstanding is the service's queue depth (waiting
//! plus in service), as Seer measures it.
//!
//! # Invariants
//!
//! - Events are processed in `(time, sequence)` order; the sequence number breaks
//!   ties in insertion order, so a run is a pure function of its configuration, its
//!   seed and the actions applied (and when).
//! - Spans are emitted when they end, so end times never decrease.
//! - Request slots are recycled: memory is bounded by the number of requests in
//!   flight, not by simulated time.

use crate::inject::{Fault, Injection, LOAD_FACTOR, SLOWDOWN};
use crate::load::{Arrivals, LoadShape};
use crate::monitor::{Monitor, TickSnapshot};
use crate::rng::SimRng;
use crate::sink::{SimSpan, SpanSink};
use crate::topology::Topology;
use seer_traces::{Culprit, SpanKind};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

const NONE: u32 = u32::MAX;

/// Errors configuring or controlling a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An action or query names a service the topology does not have.
    #[error("unknown service {service:?} in topology {topology}")]
    UnknownService {
        /// The name.
        service: String,
        /// The topology.
        topology: String,
    },
    /// An action's value is out of range.
    #[error("invalid action on {service:?}: {message}")]
    BadAction {
        /// The service.
        service: String,
        /// What is wrong, with the value.
        message: String,
    },
    /// A configuration value is out of range.
    #[error("invalid simulation config: {0}")]
    BadConfig(String),
    /// An injection is invalid.
    #[error(transparent)]
    Inject(#[from] crate::inject::InjectError),
}

/// Delays of the simulated actuators.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ControlConfig {
    /// Delay between an action and its effect, ns (resizing, partitioning:
    /// cgroups, resctrl and qdisc writes take tens of ms; default 50 ms).
    pub actuation_delay_ns: u64,
    /// Start-up time of a new replica, ns (default 5 s).
    pub scale_out_delay_ns: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self {
            actuation_delay_ns: 50_000_000,
            scale_out_delay_ns: 5_000_000_000,
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The application.
    pub topology: Topology,
    /// Arrival rate over time.
    pub load: LoadShape,
    /// Length of the run, ns.
    pub duration_ns: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Wall-clock time of the start of the run, ns since the Unix epoch (span times
    /// are `epoch_ns + simulated time`).
    pub epoch_ns: u64,
    /// Contention and faults, with ground truth.
    pub injections: Vec<Injection>,
    /// Actuator delays.
    pub control: ControlConfig,
    /// Also emit the caller's `Client` span of every call (doubles the spans).
    pub client_spans: bool,
    /// Interval of the built-in monitor's ticks, ns (default 100 ms).
    pub tick_ns: u64,
    /// Completions the QoS window stretches back to hold, in the monitor and in
    /// datasets ([`seer_traces::tick::QosSpan`]; default 0: the window is 1 s).
    pub qos_min_requests: u64,
}

/// Default epoch: 2026-01-01T00:00:00Z.
pub const DEFAULT_EPOCH_NS: u64 = 1_767_225_600_000_000_000;

impl SimConfig {
    /// A run of `topology` under `load` for `duration_ns`, seed 0, no injections.
    pub fn new(topology: Topology, load: LoadShape, duration_ns: u64) -> Self {
        Self {
            topology,
            load,
            duration_ns,
            seed: 0,
            epoch_ns: DEFAULT_EPOCH_NS,
            injections: Vec::new(),
            control: ControlConfig::default(),
            client_spans: false,
            tick_ns: seer_traces::tick::DEFAULT_INTERVAL_NS,
            qos_min_requests: 0,
        }
    }

    /// The ground truth of the configured injections.
    pub fn culprits(&self) -> Vec<Culprit> {
        self.injections
            .iter()
            .map(|i| i.culprit(self.epoch_ns))
            .collect()
    }
}

/// An action of the simulated actuators (see [`Sim::apply`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Worker threads per instance (`set_workers`): more concurrency; does not
    /// remove contention.
    SetWorkers {
        /// Service.
        service: String,
        /// Workers per instance, ≥ 1.
        workers: u32,
    },
    /// Exclusive CPU share (cpuset / `cpu.weight`): removes that share of CPU
    /// contention (`m_cpu = share`).
    SetCpuShare {
        /// Service.
        service: String,
        /// In `[0, 1]`.
        share: f64,
    },
    /// Dedicated LLC ways (resctrl CAT): removes `min(1, ways / 4)` of LLC
    /// contention (4 of the 11 ways hold a service's working set).
    SetCacheWays {
        /// Service.
        service: String,
        /// Ways, `0..=11`.
        ways: u32,
    },
    /// Memory-bandwidth partition (resctrl MBA on the neighbours): removes `share`
    /// of memory-bandwidth contention.
    SetMemBw {
        /// Service.
        service: String,
        /// In `[0, 1]`.
        share: f64,
    },
    /// Guaranteed network rate (HTB class on the service's link): removes
    /// `min(1, mbit / 1000)` of network contention.
    SetNetRate {
        /// Service.
        service: String,
        /// Mbit/s, ≥ 0.
        mbit: f64,
    },
    /// Disk I/O weight: removes `share` of disk contention.
    SetDiskShare {
        /// Service.
        service: String,
        /// In `[0, 1]`.
        share: f64,
    },
    /// Memory limit raised / page cache protected: removes `share` of memory
    /// capacity pressure.
    SetMemCap {
        /// Service.
        service: String,
        /// In `[0, 1]`.
        share: f64,
    },
    /// Number of instances: new ones start after the scale-out delay (injections
    /// on one instance do not follow to new ones); removed ones stop taking
    /// requests at once and drain.
    ScaleOut {
        /// Service.
        service: String,
        /// Instances, ≥ 1.
        replicas: u32,
    },
    /// Back to the topology's workers and instances and no isolation.
    Revert {
        /// Service.
        service: String,
    },
}

/// Ways of the simulated LLC.
pub const LLC_WAYS: u32 = 11;
/// Ways that fully isolate a service.
pub const LLC_WAYS_FULL: u32 = 4;
/// Guaranteed Mbit/s that fully isolate a service's link.
pub const NET_FULL_MBIT: f64 = 1000.0;

impl Action {
    /// The service acted on.
    pub fn service(&self) -> &str {
        match self {
            Action::SetWorkers { service, .. }
            | Action::SetCpuShare { service, .. }
            | Action::SetCacheWays { service, .. }
            | Action::SetMemBw { service, .. }
            | Action::SetNetRate { service, .. }
            | Action::SetDiskShare { service, .. }
            | Action::SetMemCap { service, .. }
            | Action::ScaleOut { service, .. }
            | Action::Revert { service } => service,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Resolved {
    Workers(u32),
    /// (resource index in SENSITIVE, isolation share)
    Isolate(usize, f64),
    Replicas(u32),
    Revert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EvKind {
    Arrival,
    External(u32),
    CallArrive(u32),
    WorkDone(u32),
    Reply(u32),
    Apply(u32),
    /// (child slot, child generation)
    Timeout(u32, u32),
    /// A request whose deadline passed before a worker started it.
    Expire(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ev {
    t: u64,
    seq: u64,
    kind: EvKind,
}

impl Ord for Ev {
    fn cmp(&self, o: &Self) -> Ordering {
        // Min-heap on (t, seq).
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

const F_LOCK: u8 = 1;
const F_CYCLE: u8 = 2;
const F_CYCLE_DONE: u8 = 4;
const F_CHILD_ERR: u8 = 8;
const F_ERROR: u8 = 16;
const F_EXTERNAL: u8 = 32;
/// The reply event has been delivered (set just before `child_done`).
const F_REPLIED: u8 = 64;
/// Sent asynchronously (through a message queue).
const F_ASYNC: u8 = 128;

#[derive(Debug, Clone, Copy, Default)]
struct Req {
    /// Bumped when the slot is released, so that stale timeouts are recognised.
    generation: u32,
    op: u32,
    station: u32,
    parent: u32,
    api: u32,
    trace: u64,
    span_id: u64,
    parent_span: u64,
    sent_ns: u64,
    start_ns: u64,
    /// When the callee replied (its server span ended), ns.
    replied_ns: u64,
    /// Absolute deadline, ns (0: none).
    deadline_ns: u64,
    pending: u32,
    step: u16,
    attempt: u8,
    flags: u8,
}

#[derive(Debug, Clone, Default)]
struct Station {
    service: u32,
    instance: u32,
    active: bool,
    busy: u32,
    outstanding: u32,
    queue: VecDeque<u32>,
    lock_busy: bool,
    lock_queue: VecDeque<u32>,
}

#[derive(Debug, Clone)]
struct SvcState {
    workers: u32,
    iso: [f64; 6],
    /// Active stations, in instance order.
    active: Vec<u32>,
    /// All stations ever created, by instance.
    all: Vec<u32>,
    /// Replicas wanted (set by scale-out before new ones are up).
    target_replicas: u32,
    /// Injections on this service (indices), and cycle injections where it is the peer.
    injections: Vec<u32>,
    peer_of: Vec<u32>,
    frontend: bool,
}

/// Totals of a run so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct RunStats {
    /// Requests that arrived at an entry point.
    pub requests: u64,
    /// Of which completed.
    pub completed: u64,
    /// Completed with an error.
    pub failed: u64,
    /// Server (and consumer) spans completed: the RPCs simulated.
    pub rpcs: u64,
    /// Spans emitted (client spans included).
    pub spans: u64,
    /// Server spans with an error status (failed attempts, retried or not).
    pub error_spans: u64,
    /// Events processed.
    pub events: u64,
    /// Actions applied.
    pub actions: u64,
    /// Synchronous calls that timed out.
    pub timeouts: u64,
    /// Requests failed unstarted because their deadline had passed.
    pub expired: u64,
}

/// A simulation in progress. Create with [`Sim::new`], then [`Sim::run`] to the
/// end or [`Sim::run_until`] step by step, acting in between.
#[derive(Debug)]
pub struct Sim {
    topo: Topology,
    epoch_ns: u64,
    duration_ns: u64,
    control: ControlConfig,
    client_spans: bool,
    seed_hash: u64,
    now: u64,
    seq: u64,
    heap: BinaryHeap<Ev>,
    rng: SimRng,
    arrival_rng: SimRng,
    arrivals: Arrivals,
    api_cdf: Vec<f64>,
    reqs: Vec<Req>,
    free: Vec<u32>,
    stations: Vec<Station>,
    svc: Vec<SvcState>,
    injections: Vec<Injection>,
    inj_service: Vec<u32>,
    inj_peer: Vec<u32>,
    /// Load injections on front ends not yet over.
    frontend_load: Vec<u32>,
    actions: Vec<Option<(u32, Resolved)>>,
    free_actions: Vec<u32>,
    next_span: u64,
    next_trace: u64,
    monitor: Monitor,
    stats: RunStats,
}

impl Sim {
    /// A simulation at time 0, nothing in flight.
    pub fn new(cfg: SimConfig) -> Result<Self, SimError> {
        if cfg.tick_ns == 0 {
            return Err(SimError::BadConfig("tick_ns must be positive".into()));
        }
        let rate_ok = |r: f64| r.is_finite() && r >= 0.0;
        if !rate_ok(cfg.load.max_rate()) {
            return Err(SimError::BadConfig(format!(
                "load rate {} is not a rate",
                cfg.load.max_rate()
            )));
        }
        let topo = cfg.topology;
        let frontends = topo.frontends();
        let mut stations = Vec::new();
        let mut svc = Vec::with_capacity(topo.services.len());
        for (sid, s) in topo.services.iter().enumerate() {
            let mut all = Vec::new();
            for i in 0..s.replicas {
                all.push(stations.len() as u32);
                stations.push(Station {
                    service: sid as u32,
                    instance: i,
                    active: true,
                    ..Default::default()
                });
            }
            svc.push(SvcState {
                workers: s.workers,
                iso: [0.0; 6],
                active: all.clone(),
                all,
                target_replicas: s.replicas,
                injections: Vec::new(),
                peer_of: Vec::new(),
                frontend: frontends.contains(&sid),
            });
        }
        let mut cum = 0.0;
        let api_cdf = topo
            .apis
            .iter()
            .map(|a| {
                cum += a.share;
                cum
            })
            .collect();
        let seed_hash = SimRng::new(cfg.seed, 0x5eed).next_u64() | 1;
        let mut monitor = Monitor::new(
            topo.services.len(),
            topo.apis.len(),
            cfg.tick_ns,
            cfg.epoch_ns,
        );
        monitor.set_qos_min_requests(cfg.qos_min_requests);
        let mut sim = Sim {
            epoch_ns: cfg.epoch_ns,
            duration_ns: cfg.duration_ns,
            control: cfg.control,
            client_spans: cfg.client_spans,
            seed_hash,
            now: 0,
            seq: 0,
            heap: BinaryHeap::new(),
            rng: SimRng::new(cfg.seed, 1),
            arrival_rng: SimRng::new(cfg.seed, 2),
            arrivals: Arrivals::new(cfg.load, 1.0),
            api_cdf,
            reqs: Vec::new(),
            free: Vec::new(),
            stations,
            svc,
            injections: Vec::new(),
            inj_service: Vec::new(),
            inj_peer: Vec::new(),
            frontend_load: Vec::new(),
            actions: Vec::new(),
            free_actions: Vec::new(),
            next_span: 1,
            next_trace: 1,
            monitor,
            stats: RunStats::default(),
            topo,
        };
        for inj in cfg.injections {
            sim.inject(inj)?;
        }
        sim.schedule_arrival(0);
        Ok(sim)
    }

    /// Adds an injection (times relative to the start of the run); it may start in
    /// the past, in which case it acts from now on.
    pub fn inject(&mut self, inj: Injection) -> Result<(), SimError> {
        let idx = self.injections.len();
        inj.validate(idx, &self.topo)?;
        let sid = self.topo.service_id(&inj.service).unwrap_or_default();
        let peer = match &inj.fault {
            Fault::Cycle { peer } => self.topo.service_id(peer).map_or(NONE, |p| p as u32),
            _ => NONE,
        };
        self.svc[sid].injections.push(idx as u32);
        if peer != NONE {
            self.svc[peer as usize].peer_of.push(idx as u32);
        }
        if inj.fault == Fault::Load {
            if self.svc[sid].frontend {
                self.frontend_load.push(idx as u32);
                let max: f64 = 1.0
                    + LOAD_FACTOR
                        * (self
                            .injections
                            .iter()
                            .filter(|i| i.fault == Fault::Load)
                            .map(|i| i.intensity)
                            .sum::<f64>()
                            + inj.intensity);
                self.arrivals = Arrivals::new(self.arrivals.shape().clone(), max);
            } else if inj.intensity > 0.0 {
                let at = inj.start_ns.max(self.now);
                self.push(at, EvKind::External(idx as u32));
            }
        }
        self.injections.push(inj);
        self.inj_service.push(sid as u32);
        self.inj_peer.push(peer);
        Ok(())
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Simulated time, ns since the start of the run.
    pub fn now_ns(&self) -> u64 {
        self.now
    }

    /// Wall-clock time of the start of the run, ns since the epoch.
    pub fn epoch_ns(&self) -> u64 {
        self.epoch_ns
    }

    /// Length of the run, ns.
    pub fn duration_ns(&self) -> u64 {
        self.duration_ns
    }

    /// Totals so far.
    pub fn stats(&self) -> RunStats {
        self.stats
    }

    /// The built-in monitor (cumulative per-service counters and the last tick).
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// Keeps each tick's waiting queue and CPU utilisation per service, for
    /// datasets ([`Monitor::keep_history`]); memory then grows with simulated time.
    pub fn keep_monitor_history(&mut self) {
        self.monitor.keep_history();
    }

    /// The last completed tick of the built-in monitor, if any.
    pub fn latest_tick(&self) -> Option<&TickSnapshot> {
        self.monitor.latest()
    }

    /// Every injection so far.
    pub fn injections(&self) -> &[Injection] {
        &self.injections
    }

    /// Ground truth of every injection so far, in epoch ns.
    pub fn culprits(&self) -> Vec<Culprit> {
        self.injections
            .iter()
            .map(|i| i.culprit(self.epoch_ns))
            .collect()
    }

    /// Requests in flight (slots in use).
    pub fn in_flight(&self) -> usize {
        self.reqs.len() - self.free.len()
    }

    /// Request slots allocated (in use or free): the simulator's memory for
    /// requests, bounded by the most requests ever in flight at once.
    pub fn slots(&self) -> usize {
        self.reqs.len()
    }

    /// Requests outstanding at each instance of service `sid` (waiting or served).
    pub fn outstanding(&self, sid: usize) -> Vec<u32> {
        self.svc[sid]
            .all
            .iter()
            .map(|&s| self.stations[s as usize].outstanding)
            .collect()
    }

    /// Current workers per instance and active instances of service `sid`.
    pub fn capacity(&self, sid: usize) -> (u32, usize) {
        (self.svc[sid].workers, self.svc[sid].active.len())
    }

    /// Current isolation of service `sid`, per resource in
    /// [`crate::topology::SENSITIVE`] order.
    pub fn isolation(&self, sid: usize) -> [f64; 6] {
        self.svc[sid].iso
    }

    fn service_id(&self, name: &str) -> Result<usize, SimError> {
        self.topo
            .service_id(name)
            .ok_or_else(|| SimError::UnknownService {
                service: name.to_string(),
                topology: self.topo.name.clone(),
            })
    }

    /// Applies an action: it takes effect after the actuation delay (scale-out:
    /// new instances after the start-up delay). Actions on a resource that is not
    /// the one contended have no effect on the contention, as in reality.
    pub fn apply(&mut self, action: &Action) -> Result<(), SimError> {
        let sid = self.service_id(action.service())?;
        let bad = |m: String| SimError::BadAction {
            service: action.service().to_string(),
            message: m,
        };
        let share = |v: f64, name: &str| {
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(bad(format!("{name} must be in [0, 1], got {v}")))
            }
        };
        let mut delay = self.control.actuation_delay_ns;
        let r = match *action {
            Action::SetWorkers { workers, .. } => {
                if workers == 0 || workers > 100_000 {
                    return Err(bad(format!("workers must be in 1..=100000, got {workers}")));
                }
                Resolved::Workers(workers)
            }
            Action::SetCpuShare { share: v, .. } => Resolved::Isolate(0, share(v, "share")?),
            Action::SetCacheWays { ways, .. } => {
                if ways > LLC_WAYS {
                    return Err(bad(format!("ways must be in 0..={LLC_WAYS}, got {ways}")));
                }
                Resolved::Isolate(1, (ways as f64 / LLC_WAYS_FULL as f64).min(1.0))
            }
            Action::SetMemBw { share: v, .. } => Resolved::Isolate(2, share(v, "share")?),
            Action::SetMemCap { share: v, .. } => Resolved::Isolate(3, share(v, "share")?),
            Action::SetNetRate { mbit, .. } => {
                if !(mbit.is_finite() && mbit >= 0.0) {
                    return Err(bad(format!(
                        "mbit must be a non-negative number, got {mbit}"
                    )));
                }
                Resolved::Isolate(4, (mbit / NET_FULL_MBIT).min(1.0))
            }
            Action::SetDiskShare { share: v, .. } => Resolved::Isolate(5, share(v, "share")?),
            Action::ScaleOut { replicas, .. } => {
                if replicas == 0 || replicas > 10_000 {
                    return Err(bad(format!(
                        "replicas must be in 1..=10000, got {replicas}"
                    )));
                }
                let cur = self.svc[sid].target_replicas;
                self.svc[sid].target_replicas = replicas;
                if replicas > cur {
                    delay = self.control.scale_out_delay_ns;
                }
                Resolved::Replicas(replicas)
            }
            Action::Revert { .. } => {
                self.svc[sid].target_replicas = self.topo.services[sid].replicas;
                Resolved::Revert
            }
        };
        let idx = match self.free_actions.pop() {
            Some(i) => {
                self.actions[i as usize] = Some((sid as u32, r));
                i
            }
            None => {
                self.actions.push(Some((sid as u32, r)));
                (self.actions.len() - 1) as u32
            }
        };
        self.push(self.now + delay, EvKind::Apply(idx));
        Ok(())
    }

    /// Shorthand for [`Action::SetWorkers`].
    pub fn set_workers(&mut self, service: &str, workers: u32) -> Result<(), SimError> {
        self.apply(&Action::SetWorkers {
            service: service.into(),
            workers,
        })
    }

    /// Shorthand for [`Action::SetCpuShare`].
    pub fn set_cpu_share(&mut self, service: &str, share: f64) -> Result<(), SimError> {
        self.apply(&Action::SetCpuShare {
            service: service.into(),
            share,
        })
    }

    /// Shorthand for [`Action::SetCacheWays`].
    pub fn set_cache_ways(&mut self, service: &str, ways: u32) -> Result<(), SimError> {
        self.apply(&Action::SetCacheWays {
            service: service.into(),
            ways,
        })
    }

    /// Shorthand for [`Action::SetMemBw`].
    pub fn set_mem_bw(&mut self, service: &str, share: f64) -> Result<(), SimError> {
        self.apply(&Action::SetMemBw {
            service: service.into(),
            share,
        })
    }

    /// Shorthand for [`Action::SetNetRate`].
    pub fn set_net_rate(&mut self, service: &str, mbit: f64) -> Result<(), SimError> {
        self.apply(&Action::SetNetRate {
            service: service.into(),
            mbit,
        })
    }

    /// Shorthand for [`Action::ScaleOut`].
    pub fn scale_out(&mut self, service: &str, replicas: u32) -> Result<(), SimError> {
        self.apply(&Action::ScaleOut {
            service: service.into(),
            replicas,
        })
    }

    /// Shorthand for [`Action::Revert`].
    pub fn revert(&mut self, service: &str) -> Result<(), SimError> {
        self.apply(&Action::Revert {
            service: service.into(),
        })
    }

    /// Runs to the end of the run (the configured duration); requests still in
    /// flight then are dropped.
    pub fn run<S: SpanSink + ?Sized>(&mut self, sink: &mut S) {
        self.run_until(self.duration_ns, sink);
    }

    /// Processes every event up to and including `t_ns` (ns since the start of the
    /// run), then sets the clock to `t_ns`. Monitor ticks that end by `t_ns` are
    /// closed, so after `run_until(k * tick)` [`Sim::latest_tick`] is tick `k-1`.
    pub fn run_until<S: SpanSink + ?Sized>(&mut self, t_ns: u64, sink: &mut S) {
        while let Some(ev) = self.heap.peek() {
            if ev.t > t_ns {
                break;
            }
            let Some(ev) = self.heap.pop() else { break };
            self.now = ev.t;
            if ev.t >= self.monitor.next_boundary() {
                self.roll_monitor(ev.t);
                self.prune_injections();
            }
            self.stats.events += 1;
            match ev.kind {
                EvKind::Arrival => self.on_arrival(),
                EvKind::External(i) => self.on_external(i),
                EvKind::CallArrive(r) => self.on_call_arrive(r),
                EvKind::WorkDone(r) => self.on_work_done(r, sink),
                EvKind::Reply(r) => self.on_reply(r, sink),
                EvKind::Apply(a) => self.on_apply(a),
                EvKind::Timeout(r, g) => self.on_timeout(r, g, sink),
                EvKind::Expire(r) => {
                    self.stats.expired += 1;
                    self.finish(r, true, sink);
                }
            }
        }
        if t_ns > self.now {
            self.now = t_ns;
        }
        if self.now >= self.monitor.next_boundary() {
            self.roll_monitor(self.now);
        }
    }

    /// Closes the monitor's ticks up to `t`, with the current worker capacity of
    /// every service as the utilisation denominator.
    fn roll_monitor(&mut self, t: u64) {
        for (sid, s) in self.svc.iter().enumerate() {
            self.monitor
                .set_capacity(sid, s.workers * s.active.len() as u32);
        }
        self.monitor.roll_to(t);
    }

    // ---- events -------------------------------------------------------------

    #[inline]
    fn push(&mut self, t: u64, kind: EvKind) {
        self.seq += 1;
        self.heap.push(Ev {
            t,
            seq: self.seq,
            kind,
        });
    }

    fn load_multiplier(injections: &[Injection], frontend_load: &[u32], t: u64) -> f64 {
        let mut m = 1.0;
        for &i in frontend_load {
            m += LOAD_FACTOR * injections[i as usize].intensity_at(t);
        }
        m
    }

    /// Forgets injections that are over, so that per-request work stays
    /// proportional to the injections active now, not to all of a long campaign.
    fn prune_injections(&mut self) {
        let (now, inj) = (self.now, &self.injections);
        let live = |i: &u32| inj[*i as usize].end_ns() > now;
        for s in &mut self.svc {
            s.injections.retain(live);
            s.peer_of.retain(live);
        }
        self.frontend_load.retain(live);
    }

    fn schedule_arrival(&mut self, from: u64) {
        let (inj, fl) = (&self.injections, &self.frontend_load);
        let next = self
            .arrivals
            .next(from, self.duration_ns, &mut self.arrival_rng, |t| {
                Self::load_multiplier(inj, fl, t)
            });
        if let Some(t) = next {
            self.push(t, EvKind::Arrival);
        }
    }

    fn on_arrival(&mut self) {
        let u = self.arrival_rng.uniform();
        let api = self
            .api_cdf
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.api_cdf.len() - 1);
        let trace = self.next_trace;
        self.next_trace += 1;
        self.stats.requests += 1;
        let op = self.topo.apis[api].op;
        let r = self.alloc(Req {
            op,
            station: NONE,
            parent: NONE,
            api: api as u32,
            trace,
            span_id: 0,
            parent_span: 0,
            sent_ns: self.now,
            deadline_ns: self.deadline_from(self.now),
            ..Default::default()
        });
        // The client is outside the application: the request is at the front end now.
        self.on_call_arrive(r);
        self.schedule_arrival(self.now);
    }

    fn on_external(&mut self, idx: u32) {
        let inj = &self.injections[idx as usize];
        let sid = self.inj_service[idx as usize] as usize;
        let end = inj.end_ns().min(self.duration_ns);
        if self.now >= end {
            return;
        }
        let s = &self.topo.services[sid];
        let op = s.ops[0];
        let mean = self.topo.ops[op as usize].time.mean_ns().max(1.0);
        let cap_per_ns = (self.svc[sid].active.len() as u32 * self.svc[sid].workers) as f64 / mean;
        let envelope = inj.intensity * cap_per_ns;
        let i_now = inj.intensity_at(self.now);
        // This event is a candidate arrival: accept with I(t)/I (thinning).
        if self.now >= inj.start_ns && inj.intensity > 0.0 && self.rng.chance(i_now / inj.intensity)
        {
            let trace = self.next_trace;
            self.next_trace += 1;
            // The external caller's span is not emitted: the request's parent is
            // outside the traced application.
            let parent_span = self.new_span_id();
            let r = self.alloc(Req {
                op,
                station: NONE,
                parent: NONE,
                api: NONE,
                trace,
                parent_span,
                sent_ns: self.now,
                deadline_ns: self.deadline_from(self.now),
                flags: F_EXTERNAL,
                ..Default::default()
            });
            self.on_call_arrive(r);
        }
        if envelope > 0.0 {
            let gap = self.rng.exp(1.0 / envelope).max(1.0) as u64;
            let t = self.now + gap;
            if t < end {
                self.push(t, EvKind::External(idx));
            }
        }
    }

    #[inline]
    fn new_span_id(&mut self) -> u64 {
        let id = self.next_span;
        self.next_span += 1;
        id
    }

    #[inline]
    fn alloc(&mut self, mut r: Req) -> u32 {
        r.span_id = self.new_span_id();
        match self.free.pop() {
            Some(i) => {
                r.generation = self.reqs[i as usize].generation;
                self.reqs[i as usize] = r;
                i
            }
            None => {
                self.reqs.push(r);
                (self.reqs.len() - 1) as u32
            }
        }
    }

    #[inline]
    fn release(&mut self, r: u32) {
        let q = &mut self.reqs[r as usize];
        q.generation = q.generation.wrapping_add(1);
        self.free.push(r);
    }

    /// Hop latency between two services (either may be `NONE` = outside).
    fn hop_ns(&self, a: u32, b: u32) -> u64 {
        let base = self.topo.services[b as usize].hop_latency_ns;
        if base == 0 {
            return 0;
        }
        let mut m = 1.0;
        for s in [a, b] {
            if s == NONE {
                continue;
            }
            let sens = self.topo.services[s as usize].sensitivity.values[4];
            let iso = self.svc[s as usize].iso[4];
            for &i in &self.svc[s as usize].injections {
                let inj = &self.injections[i as usize];
                if inj.fault == Fault::Net {
                    m += SLOWDOWN[4] * sens * inj.intensity_at(self.now) * (1.0 - iso);
                }
            }
        }
        (base as f64 * m) as u64
    }

    fn send_call(&mut self, op: u32, parent: u32, from_service: u32, template: Req) {
        let to = self.topo.ops[op as usize].service;
        // A synchronous call emits a client span, which is the callee's parent.
        let parent_span = if parent != NONE && self.client_spans {
            self.new_span_id()
        } else {
            template.parent_span
        };
        let r = self.alloc(Req {
            op,
            station: NONE,
            parent,
            parent_span,
            sent_ns: self.now,
            ..template
        });
        let lat = self.hop_ns(from_service, to);
        self.push(self.now + lat, EvKind::CallArrive(r));
        if parent != NONE
            && let Some(t) = self.topo.call_timeout_ns
        {
            let g = self.reqs[r as usize].generation;
            self.push(self.now + t, EvKind::Timeout(r, g));
        }
    }

    fn on_call_arrive(&mut self, r: u32) {
        let op = self.reqs[r as usize].op;
        let sid = self.topo.ops[op as usize].service as usize;
        // Least outstanding among active instances; lowest index on ties.
        let st = {
            let act = &self.svc[sid].active;
            let mut best = act[0];
            if act.len() > 1 {
                let mut bo = self.stations[best as usize].outstanding;
                for &s in &act[1..] {
                    let o = self.stations[s as usize].outstanding;
                    if o < bo {
                        best = s;
                        bo = o;
                    }
                }
            }
            best
        };
        let req = &mut self.reqs[r as usize];
        req.station = st;
        req.start_ns = self.now;
        let station = &mut self.stations[st as usize];
        station.outstanding += 1;
        self.monitor.arrive(sid, self.now);
        if station.busy < self.svc[sid].workers {
            self.start_work(r);
        } else {
            station.queue.push_back(r);
        }
    }

    /// Slowdown of own work at a station now.
    fn work_multiplier(&self, sid: usize, instance: u32) -> f64 {
        let mut m = 1.0;
        let st = &self.svc[sid];
        if st.injections.is_empty() {
            return m;
        }
        let sens = &self.topo.services[sid].sensitivity.values;
        for &i in &st.injections {
            let inj = &self.injections[i as usize];
            if inj.instance.is_some_and(|x| x != instance) {
                continue;
            }
            if let Some(k) = inj.fault.contention_index()
                && k != 4
            {
                m += SLOWDOWN[k] * sens[k] * inj.intensity_at(self.now) * (1.0 - st.iso[k]);
            }
        }
        m
    }

    /// Intensity of app faults of `kind` on the station's service/instance now.
    fn app_intensity(&self, sid: usize, instance: u32, pred: impl Fn(&Fault) -> bool) -> f64 {
        let mut x: f64 = 0.0;
        for &i in &self.svc[sid].injections {
            let inj = &self.injections[i as usize];
            if pred(&inj.fault) && inj.instance.is_none_or(|v| v == instance) {
                x = x.max(inj.intensity_at(self.now));
            }
        }
        x
    }

    fn start_work(&mut self, r: u32) {
        let st = self.reqs[r as usize].station;
        let station = &mut self.stations[st as usize];
        station.busy += 1;
        let (sid, inst) = (station.service as usize, station.instance);
        let waited = self.now - self.reqs[r as usize].start_ns;
        self.monitor.start(sid, self.now, waited);
        if self.past_deadline(r) {
            // Nobody waits for the answer any more: fail without the work.
            self.push(self.now, EvKind::Expire(r));
            return;
        }
        if !self.svc[sid].injections.is_empty() {
            let p = self.app_intensity(sid, inst, |f| *f == Fault::Lock);
            if p > 0.0 && self.rng.chance(p) {
                self.reqs[r as usize].flags |= F_LOCK;
                let station = &mut self.stations[st as usize];
                if station.lock_busy {
                    station.lock_queue.push_back(r);
                    return;
                }
                station.lock_busy = true;
            }
        }
        self.schedule_work(r, sid, inst);
    }

    fn schedule_work(&mut self, r: u32, sid: usize, inst: u32) {
        let op = self.reqs[r as usize].op;
        let d =
            self.topo.ops[op as usize].time.sample(&mut self.rng) * self.work_multiplier(sid, inst);
        self.monitor.computing(sid, self.now, true);
        self.push(self.now + d as u64, EvKind::WorkDone(r));
    }

    fn on_work_done<S: SpanSink + ?Sized>(&mut self, r: u32, sink: &mut S) {
        let sid = self.stations[self.reqs[r as usize].station as usize].service as usize;
        self.monitor.computing(sid, self.now, false);
        if self.reqs[r as usize].flags & F_LOCK != 0 {
            self.reqs[r as usize].flags &= !F_LOCK;
            let st = self.reqs[r as usize].station as usize;
            let station = &mut self.stations[st];
            match station.lock_queue.pop_front() {
                Some(next) => {
                    let (sid, inst) = (station.service as usize, station.instance);
                    self.schedule_work(next, sid, inst);
                }
                None => station.lock_busy = false,
            }
        }
        self.reqs[r as usize].step = 0;
        self.run_steps(r, sink);
    }

    fn run_steps<S: SpanSink + ?Sized>(&mut self, r: u32, sink: &mut S) {
        let op = self.reqs[r as usize].op as usize;
        let from = self.topo.ops[op].service;
        let cycle_req = self.reqs[r as usize].flags & F_CYCLE != 0;
        let n_steps = if cycle_req {
            0
        } else {
            self.topo.ops[op].steps.len()
        };
        loop {
            let step = self.reqs[r as usize].step as usize;
            if step >= n_steps {
                if self.maybe_cycle(r, from) {
                    return;
                }
                self.finish(r, false, sink);
                return;
            }
            let child = {
                let q = &self.reqs[r as usize];
                Req {
                    trace: q.trace,
                    parent_span: q.span_id,
                    api: NONE,
                    deadline_ns: q.deadline_ns,
                    ..Default::default()
                }
            };
            let mut pending = 0;
            for ci in 0..self.topo.ops[op].steps[step].len() {
                let c = self.topo.ops[op].steps[step][ci];
                if !self.rng.chance(c.p) {
                    continue;
                }
                for _ in 0..c.count {
                    if c.asynchronous {
                        self.send_call(
                            c.op,
                            NONE,
                            from,
                            // A queued message carries no caller's deadline.
                            Req {
                                flags: F_ASYNC,
                                deadline_ns: 0,
                                ..child
                            },
                        );
                    } else {
                        pending += 1;
                        self.send_call(c.op, r, from, child);
                    }
                }
            }
            if pending > 0 {
                self.reqs[r as usize].pending = pending;
                return;
            }
            self.reqs[r as usize].step += 1;
        }
    }

    /// The cycle fault: after its steps a request on the faulty service (or a
    /// cycle request on its peer) calls the other side with probability `I`.
    fn maybe_cycle(&mut self, r: u32, sid: u32) -> bool {
        let q = self.reqs[r as usize];
        if q.flags & F_CYCLE_DONE != 0 {
            return false;
        }
        let s = &self.svc[sid as usize];
        if s.injections.is_empty() && s.peer_of.is_empty() {
            return false;
        }
        let mut target = None;
        for &i in s.injections.iter() {
            let inj = &self.injections[i as usize];
            if matches!(inj.fault, Fault::Cycle { .. }) {
                let x = inj.intensity_at(self.now);
                if x > 0.0 {
                    target = Some((self.inj_peer[i as usize], x));
                }
            }
        }
        if q.flags & F_CYCLE != 0 {
            for &i in s.peer_of.iter() {
                let x = self.injections[i as usize].intensity_at(self.now);
                if x > 0.0 {
                    target = Some((self.inj_service[i as usize], x));
                }
            }
        }
        let Some((peer, x)) = target else {
            return false;
        };
        self.reqs[r as usize].flags |= F_CYCLE_DONE;
        if !self.rng.chance(x) {
            return false;
        }
        let op = self.topo.services[peer as usize].ops[0];
        let child = Req {
            trace: q.trace,
            parent_span: q.span_id,
            api: NONE,
            flags: F_CYCLE,
            deadline_ns: q.deadline_ns,
            ..Default::default()
        };
        self.reqs[r as usize].pending = 1;
        self.send_call(op, r, sid, child);
        true
    }

    fn emit<S: SpanSink + ?Sized>(&mut self, s: SimSpan, sink: &mut S) {
        self.stats.spans += 1;
        sink.span(&s, &self.topo);
    }

    /// Ends request `r` on its station (`expired`: without its work, past its
    /// deadline): emits its span, frees its worker and replies.
    fn finish<S: SpanSink + ?Sized>(&mut self, r: u32, expired: bool, sink: &mut S) {
        let q = self.reqs[r as usize];
        let st = q.station as usize;
        let (sid, inst) = (
            self.stations[st].service as usize,
            self.stations[st].instance,
        );
        let mut error = expired || q.flags & F_CHILD_ERR != 0;
        // (Drawn for every request that did its work, failed child or not, so
        // that runs without deadlines draw as they always did.)
        if !expired && !self.svc[sid].injections.is_empty() {
            let p = self.app_intensity(sid, inst, |f| *f == Fault::RetryStorm);
            if p > 0.0 && self.rng.chance(p) {
                error = true;
            }
        }
        if error {
            self.reqs[r as usize].flags |= F_ERROR;
        }
        // Only a message taken from a queue (an asynchronous call) is a consumer span.
        let kind = if q.flags & F_ASYNC != 0 {
            SpanKind::Consumer
        } else {
            SpanKind::Server
        };
        let span = SimSpan {
            trace_id: ((self.seed_hash as u128) << 64) | q.trace as u128,
            span_id: q.span_id,
            parent_id: if q.parent_span == 0 {
                None
            } else {
                Some(q.parent_span)
            },
            service: sid as u32,
            instance: inst,
            op: q.op,
            api: if q.api == NONE { None } else { Some(q.api) },
            kind,
            start_ns: self.epoch_ns + q.start_ns,
            end_ns: self.epoch_ns + self.now,
            error,
        };
        self.stats.rpcs += 1;
        if error {
            self.stats.error_spans += 1;
        }
        self.emit(span, sink);
        self.monitor.complete(sid, self.now, self.now - q.start_ns);
        // Free the worker and take the next request.
        let station = &mut self.stations[st];
        station.busy -= 1;
        station.outstanding -= 1;
        self.drain(st);
        if q.parent != NONE {
            let parent_sid = self.topo.ops[self.reqs[q.parent as usize].op as usize].service;
            self.reqs[r as usize].replied_ns = self.now;
            let lat = self.hop_ns(sid as u32, parent_sid);
            self.push(self.now + lat, EvKind::Reply(r));
        } else {
            if q.api != NONE {
                self.stats.completed += 1;
                if error {
                    self.stats.failed += 1;
                }
                self.monitor
                    .request(q.api as usize, self.now - q.start_ns, error);
            }
            self.release(r);
        }
    }

    /// The deadline of a request sent now by a client, 0 when there is none.
    fn deadline_from(&self, now: u64) -> u64 {
        self.topo.deadline_ns.map_or(0, |d| now + d)
    }

    /// Whether request `r`'s deadline has passed.
    fn past_deadline(&self, r: u32) -> bool {
        let d = self.reqs[r as usize].deadline_ns;
        d != 0 && self.now >= d
    }

    /// Starts queued requests while the station has free workers.
    fn drain(&mut self, st: usize) {
        loop {
            let station = &mut self.stations[st];
            if station.busy >= self.svc[station.service as usize].workers {
                return;
            }
            match station.queue.pop_front() {
                Some(next) => self.start_work(next),
                None => return,
            }
        }
    }

    fn on_reply<S: SpanSink + ?Sized>(&mut self, child: u32, sink: &mut S) {
        let c = self.reqs[child as usize];
        if c.parent == NONE {
            // The caller gave up (timeout): nobody waits for this reply.
            self.release(child);
            return;
        }
        let failed = c.flags & F_ERROR != 0;
        self.reqs[child as usize].flags |= F_REPLIED;
        self.child_done(child, failed, sink);
    }

    fn on_timeout<S: SpanSink + ?Sized>(&mut self, child: u32, generation: u32, sink: &mut S) {
        let c = self.reqs[child as usize];
        if c.generation != generation || c.parent == NONE {
            return; // replied already (slot released or reused), or orphaned
        }
        self.stats.timeouts += 1;
        self.child_done(child, true, sink);
    }

    /// A synchronous call is over for its caller: replied (`failed` when the reply
    /// is an error) or timed out. Retries failures, else resumes the caller.
    fn child_done<S: SpanSink + ?Sized>(&mut self, child: u32, failed: bool, sink: &mut S) {
        let c = self.reqs[child as usize];
        let p = c.parent;
        let parent_sid = self.topo.ops[self.reqs[p as usize].op as usize].service;
        if c.flags & F_REPLIED != 0 {
            // Client span minus server span: the call's two hops.
            let server_ns = c.replied_ns - c.start_ns;
            let callee = self.topo.ops[c.op as usize].service as usize;
            self.monitor
                .hop(callee, (self.now - c.sent_ns).saturating_sub(server_ns));
        }
        if self.client_spans {
            let q = self.reqs[p as usize];
            let inst = self.stations[q.station as usize].instance;
            let span = SimSpan {
                trace_id: ((self.seed_hash as u128) << 64) | q.trace as u128,
                span_id: c.parent_span,
                parent_id: Some(q.span_id),
                service: parent_sid,
                instance: inst,
                op: c.op,
                api: None,
                kind: SpanKind::Client,
                start_ns: self.epoch_ns + c.sent_ns,
                end_ns: self.epoch_ns + self.now,
                error: failed,
            };
            self.emit(span, sink);
        }
        if self.reqs[child as usize].flags & F_REPLIED != 0 {
            self.release(child);
        } else {
            // Timed out: the callee carries on and its reply will be dropped.
            self.reqs[child as usize].parent = NONE;
        }
        if failed {
            // No retry once the caller's deadline has passed.
            if c.attempt < self.topo.max_retries && !self.past_deadline(p) {
                let template = Req {
                    trace: c.trace,
                    parent_span: c.parent_span,
                    api: NONE,
                    deadline_ns: c.deadline_ns,
                    attempt: c.attempt + 1,
                    flags: c.flags & F_CYCLE,
                    ..Default::default()
                };
                self.send_call(c.op, p, parent_sid, template);
                return;
            }
            self.reqs[p as usize].flags |= F_CHILD_ERR;
        }
        let q = &mut self.reqs[p as usize];
        q.pending -= 1;
        if q.pending == 0 {
            q.step += 1;
            self.run_steps(p, sink);
        }
    }

    fn on_apply(&mut self, a: u32) {
        let Some((sid, r)) = self.actions[a as usize].take() else {
            return;
        };
        self.free_actions.push(a);
        self.stats.actions += 1;
        let sid = sid as usize;
        match r {
            Resolved::Workers(w) => {
                self.svc[sid].workers = w;
                for st in self.svc[sid].active.clone() {
                    self.drain(st as usize);
                }
            }
            Resolved::Isolate(k, v) => self.svc[sid].iso[k] = v,
            Resolved::Replicas(n) => self.set_replicas(sid, n),
            Resolved::Revert => {
                let s = &self.topo.services[sid];
                let (w, n) = (s.workers, s.replicas);
                self.svc[sid].workers = w;
                self.svc[sid].iso = [0.0; 6];
                self.set_replicas(sid, n);
                for st in self.svc[sid].active.clone() {
                    self.drain(st as usize);
                }
            }
        }
    }

    fn set_replicas(&mut self, sid: usize, n: u32) {
        let n = n as usize;
        while self.svc[sid].all.len() < n {
            let inst = self.svc[sid].all.len() as u32;
            self.svc[sid].all.push(self.stations.len() as u32);
            self.stations.push(Station {
                service: sid as u32,
                instance: inst,
                ..Default::default()
            });
        }
        let all = self.svc[sid].all.clone();
        for (i, &st) in all.iter().enumerate() {
            self.stations[st as usize].active = i < n;
        }
        self.svc[sid].active = all[..n].to_vec();
    }
}
