//! Throughput of the trace pipeline, for BENCHMARKS.md:
//!
//! 1. OTLP protobuf decode + aggregation into 100 ms ticks, spans with 10
//!    attributes, one core; beside it the anchor: prost decoding alone into the
//!    generated `ExportTraceServiceRequest`, and the same spans with client spans
//!    among them (each paired with its server span: network time per service).
//! 2. Tick finalisation with 1 000 services.
//! 3. The live OTLP/gRPC receiver over loopback: a server runtime with one worker
//!    thread (receiver + aggregation), clients on another runtime.
//!
//! Run: `cargo run --release -p seer-traces --example ingest_bench`
//! Prints the median of 7 interleaved rounds.

#![allow(clippy::unwrap_used)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use prost::Message;
use seer_traces::aggregate::{Aggregator, AggregatorConfig};
use seer_traces::import::{ImportStats, decode_otlp_request, spans_to_otlp};
use seer_traces::{Pipeline, PipelineConfig, Span, SpanKind, SpanStatus};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const MS: u64 = 1_000_000;

fn spans(n: usize, services: usize) -> Vec<Span> {
    let t0 = 1_700_000_000_000 * MS;
    (0..n)
        .map(|i| {
            let i = i as u64;
            Span {
                trace_id: (i / 8 + 1) as u128,
                span_id: i + 1,
                parent_id: if i.is_multiple_of(8) {
                    None
                } else {
                    Some(i - i % 8 + 1)
                },
                service: format!("service-{}", i % services as u64),
                operation: format!("op-{}", i % 5),
                kind: SpanKind::Server,
                start_ns: t0 + i * 20_000,
                end_ns: t0 + i * 20_000 + (i % 97 + 1) * 100_000,
                status: if i.is_multiple_of(50) {
                    SpanStatus::Error
                } else {
                    SpanStatus::Ok
                },
            }
        })
        .collect()
}

/// The same spans with client spans: in each trace of 8, spans 1, 3, 5 and 7 are
/// the root service's calls, and spans 2, 4 and 6 the server spans they made.
fn with_client_spans(mut spans: Vec<Span>) -> Vec<Span> {
    for (i, s) in spans.iter_mut().enumerate() {
        match i % 8 {
            0 => {}
            k if k % 2 == 1 => s.kind = SpanKind::Client,
            _ => s.parent_id = Some(s.span_id - 1),
        }
    }
    spans
}

