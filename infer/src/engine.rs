//! A pure-Rust inference engine for the three networks, reading the same
//! checkpoints tch writes: no libtorch, so the controller can run the model in
//! process, and no per-operator dispatch, so one window costs what its
//! arithmetic costs.
//!
//! The arithmetic is the network's, reordered for the CPU:
//! - hybrid and lstm: the LSTM's input projection `W_ih · x_t + b` of every tick
//!   of the window is one matrix product (`matrixmultiply::sgemm`); only the
//!   recurrent `W_hh · h` stays sequential;
//! - per tick ([`Stream`]), hybrid and lstm cache each tick's input projection,
//!   so [`StreamMode::Exact`] costs one tick's convolutions and projection plus
//!   `W` recurrent steps, and [`StreamMode::Stateful`] one of each.
//!
//! Results equal tch's to float rounding (checked against tch in the predictor's
//! tests); probabilities are `[services + 1]`, last = "no violation", for either
//! output kind.

use crate::checkpoint::{Checkpoint, CheckpointError, Header};
use crate::config::{Arch, ModelConfig, OutputKind};
use std::path::Path;

/// How [`Stream::step`] treats history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// Recompute from the last `W` ticks (cached per-tick work): the same result
    /// as a full window.
    Exact,
    /// Carry the LSTM state across ticks: one LSTM step per tick, an
    /// approximation of the windowed model.
    Stateful,
}

/// A convolution with kernel 3 (1-D `[out, in, 3]` or 2-D `[out, in, 3, 3]`),
/// padding 1.
#[derive(Debug, Clone)]
struct Conv {
    w: Vec<f32>,
    b: Vec<f32>,
    n_in: usize,
    n_out: usize,
}

/// One LSTM layer, gates in PyTorch's order (input, forget, cell, output).
#[derive(Debug, Clone)]
struct LstmLayer {
    /// `[4H, input]`.
    w_ih: Vec<f32>,
    /// `W_ih` transposed, `[input, 4H]` (for one tick at a time).
    w_ih_t: Vec<f32>,
    /// `W_hh` transposed, `[H, 4H]`.
    w_hh_t: Vec<f32>,
    /// `b_ih + b_hh`, `[4H]`.
    bias: Vec<f32>,
    input: usize,
    hidden: usize,
}

/// `y = W x + b`, `W` `[out, in]`.
#[derive(Debug, Clone)]
struct Linear {
    w: Vec<f32>,
    b: Vec<f32>,
    n_in: usize,
}

impl Linear {
    /// `W · x + b`.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut y = vec![0f32; self.b.len()];
        self.apply_into(x, &mut y);
        y
    }

    /// `y = W · x + b`, into a buffer of the output size.
    fn apply_into(&self, x: &[f32], y: &mut [f32]) {
        for ((row, b), y) in self.w.chunks_exact(self.n_in).zip(&self.b).zip(y) {
            *y = b + dot(row, x);
        }
    }
}

/// A network ready to predict, built from a checked [`Checkpoint`].
#[derive(Debug, Clone)]
pub struct Engine {
    header: Header,
    id: String,
    convs: Vec<Conv>,
    lstm: Vec<LstmLayer>,
    out: Linear,
    /// Shared per-service scorer (hybrid).
    head: Option<Scorer>,
}

/// The shared per-service scorer: an optional hidden layer (ReLU), then one
/// score, applied to each service's features at the last `head_ticks` ticks.
#[derive(Debug, Clone)]
struct Scorer {
    hidden: Option<Linear>,
    w: Vec<f32>,
    b: f32,
}

impl Engine {
    /// Reads, checks and builds a checkpoint file.
    pub fn load(path: &Path) -> Result<Engine, CheckpointError> {
        let ck = Checkpoint::read(path)?;
        Engine::new(ck).map_err(|message| CheckpointError::Model {
            path: path.into(),
            message,
        })
    }

