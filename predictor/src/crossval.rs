//! Leave-faults-out cross-validation on datasets with labelled fault injections
//! but no usable QoS labels (the Nezha days): can the model name the injected
//! service of a fault it never saw?
//!
//! - Fault episodes are the runs of ticks where a service carries a culprit label.
//!   They are dealt round-robin into `k` folds.
//! - For each fold a model is trained on the data outside the held-out faults
//!   (each held-out fault's ticks plus a margin on both sides are cut out), with
//!   every tick of an active fault labelled as "violation, initiated by the faulty
//!   service": the traces carry no QoS targets for these systems, so the task is
//!   to localise the fault from queue depths alone.
//! - Only stretches of ticks where spans arrived (silences under 10 s included)
//!   are used, so windows never span a gap in the collection; a fault is judged
//!   when the traces cover at least half of it.
//! - A held-out fault is scored by averaging the model's per-service
//!   probabilities over its ticks: top-1 / top-3 say whether the injected service
//!   ranks first / in the first three. The largest-queue-rise rule (mean queue in
//!   the fault vs the same length before it) is scored on the same faults.

use crate::checkpoint::Model;
use crate::eval::score_model;
use crate::features::{Series, horizon_ticks};
use crate::train::{TrainConfig, TrainError, train};
use seer_traces::{Dataset, Resource};
use serde::Serialize;
use std::ops::Range;

/// One fault: service `service` short of `resource` during ticks `ticks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultEpisode {
    /// Service index in the dataset.
    pub service: usize,
    /// Resource.
    pub resource: Resource,
    /// Ticks.
    pub ticks: Range<usize>,
}

/// Whether a fault is a shared-resource fault (CPU, cache, memory, network,
/// disk) rather than load or an application fault.
pub fn is_resource_fault(r: Resource) -> bool {
    !matches!(r, Resource::Load | Resource::App)
}

/// The fault episodes of a dataset, in time order.
pub fn fault_episodes(ds: &Dataset) -> Vec<FaultEpisode> {
    let ns = ds.n_services();
    let mut out = Vec::new();
    for s in 0..ns {
        let mut t = 0;
        while t < ds.n_ticks() {
            match ds.culprit[t * ns + s] {
                Some(r) => {
                    let start = t;
                    while t < ds.n_ticks() && ds.culprit[t * ns + s] == Some(r) {
                        t += 1;
                    }
                    out.push(FaultEpisode {
                        service: s,
                        resource: r,
                        ticks: start..t,
                    });
                }
                None => t += 1,
            }
        }
    }
    out.sort_by_key(|f| (f.ticks.start, f.service));
    out
}

/// Stretches of ticks with spans, joined over gaps shorter than `max_gap` ticks
/// and at least `min_len` ticks long.
pub fn active_segments(ds: &Dataset, max_gap: usize, min_len: usize) -> Vec<Range<usize>> {
    let active = |t: usize| ds.services_at(t).iter().any(|r| r.arrivals > 0);
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut t = 0;
    while t < ds.n_ticks() {
        if !active(t) {
            t += 1;
            continue;
        }
        let start = t;
        let mut last = t;
        while t < ds.n_ticks() && t - last <= max_gap {
            if active(t) {
                last = t;
            }
            t += 1;
        }
        let r = start..last + 1;
        if r.len() >= min_len {
            out.push(r);
        }
    }
    out
}

/// `a` minus the union of `holes`.
fn subtract(a: &Range<usize>, holes: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut out = vec![a.clone()];
    for h in holes {
        out = out
            .into_iter()
            .flat_map(|r| {
                let mut v = Vec::new();
                if h.start > r.start {
                    v.push(r.start..h.start.min(r.end));
                }
                if h.end < r.end {
                    v.push(h.end.max(r.start)..r.end);
                }
                v.into_iter().filter(|x| !x.is_empty())
            })
            .collect();
    }
    out
}

/// Every tick of an active fault becomes a violation of every entry point (see
/// the module docs), so the labels name the faulty service.
fn faults_as_violations(ds: &Dataset) -> Dataset {
    let mut d = ds.clone();
    let (ns, ne) = (d.n_services(), d.n_entries().max(1));
    if d.n_entries() == 0 {
        d.meta.entries = vec!["fault".into()];
        d.meta.targets_ms = vec![f64::INFINITY];
        d.entry = vec![Default::default(); d.n_ticks()];
    }
    d.violation = (0..d.n_ticks())
        .flat_map(|t| {
            let on = d.culprit[t * ns..(t + 1) * ns].iter().any(Option::is_some);
            std::iter::repeat_n(on, ne)
        })
        .collect();
    d.violation_within = d.violation.clone();
    d
}

/// Cross-validation settings.
#[derive(Debug, Clone)]
pub struct CrossvalConfig {
    /// Folds.
    pub folds: usize,
    /// Ticks cut out on both sides of a held-out fault.
    pub margin: usize,
    /// Training settings of every fold's model.
    pub train: TrainConfig,
}

