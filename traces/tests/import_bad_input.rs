//! Bad input: every malformed record is counted under its reason with its file
//! and line or offset, the rest of the input is still used, nothing panics.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use seer_traces::import::{self, Format, ImportError, ImportStats, Location, OtlpFileWriter};
use seer_traces::{RejectReason, Span, SpanKind, SpanStatus};

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

fn read_all(path: &Path, format: &Format) -> (Vec<Span>, ImportStats) {
    let mut r = import::open(path, format).expect("open");
    let spans: Vec<Span> = r.by_ref().collect();
    (spans, r.stats().clone())
}

fn nezha() -> Format {
    Format::from_name("nezha-csv").expect("preset")
}

const HEADER: &str =
    "TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Duration\n";

#[test]
fn csv_each_reason_counted_with_its_line() {
    let rows = [
        // line 2: good
        "aa,0000000000000001,root,frontend-579b9bff58-t2dbm,op,1000,2000,1",
        // line 3: trace id not hex
        "zz-not-hex,0000000000000002,root,frontend-579b9bff58-t2dbm,op,1000,2000,1",
        // line 4: zero span id
        "aa,0000000000000000,root,frontend-579b9bff58-t2dbm,op,1000,2000,1",
        // line 5: span id too long
        "aa,00000000000000001,root,frontend-579b9bff58-t2dbm,op,1000,2000,1",
        // line 6: parent not an id
        "aa,0000000000000003,parent?,frontend-579b9bff58-t2dbm,op,1000,2000,1",
        // line 7: end before start
        "aa,0000000000000004,root,frontend-579b9bff58-t2dbm,op,2000,1000,1",
        // line 8: NaN start
        "aa,0000000000000005,root,frontend-579b9bff58-t2dbm,op,NaN,2000,1",
        // line 9: negative end
        "aa,0000000000000006,root,frontend-579b9bff58-t2dbm,op,1000,-5,1",
        // line 10: a duration of three years
        "aa,0000000000000007,root,frontend-579b9bff58-t2dbm,op,1000,94608000000001000,1",
        // line 11: no service
        "aa,0000000000000008,root,,op,1000,2000,1",
        // line 12: a missing field
        "aa,0000000000000009,root,frontend-579b9bff58-t2dbm,op,1000,2000",
        // line 13: an extra field
        "aa,000000000000000a,root,frontend-579b9bff58-t2dbm,op,1000,2000,1,surprise",
        // line 14: good, with a parent
        "aa,000000000000000b,0000000000000001,cartservice-579f59597d-wc2lz,op,1100,1900,1",
        // line 15: infinite end
        "aa,000000000000000c,root,frontend-579b9bff58-t2dbm,op,1000,inf,1",
        // line 16: zero start
        "aa,000000000000000d,root,frontend-579b9bff58-t2dbm,op,0,2000,1",
    ];
    let text = format!("{HEADER}{}\n", rows.join("\n"));
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "bad.csv", text.as_bytes());
    let (spans, st) = read_all(&p, &nezha());
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[1].service, "cartservice");
    assert_eq!(st.spans, 2);
    let by: Vec<(RejectReason, u64)> = st.rejected_by_reason();
    assert_eq!(
        by,
        vec![
            (RejectReason::BadId, 3),
            (RejectReason::BadParent, 1),
            (RejectReason::EndBeforeStart, 1),
            (RejectReason::TooLong, 1),
            (RejectReason::BadTime, 4),
            (RejectReason::NoService, 1),
            (RejectReason::Malformed, 2),
        ]
    );
    let lines: Vec<(Location, RejectReason)> = st
        .rejections
        .iter()
        .map(|r| (r.location, r.reason))
        .collect();
    assert_eq!(lines[0], (Location::Line(3), RejectReason::BadId));
    assert_eq!(lines[3], (Location::Line(6), RejectReason::BadParent));
    assert_eq!(lines[5], (Location::Line(8), RejectReason::BadTime));
    assert_eq!(lines[9], (Location::Line(12), RejectReason::Malformed));
    assert!(st.rejections.iter().all(|r| &*r.file == p.as_path()));
    assert!(
        st.rejections[0].detail.contains("zz-not-hex"),
        "{}",
        st.rejections[0].detail
    );
    assert!(
        st.rejections[5].detail.contains("NaN"),
        "{}",
        st.rejections[5].detail
    );
    let shown = st.rejections[0].to_string();
    assert!(
        shown.contains("bad.csv: line 3: bad_id: bad trace id"),
        "{shown}"
    );
}

