//! `seer ingest`: trace files or a live OTLP stream into labelled tick datasets.

use crate::cli::IngestArgs;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use seer_traces::faults::read_nezha_faults;
use seer_traces::import::{self, Format, ImportStats, SpanReader};
use seer_traces::pipeline::{LabelReport, mean_hop, mean_queue};
use seer_traces::{Culprit, Dataset, Pipeline, PipelineConfig, QosSpec, QueueSource};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated `seer ingest` configuration.
#[derive(Debug, Clone)]
pub struct FileIngest {
    /// Input files, directories expanded (name order).
    pub files: Vec<PathBuf>,
    /// Trace format.
    pub format: Format,
    /// Aggregation settings.
    pub pipeline: PipelineConfig,
    /// QoS targets and horizon.
    pub qos: QosSpec,
    /// Ground truth.
    pub culprits: Vec<Culprit>,
    /// Output file or directory.
    pub out: PathBuf,
}

impl FileIngest {
    /// Validates raw arguments.
    pub fn from_args(a: &IngestArgs) -> Result<Self> {
        let format = Format::from_name(&a.format)?;
        let mut files = Vec::new();
        for p in &a.inputs {
            files.extend(expand(p)?);
        }
        let live = a.listen.is_some();
        let lateness = a.lateness.unwrap_or(if live {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(120)
        });
        let culprits = match &a.faults {
            Some(f) => read_nezha_faults(f, a.fault_duration.as_nanos() as u64)?
                .into_iter()
                .map(|f| f.culprit)
                .collect(),
            None => Vec::new(),
        };
        if !(a.qos_multiple.is_finite() && a.qos_multiple > 0.0) {
            bail!(
                "--qos-multiple {} must be a positive number",
                a.qos_multiple
            );
        }
        let interval_ns = (a.interval.as_nanos() as u64).max(1);
        let window_ticks = (a.qos_window.as_nanos() as u64)
            .div_ceil(interval_ns)
            .max(1) as usize;
        Ok(Self {
            files,
            format,
            pipeline: PipelineConfig {
                interval_ns: a.interval.as_nanos() as u64,
                lateness_ns: lateness.as_nanos() as u64,
                queue_source: match &a.queue_metric {
                    Some(m) => QueueSource::AppMetric(m.clone()),
                    None => QueueSource::Spans,
                },
                qos_window_ticks: window_ticks,
                qos_min_requests: a.qos_min_requests,
                ..PipelineConfig::default()
            },
            qos: QosSpec {
                targets_ms: a.qos_targets.clone(),
                multiple: a.qos_multiple,
                reference_ticks: a.reference_ticks,
                horizon_ns: a.horizon.as_nanos() as u64,
                windowed: window_ticks > 1 || a.qos_min_requests > 0,
            },
            culprits,
            out: a.out.clone(),
        })
    }
}

