//! Behaviour of the simulator, measured on its spans and its monitor: fan-out,
//! blocking propagation, each injection kind, actuators, determinism, memory.

#![allow(clippy::unwrap_used)]

use seer_sim::inject::{Campaign, parse_injection};
use seer_sim::sink::{CsvSink, NullSink, VecSink};
use seer_sim::{Action, Fault, Injection, LoadShape, Sim, SimConfig, Topology};
use seer_traces::SpanKind;
use std::collections::HashMap;

const S: u64 = 1_000_000_000;

fn cfg(topo: &str, rate: f64, secs: u64) -> SimConfig {
    SimConfig::new(
        Topology::load(topo).unwrap(),
        LoadShape::Constant { rate },
        secs * S,
    )
}

fn mean_outstanding(sim: &Sim, service: &str) -> f64 {
    let sid = sim.topology().service_id(service).unwrap();
    sim.monitor().totals()[sid].mean_outstanding(sim.now_ns())
}

#[test]
fn fan_out_waits_for_its_slowest_child() {
    let mut sim = Sim::new(cfg("fanout", 300.0, 5)).unwrap();
    let mut sink = VecSink::default();
    sim.run(&mut sink);
    let mut children: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    for s in &sink.spans {
        if let Some(p) = s.parent_id {
            children.entry(p).or_default().push((s.start_ns, s.end_ns));
        }
    }
    let roots: Vec<_> = sink
        .spans
        .iter()
        .filter(|s| s.parent_id.is_none())
        .collect();
    assert!(roots.len() > 1000);
    let hop = 50_000;
    for r in roots {
        let kids = &children[&r.span_id];
        assert_eq!(kids.len(), 8);
        let last = kids.iter().map(|k| k.1).max().unwrap();
        // The root replies exactly when the last reply is back.
        assert_eq!(r.end_ns, last + hop, "root {:x}", r.span_id);
        // All children were called at once, after the root's own work.
        let first_start = kids.iter().map(|k| k.0).min().unwrap();
        assert!(kids.iter().all(|k| k.0 == first_start));
    }
}

#[test]
fn a_slow_callee_fills_its_blocking_callers() {
    let base = {
        let mut sim = Sim::new(cfg("chain", 1500.0, 20)).unwrap();
        sim.run(&mut NullSink);
        (
            mean_outstanding(&sim, "front"),
            mean_outstanding(&sim, "middle"),
            mean_outstanding(&sim, "back"),
        )
    };
    let slow = {
        let mut c = cfg("chain", 1500.0, 20);
        c.injections
            .push(parse_injection("back:cpu@0s+20s,intensity=0.3").unwrap());
        let mut sim = Sim::new(c).unwrap();
        sim.run(&mut NullSink);
        (
            mean_outstanding(&sim, "front"),
            mean_outstanding(&sim, "middle"),
            mean_outstanding(&sim, "back"),
        )
    };
    println!("baseline {base:?}, back slowed {slow:?}");
    // The contended service's queue grows, and so do its callers', although
    // their own work did not change: they hold workers while waiting.
    assert!(slow.2 > 1.5 * base.2, "back {base:?} -> {slow:?}");
    assert!(slow.1 > 1.5 * base.1, "middle {base:?} -> {slow:?}");
    assert!(slow.0 > 1.3 * base.0, "front {base:?} -> {slow:?}");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let run = |seed: u64| {
        let mut c = cfg("social-network", 400.0, 10);
        c.seed = seed;
        c.client_spans = true;
        let camp = Campaign {
            warmup_ns: S,
            quiet_ns: (S / 2, S),
            duration_ns: (S, 2 * S),
            ..Campaign::default()
        };
        c.injections = camp.generate(&c.topology, c.duration_ns, seed).unwrap();
        assert!(c.injections.len() >= 3);
        let mut sim = Sim::new(c).unwrap();
        let mut sink = CsvSink::new(Vec::new());
        // Step by step, acting in the middle: still deterministic.
        for k in 1..=100u64 {
            sim.run_until(k * 100_000_000, &mut sink);
            if k == 50 {
                sim.scale_out("post-storage-service", 2).unwrap();
            }
        }
        sink.finish().unwrap()
    };
    let a = run(7);
    let b = run(7);
    let c = run(8);
    assert!(a.len() > 5_000_000, "{} bytes", a.len());
    assert!(a == b, "same seed gave different output");
    assert!(a != c);
}