/// The verdict on one held-out fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultVerdict {
    /// Service name.
    pub service: String,
    /// Resource.
    pub resource: Resource,
    /// First tick.
    pub start: usize,
    /// Ticks.
    pub len: usize,
    /// Rank of the injected service by the model (1 = first).
    pub model_rank: usize,
    /// Rank by the largest queue rise.
    pub rise_rank: usize,
}

/// Top-1 / top-3 shares over a set of faults.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    /// Faults.
    pub faults: usize,
    /// Model top-1, %.
    pub model_top1: f64,
    /// Model top-3, %.
    pub model_top3: f64,
    /// Largest-rise top-1, %.
    pub rise_top1: f64,
    /// Largest-rise top-3, %.
    pub rise_top3: f64,
}

impl Scores {
    fn of<'a>(v: impl Iterator<Item = &'a FaultVerdict>) -> Scores {
        let v: Vec<&FaultVerdict> = v.collect();
        let pct = |f: &dyn Fn(&FaultVerdict) -> bool| {
            100.0 * v.iter().filter(|x| f(x)).count() as f64 / v.len().max(1) as f64
        };
        Scores {
            faults: v.len(),
            model_top1: pct(&|x| x.model_rank == 1),
            model_top3: pct(&|x| x.model_rank <= 3),
            rise_top1: pct(&|x| x.rise_rank == 1),
            rise_top3: pct(&|x| x.rise_rank <= 3),
        }
    }
}

/// The result.
#[derive(Debug, Clone, Serialize)]
pub struct CrossvalReport {
    /// Every held-out fault.
    pub verdicts: Vec<FaultVerdict>,
    /// Shared-resource faults only.
    pub resource: Scores,
    /// All faults.
    pub all: Scores,
}

fn rank_of(scores: &[f64], target: usize) -> usize {
    1 + scores
        .iter()
        .enumerate()
        .filter(|&(i, &v)| i != target && v > scores[target])
        .count()
}

