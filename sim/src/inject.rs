//! Injections: contention and faults, each recorded as ground truth.
//!
//! # How each injection acts
//!
//! An injection has an intensity `I` in `[0, 1]` that ramps up linearly from its
//! start over `ramp`, then holds until `start + duration`, when it stops at once.
//! Let `s` be the service's sensitivity to the resource (its [`Profile`]) and `m`
//! the share of the contention removed by an isolating action ([`crate::Sim`]'s
//! actuators, `0` by default):
//!
//! | kind | resource | effect on the service (or the instance, when given) |
//! | --- | --- | --- |
//! | `cpu` | cpu | own work time × `1 + 8·s·I·(1−m)` (a CPU hog taking cores) |
//! | `llc` | llc | own work time × `1 + 2·s·I·(1−m)` (cache misses) |
//! | `mem_bw` | mem_bw | own work time × `1 + 3·s·I·(1−m)` |
//! | `mem_cap` | mem_cap | own work time × `1 + 4·s·I·(1−m)` (swapping) |
//! | `disk` | disk | own work time × `1 + 8·s·I·(1−m)` (storage tiers) |
//! | `net` | net | latency of every hop to or from the service × `1 + 40·s·I·(1−m)` |
//! | `load` | load | on a front end: arrival rate × `1 + 2·I`; elsewhere: extra requests from outside the traced application, at `I` × the service's capacity |
//! | `lock` | app | each request's own work holds the instance's single lock with probability `I` (a serialising lock) |
//! | `cycle` | app | each request, after its calls, calls `peer` synchronously with probability `I`, which calls back with probability `I`, ... (a feedback cycle that holds workers on both sides) |
//! | `retry_storm` | app | each reply fails with probability `I`; callers retry up to the topology's `max_retries` |
//!
//! Slowdowns of several resources add: `1 + Σ k_r·s_r·I_r·(1−m_r)`.
//!
//! [`Profile`]: crate::topology::Profile

use crate::rng::SimRng;
use crate::topology::Topology;
use seer_traces::{Culprit, Resource};
use serde::{Deserialize, Serialize};

/// Errors in an injection list or campaign.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// An injection names a service the topology does not have.
    #[error("injection {index}: unknown service {service:?} in topology {topology}")]
    UnknownService {
        /// Position in the list.
        index: usize,
        /// The name.
        service: String,
        /// The topology.
        topology: String,
    },
    /// An injection's parameters are out of range.
    #[error("injection {index} on {service:?}: {message}")]
    Invalid {
        /// Position in the list.
        index: usize,
        /// The service.
        service: String,
        /// What is wrong, with the value.
        message: String,
    },
    /// An injection file could not be read or parsed.
    #[error("failed to read injections from {origin}: {message}")]
    Parse {
        /// File path.
        origin: String,
        /// The cause.
        message: String,
    },
}

/// What is injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// CPU contention.
    Cpu,
    /// Last-level cache contention.
    Llc,
    /// Memory bandwidth contention.
    MemBw,
    /// Memory capacity pressure.
    MemCap,
    /// Network contention on the service's link.
    Net,
    /// Disk I/O contention.
    Disk,
    /// A load spike.
    Load,
    /// A serialising lock.
    Lock,
    /// A synchronous call cycle with `peer`.
    Cycle {
        /// The neighbour in the cycle.
        peer: String,
    },
    /// Failing replies that callers retry.
    RetryStorm,
}

/// Slowdown coefficient `k_r` of the contention resources, in
/// [`crate::topology::SENSITIVE`] order (`net` multiplies hop latency instead).
pub const SLOWDOWN: [f64; 6] = [8.0, 2.0, 3.0, 4.0, 40.0, 8.0];

/// Arrival-rate coefficient of a load spike on a front end.
pub const LOAD_FACTOR: f64 = 2.0;

impl Fault {
    /// The ground-truth resource label.
    pub fn resource(&self) -> Resource {
        match self {
            Fault::Cpu => Resource::Cpu,
            Fault::Llc => Resource::Llc,
            Fault::MemBw => Resource::MemBw,
            Fault::MemCap => Resource::MemCap,
            Fault::Net => Resource::Net,
            Fault::Disk => Resource::Disk,
            Fault::Load => Resource::Load,
            Fault::Lock | Fault::Cycle { .. } | Fault::RetryStorm => Resource::App,
        }
    }

