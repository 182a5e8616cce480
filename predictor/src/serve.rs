//! The gRPC `seer.v1.Predictor` service and the standard gRPC health service.
//!
//! One model is served at a time behind an `RwLock<Arc<_>>`; `Retrain` trains a
//! new one on a background thread while the current one keeps answering, and
//! swaps it in only when it beats the current one on the new data's validation
//! split. Open streams notice the swap at their next tick and rebuild their
//! state from the raw ticks they keep, so no stream is dropped.
//!
//! Requests are checked before any inference ([`window_from_request`]); bad ones
//! get `INVALID_ARGUMENT` naming what is wrong.
//!
//! Inference runs on the pure-Rust engine ([`seer_infer::Engine`], the served
//! model's weights, equal to tch's output to float rounding): it needs no lock, so
//! concurrent requests do not queue behind each other, and it is several times
//! faster than libtorch at batch 1. The tch model is kept for retraining.

use crate::checkpoint::{Header, Model};
use crate::features::{Channel, Normalizer, QosRatio};
use crate::model::{ModelError, StreamMode};
use crate::retrain;
use crate::train::{Samples, TrainConfig, Weighting, evaluate, train};
use seer_proto::v1::predictor_server::{Predictor, PredictorServer};
use seer_proto::v1::retrain_progress::State;
use seer_proto::v1::{
    ModelInfoRequest, ModelInfoResponse, PredictRequest, Prediction, RetrainProgress,
    RetrainRequest, ServiceScore, StreamTick, TickFeatures,
};
use seer_traces::Dataset;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The model could not be prepared for serving.
    #[error("cannot serve the model: {0}")]
    Model(#[from] ModelError),
    /// Binding or serving failed.
    #[error("gRPC server on {addr} failed: {source}")]
    Transport {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: tonic::transport::Error,
    },
}

/// A loaded model and what requests need to know about it.
struct Served {
    model: Mutex<Model>,
    engine: seer_infer::Engine,
    /// Where the tch model (retraining) lives; inference is on the CPU engine.
    device: tch::Device,
    header: Header,
    id: String,
    parameters: usize,
    /// Service name → model index.
    index: HashMap<String, usize>,
}

impl Served {
    fn new(model: Model) -> Result<Served, ModelError> {
        let header = model.header.clone();
        let index = header
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i))
            .collect();
        Ok(Served {
            id: model.id.clone(),
            parameters: model.n_parameters(),
            engine: model.to_engine()?,
            device: model.vs.device(),
            header,
            index,
            model: Mutex::new(model),
        })
    }
}

struct Shared {
    current: RwLock<Arc<Served>>,
    mode: StreamMode,
    retraining: AtomicBool,
}

impl Shared {
    fn current(&self) -> Arc<Served> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The `Predictor` service.
#[derive(Clone)]
pub struct PredictorService {
    shared: Arc<Shared>,
}

impl PredictorService {
    /// Serves `model`; streams use `mode`.
    pub fn new(model: Model, mode: StreamMode) -> Result<PredictorService, ModelError> {
        Ok(PredictorService {
            shared: Arc::new(Shared {
                current: RwLock::new(Arc::new(Served::new(model)?)),
                mode,
                retraining: AtomicBool::new(false),
            }),
        })
    }