#[test]
fn spans_are_valid_and_end_in_order() {
    let mut c = cfg("social-network", 500.0, 5);
    c.client_spans = true;
    let mut sim = Sim::new(c).unwrap();
    let mut sink = VecSink::default();
    sim.run(&mut sink);
    let topo = sim.topology().clone();
    let mut last = 0;
    let mut kinds: HashMap<SpanKind, u64> = HashMap::new();
    for s in &sink.spans {
        assert!(s.end_ns >= last, "end times must not decrease");
        last = s.end_ns;
        s.to_span(&topo).validate().unwrap();
        *kinds.entry(s.kind).or_default() += 1;
    }
    assert!(kinds[&SpanKind::Server] > 10_000);
    assert!(kinds[&SpanKind::Client] > 10_000);
    // The home-timeline fan-out is handled from the message queue.
    assert!(kinds[&SpanKind::Consumer] > 100);
    let roots: Vec<_> = sink
        .spans
        .iter()
        .filter(|s| s.parent_id.is_none())
        .collect();
    let names: std::collections::BTreeSet<_> = roots.iter().map(|s| s.operation(&topo)).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let compose = roots
        .iter()
        .filter(|s| s.operation(&topo) == "/wrk2-api/post/compose")
        .count() as f64;
    let share = compose / roots.len() as f64;
    assert!((share - 0.1).abs() < 0.02, "compose share {share}");
}

fn injected(topo: &str, rate: f64, secs: u64, inj: Option<&str>) -> Sim {
    let mut c = cfg(topo, rate, secs);
    c.seed = 5;
    if let Some(i) = inj {
        c.injections.push(parse_injection(i).unwrap());
    }
    let mut sim = Sim::new(c).unwrap();
    sim.run(&mut NullSink);
    sim
}

#[test]
fn each_contention_slows_its_service_by_its_sensitivity() {
    // memcached-like `back` (cache profile: llc 1.0, disk 0).
    let base = injected("chain", 800.0, 10, None);
    let base_w = base.monitor().totals()[2].mean_sojourn_ns();
    let llc = injected("chain", 800.0, 10, Some("back:llc@0s+10s,intensity=0.5"));
    let disk = injected("chain", 800.0, 10, Some("back:disk@0s+10s,intensity=1"));
    let llc_w = llc.monitor().totals()[2].mean_sojourn_ns();
    let disk_w = disk.monitor().totals()[2].mean_sojourn_ns();
    // llc: work x (1 + 2 * 1.0 * 0.5) = 2x: sojourn grows at least 2x (queueing adds).
    assert!(llc_w > 2.0 * base_w, "{base_w} -> {llc_w}");
    // disk sensitivity is 0 for a cache: nothing changes, identical run.
    assert_eq!(disk_w, base_w);
}

#[test]
fn network_contention_delays_the_hops_of_its_service() {
    let base = injected("chain", 200.0, 5, None);
    let net = injected("chain", 200.0, 5, Some("back:net@0s+5s,intensity=0.5"));
    let b = base.monitor().totals()[1].mean_sojourn_ns();
    let n = net.monitor().totals()[1].mean_sojourn_ns();
    // middle -> back round trip: 2 x 50 µs becomes 2 x 50 x (1 + 40*0.8*0.5) = 1.7 ms more.
    let extra = n - b;
    assert!((extra - 1_600_000.0).abs() < 150_000.0, "{b} -> {n}");
}

