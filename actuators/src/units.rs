//! Unit conventions shared with `docker update`: CPU cores ↔ CFS quota and
//! period, cpu.shares ↔ cpu.weight (the runc/youki formula), byte limits that
//! may be "max", CPU/memory-node lists, and block-device numbers.
//!
//! Every function here is pure; the property tests at the bottom pin the
//! round trips the actuator relies on to restore a previous value exactly.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors from parsing or converting a unit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    /// A number of CPU cores that is not finite and positive.
    #[error("invalid cpu cores {0}: must be finite and > 0")]
    Cores(String),
    /// A CFS period outside the kernel's 1 ms ..= 1 s.
    #[error("invalid cfs period {0} us: must be within 1000..=1000000")]
    Period(u64),
    /// cpu.shares outside 2..=262144.
    #[error("invalid cpu shares {0}: must be within 2..=262144")]
    Shares(u64),
    /// cpu.weight outside 1..=10000.
    #[error("invalid cpu weight {0}: must be within 1..=10000")]
    Weight(u64),
    /// A limit string that is neither `max` nor an unsigned integer.
    #[error("invalid limit {0:?}: expected \"max\" or an unsigned integer")]
    Limit(String),
    /// A CPU or memory-node list that does not parse (`0-3,5`).
    #[error("invalid cpu list {0:?}: expected comma-separated numbers and ranges like 0-3,5")]
    CpuList(String),
    /// A device number that is not `major:minor`.
    #[error("invalid device {0:?}: expected major:minor like 8:0")]
    Device(String),
}

/// The CFS period Docker uses when `--cpus` is given, in microseconds.
pub const DEFAULT_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota the kernel accepts, in microseconds.
pub const MIN_QUOTA_US: u64 = 1_000;
/// Smallest and largest cgroup v1 `cpu.shares` accepted by the kernel.
pub const SHARES_RANGE: (u64, u64) = (2, 262_144);
/// Smallest and largest cgroup v2 `cpu.weight`.
pub const WEIGHT_RANGE: (u64, u64) = (1, 10_000);

/// CPU cores → CFS quota in microseconds for `period_us`, exactly as
/// `docker update --cpus` does (NanoCPUs × period / 10⁹), clamped up to the
/// kernel minimum of 1000 µs.
pub fn cores_to_quota(cores: f64, period_us: u64) -> Result<u64, UnitError> {
    if !cores.is_finite() || cores <= 0.0 {
        return Err(UnitError::Cores(cores.to_string()));
    }
    if !(1_000..=1_000_000).contains(&period_us) {
        return Err(UnitError::Period(period_us));
    }
    // Docker converts to integral nano-CPUs first; do the same so that the
    // quota matches `docker update --cpus` bit for bit.
    let nano = (cores * 1e9).round() as u128;
    let quota = nano * u128::from(period_us) / 1_000_000_000;
    let quota = u64::try_from(quota).unwrap_or(u64::MAX);
    Ok(quota.max(MIN_QUOTA_US))
}

/// CFS quota and period → CPU cores.
pub fn quota_to_cores(quota_us: u64, period_us: u64) -> f64 {
    quota_us as f64 / period_us.max(1) as f64
}

/// cgroup v1 `cpu.shares` → cgroup v2 `cpu.weight` with the formula runc,
/// crun and youki use: `1 + (shares - 2) × 9999 / 262142`.
pub fn shares_to_weight(shares: u64) -> Result<u64, UnitError> {
    if !(SHARES_RANGE.0..=SHARES_RANGE.1).contains(&shares) {
        return Err(UnitError::Shares(shares));
    }
    Ok(1 + ((shares - 2) * 9999) / 262_142)
}

/// cgroup v2 `cpu.weight` → cgroup v1 `cpu.shares`, the inverse of
/// [`shares_to_weight`] (rounding up, so `shares_to_weight(weight_to_shares(w)) == w`).
pub fn weight_to_shares(weight: u64) -> Result<u64, UnitError> {
    if !(WEIGHT_RANGE.0..=WEIGHT_RANGE.1).contains(&weight) {
        return Err(UnitError::Weight(weight));
    }
    Ok(2 + ((weight - 1) * 262_142).div_ceil(9999))
}

/// A limit that is either a number or unlimited (`max` in v2, `-1` in v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// No limit.
    Max,
    /// A finite limit (bytes, bytes/s or IO/s, depending on the file).
    Value(u64),
}

