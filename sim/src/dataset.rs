//! From a simulation to Seer's labelled dataset: spans go through the trace
//! pipeline in process (the same aggregation, service graph and labelling as
//! `seer ingest`), and the injections become the ground-truth culprits.

use crate::engine::{RunStats, Sim, SimConfig, SimError};
use crate::sink::{SimSpan, SpanSink};
use crate::topology::Topology;
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
    /// A sink over a new pipeline with ticks of `interval_ns`.
    pub fn new(interval_ns: u64) -> Self {
        Self {
            pipeline: Pipeline::new(PipelineConfig {
                interval_ns,
                lateness_ns: SIM_LATENESS_NS,
                ..PipelineConfig::default()
            }),
        }
    }

    /// The pipeline (e.g. to read its stats).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Labels the run.
    pub fn finish(self, qos: &QosSpec, sim: &Sim, origin: String) -> Dataset {
        self.pipeline.finish(qos, &sim.culprits(), origin)
    }
}

impl SpanSink for PipelineSink {
    fn span(&mut self, span: &SimSpan, topo: &Topology) {
        self.pipeline.push(&span.to_span(topo));
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
    let mut sink = PipelineSink::new(cfg.tick_ns);
    {
        let mut tee = crate::sink::Tee(&mut sink, &mut *also);
        sim.run(&mut tee);
    }
    let ds = sink.finish(qos, &sim, origin(cfg));
    Ok((ds, sim.stats()))
}
