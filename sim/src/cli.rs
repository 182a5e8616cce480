//! The `seer sim` command's arguments and its library side: arguments → validated
//! [`SimConfig`] → a run written to a directory (dataset, ground truth, spans),
//! with a progress callback and a summary for `--json`.
//!
//! The `seer` binary flattens [`SimArgs`] into its `sim` subcommand and draws the
//! progress bar; everything else happens here.

use crate::dataset::{OtlpFileSink, OtlpGrpcSink, PipelineSink, origin};
use crate::engine::{Sim, SimConfig, SimError};
use crate::inject::{Campaign, Injection, parse_injection, parse_injections_json};
use crate::load::LoadShape;
use crate::sink::{CsvSink, SpanSink, Tee};
use crate::topology::Topology;
use serde::Serialize;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors of a `seer sim` run.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The topology could not be loaded.
    #[error(transparent)]
    Topology(#[from] crate::topology::TopologyError),
    /// The load shape is invalid.
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
    /// The simulation could not be configured.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// An argument is invalid (`--inject`, `--duration`, `--deadline`).
    #[error("{0}")]
    Inject(String),
    /// A file could not be written or read.
    #[error("failed to write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The dataset could not be written.
    #[error(transparent)]
    Dataset(#[from] seer_traces::DatasetError),
    /// The live OTLP export failed.
    #[error(transparent)]
    Export(#[from] seer_traces::exporter::ExportError),
}

/// Span file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpanFormat {
    /// Span CSV (`spans.csv`).
    Csv,
    /// OTLP protobuf as the Collector file exporter writes it (`spans.otlp`).
    Otlp,
}

/// Arguments of `seer sim`.
///
/// Example: `seer sim --topology social-network --duration 2h --load diurnal
/// --rate 800 --inject campaign --seed 7 --out runs/sn-7`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SimArgs {
    /// Built-in topology (social-network, hotel-reservation, media-service, chain,
    /// fanout) or a topology .toml file.
    #[arg(long, default_value = "social-network")]
    pub topology: String,
    /// Simulated time, e.g. 10m, 2h, 1day.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Load shape: constant, diurnal[:period=24h,amplitude=0.5], spikes[:every=10m,
    /// length=30s,factor=3], or a file of one rate per second.
    #[arg(long, default_value = "constant")]
    pub load: String,
    /// Mean arrival rate, requests/s.
    #[arg(long, default_value_t = 800.0)]
    pub rate: f64,
    /// Injections: `campaign` (random, with quiet periods), a .json file, or
    /// SERVICE:KIND@START+DURATION[,ramp=R,intensity=I,instance=N,peer=P]; repeatable.
    #[arg(long)]
    pub inject: Vec<String>,
    /// Deadline of every request after the client sends it, e.g. 1s (default:
    /// the topology's `deadline_ms`, none in the built-ins): a call still queued
    /// past it fails without doing its work, so an overload ends with its cause.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub deadline: Option<Duration>,
    /// Judge each entry point's p99 over at least this many requests: its 1 s QoS
    /// window stretches back (up to 10 s) until it holds them. At low rates a
    /// 1 s p99 is the slowest few requests, and one slow request is a violation.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub qos_min_requests: u64,
    /// Seed of every random choice: the same seed gives the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also emit the callers' client spans.
    #[arg(long)]
    pub client_spans: bool,
    /// Also write every span to a file in this format.
    #[arg(long, value_enum)]
    pub spans: Option<SpanFormat>,
    /// Also send every span live to this OTLP/gRPC receiver (`host:port`), e.g. a
    /// `seer ingest --listen` or an OpenTelemetry Collector; add `--realtime` when
    /// the receiver finalises ticks by the wall clock, as `seer ingest --listen` does.
    #[arg(long, value_name = "ADDR")]
    pub otlp: Option<String>,
    /// Pace the simulation to the wall clock (one simulated second per second) and
    /// stamp spans with the current time, for live consumers that finalise ticks by
    /// the clock (`seer ingest --listen`); otherwise it runs as fast as it can from a
    /// fixed epoch, and the output is byte-identical for a seed.
    #[arg(long)]
    pub realtime: bool,
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
}

