//! Feature windows: which per-service signals the model reads, how they are
//! normalised, and the per-tick label ("which service initiates a violation within
//! the horizon, or none").
//!
//! A dataset becomes a [`Series`]: the normalised signals as one dense
//! `[ticks, services, channels]` buffer plus one [`Label`] per tick. Windows are
//! never copied out: the model reads `W` consecutive ticks ending at tick `t`.

use seer_traces::{Dataset, ServiceTick};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Errors turning datasets into features.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// A service the model reads is missing from a dataset.
    #[error("dataset {origin:?} has no service {service:?} (it has {available})")]
    MissingService {
        /// The dataset's origin string.
        origin: String,
        /// The missing service.
        service: String,
        /// How many services the dataset has.
        available: usize,
    },
    /// The dataset's dense vectors do not match its metadata.
    #[error("dataset {origin:?} is inconsistent: {message}")]
    Shape {
        /// The dataset's origin string.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// Too few ticks to make a single window.
    #[error(
        "dataset {origin:?} has {ticks} ticks, fewer than one window of {window} plus the horizon of {horizon}"
    )]
    TooShort {
        /// The dataset's origin string.
        origin: String,
        /// Its ticks.
        ticks: usize,
        /// The window length.
        window: usize,
        /// The horizon in ticks.
        horizon: usize,
    },
    /// An unknown channel name.
    #[error(
        "unknown channel {0:?} (expected queue, wait, active, cpu, p99_ms, arrivals, errors, hop or qos)"
    )]
    UnknownChannel(String),
    /// Datasets with different tick intervals were mixed.
    #[error("dataset {origin:?} has a tick interval of {got} ns, expected {expected} ns")]
    Interval {
        /// The dataset's origin string.
        origin: String,
        /// Its interval.
        got: u64,
        /// The interval of the first dataset or the model.
        expected: u64,
    },
}

/// One per-service input signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Mean queue depth (outstanding requests) over the tick.
    Queue,
    /// Requests waiting for a worker: the accept/socket backlog a node agent reads
    /// from the kernel ("network-only" queue depth).
    Wait,
    /// Requests a worker holds (in service or blocked on callees): what an
    /// application's active-requests counter reports ("app-only" queue depth).
    Active,
    /// Share of the service's workers computing (CPU utilisation).
    Cpu,
    /// 99th percentile latency, ms (0 when nothing completed).
    P99Ms,
    /// Requests that arrived during the tick.
    Arrivals,
    /// Requests that failed during the tick (errors returned, deadlines
    /// exceeded): a failing service is where a retry storm starts, and the
    /// deepest service that fails is where an overload does.
    Errors,
    /// Calls to the service in the network (client span minus server span, over
    /// the tick): a slow link shows here at the service whose link it is, where
    /// every queue shows it at the caller waiting for the reply.
    Hop,
    /// How close the application is to its QoS target: the worst entry point's
    /// p99 over the QoS window divided by its target (1 = at the target), the same
    /// value for every service. Violations are judged on exactly this signal; the
    /// per-service channels say where the trouble comes from.
    Qos,
}

impl Channel {
    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Queue => "queue",
            Channel::Wait => "wait",
            Channel::Active => "active",
            Channel::Cpu => "cpu",
            Channel::P99Ms => "p99_ms",
            Channel::Arrivals => "arrivals",
            Channel::Errors => "errors",
            Channel::Hop => "hop",
            Channel::Qos => "qos",
        }
    }

    /// The raw value of this channel for one service's tick; `qos` is the tick's
    /// [`Channel::Qos`] ratio ([`qos_ratios`]). NaN latencies become 0.
    pub fn raw(self, t: &ServiceTick, qos: f32) -> f32 {
        let v = match self {
            Channel::Queue => t.queue_mean,
            Channel::Wait => t.wait_mean,
            // Without a waiting count every outstanding request counts as held.
            Channel::Active => {
                t.queue_mean
                    - if t.wait_mean.is_finite() {
                        t.wait_mean
                    } else {
                        0.0
                    }
            }
            Channel::Cpu => t.cpu_util,
            Channel::P99Ms => t.p99_ms,
            Channel::Arrivals => t.arrivals as f32,
            Channel::Errors => t.errors as f32,
            Channel::Hop => t.hop_mean,
            Channel::Qos => qos,
        };
        if v.is_finite() { v.max(0.0) } else { 0.0 }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Channel {
    type Err = FeatureError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queue" => Ok(Channel::Queue),
            "wait" | "network" => Ok(Channel::Wait),
            "active" | "app" => Ok(Channel::Active),
            "cpu" | "utilisation" | "utilization" => Ok(Channel::Cpu),
            "p99_ms" | "p99" => Ok(Channel::P99Ms),
            "arrivals" => Ok(Channel::Arrivals),
            "errors" => Ok(Channel::Errors),
            "hop" | "net_hop" => Ok(Channel::Hop),
            "qos" | "qos_ratio" => Ok(Channel::Qos),
            other => Err(FeatureError::UnknownChannel(other.to_string())),
        }
    }
}

