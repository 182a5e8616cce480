//! The Nezha CSV preset on the real Nezha traces (Online Boutique on 2022-08-22,
//! TrainTicket on 2023-01-29), when `../shared/data` is present.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use seer_traces::import::{self, Format};
use seer_traces::pipeline::{Pipeline, PipelineConfig, mean_hop};
use seer_traces::{QosSpec, SpanKind};

fn trace_files(day: &str) -> Option<Vec<PathBuf>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/nezha")
        .join(day)
        .join("trace");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".csv.gz"))
        .collect();
    files.sort();
    Some(files)
}

struct DayStats {
    spans: u64,
    rejection_rate: f64,
    services: BTreeMap<String, [u64; 3]>,
    /// Calls whose client span met its server span in the trace pipeline.
    calls_paired: u64,
    /// Per service, the mean of `hop_mean` over the ticks.
    hop: BTreeMap<String, f64>,
}

/// Reads the first `n` files of a day; per service: server, client, internal spans.
fn read_day(day: &str, n: usize) -> Option<DayStats> {
    let files = trace_files(day)?;
    assert!(files.len() >= n, "{day}: only {} trace files", files.len());
    let format = Format::from_name("nezha-csv").expect("preset");
    let mut r = import::open_all(&files[..n], &format);
    let mut services: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    // Files list spans by trace, not by end: allow what `seer ingest` allows files.
    let mut pipeline = Pipeline::new(PipelineConfig {
        lateness_ns: 120_000_000_000,
        ..PipelineConfig::default()
    });
    for s in r.by_ref() {
        pipeline.push(&s);
        let e = services.entry(s.service.clone()).or_default();
        match s.kind {
            SpanKind::Server => e[0] += 1,
            SpanKind::Client => e[1] += 1,
            SpanKind::Internal => e[2] += 1,
            k => panic!("unresolved kind {k:?}"),
        }
    }
    let st = r.stats();
    assert!(st.failed_files.is_empty(), "{:?}", st.failed_files);
    assert_eq!(st.files, n as u64);
    assert_eq!(st.kinds_inferred.iter().sum::<u64>(), st.spans);
    for rej in &st.rejections {
        eprintln!("{rej}");
    }
    let calls_paired = pipeline.stats().calls_paired;
    let ds = pipeline.finish(&QosSpec::default(), &[], day.into());
    assert_eq!(ds.meta.calls_paired, calls_paired);
    let hop = ds
        .meta
        .services
        .iter()
        .cloned()
        .zip(mean_hop(&ds).into_iter().map(|h| h.unwrap_or(f64::NAN)))
        .collect();
    Some(DayStats {
        spans: st.spans,
        rejection_rate: st.rejection_rate(),
        services,
        calls_paired,
        hop,
    })
}

#[test]
fn online_boutique_day() {
    let Some(d) = read_day("2022-08-22", 4) else {
        println!("SKIPPED: ../shared/data/nezha/2022-08-22 is absent");
        return;
    };
    assert!(d.spans > 50_000, "{} spans", d.spans);
    assert!(
        d.rejection_rate < 0.001,
        "rejection rate {}",
        d.rejection_rate
    );
    let names: BTreeSet<&str> = d.services.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "adservice",
        "cartservice",
        "checkoutservice",
        "currencyservice",
        "emailservice",
        "frontend",
        "paymentservice",
        "productcatalogservice",
        "recommendationservice",
        "shippingservice",
    ]
    .into_iter()
    .collect();
    assert!(names.is_subset(&expected), "{names:?}");
    assert!(names.len() >= 8, "{names:?}");
    // The frontend receives requests and calls the others; the others serve.
    let fe = d.services["frontend"];
    assert!(fe[0] > 0 && fe[1] > 0, "frontend {fe:?}");
    for (svc, k) in &d.services {
        assert!(k[0] > 0, "{svc} has no server spans: {k:?}");
    }
    // The frontend's client spans meet the callees' server spans: each callee has
    // a network time, the frontend (called from outside) none.
    assert!(d.calls_paired > 10_000, "{} calls paired", d.calls_paired);
    eprintln!("{:?}", d.hop);
    assert!(d.hop["productcatalogservice"] > 0.0, "{:?}", d.hop);
    assert!(
        d.hop.values().all(|h| h.is_finite() && *h >= 0.0),
        "{:?}",
        d.hop
    );
    assert_eq!(d.hop["frontend"], 0.0);
}

#[test]
fn train_ticket_day() {
    let Some(d) = read_day("2023-01-29", 4) else {
        println!("SKIPPED: ../shared/data/nezha/2023-01-29 is absent");
        return;
    };
    assert!(d.spans > 10_000, "{} spans", d.spans);
    assert!(
        d.rejection_rate < 0.001,
        "rejection rate {}",
        d.rejection_rate
    );
    assert!(d.services.len() >= 15, "{:?}", d.services.keys());
    for svc in d.services.keys() {
        assert!(svc.starts_with("ts-") && svc.ends_with("-service"), "{svc}");
    }
    let gw = d.services["ts-gateway-service"];
    assert!(gw[0] > 0 && gw[1] > 0 && gw[2] > 0, "gateway {gw:?}");
    eprintln!("{} calls paired; {:?}", d.calls_paired, d.hop);
    assert!(d.calls_paired > 1_000, "{} calls paired", d.calls_paired);
    assert!(d.hop.values().any(|h| *h > 0.0), "{:?}", d.hop);
}
