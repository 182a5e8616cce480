//! Inference micro-benchmarks: batch-1 full window vs per-tick streaming.

use crate::checkpoint::{Header, Model};
use crate::eval::percentiles;
use crate::features::Channel;
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
        Header::untrained(cfg, names, vec![Channel::Queue], "bench"),
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
    /// The pure-Rust engine on the same weights, full window: (p50, p99).
    pub engine_full_window_us: (f64, f64),
    /// The engine per tick, exact (cached projections): (p50, p99).
    pub engine_stream_exact_us: (f64, f64),
    /// The engine per tick, stateful LSTM: (p50, p99).
    pub engine_stream_stateful_us: (f64, f64),
    /// Largest difference between the engine's and tch's probabilities over the
    /// zero, sine and random windows.
    pub engine_max_diff: f32,
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
            (
                format!("{d} full window, Rust engine"),
                self.engine_full_window_us.0,
                self.engine_full_window_us.1,
            ),
            (
                format!("{d} per tick, cached projections, Rust engine"),
                self.engine_stream_exact_us.0,
                self.engine_stream_exact_us.1,
            ),
            (
                format!("{d} per tick, stateful LSTM, Rust engine"),
                self.engine_stream_stateful_us.0,
                self.engine_stream_stateful_us.1,
            ),
        ]
    }
}

/// Times `iterations` batch-1 inferences in each mode on random inputs, on tch
/// and on the pure-Rust engine with the same weights (interleaved per mode, so
/// both see the same machine).
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
    // The same weights on the engine.
    let e = m.to_engine()?;
    let flat = |t: &Tensor| Vec::<f32>::try_from(t.to_device(Device::Cpu).flatten(0, -1));
    let xs = flat(&x)?;
    let mut engine_max_diff = 0f32;
    for (input, want) in [
        (flat(&zero)?, zero_window.clone()),
        (flat(&sine)?, sine_window.clone()),
        (xs.clone(), flat(&m.net.probabilities(&m.net.forward(&x)))?),
    ] {
        let got = e.predict(&input);
        for (a, b) in got.iter().zip(&want) {
            engine_max_diff = engine_max_diff.max((a - b).abs());
        }
    }
    let mut efull = Vec::with_capacity(iterations);
    for i in 0..iterations + warm {
        let t = Instant::now();
        let p = e.predict(&xs);
        std::hint::black_box(p);
        if i >= warm {
            efull.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let eticks = flat(&ticks)?;
    let row = (ns * nc) as usize;
    let estream = |mode| -> (f64, f64) {
        let mut st = e.stream(mode);
        let mut v = Vec::with_capacity(iterations);
        for i in 0..iterations + warm {
            let k = i % 64;
            let t = Instant::now();
            let p = e.step(&mut st, &eticks[k * row..(k + 1) * row]);
            std::hint::black_box(p);
            if i >= warm {
                v.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        percentiles(&mut v)
    };
    let engine_stream_exact_us = estream(StreamMode::Exact);
    let engine_stream_stateful_us = estream(StreamMode::Stateful);
    Ok(BenchReport {
        arch: c.arch.to_string(),
        services: c.n_services,
        window: c.window,
        parameters: m.n_parameters(),
        threads: tch::get_num_threads(),
        full_window_us: percentiles(&mut full),
        stream_exact_us: exact,
        stream_stateful_us: stateful,
        engine_full_window_us: percentiles(&mut efull),
        engine_stream_exact_us,
        engine_stream_stateful_us,
        engine_max_diff,
        zero_window,
        sine_window,
    })
}
