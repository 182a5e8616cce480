//! Span CSV with a column mapping, and the Nezha layout as a preset.
//!
//! A [`CsvMapping`] names, for each span field, the header column(s) that hold it.
//! Column names match ignoring case and punctuation (`trace_id`, `TraceID` and
//! `traceId` are the same), and a field may list alternatives separated by `|`.
//! Times are integers or decimals in a [`TimeUnit`]; the end comes from an end
//! column or a duration column. Rows are read one at a time.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::input::{Input, io_reason};
use super::{ImportError, ImportStats, Location, SpanReader};
use crate::span::{RejectReason, Span, SpanKind, SpanStatus, parse_hex_id};

/// Unit of a time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeUnit {
    /// Nanoseconds.
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
    /// Epoch timestamps: guessed per value from its magnitude (≥ 1e17 ns,
    /// ≥ 1e14 µs, ≥ 1e11 ms, else s); durations then take the start's unit.
    #[default]
    Auto,
}

impl TimeUnit {
    /// Parses `ns`, `us`/`µs`, `ms`, `s`, `auto`.
    pub fn from_name(s: &str) -> Option<TimeUnit> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ns" | "nanos" | "nanoseconds" => Some(TimeUnit::Ns),
            "us" | "µs" | "micros" | "microseconds" => Some(TimeUnit::Us),
            "ms" | "millis" | "milliseconds" => Some(TimeUnit::Ms),
            "s" | "sec" | "seconds" => Some(TimeUnit::S),
            "auto" => Some(TimeUnit::Auto),
            _ => None,
        }
    }

    /// Nanoseconds per unit (`None` for [`TimeUnit::Auto`]).
    pub fn ns(self) -> Option<u64> {
        match self {
            TimeUnit::Ns => Some(1),
            TimeUnit::Us => Some(1_000),
            TimeUnit::Ms => Some(1_000_000),
            TimeUnit::S => Some(1_000_000_000),
            TimeUnit::Auto => None,
        }
    }

    /// The unit an epoch timestamp of this magnitude is most likely in.
    pub fn guess_epoch(value: f64) -> TimeUnit {
        if value >= 1e17 {
            TimeUnit::Ns
        } else if value >= 1e14 {
            TimeUnit::Us
        } else if value >= 1e11 {
            TimeUnit::Ms
        } else {
            TimeUnit::S
        }
    }
}

/// How the service column becomes a service name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceFrom {
    /// Used as it is.
    #[default]
    Verbatim,
    /// A Kubernetes pod name: the ReplicaSet and pod hash suffixes are removed
    /// (see [`service_from_pod`]).
    PodName,
}

/// Which columns hold which span field. Each name may list alternatives
/// separated by `|`; names match ignoring case and non-alphanumerics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvMapping {
    /// Trace id column (hex, up to 32 digits).
    pub trace_id: String,
    /// Span id column (hex, up to 16 digits).
    pub span_id: String,
    /// Parent span id column; `None` when the file has none (all spans roots).
    pub parent_id: Option<String>,
    /// Values of the parent column that mean "no parent" (an empty value and an
    /// all-zero id always do). Compared ignoring case.
    pub root_parents: Vec<String>,
    /// Service column.
    pub service: String,
    /// How to turn the service column into a service name.
    pub service_from: ServiceFrom,
    /// Operation (span name) column, if any.
    pub operation: Option<String>,
    /// Start time column.
    pub start: String,
    /// End time column; one of `end` and `duration` must be set (`end` wins).
    pub end: Option<String>,
    /// Duration column.
    pub duration: Option<String>,
    /// Unit of the start and end columns.
    pub time_unit: TimeUnit,
    /// Unit of the duration column ([`TimeUnit::Auto`]: same as the start's).
    pub duration_unit: TimeUnit,
    /// Span kind column (`server`, `SPAN_KIND_CLIENT`, or the OTLP number), if any.
    pub kind: Option<String>,
    /// Status column (`error`/`true`/`2` is an error, `ok`/`1` ok), if any.
    pub status: Option<String>,
    /// Field delimiter.
    pub delimiter: u8,
}

