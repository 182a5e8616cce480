//! Baselines scored on the same windows as the networks:
//! - [`QueueThreshold`]: alarm when a service's queue depth (z-score against its
//!   training mean) passes a threshold; the culprit is the deepest queue;
//! - [`UtilisationThreshold`]: alarm when a service's CPU utilisation passes a
//!   threshold, as a utilisation-driven autoscaler would; the culprit is the
//!   busiest service;
//! - [`QosThreshold`]: alarm when the application's QoS ratio (worst entry
//!   point's p99 over the last second against its target) passes a threshold,
//!   as an SLO alert would; the culprit is the deepest queue;
//! - [`LargestRise`]: alarm when a service's queue rose by more than a threshold
//!   over the last few ticks; the culprit is the largest rise;
//! - [`Linfa`]: a linfa multinomial logistic regression or decision tree on the
//!   flattened normalised window.
//!
//! Thresholds are tuned on the training series to maximise the F1 score of
//! tick-level alarms.

use crate::eval::Scorer;
use crate::features::{Label, Series};
use linfa::prelude::*;
use linfa_logistic::{MultiFittedLogisticRegression, MultiLogisticRegression};
use linfa_trees::DecisionTree;
use ndarray::{Array1, Array2};

/// Errors fitting a baseline.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// linfa refused the data.
    #[error("fitting {model} on {samples} windows of {features} features failed: {message}")]
    Fit {
        /// The model.
        model: &'static str,
        /// Samples.
        samples: usize,
        /// Features per sample.
        features: usize,
        /// linfa's message.
        message: String,
    },
    /// No labelled training windows.
    #[error("no labelled training windows for the baselines")]
    NoData,
}

/// Per-service mean and deviation of the raw queue depth.
#[derive(Debug, Clone)]
struct QueueStats {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl QueueStats {
    fn fit(series: &[Series]) -> QueueStats {
        let ns = series[0].n_services;
        let (mut s, mut q, mut n) = (vec![0f64; ns], vec![0f64; ns], 0f64);
        for se in series {
            for t in 0..se.n_ticks {
                for i in 0..ns {
                    let v = f64::from(se.queue[t * ns + i]);
                    s[i] += v;
                    q[i] += v * v;
                }
                n += 1.0;
            }
        }
        let n = n.max(1.0);
        let mean: Vec<f32> = s.iter().map(|v| (v / n) as f32).collect();
        let std = q
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / n - f64::from(*m).powi(2)).max(0.0).sqrt() as f32).max(0.1))
            .collect();
        QueueStats { mean, std }
    }

    fn z(&self, se: &Series, t: usize, s: usize) -> f32 {
        (se.queue[t * se.n_services + s] - self.mean[s]) / self.std[s]
    }

    /// Every service's z-score at tick `t`.
    fn zs(&self, se: &Series, t: usize) -> Vec<f32> {
        (0..se.n_services).map(|s| self.z(se, t, s)).collect()
    }
}

/// Turns per-service scores and an alarm decision into probabilities.
fn to_probs(scores: &[f32], alarm: bool) -> Vec<f32> {
    graded_probs(scores, if alarm { 1.0 } else { 1e-3 })
}

/// Per-service scores as probabilities (a softmax over them) sharing
/// P(violation) = `mass`; "no violation" gets the rest.
fn graded_probs(scores: &[f32], mass: f32) -> Vec<f32> {
    let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
    let sum: f32 = e.iter().sum::<f32>().max(1e-12);
    let mut p: Vec<f32> = e.iter().map(|v| v / sum * mass).collect();
    p.push(1.0 - mass);
    p
}

/// Picks the threshold on `score(t)` with the best F1 of alarms vs violation labels.
fn tune(series: &[Series], window: usize, score: &dyn Fn(&Series, usize) -> f32) -> f32 {
    let mut pts: Vec<(f32, bool)> = Vec::new();
    for se in series {
        for t in se.window_ends(window) {
            if let Some(l) = &se.labels[t] {
                pts.push((score(se, t), l.is_violation()));
            }
        }
    }
    let positives = pts.iter().filter(|p| p.1).count();
    if positives == 0 || pts.is_empty() {
        return f32::INFINITY;
    }
    pts.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp, mut best, mut best_f1) = (0usize, 0usize, f32::INFINITY, -1f64);
    for (i, &(s, pos)) in pts.iter().enumerate() {
        if pos {
            tp += 1
        } else {
            fp += 1
        }
        // Only between distinct scores.
        if i + 1 < pts.len() && pts[i + 1].0 == s {
            continue;
        }
        let prec = tp as f64 / (tp + fp) as f64;
        let rec = tp as f64 / positives as f64;
        let f1 = 2.0 * prec * rec / (prec + rec).max(1e-12);
        if f1 > best_f1 {
            (best_f1, best) = (f1, s);
        }
    }
    best
}

