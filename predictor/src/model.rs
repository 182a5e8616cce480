//! The networks: `hybrid` (convolutions across services → LSTM over time → fully
//! connected, the paper's Fig. 9), `cnn` (2-D convolutions over time × services)
//! and `lstm` (an LSTM over the flattened ticks).
//!
//! Input `[batch, window, services, channels]`, services in topological order;
//! output logits `[batch, services + 1]` (last = "no violation") for
//! [`OutputKind::Softmax`], `[batch, services]` for [`OutputKind::Sigmoid`].
//!
//! Per-tick inference ([`StreamState`]) keeps the last `W` ticks' convolution
//! outputs (hybrid), so a new tick costs one convolution plus the LSTM over the
//! cached features, which is exactly the full-window result; or, with
//! [`StreamMode::Stateful`], carries the LSTM state from tick to tick (one LSTM
//! step per tick, an approximation of the windowed model).

pub use seer_infer::config::{Arch, ConfigError, ModelConfig, OutputKind};
pub use seer_infer::engine::StreamMode;
use tch::nn::{self, Module, RNN};
use tch::{Device, Kind, Tensor};

/// Errors in model configuration or from libtorch.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The configuration is unknown or cannot make a network.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configuration or weight set that does not fit.
    #[error("invalid model configuration: {0}")]
    Invalid(String),
    /// libtorch refused an operation.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// A built network; its variables live in the [`nn::VarStore`] it was built in.
#[derive(Debug)]
pub struct Net {
    cfg: ModelConfig,
    convs: Vec<nn::Conv1D>,
    convs2: Vec<nn::Conv2D>,
    lstm: Option<nn::LSTM>,
    /// The shared per-service scorer: an optional hidden layer, then the score.
    head: Option<(Option<nn::Conv1D>, nn::Conv1D)>,
    out: nn::Linear,
}

/// Per-stream state for tick-by-tick inference.
#[derive(Debug)]
pub struct StreamState {
    mode: StreamMode,
    /// Ring of the last `W` per-tick inputs to the recurrent part,
    /// `[features]` each (hybrid: convolution outputs; others: normalised ticks).
    ring: Vec<Tensor>,
    /// Stateful: the last ticks' features the shared scorer reads.
    recent: Vec<Tensor>,
    next: usize,
    seen: u64,
    lstm_state: Option<nn::LSTMState>,
}

impl StreamState {
    /// Ticks fed so far.
    pub fn ticks_seen(&self) -> u64 {
        self.seen
    }
}

