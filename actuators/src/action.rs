//! The [`Action`] type (what the controller asks for, in `docker update`
//! units), the [`Knob`] it changes, and the kernel-level [`Setting`] of a knob
//! (what is read before an action and restored on revert).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::units::{self, CpuList, DevNum, Limit, UnitError};

/// One change to a resource allocation, with its target and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// `docker update --cpus`: CFS bandwidth of a cgroup, in cores
    /// (`None` = unlimited), with an optional CFS period (default 100 ms).
    CpuQuota {
        /// cgroup path relative to the hierarchy root, e.g. `/docker/<id>`.
        cgroup: String,
        /// Cores, e.g. `1.5`; `None` removes the limit.
        cores: Option<f64>,
        /// CFS period in µs; `None` keeps 100000.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        period_us: Option<u64>,
    },
    /// `docker update --cpu-shares`: v1 `cpu.shares`; on v2 written as
    /// `cpu.weight` through the runc formula.
    CpuShares {
        /// cgroup path.
        cgroup: String,
        /// Shares, 2..=262144 (1024 is the default weight).
        shares: u64,
    },
    /// `docker update --cpuset-cpus/--cpuset-mems`.
    Cpuset {
        /// cgroup path.
        cgroup: String,
        /// CPUs.
        cpus: CpuList,
        /// Memory nodes; `None` keeps the current ones.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mems: Option<CpuList>,
    },
    /// `docker update --memory/--memory-swap`.
    Memory {
        /// cgroup path.
        cgroup: String,
        /// Memory limit.
        limit: Limit,
        /// Memory + swap total, as Docker's `--memory-swap`; `None` leaves
        /// the swap limit as it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        swap: Option<Limit>,
        /// Apply even if the limit is below current usage (the kernel will
        /// reclaim or OOM-kill).
        #[serde(default)]
        force: bool,
    },
    /// `docker update --device-{read,write}-{bps,iops}`: v1
    /// `blkio.throttle.*`, v2 `io.max`. `None` fields keep their current value.
    IoThrottle {
        /// cgroup path.
        cgroup: String,
        /// Block device.
        device: DevNum,
        /// Read bytes/s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_bps: Option<Limit>,
        /// Write bytes/s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write_bps: Option<Limit>,
        /// Read IO/s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_iops: Option<Limit>,
        /// Write IO/s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write_iops: Option<Limit>,
    },
    /// Last-level cache ways of a resctrl group on one cache domain (Intel CAT).
    LlcWays {
        /// resctrl group name.
        group: String,
        /// L3 cache id (domain).
        cache_id: u32,
        /// Number of contiguous ways.
        ways: u32,
    },
    /// Memory-bandwidth percent of a resctrl group on one domain (Intel MBA).
    MbaPercent {
        /// resctrl group name.
        group: String,
        /// MB domain id.
        domain: u32,
        /// Percent of full bandwidth.
        percent: u32,
    },
    /// Rate and ceil of an HTB class.
    NetRate {
        /// Network interface.
        iface: String,
        /// HTB class id, `major:minor` in hex as `tc` prints it (`1:10`).
        class: String,
        /// Guaranteed rate, bits/s.
        rate_bps: u64,
        /// Ceil, bits/s; `None` = same as rate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ceil_bps: Option<u64>,
    },
}

/// What an action changes: one knob of one target. Two actions on the same
/// knob supersede each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "knob", rename_all = "snake_case")]
pub enum Knob {
    /// CFS quota + period.
    CpuMax {
        /// cgroup path.
        cgroup: String,
    },
    /// `cpu.shares` / `cpu.weight`.
    CpuWeight {
        /// cgroup path.
        cgroup: String,
    },
    /// `cpuset.cpus` + `cpuset.mems`.
    Cpuset {
        /// cgroup path.
        cgroup: String,
    },
    /// Memory limit + swap limit.
    Memory {
        /// cgroup path.
        cgroup: String,
    },
    /// Block-I/O throttle of one device.
    Io {
        /// cgroup path.
        cgroup: String,
        /// Device.
        device: DevNum,
    },
    /// L3 capacity bitmask of a resctrl group on one cache id.
    L3 {
        /// resctrl group.
        group: String,
        /// Cache id.
        cache_id: u32,
    },
    /// MB percent of a resctrl group on one domain.
    Mb {
        /// resctrl group.
        group: String,
        /// Domain id.
        domain: u32,
    },
    /// Rate and ceil of one HTB class.
    Htb {
        /// Interface.
        iface: String,
        /// Class id.
        class: String,
    },
}