#[test]
fn app_faults_act_as_documented() {
    let base = injected("chain", 800.0, 10, None);
    // Retry storm: a third of the replies fail, callers retry.
    let storm = injected(
        "chain",
        800.0,
        10,
        Some("back:retry_storm@0s+10s,intensity=0.3"),
    );
    let arr = |s: &Sim, i: usize| s.monitor().totals()[i].arrivals as f64;
    let amp = arr(&storm, 2) / arr(&base, 2);
    // Expected attempts per call with 3 retries: 1 + p + p^2 + p^3.
    let want = 1.0 + 0.3 + 0.09 + 0.027;
    assert!((amp - want).abs() < 0.05, "amplification {amp} vs {want}");
    // Failed attempts are error spans; retries hide them from the client.
    assert!(
        storm.stats().error_spans as f64 > 0.25 * arr(&storm, 2),
        "{:?}",
        storm.stats()
    );
    assert_eq!(base.stats().error_spans, 0);
    // Lock: every request serialised on one lock -> back behaves as one worker.
    let lock = injected("chain", 2500.0, 10, Some("back:lock@0s+10s,intensity=1"));
    let base25 = injected("chain", 2500.0, 10, None);
    let (ql, qb) = (
        mean_outstanding(&lock, "back"),
        mean_outstanding(&base25, "back"),
    );
    // One lock at utilisation 0.75 instead of two workers at 0.375 each.
    assert!(ql > 2.0 * qb, "{qb} -> {ql}");
}

#[test]
fn a_call_cycle_feeds_back_until_saturation_and_timeouts_end_it() {
    // chain with a 20 ms call timeout.
    let toml = seer_sim::builtin::source("chain").unwrap().replace(
        "hop_latency_us = 50",
        "hop_latency_us = 50\ncall_timeout_ms = 20",
    );
    let topo = Topology::from_toml(&toml, "chain-timeout").unwrap();
    let run = |inj: Option<&str>| {
        let mut c = SimConfig::new(topo.clone(), LoadShape::Constant { rate: 500.0 }, 12 * S);
        c.seed = 4;
        c.injections
            .extend(inj.map(|i| parse_injection(i).unwrap()));
        let mut sim = Sim::new(c).unwrap();
        let during = step_mean(&mut sim, "middle", 1, 6);
        let after = step_mean(&mut sim, "middle", 9, 12);
        (
            during,
            after,
            sim.stats(),
            sim.monitor().totals()[2].arrivals,
        )
    };
    let (base_during, base_after, base_stats, base_back) = run(None);
    let (during, after, stats, back) = run(Some("middle:cycle@0s+6s,intensity=0.7,peer=back"));
    println!(
        "middle queue: {base_during:.2} -> {during:.2} during the cycle, {after:.2} after; {stats:?}"
    );
    // Back gets the cycle's extra calls; middle's workers fill up (4 of 4).
    assert!(
        back as f64 > 1.3 * base_back as f64,
        "{base_back} -> {back}"
    );
    assert!(
        during > 3.0 && during > 5.0 * base_during,
        "{base_during} -> {during}"
    );
    assert!(stats.timeouts > 0 && base_stats.timeouts == 0);
    // Timeouts break the cycle once the injection ends.
    assert!(after < 2.0 * base_after + 0.2, "{base_after} -> {after}");
}

#[test]
fn a_deadline_sheds_the_backlog_so_an_overload_ends_with_its_cause() {
    // Outside load at `back`'s capacity for 4 s on top of the clients' 4000/s.
    let topology = |line: &str| {
        let toml = seer_sim::builtin::source("chain").unwrap().replace(
            "hop_latency_us = 50",
            &format!("hop_latency_us = 50\n{line}"),
        );
        Topology::from_toml(&toml, "chain-deadline")
    };
    let run = |deadline: &str| {
        let mut c = SimConfig::new(
            topology(deadline).unwrap(),
            LoadShape::Constant { rate: 4000.0 },
            8 * S,
        );
        c.seed = 3;
        c.injections
            .push(parse_injection("back:load@1s+4s,intensity=1").unwrap());
        let mut sim = Sim::new(c).unwrap();
        let during = step_mean(&mut sim, "front", 3, 5);
        let after = step_mean(&mut sim, "front", 6, 8);
        (during, after, sim.stats())
    };
    let (during, after, stats) = run("");
    let (d_during, d_after, d_stats) = run("deadline_ms = 50");
    println!(
        "front queue: {during:.0} during, {after:.0} after without a deadline; {d_during:.0} and {d_after:.1} with 50 ms; {d_stats:?}"
    );
    // `back`'s outside load starves the chain: the clients' requests queue at
    // `front`. Unbounded, they still number thousands seconds after the load
    // stopped (4000/s arrive, a little more drains).
    assert!(during > 5000.0 && after > 5000.0, "{during} {after}");
    assert_eq!(stats.expired, 0);
    // With a deadline the queue holds about 50 ms of arrivals and is gone
    // once the load stops.
    assert!(d_during < 1000.0, "{d_during}");
    assert!(d_after < 20.0, "{d_after}");
    assert!(d_stats.expired > 1000, "{d_stats:?}");
    // Clients see failures (their calls expired) instead of minutes of queueing.
    assert!(
        d_stats.failed > 0 && stats.failed == 0,
        "{stats:?} {d_stats:?}"
    );
    for bad in ["deadline_ms = 0", "deadline_ms = -5", "deadline_ms = nan"] {
        assert!(topology(bad).is_err(), "{bad}");
    }
}

