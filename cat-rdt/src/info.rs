//! The `info/` directory of a resctrl mount: what each resource offers
//! (`num_closids`, `cbm_mask`, `min_cbm_bits`, `shareable_bits`,
//! `bandwidth_gran`, `min_bandwidth`, `num_rmids`, ...), plus the domain ids
//! read from the root `schemata`. Parsing is pure (`from_files`); reading
//! takes the mount root as an argument.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::schemata::{Resource, Schemata, SchemataError, Value};

/// Why `info/` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// A file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file holds something other than what the kernel writes there.
    #[error("unexpected content {value:?} in {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        value: String,
    },
    /// The root schemata could not be parsed.
    #[error("failed to parse {path}: {source}")]
    Schemata {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: SchemataError,
    },
    /// There is no `info/` directory: not a resctrl mount.
    #[error("{0} is not a resctrl mount (no info/ directory)")]
    NotResctrl(PathBuf),
}

/// What `info/L3`, `info/L2`, `info/L3DATA`, ... say about a cache.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CacheInfo {
    /// Number of CLOSIDs this resource supports.
    pub num_closids: u32,
    /// All ways: the mask a group may use at most.
    pub cbm_mask: u64,
    /// Fewest consecutive bits a mask may hold (0 on AMD: an empty mask is allowed).
    pub min_cbm_bits: u32,
    /// Ways also used by hardware (I/O, DDIO) and shared with it.
    pub shareable_bits: u64,
    /// Whether non-contiguous masks are accepted (`sparse_masks`, Linux ≥ 6.8; absent means no).
    pub sparse_masks: bool,
    /// The kernel's per-domain way usage legend, if present.
    pub bit_usage: Option<String>,
}

impl CacheInfo {
    /// Number of ways (`cbm_mask` length).
    pub fn cbm_len(&self) -> u32 {
        crate::cbm::cbm_len(self.cbm_mask)
    }
}

/// What `info/MB` says about memory bandwidth allocation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MbInfo {
    /// Number of CLOSIDs MBA supports.
    pub num_closids: u32,
    /// Smallest value accepted.
    pub min_bandwidth: u64,
    /// Values are rounded up to a multiple of this.
    pub bandwidth_gran: u64,
    /// Whether the delay scale is linear.
    pub delay_linear: bool,
    /// `per-thread` or `max`, if the file exists.
    pub thread_throttle_mode: Option<String>,
}

/// What `info/L3_MON` says about monitoring.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MonInfo {
    /// Number of RMIDs (monitoring groups, the default group included).
    pub num_rmids: u32,
    /// Events offered: `llc_occupancy`, `mbm_total_bytes`, `mbm_local_bytes`.
    pub mon_features: Vec<String>,
}

/// How MB values are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MbScale {
    /// Intel: percent of full bandwidth, within `[min_bandwidth, 100]`, on the
    /// `bandwidth_gran` grid.
    Percent,
    /// AMD: units of 1/8 GB/s, within `[0, 2048]`.
    AmdUnits,
    /// `mba_MBps` mount option: MBps, set by the software controller.
    Mbps,
}

impl MbScale {
    /// The largest value this scale takes.
    pub fn max(self) -> u64 {
        match self {
            MbScale::Percent => 100,
            MbScale::AmdUnits => 2048,
            MbScale::Mbps => u64::from(u32::MAX),
        }
    }
}

/// Everything about a resctrl mount that validation needs: the resources,
/// their limits, and the domain ids of each.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    /// Cache resources (L3 or L3DATA+L3CODE, L2 or L2DATA+L2CODE).
    pub caches: BTreeMap<Resource, CacheInfo>,
    /// MBA, if present.
    pub mb: Option<MbInfo>,
    /// How MB values are read, if MBA is present.
    pub mb_scale: Option<MbScale>,
    /// Monitoring, if present.
    pub mon: Option<MonInfo>,
    /// Domain ids of each resource, as listed in the root `schemata`.
    pub domains: BTreeMap<Resource, Vec<u32>>,
}

impl Layout {
    /// Number of control groups the mount can hold, the default group
    /// included: the smallest `num_closids` over all resources.
    pub fn num_closids(&self) -> u32 {
        self.caches
            .values()
            .map(|c| c.num_closids)
            .chain(self.mb.as_ref().map(|m| m.num_closids))
            .min()
            .unwrap_or(1)
    }

    /// Whether L3 CDP is on (`L3DATA`/`L3CODE` instead of `L3`).
    pub fn l3_cdp(&self) -> bool {
        self.caches.contains_key(&Resource::L3Data)
    }

    /// Whether L2 CDP is on.
    pub fn l2_cdp(&self) -> bool {
        self.caches.contains_key(&Resource::L2Data)
    }

