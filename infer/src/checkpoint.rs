//! The checkpoint file of a trained model, readable without libtorch.
//!
//! File layout (all integers little-endian):
//!
//! | offset | size | what |
//! | --- | --- | --- |
//! | 0 | 8 | magic `SEERMODL` |
//! | 8 | 4 | format version ([`FORMAT_VERSION`]) |
//! | 12 | 8 | header length `H` |
//! | 20 | `H` | [`Header`] as JSON: architecture, service order, channels, normalisation, horizon, training-data digest |
//! | 20+H | 8 | weights length `L` |
//! | 28+H | `L` | weights, safetensors (f32) |
//! | 28+H+L | 4 | CRC-32 of every byte before it |
//!
//! Loading checks the magic, version, lengths (the file must end exactly after the
//! CRC), CRC, header and then that the weights have exactly the names and shapes
//! the header's architecture has ([`ModelConfig::weight_shapes`]) and that every
//! weight is finite, all before the caller sees a single weight: a bad file never
//! yields a half-loaded model.

use crate::config::ModelConfig;
use crate::features::{Channel, FeatureError, Normalizer, Series, horizon_ticks};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use seer_traces::Dataset;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// File magic.
pub const MAGIC: &[u8; 8] = b"SEERMODL";
/// Checkpoint format version written; readers accept exactly this one.
pub const FORMAT_VERSION: u32 = 1;

/// Errors saving or loading a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("failed to {op} {path}: {error}")]
    Io {
        /// read or write.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause (in the message, not repeated as a source).
        error: std::io::Error,
    },
    /// Not a Seer checkpoint.
    #[error("{path} is not a Seer model checkpoint (bad magic {found:02x?})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// Written by another format version.
    #[error(
        "{path} has checkpoint format version {found}, this build reads version {FORMAT_VERSION}"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
    },
    /// Shorter or longer than its lengths say.
    #[error("{path} is truncated or has trailing bytes: {detail}")]
    Length {
        /// The file.
        path: PathBuf,
        /// Which length did not fit.
        detail: String,
    },
    /// The CRC does not match: the file is corrupt.
    #[error(
        "{path} is corrupt: CRC-32 {computed:#010x} of the contents does not match the stored {stored:#010x}"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Stored CRC.
        stored: u32,
        /// CRC of the contents.
        computed: u32,
    },
    /// The header JSON is invalid.
    #[error("{path}: invalid header: {message}")]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The weights do not fit the header's architecture.
    #[error("{path}: weights do not match the {arch} architecture in the header: {message}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The architecture named in the header.
        arch: String,
        /// The first mismatch.
        message: String,
    },
    /// Building the network or serialising weights failed.
    #[error("{path}: {message}")]
    Model {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

/// How a model was trained, for `ModelInfo` and reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainSummary {
    /// Epochs run.
    pub epochs: usize,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// Validation loss of the kept weights.
    pub validation_loss: f64,
    /// Validation accuracy (tick label = top class) of the kept weights.
    pub validation_accuracy: f64,
    /// Validation culprit top-1 of the kept weights (0 in older files).
    #[serde(default)]
    pub validation_culprit: f64,
    /// Training samples.
    pub train_samples: usize,
    /// Validation samples.
    pub validation_samples: usize,
    /// Seed.
    pub seed: u64,
    /// Wall time of training, seconds.
    pub seconds: f64,
    /// Set when fine-tuned from another checkpoint: its model id.
    pub parent: Option<String>,
}

/// Everything about a model except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Network shape.
    pub model: ModelConfig,
    /// Services in model order (topological order of the training data).
    pub services: Vec<String>,
    /// Normalisation learned on the training data.
    pub normalizer: Normalizer,
    /// Prediction horizon, ns.
    pub horizon_ns: u64,
    /// Tick interval, ns.
    pub interval_ns: u64,
    /// SHA-256 (hex) of the training data.
    pub data_digest: String,
    /// Training summary.
    pub train: TrainSummary,
    /// The program that wrote it.
    pub written_by: String,
}

impl Header {
    /// The header of a model not trained yet: identity normalisation (mean 0,
    /// deviation 1), 100 ms ticks and horizon, no training data. For tests,
    /// benchmarks and hand-made models.
    pub fn untrained(
        model: ModelConfig,
        services: Vec<String>,
        channels: Vec<Channel>,
        written_by: &str,
    ) -> Header {
        let n = services.len() * channels.len();
        Header {
            model,
            normalizer: Normalizer {
                channels,
                services: services.clone(),
                mean: vec![0.0; n],
                std: vec![1.0; n],
            },
            services,
            horizon_ns: 100_000_000,
            interval_ns: 100_000_000,
            data_digest: String::new(),
            train: TrainSummary::default(),
            written_by: written_by.into(),
        }
    }

