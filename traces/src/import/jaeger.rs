//! Jaeger JSON, as served by the query API (`/api/traces`) and exported by the UI:
//! `{"data":[{"traceID","spans":[…],"processes":{"p1":{"serviceName"}}}]}`.
//!
//! The `data` array is streamed trace by trace; one trace is held at a time because
//! its `processes` may follow its `spans`. A bare array of traces and a single
//! trace object are read too. Times are microseconds; the kind comes from the
//! `span.kind` tag, an error from the `error` tag or `otel.status_code`.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::input::Input;
use super::json::{
    ElementSink, FnSink, Pos, SpanSink, StreamArray, ThreadedReader, micros_to_ns, parse_document,
    short, str_field, truthy, uint,
};
use super::{ImportStats, Location};
use crate::span::{RejectReason, Span, SpanKind, SpanStatus, parse_hex_id};

/// Reads Jaeger JSON from `reader`, calling `out` with every valid span and
/// counting rejections in `stats` (`file` names the input in rejections).
/// Pure and single-threaded: this is what the threaded reader runs and what the
/// fuzz target calls.
pub fn read_jaeger(
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
                traces: Traces { sink, file },
                pos,
            },
        )
    });
}

/// A streaming Jaeger JSON reader: the parser runs on a helper thread.
pub(crate) fn reader(input: Input) -> ThreadedReader {
    ThreadedReader::spawn(input, |r, file, sender| parse(r, &file, sender))
}

struct Traces<'a, K> {
    sink: &'a mut K,
    file: &'a Arc<Path>,
}

impl<K: SpanSink> ElementSink for Traces<'_, K> {
    fn element(&mut self, value: Value, at: Location) {
        convert_trace(&value, at, self.file, self.sink);
    }
    fn stopped(&self) -> bool {
        self.sink.stopped()
    }
}

struct Top<'a, K> {
    traces: Traces<'a, K>,
    pos: &'a Pos,
}

impl<'de, K: SpanSink> Visitor<'de> for Top<'_, K> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Jaeger JSON object with a data array, an array of traces, or a trace")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, seq: A) -> Result<(), A::Error> {
        StreamArray {
            sink: &mut self.traces,
            pos: self.pos,
        }
        .visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let at = Location::LineByte(1, 0);
        // Fields of a bare trace object, if that is what this is.
        let mut single = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "data" => map.next_value_seed(StreamArray {
                    sink: &mut self.traces,
                    pos: self.pos,
                })?,
                "spans" | "processes" | "traceID" => {
                    single.insert(key, map.next_value::<Value>()?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if single.contains_key("spans") {
            self.traces.element(Value::Object(single), at);
        }
        Ok(())
    }
}

impl<'de, K: SpanSink> DeserializeSeed<'de> for Top<'_, K> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Converts one trace object into spans.
fn convert_trace<K: SpanSink>(trace: &Value, at: Location, file: &Arc<Path>, sink: &mut K) {
    let Some(spans) = trace.get("spans").and_then(Value::as_array) else {
        sink.stats().reject(file, at, RejectReason::Malformed, || {
            format!("trace without a spans array: {}", short(trace))
        });
        return;
    };
    let processes = trace.get("processes").and_then(Value::as_object);
    let trace_id = str_field(trace, "traceID");
    for (i, raw) in spans.iter().enumerate() {
        match convert_span(raw, trace_id, processes) {
            Ok(span) => {
                if sink.stats().admit(&span, file, at) {
                    sink.span(span);
                }
            }
            Err((reason, detail)) => sink
                .stats()
                .reject(file, at, reason, || format!("span {i} of trace: {detail}")),
        }
    }
}

type Reject = (RejectReason, String);