impl CsvMapping {
    /// The Nezha dataset layout: `TraceID,SpanID,ParentID,PodName,OperationName,
    /// StartTimeUnixNano,EndTimeUnixNano,Duration`, parent `root` for roots, the
    /// service is the pod name without its hash suffixes.
    pub fn nezha() -> CsvMapping {
        CsvMapping {
            trace_id: "TraceID".into(),
            span_id: "SpanID".into(),
            parent_id: Some("ParentID".into()),
            root_parents: vec!["root".into()],
            service: "PodName".into(),
            service_from: ServiceFrom::PodName,
            operation: Some("OperationName".into()),
            start: "StartTimeUnixNano".into(),
            end: Some("EndTimeUnixNano".into()),
            duration: None,
            time_unit: TimeUnit::Ns,
            duration_unit: TimeUnit::Auto,
            kind: None,
            status: None,
            delimiter: b',',
        }
    }

    /// Common column names: `trace_id`, `span_id`, `parent_id` (or `parent_span_id`),
    /// `service` (or `service_name`), `operation` (or `name`, `span_name`),
    /// `start` (or `start_time`, `timestamp`), `end` (or `end_time`), units guessed.
    pub fn generic() -> CsvMapping {
        CsvMapping {
            trace_id: "trace_id|trace".into(),
            span_id: "span_id|span|id".into(),
            parent_id: Some("parent_id|parent_span_id|parent".into()),
            root_parents: vec!["root".into(), "null".into(), "none".into()],
            service: "service|service_name|pod|pod_name".into(),
            service_from: ServiceFrom::Verbatim,
            operation: Some("operation|operation_name|name|span_name".into()),
            start: "start|start_time|start_time_unix_nano|timestamp".into(),
            end: Some("end|end_time|end_time_unix_nano".into()),
            duration: None,
            time_unit: TimeUnit::Auto,
            duration_unit: TimeUnit::Auto,
            kind: None,
            status: None,
            delimiter: b',',
        }
    }