/// Number of ticks a horizon covers: `ceil(horizon / interval)`, at least 1.
pub fn horizon_ticks(horizon_ns: u64, interval_ns: u64) -> usize {
    let i = interval_ns.max(1);
    (horizon_ns.div_ceil(i)).max(1) as usize
}

/// Per tick, the [`Channel::Qos`] ratio: the largest p99-over-the-QoS-window to
/// target ratio among the entry points. A tick where no entry point has a
/// windowed p99 (nothing completed in the window, or a source that does not
/// compute it) keeps the ratio of the tick before, as a stall keeps the verdict
/// of the tick before ([`seer_traces::QosSpec`]); before any, it is 0.
pub fn qos_ratios(ds: &Dataset) -> Vec<f32> {
    let mut ratio = QosRatio::default();
    (0..ds.n_ticks())
        .map(|t| {
            // The worst entry with a windowed p99, else NaN.
            let worst = ds
                .entries_at(t)
                .iter()
                .zip(&ds.meta.targets_ms)
                .map(|(e, &target)| e.p99_window_ms / target as f32)
                .filter(|r| r.is_finite())
                .fold(f32::NAN, f32::max);
            ratio.update(worst)
        })
        .collect()
}

/// The [`Channel::Qos`] ratio as a stream of ticks reads it: a finite ratio
/// replaces the last one, a NaN (no windowed p99 this tick) keeps it, and
/// before any it is 0. Datasets, the gRPC service and the controller's
/// detector all read it through this.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QosRatio(f32);

impl QosRatio {
    /// Takes this tick's ratio (NaN when unknown) and returns the one to use.
    pub fn update(&mut self, ratio: f32) -> f32 {
        if ratio.is_finite() {
            self.0 = ratio.max(0.0);
        }
        self.0
    }
}

/// The per-tick target of the predictor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    /// No end-to-end violation within the horizon.
    Quiet,
    /// A violation within the horizon, initiated by these services (indices in the
    /// model's service order, at least one).
    Culprits(Vec<usize>),
    /// A violation within the horizon with no culprit active at this tick (a load
    /// spike, a fault that starts later): counted for detection, not trained on.
    Unattributed,
}

impl Label {
    /// Whether a violation follows within the horizon.
    pub fn is_violation(&self) -> bool {
        !matches!(self, Label::Quiet)
    }
}

/// The tick whose culprits a violation labelled at each tick is attributed to:
/// the tick itself, unless a violation is under way there — then the first tick
/// of that violation. A violation is initiated once: a fault injected while the
/// application is still overloaded by an earlier one (or by load) did not start
/// it, and the services whose faults were active when it began stay its
/// culprits until it ends, also after their faults are over.
/// `violating` says for each tick whether any entry point violates then.
pub fn attribution_ticks(violating: impl IntoIterator<Item = bool>) -> Vec<usize> {
    let (mut onset, mut before) = (0, false);
    violating
        .into_iter()
        .enumerate()
        .map(|(t, now)| {
            if !now || !before {
                onset = t;
            }
            before = now;
            onset
        })
        .collect()
}

