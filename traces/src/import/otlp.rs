//! OTLP traces: the OpenTelemetry Collector file exporter's proto format (each
//! `ExportTraceServiceRequest` prefixed by its length, 4 bytes big-endian), a
//! writer for it, the conversion of decoded requests (for the live receiver), and
//! a fast decoder that reads spans straight from the wire bytes.
//!
//! The fast decoder walks the protobuf wire format and keeps only what a [`Span`]
//! needs (ids, name, kind, times, status, the resource's `service.name`), skipping
//! attributes, events and links without decoding them. It accepts every message
//! prost accepts and yields the same spans as [`spans_from_otlp`] on prost's
//! decoding (a fuzz target checks this); it is more lenient only inside fields it
//! skips.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message;

use super::input::{Input, io_reason};
use super::{ImportStats, Location, SpanReader};
use crate::span::{RejectReason, Span, SpanKind, SpanStatus};

/// Largest message the file reader accepts; a larger length prefix is corrupt.
pub const MAX_OTLP_MESSAGE_BYTES: usize = 64 << 20;

/// Why the fast decoder rejected a message (the whole message is rejected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpDecodeError {
    /// The wire format is broken at this byte offset of the message.
    #[error("invalid protobuf at byte {offset} of the message: {what}")]
    Wire {
        /// Offset in the message.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
}

// ---- conversion of decoded requests ------------------------------------------

/// Converts a decoded `ExportTraceServiceRequest` into spans: the service is the
/// resource attribute `service.name` (the first one with a string value), ids
/// come from their bytes (16 for traces, 8 for spans; an empty or all-zero parent
/// means a root). Invalid spans are counted in `stats`, located as the span's
/// index in the request, with `source` as the file name.
pub fn spans_from_otlp(
    req: &ExportTraceServiceRequest,
    source: &Arc<Path>,
    out: &mut impl FnMut(Span),
    stats: &mut ImportStats,
) {
    let mut index = 0u64;
    for rs in &req.resource_spans {
        let service = rs.resource.as_ref().and_then(service_name).unwrap_or("");
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let at = Location::Record(index);
                index += 1;
                match convert(s, service) {
                    Ok(span) => {
                        if stats.admit(&span, source, at) {
                            out(span);
                        }
                    }
                    Err((reason, detail)) => stats.reject(source, at, reason, || detail),
                }
            }
        }
    }
}

fn service_name(r: &Resource) -> Option<&str> {
    r.attributes.iter().find_map(|kv| match &kv.value {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(s)),
        }) if kv.key == "service.name" => Some(s.as_str()),
        _ => None,
    })
}

type Reject = (RejectReason, String);

fn trace_id(b: &[u8]) -> Result<u128, Reject> {
    <[u8; 16]>::try_from(b)
        .map(u128::from_be_bytes)
        .map_err(|_| {
            (
                RejectReason::BadId,
                format!("trace id of {} bytes, expected 16", b.len()),
            )
        })
}

fn span_id(b: &[u8]) -> Result<u64, Reject> {
    <[u8; 8]>::try_from(b).map(u64::from_be_bytes).map_err(|_| {
        (
            RejectReason::BadId,
            format!("span id of {} bytes, expected 8", b.len()),
        )
    })
}

fn parent_id(b: &[u8]) -> Result<Option<u64>, Reject> {
    if b.is_empty() {
        return Ok(None);
    }
    match <[u8; 8]>::try_from(b) {
        Ok(a) => Ok(Some(u64::from_be_bytes(a)).filter(|&p| p != 0)),
        Err(_) => Err((
            RejectReason::BadParent,
            format!("parent span id of {} bytes, expected 8", b.len()),
        )),
    }
}

fn status_of(code: i32) -> SpanStatus {
    match code {
        1 => SpanStatus::Ok,
        2 => SpanStatus::Error,
        _ => SpanStatus::Unset,
    }
}

fn convert(s: &pb::Span, service: &str) -> Result<Span, Reject> {
    Ok(Span {
        trace_id: trace_id(&s.trace_id)?,
        span_id: span_id(&s.span_id)?,
        parent_id: parent_id(&s.parent_span_id)?,
        service: service.to_string(),
        operation: s.name.clone(),
        kind: SpanKind::from_otlp(s.kind),
        start_ns: s.start_time_unix_nano,
        end_ns: s.end_time_unix_nano,
        status: s
            .status
            .as_ref()
            .map_or(SpanStatus::Unset, |st| status_of(st.code)),
    })
}