#[test]
fn csv_missing_parent_column_is_an_error_naming_it() {
    let text = "TraceID,SpanID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano\naa,01,frontend,op,1,2\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "noparent.csv", text.as_bytes());
    match import::open(&p, &nezha()) {
        Err(ImportError::MissingColumn { column, path, .. }) => {
            assert_eq!(column, "ParentID");
            assert_eq!(path, p);
        }
        other => panic!(
            "expected a missing column error, got {:?}",
            other.map(|_| ())
        ),
    }
    // A mapping that says there is no parent column reads every span as a root.
    let f = Format::from_name("csv:preset=nezha,parent=-").expect("valid spec");
    let (spans, st) = read_all(&p, &f);
    assert_eq!((spans.len(), st.rejected_total()), (1, 0));
    assert_eq!(spans[0].parent_id, None);
}

#[test]
fn csv_unknown_columns_are_reported_not_fatal() {
    let text = "Extra1,TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,EndTimeUnixNano,Zone\n\
                x,aa,01,root,frontend-579b9bff58-t2dbm,op,1,2,eu\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "extra.csv", text.as_bytes());
    let (spans, st) = read_all(&p, &nezha());
    assert_eq!(spans.len(), 1);
    assert_eq!(
        st.ignored_columns,
        vec!["Extra1".to_string(), "Zone".to_string()]
    );
}

