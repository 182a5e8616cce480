//! Traffic tests: HTB configured by this crate must hold real TCP flows
//! between two network namespaces to their rates (±10 %).
//!
//! Each test builds its own pair of uniquely named namespaces joined by a
//! veth and removes them on exit (also on panic). Flows last 2–3 s.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{Pair, can_run, tcp_flow, traffic_lock, within_tolerance};
use tc_htb::{Filter, Handle, HtbClass, HtbQdisc, Leaf, Rate, Tc, U32Match};

const TOLERANCE: f64 = 0.10;
const TRIES: u32 = 3;

fn h(s: &str) -> Handle {
    s.parse().unwrap()
}

/// Burst used by the shaping tests: 10 ms worth of data, at least 15 KiB,
/// which keeps HTB accurate with GSO-sized packets on a busy machine.
fn burst_for(rate: Rate) -> u32 {
    ((rate.0 / 100) as u32).max(15 * 1024)
}

fn shaped_class(rate: Rate, minor: u16) -> HtbClass {
    HtbClass::new(h("1:"), Handle::new(1, minor), rate)
        .burst(burst_for(rate))
        .cburst(burst_for(rate))
}

fn single_rate(tag: &str, rate: Rate) {
    if !can_run(tag) {
        return;
    }
    let _lock = traffic_lock();
    let pair = Pair::new(tag);
    let mut tc = Tc::open_in_netns(pair.a.path()).unwrap();
    let va = tc.link("va").unwrap();
    tc.qdisc_add(&va, &HtbQdisc::root(1, 0x10)).unwrap();
    tc.class_add(&va, &shaped_class(rate, 0x10)).unwrap();
    tc.leaf_add(&va, h("1:10"), h("10:"), &Leaf::Pfifo { limit: Some(1000) })
        .unwrap();

    within_tolerance(TRIES, TOLERANCE, || {
        let origin = Instant::now();
        let before = tc.class_stats(&va, h("1:10")).unwrap();
        let flow = tcp_flow(&pair, 5001, Duration::from_millis(2500), origin);
        // While the flow runs, the class's queue (what Seer reads as the NIC
        // queue depth) fills up: sample it through the cheap single-class get.
        let mut max_backlog = (0, 0);
        while origin.elapsed() < Duration::from_millis(2000) {
            let s = tc.class_stats(&va, h("1:10")).unwrap();
            max_backlog = max_backlog.max((s.backlog_packets, s.backlog_bytes));
            std::thread::sleep(Duration::from_millis(50));
        }
        let flow = flow.join().unwrap();
        let after = tc.class_stats(&va, h("1:10")).unwrap();
        assert!(
            max_backlog.0 > 0 && max_backlog.1 > 0,
            "a saturated class must queue: {max_backlog:?}"
        );
        // The class counted what went through it (headers included).
        assert!(after.bytes > before.bytes + flow.samples.last().unwrap().1 / 2);
        assert!(
            after.overlimits > before.overlimits,
            "a saturating flow must hit the class limit: {after:?}"
        );
        let goodput = flow.rate_bps(Duration::from_millis(500), Duration::from_millis(2500));
        vec![(
            format!("{tag} goodput"),
            goodput,
            rate.bits_per_sec() as f64,
        )]
    });
    drop(tc);
    pair.close();
}

#[test]
fn rate_enforced_at_50mbit() {
    single_rate("r50", Rate::mbit(50));
}

#[test]
fn rate_enforced_at_200mbit() {
    single_rate("r200", Rate::mbit(200));
}

#[test]
fn rate_enforced_at_1gbit() {
    single_rate("r1g", Rate::gbit(1));
}

