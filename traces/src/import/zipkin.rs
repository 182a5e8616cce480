//! Zipkin v2 JSON: a top-level array of spans (`/api/v2/spans` upload format), or
//! an array of traces, each an array of spans (`/api/v2/traces` answer).
//!
//! The array is streamed element by element. Times are microseconds; the kind is
//! `kind` (`SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER`); a span is an error when it
//! has an `error` tag (any value, as in Zipkin).

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::de::{self, SeqAccess, Visitor};
use serde_json::Value;

use super::input::Input;
use super::json::{
    ElementSink, FnSink, Pos, SpanSink, StreamArray, ThreadedReader, micros_to_ns, parse_document,
    short, str_field, uint,
};
use super::{ImportStats, Location};
use crate::span::{RejectReason, Span, SpanKind, SpanStatus, parse_hex_id};

/// Reads Zipkin v2 JSON from `reader`, calling `out` with every valid span and
/// counting rejections in `stats` (`file` names the input in rejections).
pub fn read_zipkin(
    reader: impl Read,
    file: &Path,
    out: &mut dyn FnMut(Span),
    stats: &mut ImportStats,
) {
    let file: Arc<Path> = Arc::from(file);
    let mut sink = FnSink { out, stats };
    parse(reader, &file, &mut sink);
}

fn parse<K: SpanSink>(reader: impl Read, file: &Arc<Path>, sink: &mut K) {
    parse_document(reader, file, sink, |de, pos, sink| {
        de::Deserializer::deserialize_any(
            de,
            Top {
                spans: Spans { sink, file },
                pos,
            },
        )
    });
}

/// A streaming Zipkin JSON reader: the parser runs on a helper thread.
pub(crate) fn reader(input: Input) -> ThreadedReader {
    ThreadedReader::spawn(input, |r, file, sender| parse(r, &file, sender))
}

struct Top<'a, K> {
    spans: Spans<'a, K>,
    pos: &'a Pos,
}

impl<'de, K: SpanSink> Visitor<'de> for Top<'_, K> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Zipkin v2 JSON array of spans")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, seq: A) -> Result<(), A::Error> {
        StreamArray {
            sink: &mut self.spans,
            pos: self.pos,
        }
        .visit_seq(seq)
    }
}

struct Spans<'a, K> {
    sink: &'a mut K,
    file: &'a Arc<Path>,
}

impl<K: SpanSink> ElementSink for Spans<'_, K> {
    fn element(&mut self, value: Value, at: Location) {
        match value {
            // One trace of the /api/v2/traces answer.
            Value::Array(spans) => spans.iter().for_each(|s| self.one(s, at)),
            span => self.one(&span, at),
        }
    }
    fn stopped(&self) -> bool {
        self.sink.stopped()
    }
}

impl<K: SpanSink> Spans<'_, K> {
    fn one(&mut self, raw: &Value, at: Location) {
        match convert_span(raw) {
            Ok(span) => {
                if self.sink.stats().admit(&span, self.file, at) {
                    self.sink.span(span);
                }
            }
            Err((reason, detail)) => self.sink.stats().reject(self.file, at, reason, || detail),
        }
    }
}

type Reject = (RejectReason, String);

fn convert_span(raw: &Value) -> Result<Span, Reject> {
    if !raw.is_object() {
        return Err((
            RejectReason::Malformed,
            format!("span is not an object: {}", short(raw)),
        ));
    }
    let tid_text = str_field(raw, "traceId").unwrap_or("");
    let trace_id = parse_hex_id(tid_text, 32)
        .ok_or_else(|| (RejectReason::BadId, format!("bad traceId {tid_text:?}")))?;
    let sid_text = str_field(raw, "id").unwrap_or("");
    let span_id = parse_hex_id(sid_text, 16)
        .ok_or_else(|| (RejectReason::BadId, format!("bad span id {sid_text:?}")))?
        as u64;
    let parent_id = match str_field(raw, "parentId") {
        None | Some("") => None,
        Some(t) => match parse_hex_id(t, 16) {
            Some(0) => None,
            Some(p) => Some(p as u64),
            None => {
                return Err((
                    RejectReason::BadParent,
                    format!("span {sid_text}: bad parentId {t:?}"),
                ));
            }
        },
    };
    let service = raw
        .get("localEndpoint")
        .and_then(|e| str_field(e, "serviceName"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            (
                RejectReason::NoService,
                format!("span {sid_text}: no localEndpoint.serviceName"),
            )
        })?;
    let time = |key: &str| {
        raw.get(key)
            .ok_or_else(|| "missing".to_string())
            .and_then(uint)
            .and_then(micros_to_ns)
            .map_err(|e| (RejectReason::BadTime, format!("span {sid_text}: {key} {e}")))
    };
    let start_ns = time("timestamp")?;
    if raw
        .get("duration")
        .and_then(Value::as_i64)
        .is_some_and(|d| d < 0)
    {
        return Err((
            RejectReason::EndBeforeStart,
            format!("span {sid_text}: negative duration"),
        ));
    }
    let end_ns = start_ns.checked_add(time("duration")?).ok_or_else(|| {
        (
            RejectReason::BadTime,
            format!("span {sid_text}: timestamp + duration overflows"),
        )
    })?;
    let kind = str_field(raw, "kind")
        .map(SpanKind::from_name)
        .unwrap_or_default();
    let status = match raw.get("tags").and_then(|t| t.get("error")) {
        Some(_) => SpanStatus::Error,
        None => SpanStatus::Unset,
    };
    Ok(Span {
        trace_id,
        span_id,
        parent_id,
        service: service.to_string(),
        operation: str_field(raw, "name").unwrap_or("").to_string(),
        kind,
        start_ns,
        end_ns,
        status,
    })
}
