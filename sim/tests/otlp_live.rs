//! `--otlp`: a run's spans reach a real OTLP/gRPC receiver complete and unchanged,
//! and an unreachable receiver stops the run before anything is written.

#![allow(clippy::unwrap_used)]

use seer_sim::cli::{Outputs, run_to_dir};
use seer_sim::sink::VecSink;
use seer_sim::{LoadShape, SimConfig, Topology};
use seer_traces::Span;
use seer_traces::receiver::{Batch, OtlpReceiver, ReceiverConfig, serve};

fn config() -> SimConfig {
    let topo = Topology::load("fanout").unwrap();
    let mut cfg = SimConfig::new(
        topo,
        LoadShape::parse("constant", 200.0).unwrap(),
        2_000_000_000,
    );
    cfg.seed = 11;
    cfg
}

#[test]
fn spans_reach_a_live_receiver() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let receiver = OtlpReceiver::new(tx, ReceiverConfig::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                serve(receiver, l, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
    });
    let consumer = std::thread::spawn(move || {
        let mut got: Vec<Span> = Vec::new();
        while let Some(b) = rx.blocking_recv() {
            if let Batch::Spans(s) = b {
                got.extend(s);
            }
        }
        got
    });

    let cfg = config();
    let dir = tempfile::tempdir().unwrap();
    let outputs = Outputs {
        otlp: Some(addr.to_string()),
        ..Default::default()
    };
    let summary = run_to_dir(&cfg, dir.path(), &outputs, |_, _| {}).unwrap();
    stop_tx.send(()).unwrap();
    server.join().unwrap();
    let got = consumer.join().unwrap();

    // The same seed again, spans kept in process: the reference.
    let mut keep = VecSink::default();
    seer_sim::run_to_dataset_with(&cfg, &seer_traces::QosSpec::default(), &mut keep).unwrap();
    let mut want: Vec<Span> = keep
        .spans
        .iter()
        .map(|s| s.to_span(&cfg.topology))
        .collect();
    // An OTLP request groups spans by service, so order within a batch differs.
    let mut got = got;
    let key = |s: &Span| (s.trace_id, s.span_id);
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert!(want.len() > 1000, "{} spans", want.len());
    assert_eq!(summary.exported_spans, Some(want.len() as u64));
    assert_eq!(got.len(), want.len());
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "span {i} differs: received {:?}, simulated {:?}",
            got[i], want[i]
        );
    }
    assert!(dir.path().join("dataset.parquet").exists());
}

#[test]
fn an_unreachable_receiver_fails_before_the_run() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let outputs = Outputs {
        otlp: Some(format!("127.0.0.1:{port}")),
        ..Default::default()
    };
    let e = run_to_dir(&config(), &out, &outputs, |_, _| {}).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("cannot reach the OTLP receiver"), "{msg}");
    assert!(msg.contains(&port.to_string()), "{msg}");
    assert!(
        !out.exists(),
        "nothing is written when the receiver is unreachable"
    );
}

#[test]
fn realtime_runs_keep_to_the_wall_clock() {
    let mut cfg = config();
    cfg.duration_ns = 1_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let outputs = Outputs {
        realtime: true,
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let s = run_to_dir(&cfg, dir.path(), &outputs, |_, _| {}).unwrap();
    let wall = t0.elapsed().as_secs_f64();
    assert!(s.requests > 100);
    assert!(wall >= 1.0, "1 s simulated in {wall:.3} s of wall time");
}