    /// Index in [`crate::topology::SENSITIVE`] for contention kinds.
    pub fn contention_index(&self) -> Option<usize> {
        crate::topology::SENSITIVE
            .iter()
            .position(|&r| r == self.resource())
            .filter(|_| {
                !matches!(
                    self,
                    Fault::Load | Fault::Lock | Fault::Cycle { .. } | Fault::RetryStorm
                )
            })
    }

    /// A short name: `cpu`, `llc`, ..., `lock`, `cycle`, `retry_storm`.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Cpu => "cpu",
            Fault::Llc => "llc",
            Fault::MemBw => "mem_bw",
            Fault::MemCap => "mem_cap",
            Fault::Net => "net",
            Fault::Disk => "disk",
            Fault::Load => "load",
            Fault::Lock => "lock",
            Fault::Cycle { .. } => "cycle",
            Fault::RetryStorm => "retry_storm",
        }
    }
}

/// One injection (times relative to the start of the run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    /// Target service.
    pub service: String,
    /// Target instance; `None` for all instances.
    #[serde(default)]
    pub instance: Option<u32>,
    /// What is injected.
    #[serde(flatten)]
    pub fault: Fault,
    /// Start, ns since the start of the run.
    pub start_ns: u64,
    /// Linear ramp from 0 to full intensity, ns.
    #[serde(default)]
    pub ramp_ns: u64,
    /// Length from start to end, ns (the ramp included).
    pub duration_ns: u64,
    /// Full intensity, in `[0, 1]`.
    pub intensity: f64,
}

impl Injection {
    /// Intensity at `t_ns` since the start of the run.
    #[inline]
    pub fn intensity_at(&self, t_ns: u64) -> f64 {
        if t_ns < self.start_ns || t_ns >= self.start_ns.saturating_add(self.duration_ns) {
            return 0.0;
        }
        let since = t_ns - self.start_ns;
        if self.ramp_ns > 0 && since < self.ramp_ns {
            self.intensity * since as f64 / self.ramp_ns as f64
        } else {
            self.intensity
        }
    }

    /// End, ns since the start of the run.
    pub fn end_ns(&self) -> u64 {
        self.start_ns.saturating_add(self.duration_ns)
    }

    /// The ground-truth culprit, with times shifted by `epoch_ns`.
    pub fn culprit(&self, epoch_ns: u64) -> Culprit {
        Culprit {
            service: self.service.clone(),
            resource: self.fault.resource(),
            start_ns: epoch_ns + self.start_ns,
            end_ns: epoch_ns + self.end_ns(),
        }
    }

    /// Checks the injection against a topology.
    pub fn validate(&self, index: usize, topo: &Topology) -> Result<(), InjectError> {
        let invalid = |message: String| InjectError::Invalid {
            index,
            service: self.service.clone(),
            message,
        };
        let Some(sid) = topo.service_id(&self.service) else {
            return Err(InjectError::UnknownService {
                index,
                service: self.service.clone(),
                topology: topo.name.clone(),
            });
        };
        if !(0.0..=1.0).contains(&self.intensity) {
            return Err(invalid(format!(
                "intensity must be in [0, 1], got {}",
                self.intensity
            )));
        }
        if self.ramp_ns > self.duration_ns {
            return Err(invalid(format!(
                "ramp ({} ns) longer than duration ({} ns)",
                self.ramp_ns, self.duration_ns
            )));
        }
        if let Some(i) = self.instance
            && i >= topo.services[sid].replicas
        {
            return Err(invalid(format!(
                "instance {i} but the service has {} replicas",
                topo.services[sid].replicas
            )));
        }
        if let Fault::Cycle { peer } = &self.fault {
            if topo.service_id(peer).is_none() {
                return Err(invalid(format!("cycle peer {peer:?} is not a service")));
            }
            if peer == &self.service {
                return Err(invalid("cycle peer is the service itself".into()));
            }
        }
        Ok(())
    }
}

