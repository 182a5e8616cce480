//! Validation against queueing theory: M/M/1 and M/M/c stations against the
//! analytic mean number in system and mean wait (Erlang C), and Little's law on
//! every service of `social-network`.

#![allow(clippy::unwrap_used)]

use seer_sim::sink::{NullSink, SimSpan, SpanSink};
use seer_sim::{LoadShape, Sim, SimConfig, Topology};

fn mmc_topology(c: u32, mean_us: f64) -> Topology {
    let toml = format!(
        r#"
name = "mmc"
hop_latency_us = 0
[[service]]
name = "station"
workers = {c}
[service.ops.Serve]
time = {{ dist = "exponential", mean_us = {mean_us} }}
[[api]]
name = "/serve"
call = "station:Serve"
"#
    );
    Topology::from_toml(&toml, "mmc").unwrap()
}

/// Erlang C: probability that an arrival waits, for `c` servers and offered
/// load `a = λ/μ`.
fn erlang_c(c: u32, a: f64) -> f64 {
    let rho = a / c as f64;
    // Sum_{k<c} a^k/k!, computed with running terms.
    let mut term = 1.0;
    let mut sum = 0.0;
    for k in 0..c {
        if k > 0 {
            term *= a / k as f64;
        }
        sum += term;
    }
    let last = term * a / c as f64; // a^c / c!
    let top = last / (1.0 - rho);
    top / (sum + top)
}

/// Runs an M/M/c station; returns (measured L, analytic L, measured Wq, analytic
/// Wq, measured Lq from the monitor's waiting queue, measured utilisation).
fn run_mmc(c: u32, rho: f64, customers: f64, seed: u64) -> (f64, f64, f64, f64, f64, f64) {
    let mean_us = 1000.0;
    let mu = 1e6 / mean_us; // per second
    let lambda = rho * c as f64 * mu;
    let duration_s = customers / lambda;
    let mut cfg = SimConfig::new(
        mmc_topology(c, mean_us),
        LoadShape::Constant { rate: lambda },
        (duration_s * 1e9) as u64,
    );
    cfg.seed = seed;
    let mut sim = Sim::new(cfg).unwrap();
    sim.run(&mut NullSink);
    let tot = sim.monitor().totals()[0];
    let l = tot.mean_outstanding(sim.duration_ns());
    let wq = tot.mean_wait_ns() / 1e9;
    let a = lambda / mu;
    let wq_theory = erlang_c(c, a) / (c as f64 * mu - lambda);
    let l_theory = lambda * (wq_theory + 1.0 / mu);
    let t = sim.duration_ns() as f64;
    let lq = tot.wait_area / t;
    let util = tot.compute_area / (t * c as f64);
    (l, l_theory, wq, wq_theory, lq, util)
}

/// Debug builds are about 20x slower: the high-utilisation checks, which need
/// millions of customers to average out, run 10x shorter there with a tolerance
/// widened to match (15 %); `cargo test --release` runs them in full at 3 %.
const SHORT: bool = cfg!(debug_assertions);

fn check(c: u32, rho: f64, customers: f64) {
    check_tol(c, rho, customers, 0.03)
}

fn check_tol(c: u32, rho: f64, customers: f64, tol: f64) {
    let (l, lt, wq, wqt, lq, util) = run_mmc(c, rho, customers, 42);
    let el = (l - lt).abs() / lt;
    let ew = (wq - wqt).abs() / wqt;
    // The waiting queue (the dataset's wait_mean) is Lq = lambda * Wq, and the share
    // of workers computing (cpu_util) is rho.
    let lqt = wqt * rho * c as f64 * 1000.0;
    let elq = (lq - lqt).abs() / lqt;
    let eu = (util - rho).abs() / rho;
    println!(
        "M/M/{c} rho={rho}: Lq={lq:.4} (theory {lqt:.4}, {:.2}%), utilisation {util:.4} ({:.2}%)",
        elq * 100.0,
        eu * 100.0
    );
    assert!(elq < tol, "M/M/{c} at rho {rho}: Lq {lq} vs {lqt}");
    assert!(
        eu < tol.min(0.02),
        "M/M/{c} at rho {rho}: utilisation {util}"
    );
    println!(
        "M/M/{c} rho={rho}: L={l:.4} (theory {lt:.4}, {:.2}%), Wq={:.4}ms (theory {:.4}ms, {:.2}%)",
        el * 100.0,
        wq * 1e3,
        wqt * 1e3,
        ew * 100.0
    );
    assert!(el < tol, "M/M/{c} at rho {rho}: L {l} vs {lt}");
    assert!(ew < tol, "M/M/{c} at rho {rho}: Wq {wq} vs {wqt}");
}