#[test]
fn csv_invalid_utf8_and_quotes_do_not_stop_the_file() {
    let mut text = HEADER.as_bytes().to_vec();
    text.extend_from_slice(b"aa,01,root,front\xff\xfeend-579b9bff58-t2dbm,op,1,2,1\n");
    text.extend_from_slice(b"aa,02,root,\"quoted, pod\",op,1,2,1\n");
    text.extend_from_slice(b"aa,03,root,frontend-579b9bff58-t2dbm,op,1,2,1\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "utf.csv", &text);
    let (spans, st) = read_all(&p, &nezha());
    assert_eq!(
        spans.iter().map(|s| s.span_id).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(spans[0].service, "quoted, pod");
    assert_eq!(st.rejected_for(RejectReason::Malformed), 1);
}

fn big_nezha(rows: usize) -> String {
    let mut s = String::from(HEADER);
    for i in 1..=rows {
        s.push_str(&format!(
            "{:032x},{:016x},root,frontend-579b9bff58-t2dbm,op,{},{},1\n",
            i,
            i,
            1_661_140_374_000_000_000u64 + i as u64,
            1_661_140_374_000_100_000u64 + i as u64
        ));
    }
    s
}

#[test]
fn truncated_gzip_is_one_truncated_rejection_after_the_good_rows() {
    let text = big_nezha(20_000);
    let gz = gzip(text.as_bytes());
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "cut.csv.gz", &gz[..gz.len() / 2]);
    let (spans, st) = read_all(&p, &nezha());
    assert!(
        spans.len() > 1000 && spans.len() < 20_000,
        "{} spans",
        spans.len()
    );
    assert_eq!(
        st.rejected_for(RejectReason::Truncated),
        1,
        "{:?}",
        st.rejections
    );
    assert_eq!(st.rejected_total(), 1);
    // The rejection names the line where the stream broke.
    let r = &st.rejections[0];
    assert!(
        matches!(r.location, Location::Line(l) if l as usize >= spans.len()),
        "{r}"
    );
    // Cut inside the gzip header: no spans, still no panic, still reported.
    let p = write(dir.path(), "tiny.csv.gz", &gz[..5]);
    let (spans, st) = read_all(&p, &nezha());
    assert!(spans.is_empty());
    assert_eq!(st.rejected_total(), 1);
}

#[test]
fn corrupt_gzip_never_panics() {
    let text = big_nezha(2_000);
    let mut gz = gzip(text.as_bytes());
    let n = gz.len();
    for i in (n / 3..n / 3 + 40).step_by(3) {
        gz[i] ^= 0x5a;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "corrupt.csv.gz", &gz);
    let (spans, st) = read_all(&p, &nezha());
    assert!(spans.len() < 2_000);
    assert!(st.rejected_total() >= 1);
}

#[test]
fn truncated_gzip_json_and_otlp() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Jaeger: 500 traces, cut.
    let mut s = String::from("{\"data\":[");
    for i in 0..500u64 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"traceID":"{:x}","spans":[{{"spanID":"{:x}","operationName":"op","startTime":{},"duration":10,"processID":"p1"}}],"processes":{{"p1":{{"serviceName":"svc"}}}}}}"#,
            i + 1,
            i + 1,
            1_600_000_000_000_000 + i
        ));
    }
    s.push_str("]}");
    let gz = gzip(s.as_bytes());
    let p = write(dir.path(), "cut.json.gz", &gz[..gz.len() * 2 / 3]);
    let (spans, st) = read_all(&p, &Format::Jaeger);
    assert!(!spans.is_empty() && spans.len() < 500, "{}", spans.len());
    assert_eq!(
        st.rejected_for(RejectReason::Truncated),
        1,
        "{:?}",
        st.rejections
    );
    // Plain JSON cut mid-way is truncated too.
    let p = write(dir.path(), "cut.json", &s.as_bytes()[..s.len() / 2]);
    let (spans, st) = read_all(&p, &Format::Jaeger);
    assert!(!spans.is_empty());
    assert_eq!(
        st.rejected_for(RejectReason::Truncated),
        1,
        "{:?}",
        st.rejections
    );

    // OTLP: 50 messages, gzip cut.
    let mut w = OtlpFileWriter::new(Vec::new());
    for i in 1..=50u64 {
        w.write_spans(&[span(i)]).expect("in memory");
    }
    let bytes = w.into_inner();
    let gz = gzip(&bytes);
    let p = write(dir.path(), "cut.otlp.gz", &gz[..gz.len() / 2]);
    let (spans, st) = read_all(&p, &Format::Otlp);
    assert!(spans.len() < 50);
    assert_eq!(
        st.rejected_for(RejectReason::Truncated),
        1,
        "{:?}",
        st.rejections
    );
}

fn span(i: u64) -> Span {
    Span {
        trace_id: u128::from(i),
        span_id: i,
        parent_id: None,
        service: "svc".into(),
        operation: "op".into(),
        kind: SpanKind::Server,
        start_ns: 1_000 + i,
        end_ns: 2_000 + i,
        status: SpanStatus::Unset,
    }
}

#[test]
fn otlp_invalid_message_is_skipped_by_its_length() {
    let mut w = OtlpFileWriter::new(Vec::new());
    w.write_spans(&[span(1), span(2)]).expect("in memory");
    let first_len = w.into_inner().len() as u64;
    let mut w = OtlpFileWriter::new(Vec::new());
    w.write_spans(&[span(1), span(2)]).expect("in memory");
    let mut bytes = w.into_inner();
    // An invalid protobuf message: field 1, wire type 2, length past the end.
    let garbage = [0x0a, 0x7f, 0x01, 0x02];
    bytes.extend_from_slice(&(garbage.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&garbage);
    let mut w = OtlpFileWriter::new(bytes);
    w.write_spans(&[span(3)]).expect("in memory");
    let mut bytes = w.into_inner();
    // A truncated last message.
    bytes.extend_from_slice(&100u32.to_be_bytes());
    bytes.extend_from_slice(&[0x0a; 10]);
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "bad.otlp", &bytes);
    let (spans, st) = read_all(&p, &Format::Otlp);
    assert_eq!(
        spans.iter().map(|s| s.span_id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(st.rejected_for(RejectReason::Malformed), 1);
    assert_eq!(st.rejected_for(RejectReason::Truncated), 1);
    let bad = &st.rejections[0];
    assert_eq!(bad.location, Location::Byte(first_len + 4), "{bad}");
    assert!(bad.detail.contains("invalid protobuf"), "{bad}");
    // A length prefix beyond the limit ends the file with one rejection.
    let mut bytes = u32::MAX.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0; 16]);
    let p = write(dir.path(), "huge.otlp", &bytes);
    let (spans, st) = read_all(&p, &Format::Otlp);
    assert!(spans.is_empty());
    assert_eq!(st.rejected_for(RejectReason::Malformed), 1);
}