    /// The id of the model being served.
    pub fn model_id(&self) -> String {
        self.shared.current().id.clone()
    }
}

/// Maps request columns to model services: `col[j]` = model index of column `j`.
pub fn columns(
    index: &HashMap<String, usize>,
    services: &[String],
    n: usize,
) -> Result<Vec<usize>, String> {
    if services.is_empty() {
        return Ok((0..n).collect());
    }
    if services.len() != n {
        return Err(format!(
            "{} services given, the model has {n}",
            services.len()
        ));
    }
    let mut seen = vec![false; n];
    let mut out = Vec::with_capacity(n);
    for s in services {
        let &i = index
            .get(s)
            .ok_or_else(|| format!("unknown service {s:?}"))?;
        if std::mem::replace(&mut seen[i], true) {
            return Err(format!("service {s:?} given twice"));
        }
        out.push(i);
    }
    Ok(out)
}

/// One tick of a request as raw values in model order, `[service][channel]`.
/// `qos` carries the QoS ratio from tick to tick: a tick whose ratio is NaN (no
/// entry point has a windowed p99) keeps the last one, as in the datasets.
pub fn raw_tick(
    norm: &Normalizer,
    cols: &[usize],
    tick: &TickFeatures,
    which: usize,
    qos: &mut QosRatio,
) -> Result<Vec<f32>, String> {
    let (ns, nc) = (cols.len(), norm.channels.len());
    let mut raw = vec![0f32; ns * nc];
    for (c, ch) in norm.channels.iter().enumerate() {
        let values = match ch {
            Channel::Qos => {
                let v = match tick.qos {
                    None => return Err(format!("tick {which}: the model reads qos, none given")),
                    Some(v) if v.is_nan() || (v.is_finite() && v >= 0.0) => qos.update(v),
                    Some(v) => return Err(format!("tick {which}: qos is {v}")),
                };
                for &j in cols {
                    raw[j * nc + c] = v;
                }
                continue;
            }
            Channel::Queue => &tick.queue,
            Channel::P99Ms => &tick.p99_ms,
            Channel::Arrivals => &tick.arrivals,
            Channel::Wait => &tick.wait,
            Channel::Active => &tick.active,
            Channel::Cpu => &tick.cpu,
            Channel::Errors => &tick.errors,
            Channel::Hop => &tick.hop,
        };
        if values.len() != ns {
            return Err(format!(
                "tick {which}: {} has {} values, expected one per service ({ns})",
                ch.name(),
                values.len()
            ));
        }
        for (j, &v) in values.iter().enumerate() {
            let nan_ok = *ch == Channel::P99Ms && v.is_nan();
            if !nan_ok && (!v.is_finite() || v < 0.0) {
                return Err(format!(
                    "tick {which}: {} of service {} is {v}",
                    ch.name(),
                    norm.services[cols[j]]
                ));
            }
            raw[cols[j] * nc + c] = v;
        }
    }
    Ok(raw)
}

/// Validates a `Predict` request and returns the normalised window
/// `[window, services, channels]` in model order.
pub fn window_from_request(
    header: &Header,
    index: &HashMap<String, usize>,
    req: &PredictRequest,
) -> Result<Vec<f32>, String> {
    let (w, ns) = (header.model.window, header.services.len());
    if req.ticks.len() != w {
        return Err(format!(
            "{} ticks given, the model's window is {w}",
            req.ticks.len()
        ));
    }
    let cols = columns(index, &req.services, ns)?;
    let nc = header.normalizer.channels.len();
    let mut out = vec![0f32; w * ns * nc];
    let mut qos = QosRatio::default();
    for (t, tick) in req.ticks.iter().enumerate() {
        let raw = raw_tick(&header.normalizer, &cols, tick, t, &mut qos)?;
        header
            .normalizer
            .apply_row(&raw, &mut out[t * ns * nc..(t + 1) * ns * nc]);
    }
    Ok(out)
}

fn prediction(served: &Served, p: &[f32], warm: bool, seen: u64) -> Prediction {
    let ns = served.header.services.len();
    let scores: Vec<ServiceScore> = served
        .header
        .services
        .iter()
        .zip(p)
        .map(|(s, &v)| ServiceScore {
            service: s.clone(),
            probability: v,
        })
        .collect();
    let none = p.get(ns).copied().unwrap_or(0.0);
    let (best, pb) = (0..ns)
        .map(|i| (i, p[i]))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0));
    Prediction {
        scores,
        no_violation: none,
        culprit: if pb > none {
            served.header.services[best].clone()
        } else {
            String::new()
        },
        warm,
        ticks_seen: seen,
        model_id: served.id.clone(),
    }
}

fn lock(m: &Mutex<Model>) -> std::sync::MutexGuard<'_, Model> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Per-stream state: the model it was built for, the raw ticks (model order)
/// of the last window, and the network's streaming state.
struct StreamCtx {
    served: Arc<Served>,
    names: Vec<String>,
    cols: Vec<usize>,
    raw: VecDeque<Vec<f32>>,
    state: seer_infer::Stream,
    /// The QoS ratio carried from tick to tick.
    qos: QosRatio,
}

impl StreamCtx {
    fn new(served: Arc<Served>, names: Vec<String>, mode: StreamMode) -> Result<StreamCtx, Status> {
        let cols = columns(&served.index, &names, served.header.services.len())
            .map_err(Status::invalid_argument)?;
        let state = served.engine.stream(mode);
        Ok(StreamCtx {
            served,
            names,
            cols,
            raw: VecDeque::new(),
            state,
            qos: QosRatio::default(),
        })
    }

