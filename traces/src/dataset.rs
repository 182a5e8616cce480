//! Datasets: a run of ticks with its labels and metadata, as one Parquet file.
//!
//! The file is a long table, one row per (tick, service) and per (tick, entry point),
//! so that pandas, polars and DuckDB read it without Seer:
//!
//! | column | type | rows |
//! | --- | --- | --- |
//! | `tick` | int64 | all (0-based from the first tick) |
//! | `start_ns` | int64 | all |
//! | `kind` | utf8 | `service` or `entry` |
//! | `name` | utf8 | service or entry-point name |
//! | `queue_mean`, `queue_max` | float32, uint32 | services (0 for entries) |
//! | `arrivals`, `completions`, `errors` | uint32 | all (entries: requests in `completions`) |
//! | `p50_ms`, `p95_ms`, `p99_ms` | float32 | NaN when nothing completed |
//! | `violation`, `violation_within` | bool | entries (null for services) |
//! | `culprit` | utf8 | services: the resource it is short of, null when none |
//! | `wait_mean`, `cpu_util` | float32 | services: waiting for a worker, share of workers computing; NaN when unknown (absent in older files) |
//! | `p99_window_ms` | float32 | entries: p99 over the QoS window ending at the tick (NaN for services; absent in older files) |
//! | `hop_mean` | float32 | services: calls to the service in the network (client minus server spans); NaN when unknown (absent in older files) |
//!
//! The metadata (service order, interval, queue source, QoS spec and targets,
//! horizon, origin) is JSON under the Parquet key-value key `seer.dataset`.

use crate::labels::{QosSpec, Resource};
use crate::tick::{EntryTick, QueueSource, ServiceTick};
use arrow::array::{
    Array, BooleanArray, BooleanBuilder, Float32Array, Int64Array, StringArray, StringBuilder,
    UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Format version written into every dataset; readers refuse newer ones.
pub const DATASET_VERSION: u32 = 1;

/// Parquet key-value key holding [`DatasetMeta`] as JSON.
pub const META_KEY: &str = "seer.dataset";

/// Errors reading or writing a dataset file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Opening or creating the file failed.
    #[error("failed to open {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The Parquet or Arrow layer failed.
    #[error("{path}: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file is Parquet but not a Seer dataset, or is inconsistent.
    #[error("{path} is not a valid Seer dataset: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// What a dataset is, besides its numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// [`DATASET_VERSION`] of the writer.
    pub version: u32,
    /// Tick interval, ns.
    pub interval_ns: u64,
    /// Start of tick 0, ns since the epoch.
    pub start_ns: u64,
    /// Number of ticks.
    pub n_ticks: usize,
    /// Services in the service graph's topological order (callers first).
    pub services: Vec<String>,
    /// Entry points (root operations), sorted by name.
    pub entries: Vec<String>,
    /// Where queue depth came from.
    pub queue_source: QueueSource,
    /// How the QoS targets were set.
    pub qos: QosSpec,
    /// The resolved p99 target of each entry point, ms (same order as `entries`).
    pub targets_ms: Vec<f64>,
    /// Requests each entry point's QoS window stretched back to hold
    /// ([`crate::tick::QosSpan`]; 0, and in older files: none).
    #[serde(default)]
    pub qos_min_requests: u64,
    /// Where the data came from: input files, a simulator topology and seed, ...
    pub origin: String,
    /// Spans that arrived after their ticks were finalised.
    pub late_spans: u64,
    /// Calls whose client span met its server span (0: no network time per
    /// service from the spans; absent in older files).
    #[serde(default)]
    pub calls_paired: u64,
}

/// A run of ticks, dense: `service[t * n_services + s]`, `entry[t * n_entries + e]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Metadata.
    pub meta: DatasetMeta,
    /// Per tick and service, in `meta.services` order.
    pub service: Vec<ServiceTick>,
    /// Per tick and entry point, in `meta.entries` order.
    pub entry: Vec<EntryTick>,
    /// Entry p99 over its target at this tick.
    pub violation: Vec<bool>,
    /// A violation of this entry point within the horizon after this tick
    /// (ticks `t+1 ..= t+ceil(h/interval)`).
    pub violation_within: Vec<bool>,
    /// Per tick and service: the resource it is short of, when it is a culprit.
    pub culprit: Vec<Option<Resource>>,
}

impl Dataset {
    /// Number of services.
    pub fn n_services(&self) -> usize {
        self.meta.services.len()
    }

    /// Number of entry points.
    pub fn n_entries(&self) -> usize {
        self.meta.entries.len()
    }

    /// Number of ticks.
    pub fn n_ticks(&self) -> usize {
        self.meta.n_ticks
    }

    /// The service row of tick `t`.
    pub fn services_at(&self, t: usize) -> &[ServiceTick] {
        let n = self.n_services();
        &self.service[t * n..(t + 1) * n]
    }