    /// Channels the model reads.
    pub fn channels(&self) -> &[Channel] {
        &self.normalizer.channels
    }

    /// The horizon in ticks.
    pub fn horizon_ticks(&self) -> usize {
        horizon_ticks(self.horizon_ns, self.interval_ns)
    }

    /// `datasets` as this model reads them: its services, channels,
    /// normalisation and horizon.
    pub fn series<'a>(
        &self,
        datasets: impl IntoIterator<Item = &'a Dataset>,
    ) -> Result<Vec<Series>, FeatureError> {
        let h = self.horizon_ticks();
        datasets
            .into_iter()
            .map(|d| Series::new(d, &self.normalizer, h))
            .collect()
    }

    /// Why a model with header `who` cannot rank the culprits of this model's
    /// alarms ([`crate::engine::combine`]), or `None` when it can: the two must
    /// read the same services in the same order, at the same tick and horizon.
    pub fn pair_error(&self, who: &Header) -> Option<String> {
        if self.services != who.services {
            return Some(format!(
                "the two models must read the same services in the same order \
                 ({} and {} services)",
                self.services.len(),
                who.services.len()
            ));
        }
        if self.interval_ns != who.interval_ns || self.horizon_ns != who.horizon_ns {
            return Some(format!(
                "the two models must have the same tick and horizon \
                 ({} ms / {} ms and {} ms / {} ms)",
                self.interval_ns / 1_000_000,
                self.horizon_ns / 1_000_000,
                who.interval_ns / 1_000_000,
                who.horizon_ns / 1_000_000
            ));
        }
        None
    }

    /// Checks that the header is consistent in itself.
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate().map_err(|e| e.to_string())?;
        let (ns, nc) = (self.services.len(), self.normalizer.channels.len());
        if ns != self.model.n_services {
            return Err(format!(
                "{ns} service names for a model of {} services",
                self.model.n_services
            ));
        }
        if nc != self.model.n_channels {
            return Err(format!(
                "{nc} channels for a model of {} channels",
                self.model.n_channels
            ));
        }
        if self.normalizer.services != self.services {
            return Err("normalisation services differ from the model's".into());
        }
        let want = ns * nc;
        if self.normalizer.mean.len() != want || self.normalizer.std.len() != want {
            return Err(format!(
                "normalisation has {} means and {} deviations, expected {want}",
                self.normalizer.mean.len(),
                self.normalizer.std.len()
            ));
        }
        if self
            .normalizer
            .std
            .iter()
            .any(|s| !s.is_finite() || *s <= 0.0)
            || self.normalizer.mean.iter().any(|m| !m.is_finite())
        {
            return Err("normalisation has non-finite or non-positive values".into());
        }
        if self.interval_ns == 0 {
            return Err("tick interval is 0".into());
        }
        Ok(())
    }
}

/// One weight tensor: name, shape, values (row-major).
pub type NamedWeight = (String, Vec<usize>, Vec<f32>);

/// A checkpoint read and checked in full.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The header.
    pub header: Header,
    /// Every weight the header's architecture has, sorted by name.
    pub weights: Vec<NamedWeight>,
    /// [`model_id`] of the file's bytes.
    pub id: String,
}

impl Checkpoint {
    /// A checkpoint of `header` whose every weight is `value(name, index)`
    /// (names and shapes from the header's configuration), checked.
    pub fn with_weights(
        header: Header,
        mut value: impl FnMut(&str, usize) -> f32,
    ) -> Result<Checkpoint, String> {
        let weights: Vec<NamedWeight> = header
            .model
            .weight_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let v = (0..shape.iter().product())
                    .map(|i| value(&name, i))
                    .collect();
                (name, shape, v)
            })
            .collect();
        let ck = Checkpoint {
            header,
            weights,
            id: String::new(),
        };
        ck.check()?;
        Ok(ck)
    }

    /// Reads and checks a checkpoint file.
    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|error| CheckpointError::Io {
            op: "read",
            path: path.into(),
            error,
        })?;
        decode(&bytes, path)
    }

    /// The weight called `name`, if the checkpoint has it.
    pub fn weight(&self, name: &str) -> Option<&NamedWeight> {
        self.weights
            .binary_search_by(|w| w.0.as_str().cmp(name))
            .ok()
            .map(|i| &self.weights[i])
    }
}

