//! Simulation → trace pipeline → labelled dataset, and span files read back by
//! Seer's importers.

#![allow(clippy::unwrap_used)]

use seer_sim::dataset::{OtlpFileSink, PipelineSink, run_to_dataset};
use seer_sim::inject::parse_injection;
use seer_sim::sink::{CsvSink, Tee, VecSink};
use seer_sim::{LoadShape, Sim, SimConfig, Topology};
use seer_traces::import::{Format, open};
use seer_traces::{QosSpec, Resource};
use std::io::BufWriter;

const S: u64 = 1_000_000_000;

fn config() -> SimConfig {
    let mut c = SimConfig::new(
        Topology::load("social-network").unwrap(),
        LoadShape::Constant { rate: 500.0 },
        20 * S,
    );
    c.seed = 11;
    c.injections
        .push(parse_injection("post-storage-service:cpu@8s+6s,ramp=2s,intensity=1").unwrap());
    c
}

#[test]
fn dataset_has_the_topology_the_ticks_and_the_ground_truth() {
    let cfg = config();
    let (ds, stats) = run_to_dataset(&cfg).unwrap();
    ds.check_shape().unwrap();
    assert_eq!(ds.n_services(), cfg.topology.services.len());
    // Callers come before callees in the service order.
    let pos = |n: &str| ds.service_index(n).unwrap();
    assert!(pos("nginx-web-server") < pos("home-timeline-service"));
    assert!(pos("home-timeline-service") < pos("post-storage-service"));
    assert!(pos("post-storage-service") < pos("post-storage-memcached"));
    assert_eq!(ds.n_entries(), 3);
    assert!(
        (195..=201).contains(&ds.n_ticks()),
        "{} ticks",
        ds.n_ticks()
    );
    assert_eq!(ds.meta.start_ns, cfg.epoch_ns);
    // Requests in the dataset = requests simulated.
    let reqs: u64 = ds.entry.iter().map(|e| e.requests as u64).sum();
    assert!(
        reqs.abs_diff(stats.completed) <= 5,
        "{reqs} vs {}",
        stats.completed
    );
    // Culprit labels exactly on the injection's ticks.
    let ps = pos("post-storage-service");
    for t in 0..ds.n_ticks() {
        let label = ds.services_at(t).len(); // shape
        assert_eq!(label, ds.n_services());
        let c = ds.culprit[t * ds.n_services() + ps];
        let inside = (80..140).contains(&t);
        assert_eq!(
            c,
            if inside { Some(Resource::Cpu) } else { None },
            "tick {t}"
        );
    }
    // The contention shows in the queue depth of the culprit.
    let q = |t: usize| ds.services_at(t)[ps].queue_mean as f64;
    let before: f64 = (20..80).map(q).sum::<f64>() / 60.0;
    let during: f64 = (110..140).map(q).sum::<f64>() / 30.0;
    assert!(during > 3.0 * before, "{before} -> {during}");
    // The monitor's split: waiting + held = outstanding per tick (the waiting part
    // never exceeds the total), and CPU contention raises the culprit's utilisation.
    for t in 0..ds.n_ticks() {
        for row in ds.services_at(t) {
            assert!(row.wait_mean.is_finite() && row.cpu_util.is_finite());
            assert!(row.hop_mean.is_finite() && row.hop_mean >= 0.0);
            assert!(row.wait_mean <= row.queue_mean + 1e-3, "tick {t}: {row:?}");
            assert!(
                (0.0..=1.0 + 1e-6).contains(&row.cpu_util),
                "tick {t}: {row:?}"
            );
        }
    }
    let u = |t: usize| ds.services_at(t)[ps].cpu_util as f64;
    let (u0, u1) = (
        (20..80).map(u).sum::<f64>() / 60.0,
        (110..140).map(u).sum::<f64>() / 30.0,
    );
    assert!(u1 > 2.0 * u0, "utilisation {u0} -> {u1}");
    let back_path = tempfile::tempdir().unwrap();
    let p = back_path.path().join("d.parquet");
    ds.write_parquet(&p).unwrap();
    let back = seer_traces::Dataset::read_parquet(&p).unwrap();
    let bits = |d: &seer_traces::Dataset| -> Vec<[u32; 4]> {
        d.service
            .iter()
            .map(|r| {
                [
                    r.queue_mean.to_bits(),
                    r.wait_mean.to_bits(),
                    r.cpu_util.to_bits(),
                    r.hop_mean.to_bits(),
                ]
            })
            .collect()
    };
    assert!(
        bits(&back) == bits(&ds),
        "wait_mean/cpu_util/hop_mean do not survive Parquet"
    );
}

