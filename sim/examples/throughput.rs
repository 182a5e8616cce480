//! Simulator throughput: simulated RPCs (server spans) per second of wall time on
//! one core.
//!
//! ```text
//! cargo run --release -p seer-sim --example throughput -- [TOPOLOGY] [RATE] [SIM_SECONDS]
//! ```
//!
//! Defaults: `social-network 5000 120`. Spans go to a counting sink (the engine's
//! own cost), then are converted to `seer_traces::Span`s (the cost of handing them
//! to a consumer that needs names), then go through the trace pipeline into a
//! labelled dataset (the whole `seer sim` path but the Parquet write).

#![allow(clippy::unwrap_used)]

use seer_sim::sink::{CountSink, FnSink, SimSpan};
use seer_sim::{LoadShape, Sim, SimConfig, Topology};
use std::time::Instant;

/// CPU time of this thread so far, s (Linux `/proc/thread-self/schedstat`); the
/// machine may be shared, so CPU time is the fairer measure of per-core speed.
fn cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .map(|ns| ns / 1e9)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let topo = args.first().map_or("social-network", |s| s.as_str());
    let rate: f64 = args.get(1).map_or(Ok(5000.0), |s| s.parse())?;
    let secs: u64 = args.get(2).map_or(Ok(120), |s| s.parse())?;
    let topology = Topology::load(topo)?;
    let run = |mode: u8| -> anyhow::Result<(u64, u64, f64, Option<f64>, usize)> {
        let mut cfg = SimConfig::new(
            topology.clone(),
            LoadShape::Constant { rate },
            secs * 1_000_000_000,
        );
        cfg.seed = 1;
        let mut sim = Sim::new(cfg)?;
        let start = Instant::now();
        let cpu0 = cpu_s();
        let mut bytes = 0usize;
        if mode == 2 {
            let mut sink = seer_sim::dataset::PipelineSink::new(100_000_000, 0);
            sim.run(&mut sink);
            let ds = sink.finish(&seer_traces::QosSpec::default(), &sim, String::new());
            bytes += ds.n_ticks();
        } else if mode == 1 {
            let mut sink = FnSink(|s: &SimSpan, t: &Topology| bytes += s.to_span(t).service.len());
            sim.run(&mut sink);
        } else {
            let mut sink = CountSink::default();
            sim.run(&mut sink);
        }
        std::hint::black_box(bytes);
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_s().zip(cpu0).map(|(b, a)| b - a);
        Ok((
            sim.stats().rpcs,
            sim.stats().requests,
            wall,
            cpu,
            sim.slots(),
        ))
    };
    for (label, mode) in [
        ("count sink", 0),
        ("to seer_traces::Span", 1),
        ("through the trace pipeline to a Dataset", 2),
    ] {
        let (rpcs, reqs, wall, cpu, slots) = run(mode)?;
        let cpu_txt = cpu.map_or("n/a".to_string(), |c| {
            format!(
                "{c:.2} s CPU = {:.2} M RPCs per CPU-second",
                rpcs as f64 / c / 1e6
            )
        });
        println!(
            "{topo} at {rate} req/s for {secs} s simulated, {label}: {reqs} requests, {rpcs} RPCs; {wall:.2} s wall = {:.2} M RPCs/s, {:.0}x real time; {cpu_txt}; {slots} request slots",
            rpcs as f64 / wall / 1e6,
            secs as f64 / wall
        );
    }
    Ok(())
}