/// Where a run's spans go besides the dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs {
    /// Also write every span to a file in this format.
    pub spans: Option<SpanFormat>,
    /// Also send every span to this OTLP/gRPC receiver.
    pub otlp: Option<String>,
    /// Pace the run to the wall clock.
    pub realtime: bool,
}

impl SimArgs {
    /// Where the spans go.
    pub fn outputs(&self) -> Outputs {
        Outputs {
            spans: self.spans,
            otlp: self.otlp.clone(),
            realtime: self.realtime,
        }
    }

    /// The validated configuration.
    pub fn to_config(&self) -> Result<SimConfig, CliError> {
        let topology = Topology::load(&self.topology)?;
        let load = LoadShape::parse(&self.load, self.rate)?;
        let duration_ns = u64::try_from(self.duration.as_nanos())
            .map_err(|_| CliError::Inject(format!("duration {:?} is too long", self.duration)))?;
        let mut cfg = SimConfig::new(topology, load, duration_ns);
        cfg.seed = self.seed;
        if self.realtime {
            // Live consumers finalise ticks by the wall clock: spans must carry it.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(cfg.epoch_ns, |d| d.as_nanos() as u64);
            cfg.epoch_ns = now - now % cfg.tick_ns.max(1);
        }
        if let Some(d) = self.deadline {
            let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            if ns == 0 {
                return Err(CliError::Inject("--deadline must be positive".into()));
            }
            cfg.topology.deadline_ns = Some(ns);
        }
        cfg.client_spans = self.client_spans;
        cfg.qos_min_requests = self.qos_min_requests;
        for spec in &self.inject {
            cfg.injections.extend(parse_inject_arg(
                spec,
                &cfg.topology,
                duration_ns,
                self.seed,
            )?);
        }
        for (i, inj) in cfg.injections.iter().enumerate() {
            inj.validate(i, &cfg.topology).map_err(SimError::from)?;
        }
        Ok(cfg)
    }
}

/// One `--inject` value: `campaign`, `none`, a `.json` file, or one injection.
pub fn parse_inject_arg(
    spec: &str,
    topo: &Topology,
    run_ns: u64,
    seed: u64,
) -> Result<Vec<Injection>, CliError> {
    match spec {
        "campaign" => Campaign::default()
            .generate(topo, run_ns, seed)
            .map_err(|e| CliError::Inject(e.to_string())),
        "none" => Ok(Vec::new()),
        _ if spec.ends_with(".json") => {
            let text = std::fs::read_to_string(spec).map_err(|source| CliError::Io {
                path: spec.into(),
                source,
            })?;
            parse_injections_json(&text, spec).map_err(|e| CliError::Inject(e.to_string()))
        }
        _ => parse_injection(spec)
            .map(|i| vec![i])
            .map_err(CliError::Inject),
    }
}

/// What a run did, for the summary line and `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Topology name.
    pub topology: String,
    /// Seed.
    pub seed: u64,
    /// Simulated seconds.
    pub simulated_s: f64,
    /// Requests that arrived.
    pub requests: u64,
    /// Requests completed.
    pub completed: u64,
    /// RPCs (server spans).
    pub rpcs: u64,
    /// Ticks in the dataset.
    pub ticks: usize,
    /// Ticks in which some entry point violated its target.
    pub violation_ticks: usize,
    /// Injections (ground truth).
    pub injections: usize,
    /// Spans sent to the OTLP receiver, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exported_spans: Option<u64>,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Runs `cfg` and writes `dataset.parquet`, `injections.json` (ground truth) and,
