//! `seer-predictor`: train, evaluate, inspect and serve culprit predictors.
//!
//! The binary only parses arguments into validated settings and calls the
//! library; see the crate docs for what each part does.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use seer_predictor::baselines::{
    LargestRise, Linfa, LinfaKind, QosThreshold, QueueThreshold, UtilisationThreshold,
};
use seer_predictor::eval::{self, Judging, ModelScorer, Row, Scorer};
use seer_predictor::features::{Channel, Series, horizon_ticks};
use seer_predictor::model::{Arch, OutputKind, StreamMode};
use seer_predictor::synth::{SynthConfig, synth_dataset};
use seer_predictor::train::{TrainConfig, train};
use seer_predictor::{Model, retrain, serve};
use seer_traces::Dataset;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tch::Device;

const EXAMPLES: &str = "Examples:
  seer-predictor synth --out train.parquet --services 36 --ticks 72000 --seed 1
  seer-predictor train --data train.parquet --model hybrid --horizon 100ms --out m.seer
  seer-predictor eval --model m.seer --data test.parquet --baselines train.parquet
  seer-predictor predict --model m.seer --data test.parquet --last 5
  seer-predictor serve --model m.seer --listen 127.0.0.1:50051";

#[derive(Debug, Parser)]
#[command(name = "seer-predictor", version, about = "Predicts which microservice will initiate a QoS violation", after_help = EXAMPLES)]
struct Cli {
    /// Intra-op threads for libtorch (default: 1 for serve/bench, all cores otherwise).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Trains a model on datasets (Parquet) and writes a checkpoint.
    #[command(
        after_help = "Example:\n  seer-predictor train --data a.parquet --data b.parquet --model hybrid --horizon 100ms --out m.seer"
    )]
    Train(Box<TrainArgs>),
    /// Evaluates a model (and baselines) on held-out datasets.
    #[command(
        after_help = "Example:\n  seer-predictor eval --model m.seer --data test.parquet --baselines train.parquet --out report/"
    )]
    Eval(EvalArgs),
    /// Prints the predictions of a model for the last ticks of a dataset.
    #[command(
        after_help = "Example:\n  seer-predictor predict --model m.seer --data test.parquet --last 10 --json"
    )]
    Predict(PredictArgs),
    /// Prints a checkpoint's header.
    #[command(after_help = "Example:\n  seer-predictor info --model m.seer --json")]
    Info(InfoArgs),
    /// Writes a synthetic labelled dataset (a chain of services with faults).
    #[command(
        after_help = "Example:\n  seer-predictor synth --out s.parquet --services 36 --ticks 72000 --seed 7"
    )]
    Synth(SynthArgs),
    /// Serves the gRPC seer.v1.Predictor service.
    #[command(
        after_help = "Example:\n  seer-predictor serve --model m.seer --listen 127.0.0.1:50051"
    )]
    Serve(ServeArgs),
    /// Measures batch-1 inference: full window, cached-convolution streaming and
    /// stateful streaming.
    #[command(
        after_help = "Example:\n  seer-predictor --threads 1 bench --services 36 --window 20 --iterations 2000"
    )]
    Bench(BenchArgs),
    /// Leave-faults-out cross-validation on a dataset with labelled faults (e.g.
    /// an ingested Nezha day): can a model trained without a fault name its
    /// service?
    #[command(
        after_help = "Example:\n  seer-predictor crossval --data ob.parquet --folds 4 --epochs 6 --out cv/"
    )]
    Crossval(CrossvalArgs),
}