#[test]
fn erlang_c_reference_values() {
    // M/M/1: P(wait) = rho.
    assert!((erlang_c(1, 0.8) - 0.8).abs() < 1e-12);
    // Textbook value: c = 2, a = 1 -> 1/3.
    assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn mm1_low_and_mid_utilisation() {
    check(1, 0.5, 400_000.0);
    check(1, 0.8, 1_000_000.0);
}

#[test]
fn mm1_high_utilisation() {
    if SHORT {
        println!("debug build: short run, 15 % tolerance (run with --release for the 3 % check)");
        check_tol(1, 0.95, 600_000.0, 0.15);
    } else {
        check(1, 0.95, 6_000_000.0);
    }
}

#[test]
fn mmc_low_and_mid_utilisation() {
    check(4, 0.5, 400_000.0);
    check(4, 0.8, 1_000_000.0);
}

#[test]
fn mmc_high_utilisation() {
    if SHORT {
        println!("debug build: short run, 15 % tolerance (run with --release for the 3 % check)");
        check_tol(8, 0.95, 400_000.0, 0.15);
    } else {
        check(8, 0.95, 4_000_000.0);
    }
}

/// Accumulates, per service, the time integral of outstanding server spans
/// (sum of durations) from the spans themselves.
struct SpanArea {
    area: Vec<f64>,
    count: Vec<u64>,
}

impl SpanSink for SpanArea {
    fn span(&mut self, s: &SimSpan, _: &Topology) {
        if s.kind.is_server_side() {
            self.area[s.service as usize] += (s.end_ns - s.start_ns) as f64;
            self.count[s.service as usize] += 1;
        }
    }
}

#[test]
fn littles_law_on_every_social_network_service() {
    let topo = Topology::load("social-network").unwrap();
    let n = topo.services.len();
    let dur = 30_000_000_000;
    let mut cfg = SimConfig::new(topo, LoadShape::Constant { rate: 800.0 }, dur);
    cfg.seed = 3;
    let mut sim = Sim::new(cfg).unwrap();
    let mut sink = SpanArea {
        area: vec![0.0; n],
        count: vec![0; n],
    };
    sim.run(&mut sink);
    let t = dur as f64;
    for (sid, tot) in sim.monitor().totals().iter().enumerate() {
        let name = &sim.topology().services[sid].name;
        assert!(
            tot.completions > 100,
            "{name}: {} completions",
            tot.completions
        );
        // L from the time integral, lambda and W from completions.
        let l = tot.mean_outstanding(dur);
        let lambda = tot.completions as f64 / t;
        let w = tot.mean_sojourn_ns();
        let err = (l - lambda * w).abs() / l;
        assert!(
            err < 0.02,
            "{name}: L={l} lambda*W={} ({:.2}%)",
            lambda * w,
            err * 100.0
        );
        // The spans carry the same information: outstanding server spans.
        assert_eq!(sink.count[sid], tot.completions, "{name}");
        let from_spans = sink.area[sid] / t;
        assert!(
            (from_spans - lambda * w).abs() / l < 1e-6,
            "{name}: {from_spans} vs {}",
            lambda * w
        );
    }
}
