//! Simulator throughput: simulated RPCs (server spans) per second of wall time on
//! one core.
//!
//! ```text
//! cargo run --release -p seer-sim --example throughput -- [TOPOLOGY] [RATE] [SIM_SECONDS]
//! ```
//!
//! Defaults: `social-network 5000 120`. Spans go to a counting sink (the engine's
//! own cost) and then, in a second run, are converted to `seer_traces::Span`s (the
//! cost of handing them to a consumer that needs names).

#![allow(clippy::unwrap_used)]

use seer_sim::sink::{CountSink, FnSink, SimSpan};
use seer_sim::{LoadShape, Sim, SimConfig, Topology};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let topo = args.first().map_or("social-network", |s| s.as_str());
    let rate: f64 = args.get(1).map_or(Ok(5000.0), |s| s.parse())?;
    let secs: u64 = args.get(2).map_or(Ok(120), |s| s.parse())?;
    let topology = Topology::load(topo)?;
    let run = |convert: bool| -> anyhow::Result<(u64, u64, f64, usize)> {
        let mut cfg = SimConfig::new(
            topology.clone(),
            LoadShape::Constant { rate },
            secs * 1_000_000_000,
        );
        cfg.seed = 1;
        let mut sim = Sim::new(cfg)?;
        let start = Instant::now();
        let mut bytes = 0usize;
        if convert {
            let mut sink = FnSink(|s: &SimSpan, t: &Topology| bytes += s.to_span(t).service.len());
            sim.run(&mut sink);
        } else {
            let mut sink = CountSink::default();
            sim.run(&mut sink);
        }
        let wall = start.elapsed().as_secs_f64();
        Ok((sim.stats().rpcs, sim.stats().requests, wall, sim.slots()))
    };
    for (label, convert) in [("count sink", false), ("to seer_traces::Span", true)] {
        let (rpcs, reqs, wall, slots) = run(convert)?;
        println!(
            "{topo} at {rate} req/s for {secs} s simulated, {label}: {reqs} requests, {rpcs} RPCs in {wall:.2} s wall = {:.2} M RPCs/s, {:.0}x real time, {slots} request slots",
            rpcs as f64 / wall / 1e6,
            secs as f64 / wall
        );
    }
    Ok(())
}
