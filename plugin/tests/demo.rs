//! The demo end to end: the same simulated run with and without Seer's controller.

#![allow(clippy::unwrap_used)]

use seer::demo::{DemoConfig, run_demo};

#[test]
fn seer_avoids_violations_and_names_culprits() {
    let rep = run_demo(&DemoConfig::default()).unwrap();
    assert!(
        rep.without.violation_ticks > 50,
        "the injections must hurt: {}",
        rep.without.violation_ticks
    );
    assert!(
        rep.with.violation_ticks * 2 < rep.without.violation_ticks,
        "with Seer {} vs without {}",
        rep.with.violation_ticks,
        rep.without.violation_ticks
    );
    let detected = rep
        .injections
        .iter()
        .filter(|v| v.detected && v.culprit_correct)
        .count();
    assert!(detected >= 2, "{:?}", rep.injections);
    assert!(rep.false_actions <= 1, "{}", rep.table());
    // Same seed, same result.
    let again = run_demo(&DemoConfig::default()).unwrap();
    assert_eq!(again.with.violation_ticks, rep.with.violation_ticks);
}

/// A checkpoint with all-zero weights for `services` reading `channels`.
fn zero_model(services: &[String], channels: Vec<seer_infer::Channel>) -> Vec<u8> {
    use seer_infer::checkpoint::{Checkpoint, Header, encode};
    use seer_infer::{Arch, ModelConfig};
    let model = ModelConfig::new(Arch::Hybrid, services.len(), channels.len(), 5);
    let header = Header::untrained(model, services.to_vec(), channels, "test");
    let ck = Checkpoint::with_weights(header, |_, _| 0.0).unwrap();
    encode(&ck.header, &ck.weights).unwrap()
}

#[test]
fn models_the_demo_cannot_feed_are_refused_with_the_reason() {
    use seer_infer::Channel;
    let dir = tempfile::tempdir().unwrap();
    let topo = seer_sim::Topology::load("social-network").unwrap();
    let names: Vec<String> = topo.services.iter().map(|s| s.name.clone()).collect();
    let demo = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        run_demo(&DemoConfig {
            seconds: 20,
            model: Some(path),
            ..DemoConfig::default()
        })
    };
    let err = demo(
        "other.seer",
        zero_model(&["no-such-service".to_string()], vec![Channel::Queue]),
    )
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("no-such-service"), "{err}");
    // The simulated node reports each service's p99 time in service and the
    // demo the application's QoS ratio, so models reading them run.
    demo(
        "latency.seer",
        zero_model(&names, vec![Channel::Queue, Channel::P99Ms, Channel::Qos]),
    )
    .unwrap();
}

#[test]
fn the_demo_runs_under_a_shaped_load_and_refuses_a_bad_one() {
    let spiky = DemoConfig {
        seconds: 30,
        load: "spikes:every=10s,length=2s,factor=1.5,first=5s".into(),
        ..DemoConfig::default()
    };
    let flat = DemoConfig {
        seconds: 30,
        ..DemoConfig::default()
    };
    let (spiky, flat) = (run_demo(&spiky).unwrap(), run_demo(&flat).unwrap());
    // Half as much load again for 2 s in every 10 s: more requests complete.
    assert!(
        spiky.without.completed > flat.without.completed,
        "{} vs {}",
        spiky.without.completed,
        flat.without.completed
    );
    let err = run_demo(&DemoConfig {
        load: "sawtooth".into(),
        ..DemoConfig::default()
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("sawtooth"), "{err:#}");
}

#[test]
fn the_qos_window_can_hold_a_minimum_of_requests() {
    let short = DemoConfig {
        seconds: 30,
        ..DemoConfig::default()
    };
    let stretched = DemoConfig {
        qos_min_requests: 1000,
        ..short.clone()
    };
    let (a, b) = (run_demo(&short).unwrap(), run_demo(&stretched).unwrap());
    assert_eq!((a.qos_min_requests, b.qos_min_requests), (0, 1000));
    assert!(
        b.table().contains("at least 1000 requests"),
        "{}",
        b.table()
    );
    assert!(!a.table().contains("at least"), "{}", a.table());
    // The same run judged over longer windows: the verdicts differ.
    assert_ne!(
        (a.without.violation_ticks, a.with.violation_ticks),
        (b.without.violation_ticks, b.with.violation_ticks)
    );
}