#[test]
fn otlp_bad_spans_are_counted_per_reason() {
    let mut bad_ids = span(1);
    bad_ids.trace_id = 0;
    let mut backwards = span(2);
    backwards.end_ns = backwards.start_ns - 1;
    let mut years = span(3);
    years.end_ns = years.start_ns + 5 * 365 * 86_400 * 1_000_000_000;
    let mut no_time = span(4);
    no_time.start_ns = 0;
    let mut req =
        seer_traces::import::spans_to_otlp(&[span(5), bad_ids, backwards, years, no_time]);
    // A span id of the wrong length and a parent of the wrong length.
    let mut s6 = req.resource_spans[0].scope_spans[0].spans[0].clone();
    s6.span_id = vec![1, 2, 3];
    let mut s7 = req.resource_spans[0].scope_spans[0].spans[0].clone();
    s7.parent_span_id = vec![1; 9];
    req.resource_spans[0].scope_spans[0].spans.extend([s6, s7]);
    // A resource without service.name.
    let mut anon = seer_traces::import::spans_to_otlp(&[span(8)]);
    anon.resource_spans[0].resource = None;
    req.resource_spans.extend(anon.resource_spans);
    let mut w = OtlpFileWriter::new(Vec::new());
    w.write_request(&req).expect("in memory");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "spans.otlp", &w.into_inner());
    let (spans, st) = read_all(&p, &Format::Otlp);
    assert_eq!(spans.len(), 1);
    assert_eq!(
        st.rejected_by_reason(),
        vec![
            (RejectReason::BadId, 2),
            (RejectReason::BadParent, 1),
            (RejectReason::EndBeforeStart, 1),
            (RejectReason::TooLong, 1),
            (RejectReason::BadTime, 1),
            (RejectReason::NoService, 1),
        ]
    );
    assert!(
        st.rejections
            .iter()
            .all(|r| matches!(r.location, Location::Byte(b) if b > 4))
    );
}

#[test]
fn jaeger_bad_spans_and_syntax_errors() {
    let text = r#"{"data":[
      {"traceID":"1","spans":[
        {"spanID":"a","startTime":1600000000000000,"duration":5,"processID":"p1"},
        {"spanID":"","startTime":1600000000000000,"duration":5,"processID":"p1"},
        {"spanID":"b","startTime":"soon","duration":5,"processID":"p1"},
        {"spanID":"c","startTime":1600000000000000,"duration":-5,"processID":"p1"},
        {"spanID":"d","startTime":1600000000000000,"duration":100000000000000,"processID":"p1"},
        {"spanID":"e","startTime":1600000000000000,"duration":5,"processID":"nope"},
        {"spanID":"f","references":[{"refType":"CHILD_OF","spanID":"xyz"}],"startTime":1600000000000000,"duration":5,"processID":"p1"},
        {"spanID":"10","startTime":1600000000000000,"duration":5,"processID":"p1","tags":"not a list"},
        42
      ],"processes":{"p1":{"serviceName":"svc"}}},
      {"traceID":"2","nospans":true},
      {"traceID":"3","spans":[{"spanID":"1","startTime":1600000000000000,"duration":5,"process":{"serviceName":"inline"}}]},
      {"traceID":"4","spans":[{"spanID":"1","startTime":1600000000000000,"duration":5,"processID":"p1"}],"processes":{"p1":{"serviceName":"svc"}}} oops
    ]}"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "bad.json", text.as_bytes());
    let (spans, st) = read_all(&p, &Format::Jaeger);
    assert_eq!(
        spans.iter().map(|s| s.span_id).collect::<Vec<_>>(),
        vec![0xa, 0x10, 1, 1]
    );
    assert_eq!(spans[2].service, "inline");
    assert_eq!(
        st.rejected_by_reason(),
        vec![
            (RejectReason::BadId, 1),
            (RejectReason::BadParent, 1),
            (RejectReason::EndBeforeStart, 1),
            (RejectReason::TooLong, 1),
            (RejectReason::BadTime, 1),
            (RejectReason::NoService, 1),
            // the number 42, the trace without spans, the syntax error
            (RejectReason::Malformed, 3),
        ]
    );
    let syntax = st.rejections.last().expect("rejections");
    assert_eq!(syntax.location, Location::Line(15), "{syntax}");
    assert!(
        matches!(st.rejections[0].location, Location::LineByte(2, _)),
        "{}",
        st.rejections[0]
    );
}

