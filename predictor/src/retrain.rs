//! Incremental retraining: a trained model carried over to a new service list,
//! services matched by name.
//!
//! Convolution and LSTM recurrent weights do not depend on the service count and
//! are copied as they are. Weights indexed by service (the LSTM input columns,
//! the output rows, the CNN's dense input columns) are copied for every service
//! that both lists have; services new to the model keep their fresh
//! initialisation, and services gone from the data are dropped. Normalisation
//! statistics move with their service; new services get statistics fitted on
//! the new data.

use crate::checkpoint::Model;
use crate::features::Normalizer;
use crate::model::{Arch, ModelConfig, ModelError, OutputKind};
use seer_traces::Dataset;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

/// What the carried-over model kept, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    /// Services in both lists.
    pub kept: Vec<String>,
    /// Services new to the model.
    pub added: Vec<String>,
    /// Services the model had and the data lacks.
    pub removed: Vec<String>,
}

/// Layout of a service-indexed dimension: `index = (o * services + s) * inner + i`
/// for `o < outer`, `i < inner`, then `tail` extra entries (the "no violation"
/// output).
#[derive(Debug, Clone, Copy)]
struct Axis {
    dim: usize,
    outer: usize,
    inner: usize,
    tail: usize,
}

/// The service axes of weight `name` in a network of `cfg`. The shared scorer has
/// none; nor, when culprits come from it alone, has the output layer (its one
/// row is "no violation").
fn axes(name: &str, cfg: &ModelConfig) -> Vec<Axis> {
    let (arch, conv_channels, channels) = (cfg.arch, cfg.conv_channels, cfg.n_channels);
    if cfg.shared_culprit && name.starts_with("out.") {
        return Vec::new();
    }
    let tail = usize::from(cfg.output == OutputKind::Softmax);
    let rows = Axis {
        dim: 0,
        outer: 1,
        inner: 1,
        tail,
    };
    match (arch, name) {
        (_, "out.weight") => match arch {
            Arch::Cnn => vec![
                rows,
                Axis {
                    dim: 1,
                    outer: conv_channels,
                    inner: 1,
                    tail: 0,
                },
            ],
            _ => vec![rows],
        },
        (_, "out.bias") => vec![rows],
        (Arch::Hybrid, "lstm.weight_ih_l0") => vec![Axis {
            dim: 1,
            outer: conv_channels,
            inner: 1,
            tail: 0,
        }],
        (Arch::Lstm, "lstm.weight_ih_l0") => vec![Axis {
            dim: 1,
            outer: 1,
            inner: channels,
            tail: 0,
        }],
        _ => Vec::new(),
    }
}

/// `(destination, source)` index pairs along one axis.
fn pairs(ax: Axis, map: &[Option<usize>], old_services: usize) -> (Vec<i64>, Vec<i64>) {
    let new_services = map.len();
    let (mut d, mut s) = (Vec::new(), Vec::new());
    for o in 0..ax.outer {
        for (sn, so) in map.iter().enumerate() {
            let Some(so) = so else { continue };
            for i in 0..ax.inner {
                d.push(((o * new_services + sn) * ax.inner + i) as i64);
                s.push(((o * old_services + so) * ax.inner + i) as i64);
            }
        }
    }
    for k in 0..ax.tail {
        d.push((ax.outer * new_services * ax.inner + k) as i64);
        s.push((ax.outer * old_services * ax.inner + k) as i64);
    }
    (d, s)
}

