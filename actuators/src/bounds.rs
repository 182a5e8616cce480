//! Safety bounds from configuration: an action never takes a container below
//! a minimum CPU or memory, and never moves a knob by more than a maximum step.
//! Reverts are not bounded: restoring the value found before is always allowed.

use serde::{Deserialize, Serialize};

use crate::action::Setting;
use crate::units::Limit;

/// Errors when an action is outside the configured bounds.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BoundsError {
    /// CPU below the minimum.
    #[error("cpu quota of {cores:.3} cores on {knob} is below the minimum of {min:.3} cores")]
    CpuBelowMin {
        /// Knob.
        knob: String,
        /// Requested cores.
        cores: f64,
        /// Minimum.
        min: f64,
    },
    /// CPU step too large.
    #[error(
        "cpu change on {knob} from {from:.3} to {to:.3} cores exceeds the maximum step of {max:.3} cores"
    )]
    CpuStep {
        /// Knob.
        knob: String,
        /// Cores before.
        from: f64,
        /// Cores after.
        to: f64,
        /// Maximum step.
        max: f64,
    },
    /// Memory below the minimum.
    #[error("memory limit {bytes} on {knob} is below the minimum of {min} bytes")]
    MemoryBelowMin {
        /// Knob.
        knob: String,
        /// Requested bytes.
        bytes: u64,
        /// Minimum.
        min: u64,
    },
    /// Memory step too large.
    #[error("memory change on {knob} from {from} to {to} exceeds the maximum step of {max} bytes")]
    MemoryStep {
        /// Knob.
        knob: String,
        /// Before.
        from: String,
        /// After.
        to: String,
        /// Maximum step.
        max: u64,
    },
    /// Memory limit below what the cgroup uses now.
    #[error(
        "memory limit {limit} on {knob} is below current usage {usage} bytes; set force to apply anyway"
    )]
    BelowUsage {
        /// Knob.
        knob: String,
        /// Requested limit.
        limit: u64,
        /// Current usage.
        usage: u64,
    },
}

/// Bounds on what one action may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bounds {
    /// Never set a CPU quota below this many cores.
    pub min_cpu_cores: f64,
    /// Never change a CPU quota by more than this many cores in one action
    /// (`None`: no limit).
    pub max_cpu_step_cores: Option<f64>,
    /// Cores an unlimited quota counts as when measuring a step (the node's
    /// CPU count).
    pub node_cores: f64,
    /// Never set a memory limit below this many bytes.
    pub min_memory_bytes: u64,
    /// Never change a memory limit by more than this many bytes in one action
    /// (`None`: no limit; a step from or to unlimited counts from
    /// `node_memory_bytes` when set, else is not limited).
    pub max_memory_step_bytes: Option<u64>,
    /// Bytes an unlimited memory limit counts as when measuring a step.
    pub node_memory_bytes: Option<u64>,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            min_cpu_cores: 0.05,
            max_cpu_step_cores: None,
            node_cores: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
            min_memory_bytes: 16 << 20,
            max_memory_step_bytes: None,
            node_memory_bytes: None,
        }
    }
}

