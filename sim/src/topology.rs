//! Topologies: services, their operations and call trees, and the entry APIs.
//!
//! A topology is written in TOML (see the crate README for a full example) and
//! compiled into [`Topology`], where every name is resolved to an index. Each
//! operation of a service runs its own work (`time`) and then its `steps` in order:
//! the calls of one step run in parallel and the next step starts when all the
//! synchronous ones have returned, as in the DeathStarBench call-tree notation.
//! Asynchronous calls (message queues) are sent and not waited for.
//!
//! ```toml
//! name = "tiny"
//! hop_latency_us = 50
//!
//! [[service]]
//! name = "web"
//! workers = 8
//! profile = "frontend"
//! [service.ops.Get]
//! time = { dist = "exponential", mean_us = 100 }
//! steps = [["db:Find"], [{ to = "log:Append", async = true }]]
//!
//! [[service]]
//! name = "db"
//! workers = 4
//! profile = "database"
//! [service.ops.Find]
//! time = { dist = "lognormal", mean_us = 300, sigma = 0.5 }
//!
//! [[service]]
//! name = "log"
//! workers = 1
//! [service.ops.Append]
//! time = { dist = "constant", us = 20 }
//!
//! [[api]]
//! name = "/get"
//! call = "web:Get"
//! ```

use crate::dist::{Dist, DistSpec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Errors loading or validating a topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("failed to read topology {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML did not parse or did not have the expected shape.
    #[error("failed to parse topology {origin}: {message}")]
    Parse {
        /// File path or built-in name.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// The topology parsed but is inconsistent.
    #[error("invalid topology {origin}: {message}")]
    Invalid {
        /// File path or built-in name.
        origin: String,
        /// What is wrong, naming the service, operation and value.
        message: String,
    },
    /// No built-in topology has this name.
    #[error(
        "unknown built-in topology {0:?} (expected one of social-network, hotel-reservation, media-service, chain, fanout, or a path to a .toml file)"
    )]
    UnknownBuiltin(String),
}

/// A topology file as written (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologyFile {
    /// Name of the application, e.g. `social-network`.
    pub name: String,
    /// Free text: where the call trees come from.
    #[serde(default)]
    pub description: String,
    /// One-way network latency of a hop between two services, µs (default 50).
    #[serde(default = "default_hop_latency_us")]
    pub hop_latency_us: f64,
    /// How many times a caller retries a call that returned an error (default 3).
    /// Errors come from the `retry_storm` fault; retries are what make it a storm.
    #[serde(default = "default_max_retries")]
    pub max_retries: u8,
    /// Timeout of a synchronous call, ms (default: none). A call that has not
    /// replied by then fails for the caller (and is retried like an error reply);
    /// the callee still finishes the work. Without a timeout a synchronous cycle
    /// can deadlock its services, as blocking thread pools do.
    #[serde(default)]
    pub call_timeout_ms: Option<f64>,
    /// Deadline of every request, ms after the client sent it (default: none).
    /// Every synchronous call carries its request's deadline, as gRPC deadlines
    /// are propagated; a call whose deadline has passed when a worker would
    /// start it fails at once (deadline exceeded) instead of doing its work, and
    /// a failed call is not retried past it. Without one, an overload queues
    /// every request and outlives its cause until the queues drain, which at a
    /// load near capacity can take hours.
    #[serde(default)]
    pub deadline_ms: Option<f64>,
    /// The services (`[[service]]` tables).
    #[serde(rename = "service")]
    pub services: Vec<ServiceSpec>,
    /// The entry points and their share of the load (`[[api]]` tables).
    #[serde(rename = "api")]
    pub apis: Vec<ApiSpec>,
}

fn default_hop_latency_us() -> f64 {
    50.0
}
fn default_max_retries() -> u8 {
    3
}
fn one_u32() -> u32 {
    1
}
fn one_f64() -> f64 {
    1.0
}

