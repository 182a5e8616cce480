//! The diagnosis: inject the probes next to a target whose latency can be
//! sampled, from the core outwards, and name the resource whose probe hurts.
//!
//! For each resource the probe runs at ≥ 3 intensities; every probe window is
//! preceded and the last one followed by a baseline window (interleaved
//! baselines), and the target is sampled continuously in all of them. The
//! response at an intensity is the latency statistic under the probe over the
//! same statistic of the pooled baselines. The statistic is by default the
//! mean, which for a closed-loop sampler is the inverse of the target's
//! throughput: CPU time-sharing in scheduler slices longer than a request
//! delays a few requests by a whole slice, which a median (or a trimmed
//! mean) never sees. A median, a trimmed mean or any quantile can be chosen. A resource is *significant*
//! when its top response exceeds both `min_effect` and `noise_factor` × the
//! baseline noise (the median relative deviation of one baseline window's
//! statistic from the pooled one) and the responses rise with intensity
//! (within tolerance).
//!
//! Order and early stop: resources are tested in tiers, cpu → fpu → l1i →
//! l1d → l2 → {llc, membw} → memcap → net → disk, and the diagnosis stops at
//! the first tier with a significant response. `llc` and `membw` form one
//! tier because each probe also loads the other resource (an LLC thrasher
//! misses to DRAM, a streamer evicts the LLC): both are measured and the
//! larger response names the resource. Without SMT the core-private probes
//! cannot be isolated from CPU time-sharing: `fpu`, `l1i`, `l1d` and `l2` are
//! skipped (with that reason) and `cpu` runs on the target's own CPU, where it
//! hurts any CPU-bound target; its response is then recorded but does not
//! stop the search, and `cpu` is named only when no later resource responds.
//! The budget (default 300 ms) counts measurement windows, not probe setup:
//! a resource is started only when its planned windows still fit, so the
//! budget is exceeded only by the last request of the last window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::probe::{
    DEFAULT_DURATION, PinGuard, Probe, ProbeError, ProbeKind, ProbeReport, ProbeSettings, Scope,
    global_stop_requested,
};
use crate::target::{Target, TargetError};
use crate::topology::Topology;

/// Errors that end a diagnosis.
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    /// The configuration is unusable.
    #[error("invalid diagnosis config: {0}")]
    Config(String),
    /// The target failed while sampling its baseline.
    #[error("target {target} failed: {source}")]
    Target {
        /// The target's description.
        target: String,
        /// What failed.
        source: TargetError,
    },
    /// A probe could not be pinned or prepared for every resource.
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// Where the target and each class of probe run.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Placement {
    /// The target's CPU (the sampling thread is pinned there too).
    pub target_cpu: usize,
    /// CPU for core-private probes: the SMT sibling, else the target's CPU.
    pub core_cpu: usize,
    /// CPU for shared-resource probes: another CPU sharing the LLC, else the target's.
    pub uncore_cpu: usize,
    /// Whether the core probes sit on an SMT sibling.
    pub smt: bool,
}

impl Placement {
    /// Place probes around a target on `target_cpu`.
    pub fn for_target(topo: &Topology, target_cpu: usize) -> Result<Self, ProbeError> {
        topo.cpu(target_cpu)?;
        let sib = topo.smt_sibling(target_cpu);
        Ok(Placement {
            target_cpu,
            core_cpu: sib.unwrap_or(target_cpu),
            uncore_cpu: topo.llc_peer(target_cpu).unwrap_or(target_cpu),
            smt: sib.is_some(),
        })
    }

    /// The CPU probe `kind` runs on.
    pub fn cpu_for(&self, kind: ProbeKind) -> usize {
        match kind.scope() {
            Scope::Core => self.core_cpu,
            Scope::Uncore => self.uncore_cpu,
        }
    }
}

