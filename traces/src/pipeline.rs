//! The whole offline path in one type: spans → aggregator + service graph → a
//! labelled [`Dataset`].

use crate::aggregate::{Aggregator, AggregatorConfig, AggregatorStats};
use crate::dataset::{DATASET_VERSION, Dataset, DatasetMeta};
use crate::graph::{GraphBuilder, ServiceGraph};
use crate::labels::{Culprit, QosSpec};
use crate::span::Span;
use crate::tick::{EntryTick, QueueSource, ServiceTick, Tick};

/// How a [`Pipeline`] cuts ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Tick length, ns.
    pub interval_ns: u64,
    /// Lateness before a tick is finalised, ns.
    pub lateness_ns: u64,
    /// Sub-slots per tick for the peak queue depth.
    pub sub_slots: usize,
    /// Where queue depth comes from.
    pub queue_source: QueueSource,
    /// Ticks in the window over which the end-to-end p99 is judged.
    pub qos_window_ticks: usize,
    /// Completions that window stretches back to hold (0: none).
    pub qos_min_requests: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        let a = AggregatorConfig::default();
        Self {
            interval_ns: a.interval_ns,
            lateness_ns: a.lateness_ns,
            sub_slots: a.sub_slots,
            queue_source: a.queue_source,
            qos_window_ticks: a.qos_window_ticks,
            qos_min_requests: a.qos_min_requests,
        }
    }
}

impl From<&PipelineConfig> for AggregatorConfig {
    fn from(c: &PipelineConfig) -> Self {
        AggregatorConfig {
            interval_ns: c.interval_ns,
            lateness_ns: c.lateness_ns,
            sub_slots: c.sub_slots,
            queue_source: c.queue_source.clone(),
            qos_window_ticks: c.qos_window_ticks,
            qos_min_requests: c.qos_min_requests,
        }
    }
}

/// What labelling found besides the labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelReport {
    /// Culprits whose service never appeared in the data.
    pub unknown_culprit_services: Vec<String>,
    /// Culprits that fall outside the dataset's time range.
    pub culprits_out_of_range: usize,
}

/// Spans in, a labelled dataset out.
#[derive(Debug)]
pub struct Pipeline {
    agg: Aggregator,
    graph: GraphBuilder,
    ticks: Vec<Tick>,
}

impl Pipeline {
    /// A new pipeline.
    pub fn new(cfg: PipelineConfig) -> Self {
        Self {
            agg: Aggregator::new((&cfg).into()),
            graph: GraphBuilder::default(),
            ticks: Vec::new(),
        }
    }

    /// Adds one span.
    pub fn push(&mut self, span: &Span) {
        self.agg.push(span);
        self.graph.push(span);
        let ready = self.agg.drain_ready();
        self.ticks.extend(ready);
    }

    /// Adds one application queue-depth gauge point.
    pub fn push_gauge(&mut self, service: &str, t_ns: u64, value: f64) {
        self.agg.push_gauge(service, t_ns, value);
        self.graph.add_service(service);
    }

    /// Finalises the ticks that end at or before `watermark_ns` (live mode: the
    /// caller's clock minus the lateness), even when no span arrives.
    pub fn drain_until(&mut self, watermark_ns: u64) {
        let ready = self.agg.drain_until(watermark_ns);
        self.ticks.extend(ready);
    }

    /// Ticks finalised and not yet taken.
    pub fn ready_ticks(&self) -> usize {
        self.ticks.len()
    }

    /// Takes the finalised ticks as a labelled dataset (live mode rolls files with
    /// this); `None` when no tick is ready. Open ticks stay open.
    pub fn take_dataset(
        &mut self,
        qos: &QosSpec,
        culprits: &[Culprit],
        origin: String,
    ) -> Option<Dataset> {
        if self.ticks.is_empty() {
            return None;
        }
        let ticks = std::mem::take(&mut self.ticks);
        let order = self.graph.build().topological_order();
        Some(build_dataset(&self.agg, &ticks, &order, qos, culprits, origin).0)
    }

