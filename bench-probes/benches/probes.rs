//! Criterion benchmark of each probe's wall time at the defaults (10 ms,
//! intensity 100 %, pinned to the last CPU): the budget is 10 ± 2 ms.
//! Run: `cargo bench -p bench-probes --bench probes`.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bench_probes::probe::{DEFAULT_DURATION, Probe, ProbeKind, ProbeSettings};
use criterion::{Criterion, criterion_group, criterion_main};

fn probe_wall(c: &mut Criterion) {
    let settings = match ProbeSettings::discover() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    let cpu = settings.topology.online().last().copied().unwrap_or(0);
    let stop = AtomicBool::new(false);
    let mut g = c.benchmark_group("probe_wall");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(200));
    for kind in ProbeKind::ALL {
        let mut p = match Probe::prepare(kind, &settings, cpu) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{kind}: {e}");
                continue;
            }
        };
        g.bench_function(kind.name(), |b| {
            b.iter(|| {
                p.run(100, DEFAULT_DURATION, &stop)
                    .map(|r| r.wall_ms)
                    .unwrap_or(f64::NAN)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, probe_wall);
criterion_main!(benches);
