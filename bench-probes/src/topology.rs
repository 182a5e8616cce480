//! CPU and cache topology read from sysfs (`/sys/devices/system/cpu`).
//!
//! Probes size their buffers from this: the L1d/L1i/L2/LLC sizes of the CPU a
//! probe is pinned to, which CPUs share that CPU's last-level cache, and
//! whether it has an SMT sibling. The root is an argument ([`Topology::at`])
//! so tests read fake trees; only [`Topology::discover`] names the real path.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Errors while reading the CPU topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A sysfs file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A sysfs file held a value that does not parse.
    #[error("invalid value {value:?} in {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The text found.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A CPU was asked for that is not online.
    #[error("cpu {cpu} is not online (online cpus: {online:?})")]
    NoSuchCpu {
        /// The requested CPU.
        cpu: usize,
        /// The CPUs that are online.
        online: Vec<usize>,
    },
}

/// Kind of a cache as named in sysfs `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheType {
    /// `Data`.
    Data,
    /// `Instruction`.
    Instruction,
    /// `Unified`.
    Unified,
}

/// One cache of one CPU (`cpuN/cache/indexM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cache {
    /// Cache level (1, 2, 3).
    pub level: u8,
    /// Data, instruction or unified.
    pub kind: CacheType,
    /// Size in bytes.
    pub size: u64,
    /// Line size in bytes (64 when sysfs does not say).
    pub line: u64,
    /// CPUs sharing this cache.
    pub shared_cpus: Vec<usize>,
}

/// One online CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cpu {
    /// CPU number.
    pub id: usize,
    /// Its caches, as listed in sysfs.
    pub caches: Vec<Cache>,
    /// CPUs sharing this core (itself included).
    pub thread_siblings: Vec<usize>,
}

/// The machine's CPUs and caches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Online CPUs in ascending order.
    pub cpus: Vec<Cpu>,
}

/// Parse a sysfs cache size such as `32K`, `32768K`, `1M` or `512` into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1024),
        Some((i, 'M' | 'm')) => (&s[..i], 1024 * 1024),
        Some((i, 'G' | 'g')) => (&s[..i], 1024 * 1024 * 1024),
        Some(_) => (s, 1),
        None => return Err("empty size".into()),
    };
    let n: u64 = num.trim().parse().map_err(|e| format!("not a size: {e}"))?;
    n.checked_mul(mult)
        .ok_or_else(|| "size overflows u64".into())
}

/// Parse a kernel CPU list such as `0-3,8,10-11` into sorted CPU numbers.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.parse().map_err(|e| format!("bad cpu {a:?}: {e}"))?;
                let b: usize = b.parse().map_err(|e| format!("bad cpu {b:?}: {e}"))?;
                if a > b {
                    return Err(format!("descending range {part:?}"));
                }
                if b - a > 65_536 {
                    return Err(format!("range {part:?} too large"));
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().map_err(|e| format!("bad cpu {part:?}: {e}"))?);
            }
        }
    }
    Ok(out.into_iter().collect())
}

