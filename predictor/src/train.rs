//! Training: windows from datasets, a validation split by time, class weighting,
//! Adam with early stopping on the validation loss, seeded.
//!
//! All datasets are concatenated into one `[ticks, services, channels]` tensor;
//! a sample is the index of its window's first tick, and windows never straddle
//! two datasets. Per dataset, blocks of ticks spread evenly through it are
//! validation ([`Split`]), and training windows keep a gap of one window plus
//! the horizon from every validation tick so that no tick is seen by both.

use crate::checkpoint::{Header, Model, TrainSummary, data_digest};
use crate::features::{Channel, FeatureError, Label, Normalizer, Series};
use crate::model::{Arch, ModelConfig, ModelError, OutputKind};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use seer_traces::Dataset;
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn, nn::OptimizerConfig};

/// Errors while training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// No datasets were given.
    #[error("no datasets to train on")]
    NoData,
    /// The data could not be turned into features.
    #[error(transparent)]
    Feature(#[from] FeatureError),
    /// The network could not be built or run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Too few samples.
    #[error(
        "too few samples: {train} for training and {validation} for validation (window {window}, horizon {horizon} ticks)"
    )]
    TooFew {
        /// Training samples.
        train: usize,
        /// Validation samples.
        validation: usize,
        /// Window length.
        window: usize,
        /// Horizon, ticks.
        horizon: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// The model to start from does not fit.
    #[error("cannot start from model {id}: {message}")]
    Start {
        /// The starting model's id.
        id: String,
        /// Why.
        message: String,
    },
}

impl From<tch::TchError> for TrainError {
    fn from(e: tch::TchError) -> Self {
        TrainError::Model(ModelError::Torch(e))
    }
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Architecture (ignored when starting from a model).
    pub arch: Arch,
    /// Output kind (ignored when starting from a model).
    pub output: OutputKind,
    /// Ticks the hybrid's shared service scorer reads (1: the last tick alone;
    /// ignored when starting from a model).
    pub head_ticks: usize,
    /// Hidden units of the shared scorer (0: linear; ignored when starting from
    /// a model).
    pub head_hidden: usize,
    /// Culprits from the shared scorer alone ([`ModelConfig::shared_culprit`];
    /// ignored when starting from a model).
    pub shared_culprit: bool,
    /// Window, ticks.
    pub window: usize,
    /// Input channels.
    pub channels: Vec<Channel>,
    /// Prediction horizon, ns.
    pub horizon_ns: u64,
    /// Maximum epochs.
    pub epochs: usize,
    /// Stop after this many epochs without a better validation figure.
    pub patience: usize,
    /// Which validation figure picks the model kept and stops training.
    pub monitor: Monitor,
    /// Batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Fraction of each dataset's ticks used for validation ([`Split`]).
    pub val_fraction: f64,
    /// Length of one validation block, ns ([`Split`]).
    pub val_block_ns: u64,
    /// Fraction of the training windows used (the earliest ones), for
    /// accuracy-vs-training-set-size studies.
    pub train_fraction: f64,
    /// Class weights are `(n / (k * n_class)) ^ power`: 0 = none, 1 = inverse
    /// frequency.
    pub class_weight_power: f64,
    /// Share of the quiet training windows (no violation within the horizon)
    /// drawn afresh each epoch; the ones drawn weigh `1 / quiet_fraction`, so the
    /// expected loss is the full data's. Quiet windows are most of the data and
    /// alike: 0.25 makes an epoch about three times cheaper. 1 = all, every epoch.
    pub quiet_fraction: f64,
    /// Weight of the first tick of each violation episode relative to the
    /// other violation ticks: the tick where anticipating counts, outnumbered by
    /// the ticks of long violations. 1 = no emphasis.
    pub onset_weight: f64,
    /// Train on violations with no known culprit (a load peak, the tail of a
    /// fault) as "some service initiates one": their loss is −log P(violation),
    /// whichever service the model names. Off, they are left out, and a model
    /// never learns to alarm on load alone.
    pub unattributed: bool,
    /// Seed of the initial weights, dropout and shuffling.
    pub seed: u64,
    /// Where to train.
    pub device: Device,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Stop as soon as the validation accuracy reaches this (for timing studies).
    pub target_accuracy: Option<f64>,
    /// Stop as soon as the validation loss is at most this (for "time to the
    /// same validation loss" studies); a fine-tuned model that already meets it
    /// trains no epoch.
    pub target_loss: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            arch: Arch::Hybrid,
            output: OutputKind::Softmax,
            head_ticks: 1,
            head_hidden: 0,
            shared_culprit: false,
            window: 20,
            channels: vec![Channel::Queue],
            horizon_ns: 100_000_000,
            epochs: 30,
            patience: 5,
            monitor: Monitor::Loss,
            batch_size: 64,
            learning_rate: 2e-3,
            val_fraction: 0.2,
            val_block_ns: 300_000_000_000,
            train_fraction: 1.0,
            class_weight_power: 0.5,
            quiet_fraction: 1.0,
            onset_weight: 1.0,
            unattributed: true,
            seed: 1,
            device: Device::cuda_if_available(),
            progress: false,
            target_accuracy: None,
            target_loss: None,
        }
    }
}

impl TrainConfig {
    /// The network a from-scratch training builds for `n_services` services.
    pub fn model_config(&self, n_services: usize) -> ModelConfig {
        let mut mc = ModelConfig::new(self.arch, n_services, self.channels.len(), self.window);
        mc.output = self.output;
        mc.head_ticks = self.head_ticks;
        mc.head_hidden = self.head_hidden;
        mc.shared_culprit = self.shared_culprit;
        mc
    }

    /// The validation split for data with ticks every `interval_ns`.
    pub fn split(&self, interval_ns: u64) -> Split {
        Split {
            fraction: self.val_fraction,
            block: (self.val_block_ns / interval_ns.max(1)).max(1) as usize,
        }
    }

