//! Importers: OTLP protobuf, Jaeger JSON, Zipkin v2 JSON and span CSV (with the
//! Nezha preset), each streaming and reading `.gz` transparently.
//!
//! Every importer is a [`SpanReader`]: an iterator of valid [`Span`]s (each one
//! passes [`Span::validate`]) that keeps [`ImportStats`] on the side: spans read,
//! records rejected per [`RejectReason`], the first [`MAX_KEPT_REJECTIONS`]
//! rejections with file, line or byte offset and detail, and bytes read for a
//! progress bar. A bad record never stops the import; a broken stream (truncated
//! gzip, a JSON syntax error) ends it with one rejection that says where.
//!
//! Memory is constant in the input size: CSV and OTLP are read record by record,
//! JSON arrays element by element (one Jaeger trace is buffered at a time, since a
//! trace's `processes` may come after its `spans`).
//!
//! ```no_run
//! use seer_traces::import::{self, Format};
//! let format = Format::from_name("nezha-csv").expect("known format");
//! let mut reader = import::open("03_53_trace.csv.gz".as_ref(), &format).expect("readable");
//! let n = reader.by_ref().count();
//! println!("{n} spans, {} rejected", reader.stats().rejected_total());
//! ```

mod csv;
mod input;
mod jaeger;
mod json;
mod kind;
mod otlp;
mod zipkin;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::span::{RejectReason, Span};

pub use self::csv::{CsvMapping, CsvReader, ServiceFrom, TimeUnit, service_from_pod};
pub use self::jaeger::read_jaeger;
pub use self::kind::{DEFAULT_KIND_WINDOW, KindResolver};
pub use self::otlp::{
    MAX_OTLP_MESSAGE_BYTES, OtlpDecodeError, OtlpFileReader, OtlpFileWriter, decode_otlp_request,
    spans_from_otlp, spans_to_otlp,
};
pub use self::zipkin::read_zipkin;

/// How many rejections [`ImportStats::rejections`] keeps with their details.
pub const MAX_KEPT_REJECTIONS: usize = 20;

/// Errors that stop an import before it starts (bad records never do).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input file could not be opened or read at all.
    #[error("failed to open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The format name is not one of [`Format::NAMES`].
    #[error("unknown trace format {0:?} (expected one of: otlp, jaeger, zipkin, csv, nezha-csv)")]
    UnknownFormat(String),
    /// A CSV mapping specification could not be parsed.
    #[error("invalid csv mapping {spec:?}: {detail}")]
    BadMapping {
        /// The specification as given.
        spec: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The CSV header lacks a column the mapping needs.
    #[error("{path}: csv header has no column {column:?} (header: {header})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column the mapping asked for.
        column: String,
        /// The header that was found.
        header: String,
    },
}

/// A trace file format.
// One value per import: the size of the CSV mapping does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// OpenTelemetry Collector file exporter, proto format: each
    /// `ExportTraceServiceRequest` prefixed by its length (4 bytes, big-endian).
    Otlp,
    /// Jaeger query API / UI JSON export (`{"data":[{"spans":…,"processes":…}]}`).
    Jaeger,
    /// Zipkin v2 JSON (a top-level array of spans).
    Zipkin,
    /// Span CSV with a column mapping.
    Csv(CsvMapping),
}

impl Format {
    /// The names [`Format::from_name`] accepts.
    pub const NAMES: [&'static str; 5] = ["otlp", "jaeger", "zipkin", "csv", "nezha-csv"];

    /// Parses a format name: `otlp`, `jaeger`, `zipkin`, `csv` (generic column
    /// names, see [`CsvMapping::generic`]), `nezha-csv` (see [`CsvMapping::nezha`]),
    /// or `csv:<spec>` with a mapping spec (see [`CsvMapping::parse_spec`]).
    pub fn from_name(name: &str) -> Result<Format, ImportError> {
        let lower = name.trim().to_ascii_lowercase();
        match lower.as_str() {
            "otlp" | "otlp-proto" | "otlp-file" => Ok(Format::Otlp),
            "jaeger" | "jaeger-json" => Ok(Format::Jaeger),
            "zipkin" | "zipkin-json" | "zipkin-v2" => Ok(Format::Zipkin),
            "csv" => Ok(Format::Csv(CsvMapping::generic())),
            "nezha-csv" | "nezha" => Ok(Format::Csv(CsvMapping::nezha())),
            _ => match name.trim().strip_prefix("csv:") {
                Some(spec) => Ok(Format::Csv(CsvMapping::parse_spec(spec)?)),
                None => Err(ImportError::UnknownFormat(name.to_string())),
            },
        }
    }

    /// The short name of the format (`csv` for every mapping).
    pub fn name(&self) -> &'static str {
        match self {
            Format::Otlp => "otlp",
            Format::Jaeger => "jaeger",
            Format::Zipkin => "zipkin",
            Format::Csv(m) if *m == CsvMapping::nezha() => "nezha-csv",
            Format::Csv(_) => "csv",
        }
    }