#[test]
fn load_spikes_add_requests() {
    let base = injected("chain", 400.0, 10, None);
    let front = injected("chain", 400.0, 10, Some("front:load@0s+10s,intensity=0.5"));
    // Front end: rate x (1 + 2 * 0.5) = 2x.
    let r = front.stats().requests as f64 / base.stats().requests as f64;
    assert!((r - 2.0).abs() < 0.1, "{r}");
    // Inner service: outside requests at 0.5 x capacity (2 workers / 300 µs).
    let mid = injected("chain", 400.0, 10, Some("back:load@0s+10s,intensity=0.5"));
    let extra =
        (mid.monitor().totals()[2].arrivals - base.monitor().totals()[2].arrivals) as f64 / 10.0;
    let want = 0.5 * 2.0 / 300e-6;
    assert!((extra - want).abs() / want < 0.05, "{extra} vs {want}");
    assert_eq!(mid.stats().requests, base.stats().requests);
}

/// Mean outstanding at `service` over `[from, to)` seconds, stepping the sim.
fn step_mean(sim: &mut Sim, service: &str, from: u64, to: u64) -> f64 {
    let sid = sim.topology().service_id(service).unwrap();
    sim.run_until(from * S, &mut NullSink);
    let a0 = sim.monitor().totals()[sid].mean_outstanding(from * S) * (from * S) as f64;
    sim.run_until(to * S, &mut NullSink);
    let a1 = sim.monitor().totals()[sid].mean_outstanding(to * S) * (to * S) as f64;
    (a1 - a0) / ((to - from) * S) as f64
}

#[test]
fn isolating_the_contended_resource_mitigates_it_and_others_do_nothing() {
    let make = || {
        let mut c = cfg("chain", 1500.0, 30);
        c.seed = 9;
        c.injections
            .push(parse_injection("back:cpu@5s+25s,intensity=0.3").unwrap());
        Sim::new(c).unwrap()
    };
    // No action.
    let mut none = make();
    let q_none = step_mean(&mut none, "back", 10, 20);
    // Right action: CPU isolation at 10 s.
    let mut right = make();
    right.run_until(10 * S, &mut NullSink);
    right.set_cpu_share("back", 1.0).unwrap();
    let q_right = step_mean(&mut right, "back", 11, 20);
    // Wrong actions: cache ways and network rate at 10 s.
    let mut wrong = make();
    let mut sink_wrong = VecSink::default();
    wrong.run_until(10 * S, &mut sink_wrong);
    wrong.set_cache_ways("back", 11).unwrap();
    wrong.set_net_rate("back", 10_000.0).unwrap();
    wrong.run(&mut sink_wrong);
    let mut none2 = make();
    let mut sink_none = VecSink::default();
    none2.run(&mut sink_none);
    println!("back queue: none {q_none}, cpu isolated {q_right}");
    assert!(q_right < 0.5 * q_none, "{q_none} -> {q_right}");
    // Nil effect: exactly the same spans as without the actions.
    assert_eq!(sink_wrong.spans.len(), sink_none.spans.len());
    assert!(
        sink_wrong.spans == sink_none.spans,
        "a wrong-resource action changed the run"
    );
    assert_eq!(wrong.stats().actions, 2);
}