    /// How the training windows are chosen and weighed.
    pub fn weighting(&self) -> Weighting {
        Weighting {
            train_fraction: self.train_fraction,
            class_weight_power: self.class_weight_power,
            onset_weight: self.onset_weight,
            unattributed: self.unattributed,
        }
    }

    fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.window == 0 || self.batch_size == 0 || self.epochs == 0 {
            return bad(format!(
                "window {}, batch size {} and epochs {} must be positive",
                self.window, self.batch_size, self.epochs
            ));
        }
        if !(0.0..0.9).contains(&self.val_fraction) {
            return bad(format!(
                "validation fraction {} is outside [0, 0.9)",
                self.val_fraction
            ));
        }
        if !(self.train_fraction > 0.0 && self.train_fraction <= 1.0) {
            return bad(format!(
                "training fraction {} is outside (0, 1]",
                self.train_fraction
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!(
                "learning rate {} must be positive",
                self.learning_rate
            ));
        }
        if self.channels.is_empty() {
            return bad("no input channels".into());
        }
        if !(self.onset_weight > 0.0 && self.onset_weight.is_finite()) {
            return bad(format!(
                "onset weight {} must be positive",
                self.onset_weight
            ));
        }
        if !(self.quiet_fraction > 0.0 && self.quiet_fraction <= 1.0) {
            return bad(format!(
                "quiet fraction {} is outside (0, 1]",
                self.quiet_fraction
            ));
        }
        Ok(())
    }
}

/// The validation figure that early stopping follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// The weighted validation loss (lower is better).
    Loss,
    /// The share of validation windows whose most likely class is right
    /// (higher is better). The loss punishes a confident miss without bound, so
    /// on data whose violations are partly unforeseeable it can rise while the
    /// predictions get better.
    Accuracy,
    /// Culprit top-1 on the validation windows with a known culprit: the
    /// service scored highest is one of them (higher is better). What the
    /// network says *who* apart from *when*: a model may keep improving at
    /// naming culprits after its alarm is as good as it gets.
    Culprit,
}

impl std::str::FromStr for Monitor {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, TrainError> {
        match s {
            "loss" => Ok(Monitor::Loss),
            "accuracy" => Ok(Monitor::Accuracy),
            "culprit" => Ok(Monitor::Culprit),
            _ => Err(TrainError::Config(format!(
                "unknown monitor {s:?} (loss, accuracy or culprit)"
            ))),
        }
    }
}

/// Which ticks of a dataset are validation: blocks of `block` ticks spread
/// evenly through it, counted from its end (the last block is always one; with
/// a fraction of 0.2, every fifth). Blocks rather than the last fifth, so that
/// validation sees every phase of a load cycle, not always the same one. A
/// dataset too short to hold `1 / fraction` blocks gets shorter blocks: its last
/// `fraction` of ticks, then, is the validation part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    /// Share of the ticks that are validation; 0 = none.
    pub fraction: f64,
    /// Length of a validation block, ticks.
    pub block: usize,
}

impl Split {
    /// `mask[t]`: tick `t` of a dataset of `n` ticks is validation.
    pub fn validation_mask(&self, n: usize) -> Vec<bool> {
        let f = self.fraction;
        if f <= 0.0 {
            return vec![false; n];
        }
        let block = self.block.min((n as f64 * f) as usize).max(1);
        // Block b (0 = the last) is validation when the sequence b·f + (1 − f)
        // crosses an integer within it: b = 0, then every 1/f blocks.
        let crosses =
            |b: usize| ((b + 1) as f64 * f + 1.0 - f).floor() > (b as f64 * f + 1.0 - f).floor();
        (0..n).map(|t| crosses((n - 1 - t) / block)).collect()
    }

    /// Per dataset, `mask[t]`: tick `t` is not validation (what normalisation
    /// is fitted on).
    pub fn training_masks(&self, datasets: &[&Dataset]) -> Vec<Vec<bool>> {
        datasets
            .iter()
            .map(|d| {
                self.validation_mask(d.n_ticks())
                    .into_iter()
                    .map(|v| !v)
                    .collect()
            })
            .collect()
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Maximum epochs.
    pub epochs: usize,
    /// Mean weighted training loss.
    pub train_loss: f64,
    /// Weighted validation loss.
    pub validation_loss: f64,
    /// Validation accuracy: the most probable class is one of the tick's labels.
    pub validation_accuracy: f64,
    /// Validation culprit top-1 ([`Monitor::Culprit`]).
    pub validation_culprit: f64,
    /// Seconds since training started.
    pub elapsed: f64,
}

/// Which training windows are used and how much each weighs (the
/// [`TrainConfig`] fields of the same names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighting {
    /// Fraction of the training windows used (the earliest ones).
    pub train_fraction: f64,
    /// Class-weight exponent.
    pub class_weight_power: f64,
    /// Weight of a violation episode's first tick.
    pub onset_weight: f64,
    /// Train on violations with no known culprit.
    pub unattributed: bool,
}

impl Default for Weighting {
    fn default() -> Self {
        TrainConfig::default().weighting()
    }
}

/// Datasets turned into one tensor of ticks, targets and sample indices.
#[derive(Debug)]
pub struct Samples {
    /// `[ticks, services, channels]`, all datasets concatenated.
    pub x: Tensor,
    /// `[ticks, services + 2]`: soft targets over the services and "no
    /// violation" (column `services`), then 1 in the last column for a
    /// violation whose culprit is unknown (all other columns 0).
    pub targets: Tensor,
    /// Per-tick sample weight from the class weights.
    pub weights: Tensor,
    /// First tick of each training window.
    pub train: Vec<i64>,
    /// First tick of each validation window.
    pub validation: Vec<i64>,
    /// Window length.
    pub window: usize,
}