    /// Parses a mapping from `key=value` pairs separated by commas, starting from
    /// [`CsvMapping::generic`]. Keys: `trace`, `span`, `parent` (`-` for none),
    /// `root` (`|`-separated root sentinels), `service`, `service_from`
    /// (`verbatim`|`pod`), `operation`, `start`, `end`, `duration`, `unit`,
    /// `duration_unit`, `kind`, `status`, `delimiter` (`comma`|`tab`|`semicolon`|`pipe`),
    /// `preset` (`nezha`|`generic`, applied first).
    ///
    /// Example: `trace=tid,span=sid,parent=pid,service=svc,start=ts,duration=dur,unit=us`.
    pub fn parse_spec(spec: &str) -> Result<CsvMapping, ImportError> {
        let bad = |detail: String| ImportError::BadMapping {
            spec: spec.to_string(),
            detail,
        };
        let mut m = CsvMapping::generic();
        let pairs: Vec<(&str, &str)> = spec
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                p.split_once('=')
                    .ok_or_else(|| bad(format!("{p:?} is not key=value")))
            })
            .collect::<Result<_, _>>()?;
        // The preset first, so that other keys refine it.
        for (k, v) in &pairs {
            if k.trim() == "preset" {
                m = match v.trim() {
                    "nezha" | "nezha-csv" => CsvMapping::nezha(),
                    "generic" | "csv" => CsvMapping::generic(),
                    other => return Err(bad(format!("unknown preset {other:?}"))),
                };
            }
        }
        let opt = |v: &str| {
            if v == "-" || v.is_empty() {
                None
            } else {
                Some(v.to_string())
            }
        };
        let unit =
            |v: &str| TimeUnit::from_name(v).ok_or_else(|| bad(format!("unknown time unit {v:?}")));
        for (k, v) in pairs {
            let v = v.trim();
            match k.trim() {
                "preset" => {}
                "trace" | "trace_id" => m.trace_id = v.to_string(),
                "span" | "span_id" => m.span_id = v.to_string(),
                "parent" | "parent_id" => m.parent_id = opt(v),
                "root" => m.root_parents = v.split('|').map(str::to_string).collect(),
                "service" => m.service = v.to_string(),
                "service_from" => {
                    m.service_from = match v {
                        "verbatim" => ServiceFrom::Verbatim,
                        "pod" | "pod_name" => ServiceFrom::PodName,
                        other => return Err(bad(format!("unknown service_from {other:?}"))),
                    }
                }
                "operation" | "name" => m.operation = opt(v),
                "start" => m.start = v.to_string(),
                "end" => m.end = opt(v),
                "duration" => {
                    m.duration = opt(v);
                    if m.duration.is_some() && !pairs_has(spec, "end") {
                        m.end = None;
                    }
                }
                "unit" | "time_unit" => m.time_unit = unit(v)?,
                "duration_unit" => m.duration_unit = unit(v)?,
                "kind" => m.kind = opt(v),
                "status" => m.status = opt(v),
                "delimiter" => {
                    m.delimiter = match v {
                        "comma" | "," => b',',
                        "tab" | "\\t" => b'\t',
                        "semicolon" | ";" => b';',
                        "pipe" => b'|',
                        other => return Err(bad(format!("unknown delimiter {other:?}"))),
                    }
                }
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        if m.end.is_none() && m.duration.is_none() {
            return Err(bad("one of end and duration is needed".into()));
        }
        Ok(m)
    }
}

fn pairs_has(spec: &str, key: &str) -> bool {
    spec.split(',')
        .any(|p| p.split_once('=').is_some_and(|(k, _)| k.trim() == key))
}

/// The service name of a Kubernetes pod: `frontend-579b9bff58-t2dbm` → `frontend`,
/// `ts-gateway-service-6f6cfc45b-h5m2n` → `ts-gateway-service`.
///
/// The last two `-` segments are removed when they look like Kubernetes' generated
/// suffixes: a 5-character pod suffix and a 6–10-character ReplicaSet hash, both
/// drawn from Kubernetes' safe alphabet (`bcdfghjklmnpqrstvwxz2456789`: no vowels,
/// no `0`, `1`, `3`), so a name such as `ts-user-service` is left alone. A name
/// without such suffixes is returned unchanged.
pub fn service_from_pod(pod: &str) -> &str {
    fn safe(seg: &str) -> bool {
        seg.bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
    }
    let mut parts = pod.rsplitn(3, '-');
    let (Some(suffix), Some(hash), Some(base)) = (parts.next(), parts.next(), parts.next()) else {
        return pod;
    };
    if suffix.len() == 5
        && (6..=10).contains(&hash.len())
        && safe(suffix)
        && safe(hash)
        && !base.is_empty()
    {
        base
    } else {
        pod
    }
}

/// Column indices resolved against a header.
#[derive(Debug, Clone)]
struct Columns {
    trace_id: usize,
    span_id: usize,
    parent_id: Option<usize>,
    service: usize,
    operation: Option<usize>,
    start: usize,
    end: Option<usize>,
    duration: Option<usize>,
    kind: Option<usize>,
    status: Option<usize>,
    width: usize,
}