/// Reads injections from JSON (an array of [`Injection`]).
pub fn parse_injections_json(text: &str, origin: &str) -> Result<Vec<Injection>, InjectError> {
    serde_json::from_str(text).map_err(|e| InjectError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// Parameters of a random-injection campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// Quiet time before the first injection, ns.
    pub warmup_ns: u64,
    /// Quiet time between injections: uniform in `[min, max]`, ns.
    pub quiet_ns: (u64, u64),
    /// Injection length: uniform in `[min, max]`, ns.
    pub duration_ns: (u64, u64),
    /// Ramp as a fraction of the length: uniform in `[min, max]`.
    pub ramp_frac: (f64, f64),
    /// Intensity: uniform in `[min, max]`.
    pub intensity: (f64, f64),
    /// Fault kinds to draw from (`cycle` peers are drawn among the service's callees).
    pub kinds: Vec<String>,
    /// Only services at least this sensitive to a contention resource are chosen
    /// for it.
    pub min_sensitivity: f64,
}

impl Default for Campaign {
    fn default() -> Self {
        Self {
            warmup_ns: 60_000_000_000,
            quiet_ns: (30_000_000_000, 120_000_000_000),
            duration_ns: (20_000_000_000, 90_000_000_000),
            ramp_frac: (0.0, 0.5),
            intensity: (0.4, 1.0),
            kinds: [
                "cpu",
                "llc",
                "mem_bw",
                "mem_cap",
                "net",
                "disk",
                "load",
                "lock",
                "retry_storm",
            ]
            .map(String::from)
            .to_vec(),
            min_sensitivity: 0.5,
        }
    }
}

impl Campaign {
    /// Draws injections, one at a time with quiet periods between, over
    /// `[0, run_ns)`, deterministically from `seed`.
    pub fn generate(
        &self,
        topo: &Topology,
        run_ns: u64,
        seed: u64,
    ) -> Result<Vec<Injection>, InjectError> {
        let mut rng = SimRng::new(seed, 0xca3a_1a16);
        let mut out = Vec::new();
        let mut t = self.warmup_ns;
        let pick =
            |rng: &mut SimRng, (lo, hi): (u64, u64)| lo + rng.below(hi.saturating_sub(lo) + 1);
        let kinds: Vec<Fault> = self
            .kinds
            .iter()
            .map(|k| parse_fault(k, None))
            .collect::<Result<_, _>>()
            .map_err(|message| InjectError::Parse {
                origin: "campaign".into(),
                message,
            })?;
        if kinds.is_empty() {
            return Ok(out);
        }
        loop {
            let duration = pick(&mut rng, self.duration_ns).max(1);
            if t + duration > run_ns {
                break;
            }
            let fault = kinds[rng.below(kinds.len() as u64) as usize].clone();
            // Services for which this fault makes sense.
            let candidates: Vec<usize> = (0..topo.services.len())
                .filter(|&s| match fault.contention_index() {
                    Some(i) => topo.services[s].sensitivity.values[i] >= self.min_sensitivity,
                    None => true,
                })
                .collect();
            if candidates.is_empty() {
                t += duration;
                continue;
            }
            let sid = candidates[rng.below(candidates.len() as u64) as usize];
            let fault = match fault {
                Fault::Cycle { .. } => match callees(topo, sid).first() {
                    Some(&peer) => Fault::Cycle {
                        peer: topo.services[peer].name.clone(),
                    },
                    None => Fault::Lock,
                },
                f => f,
            };
            let ramp = (duration as f64 * rng.range(self.ramp_frac.0, self.ramp_frac.1)) as u64;
            let intensity = rng
                .range(self.intensity.0, self.intensity.1)
                .clamp(0.0, 1.0);
            out.push(Injection {
                service: topo.services[sid].name.clone(),
                instance: None,
                fault,
                start_ns: t,
                ramp_ns: ramp.min(duration),
                duration_ns: duration,
                intensity,
            });
            t += duration + pick(&mut rng, self.quiet_ns);
        }
        Ok(out)
    }
}

fn callees(topo: &Topology, sid: usize) -> Vec<usize> {
    let mut v: Vec<usize> = topo.services[sid]
        .ops
        .iter()
        .flat_map(|&o| topo.ops[o as usize].steps.iter().flatten())
        .map(|c| topo.ops[c.op as usize].service as usize)
        .filter(|&s| s != sid)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Parses a fault name (`cpu`, `llc`, `mem_bw`, `mem_cap`, `net`, `disk`, `load`,
/// `lock`, `cycle`, `retry_storm`); `cycle` takes its peer from `peer`.
pub fn parse_fault(name: &str, peer: Option<&str>) -> Result<Fault, String> {
    Ok(match name {
        "cpu" => Fault::Cpu,
        "llc" => Fault::Llc,
        "mem_bw" => Fault::MemBw,
        "mem_cap" => Fault::MemCap,
        "net" => Fault::Net,
        "disk" => Fault::Disk,
        "load" => Fault::Load,
        "lock" => Fault::Lock,
        "retry_storm" => Fault::RetryStorm,
        "cycle" => Fault::Cycle {
            peer: peer.unwrap_or_default().to_string(),
        },
        _ => {
            return Err(format!(
                "unknown fault {name:?} (expected cpu, llc, mem_bw, mem_cap, net, disk, load, lock, cycle or retry_storm)"
            ));
        }
    })
}

/// Parses one injection written `SERVICE:KIND@START+DURATION[,ramp=R][,intensity=I][,instance=N][,peer=P]`,
/// e.g. `post-storage-service:cpu@10m+2m,ramp=30s,intensity=0.8` (times in humantime).
pub fn parse_injection(spec: &str) -> Result<Injection, String> {
    let err = |m: &str| format!("bad injection {spec:?}: {m}");
    let mut parts = spec.split(',');
    let head = parts.next().unwrap_or_default();
    let (target, when) = head
        .split_once('@')
        .ok_or_else(|| err("expected SERVICE:KIND@START+DURATION"))?;
    let (service, kind) = target
        .split_once(':')
        .ok_or_else(|| err("expected SERVICE:KIND"))?;
    let (start, dur) = when
        .split_once('+')
        .ok_or_else(|| err("expected START+DURATION"))?;
    let d = |v: &str| {
        humantime::parse_duration(v.trim())
            .map(|d| d.as_nanos() as u64)
            .map_err(|e| err(&format!("{v:?}: {e}")))
    };
    let mut inj = Injection {
        service: service.to_string(),
        instance: None,
        fault: Fault::Cpu,
        start_ns: d(start)?,
        ramp_ns: 0,
        duration_ns: d(dur)?,
        intensity: 1.0,
    };
    let mut peer = None;
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| err(&format!("expected key=value, got {p:?}")))?;
        match k.trim() {
            "ramp" => inj.ramp_ns = d(v)?,
            "intensity" => {
                inj.intensity = v
                    .trim()
                    .parse()
                    .map_err(|_| err(&format!("intensity {v:?}")))?
            }
            "instance" => {
                inj.instance = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| err(&format!("instance {v:?}")))?,
                )
            }
            "peer" => peer = Some(v.trim().to_string()),
            other => return Err(err(&format!("unknown key {other:?}"))),
        }
    }
    inj.fault = parse_fault(kind, peer.as_deref()).map_err(|m| err(&m))?;
    if matches!(&inj.fault, Fault::Cycle { peer } if peer.is_empty()) {
        return Err(err("cycle needs peer=SERVICE"));
    }
    Ok(inj)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn inj() -> Injection {
        Injection {
            service: "middle".into(),
            instance: None,
            fault: Fault::Cpu,
            start_ns: 100,
            ramp_ns: 50,
            duration_ns: 200,
            intensity: 0.8,
        }
    }

    #[test]
    fn intensity_ramps_then_stops() {
        let i = inj();
        assert_eq!(i.intensity_at(99), 0.0);
        assert_eq!(i.intensity_at(100), 0.0);
        assert!((i.intensity_at(125) - 0.4).abs() < 1e-12);
        assert_eq!(i.intensity_at(150), 0.8);
        assert_eq!(i.intensity_at(299), 0.8);
        assert_eq!(i.intensity_at(300), 0.0);
        let c = i.culprit(1_000);
        assert_eq!(
            (c.start_ns, c.end_ns, c.resource),
            (1_100, 1_300, Resource::Cpu)
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let t = Topology::load("chain").unwrap();
        assert!(inj().validate(0, &t).is_ok());
        let mut i = inj();
        i.service = "nope".into();
        assert!(
            i.validate(3, &t)
                .unwrap_err()
                .to_string()
                .contains("injection 3: unknown service \"nope\"")
        );
        let mut i = inj();
        i.intensity = 2.0;
        assert!(i.validate(0, &t).unwrap_err().to_string().contains("got 2"));
        let mut i = inj();
        i.instance = Some(4);
        assert!(
            i.validate(0, &t)
                .unwrap_err()
                .to_string()
                .contains("instance 4")
        );
        let mut i = inj();
        i.fault = Fault::Cycle {
            peer: "middle".into(),
        };
        assert!(i.validate(0, &t).is_err());
    }

    #[test]
    fn injection_spec_parses() {
        let i = parse_injection("back:llc@10s+1m,ramp=5s,intensity=0.5,instance=0").unwrap();
        assert_eq!(i.service, "back");
        assert_eq!(i.fault, Fault::Llc);
        assert_eq!(i.start_ns, 10_000_000_000);
        assert_eq!(i.duration_ns, 60_000_000_000);
        assert_eq!(i.ramp_ns, 5_000_000_000);
        assert_eq!(i.intensity, 0.5);
        assert_eq!(i.instance, Some(0));
        let c = parse_injection("front:cycle@1s+1s,peer=middle").unwrap();
        assert_eq!(
            c.fault,
            Fault::Cycle {
                peer: "middle".into()
            }
        );
        for bad in [
            "front:cpu",
            "front@1s+1s",
            "front:gpu@1s+1s",
            "front:cpu@1s+1s,x=1",
            "front:cycle@1s+1s",
        ] {
            assert!(parse_injection(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_round_trip() {
        let v = vec![
            inj(),
            Injection {
                fault: Fault::Cycle {
                    peer: "back".into(),
                },
                ..inj()
            },
        ];
        let s = serde_json::to_string(&v).unwrap();
        assert!(s.contains("\"kind\":\"cycle\""), "{s}");
        assert_eq!(parse_injections_json(&s, "x").unwrap(), v);
    }

    #[test]
    fn campaign_is_deterministic_and_spaced() {
        let t = Topology::load("social-network").unwrap();
        let c = Campaign::default();
        let run = 2 * 3_600_000_000_000;
        let a = c.generate(&t, run, 7).unwrap();
        let b = c.generate(&t, run, 7).unwrap();
        let other = c.generate(&t, run, 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert!(a.len() >= 20, "{} injections", a.len());
        for (i, x) in a.iter().enumerate() {
            x.validate(i, &t).unwrap();
            assert!(x.end_ns() <= run);
            if let Some(n) = a.get(i + 1) {
                assert!(n.start_ns >= x.end_ns() + c.quiet_ns.0);
            }
            if let Some(k) = x.fault.contention_index() {
                let s = t.service_id(&x.service).unwrap();
                assert!(t.services[s].sensitivity.values[k] >= c.min_sensitivity);
            }
        }
        let kinds: std::collections::BTreeSet<_> = a.iter().map(|x| x.fault.name()).collect();
        assert!(kinds.len() >= 5, "{kinds:?}");
    }

    proptest::proptest! {
        #[test]
        fn intensity_stays_in_range_and_ramps_up(
            start in 0u64..1_000_000, ramp in 0u64..1_000_000, extra in 1u64..1_000_000,
            i in 0.0f64..=1.0, a in 0u64..3_000_000, b in 0u64..3_000_000,
        ) {
            let inj = Injection {
                service: "x".into(), instance: None, fault: Fault::Cpu,
                start_ns: start, ramp_ns: ramp, duration_ns: ramp + extra, intensity: i,
            };
            let (lo, hi) = (a.min(b), a.max(b));
            let (x, y) = (inj.intensity_at(lo), inj.intensity_at(hi));
            proptest::prop_assert!((0.0..=i).contains(&x) && (0.0..=i).contains(&y));
            // Non-decreasing while the injection lasts.
            if hi < inj.end_ns() {
                proptest::prop_assert!(x <= y + 1e-12);
            }
            proptest::prop_assert_eq!(inj.intensity_at(inj.end_ns()), 0.0);
        }
    }
}
