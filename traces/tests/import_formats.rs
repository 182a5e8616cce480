//! Golden inputs for each importer: small files written here, read back through
//! `import::open`, compared span by span.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use seer_traces::import::{self, Format, SpanReader};
use seer_traces::{Span, SpanKind, SpanStatus};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test input");
    p
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).expect("gzip in memory");
    e.finish().expect("gzip in memory")
}

fn read_all(path: &Path, format: &Format) -> (Vec<Span>, seer_traces::import::ImportStats) {
    let mut r = import::open(path, format).expect("open");
    let spans: Vec<Span> = r.by_ref().collect();
    (spans, r.stats().clone())
}

const JAEGER: &str = r#"{
  "data": [
    {
      "traceID": "0af7651916cd43dd8448eb211c80319c",
      "spans": [
        {
          "traceID": "0af7651916cd43dd8448eb211c80319c",
          "spanID": "b7ad6b7169203331",
          "operationName": "GET /cart",
          "references": [],
          "startTime": 1661140374351773,
          "duration": 11209,
          "tags": [{"key": "span.kind", "type": "string", "value": "server"}],
          "processID": "p1"
        },
        {
          "traceID": "0af7651916cd43dd8448eb211c80319c",
          "spanID": "00f067aa0ba902b7",
          "operationName": "CartService/GetCart",
          "references": [{"refType": "CHILD_OF", "traceID": "0af7651916cd43dd8448eb211c80319c", "spanID": "b7ad6b7169203331"}],
          "startTime": 1661140374352000,
          "duration": 5000,
          "tags": [
            {"key": "span.kind", "type": "string", "value": "client"},
            {"key": "error", "type": "bool", "value": true}
          ],
          "processID": "p1"
        },
        {
          "traceID": "0af7651916cd43dd8448eb211c80319c",
          "spanID": "1111111111111111",
          "operationName": "GetCart",
          "references": [{"refType": "CHILD_OF", "spanID": "00f067aa0ba902b7"}],
          "startTime": 1661140374353000,
          "duration": 2000,
          "tags": [{"key": "span.kind", "value": "server"}, {"key": "otel.status_code", "value": "OK"}],
          "processID": "p2"
        }
      ],
      "processes": {
        "p1": {"serviceName": "frontend", "tags": []},
        "p2": {"serviceName": "cartservice", "tags": []}
      },
      "warnings": null
    }
  ],
  "total": 0, "limit": 0, "offset": 0, "errors": null
}"#;

fn jaeger_expected() -> Vec<Span> {
    let t = 0x0af7651916cd43dd8448eb211c80319c;
    vec![
        Span {
            trace_id: t,
            span_id: 0xb7ad6b7169203331,
            parent_id: None,
            service: "frontend".into(),
            operation: "GET /cart".into(),
            kind: SpanKind::Server,
            start_ns: 1661140374351773000,
            end_ns: 1661140374362982000,
            status: SpanStatus::Unset,
        },
        Span {
            trace_id: t,
            span_id: 0x00f067aa0ba902b7,
            parent_id: Some(0xb7ad6b7169203331),
            service: "frontend".into(),
            operation: "CartService/GetCart".into(),
            kind: SpanKind::Client,
            start_ns: 1661140374352000000,
            end_ns: 1661140374357000000,
            status: SpanStatus::Error,
        },
        Span {
            trace_id: t,
            span_id: 0x1111111111111111,
            parent_id: Some(0x00f067aa0ba902b7),
            service: "cartservice".into(),
            operation: "GetCart".into(),
            kind: SpanKind::Server,
            start_ns: 1661140374353000000,
            end_ns: 1661140374355000000,
            status: SpanStatus::Ok,
        },
    ]
}

#[test]
fn jaeger_golden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "t.json", JAEGER.as_bytes());
    let (spans, stats) = read_all(&p, &Format::Jaeger);
    assert_eq!(spans, jaeger_expected());
    assert_eq!(stats.spans, 3);
    assert_eq!(stats.rejected_total(), 0);
    assert_eq!(stats.bytes_read, JAEGER.len() as u64);
    assert_eq!(stats.total_bytes, JAEGER.len() as u64);
}

