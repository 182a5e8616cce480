//! Where simulated spans go: the [`SpanSink`] trait and the common sinks.
//!
//! The simulator emits compact [`SimSpan`]s (names as indices into the
//! [`Topology`]) so that the fast path allocates nothing per span;
//! [`SimSpan::to_span`] turns one into a [`seer_traces::Span`] when a consumer
//! needs names.

use crate::topology::Topology;
use seer_traces::{Span, SpanKind, SpanStatus};
use std::io::Write;

/// One simulated span. Times are ns since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSpan {
    /// Trace id, never zero.
    pub trace_id: u128,
    /// Span id, never zero, unique within a run.
    pub span_id: u64,
    /// Parent span id; `None` for the root span of a request.
    pub parent_id: Option<u64>,
    /// Service id in the topology.
    pub service: u32,
    /// Instance of the service (0-based).
    pub instance: u32,
    /// Operation id in the topology.
    pub op: u32,
    /// For root spans, the API (entry point) id; its name is the span's operation.
    pub api: Option<u32>,
    /// `Server` for a request handled, `Consumer` for a message handled, `Client`
    /// for the caller's side of a call (only with client spans on).
    pub kind: SpanKind,
    /// Start, ns since the epoch (server side: arrival at the service, queueing
    /// included).
    pub start_ns: u64,
    /// End, ns since the epoch.
    pub end_ns: u64,
    /// The reply was an error.
    pub error: bool,
}

impl SimSpan {
    /// The span's service name.
    pub fn service_name<'a>(&self, topo: &'a Topology) -> &'a str {
        &topo.services[self.service as usize].name
    }

    /// The span's operation name: the API name for root spans, else the op name.
    pub fn operation<'a>(&self, topo: &'a Topology) -> &'a str {
        match self.api {
            Some(a) => &topo.apis[a as usize].name,
            None => &topo.ops[self.op as usize].name,
        }
    }

    /// The span in Seer's span model.
    pub fn to_span(&self, topo: &Topology) -> Span {
        Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_id: self.parent_id,
            service: self.service_name(topo).to_string(),
            operation: self.operation(topo).to_string(),
            kind: self.kind,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            status: if self.error {
                SpanStatus::Error
            } else {
                SpanStatus::Ok
            },
        }
    }
}

/// Receives spans in the order they end (end times never decrease).
///
/// `&mut S` is a sink when `S` is; wrap a closure in [`FnSink`].
pub trait SpanSink {
    /// One finished span.
    fn span(&mut self, span: &SimSpan, topo: &Topology);
}

impl<T: SpanSink + ?Sized> SpanSink for &mut T {
    fn span(&mut self, span: &SimSpan, topo: &Topology) {
        (**self).span(span, topo)
    }
}

/// A closure as a sink: `FnSink(|span, topo| ...)`.
#[derive(Debug, Clone, Copy)]
pub struct FnSink<F>(pub F);

impl<F: FnMut(&SimSpan, &Topology)> SpanSink for FnSink<F> {
    fn span(&mut self, span: &SimSpan, topo: &Topology) {
        (self.0)(span, topo)
    }
}

/// Drops every span.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl SpanSink for NullSink {
    fn span(&mut self, _: &SimSpan, _: &Topology) {}
}

/// Counts spans.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountSink {
    /// Spans received.
    pub spans: u64,
}

impl SpanSink for CountSink {
    fn span(&mut self, _: &SimSpan, _: &Topology) {
        self.spans += 1;
    }
}

/// Keeps every span (tests, small runs).
#[derive(Debug, Default, Clone)]
pub struct VecSink {
    /// The spans, in emission order.
    pub spans: Vec<SimSpan>,
}

impl SpanSink for VecSink {
    fn span(&mut self, span: &SimSpan, _: &Topology) {
        self.spans.push(*span);
    }
}

/// Header of the span CSV written by [`CsvSink`].
pub const CSV_HEADER: &str = "trace_id,span_id,parent_id,service,operation,kind,start_time_unix_nano,end_time_unix_nano,status";