/// Labels every tick of a dataset: violation of any entry point in ticks
/// `t+1 ..= t+h`, attributed to the services that are culprits at tick `t`,
/// or inside a violation at its first tick ([`attribution_ticks`]).
///
/// `order[i]` is the dataset's index of the model's service `i` (`None` when the
/// dataset lacks it). Ticks whose horizon runs past the end get `None`.
pub fn labels(ds: &Dataset, order: &[Option<usize>], h: usize) -> Vec<Option<Label>> {
    let nt = ds.n_ticks();
    let ns = ds.n_services();
    let any_violation: Vec<bool> = (0..nt).map(|t| ds.any_violation(t)).collect();
    let by = attribution_ticks(any_violation.iter().copied());
    // Model index of each dataset service.
    let mut to_model = vec![None; ns];
    for (m, d) in order.iter().enumerate() {
        if let Some(d) = d {
            to_model[*d] = Some(m);
        }
    }
    (0..nt)
        .map(|t| {
            if t + h >= nt {
                return None;
            }
            if !any_violation[t + 1..=t + h].iter().any(|&v| v) {
                return Some(Label::Quiet);
            }
            let a = by[t];
            let mut c: Vec<usize> = ds.culprit[a * ns..(a + 1) * ns]
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_some())
                .filter_map(|(s, _)| to_model[s])
                .collect();
            c.sort_unstable();
            Some(if c.is_empty() {
                Label::Unattributed
            } else {
                Label::Culprits(c)
            })
        })
        .collect()
}

/// Per service and channel: `z = (ln(1 + x) - mean) / std`, learned on training
/// data and stored in the checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Channels, in input order.
    pub channels: Vec<Channel>,
    /// Services, in input order.
    pub services: Vec<String>,
    /// `mean[s * channels + c]` of `ln(1 + x)`.
    pub mean: Vec<f32>,
    /// `std[s * channels + c]` of `ln(1 + x)`, at least [`Normalizer::MIN_STD`].
    pub std: Vec<f32>,
}

impl Normalizer {
    /// Smallest standard deviation used, so constant signals do not blow up.
    pub const MIN_STD: f32 = 0.05;

    /// Learns the statistics from the ticks `t` of dataset `i` where
    /// `training[i][t]` holds (the training part), services mapped by name.
    pub fn fit(
        datasets: &[&Dataset],
        training: &[Vec<bool>],
        services: &[String],
        channels: &[Channel],
    ) -> Result<Normalizer, FeatureError> {
        let nc = channels.len();
        let n = services.len() * nc;
        let (mut sum, mut sq, mut count) = (vec![0f64; n], vec![0f64; n], 0f64);
        for (ds, mask) in datasets.iter().zip(training) {
            let order = service_order(ds, services)?;
            let qos = qos_ratios(ds);
            for t in (0..mask.len().min(ds.n_ticks())).filter(|&t| mask[t]) {
                let row = ds.services_at(t);
                for (s, d) in order.iter().enumerate() {
                    for (c, ch) in channels.iter().enumerate() {
                        let v = f64::from(ch.raw(&row[*d], qos[t])).ln_1p();
                        sum[s * nc + c] += v;
                        sq[s * nc + c] += v * v;
                    }
                }
                count += 1.0;
            }
        }
        let count = count.max(1.0);
        let mean: Vec<f32> = sum.iter().map(|s| (s / count) as f32).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| {
                let var = (q / count - f64::from(*m).powi(2)).max(0.0);
                (var.sqrt() as f32).max(Self::MIN_STD)
            })
            .collect();
        Ok(Normalizer {
            channels: channels.to_vec(),
            services: services.to_vec(),
            mean,
            std,
        })
    }

    /// Normalises one raw value of service `s`, channel `c`.
    pub fn apply(&self, s: usize, c: usize, raw: f32) -> f32 {
        let i = s * self.channels.len() + c;
        let v = if raw.is_finite() { raw.max(0.0) } else { 0.0 };
        (v.ln_1p() - self.mean[i]) / self.std[i]
    }

    /// Normalises one tick given as raw `[service][channel]` values into `out`.
    pub fn apply_row(&self, raw: &[f32], out: &mut [f32]) {
        let nc = self.channels.len();
        for (i, (r, o)) in raw.iter().zip(out.iter_mut()).enumerate() {
            *o = self.apply(i / nc, i % nc, *r);
        }
    }
}

/// `order[i]` = the dataset index of `services[i]`; every service must be there.
pub fn service_order(ds: &Dataset, services: &[String]) -> Result<Vec<usize>, FeatureError> {
    let index: HashMap<&str, usize> = ds
        .meta
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    services
        .iter()
        .map(|s| {
            index
                .get(s.as_str())
                .copied()
                .ok_or_else(|| FeatureError::MissingService {
                    origin: ds.meta.origin.clone(),
                    service: s.clone(),
                    available: ds.meta.services.len(),
                })
        })
        .collect()
}

