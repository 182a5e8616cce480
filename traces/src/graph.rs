//! The service graph (edges = cross-service calls, weighted by count) and its
//! deterministic topological order.
//!
//! Edges come from parent/child spans in different services. Spans arrive in end
//! order, so a child usually arrives before its parent: the builder remembers recent
//! span ids and pending children in two generations of bounded maps, so memory stays
//! bounded however long the input is (a parent that arrives more than two
//! generations after its child loses that one edge observation).
//!
//! Topological order (Kahn's algorithm): among services with no unordered callers,
//! take the one with the smallest name. When none remains (a cycle, e.g.
//! DeathStarBench's user ↔ social-graph), take the unordered service with the most
//! calls from already-ordered services, ties broken by the fewest calls from
//! unordered ones, then by name. The rule is stable: the same graph always gives the
//! same order, whatever order the spans came in.

use crate::span::Span;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Entries per generation of the span-id maps.
pub const GENERATION: usize = 1 << 20;

/// A span-id map that forgets: two generations of at most [`GENERATION`] entries;
/// when the newer one is full it becomes the older and the older is dropped, so
/// memory stays bounded however long the input is. The service graph and the
/// aggregator's call pairing keep what waits for a later span in these.
#[derive(Debug)]
pub(crate) struct Generations<V> {
    maps: [HashMap<u64, V>; 2],
}

impl<V> Default for Generations<V> {
    fn default() -> Self {
        Self {
            maps: [HashMap::new(), HashMap::new()],
        }
    }
}

impl<V> Generations<V> {
    /// The value under `id`, in either generation.
    pub(crate) fn get(&self, id: u64) -> Option<&V> {
        self.maps[0].get(&id).or_else(|| self.maps[1].get(&id))
    }

    /// Removes and returns the value under `id`, the newer generation's first.
    pub(crate) fn take(&mut self, id: u64) -> Option<V> {
        self.maps[0]
            .remove(&id)
            .or_else(|| self.maps[1].remove(&id))
    }

    /// The newer generation's value under `id`, made with `V::default()` when it
    /// has none.
    pub(crate) fn newest(&mut self, id: u64) -> &mut V
    where
        V: Default,
    {
        if self.maps[0].len() >= GENERATION {
            self.maps.swap(0, 1);
            self.maps[0].clear();
        }
        self.maps[0].entry(id).or_default()
    }

    /// Sets the value under `id` in the newer generation.
    pub(crate) fn insert(&mut self, id: u64, value: V)
    where
        V: Default,
    {
        *self.newest(id) = value;
    }
}

/// Builds a [`ServiceGraph`] from spans.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    edges: BTreeMap<(String, String), u64>,
    nodes: BTreeSet<String>,
    seen: Generations<u32>,
    pending: Generations<Vec<u32>>,
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl GraphBuilder {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), i);
        self.nodes.insert(name.to_string());
        i
    }

    fn edge(&mut self, from: u32, to: u32) {
        if from != to {
            let k = (
                self.names[from as usize].clone(),
                self.names[to as usize].clone(),
            );
            *self.edges.entry(k).or_insert(0) += 1;
        }
    }

    /// Adds one span.
    pub fn push(&mut self, span: &Span) {
        let me = self.id(&span.service);
        // Children that arrived before this span (in either generation).
        while let Some(kids) = self.pending.take(span.span_id) {
            for k in kids {
                self.edge(me, k);
            }
        }
        if let Some(p) = span.parent_id {
            match self.seen.get(p).copied() {
                Some(ps) => self.edge(ps, me),
                None => self.pending.newest(p).push(me),
            }
        }
        self.seen.insert(span.span_id, me);
    }

    /// Registers a service that has no calls (so it appears in the order).
    pub fn add_service(&mut self, name: &str) {
        self.id(name);
    }

    /// The graph so far.
    pub fn build(&self) -> ServiceGraph {
        ServiceGraph {
            nodes: self.nodes.iter().cloned().collect(),
            edges: self.edges.clone(),
        }
    }
}

/// Services and call counts between them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceGraph {
    /// Services, sorted by name.
    pub nodes: Vec<String>,
    /// (caller, callee) → calls.
    pub edges: BTreeMap<(String, String), u64>,
}