impl Limit {
    /// The finite value, or `None` when unlimited.
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Max => None,
            Limit::Value(v) => Some(v),
        }
    }

    /// Parses a cgroup v2 limit (`max` or a number).
    pub fn parse_v2(s: &str) -> Result<Limit, UnitError> {
        let t = s.trim();
        if t == "max" {
            return Ok(Limit::Max);
        }
        t.parse()
            .map(Limit::Value)
            .map_err(|_| UnitError::Limit(s.to_string()))
    }

    /// The cgroup v2 spelling: `max` or the number.
    pub fn to_v2(self) -> String {
        match self {
            Limit::Max => "max".to_string(),
            Limit::Value(v) => v.to_string(),
        }
    }

    /// Parses a cgroup v1 memory limit: `-1` or any value at or above the
    /// kernel's page-rounded `PAGE_COUNTER_MAX` reads as unlimited.
    pub fn parse_v1_bytes(s: &str) -> Result<Limit, UnitError> {
        let t = s.trim();
        if t == "-1" {
            return Ok(Limit::Max);
        }
        let v: u64 = t.parse().map_err(|_| UnitError::Limit(s.to_string()))?;
        // The kernel prints PAGE_COUNTER_MAX × PAGE_SIZE, e.g.
        // 9223372036854771712 with 4 KiB pages; anything this large is "no limit".
        if v >= V1_UNLIMITED_FLOOR {
            Ok(Limit::Max)
        } else {
            Ok(Limit::Value(v))
        }
    }

    /// The cgroup v1 spelling: `-1` or the number.
    pub fn to_v1(self) -> String {
        match self {
            Limit::Max => "-1".to_string(),
            Limit::Value(v) => v.to_string(),
        }
    }
}

/// Values at or above this in a v1 memory file mean "unlimited" (covers page
/// sizes up to 1 MiB below `i64::MAX`).
const V1_UNLIMITED_FLOOR: u64 = (i64::MAX as u64) & !((1 << 20) - 1);

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_v2())
    }
}

/// A set of CPUs or memory nodes, printed in the kernel's canonical list form
/// (`0-3,5`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CpuList(BTreeSet<u32>);

impl CpuList {
    /// The members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the list is empty (a fresh v1 cpuset cgroup reads so).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every member of `self` is in `other`.
    pub fn is_subset(&self, other: &CpuList) -> bool {
        self.0.is_subset(&other.0)
    }
}

impl FromIterator<u32> for CpuList {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        CpuList(iter.into_iter().collect())
    }
}