    /// Builds the engine of a checkpoint, after [`Checkpoint::check`] (which
    /// every decoded file has passed already).
    pub fn new(ck: Checkpoint) -> Result<Engine, String> {
        ck.check()?;
        let cfg = ck.header.model.clone();
        let take = |name: &str| -> Vec<f32> {
            ck.weight(name)
                .map(|w| w.2.clone())
                .unwrap_or_else(|| unreachable!("a checked checkpoint has {name}"))
        };
        let mut convs = Vec::new();
        if matches!(cfg.arch, Arch::Hybrid | Arch::Cnn) {
            for l in 0..cfg.conv_layers {
                convs.push(Conv {
                    w: take(&format!("conv{l}.weight")),
                    b: take(&format!("conv{l}.bias")),
                    n_in: if l == 0 {
                        cfg.n_channels
                    } else {
                        cfg.conv_channels
                    },
                    n_out: cfg.conv_channels,
                });
            }
        }
        let mut lstm = Vec::new();
        if matches!(cfg.arch, Arch::Hybrid | Arch::Lstm) {
            for l in 0..cfg.lstm_layers {
                let b_ih = take(&format!("lstm.bias_ih_l{l}"));
                let b_hh = take(&format!("lstm.bias_hh_l{l}"));
                let input = if l == 0 {
                    cfg.features_per_tick()
                } else {
                    cfg.hidden
                };
                let w_ih = take(&format!("lstm.weight_ih_l{l}"));
                lstm.push(LstmLayer {
                    w_ih_t: transpose(&w_ih, 4 * cfg.hidden, input),
                    w_ih,
                    w_hh_t: transpose(
                        &take(&format!("lstm.weight_hh_l{l}")),
                        4 * cfg.hidden,
                        cfg.hidden,
                    ),
                    bias: b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect(),
                    input,
                    hidden: cfg.hidden,
                });
            }
        }
        let out_w = take("out.weight");
        let out = Linear {
            n_in: out_w.len() / cfg.out_columns(),
            w: out_w,
            b: take("out.bias"),
        };
        let head = cfg.service_head.then(|| Scorer {
            hidden: (cfg.head_hidden > 0).then(|| Linear {
                w: take("head0.weight"),
                b: take("head0.bias"),
                n_in: cfg.scorer_inputs(),
            }),
            w: take("head.weight"),
            b: take("head.bias")[0],
        });
        Ok(Engine {
            header: ck.header,
            id: ck.id,
            convs,
            lstm,
            out,
            head,
        })
    }

