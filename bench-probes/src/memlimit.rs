//! Memory limits that bound the `memcap` probe: `MemAvailable` from
//! `/proc/meminfo` and the memory limit of a cgroup (v1 `memory.limit_in_bytes`
//! or v2 `memory.max`). Parsers are pure; paths are arguments.

use std::fs;
use std::path::{Path, PathBuf};

/// Errors while reading memory limits.
#[derive(Debug, thiserror::Error)]
pub enum MemLimitError {
    /// A file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file did not hold what was expected.
    #[error("invalid contents in {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// `MemAvailable` in bytes from the text of `/proc/meminfo`.
pub fn parse_mem_available(meminfo: &str) -> Result<u64, String> {
    for line in meminfo.lines() {
        if let Some(rest) = line.strip_prefix("MemAvailable:") {
            let mut it = rest.split_whitespace();
            let n: u64 = it
                .next()
                .ok_or("MemAvailable has no value")?
                .parse()
                .map_err(|e| format!("MemAvailable value: {e}"))?;
            return match it.next() {
                Some("kB") => Ok(n * 1024),
                None => Ok(n),
                Some(u) => Err(format!("unknown unit {u:?}")),
            };
        }
    }
    Err("no MemAvailable line".into())
}

/// A cgroup memory limit file's value: `None` for no limit (`max` in v2, or the
/// v1 "unlimited" value near `i64::MAX`).
pub fn parse_limit(text: &str) -> Result<Option<u64>, String> {
    let t = text.trim();
    if t == "max" {
        return Ok(None);
    }
    let n: u64 = t.parse().map_err(|e| format!("limit {t:?}: {e}"))?;
    // cgroup v1 reports "no limit" as PAGE_COUNTER_MAX * PAGE_SIZE, just under 2^63.
    if n >= (1u64 << 62) {
        Ok(None)
    } else {
        Ok(Some(n))
    }
}

/// The memory-controller cgroup path of a process from its `/proc/<pid>/cgroup`
/// text: the v1 line naming `memory`, else the v2 `0::` line. Returns
/// `(path, is_v2)`.
pub fn parse_proc_cgroup(text: &str) -> Option<(String, bool)> {
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if ctrls.split(',').any(|c| c == "memory") {
            return Some((path.to_string(), false));
        }
        if ctrls.is_empty() {
            v2 = Some((path.to_string(), true));
        }
    }
    v2
}

/// Read `MemAvailable` from a meminfo file (normally `/proc/meminfo`).
pub fn mem_available(meminfo: &Path) -> Result<u64, MemLimitError> {
    let text = fs::read_to_string(meminfo).map_err(|source| MemLimitError::Read {
        path: meminfo.to_path_buf(),
        source,
    })?;
    parse_mem_available(&text).map_err(|reason| MemLimitError::Parse {
        path: meminfo.to_path_buf(),
        reason,
    })
}

/// The memory limit of the cgroup directory `dir` (v2 `memory.max` or v1
/// `memory.limit_in_bytes`), `None` when unlimited.
pub fn cgroup_limit(dir: &Path) -> Result<Option<u64>, MemLimitError> {
    let v2 = dir.join("memory.max");
    let v1 = dir.join("memory.limit_in_bytes");
    let path = if v2.exists() { v2 } else { v1 };
    let text = fs::read_to_string(&path).map_err(|source| MemLimitError::Read {
        path: path.clone(),
        source,
    })?;
    parse_limit(&text).map_err(|reason| MemLimitError::Parse { path, reason })
}

/// The memory cgroup directory of the current process, given the cgroup
/// filesystem root (normally `/sys/fs/cgroup`) and the text of
/// `/proc/self/cgroup`. `None` when neither layout is found.
pub fn own_cgroup_dir(cgroup_root: &Path, proc_self_cgroup: &str) -> Option<PathBuf> {
    let (path, v2) = parse_proc_cgroup(proc_self_cgroup)?;
    let rel = path.trim_start_matches('/');
    let dir = if v2 {
        cgroup_root.join(rel)
    } else {
        cgroup_root.join("memory").join(rel)
    };
    dir.is_dir().then_some(dir)
}

/// The bytes the `memcap` probe may take: `share` of the smaller of
/// `MemAvailable` and the cgroup limit, never above `max_bytes`.
pub fn memcap_cap(
    mem_available: u64,
    cgroup_limit: Option<u64>,
    share: f64,
    max_bytes: u64,
) -> u64 {
    let base = cgroup_limit.map_or(mem_available, |l| l.min(mem_available));
    let share = share.clamp(0.0, 1.0);
    ((base as f64 * share) as u64).min(max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MEMINFO: &str = "MemTotal:       24684544 kB\nMemFree:        24100000 kB\nMemAvailable:   24385024 kB\nBuffers:           10000 kB\n";

    #[test]
    fn meminfo_golden() {
        assert_eq!(parse_mem_available(MEMINFO), Ok(24385024 * 1024));
        assert!(parse_mem_available("MemTotal: 1 kB\n").is_err());
        assert!(parse_mem_available("MemAvailable: x kB\n").is_err());
    }

    #[test]
    fn limits_golden() {
        assert_eq!(parse_limit("max\n"), Ok(None));
        assert_eq!(parse_limit("9223372036854771712\n"), Ok(None));
        assert_eq!(parse_limit("268435456\n"), Ok(Some(268435456)));
        assert!(parse_limit("lots").is_err());
    }

    #[test]
    fn proc_cgroup_golden() {
        let v1 = "9:name=systemd:/\n4:memory:/process_api/d9fa\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(v1),
            Some(("/process_api/d9fa".into(), false))
        );
        let v2 = "0::/system.slice/seer.service\n";
        assert_eq!(
            parse_proc_cgroup(v2),
            Some(("/system.slice/seer.service".into(), true))
        );
        assert_eq!(parse_proc_cgroup("garbage"), None);
    }

    #[test]
    fn own_cgroup_dir_follows_the_layout() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("memory/a/b")).unwrap();
        assert_eq!(
            own_cgroup_dir(d.path(), "4:memory:/a/b\n"),
            Some(d.path().join("memory/a/b"))
        );
        std::fs::create_dir_all(d.path().join("x")).unwrap();
        assert_eq!(
            own_cgroup_dir(d.path(), "0::/x\n"),
            Some(d.path().join("x"))
        );
        assert_eq!(own_cgroup_dir(d.path(), "0::/missing\n"), None);
    }

    #[test]
    fn cgroup_limit_reads_v1_and_v2() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("memory.limit_in_bytes"), "1048576\n").unwrap();
        assert_eq!(cgroup_limit(d.path()).unwrap(), Some(1048576));
        std::fs::write(d.path().join("memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_limit(d.path()).unwrap(), None);
        let err = cgroup_limit(&d.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope/memory.limit_in_bytes"), "{err}");
    }

    proptest! {
        #[test]
        fn cap_never_exceeds_share_of_either_bound(
            avail in 0u64..(1 << 40),
            limit in proptest::option::of(0u64..(1 << 40)),
            share in 0.0f64..1.0,
            max in 0u64..(1 << 40),
        ) {
            let cap = memcap_cap(avail, limit, share, max);
            prop_assert!(cap as f64 <= avail as f64 * share + 1.0);
            if let Some(l) = limit { prop_assert!(cap as f64 <= l as f64 * share + 1.0); }
            prop_assert!(cap <= max);
        }
    }
}