    /// Aggregator counters so far.
    pub fn stats(&self) -> &AggregatorStats {
        self.agg.stats()
    }

    /// The service graph so far.
    pub fn graph(&self) -> ServiceGraph {
        self.graph.build()
    }

    /// Finalises every tick and labels the run.
    pub fn finish(self, qos: &QosSpec, culprits: &[Culprit], origin: String) -> Dataset {
        self.finish_with_report(qos, culprits, origin).0
    }

    /// As [`Pipeline::finish`], also saying which culprits could not be placed.
    pub fn finish_with_report(
        mut self,
        qos: &QosSpec,
        culprits: &[Culprit],
        origin: String,
    ) -> (Dataset, LabelReport) {
        let rest = self.agg.finish();
        self.ticks.extend(rest);
        let order = self.graph.build().topological_order();
        build_dataset(&self.agg, &self.ticks, &order, qos, culprits, origin)
    }
}

/// Turns finalised ticks into a dense, labelled dataset with services in `order`
/// (services the order lacks are appended by name).
pub fn build_dataset(
    agg: &Aggregator,
    ticks: &[Tick],
    order: &[String],
    qos: &QosSpec,
    culprits: &[Culprit],
    origin: String,
) -> (Dataset, LabelReport) {
    let cfg = agg.config();
    let mut services: Vec<String> = order
        .iter()
        .filter(|s| agg.services().contains(s))
        .cloned()
        .collect();
    let mut rest: Vec<String> = agg
        .services()
        .iter()
        .filter(|s| !services.contains(s))
        .cloned()
        .collect();
    rest.sort();
    services.extend(rest);
    let mut entries: Vec<String> = agg.entries().to_vec();
    entries.sort();
    let svc_src: Vec<usize> = services
        .iter()
        .map(|s| {
            agg.services()
                .iter()
                .position(|x| x == s)
                .unwrap_or(usize::MAX)
        })
        .collect();
    let ent_src: Vec<usize> = entries
        .iter()
        .map(|e| {
            agg.entries()
                .iter()
                .position(|x| x == e)
                .unwrap_or(usize::MAX)
        })
        .collect();
    let (nt, ns, ne) = (ticks.len(), services.len(), entries.len());
    let mut service = Vec::with_capacity(nt * ns);
    let mut entry = Vec::with_capacity(nt * ne);
    for t in ticks {
        service.extend(
            svc_src
                .iter()
                .map(|&i| t.services.get(i).copied().unwrap_or_default()),
        );
        entry.extend(
            ent_src
                .iter()
                .map(|&i| t.entries.get(i).copied().unwrap_or_default()),
        );
    }
    let start_ns = ticks.first().map(|t| t.start_ns).unwrap_or(0);
    let targets_ms = resolve_targets(qos, &entries, &entry, nt);
    let mut violation = vec![false; nt * ne];
    for t in 0..nt {
        for e in 0..ne {
            let before = t > 0 && violation[(t - 1) * ne + e];
            violation[t * ne + e] = qos.violates(&entry[t * ne + e], targets_ms[e], before);
        }
    }
    let k = qos.horizon_ns.div_ceil(cfg.interval_ns).max(1) as usize;
    let violation_within = within_horizon(&violation, nt, ne, k);
    let mut report = LabelReport::default();
    let mut culprit = vec![None; nt * ns];
    let iv = cfg.interval_ns;
    for c in culprits {
        let Some(s) = services.iter().position(|x| *x == c.service) else {
            if !report.unknown_culprit_services.contains(&c.service) {
                report.unknown_culprit_services.push(c.service.clone());
            }
            continue;
        };
        let end_of_data = start_ns + nt as u64 * iv;
        if c.end_ns <= start_ns || c.start_ns >= end_of_data {
            report.culprits_out_of_range += 1;
            continue;
        }
        let t0 = (c.start_ns.saturating_sub(start_ns) / iv) as usize;
        let t1 = (c
            .end_ns
            .min(end_of_data)
            .saturating_sub(start_ns)
            .div_ceil(iv) as usize)
            .min(nt);
        for t in t0..t1 {
            culprit[t * ns + s] = Some(c.resource);
        }
    }
    let meta = DatasetMeta {
        version: DATASET_VERSION,
        interval_ns: iv,
        start_ns,
        n_ticks: nt,
        services,
        entries,
        queue_source: cfg.queue_source.clone(),
        qos: qos.clone(),
        targets_ms,
        qos_min_requests: cfg.qos_min_requests,
        origin,
        late_spans: agg.stats().late_spans,
        calls_paired: agg.stats().calls_paired,
    };
    (
        Dataset {
            meta,
            service,
            entry,
            violation,
            violation_within,
            culprit,
        },
        report,
    )
}

