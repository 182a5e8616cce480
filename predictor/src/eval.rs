//! Evaluation: violations anticipated, false positives, culprit top-1 / top-3 and
//! inference latency, for models and baselines alike, written as Markdown and JSON.
//!
//! Definitions (per dataset, over the ticks that end a full window and whose
//! horizon lies inside the data):
//! - an *alarm* at tick `t`: `P(violation) = 1 - P(no violation) ≥ threshold`
//!   at `t`, or (with a hold of `k` ticks) at one of the `k` ticks before it, as
//!   the controller holds a decision;
//! - a *violation episode*: a maximal run of ticks labelled "violation within
//!   the horizon"; it is *anticipated* when an alarm fires in its first `h` ticks,
//!   i.e. before the violation itself starts;
//! - *false positives*: alarms at ticks with no violation within the horizon, as
//!   a share of all alarms (and, separately, of all quiet ticks);
//! - *false alarm episodes*: an alarm episode is a maximal run of alarm ticks (a
//!   predicted violation, as the paper counts them); it is false when none of its
//!   ticks has a violation within the horizon. An alarm that starts early and holds
//!   until the violation counts once, as true.
//! - *culprit top-k*: over ticks labelled with a known culprit, one of the
//!   culprits is among the `k` services with the highest probability;
//! - *incidents*: violation episodes less than the incident gap apart (default
//!   1 s, the QoS window) are one incident, as a user sees it: a p99 that dips
//!   under its target for a few ticks and rises again is the same trouble. An
//!   incident is anticipated when its first episode is (a warning during an
//!   incident earns nothing); alarm episodes merge the same way, and an alarm
//!   incident is false when none of its ticks has a violation within the horizon.
//!   Episodes stay the strict figure: every re-onset must be foreseen.

use crate::checkpoint::Model;
use crate::features::{Label, Series};
use crate::model::StreamMode;
use seer_infer::engine::{combine, mean};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Anything that scores windows: `[services + 1]` probabilities per window end,
/// last = "no violation".
pub trait Scorer {
    /// A short name for reports.
    fn name(&self) -> String;
    /// Probabilities for the windows of `series` ending at `ends`.
    fn score(&mut self, series: &Series, ends: &[usize]) -> Vec<Vec<f32>>;
    /// Whether P(violation) is graded (any threshold means something), not an
    /// alarm / no-alarm pair of values: only then do operating points
    /// ([`operating_points`]) apply.
    fn graded(&self) -> bool {
        false
    }
}

/// A trained model as a [`Scorer`].
pub struct ModelScorer<'a> {
    /// The model.
    pub model: &'a Model,
    /// Report name.
    pub label: String,
}

impl Scorer for ModelScorer<'_> {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn graded(&self) -> bool {
        true
    }

    fn score(&mut self, series: &Series, ends: &[usize]) -> Vec<Vec<f32>> {
        score_model(self.model, series, ends)
    }
}

/// Batched inference of a model over window ends.
pub fn score_model(model: &Model, series: &Series, ends: &[usize]) -> Vec<Vec<f32>> {
    let _g = tch::no_grad_guard();
    let w = model.header.model.window;
    let (ns, nc) = (series.n_services as i64, series.n_channels as i64);
    let mut out = Vec::with_capacity(ends.len());
    for chunk in ends.chunks(512) {
        let mut buf = Vec::with_capacity(chunk.len() * w * (ns * nc) as usize);
        for &t in chunk {
            buf.extend_from_slice(series.window(t, w));
        }
        let x = Tensor::from_slice(&buf)
            .reshape([chunk.len() as i64, w as i64, ns, nc])
            .to_device(model.vs.device());
        let p = model
            .net
            .probabilities(&model.net.forward(&x))
            .to_device(tch::Device::Cpu);
        let rows: Vec<Vec<f32>> = Vec::try_from(&p).unwrap_or_default();
        out.extend(rows);
    }
    out
}

/// How alarms are judged against the labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judging {
    /// Prediction horizon, ticks.
    pub horizon: usize,
    /// Alarm threshold on P(violation).
    pub threshold: f32,
    /// Episodes (and alarm episodes) fewer than this many ticks apart are one
    /// incident.
    pub incident_gap: usize,
    /// An alarm holds for this many ticks after the last tick over the threshold.
    pub hold: usize,
}

impl Judging {
    /// Horizon `horizon` ticks, alarm at `threshold`, incidents merged across
    /// gaps under the default QoS window (1 s of 100 ms ticks), no hold.
    pub fn new(horizon: usize, threshold: f32) -> Judging {
        Judging {
            horizon,
            threshold,
            incident_gap: seer_traces::tick::DEFAULT_QOS_WINDOW_TICKS,
            hold: 0,
        }
    }
}