#[test]
fn two_classes_split_by_u32_hold_their_rates() {
    let tag = "split";
    if !can_run(tag) {
        return;
    }
    let _lock = traffic_lock();
    let pair = Pair::new(tag);
    let mut tc = Tc::open_in_netns(pair.a.path()).unwrap();
    let va = tc.link("va").unwrap();
    tc.qdisc_add(&va, &HtbQdisc::root(1, 0x30)).unwrap();
    let (r10, r20) = (Rate::mbit(100), Rate::mbit(40));
    tc.class_add(&va, &shaped_class(r10, 0x10)).unwrap();
    tc.class_add(&va, &shaped_class(r20, 0x20)).unwrap();
    tc.class_add(&va, &shaped_class(Rate::mbit(10), 0x30))
        .unwrap();
    let dst = Some((Ipv4Addr::new(10, 99, 0, 2), 32));
    for (prio, port, class) in [(1, 5001, "1:10"), (2, 5002, "1:20")] {
        let m = U32Match {
            src: None,
            dst,
            sport: None,
            dport: Some(port),
        };
        tc.filter_add(&va, &Filter::u32(h("1:"), prio, m, h(class)))
            .unwrap();
    }
    within_tolerance(TRIES, TOLERANCE, || {
        let origin = Instant::now();
        let f1 = tcp_flow(&pair, 5001, Duration::from_millis(2500), origin);
        let f2 = tcp_flow(&pair, 5002, Duration::from_millis(2500), origin);
        let (f1, f2) = (f1.join().unwrap(), f2.join().unwrap());
        let (from, to) = (Duration::from_millis(600), Duration::from_millis(2500));
        vec![
            (
                "class 1:10 (dport 5001)".into(),
                f1.rate_bps(from, to),
                r10.bits_per_sec() as f64,
            ),
            (
                "class 1:20 (dport 5002)".into(),
                f2.rate_bps(from, to),
                r20.bits_per_sec() as f64,
            ),
        ]
    });
    // Both classes saw traffic; the default class carried (almost) none of it.
    let s10 = tc.class_stats(&va, h("1:10")).unwrap();
    let s20 = tc.class_stats(&va, h("1:20")).unwrap();
    let s30 = tc.class_stats(&va, h("1:30")).unwrap();
    assert!(
        s10.bytes > 10 * s30.bytes && s20.bytes > 10 * s30.bytes,
        "{s10:?} {s20:?} {s30:?}"
    );
    drop(tc);
    pair.close();
}

#[test]
fn rate_change_mid_flow_takes_effect_within_1s() {
    let tag = "chg";
    if !can_run(tag) {
        return;
    }
    let _lock = traffic_lock();
    let pair = Pair::new(tag);
    let mut tc = Tc::open_in_netns(pair.a.path()).unwrap();
    let va = tc.link("va").unwrap();
    tc.qdisc_add(&va, &HtbQdisc::root(1, 0x10)).unwrap();
    let (high, low) = (Rate::mbit(200), Rate::mbit(50));
    tc.class_add(&va, &shaped_class(high, 0x10)).unwrap();
    within_tolerance(TRIES, TOLERANCE, || {
        tc.class_change(&va, &shaped_class(high, 0x10)).unwrap();
        let origin = Instant::now();
        let flow = tcp_flow(&pair, 5001, Duration::from_millis(3000), origin);
        std::thread::sleep(Duration::from_millis(1000));
        let changed_at = origin.elapsed();
        tc.class_change(&va, &shaped_class(low, 0x10)).unwrap();
        let flow = flow.join().unwrap();
        let before = flow.rate_bps(Duration::from_millis(300), changed_at);
        let after = flow.rate_bps(
            changed_at + Duration::from_millis(1000),
            Duration::from_millis(3000),
        );
        vec![
            (
                "before the change".into(),
                before,
                high.bits_per_sec() as f64,
            ),
            (
                "from 1 s after the change".into(),
                after,
                low.bits_per_sec() as f64,
            ),
        ]
    });
    drop(tc);
    pair.close();
}

#[test]
fn deleting_the_root_restores_unshaped_throughput() {
    let tag = "del";
    if !can_run(tag) {
        return;
    }
    let _lock = traffic_lock();
    let pair = Pair::new(tag);
    let mut tc = Tc::open_in_netns(pair.a.path()).unwrap();
    let va = tc.link("va").unwrap();
    tc.qdisc_add(&va, &HtbQdisc::root(1, 0x10)).unwrap();
    let rate = Rate::mbit(50);
    tc.class_add(&va, &shaped_class(rate, 0x10)).unwrap();
    let window = (Duration::from_millis(500), Duration::from_millis(2000));
    let mut shaped = 0.0;
    within_tolerance(TRIES, TOLERANCE, || {
        let flow = tcp_flow(&pair, 5001, Duration::from_millis(2000), Instant::now())
            .join()
            .unwrap();
        shaped = flow.rate_bps(window.0, window.1);
        vec![("shaped".into(), shaped, rate.bits_per_sec() as f64)]
    });
    tc.root_del(&va).unwrap();
    assert!(tc.root_get(&va).unwrap().is_none_or(|q| q.kind != "htb"));
    assert!(
        pair.a
            .tc(&["qdisc", "show", "dev", "va"])
            .lines()
            .all(|l| !l.contains("htb"))
    );
    let free = tcp_flow(&pair, 5002, Duration::from_millis(2000), Instant::now())
        .join()
        .unwrap();
    let free = free.rate_bps(window.0, window.1);
    println!(
        "unshaped: {:.0} Mbit/s, shaped {:.0} Mbit/s",
        free / 1e6,
        shaped / 1e6
    );
    assert!(
        free > 4.0 * shaped,
        "unshaped {:.0} Mbit/s is not well above the 50 Mbit/s limit",
        free / 1e6
    );
    drop(tc);
    pair.close();
}
