//! Monitoring: the `mon_data/mon_L3_XX/` counters of a group, and rates
//! over an interval (pure).

use std::collections::BTreeMap;
use std::time::Duration;

/// Counters of one L3 domain, as read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Bytes of L3 held (`llc_occupancy`), if offered and available.
    pub llc_occupancy: Option<u64>,
    /// Bytes moved to and from all memory since the RMID was allocated.
    pub mbm_total_bytes: Option<u64>,
    /// Bytes moved to and from local memory.
    pub mbm_local_bytes: Option<u64>,
}

/// One reading of a group's counters, per domain id.
pub type Sample = BTreeMap<u32, Counters>;

/// Rates of one domain over an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Rates {
    /// L3 occupancy at the end of the interval, bytes.
    pub llc_occupancy: Option<u64>,
    /// Total memory bandwidth, bytes/s.
    pub mbm_total_bps: Option<f64>,
    /// Local memory bandwidth, bytes/s.
    pub mbm_local_bps: Option<f64>,
}

/// Parse one counter file. The kernel prints `Unavailable` or `Error`
/// when the hardware gives no value.
pub fn parse_counter(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Domain id from a `mon_data` directory name (`mon_L3_01` → 1).
pub fn domain_of(dir: &str) -> Option<u32> {
    dir.strip_prefix("mon_L3_")?.parse().ok()
}

fn rate(a: Option<u64>, b: Option<u64>, secs: f64) -> Option<f64> {
    match (a, b) {
        // A counter that went back was reset (RMID reallocated): no rate.
        (Some(a), Some(b)) if b >= a && secs > 0.0 => Some((b - a) as f64 / secs),
        _ => None,
    }
}

/// Bytes/s between two samples taken `elapsed` apart.
pub fn rates(before: &Sample, after: &Sample, elapsed: Duration) -> BTreeMap<u32, Rates> {
    let secs = elapsed.as_secs_f64();
    after
        .iter()
        .map(|(d, b)| {
            let a = before.get(d).copied().unwrap_or_default();
            (
                *d,
                Rates {
                    llc_occupancy: b.llc_occupancy,
                    mbm_total_bps: rate(a.mbm_total_bytes, b.mbm_total_bytes, secs),
                    mbm_local_bps: rate(a.mbm_local_bytes, b.mbm_local_bytes, secs),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_interval() {
        let c = |t, l| Counters {
            llc_occupancy: Some(1 << 20),
            mbm_total_bytes: Some(t),
            mbm_local_bytes: Some(l),
        };
        let before: Sample = [(0, c(1_000, 500)), (1, c(5_000, 0))].into();
        let after: Sample = [(0, c(201_000, 100_500)), (1, c(4_000, 0))].into();
        let r = rates(&before, &after, Duration::from_millis(500));
        assert_eq!(r[&0].mbm_total_bps, Some(400_000.0));
        assert_eq!(r[&0].mbm_local_bps, Some(200_000.0));
        assert_eq!(r[&0].llc_occupancy, Some(1 << 20));
        assert_eq!(r[&1].mbm_total_bps, None, "counter reset gives no rate");
        assert_eq!(parse_counter("Unavailable\n"), None);
        assert_eq!(parse_counter("123\n"), Some(123));
        assert_eq!(domain_of("mon_L3_07"), Some(7));
    }
}
