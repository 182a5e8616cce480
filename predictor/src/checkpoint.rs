//! Trained models on tch: a network, its weights and its header, saved to and
//! loaded from the checkpoint format of [`seer_infer::checkpoint`] (where the
//! layout and every check are described). Loading checks the whole file before a
//! single weight is copied into a fresh network: a bad file never yields a
//! half-loaded model.

use crate::model::{ModelError, Net, n_parameters};
pub use seer_infer::checkpoint::{
    CheckpointError, FORMAT_VERSION, Header, MAGIC, NamedWeight, TrainSummary, data_digest,
    model_id,
};
use seer_infer::checkpoint::{decode, encode, write_atomic};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor, nn};

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

    /// The same network on the pure-Rust engine (same weights and header).
    pub fn to_engine(&self) -> Result<seer_infer::Engine, ModelError> {
        seer_infer::Engine::new(seer_infer::Checkpoint {
            header: self.header.clone(),
            weights: self.weights()?,
            id: self.id.clone(),
        })
        .map_err(ModelError::Invalid)
    }

    /// Serialises the model into the checkpoint format.
    pub fn to_bytes(&mut self) -> Result<Vec<u8>, ModelError> {
        let out = encode(&self.header, &self.weights()?).map_err(ModelError::Invalid)?;
        self.id = model_id(&out);
        Ok(out)
    }

    /// Writes the checkpoint atomically (temporary file, then rename).
    pub fn save(&mut self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = self.to_bytes().map_err(|e| CheckpointError::Model {
            path: path.into(),
            message: e.to_string(),
        })?;
        write_atomic(path, &bytes)
    }

    /// Reads and validates a checkpoint, and builds the model on `device`.
    pub fn load(path: &Path, device: Device) -> Result<Model, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|error| CheckpointError::Io {
            op: "read",
            path: path.into(),
            error,
        })?;
        Model::from_bytes(&bytes, path, device)
    }

    /// Parses checkpoint bytes; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path, device: Device) -> Result<Model, CheckpointError> {
        let ck = decode(bytes, path)?;
        Model::from_checkpoint(ck, path, device)
    }

    /// Builds the network of a checked checkpoint and copies its weights in.
    pub fn from_checkpoint(
        ck: seer_infer::checkpoint::Checkpoint,
        path: &Path,
        device: Device,
    ) -> Result<Model, CheckpointError> {
        let model_err = |e: ModelError| CheckpointError::Model {
            path: path.into(),
            message: e.to_string(),
        };
        let mut model = Model::new(ck.header, device).map_err(model_err)?;
        let vars: BTreeMap<String, Tensor> = model.vs.variables().into_iter().collect();
        // The decoder checked names and shapes against the configuration; the
        // network must agree with it (a test keeps the two in step).
        let same = vars.len() == ck.weights.len()
            && ck.weights.iter().all(|(n, s, _)| {
                vars.get(n)
                    .is_some_and(|v| v.size().iter().map(|&d| d as usize).eq(s.iter().copied()))
            });
        if !same {
            return Err(CheckpointError::Mismatch {
                path: path.into(),
                arch: model.header.model.arch.to_string(),
                message: "the network's variables differ from the configuration's weights".into(),
            });
        }
        {
            let _g = tch::no_grad_guard();
            for (name, shape, v) in &ck.weights {
                let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                let src = Tensor::from_slice(v).reshape(&shape).to_device(device);
                let mut dst = vars[name].shallow_clone();
                dst.f_copy_(&src).map_err(|e| model_err(e.into()))?;
            }
        }
        model.id = ck.id;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Channel;
    use crate::model::{Arch, ModelConfig};
    use std::path::PathBuf;

    fn header(arch: Arch) -> Header {
        let services: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
        let mut h = Header::untrained(
            ModelConfig::new(arch, 4, 1, 5),
            services,
            vec![Channel::Queue],
            "test",
        );
        h.normalizer.mean = vec![0.5; 4];
        h.data_digest = "00".into();
        h
    }

    fn saved(arch: Arch) -> (tempfile::TempDir, PathBuf, Model) {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.seer");
        let mut m = Model::new(header(arch), Device::Cpu).unwrap();
        m.save(&path).unwrap();
        (dir, path, m)
    }

    /// The configuration's weight list (what files are checked against and the
    /// pure-Rust engine reads) is exactly what tch builds.
    #[test]
    fn configuration_names_every_variable_tch_builds() {
        use crate::model::OutputKind;
        for arch in Arch::ALL {
            for output in [OutputKind::Softmax, OutputKind::Sigmoid] {
                // No scorer; linear on the last tick; a hidden layer over four
                // ticks; the same naming culprits alone.
                for head in 0..4 {
                    if head > 0 && arch != Arch::Hybrid
                        || head == 3 && output != OutputKind::Softmax
                    {
                        continue;
                    }
                    let mut cfg = ModelConfig::new(arch, 7, 3, 6);
                    cfg.output = output;
                    cfg.service_head = head > 0;
                    if head >= 2 {
                        (cfg.head_ticks, cfg.head_hidden) = (4, 5);
                        cfg.shared_culprit = head == 3;
                    }
                    if arch != Arch::Cnn {
                        cfg.lstm_layers = 2;
                    }
                    let vs = nn::VarStore::new(Device::Cpu);
                    Net::new(&vs.root(), &cfg).unwrap();
                    let built: BTreeMap<String, Vec<usize>> = vs
                        .variables()
                        .into_iter()
                        .map(|(n, t)| (n, t.size().iter().map(|&d| d as usize).collect()))
                        .collect();
                    assert_eq!(built, cfg.weight_shapes(), "{arch} {output:?} head {head}");
                }
            }
        }
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
