//! Synthetic labelled datasets for tests, benchmarks and demos when no simulator
//! run is at hand.
//!
//! A chain of services `svc-0 → svc-1 → …` (callers first, as in topological
//! order) behind one entry point. A fault makes one service's queue rise over a
//! few ticks; its callers' queues follow one tick later per hop, scaled down, and
//! the entry point violates its target once the rise completes. Decoys (short
//! spikes in a random service) and load surges (every queue up a little) add
//! alarms that a good model must ignore. The culprit is the service whose queue
//! rose *first*, which is what the predictor has to learn.

use crate::features::{Channel, FeatureError, Normalizer, Series};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seer_traces::tick::{DEFAULT_INTERVAL_NS, EntryTick, QueueSource, ServiceTick};
use seer_traces::{Dataset, DatasetMeta, QosSpec, Resource};

/// Shape of a synthetic dataset.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Services in the chain.
    pub n_services: usize,
    /// Ticks.
    pub n_ticks: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// Probability that a fault starts at a tick when none is active.
    pub fault_rate: f64,
    /// Ticks over which the culprit's queue rises before the violation.
    pub rise_ticks: usize,
    /// Ticks the violation lasts.
    pub fault_ticks: usize,
    /// Probability of a decoy spike per tick.
    pub decoy_rate: f64,
    /// Relative noise on every queue.
    pub noise: f32,
    /// First service names get this prefix.
    pub prefix: String,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            n_services: 8,
            n_ticks: 2000,
            seed: 1,
            fault_rate: 0.02,
            rise_ticks: 4,
            fault_ticks: 8,
            decoy_rate: 0.03,
            noise: 0.15,
            prefix: "svc".into(),
        }
    }
}

/// Names of the synthetic services: `{prefix}-{i}`.
pub fn synth_services(cfg: &SynthConfig) -> Vec<String> {
    (0..cfg.n_services)
        .map(|i| format!("{}-{i}", cfg.prefix))
        .collect()
}

/// `ds` as queue-depth features normalised on its first `training` ticks and
/// labelled `h` ticks ahead: the usual set-up of tests and examples.
pub fn queue_series(ds: &Dataset, training: usize, h: usize) -> Result<Series, FeatureError> {
    let norm = Normalizer::fit(
        &[ds],
        &[vec![true; training]],
        &ds.meta.services,
        &[Channel::Queue],
    )?;
    Series::new(ds, &norm, h)
}