    /// Whether records of this format carry a span kind. CSV mappings without a
    /// kind column do not; [`open`] wraps those in a [`KindResolver`].
    pub fn has_kinds(&self) -> bool {
        match self {
            Format::Csv(m) => m.kind.is_some(),
            _ => true,
        }
    }
}

/// A streaming source of valid spans with import statistics.
pub trait SpanReader: Iterator<Item = Span> + Send {
    /// Statistics so far (complete once the iterator returned `None`).
    fn stats(&self) -> &ImportStats;
}

impl SpanReader for Box<dyn SpanReader> {
    fn stats(&self) -> &ImportStats {
        (**self).stats()
    }
}

/// Where in its file a rejected record was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// 1-based line (CSV; JSON when known).
    Line(u64),
    /// Byte offset in the decompressed stream (OTLP messages; JSON).
    Byte(u64),
    /// Both, for JSON: 1-based line and byte offset of the enclosing element.
    LineByte(u64, u64),
    /// 0-based index of the span in a decoded request (live OTLP).
    Record(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(l) => write!(f, "line {l}"),
            Location::Byte(b) => write!(f, "byte {b}"),
            Location::LineByte(l, b) => write!(f, "line {l} (byte {b})"),
            Location::Record(i) => write!(f, "span #{i}"),
        }
    }
}

/// One rejected record, kept for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The file it came from.
    pub file: Arc<Path>,
    /// Where in the file.
    pub location: Location,
    /// Why it was rejected.
    pub reason: RejectReason,
    /// What was wrong, with the offending value.
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}: {}",
            self.file.display(),
            self.location,
            self.reason,
            self.detail
        )
    }
}

/// Counts kept by every importer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Valid spans produced.
    pub spans: u64,
    /// Rejected records per reason, indexed like [`RejectReason::ALL`].
    pub rejected: [u64; RejectReason::ALL.len()],
    /// The first [`MAX_KEPT_REJECTIONS`] rejections with details.
    pub rejections: Vec<Rejection>,
    /// Bytes consumed from the files so far (compressed bytes for `.gz`), for a
    /// progress bar against [`ImportStats::total_bytes`].
    pub bytes_read: u64,
    /// Total size of the files opened so far.
    pub total_bytes: u64,
    /// Files fully or partly read.
    pub files: u64,
    /// Input columns no mapping field uses (CSV), reported once per name.
    pub ignored_columns: Vec<String>,
    /// Files that could not be opened at all by [`open_all`], with the error.
    pub failed_files: Vec<(PathBuf, String)>,
    /// Span kinds inferred by a [`KindResolver`]: server, client, internal.
    pub kinds_inferred: [u64; 3],
}

impl ImportStats {
    /// Records one rejected record.
    pub fn reject(
        &mut self,
        file: &Arc<Path>,
        location: Location,
        reason: RejectReason,
        detail: impl FnOnce() -> String,
    ) {
        self.rejected[reason_index(reason)] += 1;
        if self.rejections.len() < MAX_KEPT_REJECTIONS {
            self.rejections.push(Rejection {
                file: Arc::clone(file),
                location,
                reason,
                detail: detail(),
            });
        }
    }

    /// Rejections for one reason.
    pub fn rejected_for(&self, reason: RejectReason) -> u64 {
        self.rejected[reason_index(reason)]
    }

