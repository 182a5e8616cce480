//! From a simulation to Seer's labelled dataset: spans go through the trace
//! pipeline in process (the same aggregation, service graph and labelling as
//! `seer ingest`), and the injections become the ground-truth culprits.

use crate::engine::{RunStats, Sim, SimConfig, SimError};
use crate::monitor::HistoryRow;
use crate::sink::{SimSpan, SpanSink};
use crate::topology::Topology;
use seer_traces::exporter::{ExportError, ExportStats, ExporterConfig, OtlpExporter};
use seer_traces::import::OtlpFileWriter;
use seer_traces::pipeline::{Pipeline, PipelineConfig};
use seer_traces::{Dataset, QosSpec, Span};
use std::io::Write;

/// Lateness the simulator's pipeline allows, ns: spans arrive in end order, so a
/// tick is final once no span that started in it can still be running; 30 s covers
/// saturated runs.
pub const SIM_LATENESS_NS: u64 = 30_000_000_000;

/// Feeds spans into a [`Pipeline`].
#[derive(Debug)]
pub struct PipelineSink {
    pipeline: Pipeline,
}

impl PipelineSink {
    /// A sink over a new pipeline with ticks of `interval_ns` and QoS windows
    /// stretched to hold `qos_min_requests` completions.
    pub fn new(interval_ns: u64, qos_min_requests: u64) -> Self {
        Self {
            pipeline: Pipeline::new(PipelineConfig {
                interval_ns,
                lateness_ns: SIM_LATENESS_NS,
                qos_min_requests,
                ..PipelineConfig::default()
            }),
        }
    }

    /// The pipeline (e.g. to read its stats).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Labels the run, and fills each service's waiting queue and CPU utilisation
    /// from the simulator's monitor when it kept its history (the spans alone
    /// cannot tell waiting from being served), and its network time where the spans
    /// did not give it (no client spans).
    pub fn finish(self, qos: &QosSpec, sim: &Sim, origin: String) -> Dataset {
        let mut ds = self.pipeline.finish(qos, &sim.culprits(), origin);
        if let Some(h) = sim.monitor().history() {
            fill_from_monitor(&mut ds, h, sim);
        }
        ds
    }
}

impl SpanSink for PipelineSink {
    fn span(&mut self, span: &SimSpan, topo: &Topology) {
        self.pipeline.push(&span.to_span(topo));
    }
}

fn fill_from_monitor(ds: &mut Dataset, history: &[HistoryRow], sim: &Sim) {
    let topo = sim.topology();
    let n_topo = topo.services.len();
    let tick = ds.meta.interval_ns.max(1);
    let Some(first) = ds.meta.start_ns.checked_sub(sim.epoch_ns()) else {
        return;
    };
    let first = (first / tick) as usize;
    let ids: Vec<Option<usize>> = ds
        .meta
        .services
        .iter()
        .map(|n| topo.services.iter().position(|s| &s.name == n))
        .collect();
    let ns = ds.n_services();
    for t in 0..ds.n_ticks() {
        let base = (first + t) * n_topo;
        if base + n_topo > history.len() {
            break;
        }
        for (s, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                let h = history[base + id];
                let row = &mut ds.service[t * ns + s];
                row.wait_mean = h.wait_mean;
                row.cpu_util = h.cpu_util;
                if row.hop_mean.is_nan() {
                    row.hop_mean = h.hop_mean;
                }
            }
        }
    }
}

/// Writes spans as OTLP protobuf in the Collector file-exporter layout (readable by
/// `seer ingest --format otlp`), in requests of up to `batch` spans.
pub struct OtlpFileSink<W: Write> {
    writer: OtlpFileWriter<W>,
    buf: Vec<Span>,
    batch: usize,
    error: Option<std::io::Error>,
}

impl<W: Write> std::fmt::Debug for OtlpFileSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpFileSink")
            .field("buffered", &self.buf.len())
            .field("batch", &self.batch)
            .finish()
    }
}

impl<W: Write> OtlpFileSink<W> {
    /// A sink writing to `out` in requests of `batch` spans (at least 1).
    pub fn new(out: W, batch: usize) -> Self {
        Self {
            writer: OtlpFileWriter::new(out),
            buf: Vec::new(),
            batch: batch.max(1),
            error: None,
        }
    }

    fn flush_batch(&mut self) {
        if self.buf.is_empty() || self.error.is_some() {
            return;
        }
        if let Err(e) = self.writer.write_spans(&self.buf) {
            self.error = Some(e);
        }
        self.buf.clear();
    }