/// A dataset as model input: normalised signals and per-tick labels.
#[derive(Debug, Clone)]
pub struct Series {
    /// Ticks.
    pub n_ticks: usize,
    /// Services (model order).
    pub n_services: usize,
    /// Channels.
    pub n_channels: usize,
    /// `x[(t * n_services + s) * n_channels + c]`, normalised.
    pub x: Vec<f32>,
    /// Raw queue depth `queue[t * n_services + s]` (for the rule baselines).
    pub queue: Vec<f32>,
    /// Raw CPU utilisation `cpu[t * n_services + s]` (0 where unknown), for the
    /// utilisation baseline.
    pub cpu: Vec<f32>,
    /// Whether the dataset had CPU utilisation at all.
    pub has_cpu: bool,
    /// Raw QoS ratio of each tick ([`qos_ratios`]), for the QoS-threshold baseline.
    pub qos: Vec<f32>,
    /// Label of each tick (`None` near the end, where the horizon is not known).
    pub labels: Vec<Option<Label>>,
    /// The resource of the first culprit (model order) at each tick with one,
    /// for per-fault breakdowns of culprit accuracy.
    pub culprit_resource: Vec<Option<seer_traces::Resource>>,
    /// Whether the fault of a tick's labelled culprit is still on at that tick: a
    /// violation that outlasts its cause keeps its culprits after.
    pub fault_on: Vec<bool>,
}

impl Series {
    /// Builds the series of `ds` for a model reading `norm.services` and
    /// `norm.channels` with a horizon of `h` ticks.
    pub fn new(ds: &Dataset, norm: &Normalizer, h: usize) -> Result<Series, FeatureError> {
        ds.check_shape().map_err(|message| FeatureError::Shape {
            origin: ds.meta.origin.clone(),
            message,
        })?;
        let order = service_order(ds, &norm.services)?;
        let (nt, ns, nc) = (ds.n_ticks(), norm.services.len(), norm.channels.len());
        let mut x = vec![0f32; nt * ns * nc];
        let mut queue = vec![0f32; nt * ns];
        let mut cpu = vec![0f32; nt * ns];
        let mut has_cpu = false;
        let qos = qos_ratios(ds);
        for t in 0..nt {
            let row = ds.services_at(t);
            for (s, d) in order.iter().enumerate() {
                for (c, ch) in norm.channels.iter().enumerate() {
                    x[(t * ns + s) * nc + c] = norm.apply(s, c, ch.raw(&row[*d], qos[t]));
                }
                queue[t * ns + s] = Channel::Queue.raw(&row[*d], 0.0);
                cpu[t * ns + s] = Channel::Cpu.raw(&row[*d], 0.0);
                has_cpu |= row[*d].cpu_util.is_finite();
            }
        }
        let opt: Vec<Option<usize>> = order.iter().map(|&d| Some(d)).collect();
        let nd = ds.n_services();
        let culprit_resource = attribution_ticks((0..nt).map(|t| ds.any_violation(t)))
            .into_iter()
            .map(|a| order.iter().find_map(|&d| ds.culprit[a * nd + d]))
            .collect();
        let labels = labels(ds, &opt, h);
        let fault_on = labels
            .iter()
            .enumerate()
            .map(|(t, l)| match l {
                Some(Label::Culprits(c)) => {
                    c.iter().any(|&s| ds.culprit[t * nd + order[s]].is_some())
                }
                _ => false,
            })
            .collect();
        Ok(Series {
            n_ticks: nt,
            n_services: ns,
            n_channels: nc,
            x,
            queue,
            cpu,
            has_cpu,
            qos,
            labels,
            culprit_resource,
            fault_on,
        })
    }