#[derive(Debug, Args)]
struct CrossvalArgs {
    /// Dataset with culprit labels.
    #[arg(long)]
    data: PathBuf,
    /// Folds (faults are dealt round-robin).
    #[arg(long, default_value_t = 4)]
    folds: usize,
    /// Ticks cut out on both sides of each held-out fault.
    #[arg(long, default_value_t = 300)]
    margin: usize,
    /// Architecture.
    #[arg(long = "model", default_value = "hybrid")]
    arch: String,
    /// Window, ticks.
    #[arg(long, default_value_t = 20)]
    window: usize,
    /// Maximum epochs per fold.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Input channels, comma-separated (as for train).
    #[arg(long, default_value = "queue", value_delimiter = ',')]
    channels: Vec<String>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder to write report.md and report.json into.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// Dataset files (Parquet); all must have the model's services.
    #[arg(long = "data", required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Architecture: hybrid, cnn or lstm.
    #[arg(long = "model", default_value = "hybrid")]
    arch: String,
    /// Prediction horizon (e.g. 100ms, 1s).
    #[arg(long, default_value = "100ms")]
    horizon: String,
    /// Checkpoint to write.
    #[arg(long)]
    out: PathBuf,
    /// Window length, ticks.
    #[arg(long, default_value_t = 20)]
    window: usize,
    /// Input channels, comma-separated: queue, wait (network-only), active (app-only), cpu, p99_ms, arrivals, errors (failed requests), hop (calls to the service in the network: client minus server spans), qos (the worst entry point's windowed p99 over its target, one value per tick).
    #[arg(long, default_value = "queue", value_delimiter = ',')]
    channels: Vec<String>,
    /// Output layer: softmax or sigmoid.
    #[arg(long, default_value = "softmax")]
    output: String,
    /// Ticks of each service's features the hybrid's shared service scorer reads
    /// (1: the last tick).
    #[arg(long, default_value_t = 1)]
    head_ticks: usize,
    /// Hidden units of the shared service scorer (0: linear).
    #[arg(long, default_value_t = 0)]
    head_hidden: usize,
    /// Name culprits with the shared service scorer alone: the same weights for
    /// every service, so what is learnt of one service's faults serves all, and
    /// nothing ties a culprit to a service's place (softmax hybrid).
    #[arg(long)]
    shared_culprit: bool,
    /// Maximum epochs.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Early stopping: epochs without a better validation figure.
    #[arg(long, default_value_t = 5)]
    patience: usize,
    /// The validation figure that picks the model kept: loss, accuracy or culprit (top-1 on the windows with a known culprit).
    #[arg(long, default_value = "loss")]
    monitor: String,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Share of each dataset's ticks held out for validation, in blocks spread
    /// through it.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Length of one validation block (e.g. 5m); every 1/fraction-th block is
    /// validation.
    #[arg(long, default_value = "5m")]
    val_block: String,
    /// Share of the training windows used (the earliest).
    #[arg(long, default_value_t = 1.0)]
    train_fraction: f64,
    /// Class-weight exponent: 0 none, 1 inverse frequency.
    #[arg(long, default_value_t = 0.5)]
    class_weight: f64,
    /// Share of the quiet training windows drawn afresh each epoch (weighted up
    /// to keep the loss unbiased); 0.25 makes an epoch about 3× cheaper.
    #[arg(long, default_value_t = 1.0)]
    quiet_fraction: f64,
    /// Weight of the first tick of each violation episode (where anticipating
    /// counts) relative to the other violation ticks.
    #[arg(long, default_value_t = 1.0)]
    onset_weight: f64,
    /// Violations with no known culprit (a load peak, a fault's tail): `any`
    /// trains them as "some service initiates one" (−log P(violation)),
    /// `skip` leaves them out of training.
    #[arg(long, default_value = "any", value_parser = ["any", "skip"])]
    unattributed: String,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fine-tune this checkpoint instead of starting from scratch (services are
    /// matched by name).
    #[arg(long)]
    from: Option<PathBuf>,
    /// Stop once the validation accuracy reaches this fraction.
    #[arg(long)]
    target_accuracy: Option<f64>,
    /// Stop once the validation loss is at most this (with --from, a model that
    /// already meets it trains no epoch).
    #[arg(long)]
    target_loss: Option<f64>,
    /// Train on the CPU even when CUDA is present.
    #[arg(long)]
    cpu: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// Checkpoint(s) to evaluate.
    #[arg(long = "model", required = true, num_args = 1..)]
    models: Vec<PathBuf>,
    /// Held-out datasets.
    #[arg(long = "data", required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Training datasets for the baselines (omit to skip baselines).
    #[arg(long, num_args = 1..)]
    baselines: Vec<PathBuf>,
    /// Alarm threshold on P(violation).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Also score each model's alarms with this model's culprit ranking (a row
    /// per model; all must share services, tick and horizon). Several: the
    /// mean of their probabilities ranks (an ensemble).
    #[arg(long = "culprit-model", num_args = 1..)]
    culprit_models: Vec<PathBuf>,
    /// Violation episodes (and alarm episodes) closer than this are one
    /// incident, reported beside the episodes.
    #[arg(long, default_value = "1s")]
    incident_gap: String,
    /// Hold each alarm this long after the last tick over the threshold, as
    /// the controller holds a decision (0: judge every tick on its own).
    #[arg(long, default_value = "0s")]
    hold: String,
    /// Also judge each model where it alarms on at most these shares of the
    /// quiet ticks, % (comma-separated, e.g. 1,2,5): the threshold comes from
    /// the held-out data's own quantiles, so models are compared at equal
    /// false alarms whatever their calibration (a row per model and share).
    #[arg(long, value_delimiter = ',')]
    at_false_alarms: Vec<f64>,
    /// Folder to write report.md and report.json into.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the rows as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct PredictArgs {
    /// Checkpoint.
    #[arg(long)]
    model: PathBuf,
    /// Dataset.
    #[arg(long)]
    data: PathBuf,
    /// How many of the last ticks to print.
    #[arg(long, default_value_t = 1)]
    last: usize,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct InfoArgs {
    /// Checkpoint.
    #[arg(long)]
    model: PathBuf,
    /// Print the whole header as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct SynthArgs {
    /// File to write (Parquet).
    #[arg(long)]
    out: PathBuf,
    /// Services in the chain.
    #[arg(long, default_value_t = 8)]
    services: usize,
    /// Ticks (100 ms each).
    #[arg(long, default_value_t = 6000)]
    ticks: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Checkpoint to serve.
    #[arg(long)]
    model: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: std::net::SocketAddr,
    /// Per-tick streaming: exact (cached convolutions, same as a full window) or
    /// stateful (carried LSTM state, one step per tick).
    #[arg(long, default_value = "exact")]
    stream_mode: String,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Checkpoint to measure; without it, an untrained model of the given shape.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Architecture when no checkpoint is given.
    #[arg(long = "arch", default_value = "hybrid")]
    arch: String,
    /// Services when no checkpoint is given.
    #[arg(long, default_value_t = 36)]
    services: usize,
    /// Window when no checkpoint is given.
    #[arg(long, default_value_t = 20)]
    window: usize,
    /// Timed iterations per mode.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Also save the measured model here (to time the same weights elsewhere).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A positive duration in ns; `what` names it in errors.
fn parse_duration(what: &str, s: &str) -> Result<u64> {
    let ns = parse_duration_or_zero(what, s)?;
    if ns == 0 {
        bail!("{what} {s:?} must be positive");
    }
    Ok(ns)
}

/// A duration in ns, zero allowed; `what` names it in errors.
fn parse_duration_or_zero(what: &str, s: &str) -> Result<u64> {
    let d: Duration = humantime::parse_duration(s)
        .with_context(|| format!("invalid {what} {s:?} (e.g. 100ms, 1s, 5m)"))?;
    Ok(d.as_nanos() as u64)
}

fn parse_channels(v: &[String]) -> Result<Vec<Channel>> {
    let mut out = Vec::new();
    for s in v {
        let c: Channel = s.trim().parse()?;
        if out.contains(&c) {
            bail!("channel {c} given twice");
        }
        out.push(c);
    }
    if out.is_empty() {
        bail!("no channels given");
    }
    Ok(out)
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let c = TrainConfig {
            arch: self.arch.parse()?,
            output: self.output.parse()?,
            head_ticks: self.head_ticks,
            head_hidden: self.head_hidden,
            shared_culprit: self.shared_culprit,
            window: self.window,
            channels: parse_channels(&self.channels)?,
            horizon_ns: parse_duration("horizon", &self.horizon)?,
            epochs: self.epochs,
            patience: self.patience,
            monitor: self.monitor.parse()?,
            batch_size: self.batch,
            learning_rate: self.lr,
            val_fraction: self.val_fraction,
            val_block_ns: parse_duration("validation block", &self.val_block)?,
            train_fraction: self.train_fraction,
            class_weight_power: self.class_weight,
            quiet_fraction: self.quiet_fraction,
            onset_weight: self.onset_weight,
            unattributed: self.unattributed == "any",
            seed: self.seed,
            device: if self.cpu {
                Device::Cpu
            } else {
                Device::cuda_if_available()
            },
            progress: !self.json,
            target_accuracy: self.target_accuracy,
            target_loss: self.target_loss,
        };
        if self.from.is_none() {
            // Refuse a network that cannot be built before reading any data.
            c.model_config(1).validate()?;
        }
        Ok(c)
    }
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Dataset>> {
    paths
        .iter()
        .map(|p| {
            Dataset::read_parquet(p)
                .with_context(|| format!("failed to read dataset {}", p.display()))
        })
        .collect()
}

fn main() {
    // SAFETY: called first, before any thread exists; it only restores the
    // default action of SIGPIPE, so writing to a closed pipe (`... | head`)
    // ends the process quietly, as other command-line tools do, instead of
    // making `println!` panic.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("seer-predictor: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let serving = matches!(cli.cmd, Cmd::Serve(_) | Cmd::Bench(_));
    match cli.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => tch::set_num_threads(n as i32),
        None if serving => tch::set_num_threads(1),
        None => {}
    }
    match cli.cmd {
        Cmd::Train(a) => cmd_train(*a),
        Cmd::Eval(a) => cmd_eval(a),
        Cmd::Predict(a) => cmd_predict(a),
        Cmd::Info(a) => cmd_info(a),
        Cmd::Synth(a) => {
            let ds = synth_dataset(&SynthConfig {
                n_services: a.services,
                n_ticks: a.ticks,
                seed: a.seed,
                ..Default::default()
            });
            ds.write_parquet(&a.out)?;
            println!(
                "wrote {} ({} ticks, {} services)",
                a.out.display(),
                a.ticks,
                a.services
            );
            Ok(())
        }
        Cmd::Serve(a) => {
            let mode = match a.stream_mode.as_str() {
                "exact" => StreamMode::Exact,
                "stateful" => StreamMode::Stateful,
                other => bail!("unknown stream mode {other:?} (expected exact or stateful)"),
            };
            let model = Model::load(&a.model, Device::cuda_if_available())?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(serve::serve(model, a.listen, mode, tokio::signal::ctrl_c()))?;
            Ok(())
        }
        Cmd::Bench(a) => cmd_bench(a),
        Cmd::Crossval(a) => cmd_crossval(a),
    }
}

fn cmd_crossval(a: CrossvalArgs) -> Result<()> {
    let channels = parse_channels(&a.channels)?;
    let ds = Dataset::read_parquet(&a.data)
        .with_context(|| format!("failed to read dataset {}", a.data.display()))?;
    let cfg = seer_predictor::crossval::CrossvalConfig {
        folds: a.folds,
        margin: a.margin,
        train: TrainConfig {
            arch: a.arch.parse()?,
            window: a.window,
            epochs: a.epochs,
            patience: 2,
            batch_size: a.batch,
            seed: a.seed,
            horizon_ns: ds.meta.interval_ns,
            channels,
            ..TrainConfig::default()
        },
    };
    let r = seer_predictor::crossval::crossval(&ds, &cfg, |f, n| {
        if !a.json {
            eprintln!("fold {}/{n}", f + 1);
        }
    })?;
    let mut md = format!(
        "## leave-faults-out, {} folds: {}\n\n| faults | n | model top-1 % | model top-3 % | largest rise top-1 % | largest rise top-3 % |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
        a.folds,
        a.data.display()
    );
    for (name, s) in [("resource faults", &r.resource), ("all faults", &r.all)] {
        md.push_str(&format!(
            "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            s.faults, s.model_top1, s.model_top3, s.rise_top1, s.rise_top3
        ));
    }
    md.push_str("\n| service | resource | start tick | ticks | model rank | rise rank |\n| --- | --- | ---: | ---: | ---: | ---: |\n");
    for v in &r.verdicts {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            v.service, v.resource, v.start, v.len, v.model_rank, v.rise_rank
        ));
    }
    emit_report(&md, &r, a.json, a.out.as_deref())
}

