//! Jaeger JSON (and Zipkin v2 JSON, which shares the streaming machinery): never
//! panics, every span valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seer_traces_fuzz::import::{ImportStats, read_jaeger, read_zipkin};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let mut stats = ImportStats::default();
    let mut n = 0u64;
    read_jaeger(
        data,
        Path::new("fuzz.json"),
        &mut |s| {
            assert_eq!(s.validate(), Ok(()));
            n += 1;
        },
        &mut stats,
    );
    assert_eq!(stats.spans, n);
    let mut stats = ImportStats::default();
    read_zipkin(
        data,
        Path::new("fuzz.json"),
        &mut |s| assert_eq!(s.validate(), Ok(())),
        &mut stats,
    );
});
