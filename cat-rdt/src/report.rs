//! Text that a person reads: the `info` and `show` tables, with masks
//! drawn as way bars, and monitoring rows. Pure functions.

use std::fmt::Write as _;

use crate::cbm;
use crate::info::{Layout, MbScale};
use crate::monitor::Rates;
use crate::resctrl::GroupState;
use crate::schemata::Value;

fn mb_unit(scale: Option<MbScale>) -> &'static str {
    match scale {
        Some(MbScale::Percent) | None => "%",
        Some(MbScale::AmdUnits) => "/8 GB/s",
        Some(MbScale::Mbps) => " MBps",
    }
}

/// Columns padded to their widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect(), &mut out);
    for r in rows {
        line(r.clone(), &mut out);
    }
    out
}

/// The `info` report: each resource and its limits.
pub fn info(layout: &Layout, root: &str) -> String {
    let mut out = format!(
        "resctrl at {root}: {} CLOSIDs usable\n\n",
        layout.num_closids()
    );
    let mut rows = Vec::new();
    for (r, c) in &layout.caches {
        rows.push(vec![
            r.to_string(),
            c.cbm_len().to_string(),
            format!("{:x}", c.cbm_mask),
            c.min_cbm_bits.to_string(),
            format!("{:x}", c.shareable_bits),
            if c.sparse_masks {
                "yes".into()
            } else {
                "no".into()
            },
            c.num_closids.to_string(),
            format!("{:?}", layout.domain_ids(r)),
        ]);
    }
    if !rows.is_empty() {
        out.push_str(&table(
            &[
                "CACHE",
                "WAYS",
                "CBM_MASK",
                "MIN_CBM_BITS",
                "SHAREABLE_BITS",
                "SPARSE",
                "CLOSIDS",
                "DOMAINS",
            ],
            &rows,
        ));
        for (r, c) in &layout.caches {
            if let Some(u) = &c.bit_usage {
                let _ = writeln!(out, "{r} bit_usage: {u}");
            }
        }
        out.push_str(
            "  (per way, highest first: 0 unused, H hardware only, X hardware and software, \
             S shareable, E exclusive, P pseudo-locked)\n\n",
        );
    }
    if let Some(mb) = &layout.mb {
        let scale = layout.mb_scale;
        let rows = vec![vec![
            "MB".to_string(),
            format!("{}{}", mb.min_bandwidth, mb_unit(scale)),
            format!("{}{}", scale.map_or(100, MbScale::max), mb_unit(scale)),
            mb.bandwidth_gran.to_string(),
            if mb.delay_linear {
                "yes".into()
            } else {
                "no".into()
            },
            mb.thread_throttle_mode
                .clone()
                .unwrap_or_else(|| "-".into()),
            mb.num_closids.to_string(),
            format!("{:?}", layout.domain_ids(&crate::schemata::Resource::Mb)),
        ]];
        out.push_str(&table(
            &[
                "BANDWIDTH",
                "MIN",
                "MAX",
                "GRAN",
                "LINEAR",
                "THROTTLE",
                "CLOSIDS",
                "DOMAINS",
            ],
            &rows,
        ));
        out.push('\n');
    }
    if let Some(m) = &layout.mon {
        let _ = writeln!(
            out,
            "monitoring: {} RMIDs; events: {}",
            m.num_rmids,
            m.mon_features.join(", ")
        );
    }
    out
}

/// The `show` table: one row per group, resource and domain, masks drawn
/// as way bars (highest way on the left, as in the hex mask).
pub fn show(layout: &Layout, groups: &[GroupState]) -> String {
    let mut rows = Vec::new();
    for g in groups {
        let mut first = true;
        for line in &g.schemata.lines {
            for (d, v) in &line.domains {
                let (mask, bar) = match v {
                    Value::Cbm(m) => {
                        let len = layout
                            .caches
                            .get(&line.resource)
                            .map_or(cbm::cbm_len(*m), |c| c.cbm_len());
                        (
                            format!("{m:0w$x}", w = cbm::hex_width(len)),
                            format!("{} {}", cbm::bar(*m, len), cbm::ways(*m)),
                        )
                    }
                    Value::Bw(b) => (format!("{b}{}", mb_unit(layout.mb_scale)), String::new()),
                };
                rows.push(vec![
                    if first { g.name.clone() } else { String::new() },
                    if first {
                        g.mode.as_str().to_string()
                    } else {
                        String::new()
                    },
                    if first {
                        g.tasks.to_string()
                    } else {
                        String::new()
                    },
                    if first { g.cpus.clone() } else { String::new() },
                    line.resource.to_string(),
                    d.to_string(),
                    mask,
                    bar,
                ]);
                first = false;
            }
        }
    }
    table(
        &[
            "GROUP", "MODE", "TASKS", "CPUS", "RES", "DOM", "VALUE", "WAYS",
        ],
        &rows,
    )
}

/// One monitoring row: `[t, group, domain, llc KiB, total MB/s, local MB/s]`.
pub fn monitor_row(t: f64, group: &str, domain: u32, r: &Rates) -> Vec<String> {
    let opt = |v: Option<f64>| v.map_or("-".into(), |x| format!("{:.1}", x / 1e6));
    vec![
        format!("{t:.1}"),
        group.to_string(),
        domain.to_string(),
        r.llc_occupancy
            .map_or("-".into(), |x| (x / 1024).to_string()),
        opt(r.mbm_total_bps),
        opt(r.mbm_local_bps),
    ]
}

/// Header of [`monitor_row`].
pub const MONITOR_HEADER: [&str; 6] = [
    "TIME_S",
    "GROUP",
    "DOM",
    "LLC_KIB",
    "MBM_TOTAL_MB/S",
    "MBM_LOCAL_MB/S",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