/// Counts behind the figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Ticks scored.
    pub ticks: usize,
    /// Ticks with a violation within the horizon.
    pub violation_ticks: usize,
    /// Violation episodes.
    pub episodes: usize,
    /// Episodes with an alarm before the violation.
    pub anticipated: usize,
    /// Alarms raised.
    pub alarms: usize,
    /// Alarms at quiet ticks.
    pub false_alarms: usize,
    /// Quiet ticks.
    pub quiet_ticks: usize,
    /// Alarm episodes (maximal runs of alarm ticks).
    pub alarm_episodes: usize,
    /// Alarm episodes with no violation within the horizon at any of their ticks.
    pub false_alarm_episodes: usize,
    /// Incidents: episodes less than the incident gap apart merged.
    pub incidents: usize,
    /// Incidents whose first episode was anticipated.
    pub incidents_anticipated: usize,
    /// Alarm incidents: alarm episodes less than the incident gap apart merged.
    pub alarm_incidents: usize,
    /// Alarm incidents with no violation within the horizon at any of their ticks.
    pub false_alarm_incidents: usize,
    /// Ticks with a known culprit.
    pub culprit_ticks: usize,
    /// Of which the top-ranked service is a culprit.
    pub top1: usize,
    /// Of which a culprit is in the top 3.
    pub top3: usize,
    /// Episodes whose first tick — the prediction that anticipates the
    /// violation — has a known culprit.
    pub onset_culprits: usize,
    /// Of which the top-ranked service at that tick is a culprit.
    pub onset_top1: usize,
    /// Of which a culprit is in the top 3 at that tick.
    pub onset_top3: usize,
    /// Culprit ticks while the fault is on (the rest come after it ended, while
    /// its violation lasts).
    pub fault_on_ticks: usize,
    /// Of which the top-ranked service is a culprit.
    pub fault_on_top1: usize,
    /// Per culprit resource (the fault behind the violation): culprit ticks,
    /// top-1 hits, top-3 hits.
    pub by_resource: BTreeMap<String, [usize; 3]>,
    /// Per episode length (violation ticks: < 10, 10–49, ≥ 50): episodes, anticipated.
    pub by_length: [[usize; 2]; 3],
    /// Per cause: episodes with a known culprit at some tick (a fault), and
    /// episodes without one (load, or chance: a few slow requests in a quiet
    /// second): episodes, anticipated.
    pub by_cause: [[usize; 2]; 2],
}

/// Labels of [`Metrics::by_cause`]'s buckets.
pub const CAUSE_BUCKETS: [&str; 2] = ["a fault (culprit known)", "no culprit (load or chance)"];

/// Labels of [`Metrics::by_length`]'s buckets.
pub const LENGTH_BUCKETS: [&str; 3] = ["< 10 ticks", "10–49 ticks", "≥ 50 ticks"];

fn length_bucket(ticks: usize) -> usize {
    match ticks {
        0..10 => 0,
        10..50 => 1,
        _ => 2,
    }
}

impl Metrics {
    /// Violations anticipated, %.
    pub fn anticipated_pct(&self) -> f64 {
        pct(self.anticipated, self.episodes)
    }
    /// False positives as a share of alarms, %.
    pub fn false_positive_pct(&self) -> f64 {
        pct(self.false_alarms, self.alarms)
    }
    /// False alarms as a share of quiet ticks, %.
    pub fn false_alarm_rate_pct(&self) -> f64 {
        pct(self.false_alarms, self.quiet_ticks)
    }
    /// False alarm episodes as a share of alarm episodes, %.
    pub fn false_episode_pct(&self) -> f64 {
        pct(self.false_alarm_episodes, self.alarm_episodes)
    }
    /// Incidents anticipated, %.
    pub fn incidents_anticipated_pct(&self) -> f64 {
        pct(self.incidents_anticipated, self.incidents)
    }
    /// False alarm incidents as a share of alarm incidents, %.
    pub fn false_incident_pct(&self) -> f64 {
        pct(self.false_alarm_incidents, self.alarm_incidents)
    }
    /// Culprit top-1, %.
    pub fn top1_pct(&self) -> f64 {
        pct(self.top1, self.culprit_ticks)
    }
    /// Culprit top-3, %.
    pub fn top3_pct(&self) -> f64 {
        pct(self.top3, self.culprit_ticks)
    }
    /// Culprit top-1 at episode onsets, %.
    pub fn onset_top1_pct(&self) -> f64 {
        pct(self.onset_top1, self.onset_culprits)
    }
    /// Culprit top-3 at episode onsets, %.
    pub fn onset_top3_pct(&self) -> f64 {
        pct(self.onset_top3, self.onset_culprits)
    }
    /// Culprit top-1 over the culprit ticks while the fault is on, %.
    pub fn fault_on_top1_pct(&self) -> f64 {
        pct(self.fault_on_top1, self.fault_on_ticks)
    }
    /// Culprit top-1 over the culprit ticks after the fault ended, %.
    pub fn after_fault_top1_pct(&self) -> f64 {
        pct(
            self.top1 - self.fault_on_top1,
            self.culprit_ticks - self.fault_on_ticks,
        )
    }