#[test]
fn actions_take_effect_after_their_delay() {
    let mut c = cfg("chain", 100.0, 20);
    c.control.actuation_delay_ns = 80_000_000;
    c.control.scale_out_delay_ns = 3 * S;
    let mut sim = Sim::new(c).unwrap();
    sim.run_until(S, &mut NullSink);
    sim.set_workers("middle", 9).unwrap();
    sim.scale_out("back", 3).unwrap();
    sim.run_until(S + 79_000_000, &mut NullSink);
    assert_eq!(sim.capacity(1), (4, 1));
    sim.run_until(S + 80_000_000, &mut NullSink);
    assert_eq!(sim.capacity(1), (9, 1));
    assert_eq!(sim.capacity(2).1, 1);
    sim.run_until(4 * S, &mut NullSink);
    assert_eq!(sim.capacity(2).1, 3);
    sim.run_until(10 * S, &mut NullSink);
    // New instances take requests.
    let out = sim.outstanding(2);
    assert_eq!(out.len(), 3);
    let arrivals_before = sim.monitor().totals()[2].arrivals;
    sim.revert("back").unwrap();
    sim.revert("middle").unwrap();
    sim.run_until(11 * S, &mut NullSink);
    assert_eq!(sim.capacity(1), (4, 1));
    assert_eq!(sim.capacity(2).1, 1);
    sim.run(&mut NullSink);
    assert!(sim.monitor().totals()[2].arrivals > arrivals_before);
    let bad = sim
        .apply(&Action::SetCacheWays {
            service: "back".into(),
            ways: 12,
        })
        .unwrap_err()
        .to_string();
    assert!(bad.contains("\"back\"") && bad.contains("12"), "{bad}");
    let bad = sim.set_workers("nope", 1).unwrap_err().to_string();
    assert!(bad.contains("\"nope\""), "{bad}");
}

#[test]
fn scale_out_escapes_an_instance_contention() {
    let make = || {
        let mut c = cfg("chain", 1500.0, 20);
        c.injections.push(Injection {
            service: "back".into(),
            instance: Some(0),
            fault: Fault::Cpu,
            start_ns: 0,
            ramp_ns: 0,
            duration_ns: 20 * S,
            intensity: 0.3,
        });
        Sim::new(c).unwrap()
    };
    let mut a = make();
    let qa = step_mean(&mut a, "back", 8, 20);
    let mut b = make();
    b.scale_out("back", 2).unwrap();
    let qb = step_mean(&mut b, "back", 8, 20);
    assert!(qb < 0.6 * qa, "{qa} -> {qb}");
}

#[test]
fn memory_does_not_grow_with_simulated_time() {
    let mut sim = Sim::new(cfg("social-network", 800.0, 40)).unwrap();
    sim.run_until(10 * S, &mut NullSink);
    let early = sim.in_flight();
    let slots_early = sim.slots();
    sim.run(&mut NullSink);
    assert!(sim.in_flight() < 200, "{}", sim.in_flight());
    assert!(early < 200);
    // Slots are recycled: a long run needs about as many as a short one.
    assert!(
        sim.slots() <= slots_early * 2 + 64,
        "{slots_early} -> {}",
        sim.slots()
    );
}

#[test]
fn latest_tick_reports_the_last_100ms() {
    let mut sim = Sim::new(cfg("chain", 1000.0, 5)).unwrap();
    assert!(sim.latest_tick().is_none());
    sim.run_until(2 * S, &mut NullSink);
    let t = sim.latest_tick().unwrap().clone();
    assert_eq!(t.index, 19);
    assert_eq!(t.start_ns, sim.epoch_ns() + 1_900_000_000);
    let reqs = t.apis[0].requests;
    assert!((60..=140).contains(&reqs), "{reqs}");
    assert!(t.apis[0].p99_ms > t.apis[0].p50_ms);
    assert!(t.services[2].queue_mean > 0.0);
}

#[test]
fn every_builtin_topology_serves_a_moderate_load() {
    for name in seer_sim::builtin::NAMES {
        let mut sim = Sim::new(cfg(name, 300.0, 4)).unwrap();
        let mut sink = VecSink::default();
        sim.run(&mut sink);
        let st = sim.stats();
        assert!(
            st.completed as f64 >= 0.98 * st.requests as f64,
            "{name}: {st:?}"
        );
        assert!(
            sim.in_flight() < 50,
            "{name}: {} in flight",
            sim.in_flight()
        );
        // Every service of the topology gets traffic.
        for (sid, tot) in sim.monitor().totals().iter().enumerate() {
            assert!(
                tot.arrivals > 0,
                "{name}: {} idle",
                sim.topology().services[sid].name
            );
        }
        assert_eq!(sink.spans.len() as u64, st.spans);
    }
}
