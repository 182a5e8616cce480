//! OTLP: golden wire bytes, the file writer and reader round trip, and the fast
//! decoder against prost's decoding plus `spans_from_otlp`.

use std::path::Path;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message;
use seer_traces::import::{
    self, Format, ImportStats, OtlpFileWriter, decode_otlp_request, spans_from_otlp, spans_to_otlp,
};
use seer_traces::{RejectReason, Span, SpanKind, SpanStatus};

fn src() -> Arc<Path> {
    Arc::from(Path::new("test.otlp"))
}

fn both(bytes: &[u8]) -> (Vec<Span>, ImportStats) {
    let mut fast = Vec::new();
    let mut fast_stats = ImportStats::default();
    decode_otlp_request(bytes, &src(), &mut fast, &mut fast_stats).expect("fast decode");
    let req = ExportTraceServiceRequest::decode(bytes).expect("prost decode");
    let mut slow = Vec::new();
    let mut slow_stats = ImportStats::default();
    spans_from_otlp(&req, &src(), &mut |s| slow.push(s), &mut slow_stats);
    assert_eq!(fast, slow);
    assert_eq!(fast_stats.rejected, slow_stats.rejected);
    assert_eq!(fast_stats.spans, slow_stats.spans);
    (fast, fast_stats)
}

/// One span, assembled by hand from the OTLP .proto field numbers.
#[test]
fn golden_wire_bytes() {
    let mut span = vec![0x0a, 16];
    span.extend(1..=16u8); // trace_id
    span.extend([0x12, 8]);
    span.extend([0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]); // span_id
    span.extend([0x22, 8, 0, 0, 0, 0, 0, 0, 0, 7]); // parent_span_id = 7
    span.extend([0x2a, 3]);
    span.extend(b"GET"); // name
    span.extend([0x30, 2]); // kind = SERVER
    span.push(0x39);
    span.extend(1_000_000_000u64.to_le_bytes()); // start (fixed64)
    span.push(0x41);
    span.extend(1_000_500_000u64.to_le_bytes()); // end
    span.extend([0x7a, 2, 0x18, 2]); // status { code: ERROR }
    let mut kv = vec![0x0a, 12];
    kv.extend(b"service.name");
    kv.extend([0x12, 5, 0x0a, 3]);
    kv.extend(b"api");
    let mut resource = vec![0x0a, kv.len() as u8];
    resource.extend(kv);
    let mut scope = vec![0x12, span.len() as u8];
    scope.extend(span);
    // The resource after the spans: allowed by protobuf, and handled.
    let mut rs = vec![0x12, scope.len() as u8];
    rs.extend(scope);
    rs.extend([0x0a, resource.len() as u8]);
    rs.extend(resource);
    let mut req = vec![0x0a, rs.len() as u8];
    req.extend(rs);
    let (spans, stats) = both(&req);
    assert_eq!(stats.rejected_total(), 0);
    assert_eq!(
        spans,
        vec![Span {
            trace_id: 0x0102030405060708090a0b0c0d0e0f10,
            span_id: 0xb7ad6b7169203331,
            parent_id: Some(7),
            service: "api".into(),
            operation: "GET".into(),
            kind: SpanKind::Server,
            start_ns: 1_000_000_000,
            end_ns: 1_000_500_000,
            status: SpanStatus::Error,
        }]
    );
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A realistic request: several resources, 10 attributes per span, events, links.
fn rich_request(services: usize, spans_per: usize) -> ExportTraceServiceRequest {
    let mut req = ExportTraceServiceRequest::default();
    for s in 0..services {
        let mut spans = Vec::new();
        for i in 0..spans_per {
            let id = (s * spans_per + i + 1) as u64;
            let attributes = (0..10)
                .map(|a| match a % 3 {
                    0 => kv(
                        &format!("http.attr{a}"),
                        any_value::Value::StringValue(format!("value-{a}-{i}")),
                    ),
                    1 => kv(
                        &format!("net.attr{a}"),
                        any_value::Value::IntValue(a * 1000 + i as i64),
                    ),
                    _ => kv(&format!("flag{a}"), any_value::Value::BoolValue(i % 2 == 0)),
                })
                .collect();
            spans.push(pb::Span {
                trace_id: u128::from(id / 4 + 1).to_be_bytes().to_vec(),
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: if i % 4 == 0 {
                    Vec::new()
                } else {
                    (id - 1).to_be_bytes().to_vec()
                },
                name: format!("op{}", i % 5),
                kind: (i % 6) as i32,
                start_time_unix_nano: 1_700_000_000_000_000_000 + id * 1000,
                end_time_unix_nano: 1_700_000_000_000_000_000 + id * 1000 + 250_000,
                attributes,
                events: vec![pb::span::Event {
                    time_unix_nano: 5,
                    name: "ev".into(),
                    ..Default::default()
                }],
                links: vec![pb::span::Link {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    ..Default::default()
                }],
                status: Some(pb::Status {
                    message: "m".into(),
                    code: (i % 3) as i32,
                }),
                flags: 1,
                ..Default::default()
            });
        }
        req.resource_spans.push(pb::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("host.name", any_value::Value::StringValue("h".into())),
                    kv(
                        "service.name",
                        any_value::Value::StringValue(format!("svc{s}")),
                    ),
                ],
                ..Default::default()
            }),
            scope_spans: vec![pb::ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        });
    }
    req
}

