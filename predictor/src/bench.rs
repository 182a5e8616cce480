//! Inference micro-benchmarks: batch-1 full window vs per-tick streaming.

use crate::checkpoint::{Header, Model, TrainSummary};
use crate::eval::percentiles;
use crate::features::{Channel, Normalizer};
use crate::model::{Arch, ModelConfig, ModelError, OutputKind, StreamMode};
use serde::Serialize;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// An untrained model of a given shape (for timing only).
pub fn untrained(
    arch: Arch,
    services: usize,
    window: usize,
    output: OutputKind,
) -> Result<Model, ModelError> {
    let names: Vec<String> = (0..services).map(|i| format!("svc-{i}")).collect();
    let mut cfg = ModelConfig::new(arch, services, 1, window);
    cfg.output = output;
    Model::new(
        Header {
            model: cfg,
            normalizer: Normalizer {
                channels: vec![Channel::Queue],
                services: names.clone(),
                mean: vec![0.0; services],
                std: vec![1.0; services],
            },
            services: names,
            horizon_ns: 100_000_000,
            interval_ns: 100_000_000,
            data_digest: String::new(),
            train: TrainSummary::default(),
            written_by: "bench".into(),
        },
        Device::Cpu,
    )
}

/// Latencies in µs.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Architecture.
    pub arch: String,
    /// Services.
    pub services: usize,
    /// Window.
    pub window: usize,
    /// Weights.
    pub parameters: usize,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// Full window, batch 1: (p50, p99).
    pub full_window_us: (f64, f64),
    /// Per tick, exact (cached convolutions): (p50, p99).
    pub stream_exact_us: (f64, f64),
    /// Per tick, stateful LSTM: (p50, p99); same as exact for cnn.
    pub stream_stateful_us: (f64, f64),
    /// Probabilities for an all-zero window (to check a twin implementation).
    pub zero_window: Vec<f32>,
    /// Probabilities for the window whose `k`-th value (row-major
    /// `[window, services, channels]`) is `sin(0.37 k)`.
    pub sine_window: Vec<f32>,
}

/// The deterministic test window of [`BenchReport::sine_window`].
pub fn sine_window(len: usize) -> Vec<f32> {
    (0..len).map(|k| (0.37 * k as f64).sin() as f32).collect()
}

impl BenchReport {
    /// (name, p50, p99) rows.
    pub fn rows(&self) -> Vec<(String, f64, f64)> {
        let d = format!(
            "{} {}×{} ({} weights, {} thread(s))",
            self.arch, self.services, self.window, self.parameters, self.threads
        );
        vec![
            (
                format!("{d} full window"),
                self.full_window_us.0,
                self.full_window_us.1,
            ),
            (
                format!("{d} per tick, cached convolutions"),
                self.stream_exact_us.0,
                self.stream_exact_us.1,
            ),
            (
                format!("{d} per tick, stateful LSTM"),
                self.stream_stateful_us.0,
                self.stream_stateful_us.1,
            ),
        ]
    }
}

/// Times `iterations` batch-1 inferences in each mode on random inputs.
pub fn run(m: &Model, iterations: usize) -> Result<BenchReport, ModelError> {
    let _g = tch::no_grad_guard();
    let c = &m.header.model;
    let (w, ns, nc) = (c.window as i64, c.n_services as i64, c.n_channels as i64);
    let dev = m.vs.device();
    let x = Tensor::randn([1, w, ns, nc], (Kind::Float, dev));
    let zero = Tensor::zeros([1, w, ns, nc], (Kind::Float, dev));
    let zero_window =
        Vec::<f32>::try_from(m.net.probabilities(&m.net.forward(&zero)).flatten(0, -1))?;
    let sine = Tensor::from_slice(&sine_window((w * ns * nc) as usize))
        .reshape([1, w, ns, nc])
        .to_device(dev);
    let sine_window =
        Vec::<f32>::try_from(m.net.probabilities(&m.net.forward(&sine)).flatten(0, -1))?;
    let warm = 50.min(iterations);
    let mut full = Vec::with_capacity(iterations);
    for i in 0..iterations + warm {
        let t = Instant::now();
        let p = m.net.probabilities(&m.net.forward(&x));
        let _ = Vec::<f32>::try_from(p.flatten(0, -1))?;
        if i >= warm {
            full.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let ticks = Tensor::randn([64, ns, nc], (Kind::Float, dev));
    let stream = |mode| -> Result<(f64, f64), ModelError> {
        let mut st = m.net.stream_state(mode);
        let mut v = Vec::with_capacity(iterations);
        for i in 0..iterations + warm {
            let tick = ticks.get((i % 64) as i64);
            let t = Instant::now();
            let p = m.net.stream_step(&mut st, &tick);
            let _ = Vec::<f32>::try_from(&p)?;
            if i >= warm {
                v.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        Ok(percentiles(&mut v))
    };
    let exact = stream(StreamMode::Exact)?;
    let stateful = stream(StreamMode::Stateful)?;
    Ok(BenchReport {
        arch: c.arch.to_string(),
        services: c.n_services,
        window: c.window,
        parameters: m.n_parameters(),
        threads: tch::get_num_threads(),
        full_window_us: percentiles(&mut full),
        stream_exact_us: exact,
        stream_stateful_us: stateful,
        zero_window,
        sine_window,
    })
}
