//! Batch-1 inference of the hybrid network, 36 services × 20 ticks, one thread:
//! full window vs per-tick streaming (cached convolutions, stateful LSTM).
//! `cargo bench -p seer-predictor --bench inference`

use criterion::{Criterion, criterion_group, criterion_main};
use seer_predictor::bench::untrained;
use seer_predictor::model::{Arch, OutputKind, StreamMode};
use tch::{Device, Kind, Tensor};

fn inference(c: &mut Criterion) {
    tch::set_num_threads(1);
    let _g = tch::no_grad_guard();
    for arch in Arch::ALL {
        let m = untrained(arch, 36, 20, OutputKind::Softmax).expect("valid shape");
        let x = Tensor::randn([1, 20, 36, 1], (Kind::Float, Device::Cpu));
        c.bench_function(&format!("{arch}/full_window"), |b| {
            b.iter(|| m.net.probabilities(&m.net.forward(&x)))
        });
        for (name, mode) in [
            ("stream_exact", StreamMode::Exact),
            ("stream_stateful", StreamMode::Stateful),
        ] {
            let mut st = m.net.stream_state(mode);
            let tick = Tensor::randn([36, 1], (Kind::Float, Device::Cpu));
            c.bench_function(&format!("{arch}/{name}"), |b| {
                b.iter(|| m.net.stream_step(&mut st, &tick))
            });
        }
    }
}

criterion_group!(benches, inference);
criterion_main!(benches);