impl ServiceGraph {
    /// The deterministic topological order (see the module docs).
    pub fn topological_order(&self) -> Vec<String> {
        let n = self.nodes.len();
        let idx: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        // in_calls[v] = [(u, calls)]
        let mut ins: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
        for ((a, b), &c) in &self.edges {
            if let (Some(&u), Some(&v)) = (idx.get(a.as_str()), idx.get(b.as_str())) {
                ins[v].push((u, c));
            }
        }
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            // Nodes are sorted by name, so the first free one is the smallest name.
            let free = (0..n).find(|&v| !done[v] && ins[v].iter().all(|&(u, _)| done[u]));
            let pick = free.unwrap_or_else(|| {
                (0..n)
                    .filter(|&v| !done[v])
                    .max_by(|&x, &y| {
                        let key = |v: usize| {
                            let from_done: u64 =
                                ins[v].iter().filter(|e| done[e.0]).map(|e| e.1).sum();
                            let from_open: u64 =
                                ins[v].iter().filter(|e| !done[e.0]).map(|e| e.1).sum();
                            (from_done, std::cmp::Reverse(from_open))
                        };
                        // max_by keeps the last maximum; compare names reversed so the smallest name wins ties.
                        key(x)
                            .cmp(&key(y))
                            .then_with(|| self.nodes[y].cmp(&self.nodes[x]))
                    })
                    .unwrap_or(0)
            });
            done[pick] = true;
            order.push(self.nodes[pick].clone());
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::SpanKind;

    fn s(id: u64, parent: Option<u64>, svc: &str) -> Span {
        Span {
            trace_id: 1,
            span_id: id,
            parent_id: parent,
            service: svc.into(),
            operation: "op".into(),
            kind: SpanKind::Server,
            start_ns: 1,
            end_ns: 2,
            ..Default::default()
        }
    }

    #[test]
    fn edges_found_whichever_order_spans_arrive() {
        let spans = [
            s(1, None, "front"),
            s(2, Some(1), "cart"),
            s(3, Some(2), "redis"),
            s(4, Some(1), "ad"),
        ];
        let mut fwd = GraphBuilder::default();
        spans.iter().for_each(|x| fwd.push(x));
        let mut rev = GraphBuilder::default();
        spans.iter().rev().for_each(|x| rev.push(x));
        assert_eq!(fwd.build(), rev.build());
        let g = fwd.build();
        assert_eq!(g.edges.len(), 3);
        assert_eq!(g.topological_order(), ["front", "ad", "cart", "redis"]);
    }

    #[test]
    fn cycles_are_broken_stably() {
        // nginx -> user <-> social-graph, social-graph called more from nginx.
        let mut g = ServiceGraph::default();
        for n in ["nginx", "social-graph", "user"] {
            g.nodes.push(n.into());
        }
        g.edges.insert(("nginx".into(), "user".into()), 10);
        g.edges.insert(("nginx".into(), "social-graph".into()), 30);
        g.edges.insert(("user".into(), "social-graph".into()), 5);
        g.edges.insert(("social-graph".into(), "user".into()), 7);
        assert_eq!(g.topological_order(), ["nginx", "social-graph", "user"]);
    }

    #[test]
    fn generations_forget_only_what_two_generations_ago_was_new() {
        let mut g: Generations<u64> = Generations::default();
        let n = GENERATION as u64;
        for id in 0..n {
            g.insert(id, id * 2);
        }
        // The newer generation is full; the next insert makes it the older one.
        g.insert(n, 7);
        assert_eq!((g.get(0), g.get(n)), (Some(&0), Some(&7)));
        assert_eq!(g.take(5), Some(10));
        assert_eq!(g.take(5), None);
        for id in n + 1..2 * n + 1 {
            g.insert(id, 1);
        }
        // Another generation later the first ones are gone, the last ones kept.
        assert_eq!(g.get(0), None);
        assert_eq!(g.get(2 * n), Some(&1));
        // The newer generation's value comes first.
        *g.newest(n) = 9;
        assert_eq!((g.take(n), g.take(n)), (Some(9), Some(7)));
    }
}