fn with_attributes(mut req: ExportTraceServiceRequest) -> ExportTraceServiceRequest {
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            for s in &mut ss.spans {
                for k in 0..10 {
                    s.attributes.push(KeyValue {
                        key: format!("attr.key.{k}"),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue(format!("value-{k}-abcdefgh"))),
                        }),
                        ..Default::default()
                    });
                }
            }
        }
    }
    req
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n = 400_000;
    let all = spans(n, 30);
    let encode = |spans: &[Span]| -> Vec<Vec<u8>> {
        spans
            .chunks(512)
            .map(|c| with_attributes(spans_to_otlp(c)).encode_to_vec())
            .collect()
    };
    let messages = encode(&all);
    let paired = encode(&with_client_spans(all.clone()));
    let bytes: usize = messages.iter().map(|m| m.len()).sum();
    let src: Arc<Path> = Arc::from(Path::new("bench"));
    // Decode and aggregate; spans per second and calls paired.
    let run = |messages: &[Vec<u8>]| -> (f64, u64) {
        let t = Instant::now();
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut stats = ImportStats::default();
        let mut buf = Vec::with_capacity(512);
        for m in messages {
            buf.clear();
            decode_otlp_request(m, &src, &mut buf, &mut stats).expect("valid message");
            for s in &buf {
                p.push(s);
            }
        }
        let calls = p.stats().calls_paired;
        let ds = p.finish(&Default::default(), &[], String::new());
        assert_eq!(stats.spans as usize, n);
        assert!(ds.n_ticks() > 0);
        (n as f64 / t.elapsed().as_secs_f64(), calls)
    };
    let (mut ours, mut ours_paired, mut anchor) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..7 {
        let (rate, calls) = run(&messages);
        assert_eq!(calls, 0);
        ours.push(rate);
        let (rate, calls) = run(&paired);
        // Messages group spans by service, so in the first one some server halves
        // come before any client span and are not kept.
        assert!(calls as usize > n / 8 * 3 - 512, "{calls} calls paired");
        ours_paired.push(rate);

        let t = Instant::now();
        let mut count = 0;
        for m in &messages {
            let req = ExportTraceServiceRequest::decode(m.as_slice()).expect("valid message");
            count += req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum::<usize>();
        }
        assert_eq!(count, n);
        anchor.push(n as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "otlp decode + aggregate, 10 attributes/span ({} MB wire): {:.0} k spans/s (median of 7); with client spans (3 calls paired per 8 spans): {:.0} k spans/s; prost decode alone: {:.0} k spans/s",
        bytes / 1_000_000,
        median(ours) / 1e3,
        median(ours_paired) / 1e3,
        median(anchor) / 1e3
    );

    // Tick finalisation with 1 000 services: each tick every service has 4 spans.
    let mut agg = Aggregator::new(AggregatorConfig {
        lateness_ns: 0,
        ..AggregatorConfig::default()
    });
    let t0 = 1_700_000_000_000 * MS;
    let mut id = 1u64;
    let names: Vec<String> = (0..1000).map(|s| format!("svc-{s}")).collect();
    let mut per_tick = Vec::new();
    for tick in 0..200u64 {
        for name in &names {
            for k in 0..4u64 {
                let start = t0 + tick * 100 * MS + k * 20 * MS;
                let s = Span {
                    trace_id: id as u128,
                    span_id: id,
                    parent_id: Some(1),
                    service: name.clone(),
                    operation: "op".into(),
                    kind: SpanKind::Server,
                    start_ns: start,
                    end_ns: start + 15 * MS,
                    status: SpanStatus::Ok,
                };
                id += 1;
                agg.push(&s);
            }
        }
        let t = Instant::now();
        let ticks = agg.drain_until(t0 + (tick + 1) * 100 * MS);
        let dt = t.elapsed().as_secs_f64();
        if !ticks.is_empty() && tick > 10 {
            per_tick.push(dt / ticks.len() as f64);
        }
    }
    println!(
        "tick finalisation, 1000 services x 4 spans: {:.1} us per tick (median of {})",
        median(per_tick.clone()) * 1e6,
        per_tick.len()
    );

    live(&all);
}

fn live(all: &[Span]) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use seer_traces::receiver::{Batch, OtlpReceiver, ReceiverConfig, serve};
    let rt = |n| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let (server_rt, client_rt) = (rt(1), rt(1));
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(256);
    let receiver = OtlpReceiver::new(tx, ReceiverConfig::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    server_rt.spawn(serve(receiver, listener, async {
        let _ = stop_rx.await;
    }));
    let consumer = server_rt.spawn(async move {
        let mut p = Pipeline::new(PipelineConfig::default());
        let mut n = 0u64;
        while let Some(b) = rx.recv().await {
            if let Batch::Spans(spans) = b {
                n += spans.len() as u64;
                spans.iter().for_each(|s| p.push(s));
            }
        }
        n
    });
    let requests: Vec<ExportTraceServiceRequest> = all
        .chunks(512)
        .map(|c| with_attributes(spans_to_otlp(c)))
        .collect();
    let per_client = requests.len().div_ceil(4);
    let t = Instant::now();
    client_rt.block_on(async {
        let mut tasks = Vec::new();
        for chunk in requests.chunks(per_client) {
            let chunk = chunk.to_vec();
            let url = format!("http://{addr}");
            tasks.push(tokio::spawn(async move {
                let mut c = TraceServiceClient::connect(url).await.expect("connect");
                for r in chunk {
                    c.export(r).await.expect("export");
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
    });
    let _ = stop_tx.send(());
    let n = server_rt.block_on(consumer).expect("consumer");
    let dt = t.elapsed().as_secs_f64();
    println!(
        "live OTLP/gRPC over loopback, 4 clients (1 thread), server + aggregation on 1 worker thread: {:.0} k spans/s ({n} spans)",
        n as f64 / dt / 1e3
    );
}