    /// Adds another series' counts.
    pub fn add(&mut self, o: &Metrics) {
        self.ticks += o.ticks;
        self.violation_ticks += o.violation_ticks;
        self.episodes += o.episodes;
        self.anticipated += o.anticipated;
        self.alarms += o.alarms;
        self.false_alarms += o.false_alarms;
        self.quiet_ticks += o.quiet_ticks;
        self.alarm_episodes += o.alarm_episodes;
        self.false_alarm_episodes += o.false_alarm_episodes;
        self.incidents += o.incidents;
        self.incidents_anticipated += o.incidents_anticipated;
        self.alarm_incidents += o.alarm_incidents;
        self.false_alarm_incidents += o.false_alarm_incidents;
        self.culprit_ticks += o.culprit_ticks;
        self.top1 += o.top1;
        self.top3 += o.top3;
        self.onset_culprits += o.onset_culprits;
        self.onset_top1 += o.onset_top1;
        self.onset_top3 += o.onset_top3;
        self.fault_on_ticks += o.fault_on_ticks;
        self.fault_on_top1 += o.fault_on_top1;
        for (k, v) in &o.by_resource {
            let e = self.by_resource.entry(k.clone()).or_default();
            for i in 0..3 {
                e[i] += v[i];
            }
        }
        for (a, b) in self
            .by_length
            .iter_mut()
            .chain(self.by_cause.iter_mut())
            .zip(o.by_length.iter().chain(&o.by_cause))
        {
            a[0] += b[0];
            a[1] += b[1];
        }
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

/// Computes the metrics of one series from its probabilities (see module docs).
pub fn metrics(series: &Series, ends: &[usize], probs: &[Vec<f32>], j: &Judging) -> Metrics {
    /// A violation episode: its first and last tick, whether an alarm fired in
    /// its first `h` ticks, whether some tick of it had a known culprit.
    struct Episode {
        first: usize,
        last: usize,
        alarmed: bool,
        fault: bool,
    }
    let mut m = Metrics::default();
    let mut episodes: Vec<Episode> = Vec::new();
    // Alarm episodes: first tick, last tick, whether a tick of it saw a violation.
    let mut alarm_runs: Vec<(usize, usize, bool)> = Vec::new();
    // The last tick over the threshold.
    let mut over: Option<usize> = None;
    for (&t, p) in ends.iter().zip(probs) {
        let ns = p.len() - 1;
        if 1.0 - p[ns] >= j.threshold {
            over = Some(t);
        }
        let Some(label) = series.labels[t].as_ref() else {
            continue;
        };
        let alarm = over.is_some_and(|o| t - o <= j.hold);
        let v = label.is_violation();
        // Top-1 and top-3 hits when the culprits are known.
        let hits = match label {
            Label::Culprits(c) => {
                let mut rank: Vec<usize> = (0..ns).collect();
                rank.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
                Some((
                    c.contains(&rank[0]),
                    rank.iter().take(3).any(|s| c.contains(s)),
                ))
            }
            _ => None,
        };
        m.ticks += 1;
        if alarm {
            m.alarms += 1;
            match alarm_runs.last_mut() {
                Some(r) if r.1 + 1 == t => {
                    r.1 = t;
                    r.2 |= v;
                }
                _ => alarm_runs.push((t, t, v)),
            }
        }
        if v {
            m.violation_ticks += 1;
            if episodes.last().is_none_or(|e| e.last + 1 != t) {
                episodes.push(Episode {
                    first: t,
                    last: t,
                    alarmed: false,
                    fault: false,
                });
                if let Some((hit1, hit3)) = hits {
                    m.onset_culprits += 1;
                    m.onset_top1 += usize::from(hit1);
                    m.onset_top3 += usize::from(hit3);
                }
            }
            if let Some(e) = episodes.last_mut() {
                e.last = t;
                e.fault |= matches!(label, Label::Culprits(_));
                e.alarmed |= alarm && t < e.first + j.horizon;
            }
        } else {
            m.quiet_ticks += 1;
            m.false_alarms += usize::from(alarm);
        }
        if let Some((hit1, hit3)) = hits {
            m.culprit_ticks += 1;
            m.top1 += usize::from(hit1);
            m.top3 += usize::from(hit3);
            if series.fault_on[t] {
                m.fault_on_ticks += 1;
                m.fault_on_top1 += usize::from(hit1);
            }
            let kind = series.culprit_resource[t].map_or("unknown", |r| r.name());
            let e = m.by_resource.entry(kind.to_string()).or_default();
            e[0] += 1;
            e[1] += usize::from(hit1);
            e[2] += usize::from(hit3);
        }
    }
    for e in &episodes {
        m.episodes += 1;
        m.anticipated += usize::from(e.alarmed);
        for b in [
            &mut m.by_length[length_bucket(e.last + 1 - e.first)],
            &mut m.by_cause[usize::from(!e.fault)],
        ] {
            b[0] += 1;
            b[1] += usize::from(e.alarmed);
        }
    }
    m.alarm_episodes = alarm_runs.len();
    m.false_alarm_episodes = alarm_runs.iter().filter(|r| !r.2).count();
    let runs = episodes.iter().map(|e| (e.first, e.last, e.alarmed));
    for (first, _) in incidents(runs, j.incident_gap) {
        m.incidents += 1;
        m.incidents_anticipated += usize::from(first);
    }
    for (_, any) in incidents(alarm_runs.iter().copied(), j.incident_gap) {
        m.alarm_incidents += 1;
        m.false_alarm_incidents += usize::from(!any);
    }
    m
}

/// Merges runs of ticks `(first, last, flag)`, in order, into incidents: runs
/// with fewer than `gap` ticks between them are one. Each incident gives its
/// first run's flag and whether any of its runs had the flag.
fn incidents(
    runs: impl IntoIterator<Item = (usize, usize, bool)>,
    gap: usize,
) -> Vec<(bool, bool)> {
    let mut out: Vec<(bool, bool)> = Vec::new();
    let mut end: Option<usize> = None;
    for (first, last, flag) in runs {
        match out.last_mut() {
            Some(i) if end.is_some_and(|e| first - e - 1 < gap) => i.1 |= flag,
            _ => out.push((flag, flag)),
        }
        end = Some(last);
    }
    out
}

/// One row of a report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Model or baseline name.
    pub name: String,
    /// The counts.
    pub metrics: Metrics,
    /// Violations anticipated, %.
    pub anticipated_pct: f64,
    /// False positives, % of alarms.
    pub false_positive_pct: f64,
    /// False alarms, % of quiet ticks.
    pub false_alarm_rate_pct: f64,
    /// False alarm episodes, % of alarm episodes.
    pub false_episode_pct: f64,
    /// Incidents anticipated, %.
    pub incidents_anticipated_pct: f64,
    /// False alarm incidents, % of alarm incidents.
    pub false_incident_pct: f64,
    /// Culprit top-1, %.
    pub top1_pct: f64,
    /// Culprit top-3, %.
    pub top3_pct: f64,
    /// Culprit top-1 at episode onsets, %.
    pub onset_top1_pct: f64,
    /// Culprit top-3 at episode onsets, %.
    pub onset_top3_pct: f64,
    /// Culprit top-1 while the fault is on, %.
    pub fault_on_top1_pct: f64,
    /// Culprit top-1 after the fault ended (its violation outlasting it), %.
    pub after_fault_top1_pct: f64,
    /// Batch-1 inference p50, µs (models only).
    pub inference_p50_us: Option<f64>,
    /// Batch-1 inference p99, µs (models only).
    pub inference_p99_us: Option<f64>,
}

impl Row {
    /// A row from metrics.
    pub fn new(name: String, metrics: Metrics, latency: Option<(f64, f64)>) -> Row {
        Row {
            name,
            anticipated_pct: metrics.anticipated_pct(),
            false_positive_pct: metrics.false_positive_pct(),
            false_alarm_rate_pct: metrics.false_alarm_rate_pct(),
            false_episode_pct: metrics.false_episode_pct(),
            incidents_anticipated_pct: metrics.incidents_anticipated_pct(),
            false_incident_pct: metrics.false_incident_pct(),
            top1_pct: metrics.top1_pct(),
            top3_pct: metrics.top3_pct(),
            onset_top1_pct: metrics.onset_top1_pct(),
            onset_top3_pct: metrics.onset_top3_pct(),
            fault_on_top1_pct: metrics.fault_on_top1_pct(),
            after_fault_top1_pct: metrics.after_fault_top1_pct(),
            metrics,
            inference_p50_us: latency.map(|l| l.0),
            inference_p99_us: latency.map(|l| l.1),
        }
    }
}

/// Scores every window of every series with `scorer` and sums the metrics.
pub fn evaluate_scorer(
    scorer: &mut dyn Scorer,
    series: &[Series],
    window: usize,
    j: &Judging,
) -> Metrics {
    let scored = score_all(scorer, series, window);
    sum_metrics(series, &scored, j)
}

/// Each series' window ends and their probabilities, scored once and judged
/// as often as needed.
pub type Scored = Vec<(Vec<usize>, Vec<Vec<f32>>)>;

/// Scores every window of every series with `scorer`.
pub fn score_all(scorer: &mut dyn Scorer, series: &[Series], window: usize) -> Scored {
    series
        .iter()
        .map(|s| {
            let ends: Vec<usize> = s.window_ends(window).collect();
            let probs = scorer.score(s, &ends);
            (ends, probs)
        })
        .collect()
}

/// The metrics of scored series, summed.
pub fn sum_metrics(series: &[Series], scored: &Scored, j: &Judging) -> Metrics {
    let mut total = Metrics::default();
    for (s, (ends, probs)) in series.iter().zip(scored) {
        total.add(&metrics(s, ends, probs, j));
    }
    total
}

/// One operating point of a detector: the alarm threshold at which it alarms on
/// at most a given share of the quiet ticks, and its metrics there.
#[derive(Debug, Clone)]
pub struct OperatingPoint {
    /// The share of quiet ticks asked for, %.
    pub false_alarm_pct: f64,
    /// The threshold on P(violation) that gives it.
    pub threshold: f32,
    /// The metrics at that threshold.
    pub metrics: Metrics,
}

/// Judges scored series at the thresholds where the scorer alarms on at most
/// each of `false_alarm_pcts` % of the quiet ticks (the held-out data's own
/// quantiles: detectors compared at equal false alarms, whatever their
/// calibration). An alarm held for `j.hold` ticks counts as it does in
/// [`metrics`].
pub fn operating_points(
    series: &[Series],
    scored: &Scored,
    j: &Judging,
    false_alarm_pcts: &[f64],
) -> Vec<OperatingPoint> {
    // The score each quiet tick is alarmed at: the highest P(violation) of the
    // ticks whose alarm still holds there.
    let mut quiet: Vec<f32> = Vec::new();
    for (s, (ends, probs)) in series.iter().zip(scored) {
        let p_violation: Vec<f32> = probs.iter().map(|p| 1.0 - p[p.len() - 1]).collect();
        for (i, &t) in ends.iter().enumerate() {
            if !matches!(s.labels[t], Some(Label::Quiet)) {
                continue;
            }
            let held = (0..=i)
                .rev()
                .take_while(|&k| t - ends[k] <= j.hold)
                .map(|k| p_violation[k])
                .fold(f32::NEG_INFINITY, f32::max);
            quiet.push(held);
        }
    }
    quiet.sort_by(|a, b| b.total_cmp(a));
    false_alarm_pcts
        .iter()
        .map(|&pct| {
            // At most `allowed` quiet ticks strictly above the threshold.
            let allowed = ((pct / 100.0) * quiet.len() as f64).floor() as usize;
            let threshold = quiet
                .get(allowed)
                .map_or(f32::NEG_INFINITY, |v| v.next_up());
            let at = Judging { threshold, ..*j };
            OperatingPoint {
                false_alarm_pct: pct,
                threshold,
                metrics: sum_metrics(series, scored, &at),
            }
        })
        .collect()
}

/// Metrics of `when` (alarms) paired with the culprit ranking of `who` (the
/// mean of its models' probabilities when it has several) over the same
/// datasets: `when_series[i]` and `who_series[k][i]` are dataset `i` as each
/// model reads it; all models must share services, tick and horizon, which
/// `j`'s must be too.
pub fn evaluate_pair(
    when: &Model,
    who: &[&Model],
    when_series: &[Series],
    who_series: &[Vec<Series>],
    j: &Judging,
) -> Result<Metrics, String> {
    let a = &when.header;
    let mut window = a.model.window;
    for b in who.iter().map(|m| &m.header) {
        if let Some(e) = a.pair_error(b) {
            return Err(e);
        }
        window = window.max(b.model.window);
    }
    let mut total = Metrics::default();
    for (i, sa) in when_series.iter().enumerate() {
        let ends: Vec<usize> = sa.window_ends(window).collect();
        let pa = score_model(when, sa, &ends);
        let pb: Vec<Vec<Vec<f32>>> = who
            .iter()
            .zip(who_series)
            .map(|(m, s)| score_model(m, &s[i], &ends))
            .collect();
        let probs: Vec<Vec<f32>> = pa
            .iter()
            .enumerate()
            .map(|(j, x)| {
                let members: Vec<&[f32]> = pb.iter().map(|p| p[j].as_slice()).collect();
                combine(x, &mean(&members))
            })
            .collect();
        total.add(&metrics(sa, &ends, &probs, j));
    }
    Ok(total)
}

/// Batch-1 inference latency (p50, p99) in µs over up to `n` windows, after a
/// warm-up, on the Rust engine (what `serve` and the controller run); `stream`
/// measures per-tick streaming instead of full windows.
pub fn inference_latency(
    model: &Model,
    series: &Series,
    n: usize,
    stream: Option<StreamMode>,
) -> (f64, f64) {
    let Ok(engine) = model.to_engine() else {
        return (f64::NAN, f64::NAN);
    };
    let w = model.header.model.window;
    let ends: Vec<usize> = series.window_ends(w).take(n + 10).collect();
    let mut times = Vec::with_capacity(ends.len());
    let mut st = stream.map(|mode| engine.stream(mode));
    for (i, &t) in ends.iter().enumerate() {
        let start = Instant::now();
        let p = match st.as_mut() {
            None => engine.predict(series.window(t, w)),
            Some(st) => engine.step(st, series.window(t, 1)),
        };
        std::hint::black_box(p);
        if i >= 10 {
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    percentiles(&mut times)
}

/// (p50, p99) of `v` (sorted in place); zeros when empty.
pub fn percentiles(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// The report as a Markdown table.
pub fn markdown(title: &str, rows: &[Row]) -> String {
    let mut s = format!("## {title}\n\n");
    s.push_str("| model | anticipated % | false positives % of alarms | false alarms % of quiet ticks | false alarm episodes % | incidents anticipated % | false alarm incidents % | culprit top-1 % | culprit top-3 % | inference p50 µs | p99 µs |\n");
    s.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let us = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |\n",
            r.name,
            r.anticipated_pct,
            r.false_positive_pct,
            r.false_alarm_rate_pct,
            r.false_episode_pct,
            r.incidents_anticipated_pct,
            r.false_incident_pct,
            r.top1_pct,
            r.top3_pct,
            us(r.inference_p50_us),
            us(r.inference_p99_us)
        ));
    }
    breakdowns(&mut s, rows);
    s
}

/// A breakdown's title and the head of its table: a model column, then one
/// right-aligned column per entry of `columns`.
fn table_head<C: std::fmt::Display>(s: &mut String, title: &str, columns: &[C]) {
    s.push_str(&format!("\n{title}:\n\n| model |"));
    for c in columns {
        s.push_str(&format!(" {c} |"));
    }
    s.push_str("\n| --- |");
    s.push_str(&" ---: |".repeat(columns.len()));
    s.push('\n');
}

/// Culprit accuracy per fault resource and anticipation per episode length.
fn breakdowns(s: &mut String, rows: &[Row]) {
    let pct_of = |a: usize, b: usize| {
        if b == 0 {
            "–".to_string()
        } else {
            format!("{:.0}", pct(a, b))
        }
    };
    let kinds: Vec<&String> = rows
        .iter()
        .flat_map(|r| r.metrics.by_resource.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if rows.iter().any(|r| r.metrics.onset_culprits > 0) {
        table_head(
            s,
            "Culprit at each violation's onset — the first tick whose horizon holds it, \
             the prediction that anticipates it",
            &["episodes with a known culprit", "top-1 %", "top-3 %"],
        );
        for r in rows {
            let m = &r.metrics;
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.name,
                m.onset_culprits,
                pct_of(m.onset_top1, m.onset_culprits),
                pct_of(m.onset_top3, m.onset_culprits)
            ));
        }
    }
    if rows.iter().any(|r| r.metrics.culprit_ticks > 0) {
        table_head(
            s,
            "Culprit top-1 while the fault is on, and after it ended (a violation that \
             outlasts its cause keeps its culprit)",
            &["fault on: ticks", "top-1 %", "after: ticks", "top-1 %"],
        );
        for r in rows {
            let m = &r.metrics;
            let after = m.culprit_ticks - m.fault_on_ticks;
            s.push_str(&format!(
                "| {} | {} | {} | {after} | {} |\n",
                r.name,
                m.fault_on_ticks,
                pct_of(m.fault_on_top1, m.fault_on_ticks),
                pct_of(m.top1 - m.fault_on_top1, after)
            ));
        }
    }
    if !kinds.is_empty() {
        table_head(
            s,
            "Culprit top-1 / top-3 % by the resource behind the violation (culprit ticks)",
            &kinds,
        );
        for r in rows {
            s.push_str(&format!("| {} |", r.name));
            for k in &kinds {
                let [n, t1, t3] = r.metrics.by_resource.get(*k).copied().unwrap_or_default();
                s.push_str(&format!(" {} / {} ({n}) |", pct_of(t1, n), pct_of(t3, n)));
            }
            s.push('\n');
        }
    }
    /// A breakdown's name, its bucket labels and its counts.
    type Breakdown = (
        &'static str,
        &'static [&'static str],
        fn(&Metrics) -> &[[usize; 2]],
    );
    let tables: [Breakdown; 2] = [
        ("episode length", &LENGTH_BUCKETS, |m| &m.by_length),
        ("cause", &CAUSE_BUCKETS, |m| &m.by_cause),
    ];
    for (what, buckets, counts) in tables {
        table_head(
            s,
            &format!("Violations anticipated % by {what} (episodes)"),
            buckets,
        );
        for r in rows {
            s.push_str(&format!("| {} |", r.name));
            for &[n, a] in counts(&r.metrics) {
                s.push_str(&format!(" {} ({n}) |", pct_of(a, n)));
            }
            s.push('\n');
        }
    }
}