#[test]
fn jaeger_processes_after_spans_and_other_shapes() {
    // processes before spans, inside a bare array of traces.
    let v: serde_json::Value = serde_json::from_str(JAEGER).expect("valid json");
    let trace = &v["data"][0];
    let mut reordered = serde_json::Map::new();
    reordered.insert("processes".into(), trace["processes"].clone());
    reordered.insert("spans".into(), trace["spans"].clone());
    let arr = serde_json::Value::Array(vec![serde_json::Value::Object(reordered)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "arr.json", arr.to_string().as_bytes());
    assert_eq!(read_all(&p, &Format::Jaeger).0, jaeger_expected());
    // A single trace object, as the UI downloads it.
    let p = write(dir.path(), "one.json", trace.to_string().as_bytes());
    assert_eq!(read_all(&p, &Format::Jaeger).0, jaeger_expected());
    // Gzip, detected by its magic bytes whatever the file name.
    let p = write(dir.path(), "t.json", &gzip(JAEGER.as_bytes()));
    let (spans, stats) = read_all(&p, &Format::Jaeger);
    assert_eq!(spans, jaeger_expected());
    assert!(stats.bytes_read > 0 && stats.bytes_read == stats.total_bytes);
}

#[test]
fn jaeger_many_traces_stream() {
    // 3 000 traces: more than the parser thread's batches in flight.
    let mut s = String::from("{\"data\":[");
    for i in 0..3000u64 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"traceID":"{:x}","spans":[{{"spanID":"{:x}","operationName":"op","references":[],"startTime":{},"duration":10,"processID":"p1"}}],"processes":{{"p1":{{"serviceName":"svc{}"}}}}}}"#,
            i + 1,
            i + 1,
            1_600_000_000_000_000 + i,
            i % 7
        ));
    }
    s.push_str("]}");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "many.json", s.as_bytes());
    let (spans, stats) = read_all(&p, &Format::Jaeger);
    assert_eq!(spans.len(), 3000);
    assert_eq!(stats.spans, 3000);
    assert_eq!(spans[2999].service, "svc3");
    assert_eq!(spans[2999].trace_id, 3000);
    // Dropping a reader half way stops its parser thread (no hang).
    let mut r = import::open(&p, &Format::Jaeger).expect("open");
    assert!(r.next().is_some());
    drop(r);
}

const ZIPKIN: &str = r#"[
  {"traceId":"5af7183fb1d4cf5f","parentId":"6b221d5bc9e6496c","id":"352bff9a74ca9ad2","kind":"CLIENT",
   "name":"get /api","timestamp":1556604172355737,"duration":1431,
   "localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},
   "remoteEndpoint":{"ipv4":"172.19.0.2","port":58648},
   "tags":{"http.method":"GET","http.path":"/api","error":"500"}},
  {"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","kind":"SERVER","name":"get /",
   "timestamp":1556604172355000,"duration":5000,"localEndpoint":{"serviceName":"frontend"}}
]"#;

#[test]
fn zipkin_golden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "z.json", ZIPKIN.as_bytes());
    let (spans, stats) = read_all(&p, &Format::Zipkin);
    assert_eq!(stats.rejected_total(), 0, "{:?}", stats.rejections);
    assert_eq!(
        spans,
        vec![
            Span {
                trace_id: 0x5af7183fb1d4cf5f,
                span_id: 0x352bff9a74ca9ad2,
                parent_id: Some(0x6b221d5bc9e6496c),
                service: "backend".into(),
                operation: "get /api".into(),
                kind: SpanKind::Client,
                start_ns: 1556604172355737000,
                end_ns: 1556604172357168000,
                status: SpanStatus::Error,
            },
            Span {
                trace_id: 0x5af7183fb1d4cf5f,
                span_id: 0x6b221d5bc9e6496c,
                parent_id: None,
                service: "frontend".into(),
                operation: "get /".into(),
                kind: SpanKind::Server,
                start_ns: 1556604172355000000,
                end_ns: 1556604172360000000,
                status: SpanStatus::Unset,
            },
        ]
    );
    // The /api/v2/traces answer: an array of traces, each an array of spans.
    let nested = format!("[{ZIPKIN}, []]");
    let p = write(dir.path(), "traces.json", nested.as_bytes());
    assert_eq!(read_all(&p, &Format::Zipkin).0.len(), 2);
}

const NEZHA: &str = "\
TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration
0087f677c0a2cf3f80a551987167911b,ee744a66e6efcb2e,root,frontend-579b9bff58-t2dbm,hipstershop.Frontend/Recv.,1661140374351773094,1661140374362982609,11209
0087f677c0a2cf3f80a551987167911b,a23660ca2e7cc4c8,ee744a66e6efcb2e,frontend-579b9bff58-t2dbm,hipstershop.ProductCatalogService/GetProduct,1661140374351910124,1661140374357482580,5572
0087f677c0a2cf3f80a551987167911b,cda58d5b5ee8e476,ee744a66e6efcb2e,frontend-579b9bff58-t2dbm,hipstershop.CartService/AddItem,1661140374357509048,1661140374362852137,5343
0087f677c0a2cf3f80a551987167911b,55b2fda62c1b8ce1,a23660ca2e7cc4c8,productcatalogservice-668d5f85fb-wckp8,hipstershop.ProductCatalogService/GetProduct,1661140374353765692,1661140374356763596,2997
";

