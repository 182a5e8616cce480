//! The trained culprit predictor as the controller's [`Detector`]: a checkpoint
//! written by `seer-predictor train`, run in process on the pure-Rust engine
//! (`seer-infer`, no libtorch), one streaming step per tick.
//!
//! A service's score is its probability of initiating a violation within the
//! model's horizon divided by the alarm probability, so the policy's default
//! threshold of 1 means "the model gives this service at least `alarm`".

use crate::controller::Detector;
use seer_infer::engine::{combine, mean};
use seer_infer::{Engine, QosRatio, Stream, StreamMode};
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
    /// Two models that cannot form a when + who pair.
    #[error("model {who} cannot name the culprits for model {when}: {reason}")]
    Pair {
        /// The model that says when.
        when: String,
        /// The model that was to name the culprit.
        who: String,
        /// Why not.
        reason: String,
    },
    /// A bad alarm probability.
    #[error("alarm probability {0} must be in (0, 1]")]
    Alarm(f32),
}

/// The predictor as a [`Detector`]: one model, or a pair where one model says
/// when a violation comes and the other which service starts it
/// ([`ModelDetector::with_culprit_model`]).
#[derive(Debug)]
pub struct ModelDetector {
    when: Member,
    /// The model that ranks the culprits, when it is not `when`.
    who: Vec<Member>,
    /// `rows[i]` = model index of the caller's service `i`, if the model has it.
    rows: Vec<Option<usize>>,
    alarm: f32,
    name: String,
    /// The last probabilities, model order, last = "no violation".
    last: Vec<f32>,
}

/// One model of a detector, with its stream and buffers.
#[derive(Debug)]
struct Member {
    engine: Engine,
    stream: Stream,
    /// `cols[m]` = index, in the caller's service order, of model service `m`.
    cols: Vec<usize>,
    raw: Vec<f32>,
    norm: Vec<f32>,
    /// The QoS ratio carried from tick to tick.
    qos: QosRatio,
}

