//! Shared machinery of the JSON importers: streaming a top-level array element
//! by element, lenient field readers, and a reader that runs a push parser on its
//! own thread behind a bounded channel.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

use super::input::{Input, Marks, Tracking};
use super::{ImportStats, Location};
use crate::span::{RejectReason, Span};

/// Spans per batch handed from the parser thread.
const BATCH: usize = 1024;
/// Batches in flight between the parser thread and the consumer.
const IN_FLIGHT: usize = 4;

/// What a JSON format does with each element of its streamed array.
pub(crate) trait ElementSink {
    /// Handles one array element, parsed as a JSON value, found at `at`.
    fn element(&mut self, value: Value, at: Location);
    /// Whether the consumer went away (stop parsing).
    fn stopped(&self) -> bool;
}

/// Position trackers shared with the reader under the deserializer.
pub(crate) struct Pos {
    pub marks: Arc<Marks>,
}

impl Pos {
    /// Marks that the next non-blank byte starts an element.
    pub fn arm(&self) {
        self.marks.armed.store(true, Ordering::Relaxed);
    }

    /// Where the last armed element started.
    pub fn start(&self) -> Location {
        Location::LineByte(
            self.marks.start_line.load(Ordering::Relaxed),
            self.marks.start_pos.load(Ordering::Relaxed),
        )
    }
}

/// A `DeserializeSeed` that streams a JSON array, handing each element to a sink
/// as soon as it is parsed: memory is bounded by the largest element.
pub(crate) struct StreamArray<'a, S> {
    pub sink: &'a mut S,
    pub pos: &'a Pos,
}

impl<'de, S: ElementSink> DeserializeSeed<'de> for StreamArray<'_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: ElementSink> Visitor<'de> for StreamArray<'_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.pos.arm();
            match seq.next_element::<Value>()? {
                Some(v) => self.sink.element(v, self.pos.start()),
                None => return Ok(()),
            }
            if self.sink.stopped() {
                return Err(de::Error::custom(STOPPED));
            }
        }
    }

    // `null` where an array was expected: nothing to read.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The message of the error used to abandon parsing when the consumer is gone.
pub(crate) const STOPPED: &str = "span consumer stopped";

/// Records a serde_json error that ended the stream.
pub(crate) fn stream_error(
    e: &serde_json::Error,
    io_error: Option<std::io::ErrorKind>,
    file: &Arc<Path>,
    stats: &mut ImportStats,
) {
    if e.to_string().contains(STOPPED) {
        return;
    }
    let reason = match (io_error, e.classify()) {
        (Some(std::io::ErrorKind::UnexpectedEof), _) | (None, serde_json::error::Category::Eof) => {
            RejectReason::Truncated
        }
        _ => RejectReason::Malformed,
    };
    let at = Location::Line(e.line() as u64);
    stats.reject(file, at, reason, || format!("json stream ended: {e}"));
}

/// Where parsed spans and statistics go.
pub(crate) trait SpanSink {
    /// Takes one valid span.
    fn span(&mut self, span: Span);
    /// The statistics to update.
    fn stats(&mut self) -> &mut ImportStats;
    /// Whether the consumer went away (stop parsing).
    fn stopped(&self) -> bool;
}

/// A sink over a callback, for the public push-style functions.
pub(crate) struct FnSink<'a> {
    pub out: &'a mut dyn FnMut(Span),
    pub stats: &'a mut ImportStats,
}

impl SpanSink for FnSink<'_> {
    fn span(&mut self, span: Span) {
        (self.out)(span);
    }
    fn stats(&mut self) -> &mut ImportStats {
        self.stats
    }
    fn stopped(&self) -> bool {
        false
    }
}

impl SpanSink for BatchSender {
    fn span(&mut self, span: Span) {
        self.push(span);
    }
    fn stats(&mut self) -> &mut ImportStats {
        &mut self.stats
    }
    fn stopped(&self) -> bool {
        self.stopped
    }
}

/// Parses one JSON document from `reader` with `drive`, recording a stream
/// error (syntax, truncation) as one rejection.
pub(crate) fn parse_document<R: Read, K: SpanSink>(
    reader: R,
    file: &Arc<Path>,
    sink: &mut K,
    drive: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::IoRead<&mut Tracking<std::io::BufReader<R>>>>,
        &Pos,
        &mut K,
    ) -> Result<(), serde_json::Error>,
) {
    let mut tracking = Tracking::new(std::io::BufReader::with_capacity(64 * 1024, reader));
    let pos = Pos {
        marks: Arc::clone(&tracking.marks),
    };
    let result = {
        let mut de = serde_json::Deserializer::from_reader(&mut tracking);
        drive(&mut de, &pos, sink).and_then(|()| de.end())
    };
    if let Err(e) = result {
        stream_error(&e, tracking.error, file, sink.stats());
    }
}

/// Sends spans in batches to the consumer thread.
pub(crate) struct BatchSender {
    tx: SyncSender<Batch>,
    spans: Vec<Span>,
    /// Statistics not yet sent.
    pub stats: ImportStats,
    stopped: bool,
}

pub(crate) struct Batch {
    spans: Vec<Span>,
    stats: ImportStats,
}

