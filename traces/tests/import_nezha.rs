//! The Nezha CSV preset on the real Nezha traces (Online Boutique on 2022-08-22,
//! TrainTicket on 2023-01-29), when `../shared/data` is present.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use seer_traces::SpanKind;
use seer_traces::import::{self, Format};

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
}

/// Reads the first `n` files of a day; per service: server, client, internal spans.
fn read_day(day: &str, n: usize) -> Option<DayStats> {
    let files = trace_files(day)?;
    assert!(files.len() >= n, "{day}: only {} trace files", files.len());
    let format = Format::from_name("nezha-csv").expect("preset");
    let mut r = import::open_all(&files[..n], &format);
    let mut services: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    for s in r.by_ref() {
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
    Some(DayStats {
        spans: st.spans,
        rejection_rate: st.rejection_rate(),
        services,
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
}