impl Samples {
    /// Builds samples; a split with fraction 0 puts everything in `train`.
    pub fn new(
        series: &[Series],
        window: usize,
        h: usize,
        split: Split,
        weighting: &Weighting,
    ) -> Samples {
        let (ns, nc) = (series[0].n_services, series[0].n_channels);
        let total: usize = series.iter().map(|s| s.n_ticks).sum();
        let mut x = Vec::with_capacity(total * ns * nc);
        let mut targets = vec![0f32; total * (ns + 2)];
        let mut class = vec![ns; total];
        let mut onset = vec![false; total];
        let (mut train, mut validation) = (Vec::new(), Vec::new());
        let mut offset = 0usize;
        for s in series {
            x.extend_from_slice(&s.x);
            let ends: Vec<usize> = s.window_ends(window).collect();
            let val = split.validation_mask(s.n_ticks);
            // near[t]: a validation tick lies within one window plus the
            // horizon of t (prefix sums of the mask).
            let gap = window + h;
            let mut before = vec![0usize; s.n_ticks + 1];
            for (t, &v) in val.iter().enumerate() {
                before[t + 1] = before[t] + usize::from(v);
            }
            let near =
                |t: usize| before[(t + gap + 1).min(s.n_ticks)] > before[t.saturating_sub(gap)];
            let mut tr = Vec::new();
            for t in ends {
                let row = &mut targets[(offset + t) * (ns + 2)..(offset + t + 1) * (ns + 2)];
                // The first tick of a violation episode: the one where
                // anticipating counts.
                let first = t == 0 || !s.labels[t - 1].as_ref().is_some_and(Label::is_violation);
                match s.labels[t].as_ref() {
                    Some(Label::Quiet) => {
                        row[ns] = 1.0;
                    }
                    Some(Label::Culprits(c)) => {
                        for &i in c {
                            row[i] = 1.0 / c.len() as f32;
                        }
                        class[offset + t] = c[0];
                        onset[offset + t] = first;
                    }
                    Some(Label::Unattributed) if weighting.unattributed => {
                        row[ns + 1] = 1.0;
                        class[offset + t] = ns + 1;
                        onset[offset + t] = first;
                    }
                    Some(Label::Unattributed) | None => continue,
                }
                let start = (offset + t + 1 - window) as i64;
                if val[t] {
                    validation.push(start);
                } else if !near(t) {
                    tr.push(start);
                }
            }
            let keep = ((tr.len() as f64) * weighting.train_fraction).ceil() as usize;
            tr.truncate(keep.max(1).min(tr.len()));
            train.extend(tr);
            offset += s.n_ticks;
        }
        // Class weights from the training samples.
        let mut counts = vec![0usize; ns + 2];
        for &st in &train {
            counts[class[st as usize + window - 1]] += 1;
        }
        let present = counts.iter().filter(|&&c| c > 0).count().max(1);
        let n = train.len().max(1) as f64;
        let cw: Vec<f32> = counts
            .iter()
            .map(|&c| {
                if c == 0 {
                    1.0
                } else {
                    (n / (present as f64 * c as f64)).powf(weighting.class_weight_power) as f32
                }
            })
            .collect();
        let onset_weight = weighting.onset_weight as f32;
        let weights: Vec<f32> = class
            .iter()
            .zip(&onset)
            .map(|(&c, &o)| cw[c] * if o { onset_weight } else { 1.0 })
            .collect();
        Samples {
            x: Tensor::from_slice(&x).reshape([total as i64, ns as i64, nc as i64]),
            targets: Tensor::from_slice(&targets).reshape([total as i64, ns as i64 + 2]),
            weights: Tensor::from_slice(&weights),
            train,
            validation,
            window,
        }
    }

    /// Splits window starts into (quiet, with a violation) by their target.
    pub fn split_quiet(&self, starts: &[i64]) -> Result<(Vec<i64>, Vec<i64>), TrainError> {
        let ns = self.targets.size()[1] - 2;
        let none: Vec<f32> = Vec::try_from(self.targets.select(1, ns))?;
        let w = self.window - 1;
        Ok(starts.iter().partition(|&&st| none[st as usize + w] > 0.5))
    }

    /// Windows `[batch, window, services, channels]` starting at `starts`, with
    /// their targets and weights (at the window's last tick).
    pub fn batch(&self, starts: &[i64], device: Device) -> (Tensor, Tensor, Tensor) {
        let idx = Tensor::from_slice(starts);
        let w = self.window as i64;
        // unfold: [T - W + 1, S, C, W] -> [B, S, C, W] -> [B, W, S, C]
        let x = self
            .x
            .unfold(0, w, 1)
            .index_select(0, &idx)
            .permute([0, 3, 1, 2])
            .contiguous();
        let ends = &idx + (w - 1);
        (
            x.to_device(device),
            self.targets.index_select(0, &ends).to_device(device),
            self.weights.index_select(0, &ends).to_device(device),
        )
    }
}

/// Weighted loss of a batch; `targets` as in [`Samples::targets`].
///
/// A violation with an unknown culprit is "one of the services initiates it":
/// its loss is −log P(violation) — the softmax's services together, or for
/// per-service sigmoids 1 − Π(1 − pᵢ) — and does not favour any service.
pub fn loss(output: OutputKind, logits: &Tensor, targets: &Tensor, weights: &Tensor) -> Tensor {
    let ns = targets.size()[1] - 2;
    let known = targets.narrow(1, 0, ns + 1);
    let unknown = targets.select(1, ns + 1);
    let per_sample = match output {
        OutputKind::Softmax => {
            let lp = logits.log_softmax(-1, Kind::Float);
            let cross = -(known * &lp).sum_dim_intlist(1, false, Kind::Float);
            let any = -lp.narrow(1, 0, ns).logsumexp(1, false);
            cross + any * unknown
        }
        OutputKind::Sigmoid => {
            let t = known.narrow(1, 0, ns).gt(0.0).to_kind(Kind::Float);
            let each = logits
                .binary_cross_entropy_with_logits::<Tensor>(&t, None, None, tch::Reduction::None)
                .sum_dim_intlist(1, false, Kind::Float);
            // log P(no violation) = Σ log(1 − σ(l)) = −Σ softplus(l)
            let log_none = -logits.softplus().sum_dim_intlist(1, false, Kind::Float);
            let any = -(-log_none.expm1()).clamp_min(1e-12).log();
            each * (-&unknown + 1.0) + any * unknown
        }
    };
    (per_sample * weights).sum(Kind::Float) / weights.sum(Kind::Float)
}