/// `within[t] = any(v[t+1 ..= t+k])`, per entry.
fn within_horizon(v: &[bool], nt: usize, ne: usize, k: usize) -> Vec<bool> {
    let mut out = vec![false; nt * ne];
    for e in 0..ne {
        // Ticks until the next violation, scanning backwards.
        let mut next: Option<usize> = None;
        for t in (0..nt).rev() {
            if let Some(n) = next {
                out[t * ne + e] = n - t <= k;
            }
            if v[t * ne + e] {
                next = Some(t);
            }
        }
    }
    out
}

/// Explicit targets, else `multiple` × the median judged p99 of the reference period.
fn resolve_targets(qos: &QosSpec, entries: &[String], entry: &[EntryTick], nt: usize) -> Vec<f64> {
    let ne = entries.len();
    entries
        .iter()
        .enumerate()
        .map(|(e, name)| {
            if let Some((_, t)) = qos.targets_ms.iter().find(|(n, _)| n == name) {
                return *t;
            }
            let mut ref_p99: Vec<f64> = (0..nt)
                .map(|t| entry[t * ne + e])
                .filter(|x| x.requests > 0)
                .map(|x| qos.judged_p99(&x))
                .filter(|p| p.is_finite())
                .take(qos.reference_ticks.max(1))
                .collect();
            if ref_p99.is_empty() {
                return f64::INFINITY;
            }
            ref_p99.sort_by(f64::total_cmp);
            ref_p99[ref_p99.len() / 2] * qos.multiple
        })
        .collect()
}

/// Service rows of a dataset, as a convenience for reports: `(name, mean queue)`.
pub fn mean_queue(ds: &Dataset) -> Vec<(String, f64)> {
    ds.meta
        .services
        .iter()
        .cloned()
        .zip(
            service_means(ds, |t| t.queue_mean)
                .into_iter()
                .map(|m| m.unwrap_or(0.0)),
        )
        .collect()
}

/// Each service's mean network time (`hop_mean`) over the ticks that have one, in
/// dataset order; `None` where no tick has (no client spans paired).
pub fn mean_hop(ds: &Dataset) -> Vec<Option<f64>> {
    service_means(ds, |t| t.hop_mean)
}