#[test]
fn nezha_csv_golden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "03_53_trace.csv", NEZHA.as_bytes());
    let format = Format::from_name("nezha-csv").expect("preset");
    let (spans, stats) = read_all(&p, &format);
    assert_eq!(stats.rejected_total(), 0);
    assert_eq!(stats.ignored_columns, vec!["Duration".to_string()]);
    let t = 0x0087f677c0a2cf3f80a551987167911b;
    assert_eq!(
        spans[0],
        Span {
            trace_id: t,
            span_id: 0xee744a66e6efcb2e,
            parent_id: None,
            service: "frontend".into(),
            operation: "hipstershop.Frontend/Recv.".into(),
            kind: SpanKind::Server,
            start_ns: 1661140374351773094,
            end_ns: 1661140374362982609,
            status: SpanStatus::Unset,
        }
    );
    let kinds: Vec<SpanKind> = spans.iter().map(|s| s.kind).collect();
    // Root: server; GetProduct in frontend calls productcatalog: client; AddItem's
    // callee is not in the file: internal; the productcatalog span: server.
    assert_eq!(
        kinds,
        [
            SpanKind::Server,
            SpanKind::Client,
            SpanKind::Internal,
            SpanKind::Server
        ]
    );
    assert_eq!(spans[3].service, "productcatalogservice");
    assert_eq!(stats.kinds_inferred, [2, 1, 1]);
    // Gzip gives the same.
    let pz = write(dir.path(), "03_53_trace.csv.gz", &gzip(NEZHA.as_bytes()));
    assert_eq!(read_all(&pz, &format).0, spans);
    // Without kind inference the kinds stay unspecified.
    let raw: Vec<Span> = import::open_plain(&p, &format).expect("open").collect();
    assert!(raw.iter().all(|s| s.kind == SpanKind::Unspecified));
}

#[test]
fn csv_with_custom_mapping() {
    let text = "tid;sid;pid;svc;name;ts;dur;kind;status\n\
                abc;1;;api;GET /;1600000000000000;250;SPAN_KIND_SERVER;STATUS_CODE_ERROR\n\
                abc;2;1;db;query;1600000000000100;100;client;ok\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "x.csv", text.as_bytes());
    let format = Format::from_name(
        "csv:trace=tid,span=sid,parent=pid,service=svc,operation=name,start=ts,duration=dur,unit=us,kind=kind,status=status,delimiter=semicolon",
    )
    .expect("valid spec");
    let (spans, stats) = read_all(&p, &format);
    assert_eq!(stats.rejected_total(), 0, "{:?}", stats.rejections);
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].parent_id, None);
    assert_eq!(spans[0].start_ns, 1_600_000_000_000_000_000);
    assert_eq!(spans[0].end_ns, 1_600_000_000_000_250_000);
    assert_eq!(spans[0].kind, SpanKind::Server);
    assert_eq!(spans[0].status, SpanStatus::Error);
    assert_eq!(spans[1].kind, SpanKind::Client);
    assert_eq!(spans[1].status, SpanStatus::Ok);
    assert_eq!(spans[1].parent_id, Some(1));
}

#[test]
fn generic_csv_guesses_names_and_units() {
    let text = "Trace_Id,Span_Id,Parent_Span_Id,Service_Name,Name,Start_Time,End_Time\n\
                ff,a,,checkout,Place,1600000000.5,1600000000.75\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "g.csv", text.as_bytes());
    let (spans, stats) = read_all(&p, &Format::from_name("csv").expect("csv"));
    assert_eq!(stats.rejected_total(), 0, "{:?}", stats.rejections);
    assert_eq!(spans[0].start_ns, 1_600_000_000_500_000_000);
    assert_eq!(spans[0].duration_ns(), 250_000_000);
    assert_eq!(spans[0].kind, SpanKind::Server);
}

#[test]
fn format_names() {
    for name in Format::NAMES {
        let f = Format::from_name(name).expect("listed names parse");
        assert_eq!(f.name(), name);
    }
    assert!(Format::from_name("parquet").is_err());
    assert!(matches!(
        Format::from_name("csv:bogus"),
        Err(import::ImportError::BadMapping { .. })
    ));
}

#[test]
fn open_all_chains_files_and_lists_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(dir.path(), "a.json", JAEGER.as_bytes());
    let b = write(dir.path(), "b.json", &gzip(JAEGER.as_bytes()));
    let missing = dir.path().join("missing.json");
    let mut r = import::open_all(&[a, missing.clone(), b], &Format::Jaeger);
    let spans: Vec<Span> = r.by_ref().collect();
    assert_eq!(spans.len(), 6);
    let st = r.stats();
    assert_eq!(st.spans, 6);
    assert_eq!(st.files, 2);
    assert_eq!(st.failed_files.len(), 1);
    assert_eq!(st.failed_files[0].0, missing);
    assert!(
        st.failed_files[0].1.contains("missing.json"),
        "{}",
        st.failed_files[0].1
    );
}

#[test]
fn open_reports_missing_file_with_path() {
    let e = import::open(Path::new("/nonexistent/x.csv"), &Format::Otlp)
        .err()
        .expect("error");
    let msg = e.to_string();
    assert!(
        msg.starts_with("failed to open /nonexistent/x.csv"),
        "{msg}"
    );
}

#[allow(dead_code)]
fn assert_send(r: Box<dyn SpanReader>) -> impl Send {
    r
}