/// Whether the most probable class of each row is one the target allows (for
/// an unknown culprit: any service).
pub fn correct(probs: &Tensor, targets: &Tensor) -> Tensor {
    let ns = targets.size()[1] - 2;
    let top = probs.argmax(-1, true);
    let named = targets
        .narrow(1, 0, ns + 1)
        .gather(1, &top, false)
        .squeeze_dim(1)
        .gt(0.0);
    let service = top.squeeze_dim(1).lt(ns);
    named.logical_or(&targets.select(1, ns + 1).gt(0.0).logical_and(&service))
}

/// For each row with a known culprit, whether the service scored highest is
/// one; `(named right, rows with a known culprit)`.
pub fn culprit_hits(probs: &Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let ns = targets.size()[1] - 2;
    let culprits = targets.narrow(1, 0, ns);
    let known = culprits.sum_dim_intlist(1, false, Kind::Float).gt(0.0);
    let top = probs.narrow(1, 0, ns).argmax(-1, true);
    let hit = culprits
        .gather(1, &top, false)
        .squeeze_dim(1)
        .gt(0.0)
        .logical_and(&known);
    (hit, known)
}

/// A model's figures on validation windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Weighted loss.
    pub loss: f64,
    /// Share of windows whose most probable class is right.
    pub accuracy: f64,
    /// Culprit top-1 on the windows with a known culprit (0 when none has one).
    pub culprit: f64,
}

impl Figures {
    /// What no model has yet: the starting point of a search for the best.
    pub const NONE: Figures = Figures {
        loss: f64::INFINITY,
        accuracy: 0.0,
        culprit: 0.0,
    };

    /// Whether these figures beat `other` by the `monitor`ed one.
    pub fn better_than(&self, other: &Figures, monitor: Monitor) -> bool {
        match monitor {
            Monitor::Loss => self.loss < other.loss,
            Monitor::Accuracy => self.accuracy > other.accuracy,
            Monitor::Culprit => self.culprit > other.culprit,
        }
    }
}

/// Loss, accuracy and culprit top-1 of `model` on the windows starting at `starts`.
pub fn evaluate(
    model: &Model,
    s: &Samples,
    starts: &[i64],
    batch: usize,
) -> Result<Figures, TrainError> {
    let _g = tch::no_grad_guard();
    let dev = model.vs.device();
    let (mut l, mut w, mut ok, mut hits, mut known) = (0f64, 0f64, 0i64, 0i64, 0i64);
    for chunk in starts.chunks(batch.max(1) * 4) {
        let (x, t, wt) = s.batch(chunk, dev);
        let logits = model.net.forward(&x);
        let bw = f64::try_from(wt.sum(Kind::Float))?;
        l += f64::try_from(loss(model.header.model.output, &logits, &t, &wt))? * bw;
        w += bw;
        let probs = model.net.probabilities(&logits);
        ok += i64::try_from(correct(&probs, &t).sum(Kind::Int64))?;
        let (hit, k) = culprit_hits(&probs, &t);
        hits += i64::try_from(hit.sum(Kind::Int64))?;
        known += i64::try_from(k.sum(Kind::Int64))?;
    }
    Ok(Figures {
        loss: l / w.max(1e-12),
        accuracy: ok as f64 / starts.len().max(1) as f64,
        culprit: hits as f64 / known.max(1) as f64,
    })
}

/// The result of training.
#[derive(Debug)]
pub struct Trained {
    /// The model with the best validation figure ([`TrainConfig::monitor`]).
    pub model: Model,
    /// One report per epoch run.
    pub epochs: Vec<EpochReport>,
}