/// Prints `md` (or `value` as JSON with `--json`) and, with `--out DIR`, writes
/// both as `DIR/report.md` and `DIR/report.json`.
fn emit_report<T: serde::Serialize>(
    md: &str,
    value: &T,
    json: bool,
    out: Option<&Path>,
) -> Result<()> {
    let j = serde_json::to_string_pretty(value)?;
    if json {
        println!("{j}");
    } else {
        print!("{md}");
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        write(&dir.join("report.md"), md.as_bytes())?;
        write(&dir.join("report.json"), j.as_bytes())?;
    }
    Ok(())
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    let cfg = a.config()?;
    let data = read_all(&a.data)?;
    let refs: Vec<&Dataset> = data.iter().collect();
    let start = match &a.from {
        Some(p) => {
            let old = Model::load(p, cfg.device)?;
            let masks = cfg.split(refs[0].meta.interval_ns).training_masks(&refs);
            let (m, r) = retrain::remap(&old, &refs[0].meta.services, &refs, &masks, cfg.device)?;
            if !a.json {
                eprintln!(
                    "fine-tuning {} ({}): {} services kept, added {:?}, removed {:?}",
                    p.display(),
                    old.id,
                    r.kept.len(),
                    r.added,
                    r.removed
                );
            }
            Some(m)
        }
        None => None,
    };
    let json = a.json;
    let mut t = train(&refs, &cfg, start, &mut |e| {
        if !json && e.epoch == 0 {
            eprintln!(
                "start: validation loss {:.4}, validation accuracy {:.2}% ({:.1} s)",
                e.validation_loss,
                e.validation_accuracy * 100.0,
                e.elapsed
            );
        } else if !json {
            eprintln!(
                "epoch {}/{}: train loss {:.4}, validation loss {:.4}, validation accuracy {:.2}%, culprit top-1 {:.2}% ({:.1} s)",
                e.epoch,
                e.epochs,
                e.train_loss,
                e.validation_loss,
                e.validation_accuracy * 100.0,
                e.validation_culprit * 100.0,
                e.elapsed
            );
        }
    })?;
    t.model.save(&a.out)?;
    let s = &t.model.header.train;
    if json {
        println!(
            "{}",
            serde_json::json!({"out": a.out, "model_id": t.model.id, "train": s, "parameters": t.model.n_parameters()})
        );
    } else {
        println!(
            "wrote {} (model {}, {} weights): best epoch {} of {}, validation accuracy {:.2}%, {:.1} s",
            a.out.display(),
            t.model.id,
            t.model.n_parameters(),
            s.best_epoch,
            s.epochs,
            s.validation_accuracy * 100.0,
            s.seconds
        );
    }
    Ok(())
}