/// Writes spans as CSV (`CSV_HEADER`; ids in hex, times in ns since the epoch,
/// `kind` and `status` lowercase). The first write error is kept and returned by
/// [`CsvSink::finish`]; later spans are dropped.
#[derive(Debug)]
pub struct CsvSink<W: Write> {
    out: W,
    error: Option<std::io::Error>,
    header: bool,
    line: String,
}

impl<W: Write> CsvSink<W> {
    /// A sink writing to `out` (wrap files in a `BufWriter`).
    pub fn new(out: W) -> Self {
        Self {
            out,
            error: None,
            header: false,
            line: String::with_capacity(256),
        }
    }

    /// Flushes and returns the writer, or the first error.
    pub fn finish(mut self) -> std::io::Result<W> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if !self.header {
            writeln!(self.out, "{CSV_HEADER}")?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn kind_name(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// One CSV line (without newline) for a span; names never contain commas or quotes
/// (topology validation does not allow them in service names; operation names are
/// quoted when they do).
pub fn csv_line(s: &SimSpan, topo: &Topology, line: &mut String) {
    use std::fmt::Write as _;
    line.clear();
    let quote = |x: &str| {
        if x.contains([',', '"', '\n']) {
            format!("\"{}\"", x.replace('"', "\"\""))
        } else {
            x.to_string()
        }
    };
    let _ = write!(line, "{:032x},{:016x},", s.trace_id, s.span_id);
    if let Some(p) = s.parent_id {
        let _ = write!(line, "{p:016x}");
    }
    let _ = write!(
        line,
        ",{},{},{},{},{},{}",
        quote(s.service_name(topo)),
        quote(s.operation(topo)),
        kind_name(s.kind),
        s.start_ns,
        s.end_ns,
        if s.error { "error" } else { "ok" }
    );
}

impl<W: Write> SpanSink for CsvSink<W> {
    fn span(&mut self, span: &SimSpan, topo: &Topology) {
        if self.error.is_some() {
            return;
        }
        if !self.header {
            self.header = true;
            if let Err(e) = writeln!(self.out, "{CSV_HEADER}") {
                self.error = Some(e);
                return;
            }
        }
        let mut line = std::mem::take(&mut self.line);
        csv_line(span, topo, &mut line);
        if let Err(e) = writeln!(self.out, "{line}") {
            self.error = Some(e);
        }
        self.line = line;
    }
}

/// Sends every span to two sinks.
#[derive(Debug)]
pub struct Tee<A, B>(pub A, pub B);

impl<A: SpanSink, B: SpanSink> SpanSink for Tee<A, B> {
    fn span(&mut self, span: &SimSpan, topo: &Topology) {
        self.0.span(span, topo);
        self.1.span(span, topo);
    }
}

/// An optional sink: `None` drops the spans.
impl<S: SpanSink> SpanSink for Option<S> {
    fn span(&mut self, span: &SimSpan, topo: &Topology) {
        if let Some(s) = self {
            s.span(span, topo);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_golden() {
        let t = Topology::load("chain").unwrap();
        let s = SimSpan {
            trace_id: 0xab,
            span_id: 0x10,
            parent_id: Some(0x0f),
            service: 1,
            instance: 0,
            op: 1,
            api: None,
            kind: SpanKind::Server,
            start_ns: 1_000,
            end_ns: 2_500,
            error: false,
        };
        let mut sink = CsvSink::new(Vec::new());
        sink.span(&s, &t);
        sink.span(
            &SimSpan {
                parent_id: None,
                api: Some(0),
                service: 0,
                op: 0,
                error: true,
                ..s
            },
            &t,
        );
        let out = String::from_utf8(sink.finish().unwrap()).unwrap();
        assert_eq!(
            out,
            "trace_id,span_id,parent_id,service,operation,kind,start_time_unix_nano,end_time_unix_nano,status\n\
             000000000000000000000000000000ab,0000000000000010,000000000000000f,middle,Handle,server,1000,2500,ok\n\
             000000000000000000000000000000ab,0000000000000010,,front,/chain,server,1000,2500,error\n"
        );
        let span = s.to_span(&t);
        assert_eq!(span.service, "middle");
        assert_eq!(span.status, SpanStatus::Ok);
        assert!(span.validate().is_ok());
    }
}