    fn feed(&mut self, raw: &[f32]) -> Result<Vec<f32>, Status> {
        let h = &self.served.header;
        let mut norm = vec![0f32; raw.len()];
        h.normalizer.apply_row(raw, &mut norm);
        Ok(self.served.engine.step(&mut self.state, &norm))
    }

    /// Moves to a newly served model, replaying the kept raw ticks.
    fn switch(&mut self, served: Arc<Served>, mode: StreamMode) -> Result<(), Status> {
        let old_services = self.served.header.services.clone();
        let mut next = StreamCtx::new(served, self.names.clone(), mode).map_err(|e| {
            Status::failed_precondition(format!(
                "the served model changed and no longer fits this stream: {}",
                e.message()
            ))
        })?;
        if next.served.header.normalizer.channels != self.served.header.normalizer.channels {
            return Err(Status::failed_precondition(
                "the served model changed its input channels; reopen the stream",
            ));
        }
        // Raw ticks are in the old model's order: re-order by name.
        let nc = next.served.header.normalizer.channels.len();
        for r in &self.raw {
            let mut v = vec![0f32; r.len()];
            for (i, name) in old_services.iter().enumerate() {
                let j = next.served.index[name];
                v[j * nc..(j + 1) * nc].copy_from_slice(&r[i * nc..(i + 1) * nc]);
            }
            next.feed(&v)?;
            next.raw.push_back(v);
        }
        next.qos = self.qos;
        *self = next;
        Ok(())
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Predictor for PredictorService {
    async fn predict(&self, req: Request<PredictRequest>) -> Result<Response<Prediction>, Status> {
        let served = self.shared.current();
        let h = &served.header;
        let x = window_from_request(h, &served.index, req.get_ref())
            .map_err(Status::invalid_argument)?;
        let p = served.engine.predict(&x);
        Ok(Response::new(prediction(
            &served,
            &p,
            true,
            h.model.window as u64,
        )))
    }

    type StreamPredictStream = BoxStream<Prediction>;

    async fn stream_predict(
        &self,
        req: Request<Streaming<StreamTick>>,
    ) -> Result<Response<Self::StreamPredictStream>, Status> {
        let mut input = req.into_inner();
        let shared = self.shared.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut ctx: Option<StreamCtx> = None;
            let mut seen = 0u64;
            while let Some(msg) = input.next().await {
                let result = (|| -> Result<Prediction, Status> {
                    let msg = msg?;
                    let current = shared.current();
                    if ctx.is_none() {
                        ctx = Some(StreamCtx::new(
                            current.clone(),
                            msg.services.clone(),
                            shared.mode,
                        )?);
                    }
                    let c = ctx
                        .as_mut()
                        .ok_or_else(|| Status::internal("no stream state"))?;
                    if !msg.services.is_empty() && msg.services != c.names {
                        return Err(Status::invalid_argument(
                            "services changed within the stream",
                        ));
                    }
                    if current.id != c.served.id {
                        c.switch(current, shared.mode)?;
                    }
                    let tick = msg.tick.ok_or_else(|| {
                        Status::invalid_argument(format!("tick {seen}: no features"))
                    })?;
                    let raw = raw_tick(
                        &c.served.header.normalizer,
                        &c.cols,
                        &tick,
                        seen as usize,
                        &mut c.qos,
                    )
                    .map_err(Status::invalid_argument)?;
                    let p = c.feed(&raw)?;
                    let w = c.served.header.model.window;
                    c.raw.push_back(raw);
                    if c.raw.len() > w {
                        c.raw.pop_front();
                    }
                    seen += 1;
                    Ok(prediction(&c.served, &p, seen >= w as u64, seen))
                })();
                let stop = result.is_err();
                if tx.send(result).await.is_err() || stop {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn model_info(
        &self,
        _req: Request<ModelInfoRequest>,
    ) -> Result<Response<ModelInfoResponse>, Status> {
        let s = self.shared.current();
        let h = &s.header;
        Ok(Response::new(ModelInfoResponse {
            model_id: s.id.clone(),
            architecture: h.model.arch.to_string(),
            services: h.services.clone(),
            window: h.model.window as u32,
            interval_ms: h.interval_ns as f64 / 1e6,
            horizon_ms: h.horizon_ns as f64 / 1e6,
            channels: h.channels().iter().map(|c| c.name().to_string()).collect(),
            output: h.model.output.name().into(),
            parameters: s.parameters as u64,
            format_version: crate::checkpoint::FORMAT_VERSION,
            data_digest: h.data_digest.clone(),
            validation_accuracy: h.train.validation_accuracy,
            device: format!(
                "cpu (Rust engine); retraining on {}",
                format!("{:?}", s.device).to_lowercase()
            ),
        }))
    }

    type RetrainStream = BoxStream<RetrainProgress>;

    async fn retrain(
        &self,
        req: Request<RetrainRequest>,
    ) -> Result<Response<Self::RetrainStream>, Status> {
        let req = req.into_inner();
        if req.datasets.is_empty() {
            return Err(Status::invalid_argument("no datasets given"));
        }
        if self.shared.retraining.swap(true, Ordering::SeqCst) {
            return Err(Status::failed_precondition("a retrain is already running"));
        }
        let shared = self.shared.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        std::thread::spawn(move || {
            let send = |p: RetrainProgress| {
                let _ = tx.blocking_send(Ok(p));
            };
            let result = retrain_job(&shared, &req, &send);
            let last = match result {
                Ok(p) => p,
                Err(message) => RetrainProgress {
                    state: State::Failed as i32,
                    message,
                    ..Default::default()
                },
            };
            send(last);
            shared.retraining.store(false, Ordering::SeqCst);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Default epochs of a retrain: fewer when fine-tuning.
const RETRAIN_EPOCHS: (u32, u32) = (5, 30);

fn retrain_job(
    shared: &Shared,
    req: &RetrainRequest,
    send: &dyn Fn(RetrainProgress),
) -> Result<RetrainProgress, String> {
    send(RetrainProgress {
        state: State::Loading as i32,
        message: format!("reading {} datasets", req.datasets.len()),
        ..Default::default()
    });
    let data: Vec<Dataset> = req
        .datasets
        .iter()
        .map(|p| Dataset::read_parquet(&PathBuf::from(p)).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&Dataset> = data.iter().collect();
    let served = shared.current();
    let h = &served.header;
    let max_epochs = if req.max_epochs > 0 {
        req.max_epochs
    } else if req.incremental {
        RETRAIN_EPOCHS.0
    } else {
        RETRAIN_EPOCHS.1
    };
    let cfg = TrainConfig {
        arch: h.model.arch,
        output: h.model.output,
        head_ticks: h.model.head_ticks,
        head_hidden: h.model.head_hidden,
        shared_culprit: h.model.shared_culprit,
        window: h.model.window,
        channels: h.normalizer.channels.clone(),
        horizon_ns: h.horizon_ns,
        epochs: max_epochs as usize,
        learning_rate: if req.incremental { 1e-3 } else { 2e-3 },
        device: served.device,
        seed: h.train.seed,
        ..Default::default()
    };
    let start = if req.incremental {
        let masks = cfg.split(h.interval_ns).training_masks(&refs);
        let m = lock(&served.model);
        Some(
            retrain::remap(&m, &refs[0].meta.services, &refs, &masks, cfg.device)
                .map_err(|e| e.to_string())?
                .0,
        )
    } else {
        None
    };
    let trained = train(&refs, &cfg, start, &mut |e| {
        send(RetrainProgress {
            state: State::Training as i32,
            epoch: e.epoch as u32,
            max_epochs,
            train_loss: e.train_loss,
            validation_loss: e.validation_loss,
            validation_accuracy: e.validation_accuracy,
            ..Default::default()
        })
    })
    .map_err(|e| e.to_string())?;
    let new_acc = trained.model.header.train.validation_accuracy;
    let new_loss = trained.model.header.train.validation_loss;
    // The served model on the same validation windows (infinitely bad when it
    // cannot read them, e.g. after services changed).
    let (served_loss, served_acc) = {
        let m = lock(&served.model);
        let hz = h.horizon_ticks();
        let series = h.series(refs.iter().copied());
        match series {
            Ok(series) => {
                let s = Samples::new(
                    &series,
                    h.model.window,
                    hz,
                    cfg.split(h.interval_ns),
                    &Weighting {
                        train_fraction: 1.0,
                        ..cfg.weighting()
                    },
                );
                evaluate(&m, &s, &s.validation, cfg.batch_size)
                    .map_or((f64::INFINITY, 0.0), |f| (f.loss, f.accuracy))
            }
            Err(_) => (f64::INFINITY, 0.0),
        }
    };
    // Better = lower validation loss (the early-stopping criterion); accuracy
    // alone ties too often on quiet-dominated data.
    let swapped = new_loss < served_loss;
    let id = trained.model.id.clone();
    if swapped {
        let next = Served::new(trained.model).map_err(|e| e.to_string())?;
        *shared.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }
    Ok(RetrainProgress {
        state: State::Done as i32,
        epoch: trained.epochs.len() as u32,
        max_epochs,
        validation_accuracy: new_acc,
        validation_loss: new_loss,
        served_accuracy: served_acc,
        swapped,
        model_id: id,
        message: if swapped {
            format!("new model is now served (validation loss {new_loss:.4} < {served_loss:.4})")
        } else {
            format!(
                "kept the served model: validation loss {new_loss:.4} is not below {served_loss:.4}"
            )
        },
        ..Default::default()
    })
}

/// Serves `model` on `addr` until `shutdown` completes.
pub async fn serve(
    model: Model,
    addr: SocketAddr,
    mode: StreamMode,
    shutdown: impl Future<Output = std::io::Result<()>>,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<PredictorServer<PredictorService>>()
        .await;
    let svc = PredictorService::new(model, mode)?;
    tracing::info!(%addr, model = %svc.model_id(), "serving seer.v1.Predictor");
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(health)
        .add_service(PredictorServer::new(svc))
        .serve_with_shutdown(addr, async {
            let _ = shutdown.await;
        })
        .await
        .map_err(|source| ServeError::Transport { addr, source })
}

/// Serves on an already bound listener (tests and benchmarks use port 0).
pub async fn serve_listener(
    model: Model,
    listener: tokio::net::TcpListener,
    mode: StreamMode,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<PredictorServer<PredictorService>>()
        .await;
    let svc = PredictorService::new(model, mode)?;
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(PredictorServer::new(svc))
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a unary reply waits for the peer's delayed ACK
            // (about 40 ms on Linux).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|source| ServeError::Transport { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> (Header, HashMap<String, usize>) {
        let m = crate::bench::untrained(
            crate::model::Arch::Hybrid,
            3,
            2,
            crate::model::OutputKind::Softmax,
        )
        .unwrap();
        let h = m.header.clone();
        let idx = h
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i))
            .collect();
        (h, idx)
    }

    /// The test header, reading `channels` with identity normalisation.
    fn header_reading(channels: Vec<Channel>) -> (Header, HashMap<String, usize>) {
        let (mut h, idx) = header();
        let n = &mut h.normalizer;
        let values = channels.len() * 3;
        n.channels = channels;
        n.mean = vec![0.0; values];
        n.std = vec![1.0; values];
        (h, idx)
    }

    fn tick(q: &[f32]) -> TickFeatures {
        TickFeatures {
            queue: q.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn requests_are_mapped_by_name() {
        let (h, idx) = header();
        let req = PredictRequest {
            services: vec!["svc-2".into(), "svc-0".into(), "svc-1".into()],
            ticks: vec![tick(&[2.0, 0.0, 1.0]), tick(&[5.0, 3.0, 4.0])],
        };
        let w = window_from_request(&h, &idx, &req).unwrap();
        // Normaliser is identity on ln(1 + x).
        let want: Vec<f32> = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]
            .iter()
            .map(|v| v.ln_1p())
            .collect();
        assert_eq!(w, want);
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let (h, idx) = header();
        let ok = || PredictRequest {
            services: vec![],
            ticks: vec![tick(&[1.0, 1.0, 1.0]); 2],
        };
        let cases: Vec<(PredictRequest, &str)> = vec![
            (
                PredictRequest {
                    ticks: vec![tick(&[1.0, 1.0, 1.0])],
                    ..ok()
                },
                "1 ticks given",
            ),
            (
                PredictRequest {
                    services: vec!["svc-0".into(), "svc-1".into()],
                    ..ok()
                },
                "2 services given",
            ),
            (
                PredictRequest {
                    services: vec!["svc-0".into(), "svc-1".into(), "db".into()],
                    ..ok()
                },
                "unknown service \"db\"",
            ),
            (
                PredictRequest {
                    services: vec!["svc-0".into(), "svc-1".into(), "svc-1".into()],
                    ..ok()
                },
                "given twice",
            ),
            (
                PredictRequest {
                    ticks: vec![tick(&[1.0, 1.0, 1.0]), tick(&[1.0, f32::NAN, 1.0])],
                    ..ok()
                },
                "queue of service svc-1 is NaN",
            ),
            (
                PredictRequest {
                    ticks: vec![tick(&[1.0, 1.0, 1.0]), tick(&[1.0, 1.0])],
                    ..ok()
                },
                "tick 1: queue has 2 values",
            ),
            (
                PredictRequest {
                    ticks: vec![tick(&[-1.0, 1.0, 1.0]), tick(&[1.0, 1.0, 1.0])],
                    ..ok()
                },
                "is -1",
            ),
        ];
        for (req, want) in cases {
            let err = window_from_request(&h, &idx, &req).unwrap_err();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
        assert!(window_from_request(&h, &idx, &ok()).is_ok());
    }

    #[test]
    fn the_qos_ratio_is_one_value_per_tick_and_a_gap_keeps_the_last() {
        let (h, idx) = header_reading(vec![Channel::Queue, Channel::Qos]);
        let with = |q: Option<f32>| TickFeatures {
            qos: q,
            ..tick(&[1.0, 2.0, 3.0])
        };
        let req = |a, b| PredictRequest {
            services: vec![],
            ticks: vec![with(a), with(b)],
        };
        let w = window_from_request(&h, &idx, &req(Some(0.8), Some(f32::NAN))).unwrap();
        // Both ticks, every service: queue, then ln(1 + 0.8) (the NaN keeps 0.8).
        for t in 0..2 {
            for s in 0..3 {
                let at = (t * 3 + s) * 2;
                assert_eq!(w[at], (s as f32 + 1.0).ln_1p());
                assert!((w[at + 1] - 0.8f32.ln_1p()).abs() < 1e-6, "{w:?}");
            }
        }
        let w = window_from_request(&h, &idx, &req(Some(f32::NAN), Some(1.5))).unwrap();
        assert_eq!(
            (w[1], w[7]),
            (0.0, 1.5f32.ln_1p()),
            "nothing known yet reads 0"
        );
        for (a, b, want) in [
            (Some(1.0), None, "tick 1: the model reads qos, none given"),
            (Some(-1.0), Some(1.0), "tick 0: qos is -1"),
            (Some(1.0), Some(f32::INFINITY), "tick 1: qos is inf"),
        ] {
            let err = window_from_request(&h, &idx, &req(a, b)).unwrap_err();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn errors_and_hops_are_read_per_service_and_checked() {
        for ch in [Channel::Errors, Channel::Hop] {
            let (mut h, idx) = header();
            let n = &mut h.normalizer;
            n.channels = vec![Channel::Queue, ch];
            n.mean = vec![0.0; 6];
            n.std = vec![1.0; 6];
            let with = |e: &[f32]| {
                let mut t = tick(&[1.0, 2.0, 3.0]);
                match ch {
                    Channel::Errors => t.errors = e.to_vec(),
                    _ => t.hop = e.to_vec(),
                }
                t
            };
            let req = |e: &[f32]| PredictRequest {
                services: vec!["svc-2".into(), "svc-0".into(), "svc-1".into()],
                ticks: vec![with(e), with(e)],
            };
            let w = window_from_request(&h, &idx, &req(&[4.0, 0.0, 1.0])).unwrap();
            // Model order svc-0, svc-1, svc-2: values 0, 1, 4.
            assert_eq!([w[1], w[3], w[5]], [0.0, 1f32.ln_1p(), 4f32.ln_1p()]);
            let name = ch.name();
            for (e, want) in [
                (&[1.0, 2.0][..], format!("{name} has 2 values")),
                (&[1.0, -2.0, 0.0], format!("{name} of service")),
                (&[1.0, f32::NAN, 0.0], format!("{name} of service")),
            ] {
                let err = window_from_request(&h, &idx, &req(e)).unwrap_err();
                assert!(err.contains(&want), "{err:?} should contain {want:?}");
            }
        }
    }
}
