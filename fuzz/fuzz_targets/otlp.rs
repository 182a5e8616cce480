//! OTLP: the fast wire decoder never panics, accepts whatever prost accepts and
//! then yields exactly the spans `spans_from_otlp` makes of prost's decoding; the
//! length-prefixed file reader never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use seer_traces_fuzz::import::{ImportStats, OtlpFileReader, decode_otlp_request, spans_from_otlp};
use std::path::Path;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let src: Arc<Path> = Arc::from(Path::new("fuzz.otlp"));
    let mut fast = Vec::new();
    let mut fast_stats = ImportStats::default();
    let fast_ok = decode_otlp_request(data, &src, &mut fast, &mut fast_stats).is_ok();
    for s in &fast {
        assert_eq!(s.validate(), Ok(()));
    }
    if let Ok(req) = ExportTraceServiceRequest::decode(data) {
        assert!(fast_ok, "prost decodes what the fast decoder rejected");
        let mut slow = Vec::new();
        let mut slow_stats = ImportStats::default();
        spans_from_otlp(&req, &src, &mut |s| slow.push(s), &mut slow_stats);
        assert_eq!(fast, slow);
        assert_eq!(fast_stats.rejected, slow_stats.rejected);
    }
    if let Ok(r) =
        OtlpFileReader::from_reader(Path::new("fuzz.otlp"), std::io::Cursor::new(data.to_vec()))
    {
        for s in r {
            assert_eq!(s.validate(), Ok(()));
        }
    }
});