fn read(path: &Path) -> Result<String, TopologyError> {
    fs::read_to_string(path).map_err(|source| TopologyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_err(path: &Path, value: &str, reason: String) -> TopologyError {
    TopologyError::Parse {
        path: path.to_path_buf(),
        value: value.trim().to_string(),
        reason,
    }
}

impl Topology {
    /// Read the real topology from `/sys/devices/system/cpu`.
    pub fn discover() -> Result<Self, TopologyError> {
        Self::at(Path::new("/sys/devices/system/cpu"))
    }

    /// Read the topology from a sysfs CPU directory laid out as the kernel does
    /// (`online`, `cpuN/cache/indexM/{level,type,size,shared_cpu_list}`,
    /// `cpuN/topology/thread_siblings_list`).
    pub fn at(root: &Path) -> Result<Self, TopologyError> {
        let online_path = root.join("online");
        let online_text = read(&online_path)?;
        let online =
            parse_cpu_list(&online_text).map_err(|r| parse_err(&online_path, &online_text, r))?;
        let mut cpus = Vec::new();
        for id in online {
            let dir = root.join(format!("cpu{id}"));
            let mut caches = Vec::new();
            let cache_dir = dir.join("cache");
            if let Ok(entries) = fs::read_dir(&cache_dir) {
                let mut names: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("index"))
                    })
                    .collect();
                names.sort();
                for idx in names {
                    caches.push(read_cache(&idx, id)?);
                }
            }
            let sib_path = dir.join("topology/thread_siblings_list");
            let thread_siblings = match fs::read_to_string(&sib_path) {
                Ok(t) => parse_cpu_list(&t).map_err(|r| parse_err(&sib_path, &t, r))?,
                Err(_) => vec![id],
            };
            cpus.push(Cpu {
                id,
                caches,
                thread_siblings,
            });
        }
        Ok(Topology { cpus })
    }

    /// The CPU with number `id`.
    pub fn cpu(&self, id: usize) -> Result<&Cpu, TopologyError> {
        self.cpus
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| TopologyError::NoSuchCpu {
                cpu: id,
                online: self.cpus.iter().map(|c| c.id).collect(),
            })
    }

    /// Online CPU numbers.
    pub fn online(&self) -> Vec<usize> {
        self.cpus.iter().map(|c| c.id).collect()
    }

    /// True when any CPU has an SMT sibling.
    pub fn has_smt(&self) -> bool {
        self.cpus.iter().any(|c| c.thread_siblings.len() > 1)
    }

    /// Another hardware thread of `cpu`'s core, if any.
    pub fn smt_sibling(&self, cpu: usize) -> Option<usize> {
        let c = self.cpu(cpu).ok()?;
        c.thread_siblings.iter().copied().find(|&s| s != cpu)
    }

    /// A CPU other than `cpu` (and not its SMT sibling) that shares its
    /// last-level cache; else any other online CPU; else `None`.
    pub fn llc_peer(&self, cpu: usize) -> Option<usize> {
        let c = self.cpu(cpu).ok()?;
        let siblings = &c.thread_siblings;
        if let Some(llc) = c.caches.iter().max_by_key(|k| k.level)
            && let Some(p) = llc
                .shared_cpus
                .iter()
                .copied()
                .find(|p| *p != cpu && !siblings.contains(p))
        {
            return Some(p);
        }
        self.cpus
            .iter()
            .map(|c| c.id)
            .find(|p| *p != cpu && !siblings.contains(p))
    }

    /// Size in bytes of `cpu`'s cache at `level` that holds data (data or unified).
    pub fn data_cache(&self, cpu: usize, level: u8) -> Option<u64> {
        let c = self.cpu(cpu).ok()?;
        c.caches
            .iter()
            .find(|k| k.level == level && k.kind != CacheType::Instruction)
            .map(|k| k.size)
    }

    /// Size in bytes of `cpu`'s L1 instruction cache.
    pub fn l1i(&self, cpu: usize) -> Option<u64> {
        let c = self.cpu(cpu).ok()?;
        c.caches
            .iter()
            .find(|k| k.level == 1 && k.kind == CacheType::Instruction)
            .map(|k| k.size)
    }

    /// Size in bytes of `cpu`'s last-level cache.
    pub fn llc(&self, cpu: usize) -> Option<u64> {
        let c = self.cpu(cpu).ok()?;
        c.caches
            .iter()
            .filter(|k| k.kind != CacheType::Instruction)
            .max_by_key(|k| k.level)
            .map(|k| k.size)
    }
}