/// Scores once and judges twice: the row at the alarm threshold, then (for a
/// graded scorer) a row per share of quiet ticks alarmed
/// ([`eval::operating_points`]).
fn scorer_rows(
    scorer: &mut dyn Scorer,
    series: &[seer_predictor::features::Series],
    window: usize,
    j: &Judging,
    shares: &[f64],
    latency: Option<(f64, f64)>,
) -> Vec<Row> {
    let name = scorer.name();
    let scored = eval::score_all(scorer, series, window);
    let mut rows = vec![Row::new(
        name.clone(),
        eval::sum_metrics(series, &scored, j),
        latency,
    )];
    if scorer.graded() {
        rows.extend(
            eval::operating_points(series, &scored, j, shares)
                .into_iter()
                .map(|o| {
                    let label = format!(
                        "{name} at ≤ {} % of quiet ticks alarmed (P ≥ {:.4})",
                        o.false_alarm_pct, o.threshold
                    );
                    Row::new(label, o.metrics, None)
                }),
        );
    }
    rows
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    let gap_ns = parse_duration("incident gap", &a.incident_gap)?;
    let hold_ns = parse_duration_or_zero("hold", &a.hold)?;
    if let Some(bad) = a
        .at_false_alarms
        .iter()
        .find(|p| !(0.0..=100.0).contains(*p))
    {
        bail!("--at-false-alarms {bad}: a share of the quiet ticks must be 0-100 (%)");
    }
    let test = read_all(&a.data)?;
    let mut rows = Vec::new();
    let models: Vec<Model> = a
        .models
        .iter()
        .map(|p| Model::load(p, Device::cuda_if_available()))
        .collect::<Result<_, _>>()?;
    let first = models.first().context("no model given")?;
    // The culprit models and the test data as each reads it, once for all rows.
    let mut who = Vec::new();
    let mut who_series = Vec::new();
    for cp in &a.culprit_models {
        let m = Model::load(cp, Device::cuda_if_available())?;
        who_series.push(m.header.series(&test)?);
        who.push(m);
    }
    let who_names = a
        .culprit_models
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    let judging = |m: &Model| Judging {
        horizon: m.header.horizon_ticks(),
        threshold: a.threshold,
        incident_gap: horizon_ticks(gap_ns, m.header.interval_ns),
        hold: hold_ns.div_ceil(m.header.interval_ns.max(1)) as usize,
    };
    for (m, p) in models.iter().zip(&a.models) {
        let series = m.header.series(&test)?;
        let name = format!(
            "{} {} ({})",
            m.header.model.arch,
            m.header.model.output.name(),
            p.display()
        );
        let mut sc = ModelScorer {
            model: m,
            label: name.clone(),
        };
        let lat = eval::inference_latency(m, &series[0], 500, None);
        rows.extend(scorer_rows(
            &mut sc,
            &series,
            m.header.model.window,
            &judging(m),
            &a.at_false_alarms,
            Some(lat),
        ));
        if !who.is_empty() {
            let who: Vec<&Model> = who.iter().collect();
            let metrics = eval::evaluate_pair(m, &who, &series, &who_series, &judging(m))
                .map_err(|e| anyhow::anyhow!("--culprit-model {who_names}: {e}"))?;
            let name = format!("{name} + culprits from {who_names}");
            rows.push(Row::new(name, metrics, None));
        }
    }
    if !a.baselines.is_empty() {
        let train_data = read_all(&a.baselines)?;
        let j = judging(first);
        let w = first.header.model.window;
        let tr = first.header.series(&train_data)?;
        let te = first.header.series(&test)?;
        let mut scorers: Vec<Box<dyn Scorer>> = Vec::new();
        if let Some(u) = UtilisationThreshold::fit(&tr, w) {
            scorers.push(Box::new(u));
        }
        if tr.iter().any(|s| s.qos.iter().any(|&q| q > 0.0)) {
            scorers.push(Box::new(QosThreshold::fit(&tr, w)));
        }
        scorers.extend::<Vec<Box<dyn Scorer>>>(vec![
            Box::new(QueueThreshold::fit(&tr, w)),
            Box::new(LargestRise::fit(&tr, w, 3)),
            Box::new(Linfa::fit(LinfaKind::Logistic, &tr, w, w.min(10), 3000)?),
            Box::new(Linfa::fit(LinfaKind::Tree, &tr, w, w.min(10), 6000)?),
        ]);
        for s in scorers.iter_mut() {
            rows.extend(scorer_rows(
                s.as_mut(),
                &te,
                w,
                &j,
                &a.at_false_alarms,
                None,
            ));
        }
    }
    let title = format!(
        "held-out data: {} (alarm at P(violation) ≥ {}, hold {}, incidents under {} apart)",
        a.data
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        a.threshold,
        a.hold,
        a.incident_gap
    );
    let md = eval::markdown(&title, &rows);
    emit_report(&md, &rows, a.json, a.out.as_deref())?;
    if let Some(dir) = &a.out {
        seer_predictor::plot::bars(&dir.join("report.svg"), &rows)?;
    }
    Ok(())
}