impl Knob {
    /// The cgroup path when this is a cgroup knob.
    pub fn cgroup(&self) -> Option<&str> {
        match self {
            Knob::CpuMax { cgroup }
            | Knob::CpuWeight { cgroup }
            | Knob::Cpuset { cgroup }
            | Knob::Memory { cgroup }
            | Knob::Io { cgroup, .. } => Some(cgroup),
            _ => None,
        }
    }
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Knob::CpuMax { cgroup } => write!(f, "cgroup:{cgroup}#cpu.max"),
            Knob::CpuWeight { cgroup } => write!(f, "cgroup:{cgroup}#cpu.weight"),
            Knob::Cpuset { cgroup } => write!(f, "cgroup:{cgroup}#cpuset"),
            Knob::Memory { cgroup } => write!(f, "cgroup:{cgroup}#memory"),
            Knob::Io { cgroup, device } => write!(f, "cgroup:{cgroup}#io:{device}"),
            Knob::L3 { group, cache_id } => write!(f, "resctrl:{group}#L3:{cache_id}"),
            Knob::Mb { group, domain } => write!(f, "resctrl:{group}#MB:{domain}"),
            Knob::Htb { iface, class } => write!(f, "htb:{iface}#{class}"),
        }
    }
}

/// The kernel-level value of a knob, in the units of the files it lives in.
/// Read before an action, journaled, and written back on revert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Setting {
    /// CFS quota (µs, `None` = unlimited) and period (µs).
    CpuMax {
        /// Quota.
        quota_us: Option<u64>,
        /// Period.
        period_us: u64,
    },
    /// v1 `cpu.shares`.
    CpuShares {
        /// Shares.
        shares: u64,
    },
    /// v2 `cpu.weight`.
    CpuWeight {
        /// Weight.
        weight: u64,
    },
    /// `cpuset.cpus` and `cpuset.mems`.
    Cpuset {
        /// CPUs.
        cpus: CpuList,
        /// Memory nodes.
        mems: CpuList,
    },
    /// Memory limit and the second file as the kernel has it: v1
    /// `memory.memsw.limit_in_bytes` (memory + swap), v2 `memory.swap.max`
    /// (swap only); `None` when the host has no swap accounting.
    Memory {
        /// Memory limit.
        limit: Limit,
        /// Native swap limit.
        swap: Option<Limit>,
    },
    /// Block-I/O limits of one device.
    Io {
        /// Device.
        device: DevNum,
        /// Read bytes/s.
        rbps: Limit,
        /// Write bytes/s.
        wbps: Limit,
        /// Read IO/s.
        riops: Limit,
        /// Write IO/s.
        wiops: Limit,
    },
    /// L3 capacity bitmask.
    L3Mask {
        /// Bitmask.
        mask: u64,
    },
    /// MB percent.
    MbPercent {
        /// Percent.
        percent: u32,
    },
    /// HTB rate and ceil, bits/s.
    HtbRate {
        /// Rate.
        rate_bps: u64,
        /// Ceil.
        ceil_bps: u64,
    },
}

/// Errors from turning an action into a setting.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ActionError {
    /// A value out of range.
    #[error("invalid value in {action}: {source}")]
    Unit {
        /// The knob.
        action: String,
        /// What was wrong.
        source: UnitError,
    },
    /// The current setting is of another kind than the action expects
    /// (e.g. a v2 weight where shares were read).
    #[error("current value {current:?} of {knob} does not match the action")]
    Mismatch {
        /// The knob.
        knob: String,
        /// The value read.
        current: String,
    },
    /// Other invalid action.
    #[error("invalid action on {knob}: {reason}")]
    Invalid {
        /// The knob.
        knob: String,
        /// Why.
        reason: String,
    },
}

impl Action {
    /// The knob this action changes.
    pub fn knob(&self) -> Knob {
        match self {
            Action::CpuQuota { cgroup, .. } => Knob::CpuMax {
                cgroup: cgroup.clone(),
            },
            Action::CpuShares { cgroup, .. } => Knob::CpuWeight {
                cgroup: cgroup.clone(),
            },
            Action::Cpuset { cgroup, .. } => Knob::Cpuset {
                cgroup: cgroup.clone(),
            },
            Action::Memory { cgroup, .. } => Knob::Memory {
                cgroup: cgroup.clone(),
            },
            Action::IoThrottle { cgroup, device, .. } => Knob::Io {
                cgroup: cgroup.clone(),
                device: *device,
            },
            Action::LlcWays {
                group, cache_id, ..
            } => Knob::L3 {
                group: group.clone(),
                cache_id: *cache_id,
            },
            Action::MbaPercent { group, domain, .. } => Knob::Mb {
                group: group.clone(),
                domain: *domain,
            },
            Action::NetRate { iface, class, .. } => Knob::Htb {
                iface: iface.clone(),
                class: class.clone(),
            },
        }
    }

