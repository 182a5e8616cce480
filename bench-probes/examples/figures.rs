//! The figures for BENCHMARKS.md in one run (release build):
//! each probe's wall time at the defaults (median of 20 runs), the memory
//! bandwidth probe at 100 % against this machine's STREAM triad measured in
//! the same run, and the time of a full default diagnosis of a CPU-bound
//! callback target against its 300 ms budget.
//!
//! Run: `cargo run --release -p bench-probes --example figures`

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bench_probes::diagnose::{DiagnoseConfig, diagnose};
use bench_probes::probe::{DEFAULT_DURATION, Probe, ProbeKind, ProbeSettings, stream_triad};
use bench_probes::target::FnTarget;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let settings = ProbeSettings::discover()?;
    let cpus = settings.topology.online();
    let cpu = *cpus.last().unwrap_or(&0);
    let stop = AtomicBool::new(false);
    println!("probe wall time at defaults (10 ms, 100 %, cpu{cpu}), median of 20 runs [min..max]:");
    for kind in ProbeKind::ALL {
        let mut p = match Probe::prepare(kind, &settings, cpu) {
            Ok(p) => p,
            Err(e) => {
                println!("  {:<7} not run: {e}", kind.name());
                continue;
            }
        };
        let walls: Vec<f64> = (0..20)
            .filter_map(|_| p.run(100, DEFAULT_DURATION, &stop).ok())
            .map(|r| r.wall_ms)
            .collect();
        if walls.is_empty() {
            println!("  {:<7} failed", kind.name());
            continue;
        }
        let (lo, hi) = walls
            .iter()
            .fold((f64::MAX, 0f64), |(a, b), w| (a.min(*w), b.max(*w)));
        println!(
            "  {:<7} {:6.2} ms [{lo:.2}..{hi:.2}]",
            kind.name(),
            median(walls)
        );
    }

    // membw at 100 % vs STREAM triad, same run, same CPU, same array size
    let mut membw = Probe::prepare(ProbeKind::Membw, &settings, cpu)?;
    let mut bw = Vec::new();
    for _ in 0..10 {
        bw.push(
            membw
                .run(100, Duration::from_millis(100), &stop)?
                .bytes_per_sec,
        );
    }
    let array = (settings.llc_size(cpu) * 4).clamp(16 << 20, 256 << 20);
    let one = stream_triad(&[cpu], array, 10)?;
    let all = stream_triad(&cpus, array, 10)?;
    let probe_bw = median(bw);
    println!(
        "membw 100 %: {:.2} GB/s; STREAM triad cpu{cpu}: best {:.2} GB/s ({:.0} %); all {} CPUs: best {:.2} GB/s ({:.0} %)",
        probe_bw / 1e9,
        one.best_bytes_per_sec / 1e9,
        100.0 * probe_bw / one.best_bytes_per_sec,
        cpus.len(),
        all.best_bytes_per_sec / 1e9,
        100.0 * probe_bw / all.best_bytes_per_sec
    );

    // a full default diagnosis of a CPU-bound callback on cpu0
    if cpus.len() >= 2 {
        let mut state = 1u64;
        let mut t = FnTarget::new("int loop", || {
            for _ in 0..50_000 {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            std::hint::black_box(state);
            Ok(())
        });
        let cfg = DiagnoseConfig::default();
        for i in 0..3 {
            let d = diagnose(&mut t, &settings, &cfg)?;
            println!(
                "diagnosis {i}: measured {:.0} ms of a {:.0} ms budget (+{:.0} ms probe setup): {}",
                d.measure_ms, d.budget_ms, d.setup_ms, d.verdict
            );
        }
    }
    Ok(())
}
