//! The culprit predictor: from the last few seconds of per-service queue depths,
//! which service will initiate an end-to-end QoS violation within the horizon.
//!
//! - [`features`]: channels, normalisation, per-tick labels, windows;
//! - [`model`]: the `hybrid` (CNN → LSTM), `cnn` and `lstm` networks on tch, with
//!   per-tick streaming inference;
//! - [`checkpoint`]: trained models and their versioned, checksummed files;
//! - [`train`]: training with a validation split by time and early stopping;
//! - [`retrain`]: carrying a model over to a new service list, by name;
//! - [`eval`], [`baselines`], [`plot`]: metrics, rule and linfa baselines, reports;
//! - [`crossval`]: leave-faults-out cross-validation on fault-labelled data;
//! - [`serve`]: the gRPC `seer.v1.Predictor` service; [`bench`]: inference timing;
//! - [`synth`]: synthetic labelled datasets for tests and demos.
//!
//! [`features`], [`synth`], the model description and the checkpoint format live
//! in `seer-infer` (no libtorch), with a pure-Rust inference engine.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub use seer_infer::{features, synth};

pub mod baselines;
pub mod bench;
pub mod checkpoint;
pub mod crossval;
pub mod eval;
pub mod model;
pub mod plot;
pub mod retrain;
pub mod serve;
pub mod train;

pub use checkpoint::{CheckpointError, Header, Model};
pub use features::{Channel, FeatureError, Label, Normalizer, Series};
pub use model::{Arch, ModelConfig, ModelError, OutputKind};
pub use train::{TrainConfig, TrainError};