    /// The new setting of the knob given its `current` one. LLC ways are
    /// turned into a mask by the cache backend, so `LlcWays` is not handled
    /// here.
    /// `swap_is_total` tells how the host spells the swap limit: `true` for
    /// v1 (`memsw` = memory + swap, like Docker's `--memory-swap`), `false`
    /// for v2 (`memory.swap.max` = swap only).
    pub fn plan(&self, current: &Setting, swap_is_total: bool) -> Result<Setting, ActionError> {
        let knob = self.knob();
        let unit = |source| ActionError::Unit {
            action: knob.to_string(),
            source,
        };
        let mismatch = || ActionError::Mismatch {
            knob: knob.to_string(),
            current: format!("{current:?}"),
        };
        Ok(match (self, current) {
            (
                Action::CpuQuota {
                    cores, period_us, ..
                },
                Setting::CpuMax { .. },
            ) => {
                // `docker update --cpus` always uses the 100 ms period.
                let period = period_us.unwrap_or(units::DEFAULT_PERIOD_US);
                let quota = match cores {
                    None => None,
                    Some(c) => Some(units::cores_to_quota(*c, period).map_err(unit)?),
                };
                Setting::CpuMax {
                    quota_us: quota,
                    period_us: period,
                }
            }
            (Action::CpuShares { shares, .. }, Setting::CpuShares { .. }) => {
                units::shares_to_weight(*shares).map_err(unit)?;
                Setting::CpuShares { shares: *shares }
            }
            (Action::CpuShares { shares, .. }, Setting::CpuWeight { .. }) => Setting::CpuWeight {
                weight: units::shares_to_weight(*shares).map_err(unit)?,
            },
            (Action::Cpuset { cpus, mems, .. }, Setting::Cpuset { mems: cur_mems, .. }) => {
                if cpus.is_empty() {
                    return Err(ActionError::Invalid {
                        knob: knob.to_string(),
                        reason: "empty cpu list".into(),
                    });
                }
                Setting::Cpuset {
                    cpus: cpus.clone(),
                    mems: mems.clone().unwrap_or_else(|| cur_mems.clone()),
                }
            }
            (Action::Memory { limit, swap, .. }, Setting::Memory { swap: cur_swap, .. }) => {
                // `swap` is Docker's memory+swap total; the native second file
                // is memsw (total) on v1 and swap.max (swap only) on v2.
                if let (Limit::Value(l), Some(Limit::Value(s))) = (limit, swap)
                    && s < l
                {
                    return Err(ActionError::Invalid {
                        knob: knob.to_string(),
                        reason: format!("memory+swap {s} is below the memory limit {l}"),
                    });
                }
                Setting::Memory {
                    limit: *limit,
                    swap: match (swap, cur_swap) {
                        (Some(total), Some(_)) if swap_is_total => Some(*total),
                        (Some(total), Some(_)) => Some(match (limit, total) {
                            (Limit::Value(l), Limit::Value(t)) => Limit::Value(t - l),
                            _ => Limit::Max,
                        }),
                        (_, cur) => *cur,
                    },
                }
            }
            (
                Action::IoThrottle {
                    read_bps,
                    write_bps,
                    read_iops,
                    write_iops,
                    device,
                    ..
                },
                Setting::Io {
                    rbps,
                    wbps,
                    riops,
                    wiops,
                    ..
                },
            ) => Setting::Io {
                device: *device,
                rbps: read_bps.unwrap_or(*rbps),
                wbps: write_bps.unwrap_or(*wbps),
                riops: read_iops.unwrap_or(*riops),
                wiops: write_iops.unwrap_or(*wiops),
            },
            (Action::MbaPercent { percent, .. }, Setting::MbPercent { .. }) => {
                if *percent == 0 || *percent > 100 {
                    return Err(ActionError::Invalid {
                        knob: knob.to_string(),
                        reason: format!("memory-bandwidth percent {percent} outside 1..=100"),
                    });
                }
                Setting::MbPercent { percent: *percent }
            }
            (
                Action::NetRate {
                    rate_bps, ceil_bps, ..
                },
                Setting::HtbRate { .. },
            ) => {
                let ceil = ceil_bps.unwrap_or(*rate_bps);
                if *rate_bps < 8 || ceil < *rate_bps {
                    return Err(ActionError::Invalid {
                        knob: knob.to_string(),
                        reason: format!("rate {rate_bps} bit/s must be >= 8 and <= ceil {ceil}"),
                    });
                }
                // The kernel keeps bytes per second.
                Setting::HtbRate {
                    rate_bps: *rate_bps - rate_bps % 8,
                    ceil_bps: ceil - ceil % 8,
                }
            }
            _ => return Err(mismatch()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_json_golden() {
        let a = Action::CpuQuota {
            cgroup: "/docker/abc".into(),
            cores: Some(0.5),
            period_us: None,
        };
        let j = serde_json::to_string(&a).expect("json");
        assert_eq!(
            j,
            r#"{"kind":"cpu_quota","cgroup":"/docker/abc","cores":0.5}"#
        );
        let back: Action = serde_json::from_str(&j).expect("parse");
        assert_eq!(back, a);
        let m: Action = serde_json::from_str(
            r#"{"kind":"memory","cgroup":"/a","limit":{"value":1048576},"swap":"max"}"#,
        )
        .expect("parse");
        assert_eq!(
            m,
            Action::Memory {
                cgroup: "/a".into(),
                limit: Limit::Value(1 << 20),
                swap: Some(Limit::Max),
                force: false
            }
        );
        assert_eq!(m.knob().to_string(), "cgroup:/a#memory");
        // Docker's --memory 1G --memory-swap 3G: memsw 3G on v1, swap.max 2G on v2.
        let m = Action::Memory {
            cgroup: "/a".into(),
            limit: Limit::Value(1 << 30),
            swap: Some(Limit::Value(3 << 30)),
            force: false,
        };
        let cur = Setting::Memory {
            limit: Limit::Max,
            swap: Some(Limit::Max),
        };
        assert_eq!(
            m.plan(&cur, true),
            Ok(Setting::Memory {
                limit: Limit::Value(1 << 30),
                swap: Some(Limit::Value(3 << 30))
            })
        );
        assert_eq!(
            m.plan(&cur, false),
            Ok(Setting::Memory {
                limit: Limit::Value(1 << 30),
                swap: Some(Limit::Value(2 << 30))
            })
        );
        // Without swap accounting the swap part is dropped.
        let no_swap = Setting::Memory {
            limit: Limit::Max,
            swap: None,
        };
        assert_eq!(
            m.plan(&no_swap, true),
            Ok(Setting::Memory {
                limit: Limit::Value(1 << 30),
                swap: None
            })
        );
    }

    #[test]
    fn plan_cpu_quota() {
        let cur = Setting::CpuMax {
            quota_us: None,
            period_us: 100_000,
        };
        let a = Action::CpuQuota {
            cgroup: "/a".into(),
            cores: Some(0.25),
            period_us: None,
        };
        assert_eq!(
            a.plan(&cur, true),
            Ok(Setting::CpuMax {
                quota_us: Some(25_000),
                period_us: 100_000
            })
        );
        let shares = Action::CpuShares {
            cgroup: "/a".into(),
            shares: 1024,
        };
        assert_eq!(
            shares.plan(&Setting::CpuWeight { weight: 100 }, false),
            Ok(Setting::CpuWeight { weight: 39 })
        );
        assert!(matches!(
            shares.plan(&cur, true),
            Err(ActionError::Mismatch { .. })
        ));
    }

    #[test]
    fn plan_io_keeps_unset_fields() {
        let d: DevNum = "8:0".parse().expect("dev");
        let cur = Setting::Io {
            device: d,
            rbps: Limit::Value(7),
            wbps: Limit::Max,
            riops: Limit::Max,
            wiops: Limit::Value(9),
        };
        let a = Action::IoThrottle {
            cgroup: "/a".into(),
            device: d,
            read_bps: None,
            write_bps: Some(Limit::Value(1000)),
            read_iops: None,
            write_iops: Some(Limit::Max),
        };
        assert_eq!(
            a.plan(&cur, true),
            Ok(Setting::Io {
                device: d,
                rbps: Limit::Value(7),
                wbps: Limit::Value(1000),
                riops: Limit::Max,
                wiops: Limit::Max
            })
        );
    }
}