    /// All rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// `(reason, count)` for every reason with a non-zero count, in report order.
    pub fn rejected_by_reason(&self) -> Vec<(RejectReason, u64)> {
        RejectReason::ALL
            .iter()
            .map(|&r| (r, self.rejected_for(r)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// Fraction of records rejected, `0.0` when nothing was read.
    pub fn rejection_rate(&self) -> f64 {
        let total = self.spans + self.rejected_total();
        if total == 0 {
            0.0
        } else {
            self.rejected_total() as f64 / total as f64
        }
    }

    /// Adds another file's statistics to these.
    pub fn merge(&mut self, other: &ImportStats) {
        self.spans += other.spans;
        for (a, b) in self.rejected.iter_mut().zip(other.rejected) {
            *a += b;
        }
        for r in &other.rejections {
            if self.rejections.len() < MAX_KEPT_REJECTIONS {
                self.rejections.push(r.clone());
            }
        }
        self.bytes_read += other.bytes_read;
        self.total_bytes += other.total_bytes;
        self.files += other.files;
        for c in &other.ignored_columns {
            if !self.ignored_columns.contains(c) {
                self.ignored_columns.push(c.clone());
            }
        }
        self.failed_files.extend(other.failed_files.iter().cloned());
        for (a, b) in self.kinds_inferred.iter_mut().zip(other.kinds_inferred) {
            *a += b;
        }
    }

    /// Counts a span that passed validation, or rejects it; returns whether it passed.
    pub(crate) fn admit(&mut self, span: &Span, file: &Arc<Path>, location: Location) -> bool {
        match span.validate() {
            Ok(()) => {
                self.spans += 1;
                true
            }
            Err(reason) => {
                self.reject(file, location, reason, || describe_invalid(span, reason));
                false
            }
        }
    }
}

fn reason_index(reason: RejectReason) -> usize {
    RejectReason::ALL
        .iter()
        .position(|&r| r == reason)
        .unwrap_or(0)
}

/// The detail line for a span that failed [`Span::validate`].
pub(crate) fn describe_invalid(span: &Span, reason: RejectReason) -> String {
    match reason {
        RejectReason::BadId => {
            format!(
                "zero id (trace {:032x}, span {:016x})",
                span.trace_id, span.span_id
            )
        }
        RejectReason::BadParent => format!("span {:016x} has parent id 0", span.span_id),
        RejectReason::NoService => format!("span {:016x} has no service name", span.span_id),
        RejectReason::BadTime => format!(
            "span {:016x}: zero timestamp (start {}, end {})",
            span.span_id, span.start_ns, span.end_ns
        ),
        RejectReason::EndBeforeStart => format!(
            "span {:016x}: end {} ns before start {} ns",
            span.span_id, span.end_ns, span.start_ns
        ),
        RejectReason::TooLong => format!(
            "span {:016x}: duration {} s longer than one day",
            span.span_id,
            span.duration_ns() / 1_000_000_000
        ),
        RejectReason::Malformed | RejectReason::Truncated => {
            format!("span {:016x}: {reason}", span.span_id)
        }
    }
}

/// Opens one trace file (plain or gzip, detected by its magic bytes).
///
/// CSV mappings without a kind column are wrapped in a [`KindResolver`] with
/// [`DEFAULT_KIND_WINDOW`]; use [`open_plain`] to get the raw reader.
pub fn open(path: &Path, format: &Format) -> Result<Box<dyn SpanReader>, ImportError> {
    let reader = open_plain(path, format)?;
    if format.has_kinds() {
        Ok(reader)
    } else {
        Ok(Box::new(KindResolver::new(reader, DEFAULT_KIND_WINDOW)))
    }
}

/// Opens one trace file without kind inference.
pub fn open_plain(path: &Path, format: &Format) -> Result<Box<dyn SpanReader>, ImportError> {
    let input = input::Input::open(path)?;
    Ok(match format {
        Format::Otlp => Box::new(OtlpFileReader::from_input(input)),
        Format::Jaeger => Box::new(jaeger::reader(input)),
        Format::Zipkin => Box::new(zipkin::reader(input)),
        Format::Csv(mapping) => Box::new(CsvReader::from_input(input, mapping.clone())?),
    })
}

/// Reads several files one after another as one stream (each opened when the
/// previous one ends, so only one is open at a time). A file that cannot be opened
/// is listed in [`ImportStats::failed_files`] and skipped. Kinds are inferred as
/// in [`open`], across file boundaries (a trace may straddle two files).
pub fn open_all(paths: &[PathBuf], format: &Format) -> Box<dyn SpanReader> {
    let multi = MultiReader {
        paths: paths.iter().cloned().collect(),
        format: format.clone(),
        current: None,
        done: ImportStats::default(),
        stats: ImportStats::default(),
    };
    if format.has_kinds() {
        Box::new(multi)
    } else {
        Box::new(KindResolver::new(multi, DEFAULT_KIND_WINDOW))
    }
}

struct MultiReader {
    paths: std::collections::VecDeque<PathBuf>,
    format: Format,
    current: Option<Box<dyn SpanReader>>,
    /// Statistics of finished files.
    done: ImportStats,
    /// `done` plus the current file's, refreshed on every call.
    stats: ImportStats,
}

impl MultiReader {
    fn refresh(&mut self) {
        self.stats = self.done.clone();
        if let Some(cur) = &self.current {
            self.stats.merge(cur.stats());
        }
    }
}

impl Iterator for MultiReader {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        loop {
            if let Some(cur) = &mut self.current {
                if let Some(span) = cur.next() {
                    // Cheap fields only; the full refresh runs at file boundaries
                    // and every 4096 spans.
                    self.stats.spans += 1;
                    if self.stats.spans.is_multiple_of(4096) {
                        self.refresh();
                    }
                    return Some(span);
                }
                self.done.merge(cur.stats());
                self.current = None;
            }
            let Some(path) = self.paths.pop_front() else {
                self.refresh();
                return None;
            };
            match open_plain(&path, &self.format) {
                Ok(r) => self.current = Some(r),
                Err(e) => self.done.failed_files.push((path, e.to_string())),
            }
            self.refresh();
        }
    }
}

impl SpanReader for MultiReader {
    fn stats(&self) -> &ImportStats {
        &self.stats
    }
}
