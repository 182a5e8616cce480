//! Span CSV with the Nezha and the generic mapping: never panics, every span
//! valid, counts consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seer_traces_fuzz::import::{CsvMapping, CsvReader, SpanReader};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    for mapping in [CsvMapping::nezha(), CsvMapping::generic()] {
        let Ok(mut r) = CsvReader::from_reader(
            Path::new("fuzz.csv"),
            std::io::Cursor::new(data.to_vec()),
            mapping,
        ) else {
            continue;
        };
        let mut n = 0u64;
        for s in r.by_ref() {
            assert_eq!(s.validate(), Ok(()));
            n += 1;
        }
        assert_eq!(r.stats().spans, n);
    }
});