impl Bounds {
    /// Checks a change of `knob` from `from` to `to`.
    pub fn check(&self, knob: &str, from: &Setting, to: &Setting) -> Result<(), BoundsError> {
        match (from, to) {
            (
                Setting::CpuMax {
                    quota_us: q0,
                    period_us: p0,
                },
                Setting::CpuMax {
                    quota_us: q1,
                    period_us: p1,
                },
            ) => {
                let cores = |q: &Option<u64>, p: &u64| {
                    q.map_or(self.node_cores, |q| q as f64 / (*p).max(1) as f64)
                };
                let (c0, c1) = (cores(q0, p0), cores(q1, p1));
                if q1.is_some() && c1 < self.min_cpu_cores - 1e-9 {
                    return Err(BoundsError::CpuBelowMin {
                        knob: knob.into(),
                        cores: c1,
                        min: self.min_cpu_cores,
                    });
                }
                if let Some(max) = self.max_cpu_step_cores
                    && (c1 - c0).abs() > max + 1e-9
                {
                    return Err(BoundsError::CpuStep {
                        knob: knob.into(),
                        from: c0,
                        to: c1,
                        max,
                    });
                }
            }
            (Setting::Memory { limit: l0, .. }, Setting::Memory { limit: l1, .. }) => {
                if let Limit::Value(b) = l1
                    && *b < self.min_memory_bytes
                {
                    return Err(BoundsError::MemoryBelowMin {
                        knob: knob.into(),
                        bytes: *b,
                        min: self.min_memory_bytes,
                    });
                }
                if let Some(max) = self.max_memory_step_bytes {
                    let bytes = |l: &Limit| l.value().or(self.node_memory_bytes);
                    if let (Some(a), Some(b)) = (bytes(l0), bytes(l1))
                        && a.abs_diff(b) > max
                    {
                        return Err(BoundsError::MemoryStep {
                            knob: knob.into(),
                            from: l0.to_string(),
                            to: l1.to_string(),
                            max,
                        });
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(q: Option<u64>) -> Setting {
        Setting::CpuMax {
            quota_us: q,
            period_us: 100_000,
        }
    }

    #[test]
    fn cpu_bounds() {
        let b = Bounds {
            min_cpu_cores: 0.5,
            max_cpu_step_cores: Some(1.0),
            node_cores: 4.0,
            ..Bounds::default()
        };
        assert!(
            b.check("k", &cpu(Some(100_000)), &cpu(Some(50_000)))
                .is_ok()
        );
        assert!(matches!(
            b.check("k", &cpu(Some(100_000)), &cpu(Some(25_000))),
            Err(BoundsError::CpuBelowMin { .. })
        ));
        // Unlimited counts as the node's 4 cores: 4 → 1 is a 3-core step.
        let e = b
            .check("k", &cpu(None), &cpu(Some(100_000)))
            .expect_err("step");
        assert!(
            e.to_string()
                .contains("exceeds the maximum step of 1.000 cores"),
            "{e}"
        );
        assert!(b.check("k", &cpu(Some(300_000)), &cpu(None)).is_ok());
    }

    #[test]
    fn memory_bounds() {
        let m = |l| Setting::Memory {
            limit: l,
            swap: None,
        };
        let b = Bounds {
            min_memory_bytes: 100,
            max_memory_step_bytes: Some(1000),
            node_memory_bytes: None,
            ..Bounds::default()
        };
        assert!(
            b.check("k", &m(Limit::Value(500)), &m(Limit::Value(1400)))
                .is_ok()
        );
        assert!(matches!(
            b.check("k", &m(Limit::Value(500)), &m(Limit::Value(99))),
            Err(BoundsError::MemoryBelowMin { .. })
        ));
        assert!(matches!(
            b.check("k", &m(Limit::Value(500)), &m(Limit::Value(1501))),
            Err(BoundsError::MemoryStep { .. })
        ));
        // Unknown node memory: a step from unlimited is not limited.
        assert!(b.check("k", &m(Limit::Max), &m(Limit::Value(200))).is_ok());
        let b = Bounds {
            node_memory_bytes: Some(10_000),
            ..b
        };
        assert!(b.check("k", &m(Limit::Max), &m(Limit::Value(200))).is_err());
    }

    #[test]
    fn bounds_from_toml() {
        let b: Bounds = serde_json::from_str(r#"{"min_cpu_cores":0.25,"max_cpu_step_cores":2.0}"#)
            .expect("parse");
        assert_eq!(b.min_cpu_cores, 0.25);
        assert_eq!(b.max_cpu_step_cores, Some(2.0));
        assert!(serde_json::from_str::<Bounds>(r#"{"min_cpu":1}"#).is_err());
    }
}
