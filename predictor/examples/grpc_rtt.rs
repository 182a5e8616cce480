//! gRPC round trips over loopback to `seer.v1.Predictor` serving the hybrid
//! network (36 services × 20 ticks, on the Rust engine): unary `Predict` with a
//! full window, and one tick per message on a `StreamPredict` stream.
//! `cargo run --release -p seer-predictor --example grpc_rtt -- [ITERATIONS]`

use seer_predictor::bench::untrained;
use seer_predictor::eval::percentiles;
use seer_predictor::model::{Arch, OutputKind, StreamMode};
use seer_predictor::serve::serve_listener;
use seer_proto::v1::predictor_client::PredictorClient;
use seer_proto::v1::{PredictRequest, StreamTick, TickFeatures};
use std::time::Instant;

fn tick(i: usize, ns: usize) -> TickFeatures {
    TickFeatures {
        queue: (0..ns).map(|s| ((i * 7 + s * 3) % 11) as f32).collect(),
        ..Default::default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2000);
    tch::set_num_threads(1);
    let (ns, w) = (36, 20);
    let model = untrained(Arch::Hybrid, ns, w, OutputKind::Softmax)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_listener(model, listener, StreamMode::Exact, async {
        let _ = stop_rx.await;
    }));
    let mut client = loop {
        match PredictorClient::connect(url.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let req = PredictRequest {
        services: vec![],
        ticks: (0..w).map(|i| tick(i, ns)).collect(),
    };
    let warm = 100;
    let mut unary = Vec::with_capacity(iterations);
    for i in 0..iterations + warm {
        let t = Instant::now();
        client.predict(req.clone()).await?;
        if i >= warm {
            unary.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    // A stream: send one tick, wait for its prediction, repeat.
    let (tx, rx) = tokio::sync::mpsc::channel::<StreamTick>(1);
    let mut out = client
        .stream_predict(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut stream = Vec::with_capacity(iterations);
    for i in 0..iterations + warm {
        let t = Instant::now();
        tx.send(StreamTick {
            services: vec![],
            tick: Some(tick(i, ns)),
        })
        .await?;
        out.message().await?.ok_or("stream ended")?;
        if i >= warm {
            stream.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(tx);
    let (u50, u99) = percentiles(&mut unary);
    let (s50, s99) = percentiles(&mut stream);
    println!("hybrid {ns}x{w}, loopback, {iterations} calls each (µs):");
    println!("  Predict (full window)      p50 {u50:8.1}  p99 {u99:8.1}");
    println!("  StreamPredict (per tick)   p50 {s50:8.1}  p99 {s99:8.1}");
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}