/// when asked, the spans, into `out`; with `outputs.otlp`, the spans also go live
/// to that receiver. `progress(done_ns, total_ns)` is called every simulated
/// second.
pub fn run_to_dir(
    cfg: &SimConfig,
    out: &Path,
    outputs: &Outputs,
    mut progress: impl FnMut(u64, u64),
) -> Result<Summary, CliError> {
    // Connect first: an unreachable receiver is an error before anything runs.
    let mut live = match &outputs.otlp {
        Some(addr) => Some(OtlpGrpcSink::connect(
            addr,
            1024,
            seer_traces::exporter::ExporterConfig::default(),
        )?),
        None => None,
    };
    std::fs::create_dir_all(out).map_err(|source| CliError::Io {
        path: out.into(),
        source,
    })?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CliError::Io {
            path: path.clone(),
            source,
        }
    };
    let mut files = Vec::new();
    let inj_path = out.join("injections.json");
    let json =
        serde_json::to_vec_pretty(&cfg.injections).map_err(|e| CliError::Inject(e.to_string()))?;
    std::fs::write(&inj_path, json).map_err(io(&inj_path))?;
    files.push(inj_path);

    let mut sim = Sim::new(cfg.clone())?;
    sim.keep_monitor_history();
    let mut pipeline = PipelineSink::new(cfg.tick_ns, cfg.qos_min_requests);
    // Real-time runs advance in ticks so a live consumer sees a steady stream.
    let step = if outputs.realtime {
        cfg.tick_ns.max(1)
    } else {
        1_000_000_000
    };
    let started = std::time::Instant::now();
    let mut drive = |sim: &mut Sim, sink: &mut dyn SpanSink| {
        let mut t = 0;
        let mut reported = 0;
        while t < cfg.duration_ns {
            t = (t + step).min(cfg.duration_ns);
            sim.run_until(t, sink);
            if outputs.realtime {
                let due = std::time::Duration::from_nanos(t);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            if t - reported >= 1_000_000_000 || t == cfg.duration_ns {
                reported = t;
                progress(t, cfg.duration_ns);
            }
        }
    };
    match outputs.spans {
        None => drive(&mut sim, &mut Tee(&mut pipeline, &mut live)),
        Some(SpanFormat::Csv) => {
            let p = out.join("spans.csv");
            let f = std::fs::File::create(&p).map_err(io(&p))?;
            let mut csv = CsvSink::new(BufWriter::new(f));
            drive(&mut sim, &mut Tee(&mut pipeline, Tee(&mut csv, &mut live)));
            csv.finish().map_err(io(&p))?;
            files.push(p);
        }
        Some(SpanFormat::Otlp) => {
            let p = out.join("spans.otlp");
            let f = std::fs::File::create(&p).map_err(io(&p))?;
            let mut otlp = OtlpFileSink::new(BufWriter::new(f), 1024);
            drive(&mut sim, &mut Tee(&mut pipeline, Tee(&mut otlp, &mut live)));
            otlp.finish().map_err(io(&p))?;
            files.push(p);
        }
    }
    let exported = match live {
        Some(l) => Some(l.finish()?),
        None => None,
    };
    let ds = pipeline.finish(&seer_traces::QosSpec::default(), &sim, origin(cfg));
    let ds_path = out.join("dataset.parquet");
    ds.write_parquet(&ds_path)?;
    files.push(ds_path);
    let stats = sim.stats();
    Ok(Summary {
        topology: cfg.topology.name.clone(),
        seed: cfg.seed,
        simulated_s: cfg.duration_ns as f64 / 1e9,
        requests: stats.requests,
        completed: stats.completed,
        rpcs: stats.rpcs,
        ticks: ds.n_ticks(),
        violation_ticks: (0..ds.n_ticks()).filter(|&t| ds.any_violation(t)).count(),
        injections: cfg.injections.len(),
        exported_spans: exported.map(|e| e.spans),
        files,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied())).map(|c| c.sim)
    }

    #[test]
    fn each_flag_parses() {
        let a = parse(&[
            "--topology",
            "chain",
            "--duration",
            "2h",
            "--load",
            "diurnal",
            "--rate",
            "500",
            "--inject",
            "campaign",
            "--inject",
            "back:cpu@1m+1m",
            "--seed",
            "7",
            "--deadline",
            "1500ms",
            "--client-spans",
            "--spans",
            "otlp",
            "--out",
            "/tmp/x",
        ])
        .unwrap();
        assert_eq!(a.topology, "chain");
        assert_eq!(a.duration, Duration::from_secs(7200));
        assert_eq!(a.load, "diurnal");
        assert_eq!(a.rate, 500.0);
        assert_eq!(
            a.inject,
            vec!["campaign".to_string(), "back:cpu@1m+1m".to_string()]
        );
        assert_eq!(a.seed, 7);
        assert!(a.client_spans);
        assert_eq!(a.spans, Some(SpanFormat::Otlp));
        assert_eq!(a.out, PathBuf::from("/tmp/x"));
        let cfg = a.to_config().unwrap();
        assert!(cfg.injections.len() > 5);
        assert_eq!(cfg.duration_ns, 7_200_000_000_000);
        assert_eq!(cfg.topology.deadline_ns, Some(1_500_000_000));
        let d = parse(&["--out", "o"]).unwrap();
        assert_eq!(d.to_config().unwrap().topology.deadline_ns, None);
        assert_eq!(
            (d.topology.as_str(), d.rate, d.seed, d.spans),
            ("social-network", 800.0, 0, None)
        );
        assert!(parse(&["--out", "o", "--duration", "soon"]).is_err());
        assert!(parse(&["--out", "o", "--spans", "xml"]).is_err());
        assert!(parse(&[]).is_err(), "--out is required");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let mut a = parse(&["--out", "o", "--topology", "chain"]).unwrap();
        a.inject = vec!["nope:cpu@1s+1s".into()];
        let e = a.to_config().unwrap_err().to_string();
        assert!(e.contains("\"nope\""), "{e}");
        a.inject = vec!["back:gpu@1s+1s".into()];
        assert!(a.to_config().unwrap_err().to_string().contains("gpu"));
        a.inject.clear();
        a.deadline = Some(Duration::ZERO);
        assert!(
            a.to_config()
                .unwrap_err()
                .to_string()
                .contains("--deadline")
        );
        a.deadline = None;
        a.load = "sawtooth".into();
        assert!(a.to_config().unwrap_err().to_string().contains("sawtooth"));
    }

    #[test]
    fn realtime_runs_are_stamped_with_the_wall_clock() {
        let a = parse(&["--realtime", "--out", "x"]).unwrap();
        let cfg = a.to_config().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(now - cfg.epoch_ns < 5_000_000_000, "epoch {}", cfg.epoch_ns);
        assert_eq!(cfg.epoch_ns % cfg.tick_ns, 0);
        let fixed = parse(&["--out", "x"]).unwrap().to_config().unwrap();
        assert!(
            now - fixed.epoch_ns > 86_400_000_000_000,
            "a fixed epoch otherwise"
        );
    }

    #[test]
    fn run_to_dir_writes_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = parse(&[
            "--topology",
            "chain",
            "--duration",
            "3s",
            "--rate",
            "300",
            "--spans",
            "csv",
            "--out",
            "x",
        ])
        .unwrap();
        a.inject = vec!["back:cpu@1s+1s".into()];
        let cfg = a.to_config().unwrap();
        let mut calls = 0;
        let s = run_to_dir(&cfg, dir.path(), &a.outputs(), |_, _| calls += 1).unwrap();
        assert_eq!(calls, 3);
        assert_eq!(s.injections, 1);
        assert!(s.requests > 700 && s.ticks >= 29, "{s:?}");
        for f in ["dataset.parquet", "injections.json", "spans.csv"] {
            assert!(dir.path().join(f).metadata().unwrap().len() > 100, "{f}");
        }
        let back: Vec<Injection> =
            serde_json::from_slice(&std::fs::read(dir.path().join("injections.json")).unwrap())
                .unwrap();
        assert_eq!(back, cfg.injections);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"violation_ticks\""));
    }
}