#[test]
fn zipkin_bad_spans() {
    let text = r#"[
      {"traceId":"1","id":"1","timestamp":1600000000000000,"duration":5,"localEndpoint":{"serviceName":"a"}},
      {"traceId":"1","id":"2","timestamp":1600000000000000,"localEndpoint":{"serviceName":"a"}},
      {"traceId":"1","id":"3","timestamp":1600000000000000,"duration":5},
      {"traceId":"1","id":"4","parentId":"-1","timestamp":1600000000000000,"duration":5,"localEndpoint":{"serviceName":"a"}},
      {"traceId":"","id":"5","timestamp":1600000000000000,"duration":5,"localEndpoint":{"serviceName":"a"}},
      {"traceId":"1","id":"6","timestamp":-1,"duration":5,"localEndpoint":{"serviceName":"a"}},
      "junk",
      {"traceId":"1","id":"7","timestamp":1600000000000000,"duration":5,"localEndpoint":{"serviceName":"b"}}
    ]"#;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "z.json", text.as_bytes());
    let (spans, st) = read_all(&p, &Format::Zipkin);
    assert_eq!(
        spans.iter().map(|s| s.span_id).collect::<Vec<_>>(),
        vec![1, 7]
    );
    assert_eq!(
        st.rejected_by_reason(),
        vec![
            (RejectReason::BadId, 1),
            (RejectReason::BadParent, 1),
            (RejectReason::BadTime, 2),
            (RejectReason::NoService, 1),
            (RejectReason::Malformed, 1),
        ]
    );
}

#[test]
fn only_the_first_rejections_are_kept_in_detail() {
    let mut text = String::from(HEADER);
    for _ in 0..100 {
        text.push_str("aa,zz,root,frontend,op,1,2,1\n");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "many.csv", text.as_bytes());
    let (_, st) = read_all(&p, &nezha());
    assert_eq!(st.rejected_for(RejectReason::BadId), 100);
    assert_eq!(st.rejections.len(), import::MAX_KEPT_REJECTIONS);
    assert_eq!(st.rejection_rate(), 1.0);
}

#[test]
fn empty_and_binary_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = write(dir.path(), "empty", b"");
    let binary = write(
        dir.path(),
        "bin",
        &[0u8, 0xff, 0x13, 0x37, 0x1f, 0x8b, 0, 1, 2],
    );
    for f in [Format::Otlp, Format::Jaeger, Format::Zipkin, nezha()] {
        let (spans, st) = read_all(&empty, &f);
        assert!(spans.is_empty(), "{f:?}");
        // An empty JSON document is truncated; empty CSV and OTLP files are fine.
        assert!(st.rejected_total() <= 1, "{f:?}");
        if let Ok(mut r) = import::open(&binary, &f) {
            assert_eq!(r.by_ref().count(), 0, "{f:?}");
            assert!(r.stats().rejected_total() >= 1, "{f:?}: {:?}", r.stats());
        }
    }
}
