//! Seer's trace pipeline: the span model, importers, the OTLP receiver, tick
//! aggregation, the service graph, QoS labels and Parquet datasets.
//!
//! Everything in Seer starts from one signal built here: per-service queue depth and
//! latency every 100 ms, with end-to-end QoS labels.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod aggregate;
pub mod analysis;
pub mod dataset;
pub mod exporter;
pub mod faults;
pub mod graph;
pub mod import;
pub mod labels;
pub mod latency;
pub mod pipeline;
pub mod receiver;
pub mod span;
pub mod tick;

pub use dataset::{Dataset, DatasetError, DatasetMeta};
pub use labels::{Culprit, QosSpec, Resource};
pub use pipeline::{Pipeline, PipelineConfig};
pub use span::{RejectReason, Span, SpanKind, SpanStatus};
pub use tick::{EntryTick, QueueSource, ServiceTick, Tick};