/// Builds a labelled dataset (see the module docs).
pub fn synth_dataset(cfg: &SynthConfig) -> Dataset {
    let (nt, ns) = (cfg.n_ticks, cfg.n_services.max(1));
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let base: Vec<f32> = (0..ns)
        .map(|s| 2.0 + (s % 3) as f32 + rng.random::<f32>())
        .collect();
    let mut extra = vec![0f32; nt * ns];
    let mut violation = vec![false; nt];
    let mut culprit = vec![None; nt * ns];
    let mut t = 0;
    while t < nt {
        if rng.random_bool(cfg.fault_rate.clamp(0.0, 1.0)) {
            let c = rng.random_range(0..ns);
            let amp = 6.0 + 6.0 * rng.random::<f32>();
            let (r, d) = (cfg.rise_ticks.max(1), cfg.fault_ticks.max(1));
            for k in 0..r + d {
                let tt = t + k;
                if tt >= nt {
                    break;
                }
                let level = amp * ((k + 1) as f32 / r as f32).min(1.0);
                extra[tt * ns + c] += level;
                // Callers (lower indices) feel it one tick later per hop, weaker.
                for u in 0..c {
                    let hop = c - u;
                    let lagged = k.checked_sub(hop).map_or(0.0, |kk| {
                        amp * ((kk + 1) as f32 / r as f32).min(1.0) * 0.5f32.powi(hop as i32)
                    });
                    extra[tt * ns + u] += lagged;
                }
                culprit[tt * ns + c] = Some(Resource::Cpu);
                if k >= r {
                    violation[tt] = true;
                }
            }
            t += r + d + 2;
            continue;
        }
        if rng.random_bool(cfg.decoy_rate.clamp(0.0, 1.0)) {
            let s = rng.random_range(0..ns);
            let amp = 4.0 + 8.0 * rng.random::<f32>();
            extra[t * ns + s] += amp;
            if t + 1 < nt {
                extra[(t + 1) * ns + s] += amp * 0.5;
            }
        }
        t += 1;
    }
    let mut service = Vec::with_capacity(nt * ns);
    let mut entry = Vec::with_capacity(nt);
    for t in 0..nt {
        for s in 0..ns {
            let q = (base[s] + extra[t * ns + s])
                * (1.0 + cfg.noise * (rng.random::<f32>() - 0.5) * 2.0);
            let arrivals = 50 + rng.random_range(0..10u32);
            let p99 = 2.0 + q * 1.5;
            service.push(ServiceTick {
                queue_mean: q.max(0.0),
                queue_max: q.ceil().max(0.0) as u32,
                arrivals,
                completions: arrivals,
                errors: 0,
                p50_ms: p99 / 3.0,
                p95_ms: p99 / 1.5,
                p99_ms: p99,
                // A chain with one worker per service: the waiting part is what
                // exceeds the one request in service.
                wait_mean: (q - 1.0).max(0.0),
                cpu_util: q.clamp(0.0, 1.0),
                // Each call spends 1 ms on the wire.
                hop_mean: arrivals as f32 * 1e-3 / (DEFAULT_INTERVAL_NS as f32 * 1e-9),
            });
        }
        let p99 = if violation[t] {
            40.0 + 10.0 * rng.random::<f32>()
        } else {
            10.0 + 3.0 * rng.random::<f32>()
        };
        entry.push(EntryTick {
            requests: 100,
            errors: 0,
            p99_ms: p99,
            p99_window_ms: p99,
        });
    }
    let qos = QosSpec::default();
    let h = crate::features::horizon_ticks(qos.horizon_ns, DEFAULT_INTERVAL_NS);
    let violation_within = (0..nt)
        .map(|t| (t + 1..=(t + h).min(nt - 1)).any(|u| violation[u]))
        .collect();
    Dataset {
        meta: DatasetMeta {
            version: seer_traces::dataset::DATASET_VERSION,
            interval_ns: DEFAULT_INTERVAL_NS,
            start_ns: 1_700_000_000_000_000_000,
            n_ticks: nt,
            services: synth_services(cfg),
            entries: vec!["/api".into()],
            queue_source: QueueSource::Spans,
            qos,
            targets_ms: vec![20.0],
            qos_min_requests: 0,
            origin: format!("synthetic chain of {ns} services, seed {}", cfg.seed),
            late_spans: 0,
            calls_paired: 0,
        },
        service,
        entry,
        violation,
        violation_within,
        culprit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_dataset_is_consistent_and_seeded() {
        let cfg = SynthConfig {
            n_ticks: 600,
            ..Default::default()
        };
        let a = synth_dataset(&cfg);
        a.check_shape().unwrap();
        assert_eq!(a, synth_dataset(&cfg));
        let violations = a.violation.iter().filter(|&&v| v).count();
        assert!(violations > 20, "only {violations} violating ticks");
        assert!(violations < 300, "{violations} violating ticks");
        // Every violating tick has exactly one culprit.
        for t in 0..a.n_ticks() {
            if a.violation[t] {
                assert_eq!(a.culprits_at(t).count(), 1, "tick {t}");
            }
        }
    }

    #[test]
    fn synthetic_dataset_round_trips_through_parquet() {
        let ds = synth_dataset(&SynthConfig {
            n_ticks: 50,
            n_services: 3,
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.parquet");
        ds.write_parquet(&p).unwrap();
        let back = Dataset::read_parquet(&p).unwrap();
        assert_eq!(back.service.len(), ds.service.len());
        assert_eq!(back.culprit, ds.culprit);
        assert_eq!(back.violation, ds.violation);
    }
}
