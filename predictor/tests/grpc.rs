//! The gRPC service end to end over loopback: Predict, StreamPredict (exact
//! streaming matches Predict on the same window), ModelInfo, health, bad requests
//! and an incremental Retrain that swaps the model without dropping a stream.

#![allow(clippy::unwrap_used)]

use seer_infer::Checkpoint;
use seer_predictor::Model;
use seer_predictor::bench::untrained;
use seer_predictor::model::{Arch, OutputKind, StreamMode};
use seer_predictor::serve::serve_listener;
use seer_predictor::synth::{SynthConfig, synth_dataset};
use seer_proto::v1::predictor_client::PredictorClient;
use seer_proto::v1::retrain_progress::State;
use seer_proto::v1::{ModelInfoRequest, PredictRequest, RetrainRequest, StreamTick, TickFeatures};
use tch::Device;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

fn tick(t: usize) -> TickFeatures {
    TickFeatures {
        queue: (0..3).map(|s| ((t * 7 + s * 3) % 11) as f32).collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictor_service_end_to_end() {
    tch::set_num_threads(1);
    // The served model: random weights, but an output bias that makes it expect a
    // violation on every window, so that training on mostly quiet data beats it
    // whatever the random draw (a plain random model sometimes predicts "no
    // violation" well enough that two epochs on 400 ticks do not beat it).
    tch::manual_seed(11);
    let random = untrained(Arch::Hybrid, 3, 4, OutputKind::Softmax).unwrap();
    let mut weights = random.weights().unwrap();
    let bias = weights.iter_mut().find(|w| w.0 == "out.bias").unwrap();
    bias.2[3] = -6.0;
    let ck = Checkpoint {
        header: random.header.clone(),
        weights,
        id: String::new(),
    };
    let model = Model::from_checkpoint(ck, std::path::Path::new("served"), Device::Cpu).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_listener(model, listener, StreamMode::Exact, async {
        let _ = stop_rx.await;
    }));
    let url = format!("http://{addr}");
    let mut client = loop {
        match PredictorClient::connect(url.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };

    let channel = tonic::transport::Channel::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let h = health
        .check(HealthCheckRequest {
            service: "seer.v1.Predictor".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.status, 1, "SERVING");

    let info = client
        .model_info(ModelInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.architecture, "hybrid");
    assert_eq!(info.services, vec!["svc-0", "svc-1", "svc-2"]);
    assert_eq!(info.window, 4);
    assert_eq!(info.channels, vec!["queue"]);

    // Predict on ticks 2..6.
    let window: Vec<TickFeatures> = (2..6).map(tick).collect();
    let p = client
        .predict(PredictRequest {
            services: vec![],
            ticks: window.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.scores.len(), 3);
    let total: f32 = p.scores.iter().map(|s| s.probability).sum::<f32>() + p.no_violation;
    assert!((total - 1.0).abs() < 1e-4, "{total}");

    // Bad requests.
    let err = client
        .predict(PredictRequest {
            services: vec![],
            ticks: window[..3].to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("window is 4"), "{}", err.message());
    let mut nan = window.clone();
    nan[1].queue[2] = f32::NAN;
    let err = client
        .predict(PredictRequest {
            services: vec![],
            ticks: nan,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = client
        .predict(PredictRequest {
            services: vec!["a".into(), "b".into(), "c".into()],
            ticks: window.clone(),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("unknown service"),
        "{}",
        err.message()
    );

    // Streaming ticks 0..6: the last prediction equals Predict on ticks 2..6.
    let msgs: Vec<StreamTick> = (0..6)
        .map(|t| StreamTick {
            services: if t == 0 {
                vec!["svc-0".into(), "svc-1".into(), "svc-2".into()]
            } else {
                vec![]
            },
            tick: Some(tick(t)),
        })
        .collect();
    let mut out = client
        .stream_predict(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    let mut preds = Vec::new();
    while let Some(p) = out.message().await.unwrap() {
        preds.push(p);
    }
    assert_eq!(preds.len(), 6);
    assert_eq!(
        preds.iter().map(|p| p.warm).collect::<Vec<_>>(),
        [false, false, false, true, true, true]
    );
    assert_eq!(preds[5].ticks_seen, 6);
    for (a, b) in preds[5].scores.iter().zip(&p.scores) {
        assert!(
            (a.probability - b.probability).abs() < 1e-5,
            "{a:?} vs {b:?}"
        );
    }

    // A stream with a bad tick ends with INVALID_ARGUMENT.
    let bad = vec![StreamTick {
        services: vec![],
        tick: Some(TickFeatures {
            queue: vec![1.0],
            ..Default::default()
        }),
    }];
    let mut out = client
        .stream_predict(tokio_stream::iter(bad))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        out.message().await.unwrap_err().code(),
        Code::InvalidArgument
    );

    // Incremental retrain on a synthetic dataset with the same services.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.parquet");
    synth_dataset(&SynthConfig {
        n_services: 3,
        n_ticks: 400,
        ..Default::default()
    })
    .write_parquet(&path)
    .unwrap();
    let mut progress = client
        .retrain(RetrainRequest {
            datasets: vec![path.display().to_string()],
            incremental: true,
            max_epochs: 2,
        })
        .await
        .unwrap()
        .into_inner();
    let mut states = Vec::new();
    let mut last = None;
    while let Some(p) = progress.message().await.unwrap() {
        eprintln!("{p:?}");
        states.push(p.state);
        last = Some(p);
    }
    let last = last.unwrap();
    assert_eq!(states.first(), Some(&(State::Loading as i32)));
    assert!(states.contains(&(State::Training as i32)));
    assert_eq!(last.state, State::Done as i32, "{}", last.message);
    let info2 = client
        .model_info(ModelInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(last.swapped, info2.model_id != info.model_id, "{last:?}");
    // An untrained model is beaten by a trained one.
    assert!(last.swapped, "{last:?}");

    // A missing dataset fails cleanly.
    let mut progress = client
        .retrain(RetrainRequest {
            datasets: vec!["/nonexistent.parquet".into()],
            incremental: false,
            max_epochs: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(p) = progress.message().await.unwrap() {
        last = Some(p);
    }
    let last = last.unwrap();
    assert_eq!(last.state, State::Failed as i32);
    assert!(
        last.message.contains("/nonexistent.parquet"),
        "{}",
        last.message
    );

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