/// Runs the cross-validation on one dataset; `progress(fold, folds)` is called
/// before each fold.
pub fn crossval(
    ds: &Dataset,
    cfg: &CrossvalConfig,
    mut progress: impl FnMut(usize, usize),
) -> Result<CrossvalReport, TrainError> {
    if cfg.folds < 2 {
        return Err(TrainError::Config(format!(
            "{} folds: need at least 2",
            cfg.folds
        )));
    }
    let w = cfg.train.window;
    let h = horizon_ticks(cfg.train.horizon_ns, ds.meta.interval_ns);
    let labelled = faults_as_violations(ds);
    // Silences up to 10 s are quiet time, not a gap in the collection.
    let max_gap = (10_000_000_000 / ds.meta.interval_ns.max(1)).max(1) as usize;
    let segments = active_segments(ds, max_gap, w + h + 2);
    // Only faults the traces cover (at least half of their ticks) can be judged;
    // each is clipped to the traced stretch it lies in.
    let faults: Vec<FaultEpisode> = fault_episodes(ds)
        .into_iter()
        .filter_map(|f| {
            segments.iter().find_map(|s| {
                let r = f.ticks.start.max(s.start)..f.ticks.end.min(s.end);
                (r.len() * 2 >= f.ticks.len()).then(|| FaultEpisode {
                    ticks: r,
                    ..f.clone()
                })
            })
        })
        .collect();
    if faults.len() < cfg.folds {
        return Err(TrainError::Config(format!(
            "{} faults inside traced time, fewer than {} folds",
            faults.len(),
            cfg.folds
        )));
    }
    let ns = ds.n_services();
    let mut verdicts = Vec::new();
    for fold in 0..cfg.folds {
        progress(fold, cfg.folds);
        let held: Vec<&FaultEpisode> = faults
            .iter()
            .enumerate()
            .filter(|(i, _)| i % cfg.folds == fold)
            .map(|(_, f)| f)
            .collect();
        let holes: Vec<Range<usize>> = held
            .iter()
            .map(|f| f.ticks.start.saturating_sub(cfg.margin)..f.ticks.end + cfg.margin)
            .collect();
        let parts: Vec<Dataset> = segments
            .iter()
            .flat_map(|s| subtract(s, &holes))
            .filter(|r| r.len() >= 5 * (w + h))
            .map(|r| labelled.slice(r))
            .collect();
        let refs: Vec<&Dataset> = parts.iter().collect();
        let model: Model = train(&refs, &cfg.train, None, &mut |_| {})?.model;
        for f in held {
            let seg = segments
                .iter()
                .find(|s| s.start <= f.ticks.start && f.ticks.end <= s.end)
                .cloned()
                .unwrap_or(0..ds.n_ticks());
            let from = f.ticks.start.saturating_sub(w - 1).max(seg.start);
            let part = labelled.slice(from..f.ticks.end);
            let series = Series::new(&part, &model.header.normalizer, h)?;
            let ends: Vec<usize> = (f.ticks.start - from..part.n_ticks())
                .filter(|&t| t + 1 >= w)
                .collect();
            let probs = score_model(&model, &series, &ends);
            let mut mean = vec![0f64; ns];
            for p in &probs {
                for (m, v) in mean.iter_mut().zip(p) {
                    *m += f64::from(*v) / probs.len().max(1) as f64;
                }
            }
            // The model's services are in its own order; map back by name.
            let by_name: Vec<f64> = ds
                .meta
                .services
                .iter()
                .map(|n| {
                    model
                        .header
                        .services
                        .iter()
                        .position(|m| m == n)
                        .map_or(0.0, |i| mean[i])
                })
                .collect();
            // Largest rise: mean queue during the fault minus the same length before.
            let len = f.ticks.len();
            let before = f.ticks.start.saturating_sub(len).max(seg.start)..f.ticks.start;
            let mean_q = |r: &Range<usize>, s: usize| {
                r.clone()
                    .map(|t| f64::from(ds.service[t * ns + s].queue_mean))
                    .sum::<f64>()
                    / r.len().max(1) as f64
            };
            let rise: Vec<f64> = (0..ns)
                .map(|s| mean_q(&f.ticks, s) - mean_q(&before, s))
                .collect();
            verdicts.push(FaultVerdict {
                service: ds.meta.services[f.service].clone(),
                resource: f.resource,
                start: f.ticks.start,
                len,
                model_rank: rank_of(&by_name, f.service),
                rise_rank: rank_of(&rise, f.service),
            });
        }
    }
    verdicts.sort_by_key(|v| v.start);
    Ok(CrossvalReport {
        resource: Scores::of(verdicts.iter().filter(|v| is_resource_fault(v.resource))),
        all: Scores::of(verdicts.iter()),
        verdicts,
    })
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_cut_out_of_ranges() {
        assert_eq!(
            subtract(&(0..100), &[10..20, 50..60]),
            [0..10, 20..50, 60..100]
        );
        assert_eq!(subtract(&(0..10), &[0..20]), Vec::<Range<usize>>::new());
        assert_eq!(subtract(&(5..10), &[0..7]), [7..10]);
    }

    #[test]
    fn held_out_faults_are_named_on_synthetic_data() {
        let ds = crate::synth::synth_dataset(&crate::synth::SynthConfig {
            n_services: 6,
            n_ticks: 3000,
            seed: 3,
            ..Default::default()
        });
        let n_faults = fault_episodes(&ds).len();
        assert!(n_faults >= 6, "{n_faults} faults");
        let cfg = CrossvalConfig {
            folds: 2,
            margin: 10,
            train: TrainConfig {
                epochs: 3,
                batch_size: 64,
                window: 8,
                device: tch::Device::Cpu,
                horizon_ns: ds.meta.interval_ns,
                ..TrainConfig::default()
            },
        };
        let mut folds = Vec::new();
        let r = crossval(&ds, &cfg, |f, n| folds.push((f, n))).unwrap();
        assert_eq!(folds, [(0, 2), (1, 2)]);
        // Every fault is judged exactly once, in time order.
        assert_eq!(r.verdicts.len(), n_faults);
        assert!(r.verdicts.windows(2).all(|w| w[0].start <= w[1].start));
        assert_eq!(r.all.faults, n_faults);
        // The synthetic culprit's queue rises: both the rule and the model, trained
        // without the fault, find it far more often than chance (1 in 6).
        assert!(r.all.rise_top1 > 60.0, "{:?}", r.all);
        assert!(r.all.model_top1 > 40.0, "{:?}", r.all);
    }

    #[test]
    fn too_few_faults_or_folds_are_refused() {
        let ds = crate::synth::synth_dataset(&crate::synth::SynthConfig {
            n_services: 4,
            n_ticks: 400,
            ..Default::default()
        });
        let cfg = |folds| CrossvalConfig {
            folds,
            margin: 10,
            train: TrainConfig::default(),
        };
        assert!(
            crossval(&ds, &cfg(1), |_, _| {})
                .unwrap_err()
                .to_string()
                .contains("at least 2")
        );
        assert!(
            crossval(&ds, &cfg(1000), |_, _| {})
                .unwrap_err()
                .to_string()
                .contains("fewer than 1000 folds")
        );
    }

    #[test]
    fn ranks_count_strictly_better_services() {
        assert_eq!(rank_of(&[0.1, 0.5, 0.3], 1), 1);
        assert_eq!(rank_of(&[0.1, 0.5, 0.3], 0), 3);
        assert_eq!(rank_of(&[0.5, 0.5], 1), 1);
    }
}