    /// The checkpoint's header (services, channels, normalisation, horizon).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The model id (as tch's `Model::id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cfg(&self) -> &ModelConfig {
        &self.header.model
    }

    /// Probabilities `[services + 1]` for one normalised window
    /// `[window, services, channels]` (row-major).
    ///
    /// # Panics
    /// When `window` does not have `window × services × channels` values.
    pub fn predict(&self, window: &[f32]) -> Vec<f32> {
        let cfg = self.cfg();
        let row = cfg.n_services * cfg.n_channels;
        assert_eq!(window.len(), cfg.window * row, "window size");
        let logits = match cfg.arch {
            Arch::Cnn => self.cnn_logits(window),
            Arch::Hybrid | Arch::Lstm => {
                let f = cfg.features_per_tick();
                let mut feats = vec![0f32; cfg.window * f];
                for (x, y) in window.chunks_exact(row).zip(feats.chunks_exact_mut(f)) {
                    self.tick_features(x, y);
                }
                let mut gates = vec![0f32; cfg.window * 4 * cfg.hidden];
                project(&self.lstm[0], &feats, cfg.window, &mut gates);
                let h = self.recur(&gates, cfg.window);
                self.logits(&h, &feats[(cfg.window - cfg.scorer_ticks()) * f..])
            }
        };
        probabilities(cfg.output, &logits)
    }

    /// Normalises one tick of raw values `[services, channels]` into `out`.
    pub fn normalise(&self, raw: &[f32], out: &mut [f32]) {
        self.header.normalizer.apply_row(raw, out);
    }

    /// A fresh per-stream state. A stream belongs to the engine that made it:
    /// after a model swap, make a new one (and replay the raw ticks, as the gRPC
    /// service does).
    pub fn stream(&self, mode: StreamMode) -> Stream {
        let cfg = self.cfg();
        let per_tick = match cfg.arch {
            Arch::Cnn => cfg.n_services * cfg.n_channels,
            _ => 4 * cfg.hidden,
        };
        Stream {
            mode,
            ring: vec![0f32; cfg.window * per_tick],
            per_tick,
            next: 0,
            seen: 0,
            state: vec![0f32; 2 * cfg.hidden * self.lstm.len()],
            recent: vec![0f32; cfg.scorer_ticks() * cfg.features_per_tick()],
        }
    }

    /// Feeds one normalised tick `[services, channels]` and returns the
    /// probabilities given the ticks seen so far (until `W` ticks were seen, the
    /// window is padded at the front with zero inputs to the recurrent part,
    /// as the tch model's stream is).
    pub fn step(&self, st: &mut Stream, tick: &[f32]) -> Vec<f32> {
        let cfg = self.cfg();
        let w = cfg.window;
        assert_eq!(tick.len(), cfg.n_services * cfg.n_channels, "tick size");
        assert_eq!(
            st.state.len(),
            2 * cfg.hidden * self.lstm.len(),
            "a stream of another engine"
        );
        st.seen += 1;
        let logits = match (cfg.arch, st.mode) {
            (Arch::Cnn, _) => {
                st.push(tick);
                let win = st.window(w, &[]);
                self.cnn_logits(&win)
            }
            (_, StreamMode::Exact) => {
                let mut recent = std::mem::take(&mut st.recent);
                let feats = self.push_features(tick, &mut recent);
                let mut g = vec![0f32; 4 * cfg.hidden];
                project(&self.lstm[0], feats, 1, &mut g);
                st.push(&g);
                let gates = st.window(w, &self.lstm[0].bias);
                let h = self.recur(&gates, w);
                let l = self.logits(&h, &recent);
                st.recent = recent;
                l
            }
            (_, StreamMode::Stateful) => {
                let mut recent = std::mem::take(&mut st.recent);
                let feats = self.push_features(tick, &mut recent);
                let hd = cfg.hidden;
                let mut input = feats.to_vec();
                for (l, layer) in self.lstm.iter().enumerate() {
                    let mut g = vec![0f32; 4 * hd];
                    project(layer, &input, 1, &mut g);
                    let (h, c) = st.state[2 * l * hd..2 * (l + 1) * hd].split_at_mut(hd);
                    lstm_step(layer, &mut g, h, c);
                    input = h.to_vec();
                }
                let l = self.logits(&input, &recent);
                st.recent = recent;
                l
            }
        };
        probabilities(cfg.output, &logits)
    }

    /// Shifts the last ticks' features `recent` (`[ticks, features]`, oldest
    /// first) one tick on and writes the features of `tick` last; returns them.
    fn push_features<'a>(&self, tick: &[f32], recent: &'a mut [f32]) -> &'a [f32] {
        let f = self.cfg().features_per_tick();
        recent.copy_within(f.., 0);
        let n = recent.len();
        let last = &mut recent[n - f..];
        self.tick_features(tick, last);
        last
    }

    /// Per-tick features `[features]` of one normalised tick `[services, channels]`:
    /// hybrid, the convolutions across services, flattened channel-major; lstm,
    /// the tick itself.
    fn tick_features(&self, x: &[f32], out: &mut [f32]) {
        let cfg = self.cfg();
        if cfg.arch != Arch::Hybrid {
            out.copy_from_slice(x);
            return;
        }
        let (ns, nc) = (cfg.n_services, cfg.n_channels);
        // [S, C] -> [C, S]
        let mut a = vec![0f32; nc * ns];
        for s in 0..ns {
            for c in 0..nc {
                a[c * ns + s] = x[s * nc + c];
            }
        }
        for conv in &self.convs {
            let mut y = vec![0f32; conv.n_out * ns];
            conv1d_relu(conv, &a, ns, &mut y);
            a = y;
        }
        out.copy_from_slice(&a);
    }

    /// Runs the LSTM layers over `t` ticks whose layer-0 gate inputs
    /// (`W_ih · x + b`, `[t, 4H]`) are given; returns the last hidden state of
    /// the top layer.
    fn recur(&self, gates0: &[f32], t: usize) -> Vec<f32> {
        let hd = self.cfg().hidden;
        let mut gates = gates0.to_vec();
        let mut seq = vec![0f32; t * hd];
        for (l, layer) in self.lstm.iter().enumerate() {
            if l > 0 {
                project(layer, &seq, t, &mut gates);
            }
            let (mut h, mut c) = (vec![0f32; hd], vec![0f32; hd]);
            for (g, out) in gates.chunks_exact_mut(4 * hd).zip(seq.chunks_exact_mut(hd)) {
                lstm_step(layer, g, &mut h, &mut c);
                out.copy_from_slice(&h);
            }
        }
        seq[(t - 1) * hd..].to_vec()
    }

    /// The output layer on `x`, plus the shared service scores of the last
    /// ticks' features `recent` (`[head ticks, features]`, hybrid).
    fn logits(&self, x: &[f32], recent: &[f32]) -> Vec<f32> {
        let out = self.out.apply(x);
        let Some(head) = &self.head else {
            return out;
        };
        let cfg = self.cfg();
        let ns = cfg.n_services;
        let mut logits = if cfg.shared_culprit {
            // Services' logits are the scores alone; "no violation" is `out`'s.
            let mut l = vec![0f32; ns];
            l.extend(out);
            l
        } else {
            out
        };
        // One service's inputs (its features at each tick read, tick-major) and
        // hidden units, buffers reused from service to service.
        let mut v = vec![0f32; cfg.scorer_inputs()];
        let mut hidden = vec![0f32; cfg.head_hidden];
        for (s, l) in logits.iter_mut().take(ns).enumerate() {
            for (vi, x) in v.iter_mut().zip(recent.iter().skip(s).step_by(ns)) {
                *vi = *x;
            }
            let input = match &head.hidden {
                Some(lin) => {
                    lin.apply_into(&v, &mut hidden);
                    hidden.iter_mut().for_each(|h| *h = h.max(0.0));
                    &hidden
                }
                None => &v,
            };
            *l += head.b + dot(&head.w, input);
        }
        logits
    }

    /// The cnn network on one window `[W, S, C]`.
    fn cnn_logits(&self, window: &[f32]) -> Vec<f32> {
        let cfg = self.cfg();
        let (mut t, ns, nc) = (cfg.window, cfg.n_services, cfg.n_channels);
        // [W, S, C] -> [C, W, S]
        let mut a = vec![0f32; nc * t * ns];
        for (i, v) in window.iter().enumerate() {
            let (tt, s, c) = (i / (ns * nc), (i / nc) % ns, i % nc);
            a[(c * t + tt) * ns + s] = *v;
        }
        for (i, conv) in self.convs.iter().enumerate() {
            let mut y = vec![0f32; conv.n_out * t * ns];
            conv2d_relu(conv, &a, t, ns, &mut y);
            a = y;
            if i == 0 && cfg.window >= 4 {
                let t2 = t / 2;
                let mut p = vec![0f32; conv.n_out * t2 * ns];
                for o in 0..conv.n_out {
                    for k in 0..t2 {
                        for s in 0..ns {
                            p[(o * t2 + k) * ns + s] =
                                a[(o * t + 2 * k) * ns + s].max(a[(o * t + 2 * k + 1) * ns + s]);
                        }
                    }
                }
                a = p;
                t = t2;
            }
        }
        // Mean over time: [CC, T, S] -> [CC, S].
        let cc = cfg.conv_channels;
        let mut m = vec![0f32; cc * ns];
        for o in 0..cc {
            for k in 0..t {
                for s in 0..ns {
                    m[o * ns + s] += a[(o * t + k) * ns + s];
                }
            }
        }
        m.iter_mut().for_each(|v| *v /= t as f32);
        self.logits(&m, &[])
    }
}