/// How to diagnose.
#[derive(Debug, Clone)]
pub struct DiagnoseConfig {
    /// Resources in the order tested.
    pub order: Vec<ProbeKind>,
    /// Intensities, ascending, at least 3.
    pub intensities: Vec<u8>,
    /// Length of each probe window.
    pub duration: Duration,
    /// Length of each baseline window.
    pub baseline: Duration,
    /// Time allowed for measurement windows (setup excluded).
    pub budget: Duration,
    /// Smallest top-intensity slowdown (fraction) that counts.
    pub min_effect: f64,
    /// The response must exceed this many times the baseline noise.
    pub noise_factor: f64,
    /// The CPU the target runs on.
    pub target_cpu: usize,
    /// Times the interleaved baseline/probe sequence is repeated per resource.
    pub rounds: usize,
    /// Stop at the first significant tier (else measure every resource).
    pub stop_early: bool,
    /// Most samples per window (bounds very fast targets).
    pub max_samples_per_window: usize,
    /// The latency statistic compared between windows.
    pub statistic: Statistic,
}

/// How a window's latency samples are summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// The median.
    Median,
    /// The mean after dropping this fraction of samples at each end.
    TrimmedMean(f64),
    /// A quantile in [0, 1].
    Quantile(f64),
}

impl Statistic {
    /// Summarise `v` (reordered in place); NaN when empty.
    pub fn of(self, v: &mut [f64]) -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        match self {
            Statistic::Median => median(v),
            Statistic::TrimmedMean(t) => {
                v.sort_by(f64::total_cmp);
                let k = ((v.len() as f64) * t.clamp(0.0, 0.49)).floor() as usize;
                let mid = &v[k..v.len() - k];
                mid.iter().sum::<f64>() / mid.len() as f64
            }
            Statistic::Quantile(q) => {
                v.sort_by(f64::total_cmp);
                let i = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
                v[i]
            }
        }
    }
}

impl Default for DiagnoseConfig {
    fn default() -> Self {
        DiagnoseConfig {
            order: DEFAULT_ORDER.to_vec(),
            intensities: vec![30, 60, 100],
            duration: DEFAULT_DURATION,
            baseline: Duration::from_millis(3),
            budget: Duration::from_millis(300),
            min_effect: 0.25,
            noise_factor: 2.0,
            target_cpu: 0,
            rounds: 1,
            stop_early: true,
            max_samples_per_window: 10_000,
            statistic: Statistic::TrimmedMean(0.0),
        }
    }
}

/// The default order: from the core outwards.
pub const DEFAULT_ORDER: [ProbeKind; 10] = [
    ProbeKind::Cpu,
    ProbeKind::Fpu,
    ProbeKind::L1i,
    ProbeKind::L1d,
    ProbeKind::L2,
    ProbeKind::Llc,
    ProbeKind::Membw,
    ProbeKind::Memcap,
    ProbeKind::Net,
    ProbeKind::Disk,
];

/// What happened to one resource.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind", content = "reason")]
pub enum Status {
    /// Significant, intensity-monotone response.
    Significant,
    /// Measured; no significant response.
    NotSignificant,
    /// Not measured, and why.
    Skipped(String),
    /// Not reached (early stop, budget, Ctrl-C), and why.
    NotReached(String),
    /// The probe failed, and how.
    Failed(String),
}

/// One intensity's evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    /// Intensity, percent.
    pub intensity: u8,
    /// Latency statistic under the probe, µs.
    pub latency_us: f64,
    /// Samples under the probe.
    pub samples: usize,
    /// Statistic under probe / statistic of the pooled baseline.
    pub slowdown: f64,
    /// What the probe achieved.
    pub probe: ProbeReport,
}

/// One resource's evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// The probe.
    pub probe: ProbeKind,
    /// The CPU it ran on.
    pub cpu: Option<usize>,
    /// Outcome.
    pub status: Status,
    /// Statistic of the pooled baseline, µs.
    pub baseline_us: f64,
    /// Baseline samples.
    pub baseline_samples: usize,
    /// Baseline noise (median relative deviation of a window's statistic).
    pub noise: f64,
    /// Per-intensity responses.
    pub levels: Vec<Level>,
    /// Responses rise with intensity.
    pub monotone: bool,
    /// Top-intensity slowdown minus one (0 when not measured).
    pub sensitivity: f64,
    /// Whether a response here would identify the resource (false for `cpu`
    /// time-sharing without SMT).
    pub specific: bool,
    /// Measurement time, ms.
    pub elapsed_ms: f64,
}

