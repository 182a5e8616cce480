//! Command-line arguments (raw, as clap parses them) and their dispatch.

use crate::ingest::{self, FileIngest};
use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Seer keeps latency-critical microservices inside their QoS.
#[derive(Debug, Parser)]
#[command(name = "seer", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn traces into a labelled 100 ms tick dataset (Parquet).
    ///
    /// Example: seer ingest --format nezha-csv --interval 100ms data/trace/ --faults data/fault_list.json --out ds.parquet
    Ingest(IngestArgs),
    /// Judge a dataset against a fault list with the "largest queue rise" rule.
    ///
    /// Example: seer report --data ds.parquet --faults fault_list.json --kinds cpu_contention,network_delay
    Report(ReportArgs),
    /// Simulate a microservice application under contention: a labelled dataset.
    ///
    /// Example: seer sim --topology social-network --duration 10m --inject campaign --seed 7 --out runs/sn-7
    Sim(SimCmd),
    /// A simulated Social Network under contention, with and without Seer.
    ///
    /// Example: seer demo --seconds 60 --seed 1
    Demo(DemoArgs),
}

/// `seer sim` arguments.
#[derive(Debug, Args)]
pub struct SimCmd {
    /// The simulation.
    #[command(flatten)]
    pub sim: seer_sim::cli::SimArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `seer demo` arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Simulated seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(20..=3600))]
    pub seconds: u64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests per second (the mean, for a shaped load).
    #[arg(long, default_value_t = 800.0)]
    pub rate: f64,
    /// Load shape: constant, diurnal[:period=24h,amplitude=0.5], spikes[:every=10m,
    /// length=30s,factor=3], or a file of one rate per second (as `seer sim`).
    #[arg(long, default_value = "constant")]
    pub load: String,
    /// Detect with this trained predictor checkpoint (`seer-predictor train`),
    /// run in process on the Rust engine, instead of the queue-rise rule.
    #[arg(long, value_name = "M.seer")]
    pub model: Option<PathBuf>,
    /// With --model: name the culprit of its alarms with this second checkpoint
    /// (same services, tick and horizon; e.g. one picked for culprit accuracy), or
    /// with the mean of several (`--culprit-model a.seer b.seer`).
    #[arg(long, value_name = "C.seer", requires = "model", num_args = 1..)]
    pub culprit_model: Vec<PathBuf>,
    /// With --model: the probability (of that service initiating a violation)
    /// at which a service becomes a suspect. Low by default: the controller's
    /// hold, cooldown and quiet-before-revert absorb the noise, and acting on
    /// the first rise is what avoids violations (BENCHMARKS.md, "seer demo").
    #[arg(long, default_value_t = crate::demo::DemoConfig::DEFAULT_ALARM)]
    pub alarm: f32,
    /// Judge each API's p99 over at least this many requests (its 1 s window
    /// stretches back up to 10 s), as `seer sim --qos-min-requests`: give a model
    /// the QoS it was trained on.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub qos_min_requests: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `seer report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Dataset written by `seer ingest`.
    #[arg(long)]
    pub data: PathBuf,
    /// Fault list (Nezha fault_list.json).
    #[arg(long)]
    pub faults: PathBuf,
    /// Fault types to judge, comma-separated (default: the resource faults).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cpu_contention,cpu_consumed,network_delay"
    )]
    pub kinds: Vec<String>,
    /// Window before and after each injection.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub window: Duration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `seer ingest` arguments.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Input trace files or directories (their files are read in name order).
    #[arg(required_unless_present = "listen")]
    pub inputs: Vec<PathBuf>,
    /// Input format: otlp, jaeger, zipkin, csv, nezha-csv, or csv:<mapping>.
    #[arg(long, short, default_value = "otlp")]
    pub format: String,
    /// Tick interval.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// How long a tick stays open for late spans (default: 2m for files, 5s live).
    #[arg(long, value_parser = parse_duration)]
    pub lateness: Option<Duration>,
    /// Output Parquet file (files), or directory of rolling files (--listen).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Ground-truth fault list (Nezha fault_list.json) for culprit labels.
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// How long each listed fault lasts.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub fault_duration: Duration,
    /// Explicit p99 target of an entry point, `NAME=MS` (repeatable).
    #[arg(long = "qos-target", value_parser = parse_target)]
    pub qos_targets: Vec<(String, f64)>,
    /// Targets of other entry points: this multiple of their reference p99.
    #[arg(long, default_value_t = 2.0)]
    pub qos_multiple: f64,
    /// Reference period for derived targets, in ticks.
    #[arg(long, default_value_t = 600)]
    pub reference_ticks: usize,
    /// Window over which the end-to-end p99 is judged against the target (per-tick
    /// p99s of a few requests are too noisy); at most one tick means per tick.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub qos_window: Duration,
    /// Judge each entry point's p99 over at least this many requests: the QoS
    /// window stretches back (up to ten times its length) until it holds them.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub qos_min_requests: u64,
    /// Horizon of the "violation within h" labels.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub horizon: Duration,
    /// Queue depth from an OTLP metric of this name instead of spans (live only).
    #[arg(long)]
    pub queue_metric: Option<String>,
    /// Run the OTLP/gRPC receiver on this address until Ctrl-C.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// With --listen: start a new Parquet file this often.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub roll: Duration,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(d)
}

