//! Trained models and their checkpoint files.
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
//! the header's architecture builds, all before a single weight is copied into a
//! fresh network: a bad file never yields a half-loaded model.

use crate::features::{Channel, Normalizer};
use crate::model::{ModelConfig, ModelError, Net, n_parameters};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor, nn};

/// File magic.
pub const MAGIC: &[u8; 8] = b"SEERMODL";
/// Checkpoint format version written; readers accept exactly this one.
pub const FORMAT_VERSION: u32 = 1;

/// Errors saving or loading a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("failed to {op} {path}: {source}")]
    Io {
        /// read or write.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
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
    #[error("{path}: {source}")]
    Model {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ModelError,
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
    /// Channels the model reads.
    pub fn channels(&self) -> &[Channel] {
        &self.normalizer.channels
    }

    fn validate(&self) -> Result<(), String> {
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

/// A network with its weights and header, ready to predict.
#[derive(Debug)]
pub struct Model {
    /// The variables.
    pub vs: nn::VarStore,
    /// The network.
    pub net: Net,
    /// The header.
    pub header: Header,
    /// Identifier: the first 16 hex digits of the SHA-256 of the weights and header.
    pub id: String,
}

impl Model {
    /// A new, randomly initialised model on `device`.
    pub fn new(header: Header, device: Device) -> Result<Model, ModelError> {
        header.validate().map_err(ModelError::Invalid)?;
        let vs = nn::VarStore::new(device);
        let net = Net::new(&vs.root(), &header.model)?;
        Ok(Model {
            vs,
            net,
            header,
            id: String::new(),
        })
    }

    /// Number of weights.
    pub fn n_parameters(&self) -> usize {
        n_parameters(&self.vs)
    }

    /// The weights as (name, shape, values), sorted by name.
    pub fn weights(&self) -> Result<Vec<NamedWeight>, ModelError> {
        let vars: BTreeMap<String, Tensor> = self.vs.variables().into_iter().collect();
        let mut out = Vec::with_capacity(vars.len());
        for (name, t) in vars {
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let flat = t
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous()
                .flatten(0, -1);
            let v = Vec::<f32>::try_from(&flat)?;
            out.push((name, shape, v));
        }
        Ok(out)
    }

    /// Serialises the model into the checkpoint format.
    pub fn to_bytes(&mut self) -> Result<Vec<u8>, ModelError> {
        let weights = self.weights()?;
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = weights
            .into_iter()
            .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
            .collect();
        let views = bytes
            .iter()
            .map(|(n, s, b)| {
                TensorView::new(Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| ModelError::Invalid(format!("weight {n}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let st = safetensors::serialize(views, None)
            .map_err(|e| ModelError::Invalid(format!("safetensors: {e}")))?;
        let header = serde_json::to_vec(&self.header)
            .map_err(|e| ModelError::Invalid(format!("header: {e}")))?;
        let mut out = Vec::with_capacity(32 + header.len() + st.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(st.len() as u64).to_le_bytes());
        out.extend_from_slice(&st);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        self.id = model_id(&out);
        Ok(out)
    }

    /// Writes the checkpoint atomically (temporary file, then rename).
    pub fn save(&mut self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = self.to_bytes().map_err(|source| CheckpointError::Model {
            path: path.into(),
            source,
        })?;
        let tmp = path.with_extension("seer.tmp");
        let io = |source| CheckpointError::Io {
            op: "write",
            path: path.into(),
            source,
        };
        std::fs::write(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// Reads and validates a checkpoint, and builds the model on `device`.
    pub fn load(path: &Path, device: Device) -> Result<Model, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            op: "read",
            path: path.into(),
            source,
        })?;
        Model::from_bytes(&bytes, path, device)
    }

    /// Parses checkpoint bytes; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path, device: Device) -> Result<Model, CheckpointError> {
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
        let mismatch = |message: String| CheckpointError::Mismatch {
            path: p(),
            arch: header.model.arch.to_string(),
            message,
        };
        let mut model = Model::new(header.clone(), device)
            .map_err(|source| CheckpointError::Model { path: p(), source })?;
        let vars: BTreeMap<String, Tensor> = model.vs.variables().into_iter().collect();
        // Check everything first...
        let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
        names.sort();
        let want: Vec<&String> = vars.keys().collect();
        if names.iter().collect::<Vec<_>>() != want {
            return Err(mismatch(format!(
                "file has weights {names:?}, the architecture has {want:?}"
            )));
        }
        let mut values = Vec::with_capacity(vars.len());
        for (name, var) in &vars {
            let view = st
                .tensor(name)
                .map_err(|e| mismatch(format!("{name}: {e}")))?;
            let want_shape: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
            if view.dtype() != Dtype::F32 || view.shape() != want_shape.as_slice() {
                return Err(mismatch(format!(
                    "{name} is {:?} {:?}, expected F32 {want_shape:?}",
                    view.dtype(),
                    view.shape()
                )));
            }
            let v: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(mismatch(format!("{name} has non-finite values")));
            }
            values.push((name.clone(), want_shape, v));
        }
        // ...then copy into the fresh network.
        {
            let _g = tch::no_grad_guard();
            for (name, shape, v) in values {
                let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                let src = Tensor::from_slice(&v).reshape(&shape).to_device(device);
                let mut dst = vars[&name].shallow_clone();
                dst.f_copy_(&src).map_err(|e| CheckpointError::Model {
                    path: p(),
                    source: e.into(),
                })?;
            }
        }
        model.id = model_id(bytes);
        Ok(model)
    }
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
    use crate::model::Arch;

    fn header(arch: Arch) -> Header {
        let services: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
        Header {
            model: ModelConfig::new(arch, 4, 1, 5),
            normalizer: Normalizer {
                channels: vec![Channel::Queue],
                services: services.clone(),
                mean: vec![0.5; 4],
                std: vec![1.0; 4],
            },
            services,
            horizon_ns: 100_000_000,
            interval_ns: 100_000_000,
            data_digest: "00".into(),
            train: TrainSummary::default(),
            written_by: "test".into(),
        }
    }

    fn saved(arch: Arch) -> (tempfile::TempDir, PathBuf, Model) {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.seer");
        let mut m = Model::new(header(arch), Device::Cpu).unwrap();
        m.save(&path).unwrap();
        (dir, path, m)
    }

    #[test]
    fn round_trip_keeps_header_weights_and_outputs() {
        for arch in Arch::ALL {
            let (_d, path, m) = saved(arch);
            let back = Model::load(&path, Device::Cpu).unwrap();
            assert_eq!(back.header, m.header);
            assert_eq!(back.id, m.id);
            assert_eq!(back.weights().unwrap(), m.weights().unwrap());
            let x = Tensor::randn([2, 5, 4, 1], (Kind::Float, Device::Cpu));
            let d = f64::try_from((m.net.forward(&x) - back.net.forward(&x)).abs().max()).unwrap();
            assert_eq!(d, 0.0, "{arch}");
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let (_d, path, _m) = saved(Arch::Hybrid);
        let bytes = std::fs::read(&path).unwrap();
        // Every prefix, stepping through the file (all of the small header region).
        let mut cut = 0;
        while cut < bytes.len() {
            let err = Model::from_bytes(&bytes[..cut], &path, Device::Cpu).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("truncated") || msg.contains("magic") || msg.contains("corrupt"),
                "cut {cut}: {msg}"
            );
            cut += if cut < 64 { 1 } else { 97 };
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            Model::from_bytes(&longer, &path, Device::Cpu)
                .unwrap_err()
                .to_string()
                .contains("trailing")
        );
    }

    #[test]
    fn flipped_bits_are_caught_by_the_checksum() {
        let (_d, path, _m) = saved(Arch::Cnn);
        let bytes = std::fs::read(&path).unwrap();
        for pos in [20, bytes.len() / 2, bytes.len() - 5] {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x40;
            let err = Model::from_bytes(&bad, &path, Device::Cpu).unwrap_err();
            assert!(
                matches!(err, CheckpointError::Checksum { .. }),
                "byte {pos}: {err}"
            );
        }
    }

    #[test]
    fn wrong_magic_and_version_are_named() {
        let (_d, path, _m) = saved(Arch::Lstm);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8] = 9;
        let err = Model::from_bytes(&bytes, &path, Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("format version 9"), "{err}");
        bytes[0] = b'X';
        let err = Model::from_bytes(&bytes, &path, Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("not a Seer model"), "{err}");
        let err = Model::load(&path.with_extension("missing"), Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("failed to read"), "{err}");
    }

    /// Rebuilds a file with a valid CRC around a header that does not match the
    /// weights: the loader must refuse it, not load part of it.
    #[test]
    fn header_that_does_not_match_the_weights_is_refused() {
        let (_d, path, mut m) = saved(Arch::Hybrid);
        let good = m.to_bytes().unwrap();
        let hlen = u64::from_le_bytes(good[12..20].try_into().unwrap()) as usize;
        let weights = &good[20 + hlen..good.len() - 4];
        for change in 0..3 {
            let mut h = m.header.clone();
            match change {
                0 => h.model.hidden += 1,
                1 => {
                    h.model.arch = Arch::Lstm;
                    h.model.service_head = false;
                }
                _ => {
                    h.model.n_services = 5;
                    h.services.push("s4".into());
                    h.normalizer.services.push("s4".into());
                    h.normalizer.mean.push(0.0);
                    h.normalizer.std.push(1.0);
                }
            }
            let hj = serde_json::to_vec(&h).unwrap();
            let mut out = Vec::new();
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            out.extend_from_slice(&(hj.len() as u64).to_le_bytes());
            out.extend_from_slice(&hj);
            out.extend_from_slice(weights);
            let crc = crc32fast::hash(&out);
            out.extend_from_slice(&crc.to_le_bytes());
            let err = Model::from_bytes(&out, &path, Device::Cpu).unwrap_err();
            assert!(
                matches!(err, CheckpointError::Mismatch { .. }),
                "change {change}: {err}"
            );
        }
        // A header that is inconsistent in itself.
        let mut h = m.header.clone();
        h.normalizer.std[0] = -1.0;
        let hj = serde_json::to_vec(&h).unwrap();
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(hj.len() as u64).to_le_bytes());
        out.extend_from_slice(&hj);
        out.extend_from_slice(weights);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        let err = Model::from_bytes(&out, &path, Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("invalid header"), "{err}");
    }
}
