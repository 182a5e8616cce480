//! SVG charts of evaluation reports, written by hand (no font or image library).

use crate::eval::Row;
use std::fmt::Write as _;
use std::path::Path;

/// Errors writing a chart.
#[derive(Debug, thiserror::Error)]
#[error("failed to write chart {path}: {source}")]
pub struct PlotError {
    /// The file.
    pub path: std::path::PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One bar series: legend, colour, value of a row.
type Series = (&'static str, &'static str, fn(&Row) -> f64);

/// Grouped bars: per row, anticipated %, false positives %, culprit top-1 % and
/// top-3 %, on a 0–100 scale.
pub fn bars_svg(rows: &[Row]) -> String {
    let metrics: [Series; 4] = [
        ("anticipated", "#2b7bb9", |r| r.anticipated_pct),
        ("false positives (of alarms)", "#d7301f", |r| {
            r.false_positive_pct
        }),
        ("culprit top-1", "#31a354", |r| r.top1_pct),
        ("culprit top-3", "#a1d99b", |r| r.top3_pct),
    ];
    let (bar, gap, left, top, h) = (14.0, 24.0, 60.0, 40.0, 240.0);
    let group = bar * metrics.len() as f64 + gap;
    let width = left + group * rows.len().max(1) as f64 + 260.0;
    let height = top + h + 40.0 + 16.0 * rows.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for k in 0..=4 {
        let y = top + h - h * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}%</text>"##,
            width - 250.0,
            left - 4.0,
            y + 4.0,
            k * 25
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let x0 = left + gap / 2.0 + group * i as f64;
        for (j, (_, color, f)) in metrics.iter().enumerate() {
            let v = f(r).clamp(0.0, 100.0);
            let bh = h * v / 100.0;
            let _ = writeln!(
                s,
                r#"<rect x="{}" y="{}" width="{bar}" height="{bh}" fill="{color}"><title>{}: {v:.1}%</title></rect>"#,
                x0 + bar * j as f64,
                top + h - bh,
                esc(&r.name)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x0 + bar * 2.0,
            top + h + 14.0,
            i + 1
        );
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="{}">{}: {}</text>"#,
            top + h + 34.0 + 16.0 * i as f64,
            i + 1,
            esc(&r.name)
        );
    }
    for (j, (name, color, _)) in metrics.iter().enumerate() {
        let y = top + 16.0 * j as f64;
        let lx = width - 240.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{name}</text>"#,
            y - 9.0,
            lx + 14.0,
            y
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Writes [`bars_svg`] to `path`.
pub fn bars(path: &Path, rows: &[Row]) -> Result<(), PlotError> {
    std::fs::write(path, bars_svg(rows)).map_err(|source| PlotError {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Metrics;

    #[test]
    fn svg_has_one_bar_per_metric_and_row_and_escapes_names() {
        let m = Metrics {
            episodes: 4,
            anticipated: 3,
            alarms: 10,
            false_alarms: 1,
            culprit_ticks: 2,
            top1: 1,
            top3: 2,
            ..Default::default()
        };
        let rows = vec![
            Row::new("a <b>".into(), m.clone(), None),
            Row::new("c".into(), m, Some((1.0, 2.0))),
        ];
        let svg = bars_svg(&rows);
        assert_eq!(svg.matches("<title>").count(), 8);
        assert!(svg.contains("a &lt;b&gt;: 75.0%"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