#[test]
fn pipeline_queue_depth_matches_the_simulator() {
    let cfg = config();
    let mut sim = Sim::new(cfg.clone()).unwrap();
    let mut sink = PipelineSink::new(cfg.tick_ns, 0);
    sim.run(&mut sink);
    let ds = sink.finish(&QosSpec::default(), &sim, "test".into());
    for (sid, tot) in sim.monitor().totals().iter().enumerate() {
        let name = &sim.topology().services[sid].name;
        let s = ds.service_index(name).unwrap();
        let n = ds.n_ticks();
        let from_ds: f64 = (0..n)
            .map(|t| ds.services_at(t)[s].queue_mean as f64)
            .sum::<f64>()
            / n as f64;
        // Same measure (server spans outstanding), two implementations; the
        // simulator also counts requests still in flight at the end.
        let exact = tot.mean_outstanding(sim.now_ns()) * (sim.now_ns() as f64) / (n as f64 * 1e8);
        assert!(
            (from_ds - exact).abs() <= 0.02 * exact + 0.01,
            "{name}: dataset {from_ds}, simulator {exact}"
        );
    }
}

#[test]
fn per_service_p99_matches_the_pipeline() {
    let cfg = config();
    let tick = cfg.tick_ns;
    let mut sim = Sim::new(cfg.clone()).unwrap();
    let mut sink = PipelineSink::new(tick, 0);
    // What the node reports each tick: (tick start, p99 per service id).
    let mut node: Vec<(u64, Vec<f64>)> = Vec::new();
    for k in 1..=cfg.duration_ns / tick {
        sim.run_until(k * tick, &mut sink);
        let s = sim.latest_tick().unwrap();
        node.push((s.start_ns, s.services.iter().map(|x| x.p99_ms).collect()));
    }
    let ds = sink.finish(&QosSpec::default(), &sim, "test".into());
    let ids: Vec<usize> = sim
        .topology()
        .services
        .iter()
        .map(|sv| ds.service_index(&sv.name).unwrap())
        .collect();
    let (mut both, mut agree, mut neither, mut one) = (0, 0, 0, 0);
    for (start, p99) in &node {
        let t = ((start - ds.meta.start_ns) / tick) as usize;
        if t >= ds.n_ticks() {
            continue;
        }
        let row = ds.services_at(t);
        for (sid, &a) in p99.iter().enumerate() {
            let b = f64::from(row[ids[sid]].p99_ms);
            match (
                a.is_finite(),
                b.is_finite() && row[ids[sid]].completions > 0,
            ) {
                (true, true) => {
                    both += 1;
                    // The pipeline keeps µs and, past 128 samples, a histogram.
                    agree += usize::from((a - b).abs() <= 0.01 * a + 0.002);
                }
                (false, false) => neither += 1,
                _ => one += 1,
            }
        }
    }
    assert!(both > 1000, "{both} ticks compared");
    assert!(agree * 100 >= both * 99, "{agree} of {both} agree");
    assert!(
        one * 100 <= both,
        "{one} ticks with a p99 on one side only ({neither} on neither)"
    );
}

#[test]
fn parquet_output_is_byte_identical_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, seed: u64| {
        let mut cfg = config();
        cfg.seed = seed;
        cfg.duration_ns = 8 * S;
        let (ds, _) = run_to_dataset(&cfg).unwrap();
        let p = dir.path().join(name);
        ds.write_parquet(&p).unwrap();
        std::fs::read(&p).unwrap()
    };
    let a = write("a.parquet", 3);
    let b = write("b.parquet", 3);
    let c = write("c.parquet", 4);
    assert!(a.len() > 10_000);
    assert!(a == b, "same seed, different Parquet bytes");
    assert!(a != c);
}

