//! The trained culprit predictor as the controller's [`Detector`]: a checkpoint
//! written by `seer-predictor train`, run in process on the pure-Rust engine
//! (`seer-infer`, no libtorch), one streaming step per tick.
//!
//! A service's score is its probability of initiating a violation within the
//! model's horizon divided by the alarm probability, so the policy's default
//! threshold of 1 means "the model gives this service at least `alarm`".

use crate::controller::Detector;
use seer_infer::{Engine, Stream, StreamMode};
use seer_traces::ServiceTick;
use std::path::Path;

/// Errors preparing a model for the controller.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The checkpoint could not be read or is not valid.
    #[error(transparent)]
    Checkpoint(#[from] seer_infer::CheckpointError),
    /// The model names a service the application does not have.
    #[error(
        "model {model} was trained on service {service:?}, which this application does not have \
         (it has {available} services); retrain it on this application's data"
    )]
    UnknownService {
        /// Model id.
        model: String,
        /// The missing service.
        service: String,
        /// Services the application has.
        available: usize,
    },
    /// A bad alarm probability.
    #[error("alarm probability {0} must be in (0, 1]")]
    Alarm(f32),
}

/// The predictor as a [`Detector`].
#[derive(Debug)]
pub struct ModelDetector {
    engine: Engine,
    stream: Stream,
    /// `cols[m]` = index, in the caller's service order, of model service `m`.
    cols: Vec<usize>,
    /// `rows[i]` = model index of the caller's service `i`, if the model has it.
    rows: Vec<Option<usize>>,
    alarm: f32,
    raw: Vec<f32>,
    norm: Vec<f32>,
    name: String,
    /// The last probabilities, model order, last = "no violation".
    last: Vec<f32>,
}

impl ModelDetector {
    /// Loads a checkpoint for an application whose services, in the order the
    /// controller will pass ticks, are `services`. Services the model does not
    /// know score 0; a model service the application lacks is an error.
    pub fn load(path: &Path, services: &[String], alarm: f32) -> Result<Self, PredictError> {
        Self::new(Engine::load(path)?, services, alarm)
    }

    /// As [`ModelDetector::load`], from a built engine.
    pub fn new(engine: Engine, services: &[String], alarm: f32) -> Result<Self, PredictError> {
        if !(alarm > 0.0 && alarm <= 1.0) {
            return Err(PredictError::Alarm(alarm));
        }
        let h = engine.header();
        let mut rows = vec![None; services.len()];
        let mut cols = Vec::with_capacity(h.services.len());
        for (m, name) in h.services.iter().enumerate() {
            let i = services.iter().position(|s| s == name).ok_or_else(|| {
                PredictError::UnknownService {
                    model: engine.id().to_string(),
                    service: name.clone(),
                    available: services.len(),
                }
            })?;
            rows[i] = Some(m);
            cols.push(i);
        }
        let n = h.services.len() * h.channels().len();
        let name = format!("{} model {}", h.model.arch, engine.id());
        Ok(ModelDetector {
            stream: engine.stream(StreamMode::Exact),
            cols,
            rows,
            alarm,
            raw: vec![0.0; n],
            norm: vec![0.0; n],
            name,
            last: Vec::new(),
            engine,
        })
    }

    /// The probabilities of the last tick (model order, last = "no violation").
    pub fn last_probabilities(&self) -> &[f32] {
        &self.last
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Detector for ModelDetector {
    fn observe(&mut self, tick: &[ServiceTick]) -> Vec<f32> {
        let channels = self.engine.header().channels();
        let nc = channels.len();
        for (m, &i) in self.cols.iter().enumerate() {
            for (c, ch) in channels.iter().enumerate() {
                self.raw[m * nc + c] = tick.get(i).map_or(0.0, |t| ch.raw(t));
            }
        }
        self.engine.normalise(&self.raw, &mut self.norm);
        self.last = self.engine.step(&mut self.stream, &self.norm);
        self.rows
            .iter()
            .map(|r| r.map_or(0.0, |m| self.last[m] / self.alarm))
            .collect()
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use seer_infer::checkpoint::{Checkpoint, Header, encode};
    use seer_infer::{Arch, Channel, ModelConfig};

    /// A hybrid model whose only non-zero weights are the output biases: it
    /// gives model service `hot` the probability `p_hot` whatever it sees.
    fn constant_model(services: &[&str], hot: usize, bias: f32) -> Checkpoint {
        let names: Vec<String> = services.iter().map(|s| s.to_string()).collect();
        let header = Header::untrained(
            ModelConfig::new(Arch::Hybrid, names.len(), 1, 5),
            names,
            vec![Channel::Queue],
            "test",
        );
        Checkpoint::with_weights(header, |name, i| {
            if name == "out.bias" && i == hot {
                bias
            } else {
                0.0
            }
        })
        .unwrap()
    }

    fn ticks(n: usize) -> Vec<ServiceTick> {
        (0..n)
            .map(|i| ServiceTick {
                queue_mean: i as f32,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn scores_land_on_the_right_service_whatever_the_order() {
        // Model order a, b, c; the application lists c, x, a, b.
        let ck = constant_model(&["a", "b", "c"], 1, 4.0);
        let app: Vec<String> = ["c", "x", "a", "b"].iter().map(|s| s.to_string()).collect();
        let mut d = ModelDetector::new(Engine::new(ck).unwrap(), &app, 0.5).unwrap();
        let scores = d.observe(&ticks(4));
        // softmax over [0, 4, 0, 0] (three services + "no violation").
        let p_b = 4f32.exp() / (4f32.exp() + 3.0);
        assert!((scores[3] - p_b / 0.5).abs() < 1e-5, "{scores:?}");
        assert_eq!(scores[1], 0.0, "a service the model does not know scores 0");
        assert!((scores[0] - (1.0 / (4f32.exp() + 3.0)) / 0.5).abs() < 1e-5);
        assert_eq!(d.last_probabilities().len(), 4);
        assert!(d.name().starts_with("hybrid model"));
    }

    #[test]
    fn a_model_service_the_application_lacks_is_named() {
        let ck = constant_model(&["a", "b"], 0, 1.0);
        let app = vec!["a".to_string()];
        let err = ModelDetector::new(Engine::new(ck.clone()).unwrap(), &app, 0.5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"b\"") && err.contains("1 services"), "{err}");
        let err = ModelDetector::new(Engine::new(ck).unwrap(), &["a".into(), "b".into()], 0.0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("alarm"), "{err}");
    }

    #[test]
    fn corrupt_or_missing_checkpoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.seer");
        let err = ModelDetector::load(&path, &[], 0.5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("failed to read"), "{err}");
        let ck = constant_model(&["a"], 0, 1.0);
        let mut bytes = encode(&ck.header, &ck.weights).unwrap();
        let last = bytes.len() - 10;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let err = ModelDetector::load(&path, &["a".into()], 0.5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("corrupt"), "{err}");
    }
}
