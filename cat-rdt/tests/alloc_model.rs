//! Property test of the way allocator against the emulator's kernel model:
//! over random CPU layouts and random (kernel-accepted) group states, every
//! step of an allocation is accepted by the model, the target ends with N
//! exclusive contiguous ways, and groups Seer does not own are untouched.

use cat_rdt::Mode;
use cat_rdt::alloc::{self, AllocError, CacheLimits, GroupMask};
use cat_rdt::cbm;
use cat_rdt::emu::MountOpts;
use cat_rdt::emu::model::Model;
use cat_rdt::emu::profile::{CacheProfile, Profile};
use cat_rdt::schemata::{Resource, Schemata, Value};
use proptest::prelude::*;

fn profile(len: u32, min: u32, share: u32, domains: u32) -> Profile {
    Profile {
        name: "random".into(),
        description: String::new(),
        cpus: 4,
        l3: Some(CacheProfile {
            cbm_mask: format!("{:x}", cbm::contiguous(0, len)),
            num_closids: 8,
            min_cbm_bits: min,
            shareable_bits: format!(
                "{:x}",
                if share == 0 {
                    0
                } else {
                    cbm::contiguous(len - share, share)
                }
            ),
            sparse_masks: false,
            cdp: false,
            domains: (0..domains).collect(),
            cache_bytes: 1 << 20,
        }),
        l2: None,
        mb: None,
        mon: None,
    }
}

fn path(group: &str, file: &str) -> Vec<String> {
    if group == "/" {
        vec![file.to_string()]
    } else {
        vec![group.to_string(), file.to_string()]
    }
}

fn write(m: &mut Model, group: &str, file: &str, data: &str) -> Result<(), i32> {
    let p = path(group, file);
    let r: Vec<&str> = p.iter().map(String::as_str).collect();
    m.write(&r, data.as_bytes(), 1)
}

fn read(m: &Model, group: &str, file: &str) -> String {
    let p = path(group, file);
    let r: Vec<&str> = p.iter().map(String::as_str).collect();
    m.read(&r).expect("readable")
}

fn mask(m: &Model, group: &str, d: u32) -> u64 {
    Schemata::parse(&read(m, group, "schemata"))
        .expect("parses")
        .get(&Resource::L3, d)
        .map_or(0, Value::raw)
}

fn mode(m: &Model, group: &str) -> Mode {
    Mode::parse(&read(m, group, "mode")).expect("mode")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn allocations_are_kernel_valid(
        len in 4u32..21,
        min in 1u32..3,
        share in 0u32..3,
        ndom in 1u32..3,
        ops in proptest::collection::vec((0usize..4, 0u32..2, 0u32..20, 1u32..20, any::<bool>()), 0..16),
        init in proptest::collection::vec((0u32..20, 1u32..5), 4),
        owned in proptest::collection::vec(any::<bool>(), 4),
        ways in 1u32..8,
    ) {
        let mut m = Model::new(profile(len, min, share, ndom), MountOpts::default(), None).expect("mount");
        let names = ["g0", "g1", "g2", "g3"];
        for n in names.iter().chain(&["t"]) {
            // Creation may fail with "No space" once exclusive groups hold everything.
            if m.mkdir(&[n]).is_err() {
                return Ok(());
            }
        }
        // Small starting masks (a new group starts with every way).
        for (i, (s, l)) in init.into_iter().enumerate() {
            let s = s % len;
            let mk = cbm::contiguous(s, l.min(len - s).max(min.min(len - s)));
            let doms: Vec<String> = (0..ndom).map(|d| format!("{d}={mk:x}")).collect();
            let _ = write(&mut m, names[i], "schemata", &format!("L3:{}\n", doms.join(";")));
        }
        // Random states the kernel accepts.
        for (g, d, s, l, excl) in ops {
            let d = d % ndom;
            let s = s % len;
            let l = l.min(len - s);
            let _ = write(&mut m, "/", "schemata", &format!("L3:{d}={:x}\n", cbm::contiguous(0, len).min(cbm::contiguous(0, (s).max(min)))));
            let _ = write(&mut m, names[g], "schemata", &format!("L3:{d}={:x}\n", cbm::contiguous(s, l)));
            if excl {
                let _ = write(&mut m, names[g], "mode", "exclusive\n");
            }
        }
        let all: Vec<&str> = ["/", "t"].into_iter().chain(names).collect();
        let limits = CacheLimits {
            cbm_mask: cbm::contiguous(0, len),
            min_cbm_bits: min,
            shareable_bits: if share == 0 { 0 } else { cbm::contiguous(len - share, share) },
        };
        let is_owned = |g: &str| g == "/" || g == "t" || names.iter().position(|n| *n == g).is_some_and(|i| owned[i]);
        let foreign_before: Vec<(String, String)> =
            names.iter().filter(|g| !is_owned(g)).map(|g| (g.to_string(), read(&m, g, "schemata"))).collect();
        // Plan every domain from the same state, as Resctrl::give_ways does.
        let mut plans = Vec::new();
        for d in 0..ndom {
            let groups: Vec<GroupMask> = all
                .iter()
                .map(|g| GroupMask { name: g.to_string(), mask: mask(&m, g, d), mode: mode(&m, g), owned: is_owned(g) })
                .collect();
            match alloc::give_ways(&limits, &groups, "t", ways) {
                Ok(a) => plans.push((d, a)),
                Err(AllocError::BadCount { .. }) => {
                    prop_assert!(ways < min || ways > len);
                    return Ok(());
                }
                Err(AllocError::NoRoom { free, .. }) => {
                    prop_assert!(cbm::ways(cbm::largest_run(free)) < ways);
                    return Ok(());
                }
                Err(e) => {
                    // The other groups would be left with too little.
                    prop_assert!(matches!(e, AllocError::NoRoomForOthers { .. }), "{}", e);
                    return Ok(());
                }
            }
        }
        // Apply in the order Resctrl::give_ways uses; the kernel must accept every step.
        if mode(&m, "t") == Mode::Exclusive {
            prop_assert_eq!(write(&mut m, "t", "mode", "shareable\n"), Ok(()));
        }
        for (d, a) in &plans {
            for (g, nm) in &a.shrunk {
                let r = write(&mut m, g, "schemata", &format!("L3:{d}={nm:x}\n"));
                prop_assert_eq!(r, Ok(()), "shrink {} to {:x}: {:?}", g, nm, m.read(&["info", "last_cmd_status"]));
            }
        }
        for (d, a) in &plans {
            let r = write(&mut m, "t", "schemata", &format!("L3:{d}={:x}\n", a.region));
            prop_assert_eq!(r, Ok(()), "target {:x}: {:?}", a.region, m.read(&["info", "last_cmd_status"]));
        }
        let r = write(&mut m, "t", "mode", "exclusive\n");
        prop_assert_eq!(r, Ok(()), "exclusive: {:?}", m.read(&["info", "last_cmd_status"]));
        for (d, a) in &plans {
            prop_assert_eq!(mask(&m, "t", *d), a.region);
            prop_assert_eq!(a.region.count_ones(), ways);
            for g in all.iter().filter(|g| **g != "t") {
                prop_assert_eq!(mask(&m, g, *d) & a.region, 0);
            }
        }
        for (g, s) in foreign_before {
            prop_assert_eq!(read(&m, &g, "schemata"), s, "foreign group {} changed", g);
        }
    }
}
