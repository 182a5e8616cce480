//! Kernel tests: configure with the library and read back with `tc`, and
//! the reverse; errors; the `ensure` layer. Each test works in its own
//! uniquely named network namespace and removes it (also on panic).

#![allow(clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::{Netns, Pair, can_run, netns_list};
use tc_htb::msg::U32Key;
use tc_htb::{
    Change, Filter, Handle, HtbClass, HtbError, HtbQdisc, Leaf, Options, Rate, Tc, U32Match,
};

fn h(s: &str) -> Handle {
    s.parse().unwrap()
}

/// A namespace with a veth pair `va`/`vb` inside it (no traffic needed).
fn single(tag: &str) -> Option<(Netns, Tc)> {
    if !can_run(tag) {
        return None;
    }
    let ns = Netns::new(tag);
    let out = std::process::Command::new("ip")
        .args([
            "-n", &ns.name, "link", "add", "va", "type", "veth", "peer", "name", "vb",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tc = Tc::open_in_netns(ns.path()).unwrap();
    Some((ns, tc))
}

fn class_50_100() -> HtbClass {
    HtbClass::new(h("1:"), h("1:10"), Rate::mbit(50))
        .ceil(Rate::mbit(100))
        .burst(15 * 1024)
        .cburst(15 * 1024)
        .prio(1)
        .quantum(1514)
}

#[test]
fn configured_by_library_read_back_by_tc() {
    let Some((ns, mut tc)) = single("lib2tc") else {
        return;
    };
    let va = tc.link("va").unwrap();
    tc.qdisc_add(&va, &HtbQdisc::root(1, 0x10).r2q(10).direct_qlen(1000))
        .unwrap();
    tc.class_add(&va, &class_50_100()).unwrap();
    tc.leaf_add(&va, h("1:10"), h("10:"), &Leaf::Pfifo { limit: Some(100) })
        .unwrap();
    let m = U32Match {
        src: None,
        dst: Some((Ipv4Addr::new(10, 99, 0, 2), 32)),
        sport: None,
        dport: Some(5001),
    };
    tc.filter_add(&va, &Filter::u32(h("1:"), 1, m, h("1:10")))
        .unwrap();

    let q = ns.tc(&["-d", "qdisc", "show", "dev", "va"]);
    assert!(q.contains("qdisc htb 1: root"), "{q}");
    assert!(q.contains("r2q 10 default 0x10"), "{q}");
    assert!(q.contains("direct_qlen 1000"), "{q}");
    assert!(q.contains("qdisc pfifo 10: parent 1:10 limit 100p"), "{q}");

    let c = ns.tc(&["-d", "class", "show", "dev", "va"]);
    for want in [
        "class htb 1:10 root leaf 10: prio 1 quantum 1514",
        "rate 50Mbit ceil 100Mbit",
        "linklayer ethernet",
        "burst 15Kb",
    ] {
        assert!(c.contains(want), "missing {want:?} in:\n{c}");
    }

    let f = ns.tc(&["filter", "show", "dev", "va"]);
    assert!(f.contains("flowid 1:10"), "{f}");
    assert!(f.contains("match 0a630002/ffffffff at 16"), "{f}");
    assert!(f.contains("match 00001389/0000ffff at 20"), "{f}");

    assert_eq!(tc.take_warning(), None, "quantum 1514 given: no warning");
    // Without a quantum, rate/r2q is too big: the kernel warns, as with tc.
    tc.class_add(&va, &HtbClass::new(h("1:"), h("1:20"), Rate::mbit(100)))
        .unwrap();
    let warning = tc.take_warning().expect("kernel warning");
    assert!(
        warning.contains("quantum of class 10020 is big"),
        "{warning}"
    );
    assert_eq!(tc.take_warning(), None);

    // 64-bit rates: above 2^32 bytes/s.
    let fast = HtbClass::new(h("1:"), h("1:30"), Rate::gbit(40)).ceil(Rate::gbit(50));
    tc.class_add(&va, &fast).unwrap();
    let c = ns.tc(&["class", "show", "dev", "va", "classid", "1:30"]);
    assert!(c.contains("rate 40Gbit ceil 50Gbit"), "{c}");

    // A change is visible to tc at once.
    tc.class_change(
        &va,
        &HtbClass {
            rate: Rate::mbit(70),
            ..class_50_100()
        },
    )
    .unwrap();
    let c = ns.tc(&["class", "show", "dev", "va", "classid", "1:10"]);
    assert!(c.contains("rate 70Mbit ceil 100Mbit"), "{c}");
    drop(tc);
    ns.close();
}

#[test]
fn configured_by_tc_decoded_by_library() {
    let Some((ns, mut tc)) = single("tc2lib") else {
        return;
    };
    ns.tc(&[
        "qdisc", "add", "dev", "va", "root", "handle", "1:", "htb", "default", "20", "r2q", "5",
    ]);
    ns.tc(&[
        "class", "add", "dev", "va", "parent", "1:", "classid", "1:1", "htb", "rate", "1gbit",
    ]);
    ns.tc(&[
        "class", "add", "dev", "va", "parent", "1:1", "classid", "1:10", "htb", "rate", "50mbit",
        "ceil", "100mbit", "burst", "15k", "cburst", "15k", "prio", "2", "quantum", "3000",
    ]);
    ns.tc(&[
        "class", "add", "dev", "va", "parent", "1:1", "classid", "1:30", "htb", "rate", "40gbit",
        "ceil", "50gbit",
    ]);
    ns.tc(&[
        "qdisc", "add", "dev", "va", "parent", "1:10", "handle", "10:", "bfifo", "limit", "30000",
    ]);
    ns.tc(&[
        "filter",
        "add",
        "dev",
        "va",
        "parent",
        "1:",
        "protocol",
        "ip",
        "prio",
        "3",
        "u32",
        "match",
        "ip",
        "src",
        "10.1.0.0/16",
        "match",
        "ip",
        "sport",
        "80",
        "0xffff",
        "flowid",
        "1:10",
    ]);
    let va = tc.link("va").unwrap();

    let qdiscs = tc.qdiscs(&va).unwrap();
    let root = qdiscs
        .iter()
        .find(|q| q.header.parent == Handle::ROOT)
        .unwrap();
    assert_eq!(root.kind, "htb");
    assert_eq!(root.header.handle, h("1:"));
    assert!(
        matches!(
            root.options,
            Options::HtbQdisc {
                r2q: 5,
                default_class: 0x20,
                ..
            }
        ),
        "{:?}",
        root.options
    );
    let leaf = qdiscs
        .iter()
        .find(|q| q.header.parent == h("1:10"))
        .unwrap();
    assert_eq!(
        (leaf.kind.as_str(), &leaf.options),
        ("bfifo", &Options::Fifo { limit: 30000 })
    );
    let root_get = tc.root_get(&va).unwrap().unwrap();
    assert_eq!(root_get.options, root.options);

    let classes = tc.classes(&va).unwrap();
    assert_eq!(classes.len(), 3, "{classes:?}");
    let c10 = classes
        .iter()
        .find(|c| c.header.handle == h("1:10"))
        .unwrap();
    assert_eq!(c10.header.parent, h("1:1"));
    let Options::HtbClass(p) = c10.options else {
        panic!("{:?}", c10.options)
    };
    let ps = *tc.psched();
    assert_eq!(
        (p.rate64, p.ceil64, p.prio, p.quantum, p.level),
        (Rate::mbit(50), Rate::mbit(100), 2, 3000, 0)
    );
    assert!(
        p.burst_bytes(&ps).abs_diff(15 * 1024) <= 16,
        "burst {}",
        p.burst_bytes(&ps)
    );
    assert!(
        p.cburst_bytes(&ps).abs_diff(15 * 1024) <= 32,
        "cburst {}",
        p.cburst_bytes(&ps)
    );
    let c1 = classes
        .iter()
        .find(|c| c.header.handle == h("1:1"))
        .unwrap();
    assert!(
        matches!(c1.options, Options::HtbClass(p) if p.level > 0),
        "inner class has level > 0"
    );
    let c30 = tc.class_get(&va, h("1:30")).unwrap();
    let Options::HtbClass(p30) = c30.options else {
        panic!()
    };
    assert_eq!((p30.rate64, p30.ceil64), (Rate::gbit(40), Rate::gbit(50)));
    // tc's default burst at 40gbit (rate/HZ + mtu = 1605 bytes) is under
    // one microsecond: buffer 0 ticks, so the bucket holds nothing.
    assert_eq!(p30.buffer, 0);
    let stats = tc.class_stats(&va, h("1:10")).unwrap();
    assert_eq!((stats.bytes, stats.packets, stats.backlog_bytes), (0, 0, 0));
    let x = stats.htb.expect("htb xstats");
    assert_eq!(
        (x.tokens as u32, x.ctokens as u32),
        (p.buffer, p.cbuffer),
        "an idle class has full buckets: {x:?}"
    );

    let filters = tc.filters(&va, h("1:")).unwrap();
    let node = filters
        .iter()
        .find_map(|f| match &f.options {
            Options::U32 {
                flowid: Some(id),
                keys,
                ..
            } => Some((*id, keys.clone(), f.prio(), f.protocol())),
            _ => None,
        })
        .expect("a u32 node with a flowid");
    assert_eq!((node.0, node.2, node.3), (h("1:10"), 3, tc_htb::ETH_P_IP));
    assert_eq!(
        node.1,
        vec![
            U32Key {
                mask: 0xffff_0000,
                val: 0x0a01_0000,
                off: 12,
                offmask: 0
            },
            U32Key {
                mask: 0xffff_0000,
                val: 80 << 16,
                off: 20,
                offmask: 0
            },
        ]
    );
    let m = U32Match::from_keys(&node.1).unwrap();
    assert_eq!(
        (m.src, m.sport, m.dst, m.dport),
        (Some((Ipv4Addr::new(10, 1, 0, 0), 16)), Some(80), None, None)
    );
    drop(tc);
    ns.close();
}

#[test]
fn replace_and_delete() {
    let Some((ns, mut tc)) = single("repl") else {
        return;
    };
    let va = tc.link("va").unwrap();
    tc.qdisc_replace(&va, &HtbQdisc::root(1, 0x10)).unwrap();
    let c = HtbClass::new(h("1:"), h("1:10"), Rate::mbit(10));
    tc.class_replace(&va, &c).unwrap();
    tc.class_replace(
        &va,
        &HtbClass {
            rate: Rate::mbit(20),
            ..c
        },
    )
    .unwrap();
    assert!(
        ns.tc(&["class", "show", "dev", "va"])
            .contains("rate 20Mbit")
    );
    // Adding twice fails with EEXIST and says which class.
    let err = tc.class_add(&va, &c).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    // A filter pointing at the class keeps it busy.
    let m = U32Match {
        src: None,
        dst: None,
        sport: None,
        dport: Some(80),
    };
    let f = Filter::u32(h("1:"), 7, m, h("1:10"));
    tc.filter_add(&va, &f).unwrap();
    let busy = tc.class_del(&va, h("1:10")).unwrap_err();
    assert_eq!(busy.errno(), Some(libc::EBUSY), "{busy}");
    let text = busy.to_string();
    assert!(
        text.contains("class del dev va classid 1:10") && text.contains(&ns.name),
        "{text}"
    );
    tc.filter_del(&va, &f).unwrap();
    assert!(tc.filters(&va, h("1:")).unwrap().is_empty());
    tc.class_del(&va, h("1:10")).unwrap();
    assert!(tc.classes(&va).unwrap().is_empty());
    assert!(tc.class_get(&va, h("1:10")).unwrap_err().is_not_found());
    tc.root_del(&va).unwrap();
    assert!(tc.root_get(&va).unwrap().is_none_or(|q| q.kind != "htb"));
    assert!(!ns.tc(&["qdisc", "show", "dev", "va"]).contains("htb"));
    drop(tc);
    ns.close();
}

#[test]
fn errors_name_the_interface_handle_and_kernel_message() {
    let Some((ns, mut tc)) = single("err") else {
        return;
    };
    // Missing interface.
    let err = tc.link("nosuch0").unwrap_err();
    assert!(matches!(err, HtbError::NoSuchInterface { .. }), "{err:?}");
    assert!(
        err.to_string().contains("\"nosuch0\"") && err.to_string().contains(&ns.name),
        "{err}"
    );
    // Invalid rates never reach the kernel.
    assert!(
        "fast"
            .parse::<Rate>()
            .unwrap_err()
            .to_string()
            .contains("\"fast\"")
    );
    let va = tc.link("va").unwrap();
    let zero = HtbClass::new(h("1:"), h("1:10"), Rate(0));
    let err = tc.class_add(&va, &zero).unwrap_err();
    assert!(matches!(err, HtbError::Msg { .. }), "{err:?}");
    assert!(err.to_string().contains("invalid rate 0 for 1:10"), "{err}");
    // A class under a qdisc that does not exist: the kernel's own words.
    let err = tc.class_add(&va, &class_50_100()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("class add dev va parent 1: classid 1:10"),
        "{text}"
    );
    assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
    // The kernel's extended-ack text is part of the error.
    tc.qdisc_add(&va, &HtbQdisc::root(1, 0x10)).unwrap();
    let err = tc.qdisc_change(&va, &HtbQdisc::root(1, 0x20)).unwrap_err();
    let text = err.to_string();
    println!("kernel said: {text}");
    let HtbError::Kernel { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("Change operation not supported")),
        "{text}"
    );
    assert!(
        text.contains("qdisc change dev va parent root handle 1: htb default 20"),
        "{text}"
    );
    // A namespace that does not exist.
    let err = Tc::open_in_netns("/run/netns/tchtb-does-not-exist").unwrap_err();
    assert!(
        err.to_string().contains("/run/netns/tchtb-does-not-exist"),
        "{err}"
    );
    drop(tc);
    ns.close();
}

#[test]
fn missing_cap_net_admin_is_a_clear_error() {
    let Some((ns, mut tc)) = single("cap") else {
        return;
    };
    let va = tc.link("va").unwrap();
    // Capabilities are per thread: drop CAP_NET_ADMIN in a helper thread only.
    let err = std::thread::scope(|s| {
        s.spawn(|| {
            caps::drop(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_NET_ADMIN,
            )
            .unwrap();
            assert!(!tc_htb::tc::has_net_admin());
            let r = tc.qdisc_add(&va, &HtbQdisc::root(1, 0x10));
            // Reading needs no capability.
            assert!(tc.qdiscs(&va).is_ok());
            r
        })
        .join()
        .unwrap()
    })
    .unwrap_err();
    assert!(matches!(err, HtbError::MissingCapability { .. }), "{err:?}");
    assert!(
        err.to_string().contains("CAP_NET_ADMIN") && err.to_string().contains("dev va"),
        "{err}"
    );
    assert!(
        tc_htb::tc::has_net_admin(),
        "this thread keeps its capability"
    );
    drop(tc);
    ns.close();
}

#[test]
fn ensure_applies_the_least_change() {
    let Some((ns, mut tc)) = single("ens") else {
        return;
    };
    let va = tc.link("va").unwrap();
    let root = HtbQdisc::root(1, 0x10);
    assert_eq!(tc.ensure_root(&va, &root).unwrap(), Change::Created);
    assert_eq!(tc.ensure_root(&va, &root).unwrap(), Change::Unchanged);
    let err = tc.ensure_root(&va, &HtbQdisc::root(1, 0x20)).unwrap_err();
    assert!(err.to_string().contains("default 10 -> 20"), "{err}");

    let class = HtbClass::new(h("1:"), h("1:10"), Rate::mbit(100)).ceil(Rate::mbit(200));
    assert_eq!(tc.ensure_class(&va, &class).unwrap(), Change::Created);
    assert_eq!(tc.ensure_class(&va, &class).unwrap(), Change::Unchanged);
    let faster = HtbClass {
        rate: Rate::mbit(150),
        ..class
    };
    let change = tc.ensure_class(&va, &faster).unwrap();
    let Change::Updated(diffs) = &change else {
        panic!("{change:?}")
    };
    // The default burst follows the rate, so it changes too; ceil does not.
    assert_eq!(diffs[0], "rate 100Mbit -> 150Mbit", "{diffs:?}");
    assert!(diffs.iter().all(|d| !d.starts_with("ceil")), "{diffs:?}");
    assert!(
        ns.tc(&["class", "show", "dev", "va"])
            .contains("rate 150Mbit ceil 200Mbit")
    );
    assert_eq!(tc.ensure_class(&va, &faster).unwrap(), Change::Unchanged);
    let moved = HtbClass {
        parent: h("1:5"),
        ..faster
    };
    assert!(matches!(
        tc.ensure_class(&va, &moved),
        Err(HtbError::Mismatch { .. })
    ));

    let leaf = Leaf::Pfifo { limit: Some(50) };
    assert_eq!(
        tc.ensure_leaf(&va, h("1:10"), h("10:"), &leaf).unwrap(),
        Change::Created
    );
    assert_eq!(
        tc.ensure_leaf(&va, h("1:10"), h("10:"), &leaf).unwrap(),
        Change::Unchanged
    );
    let bigger = Leaf::Pfifo { limit: Some(500) };
    assert!(matches!(
        tc.ensure_leaf(&va, h("1:10"), h("10:"), &bigger).unwrap(),
        Change::Replaced(_)
    ));
    assert!(
        ns.tc(&["qdisc", "show", "dev", "va"])
            .contains("limit 500p")
    );
    drop(tc);
    ns.close();
}

/// Classifiers and leaves this kernel may lack (built without the module):
/// each is applied and verified with `tc`, or reported SKIPPED with the
/// kernel's answer.
#[test]
fn optional_classifiers_and_leaves() {
    let Some((ns, mut tc)) = single("opt") else {
        return;
    };
    let va = tc.link("va").unwrap();
    tc.qdisc_add(&va, &HtbQdisc::root(1, 0x10)).unwrap();
    tc.class_add(&va, &HtbClass::new(h("1:"), h("1:10"), Rate::mbit(10)))
        .unwrap();
    tc.class_add(&va, &HtbClass::new(h("1:"), h("1:20"), Rate::mbit(10)))
        .unwrap();
    let filters = [
        (Filter::fw(h("1:"), 3, 6, h("1:10")), "fw"),
        (Filter::cgroup(h("1:"), 4, 1), "cgroup"),
        (Filter::matchall(h("1:"), 5, h("1:20")), "matchall"),
    ];
    for (f, kind) in filters {
        match tc.filter_add(&va, &f) {
            Ok(()) => {
                let shown = ns.tc(&["filter", "show", "dev", "va"]);
                assert!(shown.contains(kind), "{kind} not shown:\n{shown}");
                tc.filter_del(&va, &f).unwrap();
            }
            Err(e)
                if matches!(
                    e.errno(),
                    Some(libc::ENOENT | libc::EOPNOTSUPP | libc::EINVAL)
                ) =>
            {
                println!("SKIPPED: {kind} classifier: this kernel lacks it ({e})");
            }
            Err(e) => panic!("{kind}: {e}"),
        }
    }
    let leaves = [
        Leaf::Sfq {
            perturb_secs: 10,
            limit: 0,
            quantum: 0,
        },
        Leaf::FqCodel {
            limit: Some(1000),
            target_us: None,
            interval_us: None,
            ecn: None,
        },
    ];
    for leaf in leaves {
        match tc.leaf_add(&va, h("1:20"), h("20:"), &leaf) {
            Ok(()) => {
                let shown = ns.tc(&["qdisc", "show", "dev", "va"]);
                assert!(
                    shown.contains(&format!("qdisc {} 20:", leaf.kind())),
                    "{shown}"
                );
                tc.qdisc_del(&va, h("1:20"), h("20:")).unwrap();
            }
            Err(e)
                if matches!(
                    e.errno(),
                    Some(libc::ENOENT | libc::EOPNOTSUPP | libc::EINVAL)
                ) =>
            {
                println!("SKIPPED: {} leaf: this kernel lacks it ({e})", leaf.kind());
            }
            Err(e) => panic!("{}: {e}", leaf.kind()),
        }
    }
    drop(tc);
    ns.close();
}

#[test]
fn guard_removes_namespace_on_panic() {
    if !can_run("guard") {
        return;
    }
    let name = std::panic::catch_unwind(|| {
        let pair = Pair::new("pan");
        let names = (pair.a.name.clone(), pair.b.name.clone());
        assert!(netns_list().contains(&names.0));
        std::panic::panic_any(names);
    })
    .unwrap_err();
    let (a, b) = *name.downcast::<(String, String)>().unwrap();
    let list = netns_list();
    assert!(
        !list.contains(&a) && !list.contains(&b),
        "{a} or {b} left behind: {list:?}"
    );
}

/// Namespaces of test processes that died without cleaning up (killed,
/// aborted): `tchtb-<pid>-...` whose pid is gone. Live runs are ignored, so
/// this holds while other test binaries run in parallel.
#[test]
fn no_namespaces_left_by_dead_test_processes() {
    if !can_run("leftovers") {
        return;
    }
    let stale: Vec<String> = netns_list()
        .into_iter()
        .filter(|n| {
            let Some(rest) = n.strip_prefix(common::PREFIX) else {
                return false;
            };
            let pid = rest.split('-').next().unwrap_or("");
            pid.parse::<u32>()
                .is_ok_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        })
        .collect();
    assert!(
        stale.is_empty(),
        "namespaces left behind: {stale:?} (remove with `ip netns del NAME`)"
    );
}
