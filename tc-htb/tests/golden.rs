//! Golden tests: requests encoded here must equal, byte for byte, what
//! iproute2's `tc` 6.1 sent on kernel 6.18. Each `golden/NAME.hex` was
//! captured with
//!
//! ```text
//! ip netns exec tchtb-golden strace -qq -e trace=sendmsg -e write=3 tc ARGS
//! ```
//!
//! on veth `g0` (ifindex 3); `golden/NAME.cmd` holds the exact `tc` command.
//! Commands for sfq, fq_codel, fw, cgroup and matchall were rejected by this
//! kernel (modules not built) but the bytes `tc` sent are still the reference.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use tc_htb::msg::{self, MsgBuf, Object, Options, Verb};
use tc_htb::{Filter, Handle, HtbClass, HtbQdisc, Leaf, Psched, Rate, U32Match, parse_size};

const IFINDEX: i32 = 3;

fn golden(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/golden/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let hex = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let hex = hex.trim();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn seq_of(bytes: &[u8]) -> u32 {
    u32::from_ne_bytes(bytes[8..12].try_into().unwrap())
}

fn assert_bytes(name: &str, ours: &[u8], theirs: &[u8]) {
    if ours != theirs {
        let first = ours.iter().zip(theirs).position(|(a, b)| a != b);
        panic!(
            "{name}: encoding differs from tc (ours {} bytes, tc {} bytes, first difference at {first:?})\nours: {}\ntc:   {}",
            ours.len(),
            theirs.len(),
            hex(ours),
            hex(theirs)
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn h(s: &str) -> Handle {
    s.parse().unwrap()
}

/// Drops the rate tables (`TCA_HTB_RTAB`/`CTAB`) from a captured class
/// message, fixing the lengths: what the library sends by default.
fn strip_rate_tables(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes[..36].to_vec();
    let mut off = 36;
    while off + 4 <= bytes.len() {
        let len = u16::from_ne_bytes([bytes[off], bytes[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([bytes[off + 2], bytes[off + 3]]);
        let end = (off + len + 3) & !3;
        if ty == 2 {
            let start = out.len();
            out.extend_from_slice(&bytes[off..off + 4]);
            let mut inner = off + 4;
            while inner < off + len {
                let ilen = u16::from_ne_bytes([bytes[inner], bytes[inner + 1]]) as usize;
                let ity = u16::from_ne_bytes([bytes[inner + 2], bytes[inner + 3]]);
                let iend = (inner + ilen + 3) & !3;
                if ity != 3 && ity != 4 {
                    out.extend_from_slice(&bytes[inner..iend]);
                }
                inner = iend;
            }
            let nlen = (out.len() - start) as u16;
            out[start..start + 2].copy_from_slice(&nlen.to_ne_bytes());
        } else {
            out.extend_from_slice(&bytes[off..end.min(bytes.len())]);
        }
        off = end;
    }
    let total = out.len() as u32;
    out[0..4].copy_from_slice(&total.to_ne_bytes());
    out
}

/// Checks a class both ways: byte-identical with rate tables, and equal to
/// the capture minus tables without them; then decodes the capture.
fn check_class(name: &str, verb: Verb, class: HtbClass) {
    let theirs = golden(name);
    let p = Psched::LINUX_DEFAULT;
    let mut m = MsgBuf::new();
    msg::encode_htb_class(
        &mut m,
        verb,
        seq_of(&theirs),
        IFINDEX,
        &class.with_rate_tables(),
        &p,
    );
    assert_bytes(name, m.finish(), &theirs);

    msg::encode_htb_class(&mut m, verb, seq_of(&theirs), IFINDEX, &class, &p);
    assert_bytes(
        &format!("{name} without rate tables"),
        m.finish(),
        &strip_rate_tables(&theirs),
    );

    // Round trip: the capture decodes to the parameters we encode.
    let (hdr, payload) = msg::messages(&theirs).next().unwrap().unwrap();
    let obj = msg::decode_tc(hdr.ty, payload).unwrap();
    assert_eq!(obj.object, Object::Class);
    assert_eq!(obj.kind, "htb");
    assert_eq!(obj.header.handle, class.classid);
    assert_eq!(obj.header.parent, class.parent);
    let Options::HtbClass(params) = obj.options else {
        panic!("{name}: decoded {:?}", obj.options)
    };
    assert_eq!(params, class.params(&p), "{name}");
}

#[test]
fn qdisc_add() {
    // tc qdisc add dev g0 root handle 1: htb default 10 r2q 10 direct_qlen 1000
    let theirs = golden("qdisc_add");
    let q = HtbQdisc::root(1, 0x10).r2q(10).direct_qlen(1000);
    let mut m = MsgBuf::new();
    msg::encode_htb_qdisc(&mut m, Verb::Add, seq_of(&theirs), IFINDEX, &q);
    assert_bytes("qdisc_add", m.finish(), &theirs);
    let (hdr, payload) = msg::messages(&theirs).next().unwrap().unwrap();
    let obj = msg::decode_tc(hdr.ty, payload).unwrap();
    assert_eq!(
        obj.options,
        Options::HtbQdisc {
            r2q: 10,
            default_class: 0x10,
            direct_packets: 0,
            direct_qlen: Some(1000)
        }
    );
    assert_eq!(obj.header.parent, Handle::ROOT);
}

#[test]
fn qdisc_replace_and_change() {
    // tc qdisc replace dev g0 root handle 1: htb default 20 direct_qlen 64
    let theirs = golden("qdisc_replace");
    let mut m = MsgBuf::new();
    msg::encode_htb_qdisc(
        &mut m,
        Verb::Replace,
        seq_of(&theirs),
        IFINDEX,
        &HtbQdisc::root(1, 0x20).direct_qlen(64),
    );
    assert_bytes("qdisc_replace", m.finish(), &theirs);
    // tc qdisc change dev g0 root handle 1: htb default 30 r2q 5
    let theirs = golden("qdisc_change");
    msg::encode_htb_qdisc(
        &mut m,
        Verb::Change,
        seq_of(&theirs),
        IFINDEX,
        &HtbQdisc::root(1, 0x30).r2q(5),
    );
    assert_bytes("qdisc_change", m.finish(), &theirs);
}

#[test]
fn qdisc_and_class_delete() {
    let mut m = MsgBuf::new();
    // tc qdisc del dev g0 root
    let theirs = golden("qdisc_del");
    msg::encode_qdisc_delete(
        &mut m,
        seq_of(&theirs),
        IFINDEX,
        Handle::ROOT,
        Handle::UNSPEC,
    );
    assert_bytes("qdisc_del", m.finish(), &theirs);
    // tc qdisc del dev g0 parent 1:10 handle 10:
    let theirs = golden("leaf_del");
    msg::encode_qdisc_delete(&mut m, seq_of(&theirs), IFINDEX, h("1:10"), h("10:"));
    assert_bytes("leaf_del", m.finish(), &theirs);
    // tc class del dev g0 classid 1:30
    let theirs = golden("class_del");
    msg::encode_class_delete(&mut m, seq_of(&theirs), IFINDEX, h("1:30"));
    assert_bytes("class_del", m.finish(), &theirs);
}

#[test]
fn class_add_full() {
    // tc class add dev g0 parent 1: classid 1:10 htb rate 50mbit ceil 100mbit
    //   burst 15k cburst 15k prio 1 quantum 1514
    let class = HtbClass::new(h("1:"), h("1:10"), "50mbit".parse().unwrap())
        .ceil("100mbit".parse().unwrap())
        .burst(parse_size("15k").unwrap())
        .cburst(parse_size("15k").unwrap())
        .prio(1)
        .quantum(1514);
    check_class("class_add", Verb::Add, class);
}

#[test]
fn class_add_defaults() {
    // tc class add dev g0 parent 1: classid 1:20 htb rate 1gbit
    check_class(
        "class_add_default",
        Verb::Add,
        HtbClass::new(h("1:"), h("1:20"), Rate::gbit(1)),
    );
}

#[test]
fn class_add_64bit_rates() {
    // tc class add dev g0 parent 1: classid 1:30 htb rate 40gbit ceil 50gbit burst 1m cburst 1m
    let class = HtbClass::new(h("1:"), h("1:30"), Rate::gbit(40))
        .ceil(Rate::gbit(50))
        .burst(1 << 20)
        .cburst(1 << 20);
    check_class("class_add_rate64", Verb::Add, class);
}

#[test]
fn class_change_and_replace() {
    // tc class change dev g0 parent 1: classid 1:10 htb rate 200mbit ceil 300mbit burst 30k cburst 30k
    let class = HtbClass::new(h("1:"), h("1:10"), Rate::mbit(200))
        .ceil(Rate::mbit(300))
        .burst(30 * 1024)
        .cburst(30 * 1024);
    check_class("class_change", Verb::Change, class);
    // tc class replace dev g0 parent 1: classid 1:10 htb rate 60mbit
    check_class(
        "class_replace",
        Verb::Replace,
        HtbClass::new(h("1:"), h("1:10"), Rate::mbit(60)),
    );
}

#[test]
fn leaves() {
    let mut m = MsgBuf::new();
    let cases: [(&str, Handle, Handle, Leaf); 4] = [
        // tc qdisc add dev g0 parent 1:10 handle 10: pfifo limit 100
        (
            "leaf_pfifo",
            h("1:10"),
            h("10:"),
            Leaf::Pfifo { limit: Some(100) },
        ),
        // tc qdisc add dev g0 parent 1:30 handle 30: bfifo limit 100000
        (
            "leaf_bfifo",
            h("1:30"),
            h("30:"),
            Leaf::Bfifo {
                limit: Some(100_000),
            },
        ),
        // tc qdisc add dev g0 parent 1:20 handle 20: sfq perturb 10
        (
            "leaf_sfq",
            h("1:20"),
            h("20:"),
            Leaf::Sfq {
                perturb_secs: 10,
                limit: 0,
                quantum: 0,
            },
        ),
        // tc qdisc add dev g0 parent 1:30 handle 30: fq_codel
        (
            "leaf_fq_codel",
            h("1:30"),
            h("30:"),
            Leaf::FqCodel {
                limit: None,
                target_us: None,
                interval_us: None,
                ecn: None,
            },
        ),
    ];
    for (name, parent, handle, leaf) in cases {
        let theirs = golden(name);
        msg::encode_leaf(
            &mut m,
            Verb::Add,
            seq_of(&theirs),
            IFINDEX,
            parent,
            handle,
            &leaf,
        );
        assert_bytes(name, m.finish(), &theirs);
    }
    let theirs = golden("leaf_pfifo");
    let (hdr, payload) = msg::messages(&theirs).next().unwrap().unwrap();
    assert_eq!(
        msg::decode_tc(hdr.ty, payload).unwrap().options,
        Options::Fifo { limit: 100 }
    );
}

#[test]
fn filters() {
    let mut m = MsgBuf::new();
    let full = U32Match {
        src: Some((Ipv4Addr::new(10, 1, 0, 1), 32)),
        dst: Some((Ipv4Addr::new(10, 1, 0, 2), 32)),
        sport: Some(4000),
        dport: Some(5001),
    };
    let net = U32Match {
        src: None,
        dst: Some((Ipv4Addr::new(10, 2, 0, 0), 16)),
        sport: None,
        dport: None,
    };
    let cases = [
        // tc filter add dev g0 parent 1: protocol ip prio 1 u32 match ip src 10.1.0.1/32
        //   match ip dst 10.1.0.2/32 match ip sport 4000 0xffff match ip dport 5001 0xffff flowid 1:10
        ("filter_u32", Filter::u32(h("1:"), 1, full, h("1:10"))),
        // tc filter add dev g0 parent 1: protocol ip prio 2 u32 match ip dst 10.2.0.0/16 flowid 1:20
        ("filter_u32_dst", Filter::u32(h("1:"), 2, net, h("1:20"))),
        // tc filter add dev g0 parent 1: protocol ip prio 3 handle 6 fw flowid 1:10
        ("filter_fw", Filter::fw(h("1:"), 3, 6, h("1:10"))),
        // tc filter add dev g0 parent 1: protocol ip prio 4 handle 1: cgroup
        ("filter_cgroup", Filter::cgroup(h("1:"), 4, 1)),
        // tc filter add dev g0 parent 1: protocol all prio 5 matchall classid 1:20
        ("filter_matchall", Filter::matchall(h("1:"), 5, h("1:20"))),
    ];
    for (name, f) in &cases {
        let theirs = golden(name);
        msg::encode_filter(&mut m, Verb::Add, seq_of(&theirs), IFINDEX, f);
        assert_bytes(name, m.finish(), &theirs);
        let (hdr, payload) = msg::messages(&theirs).next().unwrap().unwrap();
        let obj = msg::decode_tc(hdr.ty, payload).unwrap();
        assert_eq!(obj.prio(), f.prio, "{name}");
        assert_eq!(obj.protocol(), f.protocol, "{name}");
        assert_eq!(obj.kind, f.classifier.kind(), "{name}");
    }
    // u32 selectors decode back to the match.
    let theirs = golden("filter_u32");
    let (hdr, payload) = msg::messages(&theirs).next().unwrap().unwrap();
    let Options::U32 { flowid, keys, .. } = msg::decode_tc(hdr.ty, payload).unwrap().options else {
        panic!("not u32")
    };
    assert_eq!(flowid, Some(h("1:10")));
    assert_eq!(U32Match::from_keys(&keys), Some(full));
    // tc filter del dev g0 parent 1: protocol ip prio 1 u32
    let theirs = golden("filter_del");
    let del = Filter::u32(h("1:"), 1, full, h("1:10"));
    msg::encode_filter(&mut m, Verb::Delete, seq_of(&theirs), IFINDEX, &del);
    assert_bytes("filter_del", m.finish(), &theirs);
}