fn convert_span(
    raw: &Value,
    trace_id: Option<&str>,
    processes: Option<&Map<String, Value>>,
) -> Result<Span, Reject> {
    if !raw.is_object() {
        return Err((
            RejectReason::Malformed,
            format!("span is not an object: {}", short(raw)),
        ));
    }
    let tid_text = str_field(raw, "traceID").or(trace_id).unwrap_or("");
    let trace_id = parse_hex_id(tid_text, 32)
        .ok_or_else(|| (RejectReason::BadId, format!("bad traceID {tid_text:?}")))?;
    let sid_text = str_field(raw, "spanID").unwrap_or("");
    let span_id = parse_hex_id(sid_text, 16)
        .ok_or_else(|| (RejectReason::BadId, format!("bad spanID {sid_text:?}")))?
        as u64;
    let parent_id = parent(raw)?;
    let service = service(raw, processes).ok_or_else(|| {
        let pid = str_field(raw, "processID").unwrap_or("");
        (
            RejectReason::NoService,
            format!("span {sid_text}: no serviceName for process {pid:?}"),
        )
    })?;
    let start_us = raw
        .get("startTime")
        .ok_or_else(|| "missing".to_string())
        .and_then(uint)
        .map_err(|e| {
            (
                RejectReason::BadTime,
                format!("span {sid_text}: startTime {e}"),
            )
        })?;
    let start_ns = micros_to_ns(start_us)
        .map_err(|e| (RejectReason::BadTime, format!("span {sid_text}: {e}")))?;
    let end_ns = match raw.get("duration") {
        None => {
            return Err((
                RejectReason::BadTime,
                format!("span {sid_text}: no duration"),
            ));
        }
        Some(Value::Number(n)) if n.as_i64().is_some_and(|d| d < 0) => {
            return Err((
                RejectReason::EndBeforeStart,
                format!("span {sid_text}: negative duration {n} µs"),
            ));
        }
        Some(d) => uint(d)
            .and_then(micros_to_ns)
            .and_then(|d| {
                start_ns
                    .checked_add(d)
                    .ok_or_else(|| format!("duration {d} ns overflows"))
            })
            .map_err(|e| {
                (
                    RejectReason::BadTime,
                    format!("span {sid_text}: duration {e}"),
                )
            })?,
    };
    let (kind, status) = tags(raw);
    Ok(Span {
        trace_id,
        span_id,
        parent_id,
        service: service.to_string(),
        operation: str_field(raw, "operationName").unwrap_or("").to_string(),
        kind,
        start_ns,
        end_ns,
        status,
    })
}

/// The parent from `references` (`CHILD_OF` first, then `FOLLOWS_FROM`) or the
/// legacy `parentSpanID` field; an all-zero id means no parent.
fn parent(raw: &Value) -> Result<Option<u64>, Reject> {
    let refs = raw.get("references").and_then(Value::as_array);
    let pick = |ty: &str| {
        refs.into_iter()
            .flatten()
            .find(|r| str_field(r, "refType").is_some_and(|t| t.eq_ignore_ascii_case(ty)))
    };
    let text = match pick("CHILD_OF").or_else(|| pick("FOLLOWS_FROM")) {
        Some(r) => str_field(r, "spanID"),
        None => str_field(raw, "parentSpanID"),
    };
    match text {
        None | Some("") => Ok(None),
        Some(t) => match parse_hex_id(t, 16) {
            Some(0) => Ok(None),
            Some(p) => Ok(Some(p as u64)),
            None => Err((RejectReason::BadParent, format!("bad parent spanID {t:?}"))),
        },
    }
}

fn service<'a>(raw: &'a Value, processes: Option<&'a Map<String, Value>>) -> Option<&'a str> {
    let from_table = || {
        let pid = str_field(raw, "processID")?;
        str_field(processes?.get(pid)?, "serviceName")
    };
    let inline = || str_field(raw.get("process")?, "serviceName");
    from_table().or_else(inline).filter(|s| !s.is_empty())
}

fn tags(raw: &Value) -> (SpanKind, SpanStatus) {
    let mut kind = SpanKind::Unspecified;
    let mut status = SpanStatus::Unset;
    for tag in raw
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(key), Some(value)) = (str_field(tag, "key"), tag.get("value")) else {
            continue;
        };
        match key {
            "span.kind" => kind = value.as_str().map(SpanKind::from_name).unwrap_or(kind),
            "error" if truthy(value) => status = SpanStatus::Error,
            "otel.status_code" => match value.as_str().map(str::to_ascii_uppercase).as_deref() {
                Some("ERROR") => status = SpanStatus::Error,
                Some("OK") if status == SpanStatus::Unset => status = SpanStatus::Ok,
                _ => {}
            },
            _ => {}
        }
    }
    (kind, status)
}