/// Per service, the mean of `f` over the ticks where it is finite.
fn service_means(ds: &Dataset, f: impl Fn(&ServiceTick) -> f32) -> Vec<Option<f64>> {
    let ns = ds.n_services();
    (0..ns)
        .map(|s| {
            let (sum, n) = (0..ds.n_ticks())
                .map(|t| f(&ds.service[t * ns + s]))
                .filter(|v| v.is_finite())
                .fold((0.0, 0usize), |(sum, n), v| (sum + f64::from(v), n + 1));
            (n > 0).then(|| sum / n as f64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Resource;
    use crate::span::{SpanKind, SpanStatus};

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000_000 * MS;

    fn span(id: u64, parent: Option<u64>, svc: &str, start_ms: u64, dur_ms: u64) -> Span {
        Span {
            trace_id: id as u128,
            span_id: id,
            parent_id: parent,
            service: svc.into(),
            operation: if parent.is_none() {
                "/home".into()
            } else {
                "get".into()
            },
            kind: SpanKind::Server,
            start_ns: T0 + start_ms * MS,
            end_ns: T0 + (start_ms + dur_ms) * MS,
            status: SpanStatus::Ok,
        }
    }

    #[test]
    fn violations_horizon_and_culprits_are_labelled() {
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut id = 1;
        // 30 ticks; one request per tick; tick 20 is slow (80 ms vs 10 ms).
        for t in 0..30u64 {
            let dur = if t == 20 { 80 } else { 10 };
            p.push(&span(id + 1, Some(id), "db", t * 100 + 1, dur - 2));
            p.push(&span(id, None, "front", t * 100, dur));
            id += 2;
        }
        let culprit = Culprit {
            service: "db".into(),
            resource: Resource::Cpu,
            start_ns: T0 + 1950 * MS,
            end_ns: T0 + 2100 * MS,
        };
        let ghost = Culprit {
            service: "nope".into(),
            ..culprit.clone()
        };
        let per_tick = QosSpec {
            windowed: false,
            ..Default::default()
        };
        let (ds, rep) = p.finish_with_report(&per_tick, &[culprit, ghost], "test".into());
        ds.check_shape().unwrap();
        assert_eq!(ds.meta.services, ["front", "db"]);
        assert_eq!(ds.meta.targets_ms, [20.0]);
        let v: Vec<usize> = (0..ds.n_ticks()).filter(|&t| ds.violation[t]).collect();
        assert_eq!(v, [20]);
        let w: Vec<usize> = (0..ds.n_ticks())
            .filter(|&t| ds.violation_within[t])
            .collect();
        assert_eq!(w, [19]);
        let c: Vec<usize> = (0..ds.n_ticks())
            .filter(|&t| ds.culprit[t * 2 + 1].is_some())
            .collect();
        assert_eq!(c, [19, 20]);
        assert_eq!(rep.unknown_culprit_services, ["nope"]);
    }

    #[test]
    fn a_windowed_qos_judges_the_p99_of_the_last_second() {
        let mut p = Pipeline::new(PipelineConfig::default());
        // One request per tick; tick 20 is slow: over a 10-tick window the p99 is
        // the slowest request, so ticks 20..=29 violate and the reference median
        // stays at 10 ms.
        for t in 0..40u64 {
            let dur = if t == 20 { 80 } else { 10 };
            p.push(&span(t + 1, None, "front", t * 100, dur));
        }
        let ds = p.finish(&QosSpec::default(), &[], "window".into());
        // The window's histogram keeps 2 significant digits (within 1 %).
        assert!(
            (ds.meta.targets_ms[0] - 20.0).abs() < 0.2,
            "{:?}",
            ds.meta.targets_ms
        );
        let v: Vec<usize> = (0..ds.n_ticks()).filter(|&t| ds.violation[t]).collect();
        assert_eq!(v, (20..30).collect::<Vec<_>>());
        let w = ds.entry[25].p99_window_ms;
        assert!((w - 80.0).abs() < 1.0, "window p99 {w}");
        assert!((ds.entry[25].p99_ms - 10.0).abs() < 0.2);
        assert!(
            (ds.entry[30].p99_window_ms - 10.0).abs() < 0.2,
            "{:?}",
            ds.entry[30]
        );
    }

    #[test]
    fn a_minimum_of_requests_stretches_the_window_past_one_slow_request() {
        // Five requests per tick, one slow request at tick 100. Over a 1 s window
        // (50 requests) the p99 is the slowest: ten ticks violate. A window of at
        // least 200 requests (4 s) puts the slow one at rank 200 and judges the
        // 99th percentile, the second slowest: nothing violates.
        let run = |min: u64| {
            let mut p = Pipeline::new(PipelineConfig {
                qos_min_requests: min,
                ..PipelineConfig::default()
            });
            let mut id = 0;
            for t in 0..200u64 {
                for k in 0..5 {
                    id += 1;
                    let dur = if t == 100 && k == 0 { 80 } else { 10 + k };
                    p.push(&span(id, None, "front", t * 100 + k * 10, dur));
                }
            }
            let qos = QosSpec {
                targets_ms: vec![("front".into(), 20.0)],
                ..QosSpec::default()
            };
            p.finish(&qos, &[], "minimum".into())
        };
        let one_second = run(0);
        let v: Vec<usize> = (0..one_second.n_ticks())
            .filter(|&t| one_second.violation[t])
            .collect();
        assert_eq!(v.len(), 10, "{v:?}");
        let stretched = run(200);
        assert_eq!(
            (
                one_second.meta.qos_min_requests,
                stretched.meta.qos_min_requests
            ),
            (0, 200)
        );
        assert!(!stretched.violation.iter().any(|&v| v));
        let w = stretched.entry[105].p99_window_ms;
        assert!((w - 14.0).abs() < 0.2, "window p99 {w}");
        // Early on the window cannot hold 200 yet and judges what it has.
        assert!(stretched.entry[3].p99_window_ms.is_finite());
    }

    #[test]
    fn a_stall_inside_a_violation_stays_a_violation() {
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut id = 0;
        let mut req = |p: &mut Pipeline, start_ms: u64, dur_ms: u64| {
            id += 1;
            p.push(&span(id, None, "front", start_ms, dur_ms));
        };
        // 10 ms requests each tick; the one of tick 40 takes 80 ms; those of
        // ticks 41..=45 all finish at 6.2 s (counted in tick 61), so nothing
        // completes in ticks 41..=60 and the windows of ticks 50..=60 hold no
        // request; from tick 62 on, 10 ms requests again.
        for t in 0..40u64 {
            req(&mut p, t * 100, 10);
        }
        req(&mut p, 4000, 80);
        for t in 41..=45u64 {
            req(&mut p, t * 100, 6200 - t * 100);
        }
        for t in 62..90u64 {
            req(&mut p, t * 100 + 10, 10);
        }
        let ds = p.finish(&QosSpec::default(), &[], "stall".into());
        assert!(ds.entry[55].p99_window_ms.is_nan(), "{:?}", ds.entry[55]);
        let v: Vec<usize> = (0..ds.n_ticks()).filter(|&t| ds.violation[t]).collect();
        // One episode: the slow request's window, the silent stall, then the
        // stalled requests' window.
        assert_eq!(v, (40..=70).collect::<Vec<_>>());
    }

    #[test]
    fn parquet_round_trip() {
        let mut p = Pipeline::new(PipelineConfig::default());
        for i in 0..50u64 {
            p.push(&span(
                2 * i + 2,
                Some(2 * i + 1),
                "b",
                i * 37 + 1,
                5 + i % 7,
            ));
            p.push(&span(2 * i + 1, None, "a", i * 37, 9 + i % 7));
        }
        let c = Culprit {
            service: "b".into(),
            resource: Resource::Llc,
            start_ns: T0,
            end_ns: T0 + 300 * MS,
        };
        let ds = p.finish(
            &QosSpec {
                multiple: 1.0,
                windowed: false,
                ..Default::default()
            },
            &[c],
            "rt".into(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ds.parquet");
        ds.write_parquet(&path).unwrap();
        let back = Dataset::read_parquet(&path).unwrap();
        // NaN != NaN, so compare through the bit patterns.
        let bits = |d: &Dataset| {
            format!(
                "{:?}",
                d.service
                    .iter()
                    .map(|s| (
                        s.queue_mean.to_bits(),
                        s.p99_ms.to_bits(),
                        s.hop_mean.to_bits()
                    ))
                    .collect::<Vec<_>>()
            )
        };
        assert_eq!(bits(&ds), bits(&back));
        let ebits = |d: &Dataset| {
            d.entry
                .iter()
                .map(|e| (e.p99_ms.to_bits(), e.p99_window_ms.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ebits(&ds), ebits(&back));
        assert!(ds.entry.iter().any(|e| e.p99_window_ms.is_finite()));
        assert_eq!(ds.meta, back.meta);
        assert_eq!(ds.violation, back.violation);
        assert_eq!(ds.culprit, back.culprit);
        assert!(ds.violation.iter().any(|&v| v));
    }

    #[test]
    fn not_a_dataset_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        std::fs::write(&path, b"PAR1 not really").unwrap();
        let e = Dataset::read_parquet(&path).unwrap_err().to_string();
        assert!(e.contains("x.parquet"), "{e}");
    }
}
