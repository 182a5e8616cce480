//! Inferring span kinds for sources that do not record them (Nezha CSV).
//!
//! [`KindResolver`] holds a sliding window of spans (constant memory) and links
//! each span with its parent and children inside the window, whichever comes
//! first. When a span leaves the window, an [`SpanKind::Unspecified`] kind is
//! resolved from its neighbours:
//!
//! 1. a span whose parent is in the same service and that has a child in another
//!    service is a `Client` (an outgoing call);
//! 2. another span whose parent is in the same service is `Internal`;
//! 3. every other span (a root, a parent in another service, or a parent not
//!    found in the window) is a `Server`: the request as the service received it.
//!
//! A span with no parent in its own service but a child in another (a server span
//! of an instrumentation that records no client spans) stays a `Server`, so the
//! service's queue depth still counts it. Spans leave in input order.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use super::{ImportStats, SpanReader};
use crate::span::{Span, SpanKind};

/// Spans held by [`open`](super::open)'s resolver: traces are contiguous in
/// Nezha files, so this comfortably covers a trace and its neighbours.
pub const DEFAULT_KIND_WINDOW: usize = 65_536;

/// How often (in spans) the resolver copies the inner reader's statistics.
const STATS_EVERY: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parent {
    /// Root, or the parent has not been seen in the window.
    Unknown,
    Same,
    Other,
}

struct Slot {
    span: Span,
    parent: Parent,
    cross_child: bool,
}

type Key = (u128, u64);

/// Ids are random bits already: fold them instead of hashing with SipHash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

type IdMap<V> = HashMap<Key, V, BuildHasherDefault<IdHasher>>;

/// A [`SpanReader`] adapter that fills in [`SpanKind::Unspecified`] kinds (see
/// the module documentation for the rules) within a window of `window` spans.
/// Spans that already have a kind pass through unchanged.
pub struct KindResolver<R> {
    inner: R,
    window: usize,
    slots: VecDeque<Slot>,
    /// Sequence number of `slots[0]`.
    base: u64,
    /// Span → its sequence number, for spans in the window.
    index: IdMap<u64>,
    /// Parent span → sequence numbers of children that arrived before it.
    waiting: IdMap<Vec<u64>>,
    inner_done: bool,
    inferred: [u64; 3],
    stats: ImportStats,
    emitted: u64,
}

impl<R: SpanReader> KindResolver<R> {
    /// Wraps `inner`, holding at most `window` spans (at least 1).
    pub fn new(inner: R, window: usize) -> Self {
        let window = window.max(1);
        KindResolver {
            inner,
            window,
            slots: VecDeque::with_capacity(window.min(DEFAULT_KIND_WINDOW)),
            base: 0,
            index: IdMap::default(),
            waiting: IdMap::default(),
            inner_done: false,
            inferred: [0; 3],
            stats: ImportStats::default(),
            emitted: 0,
        }
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn slot(&mut self, seq: u64) -> Option<&mut Slot> {
        let i = seq.checked_sub(self.base)?;
        self.slots.get_mut(usize::try_from(i).ok()?)
    }

    fn add(&mut self, span: Span) {
        let seq = self.base + self.slots.len() as u64;
        let key = (span.trace_id, span.span_id);
        let mut slot = Slot {
            span,
            parent: Parent::Unknown,
            cross_child: false,
        };
        if let Some(p) = slot.span.parent_id {
            let pkey = (slot.span.trace_id, p);
            match self.index.get(&pkey).copied() {
                Some(pseq) => {
                    let service = slot.span.service.as_str();
                    let mut rel = Parent::Unknown;
                    if let Some(parent) = self.slot(pseq) {
                        if parent.span.service == service {
                            rel = Parent::Same;
                        } else {
                            rel = Parent::Other;
                            parent.cross_child = true;
                        }
                    }
                    slot.parent = rel;
                }
                None => self.waiting.entry(pkey).or_default().push(seq),
            }
        }
        if let Some(children) = self.waiting.remove(&key) {
            let mut cross = false;
            for c in children {
                if let Some(child) = self.slot(c) {
                    if child.span.service == slot.span.service {
                        child.parent = Parent::Same;
                    } else {
                        child.parent = Parent::Other;
                        cross = true;
                    }
                }
            }
            slot.cross_child |= cross;
        }
        self.index.insert(key, seq);
        self.slots.push_back(slot);
    }

    fn evict(&mut self) -> Option<Span> {
        let slot = self.slots.pop_front()?;
        let seq = self.base;
        self.base += 1;
        let key = (slot.span.trace_id, slot.span.span_id);
        if self.index.get(&key) == Some(&seq) {
            self.index.remove(&key);
        }
        if let (Parent::Unknown, Some(p)) = (slot.parent, slot.span.parent_id) {
            let pkey = (slot.span.trace_id, p);
            if let Some(list) = self.waiting.get_mut(&pkey) {
                list.retain(|&c| c != seq);
                if list.is_empty() {
                    self.waiting.remove(&pkey);
                }
            }
        }
        let mut span = slot.span;
        if span.kind == SpanKind::Unspecified {
            let (kind, i) = match (slot.parent, slot.cross_child) {
                (Parent::Same, true) => (SpanKind::Client, 1),
                (Parent::Same, false) => (SpanKind::Internal, 2),
                _ => (SpanKind::Server, 0),
            };
            span.kind = kind;
            self.inferred[i] += 1;
        }
        Some(span)
    }

    fn refresh(&mut self) {
        self.stats.clone_from(self.inner.stats());
        self.stats.kinds_inferred = self.inferred;
    }
}

impl<R: SpanReader> Iterator for KindResolver<R> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        while !self.inner_done && self.slots.len() < self.window {
            match self.inner.next() {
                Some(s) => self.add(s),
                None => self.inner_done = true,
            }
        }
        let out = self.evict();
        self.emitted += 1;
        if out.is_none() || self.emitted.is_multiple_of(STATS_EVERY) {
            self.refresh();
        }
        out
    }
}

impl<R: SpanReader> SpanReader for KindResolver<R> {
    fn stats(&self) -> &ImportStats {
        &self.stats
    }
}