/// Carries `old` over to `services` (in their new order), fitting normalisation
/// for new services on the ticks of `datasets` where `training[i][t]` holds.
pub fn remap(
    old: &Model,
    services: &[String],
    datasets: &[&Dataset],
    training: &[Vec<bool>],
    device: Device,
) -> Result<(Model, Remap), ModelError> {
    let oh = &old.header;
    let index: HashMap<&str, usize> = oh
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let map: Vec<Option<usize>> = services
        .iter()
        .map(|s| index.get(s.as_str()).copied())
        .collect();
    let report = Remap {
        kept: services
            .iter()
            .zip(&map)
            .filter(|(_, m)| m.is_some())
            .map(|(s, _)| s.clone())
            .collect(),
        added: services
            .iter()
            .zip(&map)
            .filter(|(_, m)| m.is_none())
            .map(|(s, _)| s.clone())
            .collect(),
        removed: oh
            .services
            .iter()
            .filter(|s| !services.contains(s))
            .cloned()
            .collect(),
    };
    if report.kept.is_empty() {
        return Err(ModelError::Invalid(format!(
            "the model's services {:?} and the data's {:?} have none in common",
            oh.services, services
        )));
    }
    let channels = oh.normalizer.channels.clone();
    let nc = channels.len();
    let fresh = Normalizer::fit(datasets, training, services, &channels)
        .map_err(|e| ModelError::Invalid(e.to_string()))?;
    let mut norm = fresh.clone();
    for (sn, so) in map.iter().enumerate() {
        if let Some(so) = so {
            for c in 0..nc {
                norm.mean[sn * nc + c] = oh.normalizer.mean[so * nc + c];
                norm.std[sn * nc + c] = oh.normalizer.std[so * nc + c];
            }
        }
    }
    let mut header = oh.clone();
    header.services = services.to_vec();
    header.model.n_services = services.len();
    header.normalizer = norm;
    let mut new = Model::new(header, device)?;
    // Unsaved, so it has no id of its own yet: it carries the old model's, which
    // training records as the parent.
    new.id = old.id.clone();
    let old_vars = old.vs.variables();
    let _g = tch::no_grad_guard();
    for (name, dst) in new.vs.variables() {
        let src = old_vars
            .get(&name)
            .ok_or_else(|| ModelError::Invalid(format!("old model has no weight {name}")))?
            .to_device(device)
            .to_kind(Kind::Float);
        let ax = axes(&name, &oh.model);
        let mut dst = dst.shallow_clone();
        if ax.is_empty() {
            if src.size() != dst.size() {
                return Err(ModelError::Invalid(format!(
                    "weight {name} is {:?} in the old model and {:?} in the new",
                    src.size(),
                    dst.size()
                )));
            }
            dst.f_copy_(&src)?;
            continue;
        }
        let mut block = src;
        let mut idx: Vec<Option<Tensor>> = (0..dst.dim()).map(|_| None).collect();
        for a in &ax {
            let (d, s) = pairs(*a, &map, oh.services.len());
            block = block.index_select(a.dim as i64, &Tensor::from_slice(&s).to_device(device));
            let mut shape = vec![1i64; dst.dim()];
            shape[a.dim] = d.len() as i64;
            idx[a.dim] = Some(Tensor::from_slice(&d).to_device(device).reshape(&shape));
        }
        // Dimensions without a service axis take everything.
        for (k, slot) in idx.iter_mut().enumerate() {
            if slot.is_none() {
                let n = dst.size()[k];
                let mut shape = vec![1i64; dst.dim()];
                shape[k] = n;
                *slot = Some(Tensor::arange(n, (Kind::Int64, device)).reshape(&shape));
            }
        }
        let _ = dst.f_index_put_(&idx, &block, false)?;
    }
    Ok((new, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Header;
    use crate::features::Channel;
    use crate::synth::{SynthConfig, synth_dataset};

    fn model(arch: Arch, services: &[&str], channels: usize) -> Model {
        tch::set_num_threads(1);
        let services: Vec<String> = services.iter().map(|s| s.to_string()).collect();
        let chans = [Channel::Queue, Channel::Arrivals][..channels].to_vec();
        let n = services.len() * channels;
        let mut h = Header::untrained(
            ModelConfig::new(arch, services.len(), channels, 4),
            services,
            chans,
            "test",
        );
        h.normalizer.mean = (0..n).map(|i| i as f32).collect();
        Model::new(h, Device::Cpu).unwrap()
    }

    /// With the same services in another order, the remapped model gives the same
    /// per-service probabilities, permuted.
    #[test]
    fn permuting_services_permutes_outputs_for_lstm() {
        let mut old = model(Arch::Lstm, &["a", "b", "c"], 2);
        old.id = "parent-id".into();
        let mut ds = synth_dataset(&SynthConfig {
            n_services: 3,
            n_ticks: 30,
            ..Default::default()
        });
        ds.meta.services = vec!["a".into(), "b".into(), "c".into()];
        let new_order: Vec<String> = ["c", "a", "b"].iter().map(|s| s.to_string()).collect();
        let (new, r) = remap(&old, &new_order, &[&ds], &[vec![true; 30]], Device::Cpu).unwrap();
        assert_eq!(new.id, old.id, "the remapped model keeps its parent's id");
        assert_eq!(r.kept.len(), 3);
        assert!(r.added.is_empty() && r.removed.is_empty());
        assert_eq!(
            new.header.normalizer.mean,
            vec![4.0, 5.0, 0.0, 1.0, 2.0, 3.0]
        );
        let x = Tensor::randn([2, 4, 3, 2], (Kind::Float, Device::Cpu));
        let perm = Tensor::from_slice(&[2i64, 0, 1]);
        let p_old = old.net.probabilities(&old.net.forward(&x));
        let p_new = new
            .net
            .probabilities(&new.net.forward(&x.index_select(2, &perm)));
        let want = p_old.index_select(1, &Tensor::from_slice(&[2i64, 0, 1, 3]));
        let d = f64::try_from((p_new - want).abs().max()).unwrap();
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn identity_remap_keeps_outputs() {
        for arch in Arch::ALL {
            let old = model(arch, &["svc-0", "svc-1", "svc-2"], 1);
            let ds = synth_dataset(&SynthConfig {
                n_services: 3,
                n_ticks: 30,
                ..Default::default()
            });
            let (new, _) = remap(
                &old,
                &ds.meta.services,
                &[&ds],
                &[vec![true; 30]],
                Device::Cpu,
            )
            .unwrap();
            let x = Tensor::randn([2, 4, 3, 1], (Kind::Float, Device::Cpu));
            let d = f64::try_from((old.net.forward(&x) - new.net.forward(&x)).abs().max()).unwrap();
            assert!(d < 1e-6, "{arch}: {d}");
        }
    }

    #[test]
    fn added_and_removed_services_keep_the_rest() {
        for arch in Arch::ALL {
            let old = model(arch, &["a", "b", "c"], 1);
            let ds = synth_dataset(&SynthConfig {
                n_services: 3,
                n_ticks: 30,
                prefix: "x".into(),
                ..Default::default()
            });
            let mut ds = ds;
            ds.meta.services = vec!["a".into(), "c".into(), "d".into()];
            let svcs = ds.meta.services.clone();
            let (new, r) = remap(&old, &svcs, &[&ds], &[vec![true; 30]], Device::Cpu).unwrap();
            assert_eq!(r.added, vec!["d".to_string()]);
            assert_eq!(r.removed, vec!["b".to_string()]);
            let ob = old.vs.variables()["out.bias"].shallow_clone();
            let nb = new.vs.variables()["out.bias"].shallow_clone();
            let ob: Vec<f32> = Vec::try_from(ob).unwrap();
            let nb: Vec<f32> = Vec::try_from(nb).unwrap();
            assert_eq!((nb[0], nb[1], nb[3]), (ob[0], ob[2], ob[3]), "{arch}");
            assert_eq!(new.header.normalizer.mean[..2], [0.0, 2.0]);
        }
    }

    /// Naming culprits with the shared scorer alone, no weight belongs to one
    /// service: the scorer and the "no violation" row carry over whole when
    /// services come and go.
    #[test]
    fn a_shared_scorer_carries_over_whole() {
        let mut old = model(Arch::Hybrid, &["a", "b", "c"], 1);
        let mut h = old.header.clone();
        (
            h.model.head_ticks,
            h.model.head_hidden,
            h.model.shared_culprit,
        ) = (2, 3, true);
        old = Model::new(h, Device::Cpu).unwrap();
        let mut ds = synth_dataset(&SynthConfig {
            n_services: 4,
            n_ticks: 30,
            ..Default::default()
        });
        ds.meta.services = vec!["a".into(), "c".into(), "d".into(), "e".into()];
        let svcs = ds.meta.services.clone();
        let (new, r) = remap(&old, &svcs, &[&ds], &[vec![true; 30]], Device::Cpu).unwrap();
        assert_eq!(r.added, vec!["d".to_string(), "e".to_string()]);
        let (ov, nv) = (old.vs.variables(), new.vs.variables());
        for name in [
            "out.weight",
            "out.bias",
            "head0.weight",
            "head0.bias",
            "head.weight",
        ] {
            assert_eq!(ov[name].size(), nv[name].size(), "{name}");
            let d = f64::try_from((&ov[name] - &nv[name]).abs().max()).unwrap();
            assert!(d == 0.0, "{name}: {d}");
        }
        let x = Tensor::randn([2, 4, 4, 1], (Kind::Float, Device::Cpu));
        assert_eq!(new.net.forward(&x).size(), [2, 5]);
    }

    #[test]
    fn disjoint_services_are_refused() {
        let old = model(Arch::Hybrid, &["a"], 1);
        let ds = synth_dataset(&SynthConfig {
            n_services: 2,
            n_ticks: 30,
            ..Default::default()
        });
        let svcs = ds.meta.services.clone();
        let err = remap(&old, &svcs, &[&ds], &[vec![true; 30]], Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("none in common"), "{err}");
    }
}