impl BatchSender {
    pub fn push(&mut self, span: Span) {
        self.spans.push(span);
        if self.spans.len() >= BATCH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        let batch = Batch {
            spans: std::mem::replace(&mut self.spans, Vec::with_capacity(BATCH)),
            stats: std::mem::take(&mut self.stats),
        };
        if self.tx.send(batch).is_err() {
            self.stopped = true;
        }
    }
}

/// A [`super::SpanReader`] fed by a parser running on its own thread.
pub(crate) struct ThreadedReader {
    rx: Receiver<Batch>,
    current: std::vec::IntoIter<Span>,
    stats: ImportStats,
    bytes: Arc<AtomicU64>,
    file: Arc<Path>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadedReader {
    /// Starts `parse(input reader, file, sender)` on a new thread.
    pub fn spawn(
        input: Input,
        parse: impl FnOnce(Box<dyn std::io::BufRead + Send>, Arc<Path>, &mut BatchSender)
        + Send
        + 'static,
    ) -> ThreadedReader {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let file = Arc::clone(&input.path);
        let stats = ImportStats {
            total_bytes: input.total,
            files: 1,
            ..ImportStats::default()
        };
        let reader = input.reader;
        let path = Arc::clone(&input.path);
        let thread = std::thread::Builder::new()
            .name("seer-json-import".into())
            .spawn(move || {
                let mut sender = BatchSender {
                    tx,
                    spans: Vec::with_capacity(BATCH),
                    stats: ImportStats::default(),
                    stopped: false,
                };
                parse(reader, path, &mut sender);
                sender.flush();
            });
        let (thread, rx) = match thread {
            Ok(t) => (Some(t), rx),
            Err(e) => {
                // No thread: report the file as unreadable through the stats.
                let mut s = stats.clone();
                s.reject(&file, Location::Byte(0), RejectReason::Malformed, || {
                    format!("failed to start the json parser thread: {e}")
                });
                let (tx2, rx2) = sync_channel(1);
                // The channel has room for this one batch; a failure only means
                // the batch is lost, which the stats above already say.
                let _ = tx2.send(Batch {
                    spans: Vec::new(),
                    stats: s,
                });
                (None, rx2)
            }
        };
        ThreadedReader {
            rx,
            current: Vec::new().into_iter(),
            stats,
            bytes: input.bytes,
            file,
            thread,
        }
    }
}

impl Iterator for ThreadedReader {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        loop {
            if let Some(s) = self.current.next() {
                return Some(s);
            }
            match self.rx.recv() {
                Ok(batch) => {
                    self.stats.merge(&batch.stats);
                    self.stats.bytes_read = self.bytes.load(Ordering::Relaxed);
                    self.current = batch.spans.into_iter();
                }
                Err(_) => {
                    self.stats.bytes_read = self.bytes.load(Ordering::Relaxed);
                    if let Some(t) = self.thread.take()
                        && t.join().is_err()
                    {
                        self.stats.reject(
                            &self.file,
                            Location::Byte(0),
                            RejectReason::Malformed,
                            || "the json parser stopped unexpectedly".to_string(),
                        );
                    }
                    return None;
                }
            }
        }
    }
}

impl super::SpanReader for ThreadedReader {
    fn stats(&self) -> &ImportStats {
        &self.stats
    }
}

impl Drop for ThreadedReader {
    fn drop(&mut self) {
        // Closing the channel makes the parser thread stop at its next batch.
        let (_, rx) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, rx));
        if let Some(t) = self.thread.take() {
            // A panic in the parser thread has nothing left to report to.
            let _ = t.join();
        }
    }
}

// ---- lenient field readers -------------------------------------------------

/// A string field, or `None` when absent or not a string.
pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A non-negative integer from a JSON number or numeric string.
pub(crate) fn uint(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if let Some(i) = n.as_i64() {
                Err(format!("negative value {i}"))
            } else {
                float_uint(n.as_f64().unwrap_or(f64::NAN), &n.to_string())
            }
        }
        Value::String(s) => {
            let t = s.trim();
            match t.parse::<u64>() {
                Ok(u) => Ok(u),
                Err(_) => float_uint(t.parse::<f64>().unwrap_or(f64::NAN), t),
            }
        }
        other => Err(format!("not a number: {}", short(other))),
    }
}

fn float_uint(f: f64, text: &str) -> Result<u64, String> {
    if !f.is_finite() {
        Err(format!("not a number: {text:?}"))
    } else if f < 0.0 {
        Err(format!("negative value {text}"))
    } else if f >= u64::MAX as f64 {
        Err(format!("value {text} out of range"))
    } else {
        Ok(f.round() as u64)
    }
}

/// Microseconds to nanoseconds, or an error naming the value.
pub(crate) fn micros_to_ns(us: u64) -> Result<u64, String> {
    us.checked_mul(1_000)
        .ok_or_else(|| format!("{us} µs overflows nanoseconds"))
}

/// A short rendering of a value for a rejection detail.
pub(crate) fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        let mut cut = 77;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Whether a tag value means "true" (`true`, `"true"`, `1`).
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true") || s == "1",
        Value::Number(n) => n.as_u64() == Some(1),
        _ => false,
    }
}
