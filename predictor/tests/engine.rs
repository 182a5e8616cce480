//! The pure-Rust engine against tch: same weights, same inputs, same
//! probabilities (to float rounding), for every architecture, output kind,
//! window mode and checkpoint path.

#![allow(clippy::unwrap_used)]

use seer_predictor::Model;
use seer_predictor::bench::untrained;
use seer_predictor::model::{Arch, OutputKind, StreamMode};
use tch::{Device, Kind, Tensor};

const TOL: f32 = 2e-5;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The hybrid's shared service scorer, in each of its forms.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Head {
    None,
    /// Linear, on the last tick.
    Last,
    /// A hidden layer over the last four ticks.
    Ticks,
    /// The same, naming culprits alone.
    Shared,
}

/// A random model whose weights are scaled up, so that gates saturate and
/// rounding differences would show.
fn model(arch: Arch, output: OutputKind, head: Head, seed: i64) -> Model {
    tch::set_num_threads(1);
    tch::manual_seed(seed);
    let mut m = untrained(arch, 9, 7, output).unwrap();
    if head != Head::Last {
        let mut h = m.header.clone();
        h.model.service_head = head != Head::None;
        if matches!(head, Head::Ticks | Head::Shared) {
            (h.model.head_ticks, h.model.head_hidden) = (4, 5);
            h.model.shared_culprit = head == Head::Shared;
        }
        m = Model::new(h, Device::Cpu).unwrap();
    }
    let _g = tch::no_grad_guard();
    for (_, mut v) in m.vs.variables() {
        let scaled = &v * 2.5;
        v.copy_(&scaled);
    }
    m
}

fn variants() -> Vec<(Arch, OutputKind, Head)> {
    let mut v = Vec::new();
    for arch in Arch::ALL {
        for out in [OutputKind::Softmax, OutputKind::Sigmoid] {
            v.push((arch, out, Head::None));
            if arch == Arch::Hybrid {
                v.push((arch, out, Head::Last));
                v.push((arch, out, Head::Ticks));
                if out == OutputKind::Softmax {
                    v.push((arch, out, Head::Shared));
                }
            }
        }
    }
    v
}

#[test]
fn full_windows_match_tch() {
    for (i, (arch, out, head)) in variants().into_iter().enumerate() {
        let m = model(arch, out, head, i as i64);
        let e = m.to_engine().unwrap();
        let x = Tensor::randn([16, 7, 9, 1], (Kind::Float, Device::Cpu)) * 2.0;
        let _g = tch::no_grad_guard();
        let want: Vec<Vec<f32>> = Vec::try_from(m.net.probabilities(&m.net.forward(&x))).unwrap();
        let flat: Vec<f32> = Vec::try_from(x.flatten(0, -1)).unwrap();
        let mut worst = 0f32;
        for (b, w) in want.iter().enumerate() {
            let got = e.predict(&flat[b * 63..(b + 1) * 63]);
            assert_eq!(got.len(), 10);
            worst = worst.max(max_diff(&got, w));
        }
        assert!(worst < TOL, "{arch} {out:?} head {head:?}: {worst}");
    }
}

#[test]
fn streams_match_tch_streams_tick_by_tick() {
    for (i, (arch, out, head)) in variants().into_iter().enumerate() {
        let m = model(arch, out, head, 100 + i as i64);
        let e = m.to_engine().unwrap();
        let _g = tch::no_grad_guard();
        let ticks = Tensor::randn([15, 9, 1], (Kind::Float, Device::Cpu)) * 2.0;
        for mode in [StreamMode::Exact, StreamMode::Stateful] {
            let mut ts = m.net.stream_state(mode);
            let mut es = e.stream(mode);
            // From the first (padded) tick to well past the window.
            for t in 0..15 {
                let tick = ticks.get(t);
                let want: Vec<f32> = Vec::try_from(m.net.stream_step(&mut ts, &tick)).unwrap();
                let flat: Vec<f32> = Vec::try_from(tick.flatten(0, -1)).unwrap();
                let got = e.step(&mut es, &flat);
                let d = max_diff(&got, &want);
                assert!(
                    d < TOL,
                    "{arch} {out:?} head {head:?} {mode:?} tick {t}: {d}"
                );
            }
            assert_eq!(es.ticks_seen(), 15);
        }
    }
}

#[test]
fn engine_loads_the_checkpoint_file_tch_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.seer");
    let mut m = model(Arch::Hybrid, OutputKind::Softmax, Head::Shared, 7);
    m.save(&path).unwrap();
    let e = seer_infer::Engine::load(&path).unwrap();
    assert_eq!(e.id(), m.id);
    assert_eq!(e.header(), &m.header);
    let x = Tensor::randn([1, 7, 9, 1], (Kind::Float, Device::Cpu));
    let _g = tch::no_grad_guard();
    let want: Vec<f32> =
        Vec::try_from(m.net.probabilities(&m.net.forward(&x)).flatten(0, -1)).unwrap();
    let flat: Vec<f32> = Vec::try_from(x.flatten(0, -1)).unwrap();
    assert!(max_diff(&e.predict(&flat), &want) < TOL);
    // A corrupt file is refused by the engine's loader too.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = seer_infer::Engine::load(&path).unwrap_err().to_string();
    assert!(err.contains("corrupt"), "{err}");
}