impl Checkpoint {
    /// Checks what [`decode`] checks of a checkpoint built in memory: a
    /// consistent header, and exactly the weights its configuration has, with
    /// their shapes and finite values.
    pub fn check(&self) -> Result<(), String> {
        self.header.validate()?;
        let want = self.header.model.weight_shapes();
        if self.weights.len() != want.len() {
            return Err(format!(
                "{} weights, the {} architecture has {}",
                self.weights.len(),
                self.header.model.arch,
                want.len()
            ));
        }
        for (name, shape, v) in &self.weights {
            match want.get(name) {
                Some(s) if s == shape && v.len() == s.iter().product::<usize>() => {}
                Some(s) => {
                    return Err(format!(
                        "{name} is {shape:?} with {} values, expected {s:?}",
                        v.len()
                    ));
                }
                None => return Err(format!("unexpected weight {name}")),
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!("{name} has non-finite values"));
            }
        }
        if !self.weights.is_sorted_by(|a, b| a.0 < b.0) {
            return Err("weights are not sorted by name".into());
        }
        Ok(())
    }
}

/// Serialises a header and its weights into the checkpoint format.
pub fn encode(header: &Header, weights: &[NamedWeight]) -> Result<Vec<u8>, String> {
    let bytes: Vec<(&str, &[usize], Vec<u8>)> = weights
        .iter()
        .map(|(n, s, v)| {
            (
                n.as_str(),
                s.as_slice(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.to_vec(), b)
                .map(|v| (n.to_string(), v))
                .map_err(|e| format!("weight {n}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let st = safetensors::serialize(views, None).map_err(|e| format!("safetensors: {e}"))?;
    let header = serde_json::to_vec(header).map_err(|e| format!("header: {e}"))?;
    let mut out = Vec::with_capacity(32 + header.len() + st.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(st.len() as u64).to_le_bytes());
    out.extend_from_slice(&st);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Writes `bytes` to `path` atomically (temporary file, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let tmp = path.with_extension("seer.tmp");
    let io = |error| CheckpointError::Io {
        op: "write",
        path: path.into(),
        error,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Parses and checks checkpoint bytes; `path` only names the source in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
    let p = || path.to_path_buf();
    let length = |detail: String| CheckpointError::Length { path: p(), detail };
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(CheckpointError::BadMagic {
            path: p(),
            found: bytes[..bytes.len().min(8)].to_vec(),
        });
    }
    if bytes.len() < 32 {
        return Err(length(format!(
            "{} bytes, less than the smallest checkpoint",
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(CheckpointError::Version {
            path: p(),
            found: version,
        });
    }
    let hlen = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let hend = usize::try_from(hlen)
        .ok()
        .and_then(|h| h.checked_add(20))
        .filter(|&e| e + 12 <= bytes.len())
        .ok_or_else(|| {
            length(format!(
                "header length {hlen} runs past the end ({} bytes)",
                bytes.len()
            ))
        })?;
    let wlen = u64::from_le_bytes(bytes[hend..hend + 8].try_into().expect("8 bytes"));
    let wend = usize::try_from(wlen)
        .ok()
        .and_then(|w| w.checked_add(hend + 8))
        .filter(|&e| e + 4 <= bytes.len())
        .ok_or_else(|| {
            length(format!(
                "weights length {wlen} runs past the end ({} bytes)",
                bytes.len()
            ))
        })?;
    if wend + 4 != bytes.len() {
        return Err(length(format!(
            "{} bytes after the checksum",
            bytes.len() - wend - 4
        )));
    }
    let stored = u32::from_le_bytes(bytes[wend..wend + 4].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&bytes[..wend]);
    if stored != computed {
        return Err(CheckpointError::Checksum {
            path: p(),
            stored,
            computed,
        });
    }
    let header: Header =
        serde_json::from_slice(&bytes[20..hend]).map_err(|e| CheckpointError::Header {
            path: p(),
            message: e.to_string(),
        })?;
    header
        .validate()
        .map_err(|message| CheckpointError::Header { path: p(), message })?;
    let st = SafeTensors::deserialize(&bytes[hend + 8..wend]).map_err(|e| {
        CheckpointError::Mismatch {
            path: p(),
            arch: header.model.arch.to_string(),
            message: format!("unreadable safetensors: {e}"),
        }
    })?;
    let arch = header.model.arch;
    let mismatch = |message: String| CheckpointError::Mismatch {
        path: p(),
        arch: arch.to_string(),
        message,
    };
    let want = header.model.weight_shapes();
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    if !names.iter().copied().eq(want.keys().map(String::as_str)) {
        return Err(mismatch(format!(
            "file has weights {names:?}, the architecture has {:?}",
            want.keys().collect::<Vec<_>>()
        )));
    }
    let mut weights = Vec::with_capacity(names.len());
    for name in names {
        let view = st
            .tensor(name)
            .map_err(|e| mismatch(format!("{name}: {e}")))?;
        if view.dtype() != Dtype::F32 {
            return Err(mismatch(format!(
                "{name} is {:?}, expected F32",
                view.dtype()
            )));
        }
        let v: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        weights.push((name.to_string(), view.shape().to_vec(), v));
    }
    // Shapes and values: the same check as for a checkpoint built in memory.
    let ck = Checkpoint {
        header,
        weights,
        id: model_id(bytes),
    };
    ck.check().map_err(mismatch)?;
    Ok(ck)
}

/// The first 16 hex digits of the SHA-256 of `bytes`.
pub fn model_id(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) of datasets: metadata, signals and labels.
pub fn data_digest(datasets: &[&seer_traces::Dataset]) -> String {
    let mut h = Sha256::new();
    for ds in datasets {
        h.update(serde_json::to_vec(&ds.meta).unwrap_or_default());
        for t in &ds.service {
            h.update(t.queue_mean.to_le_bytes());
            h.update(t.arrivals.to_le_bytes());
            h.update(t.p99_ms.to_le_bytes());
        }
        h.update(
            ds.violation
                .iter()
                .map(|&v| u8::from(v))
                .collect::<Vec<u8>>(),
        );
        h.update(
            ds.culprit
                .iter()
                .map(|c| c.map_or(0u8, |r| r as u8 + 1))
                .collect::<Vec<u8>>(),
        );
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Arch;
    use crate::features::Channel;
    use proptest::prelude::*;

    fn valid(arch: Arch) -> Vec<u8> {
        let services: Vec<String> = (0..3).map(|i| format!("s{i}")).collect();
        let header = Header::untrained(
            ModelConfig::new(arch, 3, 1, 4),
            services,
            vec![Channel::Queue],
            "test",
        );
        let ck = Checkpoint::with_weights(header, |_, i| i as f32 * 0.01).unwrap();
        encode(&ck.header, &ck.weights).unwrap()
    }

    /// Rewrites the trailing CRC so a mutation reaches the parsers behind it.
    fn reseal(mut b: Vec<u8>) -> Vec<u8> {
        if b.len() >= 4 {
            let n = b.len() - 4;
            let crc = crc32fast::hash(&b[..n]);
            b[n..].copy_from_slice(&crc.to_le_bytes());
        }
        b
    }

    #[test]
    fn round_trip_and_weight_lookup() {
        for arch in Arch::ALL {
            let bytes = valid(arch);
            let ck = decode(&bytes, Path::new("m.seer")).unwrap();
            assert_eq!(ck.weights.len(), ck.header.model.weight_shapes().len());
            assert_eq!(ck.id, model_id(&bytes));
            assert!(ck.weight("out.bias").is_some() && ck.weight("nope").is_none());
            assert_eq!(encode(&ck.header, &ck.weights).unwrap(), bytes);
        }
    }

    #[test]
    fn in_memory_checkpoints_are_checked_before_an_engine_is_built() {
        let good = decode(&valid(Arch::Hybrid), Path::new("m.seer")).unwrap();
        assert!(crate::Engine::new(good.clone()).is_ok());
        let mut missing = good.clone();
        missing.weights.pop();
        let mut shape = good.clone();
        shape.weights[0].1.push(1);
        let mut nan = good.clone();
        nan.weights[1].2[0] = f32::NAN;
        let mut order = good.clone();
        order.weights.swap(0, 1);
        let mut header = good;
        header.header.services.pop();
        for (bad, what) in [
            (missing, "weights"),
            (shape, "expected"),
            (nan, "non-finite"),
            (order, "sorted"),
            (header, "service names"),
        ] {
            let err = crate::Engine::new(bad).unwrap_err();
            assert!(err.contains(what), "{what}: {err}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes, resealed or not: never a panic; a file that decodes has
        /// exactly the configuration's weights, all finite.
        #[test]
        fn decoding_mutated_files_never_panics(
            arch in prop::sample::select(Arch::ALL.to_vec()),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
            seal in any::<bool>(),
        ) {
            let mut b = valid(arch);
            for (at, v) in &edits {
                let i = at.index(b.len());
                b[i] = *v;
            }
            if truncate {
                b.truncate(cut.index(b.len() + 1));
            }
            if seal {
                b = reseal(b);
            }
            if let Ok(ck) = decode(&b, Path::new("fuzz.seer")) {
                let want = ck.header.model.weight_shapes();
                prop_assert_eq!(ck.weights.len(), want.len());
                for (n, s, v) in &ck.weights {
                    prop_assert_eq!(want.get(n), Some(s));
                    prop_assert_eq!(v.len(), s.iter().product::<usize>());
                    prop_assert!(v.iter().all(|x| x.is_finite()));
                }
            }
        }

        /// Random bytes behind a valid magic and version.
        #[test]
        fn random_bodies_are_refused_cleanly(body in prop::collection::vec(any::<u8>(), 0..400)) {
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            b.extend_from_slice(&body);
            let err = decode(&reseal(b), Path::new("fuzz.seer")).unwrap_err().to_string();
            prop_assert!(err.contains("fuzz.seer"), "{}", err);
        }
    }
}