fn normalize(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Columns {
    fn resolve(
        mapping: &CsvMapping,
        header: &[String],
        path: &Path,
    ) -> Result<(Columns, Vec<String>), ImportError> {
        let norm: Vec<String> = header.iter().map(|h| normalize(h)).collect();
        let find = |spec: &str| -> Option<usize> {
            spec.split('|').find_map(|alt| {
                let a = normalize(alt);
                norm.iter().position(|h| *h == a)
            })
        };
        let need = |spec: &str| {
            find(spec).ok_or_else(|| ImportError::MissingColumn {
                path: path.to_path_buf(),
                column: spec.to_string(),
                header: header.join(","),
            })
        };
        let want = |spec: &Option<String>| spec.as_deref().map(need).transpose();
        let end = match (&mapping.end, &mapping.duration) {
            // Both named: use whichever the file has, the end first.
            (Some(e), Some(_)) => find(e),
            (Some(e), None) => Some(need(e)?),
            (None, _) => None,
        };
        let duration = if end.is_none() {
            match &mapping.duration {
                Some(d) => Some(need(d)?),
                None => {
                    return Err(ImportError::MissingColumn {
                        path: path.to_path_buf(),
                        column: mapping.end.clone().unwrap_or_else(|| "end".into()),
                        header: header.join(","),
                    });
                }
            }
        } else {
            None
        };
        let cols = Columns {
            trace_id: need(&mapping.trace_id)?,
            span_id: need(&mapping.span_id)?,
            parent_id: want(&mapping.parent_id)?,
            service: need(&mapping.service)?,
            operation: want(&mapping.operation)?,
            start: need(&mapping.start)?,
            end,
            duration,
            kind: want(&mapping.kind)?,
            status: want(&mapping.status)?,
            width: header.len(),
        };
        let used = [
            Some(cols.trace_id),
            Some(cols.span_id),
            cols.parent_id,
            Some(cols.service),
            cols.operation,
            Some(cols.start),
            cols.end,
            cols.duration,
            cols.kind,
            cols.status,
        ];
        let ignored = header
            .iter()
            .enumerate()
            .filter(|(i, _)| !used.contains(&Some(*i)))
            .map(|(_, h)| h.clone())
            .collect();
        Ok((cols, ignored))
    }
}

/// Parses a time value in `unit` into nanoseconds; returns the unit used.
fn parse_time(text: &str, unit: TimeUnit) -> Result<(u64, TimeUnit), String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty".into());
    }
    if let Ok(v) = t.parse::<u64>() {
        let unit = if unit == TimeUnit::Auto {
            TimeUnit::guess_epoch(v as f64)
        } else {
            unit
        };
        let scale = unit.ns().unwrap_or(1);
        return v
            .checked_mul(scale)
            .map(|ns| (ns, unit))
            .ok_or_else(|| format!("{t} overflows"));
    }
    if let Some(exact) = parse_fixed_point(t, unit) {
        return exact;
    }
    let f: f64 = t.parse().map_err(|_| format!("not a number: {t:?}"))?;
    if !f.is_finite() {
        return Err(format!("not a number: {t:?}"));
    }
    if f < 0.0 {
        return Err(format!("negative: {t}"));
    }
    let unit = if unit == TimeUnit::Auto {
        TimeUnit::guess_epoch(f)
    } else {
        unit
    };
    let ns = f * unit.ns().unwrap_or(1) as f64;
    if ns >= u64::MAX as f64 {
        return Err(format!("{t} overflows"));
    }
    Ok((ns.round() as u64, unit))
}

/// `123.456` in `unit`, exactly (f64 would lose nanoseconds on epoch times).
fn parse_fixed_point(t: &str, unit: TimeUnit) -> Option<Result<(u64, TimeUnit), String>> {
    let (int, frac) = t.split_once('.')?;
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let unit = if unit == TimeUnit::Auto {
        TimeUnit::guess_epoch(whole as f64)
    } else {
        unit
    };
    let scale = unit.ns().unwrap_or(1);
    // Digits of the fraction that still count at nanosecond resolution.
    let digits = scale.ilog10() as usize;
    let mut frac_ns = 0u64;
    for (i, b) in frac.bytes().take(digits).enumerate() {
        frac_ns += u64::from(b - b'0') * 10u64.pow((digits - 1 - i) as u32);
    }
    // Round on the first dropped digit.
    if frac.as_bytes().get(digits).is_some_and(|&b| b >= b'5') {
        frac_ns += 1;
    }
    Some(
        whole
            .checked_mul(scale)
            .and_then(|ns| ns.checked_add(frac_ns))
            .map(|ns| (ns, unit))
            .ok_or_else(|| format!("{t} overflows")),
    )
}