fn expand(p: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(p).with_context(|| format!("failed to read {}", p.display()))?;
    if !meta.is_dir() {
        return Ok(vec![p.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(p)
        .with_context(|| format!("failed to list {}", p.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no files", p.display());
    }
    Ok(files)
}

/// What an ingest did, for the table and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    /// Output file.
    pub out: PathBuf,
    /// Files read.
    pub files: u64,
    /// Valid spans.
    pub spans: u64,
    /// Rejected records by reason.
    pub rejected: Vec<(String, u64)>,
    /// The first rejections, one line each.
    pub rejection_examples: Vec<String>,
    /// Spans whose tick was already final.
    pub late_spans: u64,
    /// Calls whose client span met its server span: each service's network time
    /// comes from these (none: unknown).
    pub calls_paired: u64,
    /// Services, in topological order.
    pub services: Vec<String>,
    /// Ticks.
    pub ticks: usize,
    /// Interval, ms.
    pub interval_ms: f64,
    /// Per entry point: name, target ms, ticks in violation.
    pub entries: Vec<EntrySummary>,
    /// Ticks with a culprit label.
    pub culprit_ticks: usize,
    /// Fault-list services never seen in the traces.
    pub unknown_culprit_services: Vec<String>,
}

/// One entry point in a summary.
#[derive(Debug, Clone, Serialize)]
pub struct EntrySummary {
    /// Entry-point name.
    pub name: String,
    /// Its p99 target, ms.
    pub target_ms: f64,
    /// Ticks with requests.
    pub active_ticks: usize,
    /// Ticks over the target.
    pub violation_ticks: usize,
}

impl IngestSummary {
    /// Builds the summary of a finished ingest.
    pub fn new(out: &Path, stats: &ImportStats, ds: &Dataset, report: &LabelReport) -> Self {
        let ne = ds.n_entries();
        let entries = (0..ne)
            .map(|e| EntrySummary {
                name: ds.meta.entries[e].clone(),
                target_ms: ds.meta.targets_ms[e],
                active_ticks: (0..ds.n_ticks())
                    .filter(|&t| ds.entry[t * ne + e].requests > 0)
                    .count(),
                violation_ticks: (0..ds.n_ticks())
                    .filter(|&t| ds.violation[t * ne + e])
                    .count(),
            })
            .collect();
        Self {
            out: out.to_path_buf(),
            files: stats.files,
            spans: stats.spans,
            rejected: stats
                .rejected_by_reason()
                .into_iter()
                .map(|(r, n)| (r.to_string(), n))
                .collect(),
            rejection_examples: stats.rejections.iter().map(|r| r.to_string()).collect(),
            late_spans: ds.meta.late_spans,
            calls_paired: ds.meta.calls_paired,
            services: ds.meta.services.clone(),
            ticks: ds.n_ticks(),
            interval_ms: ds.meta.interval_ns as f64 / 1e6,
            entries,
            culprit_ticks: (0..ds.n_ticks())
                .filter(|&t| ds.culprits_at(t).next().is_some())
                .count(),
            unknown_culprit_services: report.unknown_culprit_services.clone(),
        }
    }

    /// The summary as a table for people.
    pub fn table(&self, ds: &Dataset) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let rejected: u64 = self.rejected.iter().map(|r| r.1).sum();
        let _ = writeln!(s, "wrote {}", self.out.display());
        let _ = writeln!(
            s,
            "{} files, {} spans read, {} rejected, {} late; {} services, {} ticks of {} ms",
            self.files,
            self.spans,
            rejected,
            self.late_spans,
            self.services.len(),
            self.ticks,
            self.interval_ms
        );
        for (r, n) in &self.rejected {
            let _ = writeln!(s, "  rejected {r}: {n}");
        }
        for ex in self.rejection_examples.iter().take(5) {
            let _ = writeln!(s, "  e.g. {ex}");
        }
        if self.calls_paired > 0 {
            let _ = writeln!(
                s,
                "{} calls paired with their client spans (network time per service)",
                self.calls_paired
            );
        } else {
            let _ = writeln!(
                s,
                "no client spans paired with server spans: network time unknown"
            );
        }
        let _ = writeln!(
            s,
            "\n{:<48} {:>10} {:>8} {:>10}",
            "entry point", "target ms", "ticks", "violating"
        );
        for e in &self.entries {
            let _ = writeln!(
                s,
                "{:<48} {:>10.1} {:>8} {:>10}",
                trunc(&e.name, 48),
                e.target_ms,
                e.active_ticks,
                e.violation_ticks
            );
        }
        let _ = writeln!(
            s,
            "\n{:<48} {:>10} {:>10}",
            "service (topological order)", "mean queue", "in network"
        );
        for ((name, q), hop) in mean_queue(ds).into_iter().zip(mean_hop(ds)) {
            let hop = hop.map_or_else(|| "-".to_string(), |h| format!("{h:.3}"));
            let _ = writeln!(s, "{:<48} {:>10.3} {:>10}", trunc(&name, 48), q, hop);
        }
        if self.culprit_ticks > 0 || !self.unknown_culprit_services.is_empty() {
            let _ = writeln!(s, "\n{} ticks carry a culprit label", self.culprit_ticks);
        }
        for u in &self.unknown_culprit_services {
            let _ = writeln!(
                s,
                "warning: fault list names service {u:?}, which is not in the traces"
            );
        }
        s
    }
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// Reads every file into one dataset; returns it with its summary.
pub fn ingest_files(cfg: &FileIngest, progress: bool) -> Result<(Dataset, IngestSummary)> {
    if cfg.files.is_empty() {
        bail!("no input files");
    }
    let total: u64 = cfg
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = if progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {wide_bar} {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut reader = import::open_all(&cfg.files, &cfg.format);
    let mut pipeline = Pipeline::new(cfg.pipeline.clone());
    let mut n = 0u64;
    while let Some(span) = reader.next() {
        pipeline.push(&span);
        n += 1;
        if n.is_multiple_of(16_384) {
            bar.set_position(reader.stats().bytes_read);
            bar.set_message(format!("{n} spans"));
        }
    }
    bar.finish_and_clear();
    let stats = reader.stats().clone();
    if stats.spans == 0 {
        let why = stats
            .rejections
            .first()
            .map(|r| format!(": first rejection: {r}"))
            .unwrap_or_default();
        let failed = stats
            .failed_files
            .first()
            .map(|(p, e)| format!(": {}: {e}", p.display()))
            .unwrap_or_default();
        bail!(
            "no valid spans in {} input file(s){why}{failed}",
            cfg.files.len()
        );
    }
    let origin = format!(
        "seer ingest --format {} ({} files)",
        cfg.format.name(),
        cfg.files.len()
    );
    let (ds, report) = pipeline.finish_with_report(&cfg.qos, &cfg.culprits, origin);
    let summary = IngestSummary::new(&cfg.out, &stats, &ds, &report);
    Ok((ds, summary))
}

/// `seer ingest IN... --out FILE`.
pub fn run_files(cfg: &FileIngest, json: bool) -> Result<()> {
    let (ds, summary) = ingest_files(cfg, !json)?;
    ds.write_parquet(&cfg.out)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.table(&ds));
    }
    Ok(())
}

/// `seer ingest --listen ADDR --out DIR`: runs until Ctrl-C.
pub fn run_live(
    addr: std::net::SocketAddr,
    cfg: &FileIngest,
    roll: Duration,
    json: bool,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to listen on {addr}"))?;
        eprintln!("seer: receiving OTLP/gRPC on {}; Ctrl-C stops", listener.local_addr()?);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let summary = live_ingest(listener, cfg, roll, shutdown).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            println!(
                "{} spans, {} rejected, {} gauge points, {} exports refused (back-pressure), {} late; wrote {} files, {} ticks",
                summary.spans, summary.rejected, summary.gauge_points, summary.refused_exports, summary.late_spans,
                summary.files.len(), summary.ticks
            );
        }
        Ok(())
    })
}