/// Builds a request from spans: one `ResourceSpans` per service (in order of
/// first appearance) with its `service.name`, one scope `seer`.
pub fn spans_to_otlp(spans: &[Span]) -> ExportTraceServiceRequest {
    let mut groups: Vec<(&str, Vec<pb::Span>)> = Vec::new();
    for s in spans {
        let i = match groups.iter().position(|(svc, _)| *svc == s.service) {
            Some(i) => i,
            None => {
                groups.push((&s.service, Vec::new()));
                groups.len() - 1
            }
        };
        groups[i].1.push(pb::Span {
            trace_id: s.trace_id.to_be_bytes().to_vec(),
            span_id: s.span_id.to_be_bytes().to_vec(),
            parent_span_id: s
                .parent_id
                .map(|p| p.to_be_bytes().to_vec())
                .unwrap_or_default(),
            name: s.operation.clone(),
            kind: s.kind.to_otlp(),
            start_time_unix_nano: s.start_ns,
            end_time_unix_nano: s.end_ns,
            status: match s.status {
                SpanStatus::Unset => None,
                SpanStatus::Ok => Some(pb::Status {
                    message: String::new(),
                    code: 1,
                }),
                SpanStatus::Error => Some(pb::Status {
                    message: String::new(),
                    code: 2,
                }),
            },
            ..Default::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(service, spans)| pb::ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(service.into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![pb::ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "seer".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

// ---- fast wire decoder -----------------------------------------------------------

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Nesting limit for skipped groups (prost's recursion limit).
const MAX_DEPTH: u32 = 100;

struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the whole message, for error reports.
    base: usize,
}

type WireResult<T> = Result<T, OtlpDecodeError>;

impl<'a> Wire<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Wire { buf, pos: 0, base }
    }

    fn err<T>(&self, what: &'static str) -> WireResult<T> {
        Err(OtlpDecodeError::Wire {
            offset: self.base + self.pos,
            what,
        })
    }

    fn more(&self) -> bool {
        self.pos < self.buf.len()
    }

    fn varint(&mut self) -> WireResult<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return self.err("varint runs past the end");
            };
            self.pos += 1;
            // The tenth byte may only carry the top bit of a u64.
            if i == 9 && b > 1 {
                return self.err("varint too long");
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        self.err("varint too long")
    }

    fn key(&mut self) -> WireResult<(u32, u8)> {
        let k = self.varint()?;
        if k > u64::from(u32::MAX) {
            return self.err("field key out of range");
        }
        let wt = (k & 7) as u8;
        let field = (k >> 3) as u32;
        if field == 0 {
            return self.err("field number 0");
        }
        Ok((field, wt))
    }

    fn fixed<const N: usize>(&mut self) -> WireResult<[u8; N]> {
        match self.buf.get(self.pos..self.pos + N) {
            Some(b) => {
                self.pos += N;
                // The slice has exactly N bytes.
                Ok(b.try_into().unwrap_or([0; N]))
            }
            None => self.err("fixed-width value runs past the end"),
        }
    }

    /// A length-delimited field's bytes and their offset in the message.
    fn bytes(&mut self) -> WireResult<(&'a [u8], usize)> {
        let len = self.varint()?;
        let start = self.pos;
        match usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= self.buf.len())
        {
            Some(end) => {
                self.pos = end;
                Ok((&self.buf[start..end], self.base + start))
            }
            None => self.err("length-delimited field runs past the end"),
        }
    }

    fn expect(&self, wt: u8, want: u8) -> WireResult<()> {
        if wt == want {
            Ok(())
        } else {
            self.err("wrong wire type for a known field")
        }
    }

    /// Skips a field of wire type `wt` (groups included, as prost does).
    fn skip(&mut self, field: u32, wt: u8, depth: u32) -> WireResult<()> {
        match wt {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed::<8>().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.fixed::<4>().map(drop),
            START_GROUP => {
                if depth >= MAX_DEPTH {
                    return self.err("groups nested too deep");
                }
                loop {
                    if !self.more() {
                        return self.err("group runs past the end");
                    }
                    let (f, w) = self.key()?;
                    if w == END_GROUP {
                        return if f == field {
                            Ok(())
                        } else {
                            self.err("mismatched end group")
                        };
                    }
                    self.skip(f, w, depth + 1)?;
                }
            }
            END_GROUP => self.err("unexpected end group"),
            _ => self.err("invalid wire type"),
        }
    }
}

fn utf8(b: &[u8], offset: usize) -> WireResult<&str> {
    std::str::from_utf8(b).map_err(|_| OtlpDecodeError::Wire {
        offset,
        what: "string is not utf-8",
    })
}

/// Decodes one `ExportTraceServiceRequest` from its wire bytes straight into
/// spans, appended to `out`. All or nothing: on a wire error `out` and `stats`
/// are left as they were and the message counts as one `Malformed` rejection
/// in `stats`. Invalid spans are counted in `stats`, located at their byte offset
/// in `buf`. Returns the number of spans appended.
pub fn decode_otlp_request(
    buf: &[u8],
    source: &Arc<Path>,
    out: &mut Vec<Span>,
    stats: &mut ImportStats,
) -> Result<usize, OtlpDecodeError> {
    decode_at(buf, 0, source, out, stats)
}

/// [`decode_otlp_request`] for a message at byte `base` of a file.
fn decode_at(
    buf: &[u8],
    base: u64,
    source: &Arc<Path>,
    out: &mut Vec<Span>,
    stats: &mut ImportStats,
) -> Result<usize, OtlpDecodeError> {
    let before = out.len();
    let mut local = ImportStats::default();
    match decode_request(buf, base, source, out, &mut local) {
        Ok(()) => {
            stats.merge(&local);
            Ok(out.len() - before)
        }
        Err(e) => {
            out.truncate(before);
            stats.reject(
                source,
                Location::Byte(base),
                RejectReason::Malformed,
                || e.to_string(),
            );
            Err(e)
        }
    }
}

fn decode_request(
    buf: &[u8],
    base: u64,
    source: &Arc<Path>,
    out: &mut Vec<Span>,
    stats: &mut ImportStats,
) -> WireResult<()> {
    let mut w = Wire::new(buf, 0);
    while w.more() {
        let (field, wt) = w.key()?;
        if field == 1 {
            w.expect(wt, LEN)?;
            let (rs, off) = w.bytes()?;
            resource_spans(rs, off, base, source, out, stats)?;
        } else {
            w.skip(field, wt, 0)?;
        }
    }
    Ok(())
}

fn resource_spans(
    buf: &[u8],
    off: usize,
    base: u64,
    source: &Arc<Path>,
    out: &mut Vec<Span>,
    stats: &mut ImportStats,
) -> WireResult<()> {
    // First pass: the resource (it may follow the spans) and the wire check.
    let mut service: Option<&str> = None;
    let mut w = Wire::new(buf, off);
    while w.more() {
        let (field, wt) = w.key()?;
        match field {
            1 => {
                w.expect(wt, LEN)?;
                let (res, roff) = w.bytes()?;
                let found = resource_service(res, roff)?;
                service = service.or(found);
            }
            2 => {
                w.expect(wt, LEN)?;
                w.bytes()?;
            }
            3 => {
                w.expect(wt, LEN)?;
                let (s, soff) = w.bytes()?;
                utf8(s, soff)?;
            }
            _ => w.skip(field, wt, 0)?,
        }
    }
    let service = service.unwrap_or("");
    let mut w = Wire::new(buf, off);
    while w.more() {
        let (field, wt) = w.key()?;
        if field == 2 {
            let (ss, soff) = w.bytes()?;
            scope_spans(ss, soff, service, base, source, out, stats)?;
        } else {
            w.skip(field, wt, 0)?;
        }
    }
    Ok(())
}

/// The first `service.name` attribute with a string value in a `Resource`.
fn resource_service(buf: &[u8], off: usize) -> WireResult<Option<&str>> {
    let mut found = None;
    let mut w = Wire::new(buf, off);
    while w.more() {
        let (field, wt) = w.key()?;
        match field {
            1 => {
                w.expect(wt, LEN)?;
                let (kv, kvoff) = w.bytes()?;
                let v = key_value_service(kv, kvoff)?;
                found = found.or(v);
            }
            2 => {
                w.expect(wt, VARINT)?;
                w.varint()?;
            }
            _ => w.skip(field, wt, 0)?,
        }
    }
    Ok(found)
}

/// The string value of a `KeyValue` whose key is `service.name`.
fn key_value_service(buf: &[u8], off: usize) -> WireResult<Option<&str>> {
    let mut key: &[u8] = b"";
    // The oneof's final variant: the last value field seen (prost merges).
    let mut value: Option<Option<&str>> = None;
    let mut w = Wire::new(buf, off);
    while w.more() {
        let (field, wt) = w.key()?;
        match field {
            1 => {
                w.expect(wt, LEN)?;
                let (k, koff) = w.bytes()?;
                key = utf8(k, koff)?.as_bytes();
            }
            2 => {
                w.expect(wt, LEN)?;
                let (v, voff) = w.bytes()?;
                let mut a = Wire::new(v, voff);
                while a.more() {
                    let (f, t) = a.key()?;
                    match f {
                        1 => {
                            a.expect(t, LEN)?;
                            let (s, so) = a.bytes()?;
                            value = Some(Some(utf8(s, so)?));
                        }
                        2..=8 => {
                            a.skip(f, t, 0)?;
                            value = Some(None);
                        }
                        _ => a.skip(f, t, 0)?,
                    }
                }
            }
            _ => w.skip(field, wt, 0)?,
        }
    }
    Ok(if key == b"service.name" {
        value.flatten()
    } else {
        None
    })
}

fn scope_spans(
    buf: &[u8],
    off: usize,
    service: &str,
    base: u64,
    source: &Arc<Path>,
    out: &mut Vec<Span>,
    stats: &mut ImportStats,
) -> WireResult<()> {
    let mut w = Wire::new(buf, off);
    while w.more() {
        let (field, wt) = w.key()?;
        match field {
            2 => {
                w.expect(wt, LEN)?;
                let (s, soff) = w.bytes()?;
                let at = Location::Byte(base + soff as u64);
                match span(s, soff, service)? {
                    Ok(span) => {
                        if stats.admit(&span, source, at) {
                            out.push(span);
                        }
                    }
                    Err((reason, detail)) => stats.reject(source, at, reason, || detail),
                }
            }
            3 => {
                w.expect(wt, LEN)?;
                let (s, soff) = w.bytes()?;
                utf8(s, soff)?;
            }
            _ => w.skip(field, wt, 0)?,
        }
    }
    Ok(())
}

fn span(buf: &[u8], off: usize, service: &str) -> WireResult<Result<Span, Reject>> {
    let (mut tid, mut sid, mut pid): (&[u8], &[u8], &[u8]) = (b"", b"", b"");
    let mut name = "";
    let mut kind = 0i32;
    let (mut start, mut end) = (0u64, 0u64);
    let mut code = 0i32;
    let mut w = Wire::new(buf, off);
    while w.more() {
        let (field, wt) = w.key()?;
        match field {
            1 | 2 | 4 => {
                w.expect(wt, LEN)?;
                let b = w.bytes()?.0;
                match field {
                    1 => tid = b,
                    2 => sid = b,
                    _ => pid = b,
                }
            }
            3 | 5 => {
                w.expect(wt, LEN)?;
                let (s, soff) = w.bytes()?;
                let s = utf8(s, soff)?;
                if field == 5 {
                    name = s;
                }
            }
            6 => {
                w.expect(wt, VARINT)?;
                kind = w.varint()? as i32;
            }
            7 | 8 => {
                w.expect(wt, FIXED64)?;
                let v = u64::from_le_bytes(w.fixed::<8>()?);
                if field == 7 {
                    start = v;
                } else {
                    end = v;
                }
            }
            10 | 12 | 14 => {
                w.expect(wt, VARINT)?;
                w.varint()?;
            }
            16 => {
                w.expect(wt, FIXED32)?;
                w.fixed::<4>()?;
            }
            9 | 11 | 13 => {
                w.expect(wt, LEN)?;
                w.bytes()?;
            }
            15 => {
                w.expect(wt, LEN)?;
                let (st, stoff) = w.bytes()?;
                let mut s = Wire::new(st, stoff);
                while s.more() {
                    let (f, t) = s.key()?;
                    match f {
                        2 => {
                            s.expect(t, LEN)?;
                            let (m, moff) = s.bytes()?;
                            utf8(m, moff)?;
                        }
                        3 => {
                            s.expect(t, VARINT)?;
                            code = s.varint()? as i32;
                        }
                        _ => s.skip(f, t, 0)?,
                    }
                }
            }
            _ => w.skip(field, wt, 0)?,
        }
    }
    let build = || -> Result<Span, Reject> {
        Ok(Span {
            trace_id: trace_id(tid)?,
            span_id: span_id(sid)?,
            parent_id: parent_id(pid)?,
            service: service.to_string(),
            operation: name.to_string(),
            kind: SpanKind::from_otlp(kind),
            start_ns: start,
            end_ns: end,
            status: status_of(code),
        })
    };
    Ok(build())
}

// ---- files -------------------------------------------------------------------

/// Reads a Collector file exporter proto file (length-prefixed
/// `ExportTraceServiceRequest`s), one message at a time, with the fast decoder.
/// A message that does not decode is one `Malformed` rejection and reading goes
/// on with the next; a file that ends inside a message is one `Truncated`.
pub struct OtlpFileReader {
    reader: Box<dyn io::BufRead + Send>,
    file: Arc<Path>,
    bytes: Arc<AtomicU64>,
    stats: ImportStats,
    buf: Vec<u8>,
    pending: Vec<Span>,
    next: usize,
    offset: u64,
    done: bool,
}

impl OtlpFileReader {
    pub(crate) fn from_input(input: Input) -> OtlpFileReader {
        OtlpFileReader {
            reader: input.reader,
            file: input.path,
            bytes: input.bytes,
            stats: ImportStats {
                total_bytes: input.total,
                files: 1,
                ..ImportStats::default()
            },
            buf: Vec::new(),
            pending: Vec::new(),
            next: 0,
            offset: 0,
            done: false,
        }
    }

    /// Reads from any byte source (plain or gzip); `file` names it in reports.
    pub fn from_reader(
        file: &Path,
        reader: impl Read + Send + 'static,
    ) -> io::Result<OtlpFileReader> {
        Ok(Self::from_input(Input::from_reader(file, reader, 0)?))
    }

    /// Reads the next message into `pending`; false at the end of the input.
    fn fill(&mut self) -> bool {
        let at = self.offset;
        let mut len = [0u8; 4];
        match read_full(&mut self.reader, &mut len) {
            Ok(0) => return false,
            Ok(4) => {}
            Ok(n) => {
                self.stats.reject(
                    &self.file,
                    Location::Byte(at),
                    RejectReason::Truncated,
                    || format!("file ends {n} bytes into a length prefix"),
                );
                return false;
            }
            Err(e) => {
                self.stats
                    .reject(&self.file, Location::Byte(at), io_reason(&e), || {
                        format!("failed to read a length prefix: {e}")
                    });
                return false;
            }
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_OTLP_MESSAGE_BYTES {
            self.stats.reject(
                &self.file,
                Location::Byte(at),
                RejectReason::Malformed,
                || format!("length prefix {len} exceeds the {MAX_OTLP_MESSAGE_BYTES}-byte limit"),
            );
            return false;
        }
        self.buf.clear();
        let got = (&mut self.reader)
            .take(len as u64)
            .read_to_end(&mut self.buf);
        match got {
            Ok(n) if n == len => {}
            Ok(n) => {
                self.stats.reject(
                    &self.file,
                    Location::Byte(at),
                    RejectReason::Truncated,
                    || format!("message of {len} bytes, file ends after {n}"),
                );
                return false;
            }
            Err(e) => {
                self.stats
                    .reject(&self.file, Location::Byte(at), io_reason(&e), || {
                        format!("failed to read a {len}-byte message: {e}")
                    });
                return false;
            }
        }
        self.offset += 4 + len as u64;
        self.pending.clear();
        self.next = 0;
        // A wire error is already counted as one rejection; go on with the next.
        let _ = decode_at(
            &self.buf,
            at + 4,
            &self.file,
            &mut self.pending,
            &mut self.stats,
        );
        true
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Iterator for OtlpFileReader {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        loop {
            if let Some(s) = self.pending.get_mut(self.next) {
                self.next += 1;
                return Some(std::mem::take(s));
            }
            if self.done || !self.fill() {
                self.done = true;
                self.stats.bytes_read = self.bytes.load(Ordering::Relaxed);
                return None;
            }
            self.stats.bytes_read = self.bytes.load(Ordering::Relaxed);
        }
    }
}

impl SpanReader for OtlpFileReader {
    fn stats(&self) -> &ImportStats {
        &self.stats
    }
}

/// Writes the Collector file exporter proto format: each request encoded and
/// prefixed by its length, 4 bytes big-endian.
pub struct OtlpFileWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> OtlpFileWriter<W> {
    /// A writer over any byte sink (wrap it in a `GzEncoder` for `.gz`).
    pub fn new(out: W) -> Self {
        OtlpFileWriter {
            out,
            buf: Vec::new(),
        }
    }

    /// Writes one request.
    pub fn write_request(&mut self, req: &ExportTraceServiceRequest) -> io::Result<()> {
        self.buf.clear();
        req.encode(&mut self.buf).map_err(io::Error::other)?;
        let len = u32::try_from(self.buf.len()).map_err(|_| {
            io::Error::other(format!("request of {} bytes is too large", self.buf.len()))
        })?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out.write_all(&self.buf)
    }

    /// Writes spans as one request (see [`spans_to_otlp`]).
    pub fn write_spans(&mut self, spans: &[Span]) -> io::Result<()> {
        self.write_request(&spans_to_otlp(spans))
    }

    /// Flushes the sink.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The sink back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl OtlpFileWriter<io::BufWriter<std::fs::File>> {
    /// Creates (truncates) a file at `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        let f = std::fs::File::create(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("failed to create {}: {e}", path.display()),
            )
        })?;
        Ok(Self::new(io::BufWriter::new(f)))
    }
}