fn parse_kind(text: &str) -> SpanKind {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return SpanKind::from_otlp(n);
    }
    let lower = t.to_ascii_lowercase();
    SpanKind::from_name(lower.strip_prefix("span_kind_").unwrap_or(&lower))
}

fn parse_status(text: &str) -> SpanStatus {
    match text.trim().to_ascii_lowercase().as_str() {
        "error" | "err" | "status_code_error" | "true" | "fail" | "failed" | "2" => {
            SpanStatus::Error
        }
        "ok" | "status_code_ok" | "1" => SpanStatus::Ok,
        _ => SpanStatus::Unset,
    }
}

/// A streaming span CSV reader.
pub struct CsvReader {
    rows: ::csv::Reader<Box<dyn std::io::BufRead + Send>>,
    record: ::csv::StringRecord,
    cols: Option<Columns>,
    mapping: CsvMapping,
    root_parents: Vec<String>,
    file: Arc<Path>,
    bytes: Arc<AtomicU64>,
    stats: ImportStats,
    done: bool,
    last_service: (String, String),
}

impl CsvReader {
    /// Reads CSV from any byte source (plain or gzip); `file` names it in reports.
    pub fn from_reader(
        file: &Path,
        reader: impl std::io::Read + Send + 'static,
        mapping: CsvMapping,
    ) -> Result<CsvReader, ImportError> {
        let input = Input::from_reader(file, reader, 0).map_err(|source| ImportError::Open {
            path: file.to_path_buf(),
            source,
        })?;
        Self::from_input(input, mapping)
    }

    pub(crate) fn from_input(input: Input, mapping: CsvMapping) -> Result<CsvReader, ImportError> {
        let rows = ::csv::ReaderBuilder::new()
            .delimiter(mapping.delimiter)
            .flexible(true)
            .has_headers(false)
            .from_reader(input.reader);
        let mut r = CsvReader {
            rows,
            record: ::csv::StringRecord::new(),
            cols: None,
            root_parents: mapping
                .root_parents
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            mapping,
            file: input.path,
            bytes: input.bytes,
            stats: ImportStats {
                total_bytes: input.total,
                files: 1,
                ..ImportStats::default()
            },
            done: false,
            last_service: (String::new(), String::new()),
        };
        r.read_header()?;
        Ok(r)
    }

    /// Reads the header; a stream that breaks inside it is a rejection, not an error.
    fn read_header(&mut self) -> Result<(), ImportError> {
        match self.rows.read_record(&mut self.record) {
            Ok(true) => {
                let header: Vec<String> =
                    self.record.iter().map(|h| h.trim().to_string()).collect();
                let (cols, ignored) = Columns::resolve(&self.mapping, &header, &self.file)?;
                self.cols = Some(cols);
                self.stats.ignored_columns = ignored;
            }
            // An empty file: no spans.
            Ok(false) => self.done = true,
            Err(e) => {
                self.done = true;
                self.stream_error(&e, 1);
            }
        }
        Ok(())
    }

    fn stream_error(&mut self, e: &::csv::Error, line: u64) {
        let reason = match e.kind() {
            ::csv::ErrorKind::Io(io) => io_reason(io),
            _ => RejectReason::Malformed,
        };
        self.stats
            .reject(&self.file, Location::Line(line), reason, || {
                format!("csv read failed: {e}")
            });
    }