    /// The entry-point row of tick `t`.
    pub fn entries_at(&self, t: usize) -> &[EntryTick] {
        let n = self.n_entries();
        &self.entry[t * n..(t + 1) * n]
    }

    /// Whether any entry point violates its target at tick `t`.
    pub fn any_violation(&self, t: usize) -> bool {
        let n = self.n_entries();
        self.violation[t * n..(t + 1) * n].iter().any(|&v| v)
    }

    /// Whether any entry point violates within the horizon after tick `t`.
    pub fn any_violation_within(&self, t: usize) -> bool {
        let n = self.n_entries();
        self.violation_within[t * n..(t + 1) * n].iter().any(|&v| v)
    }

    /// The culprits of tick `t`: (service index, resource).
    pub fn culprits_at(&self, t: usize) -> impl Iterator<Item = (usize, Resource)> + '_ {
        let n = self.n_services();
        self.culprit[t * n..(t + 1) * n]
            .iter()
            .enumerate()
            .filter_map(|(s, r)| r.map(|r| (s, r)))
    }

    /// Index of a service by name.
    pub fn service_index(&self, name: &str) -> Option<usize> {
        self.meta.services.iter().position(|s| s == name)
    }

    /// The ticks `range` as a dataset of their own (clamped to the data; the
    /// start time moves with the first tick, targets and labels are kept).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        let end = range.end.min(self.n_ticks());
        let start = range.start.min(end);
        let (ns, ne) = (self.n_services(), self.n_entries());
        let mut meta = self.meta.clone();
        meta.n_ticks = end - start;
        meta.start_ns = self.meta.start_ns + start as u64 * self.meta.interval_ns;
        Dataset {
            meta,
            service: self.service[start * ns..end * ns].to_vec(),
            entry: self.entry[start * ne..end * ne].to_vec(),
            violation: self.violation[start * ne..end * ne].to_vec(),
            violation_within: self.violation_within[start * ne..end * ne].to_vec(),
            culprit: self.culprit[start * ns..end * ns].to_vec(),
        }
    }

    /// Checks that every dense vector has the length the metadata implies.
    pub fn check_shape(&self) -> Result<(), String> {
        let (t, s, e) = (self.n_ticks(), self.n_services(), self.n_entries());
        let want = [
            ("service", self.service.len(), t * s),
            ("entry", self.entry.len(), t * e),
            ("violation", self.violation.len(), t * e),
            ("violation_within", self.violation_within.len(), t * e),
            ("culprit", self.culprit.len(), t * s),
            ("targets_ms", self.meta.targets_ms.len(), e),
        ];
        for (name, got, expect) in want {
            if got != expect {
                return Err(format!("{name} has {got} values, expected {expect}"));
            }
        }
        Ok(())
    }

    /// Writes the dataset as Parquet (see the module docs for the layout).
    pub fn write_parquet(&self, path: &Path) -> Result<(), DatasetError> {
        self.check_shape()
            .map_err(|message| DatasetError::Invalid {
                path: path.into(),
                message,
            })?;
        let pq = |e: &dyn std::fmt::Display| DatasetError::Parquet {
            path: path.into(),
            message: e.to_string(),
        };
        let meta_json = serde_json::to_string(&self.meta).map_err(|e| pq(&e))?;
        let props = WriterProperties::builder()
            .set_key_value_metadata(Some(vec![KeyValue::new(META_KEY.to_string(), meta_json)]))
            .build();
        let file = File::create(path).map_err(|source| DatasetError::Io {
            path: path.into(),
            source,
        })?;
        let schema = Arc::new(schema());
        let mut writer =
            ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| pq(&e))?;
        // Write in chunks of ticks so memory stays bounded for long runs.
        const CHUNK: usize = 4096;
        let mut t0 = 0;
        while t0 < self.n_ticks() {
            let t1 = (t0 + CHUNK).min(self.n_ticks());
            let batch = self.batch(schema.clone(), t0..t1).map_err(|e| pq(&e))?;
            writer.write(&batch).map_err(|e| pq(&e))?;
            t0 = t1;
        }
        writer.close().map_err(|e| pq(&e))?;
        Ok(())
    }

    fn batch(
        &self,
        schema: Arc<Schema>,
        ticks: std::ops::Range<usize>,
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        let rows = ticks.len() * (self.n_services() + self.n_entries());
        let mut tick = Vec::with_capacity(rows);
        let mut start = Vec::with_capacity(rows);
        let mut kind = StringBuilder::new();
        let mut name = StringBuilder::new();
        let (mut qmean, mut qmax, mut arr, mut comp, mut err) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut p50, mut p95, mut p99) = (Vec::new(), Vec::new(), Vec::new());
        let (mut wait, mut cpu, mut p99w, mut hop) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut viol = BooleanBuilder::new();
        let mut within = BooleanBuilder::new();
        let mut culprit = StringBuilder::new();
        let iv = self.meta.interval_ns as i64;
        for t in ticks {
            let st = self.meta.start_ns as i64 + t as i64 * iv;
            for (s, row) in self.services_at(t).iter().enumerate() {
                tick.push(t as i64);
                start.push(st);
                kind.append_value("service");
                name.append_value(&self.meta.services[s]);
                qmean.push(row.queue_mean);
                qmax.push(row.queue_max);
                arr.push(row.arrivals);
                comp.push(row.completions);
                err.push(row.errors);
                p50.push(row.p50_ms);
                p95.push(row.p95_ms);
                p99.push(row.p99_ms);
                wait.push(row.wait_mean);
                cpu.push(row.cpu_util);
                p99w.push(f32::NAN);
                hop.push(row.hop_mean);
                viol.append_null();
                within.append_null();
                match self.culprit[t * self.n_services() + s] {
                    Some(r) => culprit.append_value(r.name()),
                    None => culprit.append_null(),
                }
            }
            for (e, row) in self.entries_at(t).iter().enumerate() {
                let i = t * self.n_entries() + e;
                tick.push(t as i64);
                start.push(st);
                kind.append_value("entry");
                name.append_value(&self.meta.entries[e]);
                qmean.push(0.0);
                qmax.push(0);
                arr.push(row.requests);
                comp.push(row.requests);
                err.push(row.errors);
                p50.push(f32::NAN);
                p95.push(f32::NAN);
                p99.push(row.p99_ms);
                wait.push(f32::NAN);
                cpu.push(f32::NAN);
                p99w.push(row.p99_window_ms);
                hop.push(f32::NAN);
                viol.append_value(self.violation[i]);
                within.append_value(self.violation_within[i]);
                culprit.append_null();
            }
        }
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(tick)),
                Arc::new(Int64Array::from(start)),
                Arc::new(kind.finish()),
                Arc::new(name.finish()),
                Arc::new(Float32Array::from(qmean)),
                Arc::new(UInt32Array::from(qmax)),
                Arc::new(UInt32Array::from(arr)),
                Arc::new(UInt32Array::from(comp)),
                Arc::new(UInt32Array::from(err)),
                Arc::new(Float32Array::from(p50)),
                Arc::new(Float32Array::from(p95)),
                Arc::new(Float32Array::from(p99)),
                Arc::new(viol.finish()),
                Arc::new(within.finish()),
                Arc::new(culprit.finish()),
                Arc::new(Float32Array::from(wait)),
                Arc::new(Float32Array::from(cpu)),
                Arc::new(Float32Array::from(p99w)),
                Arc::new(Float32Array::from(hop)),
            ],
        )
    }

    /// Reads a dataset written by [`Dataset::write_parquet`].
    pub fn read_parquet(path: &Path) -> Result<Dataset, DatasetError> {
        let invalid = |message: String| DatasetError::Invalid {
            path: path.into(),
            message,
        };
        let pq = |e: &dyn std::fmt::Display| DatasetError::Parquet {
            path: path.into(),
            message: e.to_string(),
        };
        let file = File::open(path).map_err(|source| DatasetError::Io {
            path: path.into(),
            source,
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq(&e))?;
        let meta_json = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == META_KEY))
            .and_then(|k| k.value.clone())
            .ok_or_else(|| invalid(format!("no {META_KEY} metadata")))?;
        let meta: DatasetMeta = serde_json::from_str(&meta_json)
            .map_err(|e| invalid(format!("bad {META_KEY} metadata: {e}")))?;
        if meta.version > DATASET_VERSION {
            return Err(invalid(format!(
                "written by dataset format version {}, this build reads up to {DATASET_VERSION}",
                meta.version
            )));
        }
        let (nt, ns, ne) = (meta.n_ticks, meta.services.len(), meta.entries.len());
        // A corrupt header must not make us allocate terabytes.
        if nt.checked_mul(ns.max(ne)).is_none_or(|c| c > 1 << 32) {
            return Err(invalid("implausible size in metadata".into()));
        }
        let mut ds = Dataset {
            service: vec![ServiceTick::default(); nt * ns],
            entry: vec![EntryTick::default(); nt * ne],
            violation: vec![false; nt * ne],
            violation_within: vec![false; nt * ne],
            culprit: vec![None; nt * ns],
            meta,
        };
        let index = |names: &[String]| -> HashMap<String, usize> {
            names
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i))
                .collect()
        };
        let (svc_index, ent_index) = (index(&ds.meta.services), index(&ds.meta.entries));
        let reader = builder.build().map_err(|e| pq(&e))?;
        for batch in reader {
            let b = batch.map_err(|e| pq(&e))?;
            let col = |n: &str| {
                b.column_by_name(n)
                    .ok_or_else(|| invalid(format!("missing column {n}")))
            };
            macro_rules! typed {
                ($n:expr, $t:ty) => {
                    col($n)?
                        .as_any()
                        .downcast_ref::<$t>()
                        .ok_or_else(|| invalid(format!("column {} has the wrong type", $n)))?
                };
            }
            let tick = typed!("tick", Int64Array);
            let kind = typed!("kind", StringArray);
            let name = typed!("name", StringArray);
            let qmean = typed!("queue_mean", Float32Array);
            let qmax = typed!("queue_max", UInt32Array);
            let arr = typed!("arrivals", UInt32Array);
            let comp = typed!("completions", UInt32Array);
            let err = typed!("errors", UInt32Array);
            let p50 = typed!("p50_ms", Float32Array);
            let p95 = typed!("p95_ms", Float32Array);
            let p99 = typed!("p99_ms", Float32Array);
            let viol = typed!("violation", BooleanArray);
            let within = typed!("violation_within", BooleanArray);
            let culprit = typed!("culprit", StringArray);
            // Added in a later writer: files without them read as unknown (NaN).
            let optional = |n: &str| -> Result<Option<&Float32Array>, DatasetError> {
                match b.column_by_name(n) {
                    None => Ok(None),
                    Some(c) => c
                        .as_any()
                        .downcast_ref::<Float32Array>()
                        .map(Some)
                        .ok_or_else(|| invalid(format!("column {n} has the wrong type"))),
                }
            };
            let wait = optional("wait_mean")?;
            let cpu = optional("cpu_util")?;
            let p99w = optional("p99_window_ms")?;
            let hop = optional("hop_mean")?;
            let or_nan = |c: Option<&Float32Array>, r: usize| c.map_or(f32::NAN, |c| c.value(r));
            for r in 0..b.num_rows() {
                let t = usize::try_from(tick.value(r))
                    .ok()
                    .filter(|&t| t < nt)
                    .ok_or_else(|| invalid(format!("tick {} out of range", tick.value(r))))?;
                match kind.value(r) {
                    "service" => {
                        let s = *svc_index.get(name.value(r)).ok_or_else(|| {
                            invalid(format!("unknown service {:?}", name.value(r)))
                        })?;
                        ds.service[t * ns + s] = ServiceTick {
                            queue_mean: qmean.value(r),
                            queue_max: qmax.value(r),
                            arrivals: arr.value(r),
                            completions: comp.value(r),
                            errors: err.value(r),
                            p50_ms: p50.value(r),
                            p95_ms: p95.value(r),
                            p99_ms: p99.value(r),
                            wait_mean: or_nan(wait, r),
                            cpu_util: or_nan(cpu, r),
                            hop_mean: or_nan(hop, r),
                        };
                        if culprit.is_valid(r) {
                            let res: Resource = culprit
                                .value(r)
                                .parse()
                                .map_err(|e| invalid(format!("{e}")))?;
                            ds.culprit[t * ns + s] = Some(res);
                        }
                    }
                    "entry" => {
                        let e = *ent_index
                            .get(name.value(r))
                            .ok_or_else(|| invalid(format!("unknown entry {:?}", name.value(r))))?;
                        ds.entry[t * ne + e] = EntryTick {
                            requests: comp.value(r),
                            errors: err.value(r),
                            p99_ms: p99.value(r),
                            p99_window_ms: or_nan(p99w, r),
                        };
                        ds.violation[t * ne + e] = viol.is_valid(r) && viol.value(r);
                        ds.violation_within[t * ne + e] = within.is_valid(r) && within.value(r);
                    }
                    other => return Err(invalid(format!("unknown row kind {other:?}"))),
                }
            }
        }
        Ok(ds)
    }
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("tick", DataType::Int64, false),
        Field::new("start_ns", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("queue_mean", DataType::Float32, false),
        Field::new("queue_max", DataType::UInt32, false),
        Field::new("arrivals", DataType::UInt32, false),
        Field::new("completions", DataType::UInt32, false),
        Field::new("errors", DataType::UInt32, false),
        Field::new("p50_ms", DataType::Float32, false),
        Field::new("p95_ms", DataType::Float32, false),
        Field::new("p99_ms", DataType::Float32, false),
        Field::new("violation", DataType::Boolean, true),
        Field::new("violation_within", DataType::Boolean, true),
        Field::new("culprit", DataType::Utf8, true),
        Field::new("wait_mean", DataType::Float32, false),
        Field::new("cpu_util", DataType::Float32, false),
        Field::new("p99_window_ms", DataType::Float32, false),
        Field::new("hop_mean", DataType::Float32, false),
    ])
}