/// What a live ingest did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveSummary {
    /// Valid spans received.
    pub spans: u64,
    /// Spans rejected.
    pub rejected: u64,
    /// Queue-depth points received.
    pub gauge_points: u64,
    /// Exports refused because ingest was behind.
    pub refused_exports: u64,
    /// Spans that arrived after their tick was final.
    pub late_spans: u64,
    /// Parquet files written.
    pub files: Vec<PathBuf>,
    /// Ticks written.
    pub ticks: usize,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The live receiver and roller, until `shutdown` resolves; every finalised tick
/// is written before it returns.
pub async fn live_ingest(
    listener: tokio::net::TcpListener,
    cfg: &FileIngest,
    roll: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<LiveSummary> {
    use seer_traces::receiver::{Batch, OtlpReceiver, ReceiverConfig, serve};
    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("failed to create {}", cfg.out.display()))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(256);
    let mut rcfg = ReceiverConfig::default();
    if let QueueSource::AppMetric(name) = &cfg.pipeline.queue_source {
        rcfg.queue_metrics = vec![name.clone()];
    }
    let receiver = OtlpReceiver::new(tx, rcfg);
    let stats = receiver.stats();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(receiver, listener, async {
        let _ = stop_rx.await;
    }));
    let mut pipeline = Pipeline::new(cfg.pipeline.clone());
    let mut summary = LiveSummary::default();
    let lateness = cfg.pipeline.lateness_ns;
    let mut tick = tokio::time::interval(Duration::from_nanos(cfg.pipeline.interval_ns));
    let mut roller = tokio::time::interval(roll);
    roller.tick().await;
    tokio::pin!(shutdown);
    let apply = |p: &mut Pipeline, b: Batch| match b {
        Batch::Spans(spans) => spans.iter().for_each(|s| p.push(s)),
        Batch::Gauges(points) => points
            .iter()
            .for_each(|(svc, t, v)| p.push_gauge(svc, *t, *v)),
    };
    loop {
        tokio::select! {
            Some(b) = rx.recv() => apply(&mut pipeline, b),
            _ = tick.tick() => pipeline.drain_until(now_ns().saturating_sub(lateness)),
            _ = roller.tick() => write_roll(&mut pipeline, cfg, &mut summary)?,
            _ = &mut shutdown => break,
        }
    }
    // Stop accepting, then take what the handlers already queued.
    let _ = stop_tx.send(());
    server
        .await
        .context("receiver task failed")?
        .context("receiver failed")?;
    while let Some(b) = rx.recv().await {
        apply(&mut pipeline, b);
    }
    pipeline.drain_until(u64::MAX);
    write_roll(&mut pipeline, cfg, &mut summary)?;
    let st = stats.lock().unwrap_or_else(|p| p.into_inner());
    summary.spans = st.import.spans;
    summary.rejected = st.import.rejected_total();
    summary.gauge_points = st.gauge_points;
    summary.refused_exports = st.refused_exports;
    summary.late_spans = pipeline.stats().late_spans;
    Ok(summary)
}

fn write_roll(p: &mut Pipeline, cfg: &FileIngest, summary: &mut LiveSummary) -> Result<()> {
    let Some(ds) = p.take_dataset(&cfg.qos, &cfg.culprits, "seer ingest --listen".into()) else {
        return Ok(());
    };
    let name = format!("ticks-{}.parquet", ds.meta.start_ns / 1_000_000);
    let tmp = cfg.out.join(format!(".{name}.tmp"));
    let path = cfg.out.join(&name);
    ds.write_parquet(&tmp)?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("failed to rename {} to {}", tmp.display(), path.display()))?;
    summary.ticks += ds.n_ticks();
    summary.files.push(path);
    Ok(())
}