    /// Converts the current record.
    fn convert(&mut self, cols: &Columns) -> Result<Span, (RejectReason, String)> {
        let rec = &self.record;
        if rec.len() != cols.width {
            return Err((
                RejectReason::Malformed,
                format!(
                    "row has {} fields, the header has {}",
                    rec.len(),
                    cols.width
                ),
            ));
        }
        let field = |i: usize| rec.get(i).unwrap_or("");
        let tid = field(cols.trace_id);
        let trace_id = parse_hex_id(tid, 32)
            .ok_or_else(|| (RejectReason::BadId, format!("bad trace id {tid:?}")))?;
        let sid = field(cols.span_id);
        let span_id = parse_hex_id(sid, 16)
            .ok_or_else(|| (RejectReason::BadId, format!("bad span id {sid:?}")))?
            as u64;
        let parent_id = match cols.parent_id.map(field) {
            None => None,
            Some(p) => {
                let p = p.trim();
                if p.is_empty() || self.root_parents.iter().any(|r| p.eq_ignore_ascii_case(r)) {
                    None
                } else {
                    match parse_hex_id(p, 16) {
                        Some(0) => None,
                        Some(v) => Some(v as u64),
                        None => {
                            return Err((
                                RejectReason::BadParent,
                                format!("span {sid}: bad parent id {p:?}"),
                            ));
                        }
                    }
                }
            }
        };
        let raw_service = field(cols.service).trim();
        let service = match self.mapping.service_from {
            ServiceFrom::Verbatim => raw_service,
            ServiceFrom::PodName => service_from_pod(raw_service),
        };
        if service.is_empty() {
            return Err((
                RejectReason::NoService,
                format!("span {sid}: empty service"),
            ));
        }
        let (start_ns, start_unit) = parse_time(field(cols.start), self.mapping.time_unit)
            .map_err(|e| (RejectReason::BadTime, format!("span {sid}: start time {e}")))?;
        let end_ns = if let Some(c) = cols.end {
            parse_time(field(c), self.mapping.time_unit)
                .map_err(|e| (RejectReason::BadTime, format!("span {sid}: end time {e}")))?
                .0
        } else if let Some(c) = cols.duration {
            let unit = if self.mapping.duration_unit == TimeUnit::Auto {
                start_unit
            } else {
                self.mapping.duration_unit
            };
            let text = field(c);
            if text.trim().starts_with('-')
                && text
                    .trim()
                    .trim_start_matches('-')
                    .parse::<f64>()
                    .is_ok_and(|v| v > 0.0)
            {
                return Err((
                    RejectReason::EndBeforeStart,
                    format!("span {sid}: negative duration {text}"),
                ));
            }
            let (d, _) = parse_time(text, unit)
                .map_err(|e| (RejectReason::BadTime, format!("span {sid}: duration {e}")))?;
            start_ns.checked_add(d).ok_or_else(|| {
                (
                    RejectReason::BadTime,
                    format!("span {sid}: start + duration overflows"),
                )
            })?
        } else {
            0
        };
        let kind = cols.kind.map(|c| parse_kind(field(c))).unwrap_or_default();
        let status = cols
            .status
            .map(|c| parse_status(field(c)))
            .unwrap_or_default();
        let operation = cols
            .operation
            .map(|c| field(c).to_string())
            .unwrap_or_default();
        // Rows of one service come in runs: reuse the last mapped name.
        if self.last_service.0 != raw_service {
            self.last_service = (raw_service.to_string(), service.to_string());
        }
        Ok(Span {
            trace_id,
            span_id,
            parent_id,
            service: self.last_service.1.clone(),
            operation,
            kind,
            start_ns,
            end_ns,
            status,
        })
    }
}