#[test]
fn span_files_read_back_with_the_importers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.duration_ns = 3 * S;
    cfg.client_spans = true;
    let otlp_path = dir.path().join("spans.otlp");
    let csv_path = dir.path().join("spans.csv");
    let mut sim = Sim::new(cfg).unwrap();
    let otlp = OtlpFileSink::new(
        BufWriter::new(std::fs::File::create(&otlp_path).unwrap()),
        512,
    );
    let csv = CsvSink::new(BufWriter::new(std::fs::File::create(&csv_path).unwrap()));
    let mut sink = Tee(Tee(otlp, csv), VecSink::default());
    sim.run(&mut sink);
    let Tee(Tee(otlp, csv), all) = sink;
    otlp.finish().unwrap();
    csv.finish().unwrap();
    let topo = sim.topology();
    let want: Vec<_> = all.spans.iter().map(|s| s.to_span(topo)).collect();
    assert!(want.len() > 10_000);

    let got: Vec<_> = open(&otlp_path, &Format::Otlp).unwrap().collect();
    assert_eq!(got.len(), want.len());
    let mut g = got.clone();
    let mut w = want.clone();
    g.sort_by_key(|s| s.span_id);
    w.sort_by_key(|s| s.span_id);
    assert!(g == w, "OTLP round trip changed spans");

    let csv_fmt = Format::from_name("csv:kind=kind,status=status").unwrap();
    let got: Vec<_> = open(&csv_path, &csv_fmt).unwrap().collect();
    assert_eq!(got.len(), want.len());
    let mut g = got;
    g.sort_by_key(|s| s.span_id);
    for (a, b) in g.iter().zip(&w) {
        assert_eq!(
            (a.trace_id, a.span_id, a.parent_id),
            (b.trace_id, b.span_id, b.parent_id)
        );
        assert_eq!(
            (&a.service, &a.operation, a.start_ns, a.end_ns),
            (&b.service, &b.operation, b.start_ns, b.end_ns)
        );
        assert_eq!(a.kind, b.kind);
    }
}

/// Network time per service: the trace pipeline pairs each client span with its
/// server span; the simulator's monitor adds up the same hops as they happen. A slow
/// link to a leaf shows at the leaf, not at its caller.
#[test]
fn network_time_from_client_spans_matches_the_simulator() {
    let mut cfg = config();
    cfg.client_spans = true;
    cfg.injections = vec![parse_injection("user-timeline-redis:net@8s+6s,ramp=2s").unwrap()];
    let mut sim = Sim::new(cfg.clone()).unwrap();
    sim.keep_monitor_history();
    let mut sink = PipelineSink::new(cfg.tick_ns, 0);
    sim.run(&mut sink);
    let paired = sink.pipeline().stats().calls_paired;
    let ds = sink.finish(&QosSpec::default(), &sim, "test".into());
    assert!(paired > 10_000, "{paired} calls paired");
    let topo = sim.topology();
    let history = sim.monitor().history().unwrap();
    let first = ((ds.meta.start_ns - sim.epoch_ns()) / ds.meta.interval_ns) as usize;
    let n_topo = topo.services.len();
    let (mut cells, mut equal, mut total_ds, mut total_sim) = (0, 0, 0.0, 0.0);
    for t in 0..ds.n_ticks() {
        for (sid, svc) in topo.services.iter().enumerate() {
            let Some(row) = history.get((first + t) * n_topo + sid) else {
                continue;
            };
            let from_spans = ds.services_at(t)[ds.service_index(&svc.name).unwrap()].hop_mean;
            assert!(from_spans.is_finite() && from_spans >= 0.0);
            cells += 1;
            equal += usize::from((from_spans - row.hop_mean).abs() <= 1e-6);
            total_ds += f64::from(from_spans);
            total_sim += f64::from(row.hop_mean);
        }
    }
    // A reply that lands exactly on a tick boundary may count on either side.
    assert!(
        equal * 1000 >= cells * 999,
        "{equal} of {cells} ticks agree"
    );
    assert!(
        (total_ds - total_sim).abs() <= 1e-4 * total_sim,
        "{total_ds} vs {total_sim}"
    );
    let hop = |name: &str, ticks: std::ops::Range<usize>| {
        let s = ds.service_index(name).unwrap();
        let n = ticks.len() as f64;
        ticks
            .map(|t| f64::from(ds.services_at(t)[s].hop_mean))
            .sum::<f64>()
            / n
    };
    let (before, during) = (
        hop("user-timeline-redis", 20..80),
        hop("user-timeline-redis", 110..140),
    );
    assert!(during > 5.0 * before, "leaf {before} -> {during}");
    let (b, d) = (
        hop("user-timeline-service", 20..80),
        hop("user-timeline-service", 110..140),
    );
    assert!(d < 2.0 * b, "caller {b} -> {d}");
}
