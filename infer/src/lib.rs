//! What the culprit predictor's model is, without libtorch: the model description
//! ([`config`]), features and normalisation ([`features`]), the checkpoint file
//! ([`checkpoint`]) and a pure-Rust inference engine ([`engine`]) that runs a
//! trained checkpoint. Training lives in `seer-predictor` (tch); everything that
//! only predicts — the controller, the gRPC service — can use this crate alone.
//!
//! [`synth`] makes small labelled datasets for tests and demos.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod features;
pub mod synth;

pub use checkpoint::{Checkpoint, CheckpointError, Header};
pub use config::{Arch, ConfigError, ModelConfig, OutputKind};
pub use engine::{Engine, Stream, StreamMode};
pub use features::{Channel, FeatureError, Label, Normalizer, QosRatio, Series};