impl FromStr for CpuList {
    type Err = UnitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || UnitError::CpuList(s.to_string());
        let mut set = BTreeSet::new();
        for part in s.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => {
                    let a: u32 = a.trim().parse().map_err(|_| err())?;
                    let b: u32 = b.trim().parse().map_err(|_| err())?;
                    if a > b || b - a > 65_536 {
                        return Err(err());
                    }
                    set.extend(a..=b);
                }
                None => {
                    set.insert(part.parse().map_err(|_| err())?);
                }
            }
        }
        Ok(CpuList(set))
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut it = self.0.iter().copied().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&(end + 1)) {
                end += 1;
                it.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl TryFrom<String> for CpuList {
    type Error = UnitError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CpuList> for String {
    fn from(c: CpuList) -> String {
        c.to_string()
    }
}

/// A block device number, `major:minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl FromStr for DevNum {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || UnitError::Device(s.to_string());
        let (a, b) = s.trim().split_once(':').ok_or_else(err)?;
        Ok(DevNum {
            major: a.parse().map_err(|_| err())?,
            minor: b.parse().map_err(|_| err())?,
        })
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl TryFrom<String> for DevNum {
    type Error = UnitError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DevNum> for String {
    fn from(d: DevNum) -> String {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn docker_cpus_golden() {
        // `docker update --cpus 1.5` writes 150000 / 100000.
        assert_eq!(cores_to_quota(1.5, 100_000), Ok(150_000));
        assert_eq!(cores_to_quota(0.25, 100_000), Ok(25_000));
        assert_eq!(cores_to_quota(0.001, 100_000), Ok(1_000));
        assert_eq!(cores_to_quota(0.0001, 100_000), Ok(1_000));
        assert!(cores_to_quota(0.0, 100_000).is_err());
        assert!(cores_to_quota(f64::NAN, 100_000).is_err());
        assert_eq!(cores_to_quota(1.0, 999), Err(UnitError::Period(999)));
    }

    #[test]
    fn shares_weight_golden() {
        // Values from runc's ConvertCPUSharesToCgroupV2Value tests.
        assert_eq!(shares_to_weight(2), Ok(1));
        assert_eq!(shares_to_weight(1024), Ok(39));
        assert_eq!(shares_to_weight(262_144), Ok(10_000));
        assert_eq!(weight_to_shares(1), Ok(2));
        assert_eq!(weight_to_shares(10_000), Ok(262_144));
        assert!(shares_to_weight(1).is_err());
        assert!(weight_to_shares(0).is_err());
    }

    #[test]
    fn limits_parse() {
        assert_eq!(Limit::parse_v2("max\n"), Ok(Limit::Max));
        assert_eq!(Limit::parse_v2("4096"), Ok(Limit::Value(4096)));
        assert!(Limit::parse_v2("-1").is_err());
        assert_eq!(
            Limit::parse_v1_bytes("9223372036854771712\n"),
            Ok(Limit::Max)
        );
        assert_eq!(Limit::parse_v1_bytes("-1"), Ok(Limit::Max));
        assert_eq!(
            Limit::parse_v1_bytes("268435456"),
            Ok(Limit::Value(268_435_456))
        );
        assert_eq!(Limit::Max.to_v1(), "-1");
    }

    #[test]
    fn cpu_list_golden() {
        let l: CpuList = "0-3,5,7-8\n".parse().expect("parses");
        assert_eq!(l.to_string(), "0-3,5,7-8");
        assert_eq!(l.len(), 7);
        assert_eq!("".parse::<CpuList>().expect("empty").to_string(), "");
        assert_eq!(
            "3,1,2".parse::<CpuList>().expect("unordered").to_string(),
            "1-3"
        );
        assert!("3-1".parse::<CpuList>().is_err());
        assert!("a".parse::<CpuList>().is_err());
        assert_eq!(
            "254:0".parse::<DevNum>(),
            Ok(DevNum {
                major: 254,
                minor: 0
            })
        );
        assert!("254".parse::<DevNum>().is_err());
    }

    proptest! {
        #[test]
        fn quota_round_trip(cores in 0.01f64..512.0, period in 1_000u64..=1_000_000) {
            let q = cores_to_quota(cores, period).expect("valid");
            prop_assert!(q >= MIN_QUOTA_US);
            let back = quota_to_cores(q, period);
            // Exact up to one microsecond of quota (integer truncation), or
            // the clamp to the kernel minimum.
            if q > MIN_QUOTA_US {
                prop_assert!((back - cores).abs() <= 1.0 / period as f64 + 1e-9,
                    "cores {cores} period {period} quota {q} back {back}");
            } else {
                prop_assert!(cores <= quota_to_cores(MIN_QUOTA_US + 1, period));
            }
        }

        #[test]
        fn quota_monotonic(a in 0.01f64..64.0, b in 0.01f64..64.0) {
            let (qa, qb) = (cores_to_quota(a, 100_000).expect("a"), cores_to_quota(b, 100_000).expect("b"));
            if a <= b { prop_assert!(qa <= qb) } else { prop_assert!(qa >= qb) }
        }

        #[test]
        fn shares_weight_in_range_and_monotonic(a in 2u64..=262_144, b in 2u64..=262_144) {
            let (wa, wb) = (shares_to_weight(a).expect("a"), shares_to_weight(b).expect("b"));
            prop_assert!((1..=10_000).contains(&wa));
            if a <= b { prop_assert!(wa <= wb) }
        }

        #[test]
        fn weight_shares_weight_is_identity(w in 1u64..=10_000) {
            let s = weight_to_shares(w).expect("valid");
            prop_assert!((2..=262_144).contains(&s));
            prop_assert_eq!(shares_to_weight(s).expect("valid"), w);
        }

        #[test]
        fn cpu_list_round_trip(set in proptest::collection::btree_set(0u32..256, 0..40)) {
            let l: CpuList = set.iter().copied().collect();
            let back: CpuList = l.to_string().parse().expect("reparses");
            prop_assert_eq!(back, l);
        }

        #[test]
        fn v2_limit_round_trip(v in proptest::option::of(any::<u64>())) {
            let l = v.map_or(Limit::Max, Limit::Value);
            prop_assert_eq!(Limit::parse_v2(&l.to_v2()).expect("reparses"), l);
        }

        #[test]
        fn v1_limit_round_trip(v in proptest::option::of(0u64..(1 << 62))) {
            let l = v.map_or(Limit::Max, Limit::Value);
            prop_assert_eq!(Limit::parse_v1_bytes(&l.to_v1()).expect("reparses"), l);
        }
    }
}
