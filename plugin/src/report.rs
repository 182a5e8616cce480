//! `seer report`: what a dataset says about its labelled faults.
//!
//! For each resource fault of a fault list, the service whose queue depth rose most
//! over its pre-fault baseline in the window after the injection is compared with
//! the injected one (the "largest queue rise" rule, the first baseline the
//! predictor must beat).

use anyhow::Result;
use seer_traces::Dataset;
use seer_traces::analysis::{Rise, largest, rises};
use seer_traces::faults::Fault;
use serde::Serialize;

/// The verdict on one fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultVerdict {
    /// Injection time, Unix seconds.
    pub at_s: u64,
    /// Fault type as listed.
    pub kind: String,
    /// The injected service.
    pub injected: String,
    /// Largest absolute rise.
    pub top_absolute: String,
    /// Largest relative rise.
    pub top_relative: String,
    /// Rank (1 = first) of the injected service by absolute rise.
    pub rank_absolute: usize,
    /// Rank of the injected service by relative rise.
    pub rank_relative: usize,
}

/// All verdicts and hit rates.
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    /// Window on each side, s.
    pub window_s: f64,
    /// One per fault the data covers.
    pub faults: Vec<FaultVerdict>,
    /// Faults outside the data.
    pub not_covered: usize,
    /// Injected service first by absolute rise.
    pub hits_absolute: usize,
    /// Injected service first by relative rise.
    pub hits_relative: usize,
}

/// Judges every fault of `kinds` (all when empty).
pub fn judge(ds: &Dataset, faults: &[Fault], kinds: &[String], window_ns: u64) -> FaultReport {
    let mut out = Vec::new();
    let mut not_covered = 0;
    for f in faults
        .iter()
        .filter(|f| kinds.is_empty() || kinds.contains(&f.kind))
    {
        let Some(r) = rises(ds, f.culprit.start_ns, window_ns) else {
            not_covered += 1;
            continue;
        };
        let rank = |key: fn(&Rise) -> f64| {
            let mine = r.iter().find(|x| x.service == f.culprit.service).map(key);
            match mine {
                // Ties count against the injected service.
                Some(m) => {
                    1 + r
                        .iter()
                        .filter(|x| x.service != f.culprit.service && key(x) >= m)
                        .count()
                }
                None => usize::MAX,
            }
        };
        let name = |x: Option<&Rise>| x.map(|x| x.service.clone()).unwrap_or_default();
        out.push(FaultVerdict {
            at_s: f.culprit.start_ns / 1_000_000_000,
            kind: f.kind.clone(),
            injected: f.culprit.service.clone(),
            top_absolute: name(largest(&r, Rise::absolute)),
            top_relative: name(largest(&r, Rise::relative)),
            rank_absolute: rank(Rise::absolute),
            rank_relative: rank(Rise::relative),
        });
    }
    FaultReport {
        window_s: window_ns as f64 / 1e9,
        hits_absolute: out.iter().filter(|v| v.rank_absolute == 1).count(),
        hits_relative: out.iter().filter(|v| v.rank_relative == 1).count(),
        faults: out,
        not_covered,
    }
}

impl FaultReport {
    /// The report as a table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<11} {:<15} {:<26} {:<26} {:>4} {:<26} {:>4}",
            "at (unix)",
            "fault",
            "injected",
            "largest abs rise",
            "rank",
            "largest rel rise",
            "rank"
        );
        let rank = |r: usize| {
            if r == usize::MAX {
                "-".to_string()
            } else {
                r.to_string()
            }
        };
        for v in &self.faults {
            let _ = writeln!(
                s,
                "{:<11} {:<15} {:<26} {:<26} {:>4} {:<26} {:>4}",
                v.at_s,
                v.kind,
                v.injected,
                v.top_absolute,
                rank(v.rank_absolute),
                v.top_relative,
                rank(v.rank_relative)
            );
        }
        let n = self.faults.len();
        let _ = writeln!(
            s,
            "\ninjected service has the largest queue rise ({} s windows): absolute {}/{n}, relative {}/{n}; {} faults outside the data",
            self.window_s, self.hits_absolute, self.hits_relative, self.not_covered
        );
        s
    }
}

/// `seer report`.
pub fn run(
    ds: &Dataset,
    faults: &[Fault],
    kinds: &[String],
    window_ns: u64,
    json: bool,
) -> Result<()> {
    let rep = judge(ds, faults, kinds, window_ns);
    if json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{}", rep.table());
    }
    Ok(())
}