    /// Domain ids of `resource` (empty if absent).
    pub fn domain_ids(&self, resource: &Resource) -> &[u32] {
        self.domains.get(resource).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The L3 resources Seer allocates ways in: `[L3]`, or `[L3DATA, L3CODE]` under CDP.
    pub fn l3_resources(&self) -> Vec<Resource> {
        if self.l3_cdp() {
            vec![Resource::L3Data, Resource::L3Code]
        } else if self.caches.contains_key(&Resource::L3) {
            vec![Resource::L3]
        } else {
            Vec::new()
        }
    }
}

fn parse_num<T: std::str::FromStr>(path: &Path, text: &str) -> Result<T, InfoError> {
    text.trim().parse().map_err(|_| InfoError::Parse {
        path: path.to_path_buf(),
        value: text.trim().to_string(),
    })
}

fn parse_hex_file(path: &Path, text: &str) -> Result<u64, InfoError> {
    crate::schemata::parse_hex(text).ok_or_else(|| InfoError::Parse {
        path: path.to_path_buf(),
        value: text.trim().to_string(),
    })
}

/// Build a [`CacheInfo`] from the files of one `info/<cache>` directory
/// (`name → content`); `dir` is used in error messages only.
pub fn cache_from_files(
    dir: &Path,
    files: &BTreeMap<String, String>,
) -> Result<CacheInfo, InfoError> {
    let get = |name: &str| -> Result<(&String, PathBuf), InfoError> {
        let p = dir.join(name);
        files
            .get(name)
            .map(|v| (v, p.clone()))
            .ok_or(InfoError::Read {
                path: p,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
    };
    let (v, p) = get("num_closids")?;
    let num_closids = parse_num(&p, v)?;
    let (v, p) = get("cbm_mask")?;
    let cbm_mask = parse_hex_file(&p, v)?;
    let (v, p) = get("min_cbm_bits")?;
    let min_cbm_bits = parse_num(&p, v)?;
    let shareable_bits = match files.get("shareable_bits") {
        Some(v) => parse_hex_file(&dir.join("shareable_bits"), v)?,
        None => 0,
    };
    let sparse_masks = match files.get("sparse_masks") {
        Some(v) => parse_num::<u32>(&dir.join("sparse_masks"), v)? == 1,
        None => false,
    };
    Ok(CacheInfo {
        num_closids,
        cbm_mask,
        min_cbm_bits,
        shareable_bits,
        sparse_masks,
        bit_usage: files.get("bit_usage").map(|s| s.trim().to_string()),
    })
}

/// Build an [`MbInfo`] from the files of `info/MB`.
pub fn mb_from_files(dir: &Path, files: &BTreeMap<String, String>) -> Result<MbInfo, InfoError> {
    let need = |name: &str| -> Result<(String, PathBuf), InfoError> {
        let p = dir.join(name);
        files
            .get(name)
            .cloned()
            .map(|v| (v, p.clone()))
            .ok_or(InfoError::Read {
                path: p,
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
    };
    let (v, p) = need("num_closids")?;
    let num_closids = parse_num(&p, &v)?;
    let (v, p) = need("min_bandwidth")?;
    let min_bandwidth = parse_num(&p, &v)?;
    let (v, p) = need("bandwidth_gran")?;
    let bandwidth_gran = parse_num(&p, &v)?;
    let delay_linear = match files.get("delay_linear") {
        Some(v) => parse_num::<u32>(&dir.join("delay_linear"), v)? == 1,
        None => true,
    };
    Ok(MbInfo {
        num_closids,
        min_bandwidth,
        bandwidth_gran,
        delay_linear,
        thread_throttle_mode: files
            .get("thread_throttle_mode")
            .map(|s| s.trim().to_string()),
    })
}

/// Build a [`MonInfo`] from the files of `info/L3_MON`.
pub fn mon_from_files(dir: &Path, files: &BTreeMap<String, String>) -> Result<MonInfo, InfoError> {
    let p = dir.join("num_rmids");
    let v = files.get("num_rmids").ok_or(InfoError::Read {
        path: p.clone(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    Ok(MonInfo {
        num_rmids: parse_num(&p, v)?,
        mon_features: files
            .get("mon_features")
            .map(|s| {
                s.lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Decide how MB values are read: `mba_MBps` when the mount options say so
/// (`mbps_option`), else when the root already holds a value above the
/// percent/AMD range (the kernel's MBps default is 4294967295); AMD units
/// when `min_bandwidth` is 0 (Intel never lets a group go below 10 %);
/// percent otherwise.
pub fn mb_scale(mb: &MbInfo, root_mb_values: &[u64], mbps_option: Option<bool>) -> MbScale {
    let mbps = mbps_option.unwrap_or_else(|| root_mb_values.iter().any(|&v| v > 2048));
    if mbps {
        MbScale::Mbps
    } else if mb.min_bandwidth == 0 {
        MbScale::AmdUnits
    } else {
        MbScale::Percent
    }
}

fn read_dir_files(dir: &Path) -> Result<BTreeMap<String, String>, InfoError> {
    let rd = std::fs::read_dir(dir).map_err(|e| InfoError::Read {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut out = BTreeMap::new();
    for ent in rd {
        let ent = ent.map_err(|e| InfoError::Read {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let p = ent.path();
        if p.is_file() {
            let v = std::fs::read_to_string(&p).map_err(|e| InfoError::Read {
                path: p.clone(),
                source: e,
            })?;
            out.insert(ent.file_name().to_string_lossy().into_owned(), v);
        }
    }
    Ok(out)
}

/// Read the layout of the resctrl mount at `root`: `info/` and the root
/// `schemata`. `mbps_option` is what the mount options say about
/// `mba_MBps`, when known.
pub fn read_layout(root: &Path, mbps_option: Option<bool>) -> Result<Layout, InfoError> {
    let info = root.join("info");
    if !info.is_dir() {
        return Err(InfoError::NotResctrl(root.to_path_buf()));
    }
    let mut caches = BTreeMap::new();
    for r in Resource::KNOWN.iter().filter(|r| r.is_cache()) {
        let d = info.join(r.name());
        if d.is_dir() {
            caches.insert(r.clone(), cache_from_files(&d, &read_dir_files(&d)?)?);
        }
    }
    let mb_dir = info.join("MB");
    let mb = if mb_dir.is_dir() {
        Some(mb_from_files(&mb_dir, &read_dir_files(&mb_dir)?)?)
    } else {
        None
    };
    let mon_dir = info.join("L3_MON");
    let mon = if mon_dir.is_dir() {
        Some(mon_from_files(&mon_dir, &read_dir_files(&mon_dir)?)?)
    } else {
        None
    };
    let sp = root.join("schemata");
    let text = std::fs::read_to_string(&sp).map_err(|e| InfoError::Read {
        path: sp.clone(),
        source: e,
    })?;
    let schemata = Schemata::parse(&text).map_err(|e| InfoError::Schemata {
        path: sp,
        source: e,
    })?;
    let domains = schemata
        .lines
        .iter()
        .map(|l| {
            (
                l.resource.clone(),
                l.domains.iter().map(|(d, _)| *d).collect(),
            )
        })
        .collect();
    let mb_scale = mb.as_ref().map(|m| {
        let vals: Vec<u64> = schemata
            .line(&Resource::Mb)
            .map(|l| l.domains.iter().map(|(_, v)| Value::raw(*v)).collect())
            .unwrap_or_default();
        mb_scale(m, &vals, mbps_option)
    });
    Ok(Layout {
        caches,
        mb,
        mb_scale,
        mon,
        domains,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn golden_l3() {
        let f = files(&[
            ("num_closids", "16\n"),
            ("cbm_mask", "7ff\n"),
            ("min_cbm_bits", "1\n"),
            ("shareable_bits", "600\n"),
            ("bit_usage", "0=SSSSSSSSSXX;1=SSSSSSSSSXX\n"),
        ]);
        let c = cache_from_files(Path::new("/r/info/L3"), &f).expect("valid");
        assert_eq!(c.cbm_mask, 0x7ff);
        assert_eq!(c.cbm_len(), 11);
        assert_eq!(c.shareable_bits, 0x600);
        assert!(!c.sparse_masks);
    }

    #[test]
    fn bad_file_names_path_and_value() {
        let f = files(&[
            ("num_closids", "x\n"),
            ("cbm_mask", "7ff"),
            ("min_cbm_bits", "1"),
        ]);
        let e = cache_from_files(Path::new("/r/info/L3"), &f).expect_err("bad");
        assert_eq!(
            e.to_string(),
            "unexpected content \"x\" in /r/info/L3/num_closids"
        );
    }

    #[test]
    fn mb_scales() {
        let intel = MbInfo {
            num_closids: 8,
            min_bandwidth: 10,
            bandwidth_gran: 10,
            delay_linear: true,
            thread_throttle_mode: None,
        };
        assert_eq!(mb_scale(&intel, &[100, 50], None), MbScale::Percent);
        assert_eq!(mb_scale(&intel, &[4294967295], None), MbScale::Mbps);
        assert_eq!(mb_scale(&intel, &[100], Some(true)), MbScale::Mbps);
        let amd = MbInfo {
            min_bandwidth: 0,
            bandwidth_gran: 1,
            ..intel
        };
        assert_eq!(mb_scale(&amd, &[2048], None), MbScale::AmdUnits);
    }
}