/// Per-stream state for [`Engine::step`].
#[derive(Debug, Clone)]
pub struct Stream {
    mode: StreamMode,
    /// The last `W` per-tick items (cnn: ticks; others: layer-0 gate inputs).
    ring: Vec<f32>,
    per_tick: usize,
    next: usize,
    seen: u64,
    /// Stateful: `(h, c)` per layer.
    state: Vec<f32>,
    /// Features of the last ticks the shared scorer reads, oldest first (the
    /// last tick alone without a scorer).
    recent: Vec<f32>,
}

impl Stream {
    /// Ticks fed so far.
    pub fn ticks_seen(&self) -> u64 {
        self.seen
    }

    /// The mode.
    pub fn mode(&self) -> StreamMode {
        self.mode
    }

    fn push(&mut self, item: &[f32]) {
        let n = self.per_tick;
        let w = self.ring.len() / n;
        self.ring[self.next * n..(self.next + 1) * n].copy_from_slice(item);
        self.next = (self.next + 1) % w;
    }

    /// The ring in time order; slots never written hold `pad` (or zeros).
    fn window(&self, w: usize, pad: &[f32]) -> Vec<f32> {
        let n = self.per_tick;
        let mut out = Vec::with_capacity(w * n);
        let filled = usize::try_from(self.seen).unwrap_or(usize::MAX).min(w);
        for _ in filled..w {
            if pad.is_empty() {
                out.extend(std::iter::repeat_n(0.0, n));
            } else {
                out.extend_from_slice(pad);
            }
        }
        for i in 0..filled {
            let slot = (self.next + w - filled + i) % w;
            out.extend_from_slice(&self.ring[slot * n..(slot + 1) * n]);
        }
        out
    }
}

