//! The live OTLP/gRPC receiver end to end: a real tonic client exports spans and
//! queue-depth metrics over loopback; Ctrl-C-equivalent shutdown writes every tick.

#![allow(clippy::unwrap_used)]

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use seer::ingest::{FileIngest, live_ingest};
use seer_traces::import::spans_to_otlp;
use seer_traces::{Dataset, PipelineConfig, QosSpec, Span, SpanKind, SpanStatus};
use std::time::Duration;

fn span(id: u64, parent: Option<u64>, svc: &str, start_ns: u64, dur_ms: u64) -> Span {
    Span {
        trace_id: id as u128 + 1000,
        span_id: id,
        parent_id: parent,
        service: svc.into(),
        operation: "/api".into(),
        kind: SpanKind::Server,
        start_ns,
        end_ns: start_ns + dur_ms * 1_000_000,
        status: SpanStatus::Ok,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_export_becomes_parquet_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FileIngest {
        files: vec![],
        format: seer_traces::import::Format::Otlp,
        pipeline: PipelineConfig {
            lateness_ns: 60_000_000_000,
            ..PipelineConfig::default()
        },
        qos: QosSpec::default(),
        culprits: vec![],
        out: dir.path().to_path_buf(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let out = cfg.out.clone();
    let task = tokio::spawn(async move {
        live_ingest(listener, &cfg, Duration::from_secs(3600), async {
            let _ = stop_rx.await;
        })
        .await
    });
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let t0 = 1_700_000_000_000_000_000u64;
    let mut spans = Vec::new();
    for i in 0..20u64 {
        spans.push(span(
            2 * i + 2,
            Some(2 * i + 1),
            "db",
            t0 + i * 50_000_000 + 1,
            3,
        ));
        spans.push(span(2 * i + 1, None, "front", t0 + i * 50_000_000, 5));
    }
    let mut bad = span(99, None, "front", t0, 1);
    bad.end_ns = bad.start_ns - 1;
    spans.push(bad);
    let resp = client
        .export(spans_to_otlp(&spans))
        .await
        .unwrap()
        .into_inner();
    let partial = resp.partial_success.expect("one span was invalid");
    assert_eq!(partial.rejected_spans, 1);
    stop_tx.send(()).unwrap();
    let summary = task.await.unwrap().unwrap();
    assert_eq!(summary.spans, 40);
    assert_eq!(summary.rejected, 1);
    assert_eq!(summary.files.len(), 1);
    let ds = Dataset::read_parquet(&summary.files[0]).unwrap();
    assert_eq!(ds.meta.services, ["front", "db"]);
    assert_eq!(ds.n_ticks(), 10);
    let arrivals: u32 = (0..ds.n_ticks())
        .map(|t| ds.services_at(t)[0].arrivals)
        .sum();
    assert_eq!(arrivals, 20);
    assert!(out.join(summary.files[0].file_name().unwrap()).exists());
}