#[test]
fn fast_decoder_matches_prost() {
    let req = rich_request(5, 40);
    let (spans, stats) = both(&req.encode_to_vec());
    assert_eq!(spans.len(), 200);
    assert_eq!(stats.spans, 200);
    assert_eq!(spans[0].service, "svc0");
    assert_eq!(spans[199].service, "svc4");
    assert_eq!(spans[1].parent_id, Some(1));
    assert_eq!(spans[1].kind, SpanKind::Internal);
    assert_eq!(spans[2].kind, SpanKind::Server);
    assert_eq!(spans[1].status, SpanStatus::Ok);
    assert_eq!(spans[2].status, SpanStatus::Error);
}

#[test]
fn fast_decoder_is_all_or_nothing() {
    let bytes = rich_request(2, 5).encode_to_vec();
    // Cut inside the last span: the whole message is one rejection.
    let cut = &bytes[..bytes.len() - 3];
    let mut out = vec![Span::default()];
    let mut stats = ImportStats::default();
    let err = decode_otlp_request(cut, &src(), &mut out, &mut stats).expect_err("cut message");
    assert!(
        err.to_string().starts_with("invalid protobuf at byte"),
        "{err}"
    );
    assert_eq!(out.len(), 1);
    assert_eq!(stats.spans, 0);
    assert_eq!(
        stats.rejected_by_reason(),
        vec![(RejectReason::Malformed, 1)]
    );
    assert!(ExportTraceServiceRequest::decode(cut).is_err());
}

#[test]
fn service_name_rules_match() {
    // A non-string service.name is skipped; the first string one wins.
    let mut req = rich_request(1, 2);
    let res = req.resource_spans[0].resource.as_mut().expect("resource");
    res.attributes
        .insert(0, kv("service.name", any_value::Value::IntValue(3)));
    res.attributes.push(kv(
        "service.name",
        any_value::Value::StringValue("later".into()),
    ));
    let (spans, _) = both(&req.encode_to_vec());
    assert!(spans.iter().all(|s| s.service == "svc0"));
}

#[test]
fn file_round_trip_plain_and_gzip() {
    let spans: Vec<Span> = (1..=300u64)
        .map(|i| Span {
            trace_id: u128::from(i / 3 + 1) << 64 | 0xabc,
            span_id: i,
            parent_id: if i % 3 == 1 { None } else { Some(i - 1) },
            service: format!("svc{}", i % 4),
            operation: format!("op{}", i % 7),
            kind: [
                SpanKind::Server,
                SpanKind::Client,
                SpanKind::Internal,
                SpanKind::Consumer,
            ][i as usize % 4],
            start_ns: 1_700_000_000_000_000_000 + i,
            end_ns: 1_700_000_000_000_000_000 + i * 2,
            status: [SpanStatus::Unset, SpanStatus::Ok, SpanStatus::Error][i as usize % 3],
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("traces.otlp");
    let mut w = OtlpFileWriter::create(&path).expect("create");
    for chunk in spans.chunks(64) {
        w.write_spans(chunk).expect("write");
    }
    w.flush().expect("flush");
    drop(w);
    let mut r = import::open(&path, &Format::Otlp).expect("open");
    let mut back: Vec<Span> = r.by_ref().collect();
    assert_eq!(r.stats().rejected_total(), 0);
    assert_eq!(
        r.stats().bytes_read,
        std::fs::metadata(&path).expect("stat").len()
    );
    // Within one request spans are grouped by service; compare as sets.
    let mut want = spans.clone();
    want.sort_by_key(|s| s.span_id);
    back.sort_by_key(|s| s.span_id);
    assert_eq!(back.len(), want.len());
    for (b, w) in back.iter().zip(&want) {
        assert_eq!(b, w);
    }

    let gz = dir.path().join("traces.otlp.gz");
    let f = std::fs::File::create(&gz).expect("create");
    let mut w = OtlpFileWriter::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    w.write_spans(&spans).expect("write");
    w.into_inner().finish().expect("finish gzip");
    let n = import::open(&gz, &Format::Otlp).expect("open").count();
    assert_eq!(n, 300);
}

#[test]
fn spans_to_otlp_groups_by_service() {
    let s = |id, svc: &str| Span {
        trace_id: 1,
        span_id: id,
        service: svc.into(),
        start_ns: 1,
        end_ns: 2,
        ..Default::default()
    };
    let req = spans_to_otlp(&[s(1, "a"), s(2, "b"), s(3, "a")]);
    assert_eq!(req.resource_spans.len(), 2);
    assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 2);
}
