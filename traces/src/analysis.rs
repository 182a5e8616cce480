//! Simple analyses over datasets: the "largest queue rise" rule.
//!
//! For a fault injected at `t`, compare each service's mean queue depth in the
//! window after `t` with its mean in the same-length window before `t`. The rule
//! names the service whose queue rose most as the culprit: the first baseline
//! Seer's predictor must beat. Both the absolute rise (requests) and the relative
//! rise (`after / before`, with the baseline floored at 0.05 requests so idle
//! services do not win by dividing by zero) are reported.

use crate::dataset::Dataset;

/// Floor of the baseline in the relative rise, requests.
pub const BASELINE_FLOOR: f64 = 0.05;

/// One service's rise around a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Rise {
    /// Service name.
    pub service: String,
    /// Mean queue depth before.
    pub before: f64,
    /// Mean queue depth after.
    pub after: f64,
}

impl Rise {
    /// `after − before`.
    pub fn absolute(&self) -> f64 {
        self.after - self.before
    }

    /// `after / max(before, floor)`.
    pub fn relative(&self) -> f64 {
        self.after / self.before.max(BASELINE_FLOOR)
    }
}

/// Every service's rise around `at_ns` with windows of `window_ns` on each side;
/// `None` when the traces do not cover both windows: at least half of the seconds
/// of each window must have requests (trace files of some minutes may be missing).
pub fn rises(ds: &Dataset, at_ns: u64, window_ns: u64) -> Option<Vec<Rise>> {
    let iv = ds.meta.interval_ns;
    let start = ds.meta.start_ns;
    let end = start + ds.n_ticks() as u64 * iv;
    if at_ns <= start || at_ns >= end {
        return None;
    }
    let t_at = ((at_ns - start) / iv) as usize;
    let w = (window_ns / iv).max(1) as usize;
    let (b0, b1) = (t_at.saturating_sub(w), t_at);
    let (a0, a1) = (t_at, (t_at + w).min(ds.n_ticks()));
    if b1 == b0 || a1 == a0 {
        return None;
    }
    let ns = ds.n_services();
    // Coverage is judged per second, so sparse traces at 100 ms still count.
    let per_s = (1_000_000_000 / iv).max(1) as usize;
    let covered = |r: std::ops::Range<usize>| {
        let start = r.start;
        let mut busy = std::collections::BTreeSet::new();
        for t in r.filter(|&t| ds.services_at(t).iter().any(|s| s.arrivals > 0)) {
            busy.insert((t - start) / per_s);
        }
        2 * busy.len() >= w.div_ceil(per_s)
    };
    if !covered(b0..b1) || !covered(a0..a1) {
        return None;
    }
    let mean = |s: usize, r: std::ops::Range<usize>| {
        let n = r.len() as f64;
        r.map(|t| ds.service[t * ns + s].queue_mean as f64)
            .sum::<f64>()
            / n
    };
    Some(
        (0..ns)
            .map(|s| Rise {
                service: ds.meta.services[s].clone(),
                before: mean(s, b0..b1),
                after: mean(s, a0..a1),
            })
            .collect(),
    )
}

/// The service with the largest rise by `key` (ties: the earlier one in service order).
pub fn largest(rises: &[Rise], key: impl Fn(&Rise) -> f64) -> Option<&Rise> {
    rises
        .iter()
        .fold(None, |best: Option<&Rise>, r| match best {
            Some(b) if key(b) >= key(r) => Some(b),
            _ => Some(r),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QosSpec;
    use crate::pipeline::{Pipeline, PipelineConfig};
    use crate::span::{Span, SpanKind};

    #[test]
    fn the_service_whose_queue_grows_is_named() {
        let mut p = Pipeline::new(PipelineConfig::default());
        let ms = 1_000_000u64;
        let t0 = 1_700_000_000_000 * ms;
        let mut id = 1;
        for i in 0..200u64 {
            // "slow" takes 5 ms before t0+10 s and 60 ms after; "fast" 10 ms always.
            for (svc, dur) in [("fast", 10), ("slow", if i >= 100 { 60 } else { 5 })] {
                p.push(&Span {
                    trace_id: id as u128,
                    span_id: id,
                    service: svc.into(),
                    operation: "op".into(),
                    kind: SpanKind::Server,
                    start_ns: t0 + i * 100 * ms,
                    end_ns: t0 + i * 100 * ms + dur * ms,
                    ..Default::default()
                });
                id += 1;
            }
        }
        let ds = p.finish(&QosSpec::default(), &[], "t".into());
        let r = rises(&ds, t0 + 10_000 * ms, 5_000 * ms).unwrap();
        assert_eq!(largest(&r, Rise::absolute).unwrap().service, "slow");
        assert_eq!(largest(&r, Rise::relative).unwrap().service, "slow");
        assert!(rises(&ds, t0 - 1, 1000 * ms).is_none());
        assert!(
            rises(&ds, t0 + 19_900 * ms, 5_000 * ms).is_none(),
            "after-window mostly beyond the data"
        );
    }
}