impl Member {
    /// `engine` reading the caller's services `services` (by name).
    fn new(engine: Engine, services: &[String]) -> Result<Self, PredictError> {
        let cols = engine
            .header()
            .services
            .iter()
            .map(|name| {
                services.iter().position(|s| s == name).ok_or_else(|| {
                    PredictError::UnknownService {
                        model: engine.id().to_string(),
                        service: name.clone(),
                        available: services.len(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::with_cols(engine, cols))
    }

    fn with_cols(engine: Engine, cols: Vec<usize>) -> Self {
        let h = engine.header();
        let n = h.services.len() * h.channels().len();
        Member {
            stream: engine.stream(StreamMode::Exact),
            cols,
            raw: vec![0.0; n],
            norm: vec![0.0; n],
            qos: QosRatio::default(),
            engine,
        }
    }

    /// One streaming step on the caller's tick: probabilities in model order.
    fn step(&mut self, tick: &[ServiceTick], qos: f32) -> Vec<f32> {
        let qos = self.qos.update(qos);
        let channels = self.engine.header().channels();
        let nc = channels.len();
        for (m, &i) in self.cols.iter().enumerate() {
            for (c, ch) in channels.iter().enumerate() {
                self.raw[m * nc + c] = tick.get(i).map_or(0.0, |t| ch.raw(t, qos));
            }
        }
        self.engine.normalise(&self.raw, &mut self.norm);
        self.engine.step(&mut self.stream, &self.norm)
    }
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
        let when = Member::new(engine, services)?;
        let mut rows = vec![None; services.len()];
        for (m, &i) in when.cols.iter().enumerate() {
            rows[i] = Some(m);
        }
        let h = when.engine.header();
        let name = format!("{} model {}", h.model.arch, when.engine.id());
        Ok(ModelDetector {
            when,
            who: Vec::new(),
            rows,
            alarm,
            name,
            last: Vec::new(),
        })
    }

    /// Lets `engine` name the culprits: this detector's model still decides
    /// whether a violation is coming (its P(no violation)), and the rest is
    /// shared among the services as `engine` ranks them
    /// ([`seer_infer::engine::combine`]). Called again, it adds a model: the
    /// services are ranked by the mean of their probabilities. All run every
    /// tick, and must read the same services, tick and horizon.
    pub fn with_culprit_model(mut self, engine: Engine) -> Result<Self, PredictError> {
        if let Some(reason) = self.when.engine.header().pair_error(engine.header()) {
            return Err(PredictError::Pair {
                when: self.when.engine.id().to_string(),
                who: engine.id().to_string(),
                reason,
            });
        }
        // Same services in the same order: the same columns of the caller's tick.
        let who = Member::with_cols(engine, self.when.cols.clone());
        let arch = who.engine.header().model.arch;
        self.name = if self.who.is_empty() {
            format!(
                "{} + culprits from {arch} model {}",
                self.name,
                who.engine.id()
            )
        } else {
            format!("{} and {arch} model {}", self.name, who.engine.id())
        };
        self.who.push(who);
        Ok(self)
    }

    /// The probabilities of the last tick (model order, last = "no violation").
    pub fn last_probabilities(&self) -> &[f32] {
        &self.last
    }

    /// The engines: the one that says when, then those that name the culprit
    /// when there are others.
    pub fn engines(&self) -> impl Iterator<Item = &Engine> {
        std::iter::once(&self.when.engine).chain(self.who.iter().map(|w| &w.engine))
    }
}

impl Detector for ModelDetector {
    fn observe(&mut self, tick: &[ServiceTick], qos: f32) -> Vec<f32> {
        let when = self.when.step(tick, qos);
        self.last = if self.who.is_empty() {
            when
        } else {
            // The mean of one model is that model's ranking.
            let steps: Vec<Vec<f32>> = self.who.iter_mut().map(|w| w.step(tick, qos)).collect();
            let views: Vec<&[f32]> = steps.iter().map(Vec::as_slice).collect();
            combine(&when, &mean(&views))
        };
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
        let mut biases = vec![0.0; services.len() + 1];
        biases[hot] = bias;
        biased_model(services, &biases)
    }

    /// A hybrid model whose output biases (services, then "no violation") are
    /// `biases` and every other weight 0.
    fn biased_model(services: &[&str], biases: &[f32]) -> Checkpoint {
        let names: Vec<String> = services.iter().map(|s| s.to_string()).collect();
        let header = Header::untrained(
            ModelConfig::new(Arch::Hybrid, names.len(), 1, 5),
            names,
            vec![Channel::Queue],
            "test",
        );
        Checkpoint::with_weights(
            header,
            |name, i| {
                if name == "out.bias" { biases[i] } else { 0.0 }
            },
        )
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
    fn the_qos_ratio_reaches_every_service_and_a_gap_keeps_the_last() {
        let names: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let header = Header::untrained(
            ModelConfig::new(Arch::Hybrid, 2, 2, 5),
            names.clone(),
            vec![Channel::Queue, Channel::Qos],
            "test",
        );
        let ck = Checkpoint::with_weights(header, |_, _| 0.0).unwrap();
        let mut d = ModelDetector::new(Engine::new(ck).unwrap(), &names, 0.5).unwrap();
        let qos_read = |d: &ModelDetector| [d.when.raw[1], d.when.raw[3]];
        d.observe(&ticks(2), f32::NAN);
        assert_eq!(qos_read(&d), [0.0, 0.0], "nothing known yet reads 0");
        d.observe(&ticks(2), 0.7);
        assert_eq!(qos_read(&d), [0.7, 0.7]);
        d.observe(&ticks(2), f32::NAN);
        assert_eq!(
            qos_read(&d),
            [0.7, 0.7],
            "a tick without a ratio keeps the last"
        );
        d.observe(&ticks(2), 1.2);
        assert_eq!(qos_read(&d), [1.2, 1.2]);
        assert_eq!(
            (d.when.raw[0], d.when.raw[2]),
            (0.0, 1.0),
            "queues stay per service"
        );
    }

    #[test]
    fn scores_land_on_the_right_service_whatever_the_order() {
        // Model order a, b, c; the application lists c, x, a, b.
        let ck = constant_model(&["a", "b", "c"], 1, 4.0);
        let app: Vec<String> = ["c", "x", "a", "b"].iter().map(|s| s.to_string()).collect();
        let mut d = ModelDetector::new(Engine::new(ck).unwrap(), &app, 0.5).unwrap();
        let scores = d.observe(&ticks(4), f32::NAN);
        // softmax over [0, 4, 0, 0] (three services + "no violation").
        let p_b = 4f32.exp() / (4f32.exp() + 3.0);
        assert!((scores[3] - p_b / 0.5).abs() < 1e-5, "{scores:?}");
        assert_eq!(scores[1], 0.0, "a service the model does not know scores 0");
        assert!((scores[0] - (1.0 / (4f32.exp() + 3.0)) / 0.5).abs() < 1e-5);
        assert_eq!(d.last_probabilities().len(), 4);
        assert!(d.name().starts_with("hybrid model"));
    }

    /// A model's probabilities after three ticks, as the only detector.
    fn alone(ck: Checkpoint, app: &[String]) -> Vec<f32> {
        let mut d = ModelDetector::new(Engine::new(ck).unwrap(), app, 0.5).unwrap();
        d.observe(&ticks(3), f32::NAN);
        d.last_probabilities().to_vec()
    }

    #[test]
    fn a_pair_alarms_as_one_model_and_blames_as_the_other() {
        // `when` ranks "a" first and expects a violation; `who` ranks "c" first
        // and expects none.
        let when = constant_model(&["a", "b", "c"], 0, 4.0);
        let who = biased_model(&["a", "b", "c"], &[0.0, 0.0, 4.0, 8.0]);
        let app: Vec<String> = ["c", "a", "b"].iter().map(|s| s.to_string()).collect();
        let (p_when, p_who) = (alone(when.clone(), &app), alone(who.clone(), &app));
        let mut d = ModelDetector::new(Engine::new(when).unwrap(), &app, 0.5)
            .unwrap()
            .with_culprit_model(Engine::new(who).unwrap())
            .unwrap();
        let scores = d.observe(&ticks(3), f32::NAN);
        let p = d.last_probabilities();
        // P(no violation) is `when`'s, the culprit ranking `who`'s.
        assert!((p[3] - p_when[3]).abs() < 1e-6, "{p:?} vs {p_when:?}");
        let share = p_who[2] / (p_who[0] + p_who[1] + p_who[2]);
        assert!((p[2] - (1.0 - p_when[3]) * share).abs() < 1e-5, "{p:?}");
        assert!(p[2] > p[0] && p[2] > p[1], "{p:?}");
        // Scores come back in the caller's order: c first.
        assert!((scores[0] - p[2] / 0.5).abs() < 1e-5, "{scores:?}");
        assert!(
            d.name().contains("culprits from hybrid model"),
            "{}",
            d.name()
        );
        assert_eq!(d.engines().count(), 2);
    }

    #[test]
    fn several_culprit_models_blame_by_their_mean() {
        // Two culprit models that disagree: one ranks "b" first, the other "c",
        // the second more sharply; their mean ranks "c" first.
        let when = constant_model(&["a", "b", "c"], 0, 4.0);
        let b_first = biased_model(&["a", "b", "c"], &[0.0, 2.0, 0.0, 0.0]);
        let c_first = biased_model(&["a", "b", "c"], &[0.0, 0.0, 4.0, 0.0]);
        let app: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let (p_when, p_b, p_c) = (
            alone(when.clone(), &app),
            alone(b_first.clone(), &app),
            alone(c_first.clone(), &app),
        );
        let mut d = ModelDetector::new(Engine::new(when).unwrap(), &app, 0.5)
            .unwrap()
            .with_culprit_model(Engine::new(b_first).unwrap())
            .unwrap()
            .with_culprit_model(Engine::new(c_first).unwrap())
            .unwrap();
        d.observe(&ticks(3), f32::NAN);
        let p = d.last_probabilities();
        let want = combine(&p_when, &mean(&[&p_b, &p_c]));
        for (got, want) in p.iter().zip(&want) {
            assert!((got - want).abs() < 1e-6, "{p:?} vs {want:?}");
        }
        assert!(p[2] > p[1] && p[1] > p[0], "{p:?}");
        assert_eq!(d.engines().count(), 3);
        assert!(d.name().contains(" and hybrid model"), "{}", d.name());
    }

    #[test]
    fn models_that_cannot_pair_are_refused() {
        let app: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let d = || {
            let ck = constant_model(&["a", "b", "c"], 0, 1.0);
            ModelDetector::new(Engine::new(ck).unwrap(), &app, 0.5).unwrap()
        };
        let other_order = constant_model(&["b", "a", "c"], 0, 1.0);
        let err = d()
            .with_culprit_model(Engine::new(other_order).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("same services in the same order"), "{err}");
        let mut longer = constant_model(&["a", "b", "c"], 0, 1.0);
        longer.header.horizon_ns = 1_000_000_000;
        let err = d()
            .with_culprit_model(Engine::new(longer).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("100 ms / 100 ms and 100 ms / 1000 ms"),
            "{err}"
        );
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
