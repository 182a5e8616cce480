//! `KindResolver`: kinds inferred from parent/child services within a window,
//! whatever order parents and children come in; input order kept.

use proptest::prelude::*;
use seer_traces::import::{ImportStats, KindResolver, SpanReader};
use seer_traces::{Span, SpanKind};

/// A reader over a vector, for the adapter.
struct VecReader(std::vec::IntoIter<Span>, ImportStats);

impl Iterator for VecReader {
    type Item = Span;
    fn next(&mut self) -> Option<Span> {
        let s = self.0.next()?;
        self.1.spans += 1;
        Some(s)
    }
}

impl SpanReader for VecReader {
    fn stats(&self) -> &ImportStats {
        &self.1
    }
}

fn span(trace: u128, id: u64, parent: Option<u64>, service: &str) -> Span {
    Span {
        trace_id: trace,
        span_id: id,
        parent_id: parent,
        service: service.into(),
        operation: "op".into(),
        start_ns: 1,
        end_ns: 2,
        ..Default::default()
    }
}

fn resolve(spans: Vec<Span>, window: usize) -> (Vec<Span>, ImportStats) {
    let mut r = KindResolver::new(VecReader(spans.into_iter(), ImportStats::default()), window);
    let out: Vec<Span> = r.by_ref().collect();
    (out, r.stats().clone())
}

/// frontend: root(1) → call(2) → cart: serve(3) → internal(4); frontend: local(5).
fn trace(t: u128) -> Vec<Span> {
    vec![
        span(t, 1, None, "frontend"),
        span(t, 2, Some(1), "frontend"),
        span(t, 3, Some(2), "cart"),
        span(t, 4, Some(3), "cart"),
        span(t, 5, Some(1), "frontend"),
    ]
}

const EXPECTED: [SpanKind; 5] = [
    SpanKind::Server,
    SpanKind::Client,
    SpanKind::Server,
    SpanKind::Internal,
    SpanKind::Internal,
];

#[test]
fn parents_first_and_children_first_agree() {
    let (out, st) = resolve(trace(9), 16);
    assert_eq!(out.iter().map(|s| s.kind).collect::<Vec<_>>(), EXPECTED);
    assert_eq!(st.kinds_inferred, [2, 1, 2]);
    assert_eq!(st.spans, 5);
    let mut rev = trace(9);
    rev.reverse();
    let (out, _) = resolve(rev, 16);
    let mut kinds: Vec<SpanKind> = out.iter().map(|s| s.kind).collect();
    kinds.reverse();
    assert_eq!(kinds, EXPECTED);
    // Input order is kept.
    assert_eq!(
        out.iter().map(|s| s.span_id).collect::<Vec<_>>(),
        vec![5, 4, 3, 2, 1]
    );
}

#[test]
fn known_kinds_pass_through_and_ids_are_per_trace() {
    let mut spans = trace(1);
    spans[1].kind = SpanKind::Producer;
    // Same span ids in another trace, other services: no cross-talk.
    spans.extend(trace(2).into_iter().map(|mut s| {
        s.service = "solo".into();
        s
    }));
    let (out, _) = resolve(spans, 64);
    assert_eq!(out[1].kind, SpanKind::Producer);
    assert_eq!(out[0].kind, SpanKind::Server);
    let second: Vec<SpanKind> = out[5..].iter().map(|s| s.kind).collect();
    assert_eq!(
        second,
        [
            SpanKind::Server,
            SpanKind::Internal,
            SpanKind::Internal,
            SpanKind::Internal,
            SpanKind::Internal
        ]
    );
}

#[test]
fn window_bounds_what_is_linked() {
    // With a window of 1 nothing is linked: every span is a server span.
    let (out, _) = resolve(trace(3), 1);
    assert!(out.iter().all(|s| s.kind == SpanKind::Server));
    // Traces separated by more than the window still resolve on their own.
    let mut spans = Vec::new();
    for t in 1..=100 {
        spans.extend(trace(t));
    }
    let (out, _) = resolve(spans, 8);
    for chunk in out.chunks(5) {
        assert_eq!(chunk.iter().map(|s| s.kind).collect::<Vec<_>>(), EXPECTED);
    }
}

proptest! {
    /// Any order, any window ≥ trace size: the same kinds; output order = input order.
    #[test]
    fn order_does_not_matter(perm in Just((0..5usize).collect::<Vec<_>>()).prop_shuffle(), window in 5usize..64) {
        let base = trace(7);
        let shuffled: Vec<Span> = perm.iter().map(|&i| base[i].clone()).collect();
        let (out, _) = resolve(shuffled.clone(), window);
        prop_assert_eq!(out.iter().map(|s| s.span_id).collect::<Vec<_>>(), shuffled.iter().map(|s| s.span_id).collect::<Vec<_>>());
        for s in &out {
            prop_assert_eq!(s.kind, EXPECTED[(s.span_id - 1) as usize]);
        }
    }
}