/// Alarm when the deepest queue (z-score) passes a tuned threshold.
#[derive(Debug, Clone)]
pub struct QueueThreshold {
    stats: QueueStats,
    /// The tuned z-score threshold.
    pub threshold: f32,
}

impl QueueThreshold {
    /// Fits statistics and threshold on the training series.
    pub fn fit(train: &[Series], window: usize) -> QueueThreshold {
        let stats = QueueStats::fit(train);
        let st = stats.clone();
        let threshold = tune(train, window, &|se, t| {
            (0..se.n_services)
                .map(|s| st.z(se, t, s))
                .fold(f32::NEG_INFINITY, f32::max)
        });
        QueueThreshold { stats, threshold }
    }
}

impl Scorer for QueueThreshold {
    fn name(&self) -> String {
        "queue-depth threshold".into()
    }

    fn score(&mut self, series: &Series, ends: &[usize]) -> Vec<Vec<f32>> {
        ends.iter()
            .map(|&t| {
                let z = self.stats.zs(series, t);
                let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                to_probs(&z, max >= self.threshold)
            })
            .collect()
    }
}

/// Alarm when the QoS ratio passes a tuned threshold (an SLO alert at, say, 80 %
/// of the target); the culprit is the deepest queue (z-score). P(violation) is
/// graded, half the ratio over the tuned threshold (at most 0.999), so an alarm
/// at 0.5 fires at the tuned ratio and operating points apply.
#[derive(Debug, Clone)]
pub struct QosThreshold {
    stats: QueueStats,
    /// The tuned ratio.
    pub threshold: f32,
}

impl QosThreshold {
    /// Fits queue statistics and the threshold on the training series.
    pub fn fit(train: &[Series], window: usize) -> QosThreshold {
        let threshold = tune(train, window, &|se, t| se.qos[t]);
        QosThreshold {
            stats: QueueStats::fit(train),
            threshold,
        }
    }
}

impl Scorer for QosThreshold {
    fn name(&self) -> String {
        format!("QoS threshold ({:.0} % of target)", self.threshold * 100.0)
    }

    fn score(&mut self, series: &Series, ends: &[usize]) -> Vec<Vec<f32>> {
        ends.iter()
            .map(|&t| {
                let mass = (0.5 * series.qos[t] / self.threshold).clamp(0.0, 0.999);
                graded_probs(&self.stats.zs(series, t), mass)
            })
            .collect()
    }

    fn graded(&self) -> bool {
        true
    }
}

/// Alarm when the busiest service's CPU utilisation passes a tuned threshold.
#[derive(Debug, Clone)]
pub struct UtilisationThreshold {
    /// The tuned utilisation threshold, 0–1.
    pub threshold: f32,
}

impl UtilisationThreshold {
    /// Tunes the threshold on the training series; `None` when they carry no
    /// utilisation.
    pub fn fit(train: &[Series], window: usize) -> Option<UtilisationThreshold> {
        if !train.iter().any(|s| s.has_cpu) {
            return None;
        }
        let threshold = tune(train, window, &|se, t| {
            let ns = se.n_services;
            se.cpu[t * ns..(t + 1) * ns]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max)
        });
        Some(UtilisationThreshold { threshold })
    }
}

impl Scorer for UtilisationThreshold {
    fn name(&self) -> String {
        format!("utilisation threshold ({:.0} %)", self.threshold * 100.0)
    }

    fn score(&mut self, series: &Series, ends: &[usize]) -> Vec<Vec<f32>> {
        let ns = series.n_services;
        ends.iter()
            .map(|&t| {
                // Scaled so the softmax ranks services by utilisation.
                let u: Vec<f32> = series.cpu[t * ns..(t + 1) * ns]
                    .iter()
                    .map(|v| v * 20.0)
                    .collect();
                let max = series.cpu[t * ns..(t + 1) * ns]
                    .iter()
                    .copied()
                    .fold(f32::NEG_INFINITY, f32::max);
                to_probs(&u, max >= self.threshold)
            })
            .collect()
    }
}

/// Alarm when the largest queue rise over `lag` ticks passes a tuned threshold.
#[derive(Debug, Clone)]
pub struct LargestRise {
    stats: QueueStats,
    /// Ticks over which the rise is measured.
    pub lag: usize,
    /// The tuned threshold on the rise (in training standard deviations).
    pub threshold: f32,
}