/// The diagnosis result.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The target's description.
    pub target: String,
    /// The resource named, if any.
    pub resource: Option<ProbeKind>,
    /// A one-line verdict.
    pub verdict: String,
    /// Where things ran.
    pub placement: Placement,
    /// Every resource, in order.
    pub evidence: Vec<Evidence>,
    /// Time in measurement windows, ms.
    pub measure_ms: f64,
    /// Time preparing probes (excluded from the budget), ms.
    pub setup_ms: f64,
    /// Budget, ms.
    pub budget_ms: f64,
    /// Whether measurement stayed within the budget.
    pub within_budget: bool,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Judge one resource from its pooled baseline statistic, the statistics of
/// the individual baseline windows, and the per-level slowdowns (ascending
/// intensity). Returns (noise, monotone-or-saturated, significant).
pub fn judge(
    baseline: f64,
    windows: &[f64],
    slowdowns: &[f64],
    min_effect: f64,
    noise_factor: f64,
) -> (f64, bool, bool) {
    let mut devs: Vec<f64> = windows
        .iter()
        .filter(|m| m.is_finite())
        .map(|m| (m / baseline - 1.0).abs())
        .collect();
    let noise = if devs.is_empty() {
        0.0
    } else {
        median(&mut devs)
    };
    let Some(&top) = slowdowns.last() else {
        return (noise, false, false);
    };
    let effect = top - 1.0;
    let tol = noise.max(0.1 * effect.max(0.0)).max(0.05);
    let steps_ok = slowdowns.windows(2).all(|w| w[1] >= w[0] - tol);
    let top_is_max = slowdowns.iter().all(|s| *s <= top + tol);
    let rises = top > slowdowns[0] - tol;
    let monotone = steps_ok && top_is_max && rises;
    // A resource that saturates already at the lowest intensity (a link a
    // sender fills even at 30 %) responds at every level without rising:
    // every level significant on its own counts as well.
    let floor = min_effect.max(noise_factor * noise);
    let saturated = slowdowns.iter().all(|s| s - 1.0 >= floor);
    let significant =
        effect >= min_effect && effect >= noise_factor * noise && (monotone || saturated);
    (noise, monotone || saturated, significant)
}

/// Sample `target` until `until` returns true (checked after each sample),
/// at least once, at most `max` times. Each sample's latency runs from the
/// previous completion (or the call) to its own completion, so time the
/// sampling thread spends descheduled between requests is counted too.
fn sample_while(
    target: &mut dyn Target,
    max: usize,
    mut until: impl FnMut() -> bool,
) -> Result<Vec<f64>, TargetError> {
    let mut out = Vec::new();
    let mut prev = Instant::now();
    loop {
        let t0 = Instant::now();
        let end = t0 + target.sample()?;
        out.push(end.saturating_duration_since(prev).as_secs_f64() * 1e6);
        prev = end;
        if until() || out.len() >= max {
            return Ok(out);
        }
    }
}

fn baseline_window(
    target: &mut dyn Target,
    dur: Duration,
    max: usize,
) -> Result<Vec<f64>, TargetError> {
    let end = Instant::now() + dur;
    sample_while(target, max, || {
        Instant::now() >= end || global_stop_requested()
    })
}