impl Net {
    /// Builds the network's variables under `p`.
    pub fn new(p: &nn::Path, cfg: &ModelConfig) -> Result<Net, ModelError> {
        cfg.validate()?;
        let (ns, nc, cc) = (
            cfg.n_services as i64,
            cfg.n_channels as i64,
            cfg.conv_channels as i64,
        );
        let conv_cfg = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let mut convs = Vec::new();
        let mut convs2 = Vec::new();
        let rnn_cfg = |layers: usize| nn::RNNConfig {
            batch_first: true,
            num_layers: layers as i64,
            ..Default::default()
        };
        let h = cfg.hidden as i64;
        let (lstm, out_in) = match cfg.arch {
            Arch::Hybrid => {
                for l in 0..cfg.conv_layers {
                    let cin = if l == 0 { nc } else { cc };
                    convs.push(nn::conv1d(p / format!("conv{l}"), cin, cc, 3, conv_cfg));
                }
                (
                    Some(nn::lstm(p / "lstm", cc * ns, h, rnn_cfg(cfg.lstm_layers))),
                    h,
                )
            }
            Arch::Cnn => {
                for l in 0..cfg.conv_layers {
                    let cin = if l == 0 { nc } else { cc };
                    convs2.push(nn::conv2d(p / format!("conv{l}"), cin, cc, 3, conv_cfg));
                }
                (None, cc * ns)
            }
            Arch::Lstm => (
                Some(nn::lstm(p / "lstm", nc * ns, h, rnn_cfg(cfg.lstm_layers))),
                h,
            ),
        };
        let out = nn::linear(
            p / "out",
            out_in,
            cfg.out_columns() as i64,
            Default::default(),
        );
        let head = cfg.service_head.then(|| {
            let mut head_in = cfg.scorer_inputs() as i64;
            let hidden = (cfg.head_hidden > 0).then(|| {
                let hh = cfg.head_hidden as i64;
                let c = nn::conv1d(p / "head0", head_in, hh, 1, Default::default());
                head_in = hh;
                c
            });
            (
                hidden,
                nn::conv1d(p / "head", head_in, 1, 1, Default::default()),
            )
        });
        Ok(Net {
            cfg: cfg.clone(),
            convs,
            convs2,
            lstm,
            head,
            out,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Per-tick features fed to the LSTM: `[n, services, channels]` →
    /// `[n, features]` (hybrid: the convolutions across services).
    fn tick_features(&self, x: &Tensor) -> Tensor {
        let (ns, nc) = (self.cfg.n_services as i64, self.cfg.n_channels as i64);
        match self.cfg.arch {
            Arch::Hybrid => {
                // [n, S, C] -> [n, C, S]
                let mut y = x.permute([0, 2, 1]);
                for c in &self.convs {
                    y = c.forward(&y).relu();
                }
                y.flatten(1, -1)
            }
            _ => x.reshape([-1, ns * nc]),
        }
    }

    /// Logits for a batch of windows `[batch, window, services, channels]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let size = x.size();
        let (b, w) = (size[0], size[1]);
        let (ns, nc) = (self.cfg.n_services as i64, self.cfg.n_channels as i64);
        let last = match self.cfg.arch {
            Arch::Cnn => {
                // [B, W, S, C] -> [B, C, W, S]
                let mut y = x.permute([0, 3, 1, 2]);
                for (i, c) in self.convs2.iter().enumerate() {
                    y = c.forward(&y).relu();
                    if i == 0 && w >= 4 {
                        y = y.max_pool2d([2, 1], [2, 1], [0, 0], [1, 1], false);
                    }
                }
                // Average over time: [B, CC, S] -> [B, CC * S]
                y.mean_dim(2, false, Kind::Float).flatten(1, -1)
            }
            Arch::Hybrid | Arch::Lstm => {
                let feats = self
                    .tick_features(&x.reshape([b * w, ns, nc]))
                    .reshape([b, w, -1]);
                let lstm = self
                    .lstm
                    .as_ref()
                    .expect("hybrid and lstm nets have an LSTM");
                let (seq, _) = lstm.seq(&feats);
                let logits = self
                    .out
                    .forward(&seq.select(1, w - 1).dropout(self.cfg.dropout, train));
                let k = self.cfg.scorer_ticks() as i64;
                return self.with_service_scores(logits, &feats.narrow(1, w - k, k));
            }
        };
        self.out.forward(&last.dropout(self.cfg.dropout, train))
    }

    /// Adds the shared per-service scores of the last ticks' features
    /// `[n, head ticks, features]` to `logits` (when the net has the scorer); with
    /// [`ModelConfig::shared_culprit`], the services' logits are the scores alone.
    fn with_service_scores(&self, logits: Tensor, recent: &Tensor) -> Tensor {
        let Some((hidden, head)) = &self.head else {
            return logits;
        };
        let (k, ns) = (self.cfg.scorer_inputs() as i64, self.cfg.n_services as i64);
        let n = recent.size()[0];
        // [n, K, CC, S] -> [n, K * CC, S]: one service's inputs, tick-major.
        let mut x = recent.reshape([n, k, ns]);
        if let Some(h) = hidden {
            x = h.forward(&x).relu();
        }
        let scores = head.forward(&x).reshape([n, ns]);
        if self.cfg.shared_culprit {
            return Tensor::cat(&[scores, logits], 1);
        }
        let scores = match self.cfg.output {
            // "No violation" gets no per-service score.
            OutputKind::Softmax => {
                Tensor::cat(&[scores, Tensor::zeros_like(&logits).narrow(1, 0, 1)], 1)
            }
            OutputKind::Sigmoid => scores,
        };
        logits + scores
    }

    /// Logits in inference mode.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, false)
    }

    /// Probabilities `[batch, services + 1]`, last column "no violation", for
    /// either output kind.
    pub fn probabilities(&self, logits: &Tensor) -> Tensor {
        probabilities(self.cfg.output, logits)
    }

    /// A fresh per-stream state.
    pub fn stream_state(&self, mode: StreamMode) -> StreamState {
        StreamState {
            mode,
            ring: Vec::new(),
            recent: Vec::new(),
            next: 0,
            seen: 0,
            lstm_state: None,
        }
    }

    /// Feeds one normalised tick `[services, channels]` and returns the
    /// probabilities `[services + 1]` given the ticks seen so far (the window is
    /// zero-padded — the normalised mean — until `W` ticks were seen).
    pub fn stream_step(&self, st: &mut StreamState, tick: &Tensor) -> Tensor {
        let (ns, nc, w) = (
            self.cfg.n_services as i64,
            self.cfg.n_channels as i64,
            self.cfg.window,
        );
        st.seen += 1;
        let logits = match (self.cfg.arch, st.mode) {
            (Arch::Cnn, _) => {
                push_ring(st, tick.reshape([1, ns, nc]), w);
                let win = ring_window(st, w, &[1, ns, nc]);
                self.forward(&win.reshape([1, w as i64, ns, nc]))
            }
            (_, StreamMode::Exact) => {
                let f = self.tick_features(&tick.reshape([1, ns, nc]));
                push_ring(st, f, w);
                let fs = ring_window(st, w, &[1, self.cfg.features_per_tick() as i64])
                    .reshape([1, w as i64, -1]);
                let lstm = self
                    .lstm
                    .as_ref()
                    .expect("hybrid and lstm nets have an LSTM");
                let (seq, _) = lstm.seq(&fs);
                let logits = self.out.forward(&seq.select(1, w as i64 - 1));
                let k = self.cfg.scorer_ticks() as i64;
                self.with_service_scores(logits, &fs.narrow(1, w as i64 - k, k))
            }
            (_, StreamMode::Stateful) => {
                let f = self.tick_features(&tick.reshape([1, ns, nc]));
                let lstm = self
                    .lstm
                    .as_ref()
                    .expect("hybrid and lstm nets have an LSTM");
                let state = match st.lstm_state.take() {
                    Some(s) => s,
                    None => lstm.zero_state(1),
                };
                let (out, state) = lstm.seq_init(&f.reshape([1, 1, -1]), &state);
                st.lstm_state = Some(state);
                let logits = self.out.forward(&out.select(1, 0));
                let k = self.cfg.scorer_ticks();
                let recent = recent_features(&mut st.recent, f, k);
                self.with_service_scores(logits, &recent)
            }
        };
        self.probabilities(&logits).squeeze_dim(0)
    }
}

/// Probabilities `[batch, services + 1]` from logits of either output kind.
pub fn probabilities(kind: OutputKind, logits: &Tensor) -> Tensor {
    match kind {
        OutputKind::Softmax => logits.softmax(-1, Kind::Float),
        OutputKind::Sigmoid => {
            let p = logits.sigmoid();
            let none = (p.ones_like() - &p).prod_dim_int(1, true, Kind::Float);
            Tensor::cat(&[p, none], 1)
        }
    }
}

/// Appends `f` (`[1, features]`) to the last `k` ticks' features and returns
/// them, `[1, k, features]`, oldest first, zero-padded at the front.
fn recent_features(recent: &mut Vec<Tensor>, f: Tensor, k: usize) -> Tensor {
    if recent.len() == k {
        drop(recent.remove(0));
    }
    recent.push(f);
    let mut parts: Vec<Tensor> = (recent.len()..k).map(|_| recent[0].zeros_like()).collect();
    parts.extend(recent.iter().map(Tensor::shallow_clone));
    Tensor::cat(&parts, 0).unsqueeze(0)
}

fn push_ring(st: &mut StreamState, item: Tensor, w: usize) {
    if st.ring.len() < w {
        st.ring.push(item);
        st.next = st.ring.len() % w;
    } else {
        st.ring[st.next] = item;
        st.next = (st.next + 1) % w;
    }
}

/// The ring in time order, zero-padded at the front, stacked along dim 0.
fn ring_window(st: &StreamState, w: usize, shape: &[i64]) -> Tensor {
    let mut parts: Vec<Tensor> = Vec::with_capacity(w);
    if st.ring.len() < w {
        let dev = st.ring.first().map_or(Device::Cpu, Tensor::device);
        for _ in st.ring.len()..w {
            parts.push(Tensor::zeros(shape, (Kind::Float, dev)));
        }
        parts.extend(st.ring.iter().map(Tensor::shallow_clone));
    } else {
        for i in 0..w {
            parts.push(st.ring[(st.next + i) % w].shallow_clone());
        }
    }
    Tensor::cat(&parts, 0)
}

/// Number of weights in a var store.
pub fn n_parameters(vs: &nn::VarStore) -> usize {
    vs.trainable_variables().iter().map(|t| t.numel()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(arch: Arch, output: OutputKind) -> (nn::VarStore, Net) {
        tch::set_num_threads(1);
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut cfg = ModelConfig::new(arch, 5, 2, 6);
        cfg.output = output;
        let n = Net::new(&vs.root(), &cfg).unwrap();
        (vs, n)
    }

    #[test]
    fn every_architecture_maps_windows_to_probabilities() {
        for arch in Arch::ALL {
            for out in [OutputKind::Softmax, OutputKind::Sigmoid] {
                let (_vs, n) = net(arch, out);
                let x = Tensor::randn([3, 6, 5, 2], (Kind::Float, Device::Cpu));
                let logits = n.forward(&x);
                assert_eq!(
                    logits.size(),
                    [3, n.config().n_outputs() as i64],
                    "{arch} {out:?}"
                );
                let p = n.probabilities(&logits);
                assert_eq!(p.size(), [3, 6]);
                if out == OutputKind::Softmax {
                    let s: Vec<f32> =
                        Vec::try_from(p.sum_dim_intlist(1, false, Kind::Float)).unwrap();
                    assert!(s.iter().all(|v| (v - 1.0).abs() < 1e-5), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn paper_sizes_for_36_services() {
        for (arch, lo, hi) in [
            (Arch::Hybrid, 50_000, 100_000),
            (Arch::Cnn, 15_000, 45_000),
            (Arch::Lstm, 40_000, 70_000),
        ] {
            let vs = nn::VarStore::new(Device::Cpu);
            Net::new(&vs.root(), &ModelConfig::new(arch, 36, 1, 20)).unwrap();
            let n = n_parameters(&vs);
            assert!((lo..hi).contains(&n), "{arch}: {n} weights");
        }
    }

    #[test]
    fn exact_streaming_equals_the_full_window() {
        for arch in Arch::ALL {
            let (_vs, n) = net(arch, OutputKind::Softmax);
            let _g = tch::no_grad_guard();
            let ticks = Tensor::randn([9, 5, 2], (Kind::Float, Device::Cpu));
            let mut st = n.stream_state(StreamMode::Exact);
            let mut last = None;
            for t in 0..9 {
                last = Some(n.stream_step(&mut st, &ticks.get(t)));
            }
            let full = n
                .probabilities(&n.forward(&ticks.narrow(0, 3, 6).unsqueeze(0)))
                .squeeze_dim(0);
            let diff = f64::try_from((last.unwrap() - full).abs().max()).unwrap();
            assert!(diff < 1e-5, "{arch}: {diff}");
            assert_eq!(st.ticks_seen(), 9);
        }
    }

    #[test]
    fn stateful_streaming_runs_one_step_per_tick() {
        let (_vs, n) = net(Arch::Hybrid, OutputKind::Softmax);
        let _g = tch::no_grad_guard();
        let mut st = n.stream_state(StreamMode::Stateful);
        for _ in 0..3 {
            let p = n.stream_step(&mut st, &Tensor::randn([5, 2], (Kind::Float, Device::Cpu)));
            assert_eq!(p.size(), [6]);
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut cfg = ModelConfig::new(Arch::Hybrid, 0, 1, 20);
        assert!(Net::new(&vs.root(), &cfg).is_err());
        cfg.n_services = 3;
        cfg.hidden = 0;
        assert!(
            Net::new(&vs.root(), &cfg)
                .unwrap_err()
                .to_string()
                .contains("hybrid")
        );
        assert!("transformer".parse::<Arch>().is_err());
        let mut cfg = ModelConfig::new(Arch::Hybrid, 3, 1, 20);
        cfg.head_ticks = 21;
        let err = Net::new(&vs.root(), &cfg).unwrap_err().to_string();
        assert!(err.contains("21 ticks of a 20-tick window"), "{err}");
        cfg.head_ticks = 4;
        cfg.output = OutputKind::Sigmoid;
        cfg.shared_culprit = true;
        let err = Net::new(&vs.root(), &cfg).unwrap_err().to_string();
        assert!(err.contains("softmax hybrid"), "{err}");
        cfg.output = OutputKind::Softmax;
        cfg.service_head = false;
        assert!(Net::new(&vs.root(), &cfg).is_err());
        cfg.service_head = true;
        assert!(Net::new(&vs.root(), &cfg).is_ok());
    }

    /// Naming culprits with the shared scorer alone, a service's score depends
    /// on its own features (and its neighbours' through the convolutions) and
    /// not on its place: two services whose neighbourhoods match score alike.
    #[test]
    fn the_shared_scorer_does_not_know_a_service_by_its_place() {
        tch::set_num_threads(1);
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut cfg = ModelConfig::new(Arch::Hybrid, 14, 2, 6);
        (cfg.head_ticks, cfg.head_hidden, cfg.shared_culprit) = (3, 4, true);
        let n = Net::new(&vs.root(), &cfg).unwrap();
        let _g = tch::no_grad_guard();
        // Three convolutions of width 3 see 3 services either side: services 3
        // and 10 see the same when services 0..7 and 7..14 hold the same series.
        let x = Tensor::randn([2, 6, 14, 2], (Kind::Float, Device::Cpu));
        x.narrow(2, 7, 7).copy_(&x.narrow(2, 0, 7));
        let logits = n.forward(&x);
        assert_eq!(logits.size(), [2, 15]);
        let d = f64::try_from((logits.select(1, 3) - logits.select(1, 10)).abs().max()).unwrap();
        assert!(d < 1e-5, "{d}");
        let d = f64::try_from((logits.select(1, 3) - logits.select(1, 4)).abs().max()).unwrap();
        assert!(d > 1e-4, "services with other series score alike: {d}");
    }
}