fn write(p: &Path, b: &[u8]) -> Result<()> {
    std::fs::write(p, b).with_context(|| format!("failed to write {}", p.display()))
}

fn cmd_predict(a: PredictArgs) -> Result<()> {
    let m = Model::load(&a.model, Device::cuda_if_available())?;
    let ds = Dataset::read_parquet(&a.data)?;
    let h = m.header.horizon_ticks();
    let s = Series::new(&ds, &m.header.normalizer, h)?;
    let w = m.header.model.window;
    if s.n_ticks < w {
        bail!(
            "{} has {} ticks, fewer than the window of {w}",
            a.data.display(),
            s.n_ticks
        );
    }
    let ends: Vec<usize> = (w - 1..s.n_ticks).rev().take(a.last).rev().collect();
    let probs = eval::score_model(&m, &s, &ends);
    for (t, p) in ends.iter().zip(probs) {
        let ns = p.len() - 1;
        let (best, pb) = (0..ns)
            .map(|i| (i, p[i]))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        let culprit = if p[ns] >= pb {
            None
        } else {
            Some(&m.header.services[best])
        };
        if a.json {
            let scores: serde_json::Map<String, serde_json::Value> = m
                .header
                .services
                .iter()
                .zip(&p)
                .map(|(n, v)| (n.clone(), serde_json::json!(v)))
                .collect();
            println!(
                "{}",
                serde_json::json!({"tick": t, "no_violation": p[ns], "culprit": culprit, "scores": scores})
            );
        } else {
            println!(
                "tick {t}: P(violation) {:.3}, {}",
                1.0 - p[ns],
                culprit.map_or("no violation expected".to_string(), |c| format!(
                    "culprit {c} ({pb:.3})"
                ))
            );
        }
    }
    Ok(())
}