impl LargestRise {
    /// Fits statistics and threshold on the training series.
    pub fn fit(train: &[Series], window: usize, lag: usize) -> LargestRise {
        let stats = QueueStats::fit(train);
        let st = stats.clone();
        let lag = lag.clamp(1, window.max(2) - 1);
        let threshold = tune(train, window, &|se, t| {
            (0..se.n_services)
                .map(|s| rise(&st, se, t, s, lag))
                .fold(f32::NEG_INFINITY, f32::max)
        });
        LargestRise {
            stats,
            lag,
            threshold,
        }
    }
}

fn rise(st: &QueueStats, se: &Series, t: usize, s: usize, lag: usize) -> f32 {
    st.z(se, t, s) - st.z(se, t.saturating_sub(lag), s)
}

impl Scorer for LargestRise {
    fn name(&self) -> String {
        format!("largest queue rise ({} ticks)", self.lag)
    }

    fn score(&mut self, series: &Series, ends: &[usize]) -> Vec<Vec<f32>> {
        ends.iter()
            .map(|&t| {
                let r: Vec<f32> = (0..series.n_services)
                    .map(|s| rise(&self.stats, series, t, s, self.lag))
                    .collect();
                let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                to_probs(&r, max >= self.threshold)
            })
            .collect()
    }
}

enum LinfaModel {
    Logistic(MultiFittedLogisticRegression<f64, usize>),
    Tree(DecisionTree<f64, usize>),
}

/// A linfa classifier on flattened windows (the last `ticks` ticks).
pub struct Linfa {
    model: LinfaModel,
    ticks: usize,
    n_classes: usize,
}

/// Which linfa model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinfaKind {
    /// Multinomial logistic regression.
    Logistic,
    /// A decision tree (Gini, depth ≤ 12).
    Tree,
}

fn flatten(se: &Series, t: usize, ticks: usize, out: &mut Vec<f64>) {
    out.extend(se.window(t, ticks).iter().map(|&v| f64::from(v)));
}

impl Linfa {
    /// Fits on at most `max_samples` training windows: all violation windows
    /// first, then quiet ones evenly spread.
    pub fn fit(
        kind: LinfaKind,
        train: &[Series],
        window: usize,
        ticks: usize,
        max_samples: usize,
    ) -> Result<Linfa, BaselineError> {
        let ticks = ticks.clamp(1, window);
        let ns = train[0].n_services;
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        for (i, se) in train.iter().enumerate() {
            for t in se.window_ends(window) {
                match &se.labels[t] {
                    Some(Label::Culprits(c)) => pos.push((i, t, c[0])),
                    Some(Label::Quiet) => neg.push((i, t, ns)),
                    _ => {}
                }
            }
        }
        pos.truncate(max_samples / 2);
        let room = max_samples.saturating_sub(pos.len()).max(1);
        let step = neg.len().div_ceil(room).max(1);
        let mut all: Vec<(usize, usize, usize)> = pos;
        all.extend(neg.into_iter().step_by(step));
        if all.is_empty() {
            return Err(BaselineError::NoData);
        }
        let nf = ticks * ns * train[0].n_channels;
        let mut x = Vec::with_capacity(all.len() * nf);
        let mut y = Vec::with_capacity(all.len());
        for &(i, t, c) in &all {
            flatten(&train[i], t, ticks, &mut x);
            y.push(c);
        }
        let err = |model: &'static str, e: &dyn std::fmt::Display| BaselineError::Fit {
            model,
            samples: all.len(),
            features: nf,
            message: e.to_string(),
        };
        let records = Array2::from_shape_vec((all.len(), nf), x).map_err(|e| err("linfa", &e))?;
        let data = linfa::Dataset::new(records, Array1::from(y));
        let model = match kind {
            LinfaKind::Logistic => LinfaModel::Logistic(
                MultiLogisticRegression::default()
                    .max_iterations(60)
                    .alpha(0.1)
                    .fit(&data)
                    .map_err(|e| err("logistic regression", &e))?,
            ),
            LinfaKind::Tree => LinfaModel::Tree(
                DecisionTree::params()
                    .max_depth(Some(12))
                    .fit(&data)
                    .map_err(|e| err("decision tree", &e))?,
            ),
        };
        Ok(Linfa {
            model,
            ticks,
            n_classes: ns + 1,
        })
    }
}