/// One service (`[[service]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Unique name, as it appears in spans (`service.name`).
    pub name: String,
    /// Number of instances (default 1); calls go to the instance with the fewest
    /// requests outstanding (lowest index on ties).
    #[serde(default = "one_u32")]
    pub replicas: u32,
    /// Worker threads per instance: requests served at once. A request holds its
    /// worker from the start of its work until its last synchronous call returns
    /// (Thrift-style blocking), so a slow callee fills its callers' workers.
    pub workers: u32,
    /// Sensitivity preset (default `logic`): how much each resource's contention
    /// slows this service. See [`Profile`].
    #[serde(default)]
    pub profile: Profile,
    /// Per-resource overrides of the preset, each in `[0, 1]`.
    #[serde(default)]
    pub sensitivity: SensitivitySpec,
    /// One-way latency of hops to this service, µs (default: the topology's).
    #[serde(default)]
    pub hop_latency_us: Option<f64>,
    /// Operations by name (`[service.ops.NAME]` tables); at least one.
    pub ops: BTreeMap<String, OpSpec>,
}

/// One operation of a service (`[service.ops.NAME]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpSpec {
    /// Time of the operation's own work, done before its calls (see [`DistSpec`]).
    pub time: DistSpec,
    /// Calls, step by step: `[["a:X", "b:Y"], ["c:Z"]]` calls `a` and `b` in parallel,
    /// then `c` once both returned.
    #[serde(default)]
    pub steps: Vec<Vec<CallSpec>>,
}

/// A call in a step: `"service:Op"` or a table with options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CallSpec {
    /// `"service:Op"`: one synchronous call, always made.
    Short(String),
    /// `{ to = "service:Op", p = 0.2, count = 3, async = true }`.
    Full {
        /// Target, `"service:Op"`.
        to: String,
        /// Probability that the call is made (default 1), e.g. a cache miss rate.
        #[serde(default = "one_f64")]
        p: f64,
        /// Number of parallel copies of the call (default 1), e.g. one per follower.
        #[serde(default = "one_u32")]
        count: u32,
        /// Sent through a message queue: the caller does not wait (default false).
        #[serde(default, rename = "async")]
        asynchronous: bool,
    },
}

/// An entry point (`[[api]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    /// Name of the entry point; the operation of its root spans, e.g.
    /// `/wrk2-api/home-timeline/read`.
    pub name: String,
    /// Relative share of the arrivals (default 1; normalised over all APIs).
    #[serde(default = "one_f64")]
    pub weight: f64,
    /// The operation the request starts with, `"service:Op"`.
    pub call: String,
}

/// Sensitivity presets: how strongly contention on each resource slows a service.
///
/// | profile | cpu | llc | mem_bw | mem_cap | net | disk |
/// | --- | --- | --- | --- | --- | --- | --- |
/// | `logic` | 0.8 | 0.3 | 0.2 | 0.1 | 0.5 | 0 |
/// | `frontend` | 1.0 | 0.2 | 0.1 | 0.1 | 1.0 | 0 |
/// | `cache` (memcached, redis) | 0.7 | 1.0 | 0.7 | 0.6 | 0.8 | 0 |
/// | `database` (mongodb) | 0.5 | 0.5 | 0.5 | 0.8 | 0.5 | 1.0 |
/// | `queue` (rabbitmq) | 0.6 | 0.3 | 0.3 | 0.4 | 0.8 | 0.6 |
/// | `compute` (media, ML) | 1.0 | 0.6 | 0.8 | 0.3 | 0.3 | 0 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Stateless business logic.
    #[default]
    Logic,
    /// Web front end (nginx): CPU and network bound.
    Frontend,
    /// In-memory cache: cache, memory and network sensitive.
    Cache,
    /// Database with a storage tier: disk and memory sensitive.
    Database,
    /// Message queue.
    Queue,
    /// Compute-heavy service.
    Compute,
}

/// The contention-sensitive resources, in [`Sensitivity::values`] order.
pub const SENSITIVE: [seer_traces::Resource; 6] = [
    seer_traces::Resource::Cpu,
    seer_traces::Resource::Llc,
    seer_traces::Resource::MemBw,
    seer_traces::Resource::MemCap,
    seer_traces::Resource::Net,
    seer_traces::Resource::Disk,
];

/// Sensitivity of a service to each resource, each in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    /// `[cpu, llc, mem_bw, mem_cap, net, disk]`.
    pub values: [f64; 6],
}

