//! The span model every importer produces and the aggregator consumes.

use std::fmt;

/// What role a span plays in its trace (OpenTelemetry `SpanKind`).
///
/// Only [`SpanKind::Server`] and [`SpanKind::Consumer`] spans count towards a
/// service's queue depth: they are the requests a service is working on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    /// The source did not say; importers that can infer it do (see
    /// [`crate::import::KindResolver`]), otherwise it is treated as a server span.
    #[default]
    Unspecified,
    /// Work inside one service.
    Internal,
    /// A request handled by this service.
    Server,
    /// A call this service makes to another.
    Client,
    /// A message this service publishes.
    Producer,
    /// A message this service handles.
    Consumer,
}

impl SpanKind {
    /// Whether the span is a request *handled* by its service (counts in its queue).
    pub fn is_server_side(self) -> bool {
        matches!(
            self,
            SpanKind::Server | SpanKind::Consumer | SpanKind::Unspecified
        )
    }

    /// The OTLP enum value (`opentelemetry.proto.trace.v1.Span.SpanKind`).
    pub fn from_otlp(v: i32) -> Self {
        match v {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    /// The OTLP enum value of this kind.
    pub fn to_otlp(self) -> i32 {
        match self {
            SpanKind::Unspecified => 0,
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    /// Parses the names used by Jaeger (`span.kind` tag) and Zipkin (`kind`).
    pub fn from_name(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            "internal" => SpanKind::Internal,
            _ => SpanKind::Unspecified,
        }
    }
}

/// Outcome of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanStatus {
    /// Not set by the instrumentation.
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed.
    Error,
}

/// One span, with times in nanoseconds since the Unix epoch.
///
/// Invariants upheld by every importer (see [`Span::validate`]): `end_ns >= start_ns`,
/// a non-zero span id, a non-empty service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Span {
    /// Trace id (128 bits; 64-bit ids are zero-extended).
    pub trace_id: u128,
    /// Span id, never zero.
    pub span_id: u64,
    /// Parent span id; `None` for a root span.
    pub parent_id: Option<u64>,
    /// The service that recorded the span.
    pub service: String,
    /// Operation (span name), e.g. `hipstershop.CartService/AddItem`.
    pub operation: String,
    /// Role of the span.
    pub kind: SpanKind,
    /// Start, ns since the epoch.
    pub start_ns: u64,
    /// End, ns since the epoch.
    pub end_ns: u64,
    /// Outcome.
    pub status: SpanStatus,
}

/// Longest span duration accepted: one day. Longer ones are corrupt clocks.
pub const MAX_SPAN_DURATION_NS: u64 = 86_400 * 1_000_000_000;

/// Why a record was rejected. Importers count rejections per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Trace or span id missing, zero, or not hex.
    BadId,
    /// Parent id present but not a valid id.
    BadParent,
    /// End before start.
    EndBeforeStart,
    /// Duration longer than [`MAX_SPAN_DURATION_NS`].
    TooLong,
    /// A timestamp missing, negative, NaN or not a number.
    BadTime,
    /// Service name missing or empty.
    NoService,
    /// The record does not have the shape of the format (wrong column count,
    /// invalid JSON, invalid protobuf).
    Malformed,
    /// The input ended in the middle of a record or a compressed stream.
    Truncated,
}

impl RejectReason {
    /// All reasons, in report order.
    pub const ALL: [RejectReason; 8] = [
        RejectReason::BadId,
        RejectReason::BadParent,
        RejectReason::EndBeforeStart,
        RejectReason::TooLong,
        RejectReason::BadTime,
        RejectReason::NoService,
        RejectReason::Malformed,
        RejectReason::Truncated,
    ];

    /// A short snake_case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::BadId => "bad_id",
            RejectReason::BadParent => "bad_parent",
            RejectReason::EndBeforeStart => "end_before_start",
            RejectReason::TooLong => "too_long",
            RejectReason::BadTime => "bad_time",
            RejectReason::NoService => "no_service",
            RejectReason::Malformed => "malformed",
            RejectReason::Truncated => "truncated",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Span {
    /// Checks the invariants every importer guarantees.
    pub fn validate(&self) -> Result<(), RejectReason> {
        if self.span_id == 0 || self.trace_id == 0 {
            return Err(RejectReason::BadId);
        }
        if self.parent_id == Some(0) {
            return Err(RejectReason::BadParent);
        }
        if self.service.is_empty() {
            return Err(RejectReason::NoService);
        }
        if self.start_ns == 0 || self.end_ns == 0 {
            return Err(RejectReason::BadTime);
        }
        if self.end_ns < self.start_ns {
            return Err(RejectReason::EndBeforeStart);
        }
        if self.end_ns - self.start_ns > MAX_SPAN_DURATION_NS {
            return Err(RejectReason::TooLong);
        }
        Ok(())
    }

    /// Duration in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// Parses a hex id of up to 32 digits (trace) or 16 digits (span).
pub fn parse_hex_id(s: &str, max_digits: usize) -> Option<u128> {
    let s = s.trim();
    if s.is_empty() || s.len() > max_digits {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        Span {
            trace_id: 1,
            span_id: 2,
            parent_id: None,
            service: "a".into(),
            operation: "op".into(),
            kind: SpanKind::Server,
            start_ns: 10,
            end_ns: 20,
            status: SpanStatus::Ok,
        }
    }

    #[test]
    fn validate_catches_each_reason() {
        assert_eq!(span().validate(), Ok(()));
        let mut s = span();
        s.end_ns = 5;
        assert_eq!(s.validate(), Err(RejectReason::EndBeforeStart));
        let mut s = span();
        s.end_ns = s.start_ns + MAX_SPAN_DURATION_NS + 1;
        assert_eq!(s.validate(), Err(RejectReason::TooLong));
        let mut s = span();
        s.span_id = 0;
        assert_eq!(s.validate(), Err(RejectReason::BadId));
        let mut s = span();
        s.service.clear();
        assert_eq!(s.validate(), Err(RejectReason::NoService));
        let mut s = span();
        s.parent_id = Some(0);
        assert_eq!(s.validate(), Err(RejectReason::BadParent));
    }

    #[test]
    fn hex_ids() {
        assert_eq!(
            parse_hex_id("ee744a66e6efcb2e", 16),
            Some(0xee744a66e6efcb2e)
        );
        assert_eq!(parse_hex_id("root", 16), None);
        assert_eq!(parse_hex_id("00112233445566778899aabbccddeeff0", 32), None);
        assert_eq!(
            SpanKind::from_otlp(SpanKind::Consumer.to_otlp()),
            SpanKind::Consumer
        );
    }
}