/// Run the probe on its own thread and sample the target from before the
/// window starts until it ends; keep the samples whose interval overlaps the
/// timed window. A sample's interval runs from the previous completion to
/// its own, so a sampler held off the CPU by the probe (a real-time probe on
/// the target's CPU) counts the delay whether or not a request was in
/// flight; samples taken during the probe's setup are dropped.
fn probe_window(
    probe: &mut Probe,
    intensity: u8,
    dur: Duration,
    target: &mut dyn Target,
    max: usize,
) -> Result<(Vec<f64>, ProbeReport), String> {
    let started = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let ended_at = std::sync::Mutex::new(None::<Instant>);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let r = probe.run_signalled(intensity, dur, &stop, &started);
            if let Ok(mut e) = ended_at.lock() {
                *e = Some(Instant::now());
            }
            done.store(true, Ordering::SeqCst);
            r
        });
        let mut spans: Vec<(Instant, Instant)> = Vec::new();
        let mut err = None;
        let mut prev = Instant::now();
        loop {
            let t0 = Instant::now();
            match target.sample() {
                Ok(d) => {
                    spans.push((prev, t0 + d));
                    prev = t0 + d;
                }
                Err(e) => {
                    err = Some(e);
                    stop.store(true, Ordering::SeqCst);
                    break;
                }
            }
            if done.load(Ordering::SeqCst) || spans.len() >= max.saturating_mul(100) {
                break;
            }
        }
        let report = h.join().map_err(|_| "probe thread panicked".to_string())?;
        let report = report.map_err(|e| e.to_string())?;
        if let Some(e) = err {
            return Err(format!("target failed under the probe: {e}"));
        }
        let end = ended_at
            .lock()
            .ok()
            .and_then(|e| *e)
            .unwrap_or_else(Instant::now);
        let begin = end
            .checked_sub(Duration::from_secs_f64(report.wall_ms / 1e3))
            .unwrap_or(end);
        let mut samples: Vec<f64> = spans
            .iter()
            .filter(|(a, b)| *b > begin && *a < end)
            .map(|(a, b)| b.duration_since(*a).as_secs_f64() * 1e6)
            .collect();
        if samples.is_empty()
            && let Some((a, b)) = spans.last()
        {
            samples.push(b.duration_since(*a).as_secs_f64() * 1e6);
        }
        samples.truncate(max);
        Ok((samples, report))
    })
}

fn tiers(order: &[ProbeKind]) -> Vec<Vec<ProbeKind>> {
    let mut out: Vec<Vec<ProbeKind>> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let k = order[i];
        let pair = match k {
            ProbeKind::Llc => Some(ProbeKind::Membw),
            ProbeKind::Membw => Some(ProbeKind::Llc),
            _ => None,
        };
        if let Some(p) = pair
            && order.get(i + 1) == Some(&p)
        {
            out.push(vec![k, p]);
            i += 2;
            continue;
        }
        out.push(vec![k]);
        i += 1;
    }
    out
}

fn empty_evidence(probe: ProbeKind, status: Status, specific: bool) -> Evidence {
    Evidence {
        probe,
        cpu: None,
        status,
        baseline_us: f64::NAN,
        baseline_samples: 0,
        noise: f64::NAN,
        levels: Vec::new(),
        monotone: false,
        sensitivity: 0.0,
        specific,
        elapsed_ms: 0.0,
    }
}

/// Settings for a probe on `cpu` next to a target on `target_cpu` (today a
/// copy; the hook where per-placement adjustments belong).
pub fn settings_for(settings: &ProbeSettings, _cpu: usize, _target_cpu: usize) -> ProbeSettings {
    settings.clone()
}

/// Measure how `probe` affects `target` (pinned to `cfg.target_cpu`) with
/// the interleaved baseline/probe sequence of a diagnosis, without judging
/// other resources: the building block of specificity matrices.
pub fn measure(
    probe: &mut Probe,
    target: &mut dyn Target,
    cfg: &DiagnoseConfig,
) -> Result<Evidence, DiagnoseError> {
    let _pin = PinGuard::pin(cfg.target_cpu)?;
    let specific = true;
    let (ev, _, _) =
        measure_resource(probe, target, cfg, specific).map_err(|source| DiagnoseError::Target {
            target: target.describe(),
            source,
        })?;
    Ok(ev)
}