impl Scorer for Linfa {
    fn name(&self) -> String {
        match self.model {
            LinfaModel::Logistic(_) => format!("linfa logistic regression ({} ticks)", self.ticks),
            LinfaModel::Tree(_) => format!("linfa decision tree ({} ticks)", self.ticks),
        }
    }

    fn score(&mut self, series: &Series, ends: &[usize]) -> Vec<Vec<f32>> {
        let nf = self.ticks * series.n_services * series.n_channels;
        let mut x = Vec::with_capacity(ends.len() * nf);
        for &t in ends {
            flatten(series, t, self.ticks, &mut x);
        }
        let Ok(records) = Array2::from_shape_vec((ends.len(), nf), x) else {
            return vec![vec![0.0; self.n_classes]; ends.len()];
        };
        match &self.model {
            LinfaModel::Logistic(m) => {
                let p = m.predict_probabilities(&records);
                let classes = m.classes();
                p.rows()
                    .into_iter()
                    .map(|row| {
                        let mut out = vec![0f32; self.n_classes];
                        for (j, &c) in classes.iter().enumerate() {
                            if c < self.n_classes {
                                out[c] = row[j] as f32;
                            }
                        }
                        out
                    })
                    .collect()
            }
            LinfaModel::Tree(m) => {
                let pred: Array1<usize> = m.predict(&records);
                pred.iter()
                    .map(|&c| {
                        let mut out = vec![0f32; self.n_classes];
                        out[c.min(self.n_classes - 1)] = 1.0;
                        out
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Judging, evaluate_scorer};
    use crate::synth::{SynthConfig, queue_series, synth_dataset};

    fn series(seed: u64) -> Series {
        let ds = synth_dataset(&SynthConfig {
            n_services: 4,
            n_ticks: 1200,
            seed,
            ..Default::default()
        });
        queue_series(&ds, 1200, 1).unwrap()
    }

    #[test]
    fn rules_detect_synthetic_violations_better_than_chance() {
        let (train, test) = (vec![series(1)], vec![series(2)]);
        let mut qt = QueueThreshold::fit(&train, 8);
        assert!(qt.threshold.is_finite());
        let m = evaluate_scorer(&mut qt, &test, 8, &Judging::new(1, 0.5));
        assert!(m.anticipated_pct() > 30.0, "{m:?}");
        let mut lr = LargestRise::fit(&train, 8, 3);
        let m = evaluate_scorer(&mut lr, &test, 8, &Judging::new(1, 0.5));
        assert!(m.alarms > 0 && m.top1 > 0, "{m:?}");
    }

    #[test]
    fn the_qos_threshold_sits_between_quiet_and_violating_seconds_and_is_late() {
        // The synthetic entry point runs at 50-65 % of its target when quiet and
        // at twice it or more while violating; its violations start abruptly.
        let (train, test) = (vec![series(1)], vec![series(2)]);
        let mut q = QosThreshold::fit(&train, 8);
        assert!(q.threshold > 0.65 && q.threshold < 2.5, "{}", q.threshold);
        let m = evaluate_scorer(&mut q, &test, 8, &Judging::new(1, 0.5));
        // It fires inside violations, never before their first tick.
        assert!(m.episodes > 5 && m.alarms > 0, "{m:?}");
        assert_eq!(m.anticipated, 0, "{m:?}");
        assert!(q.name().starts_with("QoS threshold ("), "{}", q.name());
    }

    #[test]
    fn linfa_models_fit_and_score() {
        let (train, test) = (vec![series(1)], vec![series(2)]);
        for kind in [LinfaKind::Logistic, LinfaKind::Tree] {
            let mut l = Linfa::fit(kind, &train, 8, 4, 600).unwrap();
            let m = evaluate_scorer(&mut l, &test, 8, &Judging::new(1, 0.5));
            assert!(m.top3_pct() > 40.0, "{}: {m:?}", l.name());
        }
    }

    #[test]
    fn threshold_tuning_separates_a_clean_signal() {
        let mut s = series(3);
        // Replace the queue with the label itself: the best threshold separates them.
        for t in 0..s.n_ticks {
            let v = if s.labels[t].as_ref().is_some_and(Label::is_violation) {
                10.0
            } else {
                0.0
            };
            for i in 0..s.n_services {
                s.queue[t * s.n_services + i] = v;
            }
        }
        let q = QueueThreshold::fit(std::slice::from_ref(&s), 8);
        let m = evaluate_scorer(&mut q.clone(), &[s], 8, &Judging::new(1, 0.5));
        assert_eq!(m.false_alarms, 0, "{m:?}");
        assert_eq!(m.anticipated, m.episodes);
    }
}