fn parse_target(s: &str) -> Result<(String, f64), String> {
    let (name, ms) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("expected NAME=MS, got {s:?}"))?;
    let ms: f64 = ms
        .trim()
        .parse()
        .map_err(|_| format!("target {ms:?} is not a number of ms"))?;
    if !(ms.is_finite() && ms > 0.0) {
        return Err(format!("target {ms} ms must be positive"));
    }
    Ok((name.to_string(), ms))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ingest(a) => {
            let cfg = FileIngest::from_args(&a)?;
            match a.listen {
                Some(addr) => ingest::run_live(addr, &cfg, a.roll, a.json),
                None => ingest::run_files(&cfg, a.json),
            }
        }
        Command::Sim(a) => {
            let cfg = a.sim.to_config()?;
            let bar = indicatif::ProgressBar::new(cfg.duration_ns / 1_000_000_000);
            let summary =
                seer_sim::cli::run_to_dir(&cfg, &a.sim.out, &a.sim.outputs(), |done, _| {
                    bar.set_position(done / 1_000_000_000)
                })?;
            bar.finish_and_clear();
            if a.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "{} seed {}: {:.0} s simulated, {} requests, {} RPCs, {} ticks ({} violating), {} injections",
                    summary.topology,
                    summary.seed,
                    summary.simulated_s,
                    summary.requests,
                    summary.rpcs,
                    summary.ticks,
                    summary.violation_ticks,
                    summary.injections
                );
                if let (Some(n), Some(addr)) = (summary.exported_spans, &a.sim.otlp) {
                    println!("sent {n} spans to {addr}");
                }
                for f in &summary.files {
                    println!("wrote {}", f.display());
                }
            }
            Ok(())
        }
        Command::Demo(a) => {
            if !(a.rate.is_finite() && a.rate > 0.0) {
                anyhow::bail!("--rate {} must be a positive number", a.rate);
            }
            let cfg = crate::demo::DemoConfig {
                seconds: a.seconds,
                seed: a.seed,
                rate: a.rate,
                load: a.load,
                model: a.model,
                culprit_model: a.culprit_model,
                alarm: a.alarm,
                qos_min_requests: a.qos_min_requests,
                ..Default::default()
            };
            let rep = crate::demo::run_demo(&cfg)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else {
                print!("{}", rep.table());
            }
            Ok(())
        }
        Command::Report(a) => {
            let ds = seer_traces::Dataset::read_parquet(&a.data)?;
            let faults =
                seer_traces::faults::read_nezha_faults(&a.faults, a.window.as_nanos() as u64)?;
            crate::report::run(&ds, &faults, &a.kinds, a.window.as_nanos() as u64, a.json)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("seer").chain(args.iter().copied()))
    }

    #[test]
    fn ingest_flags_parse() {
        let c = parse(&[
            "ingest",
            "--format",
            "nezha-csv",
            "--interval",
            "1s",
            "a",
            "b",
            "--out",
            "x.parquet",
            "--qos-target",
            "/home=250",
            "--horizon",
            "200ms",
            "--json",
            "--lateness",
            "10s",
            "--faults",
            "f.json",
            "--fault-duration",
            "90s",
            "--qos-multiple",
            "3",
            "--qos-min-requests",
            "500",
        ])
        .unwrap();
        let Command::Ingest(a) = c.command else {
            panic!("not ingest")
        };
        assert_eq!(a.qos_min_requests, 500);
        assert_eq!(a.inputs.len(), 2);
        assert_eq!(a.interval, Duration::from_secs(1));
        assert_eq!(a.qos_targets, [("/home".to_string(), 250.0)]);
        assert_eq!(a.horizon, Duration::from_millis(200));
        assert_eq!(a.lateness, Some(Duration::from_secs(10)));
        assert_eq!(a.fault_duration, Duration::from_secs(90));
        assert_eq!(a.qos_multiple, 3.0);
        assert!(a.json);
        // The minimum reaches the pipeline, and a stretched window is judged.
        let dir = tempfile::tempdir().unwrap();
        let spans = dir.path().join("spans.csv");
        std::fs::write(&spans, "").unwrap();
        let [with, without] = [vec!["--qos-min-requests", "500"], vec![]].map(|extra| {
            let mut args = vec!["ingest", spans.to_str().unwrap(), "--out", "x"];
            args.extend(extra);
            let Command::Ingest(a) = parse(&args).unwrap().command else {
                panic!("not ingest")
            };
            crate::ingest::FileIngest::from_args(&a).unwrap()
        });
        assert_eq!(with.pipeline.qos_min_requests, 500);
        assert_eq!(without.pipeline.qos_min_requests, 0);
        assert!(with.qos.windowed);
    }

    #[test]
    fn report_flags_parse() {
        let c = parse(&[
            "report",
            "--data",
            "d.parquet",
            "--faults",
            "f.json",
            "--window",
            "30s",
            "--kinds",
            "a,b",
        ])
        .unwrap();
        let Command::Report(a) = c.command else {
            panic!("not report")
        };
        assert_eq!(a.kinds, ["a", "b"]);
        assert_eq!(a.window, Duration::from_secs(30));
        let c = parse(&["report", "--data", "d", "--faults", "f"]).unwrap();
        let Command::Report(a) = c.command else {
            panic!("not report")
        };
        assert_eq!(a.kinds.len(), 3);
    }

    #[test]
    fn sim_and_demo_flags_parse() {
        let c = parse(&[
            "sim",
            "--duration",
            "30s",
            "--seed",
            "3",
            "--out",
            "o",
            "--json",
        ])
        .unwrap();
        let Command::Sim(a) = c.command else {
            panic!("not sim")
        };
        assert_eq!(
            (a.sim.seed, a.sim.duration, a.json),
            (3, Duration::from_secs(30), true)
        );
        let c = parse(&["demo", "--seconds", "30", "--seed", "2", "--rate", "600"]).unwrap();
        let Command::Demo(a) = c.command else {
            panic!("not demo")
        };
        assert_eq!((a.seconds, a.seed, a.rate), (30, 2, 600.0));
        assert_eq!(a.load, "constant");
        assert_eq!((a.alarm, a.model, a.qos_min_requests), (0.002, None, 0));
        let c = parse(&[
            "demo",
            "--load",
            "spikes:every=20s,length=3s,factor=2",
            "--qos-min-requests",
            "1000",
        ])
        .unwrap();
        let Command::Demo(a) = c.command else {
            panic!("not demo")
        };
        assert_eq!(a.load, "spikes:every=20s,length=3s,factor=2");
        assert_eq!(a.qos_min_requests, 1000);
        assert!(
            parse(&["demo", "--seconds", "5"]).is_err(),
            "too short for the injections"
        );
        let c = parse(&["demo", "--model", "a.seer", "--culprit-model", "b.seer"]).unwrap();
        let Command::Demo(a) = c.command else {
            panic!("not demo")
        };
        assert_eq!(a.culprit_model, [PathBuf::from("b.seer")]);
        let c = parse(&[
            "demo",
            "--model",
            "a.seer",
            "--culprit-model",
            "b.seer",
            "c.seer",
        ])
        .unwrap();
        let Command::Demo(a) = c.command else {
            panic!("not demo")
        };
        assert_eq!(
            a.culprit_model,
            [PathBuf::from("b.seer"), PathBuf::from("c.seer")]
        );
        assert!(
            parse(&["demo", "--culprit-model", "b.seer"]).is_err(),
            "a culprit model needs a model"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["ingest", "a", "--out", "x", "--interval", "0s"]).is_err());
        assert!(parse(&["ingest", "a", "--out", "x", "--interval", "fast"]).is_err());
        assert!(parse(&["ingest", "a", "--out", "x", "--qos-target", "home"]).is_err());
        assert!(parse(&["ingest", "a", "--out", "x", "--qos-target", "h=-1"]).is_err());
        assert!(
            parse(&["ingest", "--out", "x"]).is_err(),
            "inputs or --listen required"
        );
        assert!(parse(&["ingest", "--out", "x", "--listen", "127.0.0.1:4317"]).is_ok());
    }
}