fn cmd_info(a: InfoArgs) -> Result<()> {
    let m = Model::load(&a.model, Device::Cpu)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"model_id": m.id, "parameters": m.n_parameters(), "header": m.header})
        );
        return Ok(());
    }
    let h = &m.header;
    println!(
        "model {} ({} weights), written by {}",
        m.id,
        m.n_parameters(),
        h.written_by
    );
    println!(
        "architecture {} / {}, window {} ticks of {} ms",
        h.model.arch,
        h.model.output.name(),
        h.model.window,
        h.interval_ns as f64 / 1e6
    );
    println!(
        "horizon {} ms, channels {:?}",
        h.horizon_ns as f64 / 1e6,
        h.channels().iter().map(|c| c.name()).collect::<Vec<_>>()
    );
    println!("services ({}): {}", h.services.len(), h.services.join(", "));
    println!(
        "trained {} epochs (best {}), validation accuracy {:.2}%, {} + {} samples, seed {}, data {}",
        h.train.epochs,
        h.train.best_epoch,
        h.train.validation_accuracy * 100.0,
        h.train.train_samples,
        h.train.validation_samples,
        h.train.seed,
        &h.data_digest[..h.data_digest.len().min(16)]
    );
    Ok(())
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    let mut m = match &a.model {
        Some(p) => Model::load(p, Device::Cpu)?,
        None => seer_predictor::bench::untrained(
            a.arch.parse::<Arch>()?,
            a.services,
            a.window,
            OutputKind::Softmax,
        )?,
    };
    if let Some(p) = &a.save {
        m.save(p)?;
    }
    let r = seer_predictor::bench::run(&m, a.iterations)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for (name, p50, p99) in r.rows() {
            println!("{name}: p50 {p50:.1} µs, p99 {p99:.1} µs");
        }
        println!(
            "Rust engine vs tch, largest probability difference: {:.2e}",
            r.engine_max_diff
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("seer-predictor").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn durations_are_checked() {
        assert_eq!(parse_duration("incident gap", "1s").unwrap(), 1_000_000_000);
        let e = parse_duration("incident gap", "0s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("incident gap \"0s\" must be positive"), "{e}");
        assert_eq!(parse_duration_or_zero("hold", "0s").unwrap(), 0);
        assert_eq!(
            parse_duration_or_zero("hold", "300ms").unwrap(),
            300_000_000
        );
        let e = parse_duration_or_zero("hold", "soon")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid hold \"soon\""), "{e}");
    }

    #[test]
    fn train_flags_parse_into_a_config() {
        let cli = parse(&[
            "train",
            "--data",
            "a.parquet",
            "b.parquet",
            "--model",
            "lstm",
            "--horizon",
            "1s",
            "--out",
            "m.seer",
            "--window",
            "10",
            "--channels",
            "queue,p99_ms",
            "--output",
            "sigmoid",
            "--epochs",
            "3",
            "--patience",
            "2",
            "--batch",
            "16",
            "--lr",
            "0.01",
            "--val-fraction",
            "0.3",
            "--val-block",
            "2m",
            "--train-fraction",
            "0.5",
            "--quiet-fraction",
            "0.25",
            "--onset-weight",
            "4",
            "--unattributed",
            "skip",
            "--target-loss",
            "0.5",
            "--class-weight",
            "1",
            "--seed",
            "9",
            "--from",
            "old.seer",
            "--target-accuracy",
            "0.9",
            "--cpu",
            "--json",
            "--head-ticks",
            "5",
            "--head-hidden",
            "12",
            "--shared-culprit",
        ]);
        let Cmd::Train(a) = cli.cmd else {
            panic!("not train")
        };
        assert_eq!(a.data.len(), 2);
        assert_eq!(a.from.as_deref(), Some(Path::new("old.seer")));
        let c = a.config().unwrap();
        assert_eq!(c.arch, Arch::Lstm);
        assert_eq!(c.output, OutputKind::Sigmoid);
        assert_eq!(c.horizon_ns, 1_000_000_000);
        assert_eq!(c.channels, vec![Channel::Queue, Channel::P99Ms]);
        assert_eq!(
            (c.window, c.epochs, c.patience, c.batch_size, c.seed),
            (10, 3, 2, 16, 9)
        );
        assert_eq!(
            (
                c.learning_rate,
                c.val_fraction,
                c.train_fraction,
                c.class_weight_power
            ),
            (0.01, 0.3, 0.5, 1.0)
        );
        assert_eq!(c.target_accuracy, Some(0.9));
        assert_eq!((c.quiet_fraction, c.onset_weight), (0.25, 4.0));
        assert!(!c.unattributed);
        assert!(TrainConfig::default().unattributed);
        assert_eq!(c.target_loss, Some(0.5));
        assert_eq!(c.val_block_ns, 120_000_000_000);
        assert_eq!(c.device, Device::Cpu);
        assert!(!c.progress);
        assert_eq!(
            (c.head_ticks, c.head_hidden, c.shared_culprit),
            (5, 12, true)
        );
        let d = TrainConfig::default();
        assert_eq!(
            (d.head_ticks, d.head_hidden, d.shared_culprit),
            (1, 0, false)
        );
    }

    #[test]
    fn bad_train_values_are_refused() {
        for (flag, value) in [
            ("--model", "gru"),
            ("--horizon", "soon"),
            ("--horizon", "0ms"),
            ("--channels", "gpu"),
            ("--output", "relu"),
        ] {
            let cli = parse(&["train", "--data", "a", "--out", "m", flag, value]);
            let Cmd::Train(a) = cli.cmd else { panic!() };
            assert!(a.config().is_err(), "{flag} {value}");
        }
        let cli = parse(&[
            "train",
            "--data",
            "a",
            "--out",
            "m",
            "--channels",
            "queue,queue",
        ]);
        let Cmd::Train(a) = cli.cmd else { panic!() };
        assert!(a.config().unwrap_err().to_string().contains("twice"));
        for (flags, why) in [
            (&["--head-ticks", "21"][..], "21 ticks of a 20-tick window"),
            (
                &["--model", "lstm", "--head-hidden", "8"],
                "without a shared scorer",
            ),
            (
                &["--output", "sigmoid", "--shared-culprit"],
                "softmax hybrid",
            ),
        ] {
            let mut args = vec!["train", "--data", "a", "--out", "m"];
            args.extend(flags);
            let Cmd::Train(a) = parse(&args).cmd else {
                panic!()
            };
            let err = a.config().unwrap_err().to_string();
            assert!(err.contains(why), "{flags:?}: {err}");
        }
        assert!(
            Cli::try_parse_from(["seer-predictor", "train", "--out", "m"]).is_err(),
            "--data is required"
        );
    }

    #[test]
    fn a_false_alarm_share_outside_0_to_100_is_refused_first() {
        for bad in ["150", "-0.5", "NaN"] {
            let Cmd::Eval(e) = parse(&[
                "eval",
                "--model",
                "missing.seer",
                "--data",
                "missing.parquet",
                &format!("--at-false-alarms={bad}"),
            ])
            .cmd
            else {
                panic!()
            };
            let err = cmd_eval(e).unwrap_err().to_string();
            assert!(err.contains("must be 0-100"), "{bad}: {err}");
        }
    }

    #[test]
    fn other_verbs_parse() {
        let Cmd::Eval(e) = parse(&[
            "eval",
            "--model",
            "a.seer",
            "b.seer",
            "--data",
            "t.parquet",
            "--baselines",
            "tr.parquet",
            "--threshold",
            "0.7",
            "--incident-gap",
            "2s",
            "--hold",
            "300ms",
            "--at-false-alarms",
            "1,2.5",
            "--out",
            "r",
            "--json",
        ])
        .cmd
        else {
            panic!()
        };
        assert_eq!(
            (
                e.models.len(),
                e.baselines.len(),
                e.threshold,
                e.incident_gap.as_str(),
                e.hold.as_str(),
                e.json
            ),
            (2, 1, 0.7, "2s", "300ms", true)
        );
        assert_eq!(e.at_false_alarms, vec![1.0, 2.5]);
        let Cmd::Predict(p) = parse(&[
            "predict", "--model", "m", "--data", "d", "--last", "4", "--json",
        ])
        .cmd
        else {
            panic!()
        };
        assert_eq!((p.last, p.json), (4, true));
        let Cmd::Info(i) = parse(&["info", "--model", "m", "--json"]).cmd else {
            panic!()
        };
        assert!(i.json);
        let Cmd::Synth(s) = parse(&[
            "synth",
            "--out",
            "s",
            "--services",
            "3",
            "--ticks",
            "10",
            "--seed",
            "2",
        ])
        .cmd
        else {
            panic!()
        };
        assert_eq!((s.services, s.ticks, s.seed), (3, 10, 2));
        let Cmd::Crossval(c) = parse(&[
            "crossval",
            "--data",
            "d",
            "--folds",
            "3",
            "--channels",
            "queue,hop",
        ])
        .cmd
        else {
            panic!()
        };
        assert_eq!(
            (c.folds, c.channels.join(",")),
            (3, "queue,hop".to_string())
        );
        assert_eq!(
            parse_channels(&c.channels).unwrap(),
            [Channel::Queue, Channel::Hop]
        );
        let cli = parse(&[
            "--threads",
            "2",
            "serve",
            "--model",
            "m",
            "--listen",
            "127.0.0.1:6000",
            "--stream-mode",
            "stateful",
        ]);
        assert_eq!(cli.threads, Some(2));
        let Cmd::Serve(s) = cli.cmd else { panic!() };
        assert_eq!(s.listen.port(), 6000);
        assert_eq!(s.stream_mode, "stateful");
        let Cmd::Bench(b) = parse(&[
            "bench",
            "--arch",
            "cnn",
            "--services",
            "4",
            "--window",
            "5",
            "--iterations",
            "3",
            "--json",
        ])
        .cmd
        else {
            panic!()
        };
        assert_eq!(
            (b.arch.as_str(), b.services, b.window, b.iterations),
            ("cnn", 4, 5, 3)
        );
        assert!(
            Cli::try_parse_from([
                "seer-predictor",
                "serve",
                "--model",
                "m",
                "--listen",
                "nowhere"
            ])
            .is_err()
        );
    }
}