/// Probability of each class (mean over ticks) — for quick sanity checks.
pub fn mean_probabilities(probs: &[Vec<f32>]) -> Vec<f32> {
    let Some(first) = probs.first() else {
        return Vec::new();
    };
    let t = Tensor::from_slice(&probs.concat()).reshape([probs.len() as i64, first.len() as i64]);
    Vec::try_from(t.mean_dim(0, false, Kind::Float)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: Vec<Option<Label>>) -> Series {
        let n = labels.len();
        Series {
            n_ticks: n,
            n_services: 2,
            n_channels: 1,
            x: vec![0.0; n * 2],
            queue: vec![0.0; n * 2],
            cpu: vec![0.0; n * 2],
            has_cpu: false,
            qos: vec![0.0; n],
            culprit_resource: vec![Some(seer_traces::Resource::Cpu); n],
            fault_on: (0..n).map(|t| t < 3).collect(),
            labels,
        }
    }

    #[test]
    fn metrics_count_episodes_alarms_and_culprits() {
        use Label::*;
        // ticks:      0      1      2             3             4      5
        let s = series(vec![
            Some(Quiet),
            Some(Quiet),
            Some(Culprits(vec![1])),
            Some(Culprits(vec![1])),
            Some(Quiet),
            Some(Unattributed),
        ]);
        let quiet = vec![0.0, 0.0, 1.0];
        let c1 = vec![0.1, 0.8, 0.1];
        let c0 = vec![0.6, 0.3, 0.1];
        let probs = vec![
            quiet.clone(),
            c0.clone(),
            c1.clone(),
            c0.clone(),
            quiet.clone(),
            quiet.clone(),
        ];
        let ends: Vec<usize> = (0..6).collect();
        let m = metrics(&s, &ends, &probs, &Judging::new(1, 0.5));
        assert_eq!(m.ticks, 6);
        assert_eq!(m.episodes, 2);
        assert_eq!(
            m.anticipated, 1,
            "the first episode was alarmed at its first tick"
        );
        assert_eq!(m.alarms, 3);
        assert_eq!(m.false_alarms, 1);
        assert_eq!(m.quiet_ticks, 3);
        assert_eq!(m.culprit_ticks, 2);
        assert_eq!(m.top1, 1);
        assert_eq!(m.top3, 2);
        assert!((m.false_positive_pct() - 100.0 / 3.0).abs() < 1e-9);
        // Ticks 1-3 are one alarm episode, true because it reaches the violation.
        assert_eq!((m.alarm_episodes, m.false_alarm_episodes), (1, 0));
        // Two episodes of 2 and 1 ticks, the first anticipated.
        assert_eq!(m.by_length, [[2, 1], [0, 0], [0, 0]]);
        // The first has a culprit (anticipated), the second none (missed).
        assert_eq!(m.by_cause, [[1, 1], [1, 0]]);
        assert_eq!(m.by_resource["cpu"], [2, 1, 2]);
        // At the first episode's onset (tick 2) service 1 leads: named; tick 3,
        // where service 0 leads, is no onset; the second episode has no culprit.
        assert_eq!((m.onset_culprits, m.onset_top1, m.onset_top3), (1, 1, 1));
        // The fault is on until tick 2: tick 2 is named while it is on, tick 3
        // (its violation outlasting it) is not.
        assert_eq!((m.fault_on_ticks, m.fault_on_top1), (1, 1));
        assert_eq!(
            (m.fault_on_top1_pct(), m.after_fault_top1_pct()),
            (100.0, 0.0)
        );
        let md = markdown("t", &[Row::new("m".into(), m.clone(), None)]);
        assert!(md.contains("| m | 1 | 100 | 1 | 0 |"), "{md}");
        assert!(md.contains("| m | 1 | 100 | 100 |"), "{md}");
        assert!(md.contains("| m | 50 / 100 (2) |"), "{md}");
        assert!(md.contains("| m | 50 (2) | – (0) | – (0) |"), "{md}");
        assert!(md.contains("by cause (episodes)"), "{md}");
        assert!(md.contains("| m | 100 (1) | 0 (1) |"), "{md}");
        let mut sum = m.clone();
        sum.add(&m);
        assert_eq!(sum.by_cause, [[2, 2], [2, 0]]);
        assert_eq!((sum.onset_culprits, sum.onset_top1), (2, 2));
        assert_eq!((sum.fault_on_ticks, sum.fault_on_top1), (2, 2));
    }

    #[test]
    fn a_pair_alarms_as_its_first_model_and_ranks_as_the_others() {
        use crate::checkpoint::Header;
        use crate::features::Channel;
        use crate::model::{Arch, ModelConfig};
        use crate::synth::{SynthConfig, queue_series, synth_dataset};
        use tch::Device;
        let ds = synth_dataset(&SynthConfig {
            n_services: 4,
            n_ticks: 600,
            seed: 3,
            fault_rate: 0.05,
            ..Default::default()
        });
        let s = vec![queue_series(&ds, 400, 1).unwrap()];
        let model = |seed: i64, services: Vec<String>| {
            tch::manual_seed(seed);
            let cfg = ModelConfig::new(Arch::Hybrid, services.len(), 1, 10);
            let h = Header::untrained(cfg, services, vec![Channel::Queue], "test");
            Model::new(h, Device::Cpu).unwrap()
        };
        let names = ds.meta.services.clone();
        let (a, b) = (model(1, names.clone()), model(2, names.clone()));
        // Alarm at the median P(violation) of `a`, so some ticks alarm and some do not.
        let ends: Vec<usize> = s[0].window_ends(10).collect();
        let mut pv: Vec<f32> = score_model(&a, &s[0], &ends)
            .iter()
            .map(|p| 1.0 - p[4])
            .collect();
        pv.sort_by(f32::total_cmp);
        let th = pv[pv.len() / 2];
        let single = |m: &Model| {
            let mut sc = ModelScorer {
                model: m,
                label: String::new(),
            };
            evaluate_scorer(&mut sc, &s, 10, &Judging::new(1, th))
        };
        let when = |m: &Metrics| (m.anticipated, m.alarms, m.false_alarms, m.alarm_episodes);
        let who = |m: &Metrics| (m.culprit_ticks, m.top1, m.top3);
        let (ma, mb) = (single(&a), single(&b));
        assert!(ma.alarms > 0 && ma.alarms < ma.ticks && ma.culprit_ticks > 0);
        assert_ne!(
            who(&ma),
            who(&mb),
            "two random models should rank differently"
        );
        let pair = |w: &[&Model]| {
            let series: Vec<Vec<Series>> = w.iter().map(|_| s.clone()).collect();
            evaluate_pair(&a, w, &s, &series, &Judging::new(1, th)).unwrap()
        };
        let p = pair(&[&b]);
        assert_eq!(when(&p), when(&ma), "alarms are the first model's");
        assert_eq!(who(&p), who(&mb), "culprits are the second model's");
        assert_eq!(
            who(&pair(&[&b, &b])),
            who(&mb),
            "an ensemble of one model twice"
        );
        assert_eq!(
            (when(&pair(&[&a])), who(&pair(&[&a]))),
            (when(&ma), who(&ma))
        );
        let mut other = names.clone();
        other.swap(0, 1);
        let err = evaluate_pair(
            &a,
            &[&model(3, other)],
            &s,
            std::slice::from_ref(&s),
            &Judging::new(1, th),
        )
        .unwrap_err();
        assert!(err.contains("same services in the same order"), "{err}");
    }

    #[test]
    fn alarm_episodes_are_false_only_when_no_tick_of_them_sees_a_violation() {
        use Label::*;
        // ticks: 0 quiet (alarm), 1 quiet, 2 quiet (alarm), 3 violation (alarm),
        // 4 quiet, 6 quiet (alarm; 5 missing, so 6 starts a new episode), 7 quiet (alarm)
        let s = series(vec![
            Some(Quiet),
            Some(Quiet),
            Some(Quiet),
            Some(Culprits(vec![0])),
            Some(Quiet),
            None,
            Some(Quiet),
            Some(Quiet),
        ]);
        let quiet = vec![0.0, 0.0, 1.0];
        let hot = vec![0.9, 0.05, 0.05];
        let probs = vec![
            hot.clone(),
            quiet.clone(),
            hot.clone(),
            hot.clone(),
            quiet.clone(),
            hot.clone(),
            hot.clone(),
        ];
        let m = metrics(&s, &[0, 1, 2, 3, 4, 6, 7], &probs, &Judging::new(1, 0.5));
        assert_eq!(m.alarm_episodes, 3, "0; 2-3; 6-7");
        assert_eq!(m.false_alarm_episodes, 2, "0 and 6-7 see no violation");
        assert_eq!(m.false_alarms, 4, "ticks 0, 2, 6, 7");
        assert!((m.false_episode_pct() - 200.0 / 3.0).abs() < 1e-9);
    }

    /// Scores each tick with a fixed P(violation), split over two services.
    struct Fixed(Vec<f32>);

    impl Scorer for Fixed {
        fn name(&self) -> String {
            "fixed".into()
        }
        fn score(&mut self, _: &Series, ends: &[usize]) -> Vec<Vec<f32>> {
            ends.iter()
                .map(|&t| vec![self.0[t] / 2.0, self.0[t] / 2.0, 1.0 - self.0[t]])
                .collect()
        }
    }

    #[test]
    fn operating_points_alarm_on_at_most_the_share_of_quiet_ticks_asked_for() {
        use Label::*;
        let v = || Culprits(vec![0]);
        // Episodes at 10-11, 30, 50-52 and 70; quiet ticks score t / 1000.
        let mut labels = vec![Some(Quiet); 100];
        let mut p: Vec<f32> = (0..100).map(|t| t as f32 / 1000.0).collect();
        for (t, score) in [
            (10, 0.5),
            (11, 0.5),
            (30, 0.05),
            (50, 0.02),
            (51, 0.3),
            (52, 0.3),
            (70, 0.0005),
        ] {
            labels[t] = Some(v());
            p[t] = score;
        }
        let s = series(labels);
        let quiet = 93.0;
        let pcts = [0.0, 10.0, 50.0, 100.0];
        let series = std::slice::from_ref(&s);
        let scored = score_all(&mut Fixed(p), series, 1);
        let points = operating_points(series, &scored, &Judging::new(1, 0.5), &pcts);
        let got: Vec<(usize, usize)> = points
            .iter()
            .map(|o| (o.metrics.false_alarms, o.metrics.anticipated))
            .collect();
        // 0 %: only the episode scored above every quiet tick; 10 %: 9 quiet
        // ticks (91-99), still one; 50 %: 46 quiet ticks (the highest go down to
        // 0.049), so 30 too; 100 %: everything.
        assert_eq!(got, vec![(0, 1), (9, 1), (46, 2), (93, 4)], "{points:?}");
        for o in &points {
            assert!(o.metrics.false_alarms as f64 <= o.false_alarm_pct / 100.0 * quiet);
            assert_eq!(o.metrics.quiet_ticks, 93);
        }
        assert!(
            points[0].threshold > 0.0989 && points[0].threshold <= 0.5,
            "{points:?}"
        );
        // Held for 2 ticks, tick 10's 0.5 alarms quiet tick 12: at 0 % nothing is
        // anticipated any more.
        let held = Judging {
            hold: 2,
            ..Judging::new(1, 0.5)
        };
        let points = operating_points(series, &scored, &held, &[0.0]);
        assert_eq!(
            (
                points[0].metrics.false_alarms,
                points[0].metrics.anticipated
            ),
            (0, 0)
        );
        assert!(points[0].threshold > 0.5, "{points:?}");
    }

    #[test]
    fn late_alarms_do_not_count_as_anticipation() {
        use Label::*;
        let s = series(vec![
            Some(Quiet),
            Some(Culprits(vec![0])),
            Some(Culprits(vec![0])),
            Some(Quiet),
        ]);
        let quiet = vec![0.0, 0.0, 1.0];
        let c0 = vec![0.9, 0.05, 0.05];
        let probs = vec![quiet.clone(), quiet.clone(), c0, quiet];
        let m = metrics(&s, &[0, 1, 2, 3], &probs, &Judging::new(1, 0.5));
        assert_eq!((m.episodes, m.anticipated), (1, 0));
        let m2 = metrics(&s, &[0, 1, 2, 3], &probs, &Judging::new(2, 0.5));
        assert_eq!((m2.episodes, m2.anticipated), (1, 1));
    }

    #[test]
    fn episodes_close_together_are_one_incident() {
        use Label::*;
        // Violation ticks 2-3, 5, 13 and 25: gaps of 1, 7 and 11 quiet ticks.
        let mut labels = vec![Some(Quiet); 30];
        for t in [2, 3, 5, 13, 25] {
            labels[t] = Some(Culprits(vec![0]));
        }
        let s = series(labels);
        let quiet = vec![0.0, 0.0, 1.0];
        let hot = vec![0.9, 0.05, 0.05];
        // Alarms at 2 (anticipates 2-3), 13 (anticipates 13), 20 (false) and
        // 24-25 (anticipates 25); 5 is missed.
        let probs: Vec<Vec<f32>> = (0..30)
            .map(|t| {
                if [2, 13, 20, 24, 25].contains(&t) {
                    hot.clone()
                } else {
                    quiet.clone()
                }
            })
            .collect();
        let ends: Vec<usize> = (0..30).collect();
        let m = metrics(&s, &ends, &probs, &Judging::new(1, 0.5));
        assert_eq!((m.episodes, m.anticipated), (4, 3));
        // Gap 10: {2-3, 5, 13} and {25}; both start anticipated.
        assert_eq!((m.incidents, m.incidents_anticipated), (2, 2));
        // Alarm episodes 2, 13, 20, 24-25: 20 is false, but 13 to 20 and 20 to
        // 24 are under 10 ticks apart, so {13, 20, 24-25} is one true incident;
        // 2 to 13 is 10 ticks apart, not under.
        assert_eq!((m.alarm_episodes, m.false_alarm_episodes), (4, 1));
        assert_eq!((m.alarm_incidents, m.false_alarm_incidents), (2, 0));
        // Gap 3: {2-3, 5}, {13}, {25}; alarms {2}, {13}, {20}, {24-25}.
        let j = Judging {
            incident_gap: 3,
            ..Judging::new(1, 0.5)
        };
        let m3 = metrics(&s, &ends, &probs, &j);
        assert_eq!((m3.incidents, m3.incidents_anticipated), (3, 3));
        assert_eq!((m3.alarm_incidents, m3.false_alarm_incidents), (4, 1));
        // A missed first episode misses its incident, however the rest go.
        let mut late = probs.clone();
        late[2] = quiet.clone();
        let m4 = metrics(&s, &ends, &late, &j);
        assert_eq!((m4.incidents, m4.incidents_anticipated), (3, 2));
        let md = markdown("t", &[Row::new("m".into(), m.clone(), None)]);
        assert!(md.contains("incidents anticipated %"), "{md}");
        assert!(
            md.contains("| m | 75.0 | 40.0 | 8.0 | 25.0 | 100.0 | 0.0 |"),
            "{md}"
        );
    }

    #[test]
    fn a_held_alarm_counts_until_its_hold_runs_out() {
        use Label::*;
        // Violations at 5 and 12; the model is over the threshold at 1 and 9 only.
        let mut labels = vec![Some(Quiet); 16];
        labels[5] = Some(Culprits(vec![0]));
        labels[12] = Some(Culprits(vec![0]));
        let s = series(labels);
        let probs: Vec<Vec<f32>> = (0..16)
            .map(|t| {
                if t == 1 || t == 9 {
                    vec![0.9, 0.05, 0.05]
                } else {
                    vec![0.0, 0.0, 1.0]
                }
            })
            .collect();
        let ends: Vec<usize> = (0..16).collect();
        let at = |hold| {
            let j = Judging {
                hold,
                ..Judging::new(1, 0.5)
            };
            let m = metrics(&s, &ends, &probs, &j);
            (m.anticipated, m.alarms, m.alarm_episodes)
        };
        assert_eq!(at(0), (0, 2, 2));
        assert_eq!(at(3), (1, 8, 2), "1-4 stops short of 5; 9-12 reaches 12");
        assert_eq!(at(4), (2, 10, 2), "1-5 and 9-13");
    }

    #[test]
    fn percentiles_of_a_known_sample() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentiles(&mut v), (51.0, 99.0));
        assert_eq!(percentiles(&mut []), (0.0, 0.0));
    }
}