/// `gates[t] = W_ih · x[t] + b` for `t` rows of `x` (`[t, input]`).
fn project(layer: &LstmLayer, x: &[f32], t: usize, gates: &mut [f32]) {
    let (k, n) = (layer.input, 4 * layer.hidden);
    assert!(x.len() >= t * k && gates.len() >= t * n && layer.w_ih.len() == n * k);
    for row in gates[..t * n].chunks_exact_mut(n) {
        row.copy_from_slice(&layer.bias);
    }
    if t == 1 {
        // One tick: a sum of rows of W_ihᵀ, skipping zero inputs (ReLU outputs
        // often are).
        for (xk, row) in x[..k].iter().zip(layer.w_ih_t.chunks_exact(n)) {
            if *xk != 0.0 {
                axpy(*xk, row, &mut gates[..n]);
            }
        }
        return;
    }
    gemm(
        (t, k, n),
        (&x[..t * k], k, 1),
        (&layer.w_ih, 1, k),
        &mut gates[..t * n],
    );
}

/// `c[m × n] += a[m × k] · b[k × n]`, each operand given as (values, row
/// stride, column stride); `c` is row-major.
///
/// # Panics
/// When an operand is too short for its shape and strides.
fn gemm(
    (m, k, n): (usize, usize, usize),
    (a, rsa, csa): (&[f32], usize, usize),
    (b, rsb, csb): (&[f32], usize, usize),
    c: &mut [f32],
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(a.len() >= last(m, k, rsa, csa), "gemm: a too short");
    assert!(b.len() >= last(k, n, rsb, csb), "gemm: b too short");
    assert!(c.len() >= m * n, "gemm: c too short");
    // SAFETY: the assertions above show that every element `sgemm` reads from
    // `a` (`i·rsa + l·csa`, i < m, l < k) and `b` (`l·rsb + j·csb`, l < k, j < n)
    // and writes to `c` (`i·n + j`) is in bounds; `c` is a `&mut` borrow, so it
    // overlaps neither input.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            1.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// One LSTM step: `g` holds `W_ih · x + b` and gets `W_hh · h` added; `h` and
/// `c` are updated in place.
fn lstm_step(layer: &LstmLayer, g: &mut [f32], h: &mut [f32], c: &mut [f32]) {
    let hd = layer.hidden;
    for (hk, row) in h.iter().zip(layer.w_hh_t.chunks_exact(4 * hd)) {
        axpy(*hk, row, g);
    }
    for j in 0..hd {
        let i = sigmoid(g[j]);
        let f = sigmoid(g[hd + j]);
        let cell = tanh(g[2 * hd + j]);
        let o = sigmoid(g[3 * hd + j]);
        c[j] = f * c[j] + i * cell;
        h[j] = o * tanh(c[j]);
    }
}

/// `y += a x`.
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `tanh` through the exponential (`2σ(2x) − 1`): within 1e-7 of `f32::tanh`
/// in absolute terms and several times faster.
fn tanh(x: f32) -> f32 {
    2.0 * sigmoid(2.0 * x) - 1.0
}

/// `m` `[rows, cols]` → `[cols, rows]`.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Dot product with eight independent accumulators (vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// 1-D convolution over services, kernel 3, padding 1, then ReLU:
/// `x` `[in, S]` → `y` `[out, S]`.
fn conv1d_relu(conv: &Conv, x: &[f32], ns: usize, y: &mut [f32]) {
    for o in 0..conv.n_out {
        let yo = &mut y[o * ns..(o + 1) * ns];
        yo.fill(conv.b[o]);
        for i in 0..conv.n_in {
            let xi = &x[i * ns..(i + 1) * ns];
            let w = &conv.w[(o * conv.n_in + i) * 3..][..3];
            // k = 0 reads s - 1, k = 1 reads s, k = 2 reads s + 1.
            for s in 1..ns {
                yo[s] += w[0] * xi[s - 1];
            }
            for s in 0..ns {
                yo[s] += w[1] * xi[s];
            }
            for s in 0..ns.saturating_sub(1) {
                yo[s] += w[2] * xi[s + 1];
            }
        }
        yo.iter_mut().for_each(|v| *v = v.max(0.0));
    }
}

/// 2-D convolution, kernel 3 × 3, padding 1, then ReLU:
/// `x` `[in, T, S]` → `y` `[out, T, S]`, as one matrix product of the weights
/// `[out, in·9]` with the unfolded input `[in·9, T·S]`.
fn conv2d_relu(conv: &Conv, x: &[f32], t: usize, ns: usize, y: &mut [f32]) {
    let plane = t * ns;
    let mut cols = vec![0f32; conv.n_in * 9 * plane];
    for i in 0..conv.n_in {
        let xi = &x[i * plane..(i + 1) * plane];
        for kt in 0..3 {
            for ks in 0..3 {
                let row = &mut cols[((i * 3 + kt) * 3 + ks) * plane..][..plane];
                for tt in 0..t {
                    let st = tt + kt;
                    if st < 1 || st > t {
                        continue;
                    }
                    let src = &xi[(st - 1) * ns..st * ns];
                    let dst = &mut row[tt * ns..(tt + 1) * ns];
                    match ks {
                        0 => dst[1..].copy_from_slice(&src[..ns - 1]),
                        1 => dst.copy_from_slice(src),
                        _ => dst[..ns - 1].copy_from_slice(&src[1..]),
                    }
                }
            }
        }
    }
    for (o, yo) in y.chunks_exact_mut(plane).enumerate() {
        yo.fill(conv.b[o]);
    }
    let k = conv.n_in * 9;
    gemm(
        (conv.n_out, k, plane),
        (&conv.w, k, 1),
        (&cols, plane, 1),
        &mut y[..conv.n_out * plane],
    );
    y.iter_mut().for_each(|v| *v = v.max(0.0));
}

/// One model's "when" with another's "who": P(no violation) from `when`, and
/// the rest shared among the services as `who` ranks them (its service
/// probabilities renormalised; evenly when it gives them none).
pub fn combine(when: &[f32], who: &[f32]) -> Vec<f32> {
    let ns = when.len() - 1;
    let quiet = when[ns];
    let total: f32 = who[..ns].iter().sum();
    let mut out: Vec<f32> = if total > 1e-12 {
        who[..ns]
            .iter()
            .map(|p| (1.0 - quiet) * p / total)
            .collect()
    } else {
        vec![(1.0 - quiet) / ns as f32; ns]
    };
    out.push(quiet);
    out
}

/// The element-wise mean of several models' probabilities (an ensemble).
pub fn mean(members: &[&[f32]]) -> Vec<f32> {
    let n = members.len().max(1) as f32;
    let mut out = vec![0.0; members.first().map_or(0, |m| m.len())];
    for m in members {
        for (o, v) in out.iter_mut().zip(*m) {
            *o += v / n;
        }
    }
    out
}

/// Probabilities `[services + 1]` from logits of either output kind.
pub fn probabilities(kind: OutputKind, logits: &[f32]) -> Vec<f32> {
    match kind {
        OutputKind::Softmax => {
            let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
            let s: f32 = e.iter().sum();
            e.iter().map(|v| v / s).collect()
        }
        OutputKind::Sigmoid => {
            let mut p: Vec<f32> = logits.iter().map(|&l| sigmoid(l)).collect();
            let none = p.iter().map(|v| 1.0 - v).product();
            p.push(none);
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_probabilities_take_when_from_one_and_who_from_the_other() {
        // when: 30 % violation; who: ranks service 2 first, its own quiet 0.9.
        let c = combine(&[0.2, 0.1, 0.0, 0.7], &[0.01, 0.02, 0.07, 0.9]);
        assert!((c[3] - 0.7).abs() < 1e-6);
        assert!((c.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((c[2] - 0.3 * 0.7).abs() < 1e-6, "{c:?}");
        let mut rank: Vec<usize> = (0..3).collect();
        rank.sort_by(|&a, &b| c[b].total_cmp(&c[a]));
        assert_eq!(rank, vec![2, 1, 0]);
        // A ranking with nothing on the services shares evenly.
        let e = combine(&[0.3, 0.3, 0.4], &[0.0, 0.0, 1.0]);
        assert!((e[0] - 0.3).abs() < 1e-6 && (e[1] - 0.3).abs() < 1e-6);
    }

    #[test]
    fn an_ensemble_is_the_mean_of_its_members() {
        let m = mean(&[&[0.2, 0.8], &[0.6, 0.4]]);
        assert!(
            (m[0] - 0.4).abs() < 1e-6 && (m[1] - 0.6).abs() < 1e-6,
            "{m:?}"
        );
        assert_eq!(mean(&[&[0.1, 0.9]]), vec![0.1, 0.9]);
        assert!(mean(&[]).is_empty());
    }
}
