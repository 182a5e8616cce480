//! OTLP decode throughput: spans with 10 attributes, one core.
//!
//! `cargo bench -p seer-traces --bench import_otlp`: the fast wire decoder
//! (`decode_otlp_request`) against prost's full decoding followed by
//! `spans_from_otlp`, on the same 1 000-span requests; and the Nezha CSV reader
//! with kind inference on 10 000 in-memory rows.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message;
use seer_traces::import::{
    CsvMapping, CsvReader, ImportStats, KindResolver, decode_otlp_request, spans_from_otlp,
};

const SPANS: usize = 1000;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// 10 services × 100 spans, each span with 10 attributes (strings, ints, bools,
/// like HTTP/RPC semantic conventions).
fn request() -> Vec<u8> {
    let mut req = ExportTraceServiceRequest::default();
    for s in 0..10 {
        let spans = (0..SPANS / 10)
            .map(|i| {
                let id = (s * 1000 + i + 1) as u64;
                pb::Span {
                    trace_id: u128::from(id * 7919).to_be_bytes().to_vec(),
                    span_id: id.to_be_bytes().to_vec(),
                    parent_span_id: (id + 1).to_be_bytes().to_vec(),
                    name: format!("/hipstershop.Service{s}/Method{}", i % 4),
                    kind: 2,
                    start_time_unix_nano: 1_700_000_000_000_000_000 + id * 1000,
                    end_time_unix_nano: 1_700_000_000_000_000_000 + id * 1000 + 250_000,
                    attributes: vec![
                        kv("http.method", any_value::Value::StringValue("POST".into())),
                        kv(
                            "http.route",
                            any_value::Value::StringValue("/api/cart/items".into()),
                        ),
                        kv("http.status_code", any_value::Value::IntValue(200)),
                        kv(
                            "net.peer.name",
                            any_value::Value::StringValue("10.0.3.17".into()),
                        ),
                        kv("net.peer.port", any_value::Value::IntValue(45012)),
                        kv("rpc.system", any_value::Value::StringValue("grpc".into())),
                        kv(
                            "rpc.service",
                            any_value::Value::StringValue(format!("Service{s}")),
                        ),
                        kv("rpc.grpc.status_code", any_value::Value::IntValue(0)),
                        kv("user.premium", any_value::Value::BoolValue(i % 2 == 0)),
                        kv("request.size", any_value::Value::IntValue(1024 + i as i64)),
                    ],
                    status: Some(pb::Status {
                        message: String::new(),
                        code: 1,
                    }),
                    ..Default::default()
                }
            })
            .collect();
        req.resource_spans.push(pb::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv(
                        "service.name",
                        any_value::Value::StringValue(format!("service-{s}")),
                    ),
                    kv("host.name", any_value::Value::StringValue("node-1".into())),
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
    req.encode_to_vec()
}

fn bench(c: &mut Criterion) {
    let bytes = request();
    let src: Arc<Path> = Arc::from(Path::new("bench.otlp"));
    let mut g = c.benchmark_group("otlp_decode_1000_spans_10_attrs");
    g.throughput(Throughput::Elements(SPANS as u64));
    g.bench_function("fast_wire_decoder", |b| {
        let mut out = Vec::with_capacity(SPANS);
        let mut stats = ImportStats::default();
        b.iter(|| {
            out.clear();
            let n = decode_otlp_request(black_box(&bytes), &src, &mut out, &mut stats);
            assert_eq!(n, Ok(SPANS));
        });
    });
    g.bench_function("prost_then_spans_from_otlp", |b| {
        let mut out = Vec::with_capacity(SPANS);
        let mut stats = ImportStats::default();
        b.iter(|| {
            out.clear();
            let req =
                ExportTraceServiceRequest::decode(black_box(bytes.as_slice())).expect("valid");
            spans_from_otlp(&req, &src, &mut |s| out.push(s), &mut stats);
            assert_eq!(out.len(), SPANS);
        });
    });
    g.finish();
}

/// 10 000 Nezha-layout rows (5-span traces over 4 pods), in memory.
fn nezha_rows() -> Vec<u8> {
    let pods = [
        "frontend-579b9bff58-t2dbm",
        "cartservice-579f59597d-wc2lz",
        "productcatalogservice-668d5f85fb-wckp8",
        "currencyservice-cf787dd48-vpjrd",
    ];
    let mut s = String::from(
        "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n",
    );
    for i in 0..10_000u64 {
        let trace = i / 5 + 1;
        let parent = if i % 5 == 0 {
            "root".to_string()
        } else {
            format!("{:016x}", i)
        };
        let start = 1_661_140_374_351_773_094 + i * 1000;
        s.push_str(&format!(
            "{trace:032x},{:016x},{parent},{},hipstershop.Service/Method{},{start},{},{}\n",
            i + 1,
            pods[(i % 4) as usize],
            i % 3,
            start + 11_209_515,
            11209
        ));
    }
    s.into_bytes()
}

fn bench_csv(c: &mut Criterion) {
    let rows = nezha_rows();
    let mut g = c.benchmark_group("nezha_csv_10000_rows");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("csv_reader_with_kind_resolver", |b| {
        b.iter(|| {
            let r = CsvReader::from_reader(
                Path::new("bench.csv"),
                std::io::Cursor::new(rows.clone()),
                CsvMapping::nezha(),
            )
            .expect("header");
            let n = KindResolver::new(r, 65_536).count();
            assert_eq!(n, 10_000);
        });
    });
    g.finish();
}

criterion_group!(benches, bench, bench_csv);
criterion_main!(benches);