/// Trains a model on `datasets` (services in the first dataset's order), from
/// scratch or, with `start`, fine-tuning a model whose services and
/// normalisation already match the data (see [`crate::retrain`]).
pub fn train(
    datasets: &[&Dataset],
    cfg: &TrainConfig,
    start: Option<Model>,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Trained, TrainError> {
    cfg.validate()?;
    let first = datasets.first().ok_or(TrainError::NoData)?;
    let interval = first.meta.interval_ns;
    for ds in datasets {
        if ds.meta.interval_ns != interval {
            return Err(FeatureError::Interval {
                origin: ds.meta.origin.clone(),
                got: ds.meta.interval_ns,
                expected: interval,
            }
            .into());
        }
    }
    tch::manual_seed(cfg.seed as i64);
    let started = Instant::now();
    let (mut model, parent) = match start {
        Some(m) => {
            let id = m.id.clone();
            if m.header.interval_ns != interval {
                return Err(TrainError::Start {
                    id,
                    message: format!(
                        "tick interval {} ns, data has {interval} ns",
                        m.header.interval_ns
                    ),
                });
            }
            (m, Some(id))
        }
        None => {
            let services = first.meta.services.clone();
            let masks = cfg.split(interval).training_masks(datasets);
            let normalizer = Normalizer::fit(datasets, &masks, &services, &cfg.channels)?;
            let header = Header {
                model: cfg.model_config(services.len()),
                services,
                normalizer,
                horizon_ns: cfg.horizon_ns,
                interval_ns: interval,
                data_digest: String::new(),
                train: TrainSummary::default(),
                written_by: concat!("seer-predictor ", env!("CARGO_PKG_VERSION")).into(),
            };
            (Model::new(header, cfg.device)?, None)
        }
    };
    // The header's tick is `interval` (checked above for a checkpoint).
    let h = model.header.horizon_ticks();
    let window = model.header.model.window;
    let series = model.header.series(datasets.iter().copied())?;
    let samples = Samples::new(&series, window, h, cfg.split(interval), &cfg.weighting());
    if samples.train.is_empty() || (cfg.val_fraction > 0.0 && samples.validation.is_empty()) {
        return Err(TrainError::TooFew {
            train: samples.train.len(),
            validation: samples.validation.len(),
            window,
            horizon: h,
        });
    }
    let val: &[i64] = if samples.validation.is_empty() {
        &samples.train
    } else {
        &samples.validation
    };
    let mut opt = nn::Adam::default().build(&model.vs, cfg.learning_rate)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let ns = model.header.services.len() as i64;
    let (quiet, events) = samples.split_quiet(&samples.train)?;
    let n_quiet = ((quiet.len() as f64) * cfg.quiet_fraction).ceil() as usize;
    let mut order = Vec::with_capacity(events.len() + n_quiet);
    let mut quiet_pool = quiet;
    let batches = (events.len() + n_quiet).div_ceil(cfg.batch_size);
    let bar = if cfg.progress {
        let b = ProgressBar::new((batches * cfg.epochs) as u64);
        b.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] epoch {msg} ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let (mut best, mut best_epoch) =
        evaluate_initial(&model, &samples, val, cfg, parent.is_some())?;
    let reached = |l: f64, a: f64| {
        cfg.target_accuracy.is_some_and(|t| a >= t) || cfg.target_loss.is_some_and(|t| l <= t)
    };
    let mut done = false;
    if parent.is_some() {
        // Epoch 0: the starting model on the new data.
        on_epoch(&EpochReport {
            epoch: 0,
            epochs: cfg.epochs,
            train_loss: f64::NAN,
            validation_loss: best.loss,
            validation_accuracy: best.accuracy,
            validation_culprit: best.culprit,
            elapsed: started.elapsed().as_secs_f64(),
        });
        done = reached(best.loss, best.accuracy);
    }
    let mut best_weights = snapshot(&model.vs);
    let mut reports = Vec::new();
    let mut since_best = 0;
    for epoch in 1..=cfg.epochs {
        if done {
            break;
        }
        // Every window with a violation, and a fresh draw of the quiet ones.
        order.clear();
        order.extend_from_slice(&events);
        quiet_pool.shuffle(&mut rng);
        order.extend_from_slice(&quiet_pool[..n_quiet]);
        order.shuffle(&mut rng);
        let mut total = 0f64;
        for chunk in order.chunks(cfg.batch_size) {
            let (x, t, mut w) = samples.batch(chunk, model.vs.device());
            if cfg.quiet_fraction < 1.0 {
                // Quiet targets have 1 in column `services`.
                let q = t.select(1, ns);
                w *= q * (1.0 / cfg.quiet_fraction - 1.0) + 1.0;
            }
            let logits = model.net.forward_t(&x, true);
            let l = loss(model.header.model.output, &logits, &t, &w);
            opt.backward_step(&l);
            total += f64::try_from(&l)? * chunk.len() as f64;
            bar.inc(1);
        }
        let f = evaluate(&model, &samples, val, cfg.batch_size)?;
        let (vl, va) = (f.loss, f.accuracy);
        let r = EpochReport {
            epoch,
            epochs: cfg.epochs,
            train_loss: total / order.len() as f64,
            validation_loss: vl,
            validation_accuracy: va,
            validation_culprit: f.culprit,
            elapsed: started.elapsed().as_secs_f64(),
        };
        bar.set_message(format!(
            "{epoch}/{}: loss {:.4}, val loss {vl:.4}, val acc {:.1}%, culprit {:.1}%",
            cfg.epochs,
            r.train_loss,
            va * 100.0,
            f.culprit * 100.0
        ));
        on_epoch(&r);
        reports.push(r);
        if f.better_than(&best, cfg.monitor) {
            (best, best_epoch) = (f, epoch);
            best_weights = snapshot(&model.vs);
            since_best = 0;
        } else {
            since_best += 1;
        }
        done = reached(vl, va) || since_best >= cfg.patience;
    }
    bar.finish_and_clear();
    restore(&model.vs, &best_weights)?;
    model.header.data_digest = data_digest(datasets);
    model.header.train = TrainSummary {
        epochs: reports.len(),
        best_epoch,
        validation_loss: best.loss,
        validation_accuracy: best.accuracy,
        validation_culprit: best.culprit,
        train_samples: samples.train.len(),
        validation_samples: samples.validation.len(),
        seed: cfg.seed,
        seconds: started.elapsed().as_secs_f64(),
        parent,
    };
    model.to_bytes()?; // sets the id
    Ok(Trained {
        model,
        epochs: reports,
    })
}

/// Fine-tuning keeps the starting weights unless an epoch beats them; a fresh
/// model always takes its first epoch.
fn evaluate_initial(
    model: &Model,
    s: &Samples,
    val: &[i64],
    cfg: &TrainConfig,
    fine_tune: bool,
) -> Result<(Figures, usize), TrainError> {
    if fine_tune {
        Ok((evaluate(model, s, val, cfg.batch_size)?, 0))
    } else {
        Ok((Figures::NONE, 0))
    }
}

fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let _g = tch::no_grad_guard();
    vs.variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

fn restore(vs: &nn::VarStore, snap: &[(String, Tensor)]) -> Result<(), TrainError> {
    let _g = tch::no_grad_guard();
    let vars = vs.variables();
    for (n, t) in snap {
        if let Some(v) = vars.get(n) {
            v.shallow_clone().f_copy_(t)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthConfig, queue_series, synth_dataset};

    fn quick(arch: Arch) -> TrainConfig {
        TrainConfig {
            arch,
            window: 8,
            epochs: 6,
            patience: 3,
            batch_size: 32,
            learning_rate: 5e-3,
            device: Device::Cpu,
            ..Default::default()
        }
    }

    /// The last fifth of a dataset (blocks longer than any test dataset).
    const LAST_FIFTH: Split = Split {
        fraction: 0.2,
        block: usize::MAX,
    };

    /// Maximal runs of validation ticks as (first, length).
    fn runs(mask: &[bool]) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (t, &v) in mask.iter().enumerate() {
            match out.last_mut() {
                Some((a, l)) if v && *a + *l == t => *l += 1,
                _ if v => out.push((t, 1)),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn validation_blocks_are_spread_through_the_data() {
        // Two hours of 100 ms ticks, 5-minute blocks: every fifth block, the
        // last one included, so 24 minutes of validation in every phase.
        let n = 72_000;
        let mask = Split {
            fraction: 0.2,
            block: 3000,
        }
        .validation_mask(n);
        let r = runs(&mask);
        assert_eq!(r.len(), 5, "{r:?}");
        assert!(r.iter().all(|&(_, l)| l == 3000), "{r:?}");
        assert_eq!(
            r.last().unwrap().0 + 3000,
            n,
            "the last block is validation"
        );
        for w in r.windows(2) {
            assert_eq!(w[1].0 - w[0].0, 15_000, "evenly spaced: {r:?}");
        }
        // A fraction that is not 1/k still holds out about that share.
        let m = Split {
            fraction: 0.3,
            block: 100,
        }
        .validation_mask(10_000);
        let share = m.iter().filter(|&&v| v).count() as f64 / 1e4;
        assert!((share - 0.3).abs() < 0.011, "{share}");
        // Too short for 1/fraction blocks: the last fifth, as before.
        let short = Split {
            fraction: 0.2,
            block: 3000,
        }
        .validation_mask(400);
        assert_eq!(runs(&short), vec![(320, 80)]);
        assert_eq!(LAST_FIFTH.validation_mask(400), short);
        assert!(
            !Split {
                fraction: 0.0,
                block: 10
            }
            .validation_mask(50)
            .contains(&true)
        );
    }

    #[test]
    fn no_training_window_comes_near_a_validation_block() {
        let ds = synth_dataset(&SynthConfig {
            n_services: 3,
            n_ticks: 3000,
            ..Default::default()
        });
        let split = Split {
            fraction: 0.2,
            block: 100,
        };
        let masks = split.training_masks(&[&ds]);
        let norm = Normalizer::fit(&[&ds], &masks, &ds.meta.services, &[Channel::Queue]).unwrap();
        let (w, h) = (8usize, 2usize);
        let s = Series::new(&ds, &norm, h).unwrap();
        let sm = Samples::new(&[s], w, h, split, &Weighting::default());
        let val: Vec<usize> = sm
            .validation
            .iter()
            .map(|&st| st as usize + w - 1)
            .collect();
        let mask = split.validation_mask(3000);
        assert!(val.iter().all(|&t| mask[t]));
        // Validation comes from several blocks across the dataset.
        assert!(*val.iter().min().unwrap() < 1000 && *val.iter().max().unwrap() > 2900);
        let mut trained = 0;
        for &st in &sm.train {
            let t = st as usize + w - 1;
            // The training window's ticks and the ticks its label looks at.
            let (lo, hi) = (t + 1 - w, t + h);
            for &v in &val {
                assert!(
                    hi < v + 1 - w || lo > v + h,
                    "train {t} touches validation {v}"
                );
            }
            trained += 1;
        }
        // Gaps cost 2·(w + h) ticks per block: most non-validation ticks train.
        assert!(trained > 1900, "{trained} training windows");
    }

    #[test]
    fn samples_split_by_time_with_a_gap() {
        let ds = synth_dataset(&SynthConfig {
            n_services: 3,
            n_ticks: 400,
            ..Default::default()
        });
        let s = queue_series(&ds, 320, 1).unwrap();
        let sm = Samples::new(&[s], 8, 1, LAST_FIFTH, &Weighting::default());
        let last_train = *sm.train.iter().max().unwrap();
        let first_val = *sm.validation.iter().min().unwrap();
        assert!(
            last_train + 8 + 1 < first_val,
            "{last_train} vs {first_val}"
        );
        let (x, t, w) = sm.batch(&sm.train[..4], Device::Cpu);
        assert_eq!(x.size(), [4, 8, 3, 1]);
        assert_eq!(t.size(), [4, 5]);
        assert_eq!(w.size(), [4]);
        // The window holds ticks start..start+8 of the series.
        let v: Vec<f32> = Vec::try_from(x.get(0).flatten(0, -1)).unwrap();
        let st = sm.train[0] as usize;
        let s = queue_series(&ds, 320, 1).unwrap();
        assert_eq!(v, s.window(st + 7, 8));
    }

    #[test]
    fn training_learns_the_synthetic_culprit_and_is_reproducible() {
        tch::set_num_threads(1);
        let ds = synth_dataset(&SynthConfig {
            n_services: 5,
            n_ticks: 1500,
            ..Default::default()
        });
        let cfg = quick(Arch::Hybrid);
        let a = train(&[&ds], &cfg, None, &mut |_| {}).unwrap();
        let acc = a.model.header.train.validation_accuracy;
        // "Always quiet" scores the share of quiet ticks; the model must beat it.
        let h = a.model.header.horizon_ticks();
        let s = a.model.header.series([&ds]).unwrap().remove(0);
        let sm = Samples::new(&[s], 8, h, LAST_FIFTH, &Weighting::default());
        let quiet = sm
            .validation
            .iter()
            .filter(|&&st| f64::try_from(sm.targets.get(st + 7).get(5)).unwrap() > 0.0)
            .count() as f64
            / sm.validation.len() as f64;
        assert!(acc > quiet + 0.02, "accuracy {acc} vs always-quiet {quiet}");
        let b = train(&[&ds], &cfg, None, &mut |_| {}).unwrap();
        assert_eq!(
            a.model.weights().unwrap(),
            b.model.weights().unwrap(),
            "same seed, same weights"
        );
        let losses = |t: &Trained| {
            t.epochs
                .iter()
                .map(|e| e.validation_loss)
                .collect::<Vec<_>>()
        };
        assert_eq!(losses(&a), losses(&b));
    }

    #[test]
    fn the_kept_model_is_the_best_by_the_monitored_figure() {
        tch::set_num_threads(1);
        let ds = synth_dataset(&SynthConfig {
            n_services: 4,
            n_ticks: 1200,
            ..Default::default()
        });
        for monitor in [Monitor::Loss, Monitor::Accuracy, Monitor::Culprit] {
            let cfg = TrainConfig {
                epochs: 5,
                patience: 5,
                monitor,
                ..quick(Arch::Lstm)
            };
            let t = train(&[&ds], &cfg, None, &mut |_| {}).unwrap();
            assert_eq!(t.epochs.len(), 5);
            let key = |e: &EpochReport| match monitor {
                Monitor::Loss => e.validation_loss,
                Monitor::Accuracy => -e.validation_accuracy,
                Monitor::Culprit => -e.validation_culprit,
            };
            // The first epoch with the best figure.
            let best = t
                .epochs
                .iter()
                .fold(None::<&EpochReport>, |b, e| match b {
                    Some(b) if key(b) <= key(e) => Some(b),
                    _ => Some(e),
                })
                .unwrap();
            let s = &t.model.header.train;
            assert_eq!(s.best_epoch, best.epoch, "{monitor:?}");
            // The weights kept are that epoch's: they score its figures again.
            let h = t.model.header.horizon_ticks();
            let series = t.model.header.series([&ds]).unwrap().remove(0);
            let sm = Samples::new(
                &[series],
                8,
                h,
                cfg.split(ds.meta.interval_ns),
                &Weighting::default(),
            );
            let f = evaluate(&t.model, &sm, &sm.validation, 64).unwrap();
            assert!(
                (f.loss - best.validation_loss).abs() < 1e-4,
                "{} vs {}",
                f.loss,
                best.validation_loss
            );
            assert!((f.accuracy - best.validation_accuracy).abs() < 1e-9);
            assert!((f.culprit - best.validation_culprit).abs() < 1e-9);
            assert_eq!(s.validation_culprit, best.validation_culprit);
        }
        assert!(
            "gain"
                .parse::<Monitor>()
                .unwrap_err()
                .to_string()
                .contains("loss, accuracy or culprit")
        );
    }

    #[test]
    fn episode_onsets_can_weigh_more() {
        let ds = synth_dataset(&SynthConfig {
            n_services: 3,
            n_ticks: 600,
            ..Default::default()
        });
        let s = queue_series(&ds, 480, 1).unwrap();
        let plain = Samples::new(
            std::slice::from_ref(&s),
            8,
            1,
            LAST_FIFTH,
            &Weighting::default(),
        );
        let heavy = Samples::new(
            std::slice::from_ref(&s),
            8,
            1,
            LAST_FIFTH,
            &Weighting {
                onset_weight: 3.0,
                ..Weighting::default()
            },
        );
        let a: Vec<f32> = Vec::try_from(&plain.weights).unwrap();
        let b: Vec<f32> = Vec::try_from(&heavy.weights).unwrap();
        let (mut onsets, mut others) = (0, 0);
        for t in 1..s.n_ticks {
            let now = matches!(s.labels[t], Some(Label::Culprits(_)));
            let before = s.labels[t - 1].as_ref().is_some_and(Label::is_violation);
            if now && !before {
                assert!((b[t] - 3.0 * a[t]).abs() < 1e-6, "onset {t}");
                onsets += 1;
            } else {
                assert_eq!(a[t], b[t], "tick {t}");
                others += usize::from(now);
            }
        }
        assert!(
            onsets > 3 && others > onsets,
            "{onsets} onsets, {others} others"
        );
    }

    /// Culprit top-1 reads the services' scores alone, on the rows with a known
    /// culprit.
    #[test]
    fn culprit_hits_count_rows_with_a_known_culprit() {
        // Three services, then "no violation", then "some unknown service".
        let targets = Tensor::from_slice2(&[
            [0f32, 1., 0., 0., 0.],
            [1., 0., 1., 0., 0.],
            [0., 0., 0., 1., 0.],
            [0., 0., 0., 0., 1.],
            [0., 0., 1., 0., 0.],
        ]);
        let probs = Tensor::from_slice2(&[
            [0.1f32, 0.6, 0.1, 0.2],
            [0.1, 0.5, 0.2, 0.2],
            [0.1, 0.1, 0.1, 0.7],
            [0.5, 0.1, 0.1, 0.3],
            [0.05, 0.05, 0.1, 0.8],
        ]);
        let (hit, known) = culprit_hits(&probs, &targets);
        assert_eq!(
            Vec::<bool>::try_from(hit).unwrap(),
            [true, false, false, false, true]
        );
        assert_eq!(
            Vec::<bool>::try_from(known).unwrap(),
            [true, true, false, false, true]
        );
    }

    #[test]
    fn an_unknown_culprit_costs_minus_log_p_violation() {
        // Two services; rows: culprit 0, quiet, unknown.
        let targets = Tensor::from_slice(&[
            1f32, 0., 0., 0., //
            0., 0., 1., 0., //
            0., 0., 0., 1.,
        ])
        .reshape([3, 4]);
        let one = |i: i64| targets.narrow(0, i, 1);
        let w = Tensor::from_slice(&[1f32]);
        let logits = Tensor::from_slice(&[0.3f32, -1.2, 0.8]).reshape([1, 3]);
        let p: Vec<f32> = Vec::try_from(logits.softmax(-1, Kind::Float).flatten(0, -1)).unwrap();
        let l = |t: &Tensor, o: OutputKind, z: &Tensor| f64::try_from(loss(o, z, t, &w)).unwrap();
        let close = |a: f64, b: f32| assert!((a - f64::from(b)).abs() < 1e-5, "{a} vs {b}");
        close(l(&one(0), OutputKind::Softmax, &logits), -p[0].ln());
        close(l(&one(1), OutputKind::Softmax, &logits), -p[2].ln());
        close(
            l(&one(2), OutputKind::Softmax, &logits),
            -(p[0] + p[1]).ln(),
        );
        // Sigmoids: P(violation) = 1 − (1 − p₀)(1 − p₁), whichever fires.
        let z = Tensor::from_slice(&[0.3f32, -1.2]).reshape([1, 2]);
        let q: Vec<f32> = Vec::try_from(z.sigmoid().flatten(0, -1)).unwrap();
        close(
            l(&one(2), OutputKind::Sigmoid, &z),
            -(1.0 - (1.0 - q[0]) * (1.0 - q[1])).ln(),
        );
        close(
            l(&one(0), OutputKind::Sigmoid, &z),
            -q[0].ln() - (1.0 - q[1]).ln(),
        );
        // Accuracy: an unknown culprit is matched by any service, not by quiet.
        let probs = Tensor::from_slice(&[0.1f32, 0.6, 0.3, 0.1, 0.2, 0.7]).reshape([2, 3]);
        let unknown = targets.narrow(0, 2, 1).repeat([2, 1]);
        let ok: Vec<bool> = Vec::try_from(correct(&probs, &unknown)).unwrap();
        assert_eq!(ok, [true, false]);
    }

    #[test]
    fn violations_without_a_culprit_teach_the_alarm() {
        tch::set_num_threads(1);
        let mut ds = synth_dataset(&SynthConfig {
            n_services: 4,
            n_ticks: 1500,
            ..Default::default()
        });
        // A load peak names no service.
        ds.culprit.iter_mut().for_each(|c| *c = None);
        let alarm_share = |unattributed: bool| {
            let cfg = TrainConfig {
                unattributed,
                ..quick(Arch::Hybrid)
            };
            let t = train(&[&ds], &cfg, None, &mut |_| {}).unwrap();
            let s = t.model.header.series([&ds]).unwrap().remove(0);
            let ends: Vec<usize> = (1200..s.n_ticks)
                .filter(|&e| matches!(s.labels[e], Some(Label::Unattributed)))
                .collect();
            let probs = crate::eval::score_model(&t.model, &s, &ends);
            let alarms = probs.iter().filter(|p| p[p.len() - 1] < 0.5).count();
            (alarms as f64 / ends.len() as f64, ends.len())
        };
        let (any, n) = alarm_share(true);
        let (skip, _) = alarm_share(false);
        assert!(n > 20, "{n} violation ticks");
        assert!(
            any > 0.6 && skip < 0.1,
            "alarmed at {any} (any) vs {skip} (skip)"
        );
    }

    #[test]
    fn quiet_windows_can_be_subsampled_per_epoch() {
        tch::set_num_threads(1);
        let ds = synth_dataset(&SynthConfig {
            n_services: 5,
            n_ticks: 1500,
            ..Default::default()
        });
        let s = queue_series(&ds, 1200, 1).unwrap();
        let sm = Samples::new(
            std::slice::from_ref(&s),
            8,
            1,
            LAST_FIFTH,
            &Weighting::default(),
        );
        let (quiet, events) = sm.split_quiet(&sm.train).unwrap();
        assert_eq!(quiet.len() + events.len(), sm.train.len());
        for &st in &quiet {
            assert_eq!(s.labels[st as usize + 7], Some(Label::Quiet));
        }
        for &st in &events {
            assert!(matches!(
                s.labels[st as usize + 7],
                Some(Label::Culprits(_))
            ));
        }
        assert!(!events.is_empty() && quiet.len() > events.len());
        let cfg = TrainConfig {
            quiet_fraction: 0.3,
            ..quick(Arch::Hybrid)
        };
        let a = train(&[&ds], &cfg, None, &mut |_| {}).unwrap();
        let b = train(&[&ds], &cfg, None, &mut |_| {}).unwrap();
        assert_eq!(a.model.weights().unwrap(), b.model.weights().unwrap());
        let full = train(&[&ds], &quick(Arch::Hybrid), None, &mut |_| {}).unwrap();
        assert_ne!(
            a.model.weights().unwrap(),
            full.model.weights().unwrap(),
            "subsampling changes what is seen"
        );
        // Still learns the culprit: better than always answering "quiet".
        let (vq, _) = sm.split_quiet(&sm.validation).unwrap();
        let share_quiet = vq.len() as f64 / sm.validation.len() as f64;
        let acc = a.model.header.train.validation_accuracy;
        assert!(
            acc > share_quiet + 0.02,
            "accuracy {acc} vs quiet share {share_quiet}"
        );
        let bad = TrainConfig {
            quiet_fraction: 0.0,
            ..quick(Arch::Cnn)
        };
        assert!(matches!(
            train(&[&ds], &bad, None, &mut |_| {}),
            Err(TrainError::Config(_))
        ));
    }

    #[test]
    fn a_target_loss_stops_training_and_a_model_that_meets_it_trains_no_epoch() {
        tch::set_num_threads(1);
        let ds = synth_dataset(&SynthConfig {
            n_services: 4,
            n_ticks: 800,
            ..Default::default()
        });
        let cfg = TrainConfig {
            target_loss: Some(1e9),
            ..quick(Arch::Hybrid)
        };
        let a = train(&[&ds], &cfg, None, &mut |_| {}).unwrap();
        assert_eq!(
            a.epochs.len(),
            1,
            "any loss meets the target after one epoch"
        );
        let start = a.model.weights().unwrap();
        let mut seen = Vec::new();
        let b = train(&[&ds], &cfg, Some(a.model), &mut |e| seen.push(e.epoch)).unwrap();
        assert_eq!(seen, [0], "only the starting evaluation");
        assert!(b.epochs.is_empty());
        assert_eq!(
            b.model.weights().unwrap(),
            start,
            "the starting model is kept"
        );
    }

    #[test]
    fn too_little_data_is_refused() {
        let ds = synth_dataset(&SynthConfig {
            n_services: 2,
            n_ticks: 12,
            ..Default::default()
        });
        let err = train(&[&ds], &quick(Arch::Cnn), None, &mut |_| {}).unwrap_err();
        assert!(matches!(err, TrainError::TooFew { .. }), "{err}");
        assert!(matches!(
            train(&[], &quick(Arch::Cnn), None, &mut |_| {}),
            Err(TrainError::NoData)
        ));
        let bad = TrainConfig {
            val_fraction: 0.95,
            ..quick(Arch::Lstm)
        };
        assert!(matches!(
            train(&[&ds], &bad, None, &mut |_| {}),
            Err(TrainError::Config(_))
        ));
    }
}