impl Profile {
    /// The preset's sensitivities.
    pub fn sensitivity(self) -> Sensitivity {
        let values = match self {
            Profile::Logic => [0.8, 0.3, 0.2, 0.1, 0.5, 0.0],
            Profile::Frontend => [1.0, 0.2, 0.1, 0.1, 1.0, 0.0],
            Profile::Cache => [0.7, 1.0, 0.7, 0.6, 0.8, 0.0],
            Profile::Database => [0.5, 0.5, 0.5, 0.8, 0.5, 1.0],
            Profile::Queue => [0.6, 0.3, 0.3, 0.4, 0.8, 0.6],
            Profile::Compute => [1.0, 0.6, 0.8, 0.3, 0.3, 0.0],
        };
        Sensitivity { values }
    }
}

impl Sensitivity {
    /// Sensitivity to `r`; 0 for `load` and `app`, which act on the service in other
    /// ways (see [`crate::inject`]).
    pub fn of(&self, r: seer_traces::Resource) -> f64 {
        SENSITIVE
            .iter()
            .position(|&x| x == r)
            .map_or(0.0, |i| self.values[i])
    }
}

/// Per-resource overrides of a profile (`sensitivity = { llc = 0.9 }`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitivitySpec {
    /// CPU contention (co-located CPU hog).
    pub cpu: Option<f64>,
    /// Last-level cache contention.
    pub llc: Option<f64>,
    /// Memory bandwidth contention.
    pub mem_bw: Option<f64>,
    /// Memory capacity pressure (swapping, page cache loss).
    pub mem_cap: Option<f64>,
    /// Network bandwidth/latency contention on the service's link.
    pub net: Option<f64>,
    /// Disk I/O contention.
    pub disk: Option<f64>,
}

/// A compiled topology: names resolved to indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Services, in file order; a service's index is its id.
    pub services: Vec<Service>,
    /// All operations of all services; an operation's index is its id.
    pub ops: Vec<Op>,
    /// Entry points, in file order.
    pub apis: Vec<Api>,
    /// Retries of a call that returned an error.
    pub max_retries: u8,
    /// Timeout of a synchronous call, ns.
    pub call_timeout_ns: Option<u64>,
    /// Deadline of a request after the client sent it, ns.
    pub deadline_ns: Option<u64>,
}

/// A compiled service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Name.
    pub name: String,
    /// Instances.
    pub replicas: u32,
    /// Workers per instance.
    pub workers: u32,
    /// Sensitivities.
    pub sensitivity: Sensitivity,
    /// One-way latency of a hop to this service, ns.
    pub hop_latency_ns: u64,
    /// Its operations' ids, by name.
    pub ops: Vec<u32>,
}

/// A compiled operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// Operation name (span name).
    pub name: String,
    /// Owning service id.
    pub service: u32,
    /// Own work time.
    pub time: Dist,
    /// Steps of calls.
    pub steps: Vec<Vec<Call>>,
}

/// A compiled call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Call {
    /// Target operation id.
    pub op: u32,
    /// Probability the call is made.
    pub p: f64,
    /// Parallel copies.
    pub count: u32,
    /// Not waited for.
    pub asynchronous: bool,
}

/// A compiled entry point.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    /// Name (root span operation).
    pub name: String,
    /// Share of arrivals, normalised to sum to 1.
    pub share: f64,
    /// Root operation id.
    pub op: u32,
}

