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