/// Diagnose `target`: see the module documentation for the procedure.
pub fn diagnose(
    target: &mut dyn Target,
    settings: &ProbeSettings,
    cfg: &DiagnoseConfig,
) -> Result<Diagnosis, DiagnoseError> {
    if cfg.intensities.len() < 3 {
        return Err(DiagnoseError::Config(format!(
            "need at least 3 intensities, got {:?}",
            cfg.intensities
        )));
    }
    if cfg.intensities.windows(2).any(|w| w[0] >= w[1])
        || cfg.intensities.iter().any(|&i| i == 0 || i > 100)
    {
        return Err(DiagnoseError::Config(format!(
            "intensities must ascend strictly within 1..=100, got {:?}",
            cfg.intensities
        )));
    }
    if cfg.order.is_empty() || cfg.rounds == 0 || cfg.duration.is_zero() {
        return Err(DiagnoseError::Config(
            "order, rounds and duration must be non-empty".into(),
        ));
    }
    let placement = Placement::for_target(&settings.topology, cfg.target_cpu)?;
    let _pin = PinGuard::pin(placement.target_cpu)?;
    let describe = target.describe();
    let terr = |source| DiagnoseError::Target {
        target: describe.clone(),
        source,
    };
    // warm the target (connections, caches)
    for _ in 0..3 {
        target.sample().map_err(terr)?;
    }
    let per_resource = cfg.duration * cfg.intensities.len() as u32
        + cfg.baseline * (cfg.intensities.len() as u32 + 1);
    let per_resource = per_resource * cfg.rounds as u32;
    let mut measure = Duration::ZERO;
    let mut setup = Duration::ZERO;
    let mut evidence: Vec<Evidence> = Vec::new();
    let mut resource = None;
    let mut fallback: Option<ProbeKind> = None;
    let mut stop_reason: Option<String> = None;
    let mut interrupted = false;
    for tier in tiers(&cfg.order) {
        let mut tier_ev = Vec::new();
        for &kind in &tier {
            let specific = kind != ProbeKind::Cpu || placement.smt;
            if let Some(r) = &stop_reason {
                tier_ev.push(empty_evidence(
                    kind,
                    Status::NotReached(r.clone()),
                    specific,
                ));
                continue;
            }
            if global_stop_requested() {
                interrupted = true;
                stop_reason = Some("interrupted".into());
                tier_ev.push(empty_evidence(
                    kind,
                    Status::NotReached("interrupted".into()),
                    specific,
                ));
                continue;
            }
            if !placement.smt && kind.scope() == Scope::Core && kind != ProbeKind::Cpu {
                tier_ev.push(empty_evidence(
                    kind,
                    Status::Skipped("needs an SMT sibling of the target's CPU to isolate from CPU time-sharing; this machine has no SMT".into()),
                    false,
                ));
                continue;
            }
            if measure + per_resource > cfg.budget {
                tier_ev.push(empty_evidence(
                    kind,
                    Status::NotReached(format!("budget of {} ms spent", cfg.budget.as_millis())),
                    specific,
                ));
                continue;
            }
            let cpu = placement.cpu_for(kind);
            let t0 = Instant::now();
            let prepared = Probe::prepare(
                kind,
                &settings_for(settings, cpu, placement.target_cpu),
                cpu,
            );
            setup += t0.elapsed();
            let mut probe = match prepared {
                Ok(p) => p,
                Err(e) => {
                    tier_ev.push(empty_evidence(
                        kind,
                        Status::Failed(e.to_string()),
                        specific,
                    ));
                    continue;
                }
            };
            let (ev, m, s) = measure_resource(&mut probe, target, cfg, specific).map_err(terr)?;
            measure += m;
            setup += s;
            let t0 = Instant::now();
            drop(probe);
            setup += t0.elapsed();
            tier_ev.push(ev);
        }
        let best = tier_ev
            .iter()
            .filter(|e| e.status == Status::Significant)
            .max_by(|a, b| a.sensitivity.total_cmp(&b.sensitivity))
            .map(|e| (e.probe, e.specific));
        evidence.extend(tier_ev);
        if let Some((k, specific)) = best {
            if specific {
                resource = Some(k);
                if cfg.stop_early && stop_reason.is_none() {
                    stop_reason = Some(format!("stopped early: {k} responded"));
                }
            } else if fallback.is_none() {
                fallback = Some(k);
            }
        }
    }
    if interrupted || global_stop_requested() {
        interrupted = true;
    }
    // Without early stop, name the most sensitive specific resource.
    if !cfg.stop_early {
        resource = evidence
            .iter()
            .filter(|e| e.status == Status::Significant && e.specific)
            .max_by(|a, b| a.sensitivity.total_cmp(&b.sensitivity))
            .map(|e| e.probe);
    }
    let verdict = match (resource, fallback) {
        (Some(r), _) => {
            let e = evidence.iter().find(|e| e.probe == r);
            format!(
                "{r}: latency x{:.2} at {}% {} (baseline {:.1} us, noise {:.0}%)",
                e.map_or(1.0, |e| 1.0 + e.sensitivity),
                cfg.intensities.last().copied().unwrap_or(100),
                r.name(),
                e.map_or(f64::NAN, |e| e.baseline_us),
                e.map_or(f64::NAN, |e| e.noise * 100.0)
            )
        }
        (None, Some(c)) => {
            resource = Some(c);
            "cpu: only CPU time-sharing on the target's CPU slowed it (no SMT here, so core resources below the CPU cannot be told apart)".to_string()
        }
        (None, None) => {
            "no tested resource produced a significant, intensity-monotone response".to_string()
        }
    };
    Ok(Diagnosis {
        target: describe,
        resource,
        verdict,
        placement,
        evidence,
        measure_ms: measure.as_secs_f64() * 1e3,
        setup_ms: setup.as_secs_f64() * 1e3,
        budget_ms: cfg.budget.as_secs_f64() * 1e3,
        within_budget: measure <= cfg.budget,
        interrupted,
    })
}