fn read_cache(idx: &Path, cpu: usize) -> Result<Cache, TopologyError> {
    let lp = idx.join("level");
    let lt = read(&lp)?;
    let level: u8 = lt
        .trim()
        .parse()
        .map_err(|e| parse_err(&lp, &lt, format!("{e}")))?;
    let tp = idx.join("type");
    let tt = read(&tp)?;
    let kind = match tt.trim() {
        "Data" => CacheType::Data,
        "Instruction" => CacheType::Instruction,
        "Unified" => CacheType::Unified,
        other => return Err(parse_err(&tp, other, "unknown cache type".into())),
    };
    let sp = idx.join("size");
    let st = read(&sp)?;
    let size = parse_size(&st).map_err(|r| parse_err(&sp, &st, r))?;
    let line = fs::read_to_string(idx.join("coherency_line_size"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(64);
    let shp = idx.join("shared_cpu_list");
    let shared_cpus = match fs::read_to_string(&shp) {
        Ok(t) => parse_cpu_list(&t).map_err(|r| parse_err(&shp, &t, r))?,
        Err(_) => vec![cpu],
    };
    Ok(Cache {
        level,
        kind,
        size,
        line,
        shared_cpus,
    })
}

/// Build a fake sysfs CPU tree for tests, laid out as the kernel lays it out.
#[cfg(test)]
pub mod test_util {
    use std::fs;
    use std::path::Path;

    /// Write `cpuN` with the given caches `(level, type, size, shared_list)` and siblings.
    pub fn write_cpu(
        root: &Path,
        id: usize,
        caches: &[(u8, &str, &str, &str)],
        siblings: &str,
    ) -> std::io::Result<()> {
        let dir = root.join(format!("cpu{id}"));
        for (i, (level, ty, size, shared)) in caches.iter().enumerate() {
            let idx = dir.join(format!("cache/index{i}"));
            fs::create_dir_all(&idx)?;
            fs::write(idx.join("level"), format!("{level}\n"))?;
            fs::write(idx.join("type"), format!("{ty}\n"))?;
            fs::write(idx.join("size"), format!("{size}\n"))?;
            fs::write(idx.join("coherency_line_size"), "64\n")?;
            fs::write(idx.join("shared_cpu_list"), format!("{shared}\n"))?;
        }
        fs::create_dir_all(dir.join("topology"))?;
        fs::write(
            dir.join("topology/thread_siblings_list"),
            format!("{siblings}\n"),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_parse_like_sysfs() {
        assert_eq!(parse_size("32K\n"), Ok(32 * 1024));
        assert_eq!(parse_size("32768K"), Ok(32 * 1024 * 1024));
        assert_eq!(parse_size("1M"), Ok(1024 * 1024));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("12Q").is_err());
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-1\n"), Ok(vec![0, 1]));
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Ok(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("5"), Ok(vec![5]));
        assert_eq!(parse_cpu_list(""), Ok(vec![]));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    proptest! {
        #[test]
        fn size_roundtrips_through_k_suffix(kib in 0u64..(1 << 40)) {
            prop_assert_eq!(parse_size(&format!("{kib}K")), Ok(kib * 1024));
        }

        #[test]
        fn cpu_list_roundtrips(cpus in proptest::collection::btree_set(0usize..256, 0..20)) {
            let text = cpus.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
            prop_assert_eq!(parse_cpu_list(&text), Ok(cpus.into_iter().collect::<Vec<_>>()));
        }
    }

    fn fake_two_core_no_smt(root: &Path) {
        fs::write(root.join("online"), "0-1\n").unwrap();
        for id in 0..2 {
            let own = id.to_string();
            test_util::write_cpu(
                root,
                id,
                &[
                    (1, "Data", "32K", &own),
                    (1, "Instruction", "32K", &own),
                    (2, "Unified", "512K", &own),
                    (3, "Unified", "32768K", "0-1"),
                ],
                &own,
            )
            .unwrap();
        }
    }

    #[test]
    fn reads_a_two_core_machine_without_smt() {
        let dir = tempfile::tempdir().unwrap();
        fake_two_core_no_smt(dir.path());
        let t = Topology::at(dir.path()).unwrap();
        assert_eq!(t.online(), vec![0, 1]);
        assert!(!t.has_smt());
        assert_eq!(t.smt_sibling(0), None);
        assert_eq!(t.llc_peer(0), Some(1));
        assert_eq!(t.data_cache(0, 1), Some(32 * 1024));
        assert_eq!(t.l1i(1), Some(32 * 1024));
        assert_eq!(t.data_cache(0, 2), Some(512 * 1024));
        assert_eq!(t.llc(0), Some(32 * 1024 * 1024));
        assert!(matches!(
            t.cpu(7),
            Err(TopologyError::NoSuchCpu { cpu: 7, .. })
        ));
    }

    #[test]
    fn smt_sibling_is_found_and_llc_peer_skips_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("online"), "0-3\n").unwrap();
        for id in 0..4usize {
            let sib = if id % 2 == 0 {
                format!("{},{}", id, id + 1)
            } else {
                format!("{},{}", id - 1, id)
            };
            test_util::write_cpu(
                root,
                id,
                &[(1, "Data", "48K", &sib), (3, "Unified", "8M", "0-3")],
                &sib,
            )
            .unwrap();
        }
        let t = Topology::at(root).unwrap();
        assert!(t.has_smt());
        assert_eq!(t.smt_sibling(0), Some(1));
        assert_eq!(t.smt_sibling(3), Some(2));
        assert_eq!(t.llc_peer(0), Some(2));
        assert_eq!(t.llc(2), Some(8 * 1024 * 1024));
    }

    #[test]
    fn bad_cache_size_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("online"), "0\n").unwrap();
        test_util::write_cpu(root, 0, &[(1, "Data", "lots", "0")], "0").unwrap();
        let err = Topology::at(root).unwrap_err().to_string();
        assert!(err.contains("index0/size"), "{err}");
        assert!(err.contains("lots"), "{err}");
    }

    #[test]
    fn missing_root_names_the_path() {
        let err = Topology::at(Path::new("/nonexistent/cpu")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cpu/online"));
    }
}