impl Iterator for CsvReader {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        while !self.done {
            let line = self.rows.position().line() + 1;
            match self.rows.read_record(&mut self.record) {
                Ok(true) => {
                    let Some(cols) = self.cols.take() else {
                        self.done = true;
                        break;
                    };
                    let at = Location::Line(self.record.position().map_or(line, |p| p.line()));
                    let result = self.convert(&cols);
                    self.cols = Some(cols);
                    match result {
                        Ok(span) => {
                            if self.stats.admit(&span, &self.file, at) {
                                self.stats.bytes_read = self.bytes.load(Ordering::Relaxed);
                                return Some(span);
                            }
                        }
                        Err((reason, detail)) => {
                            self.stats.reject(&self.file, at, reason, || detail)
                        }
                    }
                }
                Ok(false) => self.done = true,
                Err(e) => {
                    let fatal = matches!(e.kind(), ::csv::ErrorKind::Io(_));
                    self.stream_error(&e, line);
                    if fatal {
                        self.done = true;
                    }
                }
            }
        }
        self.stats.bytes_read = self.bytes.load(Ordering::Relaxed);
        None
    }
}

impl SpanReader for CsvReader {
    fn stats(&self) -> &ImportStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names() {
        assert_eq!(service_from_pod("frontend-579b9bff58-t2dbm"), "frontend");
        assert_eq!(
            service_from_pod("ts-gateway-service-6f6cfc45b-h5m2n"),
            "ts-gateway-service"
        );
        assert_eq!(
            service_from_pod("ts-basic-service-5dc8d4f9fd-46997"),
            "ts-basic-service"
        );
        assert_eq!(service_from_pod("ts-user-service"), "ts-user-service");
        assert_eq!(service_from_pod("redis-cart-0"), "redis-cart-0");
        assert_eq!(service_from_pod("frontend"), "frontend");
        assert_eq!(service_from_pod("-579b9bff58-t2dbm"), "-579b9bff58-t2dbm");
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("1661140374351773094", TimeUnit::Ns),
            Ok((1661140374351773094, TimeUnit::Ns))
        );
        assert_eq!(
            parse_time("1661140374351773", TimeUnit::Auto),
            Ok((1661140374351773000, TimeUnit::Us))
        );
        assert_eq!(
            parse_time("1661140374.5", TimeUnit::Auto),
            Ok((1661140374500000000, TimeUnit::S))
        );
        assert_eq!(
            parse_time("2.5", TimeUnit::Ms),
            Ok((2_500_000, TimeUnit::Ms))
        );
        assert!(parse_time("NaN", TimeUnit::Ns).is_err());
        assert!(parse_time("inf", TimeUnit::Ns).is_err());
        assert!(parse_time("-5", TimeUnit::Ns).is_err());
        assert!(parse_time("", TimeUnit::Ns).is_err());
        assert!(parse_time("99999999999999999999", TimeUnit::S).is_err());
        assert!(parse_time("18446744073709551615", TimeUnit::Us).is_err());
    }

    #[test]
    fn kinds_and_status() {
        assert_eq!(parse_kind("SPAN_KIND_CLIENT"), SpanKind::Client);
        assert_eq!(parse_kind("server"), SpanKind::Server);
        assert_eq!(parse_kind("5"), SpanKind::Consumer);
        assert_eq!(parse_status("STATUS_CODE_ERROR"), SpanStatus::Error);
        assert_eq!(parse_status("ok"), SpanStatus::Ok);
        assert_eq!(parse_status(""), SpanStatus::Unset);
    }

    #[test]
    fn specs() {
        let m = CsvMapping::parse_spec(
            "trace=tid,span=sid,parent=pid,service=svc,start=ts,duration=dur,unit=us",
        )
        .expect("valid spec");
        assert_eq!(m.duration.as_deref(), Some("dur"));
        assert_eq!(m.end, None);
        assert_eq!(m.time_unit, TimeUnit::Us);
        assert_eq!(
            CsvMapping::parse_spec("preset=nezha").expect("valid"),
            CsvMapping::nezha()
        );
        assert!(CsvMapping::parse_spec("bogus=1").is_err());
        assert!(CsvMapping::parse_spec("unit=parsecs").is_err());
        assert!(CsvMapping::parse_spec("end=-").is_err());
    }
}