impl TopologyFile {
    /// Parses TOML; `origin` (a path or built-in name) goes into errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TopologyError> {
        toml::from_str(text).map_err(|e| TopologyError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })
    }

    /// Resolves names and checks the topology.
    pub fn compile(&self, origin: &str) -> Result<Topology, TopologyError> {
        let bad = |message: String| TopologyError::Invalid {
            origin: origin.to_string(),
            message,
        };
        if self.services.is_empty() {
            return Err(bad("no [[service]] declared".into()));
        }
        if self.apis.is_empty() {
            return Err(bad("no [[api]] declared".into()));
        }
        if self.services.len() > u16::MAX as usize {
            return Err(bad(format!(
                "{} services, at most 65535",
                self.services.len()
            )));
        }
        let hop = |v: f64, what: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok((v * 1e3).round() as u64)
            } else {
                Err(bad(format!(
                    "{what} must be a non-negative number of µs, got {v}"
                )))
            }
        };
        let default_hop = hop(self.hop_latency_us, "hop_latency_us")?;
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        let mut services = Vec::with_capacity(self.services.len());
        let mut ops = Vec::new();
        let mut op_index: HashMap<(usize, &str), u32> = HashMap::new();
        for (si, s) in self.services.iter().enumerate() {
            if s.name.is_empty() || s.name.contains(':') {
                return Err(bad(format!(
                    "service name {:?} must be non-empty without ':'",
                    s.name
                )));
            }
            if by_name.insert(&s.name, si).is_some() {
                return Err(bad(format!("service {:?} declared twice", s.name)));
            }
            if s.replicas == 0 || s.workers == 0 {
                return Err(bad(format!(
                    "service {:?}: replicas ({}) and workers ({}) must be at least 1",
                    s.name, s.replicas, s.workers
                )));
            }
            if s.ops.is_empty() {
                return Err(bad(format!("service {:?} has no ops", s.name)));
            }
            let mut sens = s.profile.sensitivity();
            let o = &s.sensitivity;
            for (i, v) in [o.cpu, o.llc, o.mem_bw, o.mem_cap, o.net, o.disk]
                .into_iter()
                .enumerate()
            {
                if let Some(v) = v {
                    if !(0.0..=1.0).contains(&v) {
                        return Err(bad(format!(
                            "service {:?}: sensitivity {} must be in [0, 1], got {v}",
                            s.name, SENSITIVE[i]
                        )));
                    }
                    sens.values[i] = v;
                }
            }
            let hop_ns = match s.hop_latency_us {
                Some(v) => hop(v, &format!("service {:?} hop_latency_us", s.name))?,
                None => default_hop,
            };
            let mut ids = Vec::new();
            for (oname, ospec) in &s.ops {
                let time = ospec
                    .time
                    .compile()
                    .map_err(|m| bad(format!("service {:?} op {oname:?} time: {m}", s.name)))?;
                let id = ops.len() as u32;
                op_index.insert((si, oname.as_str()), id);
                ids.push(id);
                ops.push(Op {
                    name: oname.clone(),
                    service: si as u32,
                    time,
                    steps: Vec::new(),
                });
            }
            services.push(Service {
                name: s.name.clone(),
                replicas: s.replicas,
                workers: s.workers,
                sensitivity: sens,
                hop_latency_ns: hop_ns,
                ops: ids,
            });
        }
        let resolve = |target: &str, ctx: &str| -> Result<u32, TopologyError> {
            let (svc, op) = target.split_once(':').ok_or_else(|| {
                bad(format!(
                    "{ctx}: call {target:?} must be written \"service:Op\""
                ))
            })?;
            let si = *by_name.get(svc).ok_or_else(|| {
                bad(format!(
                    "{ctx}: call {target:?} names unknown service {svc:?}"
                ))
            })?;
            op_index.get(&(si, op)).copied().ok_or_else(|| {
                bad(format!(
                    "{ctx}: call {target:?}: service {svc:?} has no op {op:?}"
                ))
            })
        };
        for (si, s) in self.services.iter().enumerate() {
            for (oname, ospec) in &s.ops {
                let ctx = format!("service {:?} op {oname:?}", s.name);
                let mut steps = Vec::with_capacity(ospec.steps.len());
                for step in &ospec.steps {
                    let mut calls = Vec::with_capacity(step.len());
                    for c in step {
                        let call = match c {
                            CallSpec::Short(t) => Call {
                                op: resolve(t, &ctx)?,
                                p: 1.0,
                                count: 1,
                                asynchronous: false,
                            },
                            CallSpec::Full {
                                to,
                                p,
                                count,
                                asynchronous,
                            } => {
                                if !(0.0..=1.0).contains(p) {
                                    return Err(bad(format!(
                                        "{ctx}: call {to:?}: p must be in [0, 1], got {p}"
                                    )));
                                }
                                if *count == 0 || *count > 10_000 {
                                    return Err(bad(format!(
                                        "{ctx}: call {to:?}: count must be in 1..=10000, got {count}"
                                    )));
                                }
                                Call {
                                    op: resolve(to, &ctx)?,
                                    p: *p,
                                    count: *count,
                                    asynchronous: *asynchronous,
                                }
                            }
                        };
                        calls.push(call);
                    }
                    if !calls.is_empty() {
                        steps.push(calls);
                    }
                }
                let id = op_index[&(si, oname.as_str())];
                ops[id as usize].steps = steps;
            }
        }
        // Call graph of operations must be acyclic: a static cycle never ends.
        // (A service-level cycle through different ops is fine.)
        check_acyclic(&ops)
            .map_err(|cycle| bad(format!("call cycle through operations {cycle}")))?;
        let mut apis = Vec::with_capacity(self.apis.len());
        let total: f64 = self.apis.iter().map(|a| a.weight).sum();
        for a in &self.apis {
            if !(a.weight.is_finite() && a.weight >= 0.0) {
                return Err(bad(format!(
                    "api {:?}: weight must be non-negative, got {}",
                    a.name, a.weight
                )));
            }
            if a.name.is_empty() {
                return Err(bad("an api has an empty name".into()));
            }
            let op = resolve(&a.call, &format!("api {:?}", a.name))?;
            apis.push(Api {
                name: a.name.clone(),
                share: a.weight / total,
                op,
            });
        }
        if total.is_nan() || total <= 0.0 {
            return Err(bad("api weights sum to 0".into()));
        }
        Ok(Topology {
            name: self.name.clone(),
            description: self.description.clone(),
            services,
            ops,
            apis,
            max_retries: self.max_retries,
            call_timeout_ns: match self.call_timeout_ms {
                None => None,
                Some(ms) if ms.is_finite() && ms > 0.0 => Some((ms * 1e6) as u64),
                Some(ms) => return Err(bad(format!("call_timeout_ms must be positive, got {ms}"))),
            },
            deadline_ns: match self.deadline_ms {
                None => None,
                Some(ms) if ms.is_finite() && ms > 0.0 => Some((ms * 1e6) as u64),
                Some(ms) => return Err(bad(format!("deadline_ms must be positive, got {ms}"))),
            },
        })
    }
}

