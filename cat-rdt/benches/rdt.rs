//! Costs of the pure paths (schemata parsing, validation, the allocator)
//! and of one validated schemata change end to end on the FUSE emulator
//! (lock, reads of every group for the overlap check, one write).

use std::hint::black_box;

use cat_rdt::alloc::{self, CacheLimits, GroupMask};
use cat_rdt::emu::{EmulatorMount, MountOpts};
use cat_rdt::info::read_layout;
use cat_rdt::{Mode, Resctrl, Schemata, validate};
use criterion::{Criterion, criterion_group, criterion_main};

fn pure(c: &mut Criterion) {
    let text = "    L3:0=7ff;1=7ff\n    MB:0=100;1= 50\n";
    c.bench_function("schemata_parse_skx", |b| {
        b.iter(|| Schemata::parse(black_box(text)))
    });
    let limits = CacheLimits {
        cbm_mask: 0x7fff,
        min_cbm_bits: 1,
        shareable_bits: 0,
    };
    let groups: Vec<GroupMask> = (0..8)
        .map(|i| GroupMask {
            name: if i == 0 { "/".into() } else { format!("g{i}") },
            mask: if i == 0 { 0x7fff } else { 0x3 << i },
            mode: Mode::Shareable,
            owned: i % 2 == 0,
        })
        .collect();
    c.bench_function("give_ways_15way_8groups", |b| {
        b.iter(|| alloc::give_ways(&limits, black_box(&groups), "g2", 4))
    });
}

fn emulator(c: &mut Criterion) {
    let Ok(m) =
        EmulatorMount::mount_temp("skylake-sp", MountOpts::default(), &std::env::temp_dir())
    else {
        eprintln!("SKIPPED: emulator benches need FUSE");
        return;
    };
    let layout = read_layout(m.path(), None).expect("layout");
    let upd = Schemata::parse("L3:0=0f0\nMB:1=50").expect("parses");
    c.bench_function("validate_update_skx", |b| {
        b.iter(|| validate::validate_update(&layout, black_box(&upd)))
    });
    let rc = Resctrl::at(m.path()).expect("open");
    rc.create_group("bench").expect("create");
    let a = Schemata::parse("L3:0=0f0").expect("parses");
    let bb = Schemata::parse("L3:0=1f0").expect("parses");
    let mut flip = false;
    c.bench_function("update_schemata_emulated_skx", |b| {
        b.iter(|| {
            flip = !flip;
            rc.update_schemata("bench", if flip { &a } else { &bb })
                .expect("valid")
        })
    });
    c.bench_function("set_mb_percent_emulated_skx", |b| {
        b.iter(|| rc.set_mb_percent("bench", black_box(50)).expect("valid"))
    });
}

criterion_group!(benches, pure, emulator);
criterion_main!(benches);