    /// Writes what is buffered, flushes, and returns the writer or the first error.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.flush_batch();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.writer.flush()?;
        Ok(self.writer.into_inner())
    }
}

impl<W: Write> SpanSink for OtlpFileSink<W> {
    fn span(&mut self, span: &SimSpan, topo: &Topology) {
        if self.error.is_some() {
            return;
        }
        self.buf.push(span.to_span(topo));
        if self.buf.len() >= self.batch {
            self.flush_batch();
        }
    }
}

/// Sends spans live to an OTLP/gRPC receiver (`seer ingest --listen`, an
/// OpenTelemetry Collector) in requests of `batch` spans.
///
/// A background thread does the sending, so the simulation keeps running while a
/// request is in flight; at most two batches wait between them, so a slow receiver
/// slows the simulation down instead of filling memory (back-pressure). The first
/// export error stops the sending and is returned by [`OtlpGrpcSink::finish`].
pub struct OtlpGrpcSink {
    buf: Vec<Span>,
    batch: usize,
    tx: Option<std::sync::mpsc::SyncSender<Vec<Span>>>,
    worker: Option<std::thread::JoinHandle<Result<ExportStats, ExportError>>>,
}

impl std::fmt::Debug for OtlpGrpcSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpGrpcSink")
            .field("buffered", &self.buf.len())
            .field("batch", &self.batch)
            .finish()
    }
}

impl OtlpGrpcSink {
    /// Connects to `addr` (`host:port` or `http://host:port`); fails at once when
    /// nothing answers there.
    pub fn connect(addr: &str, batch: usize, cfg: ExporterConfig) -> Result<Self, ExportError> {
        let mut exporter = OtlpExporter::connect(addr, cfg)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Span>>(2);
        let worker = std::thread::Builder::new()
            .name("seer-sim-otlp".into())
            .spawn(move || {
                for spans in rx {
                    exporter.export(&spans)?;
                }
                Ok(exporter.stats().clone())
            })?;
        Ok(Self {
            buf: Vec::with_capacity(batch.max(1)),
            batch: batch.max(1),
            tx: Some(tx),
            worker: Some(worker),
        })
    }

    fn flush_batch(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let spans = std::mem::replace(&mut self.buf, Vec::with_capacity(self.batch));
        // A send fails only once the worker has stopped on an error; `finish`
        // reports that error, so the spans are dropped here.
        if let Some(tx) = &self.tx
            && tx.send(spans).is_err()
        {
            self.tx = None;
        }
    }

    /// Sends what is buffered, waits for every request to be answered, and returns
    /// what was sent or the first error.
    pub fn finish(mut self) -> Result<ExportStats, ExportError> {
        self.flush_batch();
        self.tx = None;
        match self.worker.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ExportError::Runtime(std::io::Error::other(
                "the OTLP sender thread panicked",
            ))),
            None => Ok(ExportStats::default()),
        }
    }
}

impl Drop for OtlpGrpcSink {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl SpanSink for OtlpGrpcSink {
    fn span(&mut self, span: &SimSpan, topo: &Topology) {
        if self.tx.is_none() {
            return;
        }
        self.buf.push(span.to_span(topo));
        if self.buf.len() >= self.batch {
            self.flush_batch();
        }
    }
}

/// A one-line description of a run for the dataset's `origin`.
pub fn origin(cfg: &SimConfig) -> String {
    format!(
        "seer-sim topology={} seed={} duration_s={} injections={}",
        cfg.topology.name,
        cfg.seed,
        cfg.duration_ns / 1_000_000_000,
        cfg.injections.len()
    )
}

/// Runs a simulation to its end through the trace pipeline and returns the
/// labelled dataset (QoS targets from `QosSpec::default()`) and the run's totals.
pub fn run_to_dataset(cfg: &SimConfig) -> Result<(Dataset, RunStats), SimError> {
    run_to_dataset_with(cfg, &QosSpec::default(), &mut crate::sink::NullSink)
}

/// As [`run_to_dataset`], with QoS settings and a second sink that also gets every
/// span (span files).
pub fn run_to_dataset_with<S: SpanSink + ?Sized>(
    cfg: &SimConfig,
    qos: &QosSpec,
    also: &mut S,
) -> Result<(Dataset, RunStats), SimError> {
    let mut sim = Sim::new(cfg.clone())?;
    sim.keep_monitor_history();
    let mut sink = PipelineSink::new(cfg.tick_ns, cfg.qos_min_requests);
    {
        let mut tee = crate::sink::Tee(&mut sink, &mut *also);
        sim.run(&mut tee);
    }
    let ds = sink.finish(qos, &sim, origin(cfg));
    Ok((ds, sim.stats()))
}