fn check_acyclic(ops: &[Op]) -> Result<(), String> {
    // 0 = unvisited, 1 = on stack, 2 = done
    let mut state = vec![0u8; ops.len()];
    fn visit(
        i: usize,
        ops: &[Op],
        state: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        if state[i] == 2 {
            return Ok(());
        }
        if state[i] == 1 {
            let from = path.iter().position(|&p| p == i).unwrap_or(0);
            let mut c = path[from..].to_vec();
            c.push(i);
            return Err(c);
        }
        state[i] = 1;
        path.push(i);
        for step in &ops[i].steps {
            for c in step {
                visit(c.op as usize, ops, state, path)?;
            }
        }
        path.pop();
        state[i] = 2;
        Ok(())
    }
    for i in 0..ops.len() {
        let mut path = Vec::new();
        visit(i, ops, &mut state, &mut path).map_err(|c| {
            c.iter()
                .map(|&o| ops[o].name.as_str())
                .collect::<Vec<_>>()
                .join(" -> ")
        })?;
    }
    Ok(())
}

impl Topology {
    /// Parses and compiles TOML text.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, TopologyError> {
        TopologyFile::parse(text, origin)?.compile(origin)
    }

    /// Reads and compiles a topology file.
    pub fn from_path(path: &Path) -> Result<Self, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// A built-in topology by name, or a `.toml` file when `name_or_path` is a path.
    pub fn load(name_or_path: &str) -> Result<Self, TopologyError> {
        match crate::builtin::source(name_or_path) {
            Some(text) => Self::from_toml(text, name_or_path),
            None if name_or_path.ends_with(".toml") || name_or_path.contains('/') => {
                Self::from_path(Path::new(name_or_path))
            }
            None => Err(TopologyError::UnknownBuiltin(name_or_path.to_string())),
        }
    }

    /// Id of a service by name.
    pub fn service_id(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.name == name)
    }

    /// Id of the operation `op` of service `service`.
    pub fn op_id(&self, service: usize, op: &str) -> Option<u32> {
        self.services
            .get(service)?
            .ops
            .iter()
            .copied()
            .find(|&o| self.ops[o as usize].name == op)
    }

    /// The services that host an entry point (the front ends).
    pub fn frontends(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .apis
            .iter()
            .map(|a| self.ops[a.op as usize].service as usize)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Expected number of synchronous and asynchronous RPCs (server spans) one
    /// request of `api` makes, the root included.
    pub fn rpcs_per_request(&self, api: usize) -> f64 {
        fn count(t: &Topology, op: u32) -> f64 {
            1.0 + t.ops[op as usize]
                .steps
                .iter()
                .flatten()
                .map(|c| c.p * c.count as f64 * count(t, c.op))
                .sum::<f64>()
        }
        count(self, self.apis[api].op)
    }

    /// Mean work per request of `api` on each service, ns (visits × mean time).
    pub fn demand_ns(&self, api: usize) -> Vec<f64> {
        let mut d = vec![0.0; self.services.len()];
        fn walk(t: &Topology, op: u32, mult: f64, d: &mut [f64]) {
            let o = &t.ops[op as usize];
            d[o.service as usize] += mult * o.time.mean_ns();
            for c in o.steps.iter().flatten() {
                walk(t, c.op, mult * c.p * c.count as f64, d);
            }
        }
        walk(self, self.apis[api].op, 1.0, &mut d);
        d
    }

    /// The request rate (per second) at which the busiest service's workers would be
    /// fully busy doing their own work, for the API mix (ignores time spent blocked
    /// on callees, so real saturation comes earlier for blocking callers).
    pub fn work_capacity_rps(&self) -> f64 {
        let mut d = vec![0.0; self.services.len()];
        for (i, a) in self.apis.iter().enumerate() {
            for (s, v) in self.demand_ns(i).into_iter().enumerate() {
                d[s] += a.share * v;
            }
        }
        self.services
            .iter()
            .zip(d)
            .filter(|(_, v)| *v > 0.0)
            .map(|(s, v)| (s.replicas * s.workers) as f64 * 1e9 / v)
            .fold(f64::INFINITY, f64::min)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TINY: &str = r#"
name = "tiny"
hop_latency_us = 50

[[service]]
name = "web"
workers = 8
profile = "frontend"
[service.ops.Get]
time = { dist = "exponential", mean_us = 100 }
steps = [["db:Find"], [{ to = "log:Append", async = true }]]

[[service]]
name = "db"
workers = 4
profile = "database"
sensitivity = { llc = 0.9 }
[service.ops.Find]
time = { dist = "lognormal", mean_us = 300, sigma = 0.5 }

[[service]]
name = "log"
workers = 1
[service.ops.Append]
time = { dist = "constant", us = 20 }

[[api]]
name = "/get"
call = "web:Get"
"#;

    #[test]
    fn module_doc_example_compiles() {
        let t = Topology::from_toml(TINY, "tiny").unwrap();
        assert_eq!(t.services.len(), 3);
        assert_eq!(t.ops.len(), 3);
        let web = &t.ops[t.apis[0].op as usize];
        assert_eq!(web.name, "Get");
        assert_eq!(web.steps.len(), 2);
        assert!(web.steps[1][0].asynchronous);
        assert_eq!(
            t.services[1].sensitivity.of(seer_traces::Resource::Llc),
            0.9
        );
        assert_eq!(
            t.services[1].sensitivity.of(seer_traces::Resource::Disk),
            1.0
        );
        assert_eq!(t.services[0].hop_latency_ns, 50_000);
        assert!((t.rpcs_per_request(0) - 3.0).abs() < 1e-9);
        assert_eq!(t.frontends(), vec![0]);
    }

    #[test]
    fn errors_name_the_culprit() {
        let e = Topology::from_toml(&TINY.replace("db:Find", "db:Nope"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no op \"Nope\""), "{e}");
        let e = Topology::from_toml(&TINY.replace("db:Find", "dbx:Find"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown service \"dbx\""), "{e}");
        let e = Topology::from_toml(&TINY.replace("workers = 4", "workers = 0"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"db\"") && e.contains("workers (0)"), "{e}");
        let e = Topology::from_toml(&TINY.replace("llc = 0.9", "llc = 1.5"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("llc") && e.contains("1.5"), "{e}");
        let e = Topology::from_toml(&TINY.replace("mean_us = 300", "mean_us = 0"), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"Find\"") && e.contains("mean_us"), "{e}");
        let e = Topology::from_toml(&TINY.replace("workers = 8", "wrkers = 8"), "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.toml"), "{e}");
    }

    #[test]
    fn op_cycles_are_refused() {
        let cyc = TINY.replace(
            "[service.ops.Find]\ntime = { dist = \"lognormal\", mean_us = 300, sigma = 0.5 }",
            "[service.ops.Find]\ntime = { dist = \"lognormal\", mean_us = 300, sigma = 0.5 }\nsteps = [[\"web:Get\"]]",
        );
        let e = Topology::from_toml(&cyc, "x").unwrap_err().to_string();
        assert!(
            e.contains("cycle") && e.contains("Get -> Find -> Get"),
            "{e}"
        );
    }
}
