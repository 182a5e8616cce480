//! The OTLP exporter against the real receiver: every span arrives unchanged,
//! also when the receiver's consumer is slow and refuses exports (back-pressure).

#![allow(clippy::unwrap_used)]

use seer_traces::exporter::{ExporterConfig, OtlpExporter};
use seer_traces::receiver::{Batch, OtlpReceiver, ReceiverConfig, serve};
use seer_traces::{Span, SpanKind, SpanStatus};
use std::time::Duration;

fn span(i: u64) -> Span {
    Span {
        trace_id: u128::from(i) + 1,
        span_id: i + 1,
        parent_id: None,
        service: format!("svc-{}", i % 3),
        operation: "op".into(),
        kind: SpanKind::Server,
        start_ns: 1_700_000_000_000_000_000 + i * 1_000_000,
        end_ns: 1_700_000_000_000_000_000 + i * 1_000_000 + 500_000,
        status: SpanStatus::Ok,
    }
}

#[test]
fn a_slow_receiver_gets_every_span_through_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    // One slot and a 10 ms wait: most exports are refused while the consumer sleeps.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let cfg = ReceiverConfig {
        send_timeout: Duration::from_millis(10),
        ..Default::default()
    };
    let receiver = OtlpReceiver::new(tx, cfg);
    let stats = receiver.stats();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(receiver, l, async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        });
    });
    let consumer = std::thread::spawn(move || {
        let mut got = Vec::new();
        while let Some(b) = rx.blocking_recv() {
            if let Batch::Spans(s) = b {
                got.extend(s);
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        got
    });
    let mut ex = OtlpExporter::connect(&addr.to_string(), ExporterConfig::default()).unwrap();
    let spans: Vec<Span> = (0..2000).map(span).collect();
    for chunk in spans.chunks(100) {
        ex.export(chunk).unwrap();
    }
    let st = ex.stats().clone();
    drop(ex);
    stop_tx.send(()).unwrap();
    server.join().unwrap();
    let got = consumer.join().unwrap();
    assert_eq!(st.exports, 20);
    assert_eq!(st.spans, 2000);
    assert!(st.retries > 0, "no export was ever refused: {st:?}");
    assert_eq!(
        stats.lock().unwrap().refused_exports,
        st.retries,
        "every refusal was retried"
    );
    // A request groups spans by service: compare in (trace, span) order.
    let mut got = got;
    got.sort_by_key(|s| (s.trace_id, s.span_id));
    assert_eq!(got, spans, "spans arrive complete and unchanged");
}