/// Measure one resource: B P1 B P2 … Pn B, `rounds` times. Returns the
/// evidence, the time in windows, and per-run setup time.
fn measure_resource(
    probe: &mut Probe,
    target: &mut dyn Target,
    cfg: &DiagnoseConfig,
    specific: bool,
) -> Result<(Evidence, Duration, Duration), TargetError> {
    let t0 = Instant::now();
    let mut setup = Duration::ZERO;
    let mut base_all = Vec::new();
    let mut base_windows = Vec::new();
    let n = cfg.intensities.len();
    let mut under: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut reports: Vec<Option<ProbeReport>> = vec![None; n];
    let max = cfg.max_samples_per_window;
    let mut failure = None;
    'rounds: for _ in 0..cfg.rounds {
        for (i, &intensity) in cfg.intensities.iter().enumerate() {
            let mut b = baseline_window(target, cfg.baseline, max)?;
            base_windows.push(cfg.statistic.of(&mut b.clone()));
            base_all.append(&mut b);
            match probe_window(probe, intensity, cfg.duration, target, max) {
                Ok((mut s, r)) => {
                    setup += Duration::from_secs_f64(r.setup_ms / 1e3);
                    under[i].append(&mut s);
                    reports[i] = Some(r);
                }
                Err(e) => {
                    failure = Some(e);
                    break 'rounds;
                }
            }
            if global_stop_requested() {
                break 'rounds;
            }
        }
        let mut b = baseline_window(target, cfg.baseline, max)?;
        base_windows.push(cfg.statistic.of(&mut b.clone()));
        base_all.append(&mut b);
    }
    let elapsed = t0.elapsed().saturating_sub(setup);
    let base_median = cfg.statistic.of(&mut base_all);
    let mut ev = empty_evidence(probe.kind(), Status::NotSignificant, specific);
    ev.cpu = Some(probe.cpu());
    ev.baseline_us = base_median;
    ev.baseline_samples = base_all.len();
    ev.elapsed_ms = elapsed.as_secs_f64() * 1e3;
    if let Some(e) = failure {
        ev.status = Status::Failed(e);
        return Ok((ev, elapsed, setup));
    }
    for (i, &intensity) in cfg.intensities.iter().enumerate() {
        let Some(r) = reports[i].take() else {
            ev.status = Status::NotReached("interrupted".into());
            return Ok((ev, elapsed, setup));
        };
        let m = cfg.statistic.of(&mut under[i]);
        ev.levels.push(Level {
            intensity,
            latency_us: m,
            samples: under[i].len(),
            slowdown: m / base_median,
            probe: r,
        });
    }
    let slow: Vec<f64> = ev.levels.iter().map(|l| l.slowdown).collect();
    let (noise, monotone, significant) = judge(
        base_median,
        &base_windows,
        &slow,
        cfg.min_effect,
        cfg.noise_factor,
    );
    ev.noise = noise;
    ev.monotone = monotone;
    ev.sensitivity = slow.last().map_or(0.0, |s| s - 1.0);
    ev.status = if significant {
        Status::Significant
    } else {
        Status::NotSignificant
    };
    Ok((ev, elapsed, setup))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn statistics() {
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 100.0];
        assert_eq!(Statistic::Median.of(&mut v), 3.0);
        assert_eq!(Statistic::TrimmedMean(0.2).of(&mut v), 3.0);
        assert_eq!(Statistic::TrimmedMean(0.0).of(&mut v), 22.0);
        assert_eq!(Statistic::Quantile(1.0).of(&mut v), 100.0);
        assert_eq!(Statistic::Quantile(0.0).of(&mut v), 1.0);
        assert!(Statistic::Median.of(&mut []).is_nan());
    }

    #[test]
    fn judge_cases() {
        // clear monotone response
        let (_, mono, sig) = judge(
            100.0,
            &[98.0, 101.0, 100.0, 102.0],
            &[1.1, 1.4, 2.0],
            0.2,
            2.0,
        );
        assert!(mono && sig);
        // small effect
        let (_, _, sig) = judge(100.0, &[99.0, 101.0], &[1.0, 1.05, 1.1], 0.2, 2.0);
        assert!(!sig);
        // big but noisy baseline
        let (noise, _, sig) = judge(
            100.0,
            &[60.0, 140.0, 65.0, 135.0],
            &[1.2, 1.4, 1.5],
            0.2,
            2.0,
        );
        assert!((noise - 0.375).abs() < 1e-9 && !sig, "{noise}");
        // not monotone: peak in the middle
        let (_, mono, sig) = judge(100.0, &[100.0, 100.0], &[1.1, 3.0, 1.3], 0.2, 2.0);
        assert!(!mono && !sig);
        // saturated from the lowest intensity: significant
        let (_, mono, sig) = judge(100.0, &[100.0, 103.0], &[15.6, 12.5, 9.4], 0.25, 2.0);
        assert!(mono && sig);
        // one level below the floor and falling: not
        let (_, _, sig) = judge(100.0, &[100.0, 103.0], &[1.1, 3.0, 1.3], 0.25, 2.0);
        assert!(!sig);
    }

    #[test]
    fn tiers_pair_llc_and_membw() {
        let t = tiers(&DEFAULT_ORDER);
        assert_eq!(t.len(), 9);
        assert_eq!(t[5], vec![ProbeKind::Llc, ProbeKind::Membw]);
        let t = tiers(&[ProbeKind::Membw, ProbeKind::Disk, ProbeKind::Llc]);
        assert_eq!(
            t,
            vec![
                vec![ProbeKind::Membw],
                vec![ProbeKind::Disk],
                vec![ProbeKind::Llc]
            ]
        );
    }

    proptest! {
        #[test]
        fn judge_never_flags_flat_responses(b in 1.0f64..1e6, s in 0.8f64..1.15) {
            let (_, _, sig) = judge(b, &[b, b], &[s, s, s], 0.2, 2.0);
            prop_assert!(!sig);
        }

        #[test]
        fn judge_flags_clean_rising_responses(b in 1.0f64..1e6, step in 0.2f64..3.0) {
            let (_, _, sig) = judge(b, &[b, b], &[1.0 + step / 3.0, 1.0 + 2.0 * step / 3.0, 1.0 + step], 0.2, 2.0);
            prop_assert!(sig);
        }
    }
}
