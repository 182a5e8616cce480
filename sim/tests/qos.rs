//! An injected CPU contention on one service of `social-network`, at a load that
//! otherwise meets QoS, produces an end-to-end p99 violation, and the culprit's
//! queue depth rises before the end-to-end p99 crosses its target.

#![allow(clippy::unwrap_used)]

use seer_sim::inject::parse_injection;
use seer_sim::sink::NullSink;
use seer_sim::{LoadShape, Sim, SimConfig, Topology};

const TICK: u64 = 100_000_000;

#[test]
fn cpu_contention_violates_qos_and_queues_lead() {
    let topo = Topology::load("social-network").unwrap();
    let mut cfg = SimConfig::new(topo, LoadShape::Constant { rate: 800.0 }, 60_000_000_000);
    cfg.seed = 1;
    let culprit = "post-storage-service";
    cfg.injections
        .push(parse_injection(&format!("{culprit}:cpu@25s+35s,ramp=20s,intensity=1")).unwrap());
    let inj_tick = 250;
    let mut sim = Sim::new(cfg).unwrap();
    let sid = sim.topology().service_id(culprit).unwrap();
    let api = 0; // /wrk2-api/home-timeline/read, 60 % of the load
    let (mut p99, mut queue) = (Vec::new(), Vec::new());
    for k in 1..=600u64 {
        sim.run_until(k * TICK, &mut NullSink);
        let t = sim.latest_tick().unwrap();
        p99.push(t.apis[api].p99_ms);
        queue.push(t.services[sid].queue_mean);
    }
    // Target: 2 x the median per-tick p99 of the first 20 s (the QosSpec default).
    let mut reference: Vec<f64> = p99[..200].iter().copied().filter(|x| !x.is_nan()).collect();
    reference.sort_by(f64::total_cmp);
    let target = 2.0 * reference[reference.len() / 2];
    let violated = |t: usize| p99[t] > target;
    // QoS is met before the injection: no sustained violation (3 ticks in a row),
    // and at most 3 % of ticks over the target (a p99 over ~50 requests is noisy).
    let sustained = |t: usize| (t..t + 3).all(violated);
    let before = (0..inj_tick).filter(|&t| violated(t)).count();
    assert!(
        before * 100 <= 3 * inj_tick,
        "{before} violating ticks before the injection (target {target:.2} ms)"
    );
    assert!(
        !(0..inj_tick - 3).any(sustained),
        "sustained violation before the injection"
    );
    let v = (inj_tick..p99.len() - 3).find(|&t| sustained(t));
    let Some(v) = v else {
        panic!("no violation after the injection (target {target:.2} ms)")
    };
    // The culprit's queue depth rises (4 sigma over its baseline, 3 ticks) before.
    let base = &queue[50..inj_tick];
    let m = base.iter().sum::<f64>() / base.len() as f64;
    let sd = (base.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / base.len() as f64).sqrt();
    let high = |t: usize| queue[t] > m + 4.0 * sd;
    let q = (inj_tick..queue.len() - 3)
        .find(|&t| (t..t + 3).all(high))
        .expect("queue never rose");
    println!(
        "target {target:.2} ms; queue of {culprit} rose at {:.1} s, p99 violation at {:.1} s: lead time {} ms",
        q as f64 / 10.0,
        v as f64 / 10.0,
        (v as i64 - q as i64) * 100
    );
    assert!(q < v, "queue rose at tick {q}, violation at tick {v}");
}