    /// Ticks that can end a window of `w` and have a label.
    pub fn window_ends(&self, w: usize) -> impl Iterator<Item = usize> + '_ {
        (w.saturating_sub(1)..self.n_ticks).filter(|&t| self.labels[t].is_some())
    }

    /// The window of `w` ticks ending at tick `t`, `[w, services, channels]`.
    pub fn window(&self, t: usize, w: usize) -> &[f32] {
        let row = self.n_services * self.n_channels;
        &self.x[(t + 1 - w) * row..(t + 1) * row]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthConfig, synth_dataset};
    use seer_traces::EntryTick;

    #[test]
    fn horizon_ticks_rounds_up_and_is_at_least_one() {
        assert_eq!(horizon_ticks(100_000_000, 100_000_000), 1);
        assert_eq!(horizon_ticks(10_000_000, 100_000_000), 1);
        assert_eq!(horizon_ticks(150_000_000, 100_000_000), 2);
        assert_eq!(horizon_ticks(1_000_000_000, 100_000_000), 10);
        assert_eq!(horizon_ticks(0, 100_000_000), 1);
    }

    #[test]
    fn channel_names_round_trip() {
        for c in [
            Channel::Queue,
            Channel::Wait,
            Channel::Active,
            Channel::Cpu,
            Channel::P99Ms,
            Channel::Arrivals,
            Channel::Errors,
            Channel::Hop,
            Channel::Qos,
        ] {
            assert_eq!(c.name().parse::<Channel>().unwrap(), c);
        }
        let t = ServiceTick {
            queue_mean: 7.0,
            wait_mean: 2.0,
            arrivals: 9,
            errors: 3,
            p99_ms: f32::NAN,
            hop_mean: 0.25,
            ..ServiceTick::default()
        };
        let raw: Vec<f32> = [
            Channel::Queue,
            Channel::Wait,
            Channel::Active,
            Channel::P99Ms,
            Channel::Arrivals,
            Channel::Errors,
            Channel::Hop,
            Channel::Qos,
        ]
        .iter()
        .map(|c| c.raw(&t, 1.5))
        .collect();
        assert_eq!(raw, [7.0, 2.0, 5.0, 0.0, 9.0, 3.0, 0.25, 1.5]);
        // Unknown network time (no client spans) reads as none.
        let unknown = ServiceTick::default();
        assert_eq!(Channel::Hop.raw(&unknown, 1.0), 0.0);
        assert_eq!("network".parse::<Channel>().unwrap(), Channel::Wait);
        assert_eq!("app".parse::<Channel>().unwrap(), Channel::Active);
        let e = "gpu".parse::<Channel>().unwrap_err().to_string();
        assert!(e.contains("gpu") && e.contains("wait"), "{e}");
    }

    /// A chain of three services with no violation and no culprit.
    fn quiet_chain(n_ticks: usize) -> Dataset {
        let mut ds = synth_dataset(&SynthConfig {
            n_services: 3,
            n_ticks,
            ..Default::default()
        });
        ds.violation.iter_mut().for_each(|v| *v = false);
        ds.culprit.iter_mut().for_each(|c| *c = None);
        ds
    }

    #[test]
    fn labels_attribute_violations_to_active_culprits() {
        let mut ds = quiet_chain(10);
        ds.violation[5] = true; // one entry point: tick 5
        ds.culprit[4 * 3 + 2] = Some(seer_traces::Resource::Cpu);
        let order = [Some(0), Some(1), Some(2)];
        let l = labels(&ds, &order, 1);
        assert_eq!(l[3], Some(Label::Quiet));
        assert_eq!(l[4], Some(Label::Culprits(vec![2])));
        assert_eq!(l[5], Some(Label::Quiet));
        assert_eq!(l[9], None);
        let l2 = labels(&ds, &order, 2);
        assert_eq!(l2[3], Some(Label::Unattributed));
        assert_eq!(l2[8], None);
        // Reordered model: dataset service 2 is model service 0.
        let l3 = labels(&ds, &[Some(2), Some(0), Some(1)], 1);
        assert_eq!(l3[4], Some(Label::Culprits(vec![0])));
    }

    #[test]
    fn a_violation_keeps_the_culprit_that_started_it() {
        use seer_traces::Resource;
        let mut ds = quiet_chain(16);
        // Service 1's fault (ticks 3..=7) starts a violation at 5..=9; service
        // 2's fault (ticks 6..=13) comes during it and starts the next at 12..=13.
        (5..=9).chain(12..=13).for_each(|t| ds.violation[t] = true);
        (3..=7).for_each(|t| ds.culprit[t * 3 + 1] = Some(Resource::Cpu));
        (6..=13).for_each(|t| ds.culprit[t * 3 + 2] = Some(Resource::Net));
        let l = labels(&ds, &[Some(0), Some(1), Some(2)], 1);
        let one = Some(Label::Culprits(vec![1]));
        assert_eq!(&l[4..=8], &vec![one; 5][..], "{l:?}");
        assert_eq!(l[9], Some(Label::Quiet));
        assert_eq!(l[11], Some(Label::Culprits(vec![2])));
        assert_eq!(l[12], Some(Label::Culprits(vec![2])));
        let norm = Normalizer::fit(
            &[&ds],
            &[vec![true; 16]],
            &ds.meta.services,
            &[Channel::Queue],
        )
        .unwrap();
        let s = Series::new(&ds, &norm, 1).unwrap();
        assert_eq!(s.culprit_resource[8], Some(Resource::Cpu));
        assert_eq!(s.culprit_resource[12], Some(Resource::Net));
        // Ticks 4..=8 carry service 1's label (its violation began at 5), but its
        // fault ended at 7; service 2's labels (11, 12) come while its fault is on.
        let on: Vec<usize> = (0..16).filter(|&t| s.fault_on[t]).collect();
        assert_eq!(on, [4, 5, 6, 7, 11, 12]);
        // A violation that began with no fault active stays unattributed.
        ds.culprit.iter_mut().for_each(|c| *c = None);
        (6..=13).for_each(|t| ds.culprit[t * 3 + 2] = Some(Resource::Net));
        let l = labels(&ds, &[Some(0), Some(1), Some(2)], 1);
        assert_eq!(l[6], Some(Label::Unattributed));
        assert_eq!(l[11], Some(Label::Culprits(vec![2])));
    }

    #[test]
    fn the_qos_ratio_is_the_worst_entry_over_its_target_and_survives_stalls() {
        let mut ds = quiet_chain(6);
        ds.meta.entries = vec!["/a".into(), "/b".into()];
        ds.meta.targets_ms = vec![20.0, 50.0];
        let nan = f32::NAN;
        // Windowed p99 of /a and /b per tick; NaN = nothing completed in the window.
        let p99 = [
            (nan, nan),
            (10.0, nan),
            (nan, nan),
            (10.0, 40.0),
            (30.0, 10.0),
            (nan, nan),
        ];
        ds.entry = p99
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .map(|p| EntryTick {
                p99_window_ms: p,
                ..Default::default()
            })
            .collect();
        ds.violation = vec![false; 12];
        ds.violation_within = vec![false; 12];
        ds.check_shape().unwrap();
        let want = [0.0, 0.5, 0.5, 0.8, 1.5, 1.5];
        let got = qos_ratios(&ds);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
        // Every service reads the same value, normalised like any channel.
        let channels = [Channel::Queue, Channel::Qos];
        let norm = Normalizer::fit(&[&ds], &[vec![true; 6]], &ds.meta.services, &channels).unwrap();
        let s = Series::new(&ds, &norm, 1).unwrap();
        for (t, w) in want.iter().enumerate() {
            for svc in 0..3 {
                let x = s.x[(t * 3 + svc) * 2 + 1];
                assert!(
                    (x - norm.apply(svc, 1, *w)).abs() < 1e-5,
                    "tick {t} service {svc}"
                );
            }
        }
        assert!(s.x[(4 * 3) * 2 + 1] > s.x[(3 * 3) * 2 + 1]);
    }

    #[test]
    fn normalizer_centres_training_data() {
        let ds = synth_dataset(&SynthConfig {
            n_services: 4,
            n_ticks: 500,
            ..Default::default()
        });
        let norm = Normalizer::fit(
            &[&ds],
            &[vec![true; 500]],
            &ds.meta.services,
            &[Channel::Queue, Channel::Arrivals],
        )
        .unwrap();
        let s = Series::new(&ds, &norm, 1).unwrap();
        for k in 0..(4 * 2) {
            let vals: Vec<f32> = (0..500).map(|t| s.x[t * 8 + k]).collect();
            let mean = vals.iter().sum::<f32>() / 500.0;
            assert!(mean.abs() < 1e-3, "channel {k} mean {mean}");
        }
        assert_eq!(s.window(19, 20).len(), 20 * 4 * 2);
    }

    #[test]
    fn missing_service_is_named() {
        let ds = synth_dataset(&SynthConfig {
            n_services: 2,
            n_ticks: 30,
            ..Default::default()
        });
        let err = service_order(&ds, &["nope".to_string()]).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn normalisation_is_finite_for_any_input(raw in proptest::num::f32::ANY) {
            let norm = Normalizer {
                channels: vec![Channel::Queue],
                services: vec!["a".into()],
                mean: vec![1.0],
                std: vec![Normalizer::MIN_STD],
            };
            proptest::prop_assert!(norm.apply(0, 0, raw).is_finite());
        }
    }
}
