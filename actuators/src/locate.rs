//! Finding the cgroup of a task: Nomad exec/raw_exec tasks, Docker containers
//! (cgroupfs and systemd drivers), systemd units, and any pid through
//! `/proc/<pid>/cgroup`. Paths returned are relative to the hierarchy root
//! (`/docker/<id>`), ready for an [`crate::Action`].

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::{CgroupFs, Controller};

/// Errors from locating a task's cgroup.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// Reading `/proc/<pid>/cgroup` failed (usually: no such process).
    #[error("failed to read {path}: {source}")]
    Proc {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A line of `/proc/<pid>/cgroup` did not parse.
    #[error("unexpected line {line:?} in {path}")]
    ProcFormat {
        /// The file.
        path: PathBuf,
        /// The line.
        line: String,
    },
    /// The task is in different v1 cgroups per controller.
    #[error(
        "pid {pid} is in different cgroups per controller ({paths}); name the cgroup path instead"
    )]
    Split {
        /// The pid.
        pid: u32,
        /// `controller:path` pairs.
        paths: String,
    },
    /// No cgroup found for the task.
    #[error("no cgroup found for {task}; looked at {looked}")]
    NotFound {
        /// The task.
        task: String,
        /// Paths tried.
        looked: String,
    },
    /// A Docker id prefix matching more than one container.
    #[error("docker id prefix {prefix:?} is ambiguous: {matches}")]
    Ambiguous {
        /// The prefix.
        prefix: String,
        /// What matched.
        matches: String,
    },
    /// A name that could escape the hierarchy or is malformed.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What kind of name.
        what: &'static str,
        /// The name.
        value: String,
        /// Why.
        reason: &'static str,
    },
}

/// A task whose cgroup is wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskRef {
    /// Any process.
    Pid {
        /// Process id.
        pid: u32,
    },
    /// A Nomad exec/raw_exec task.
    Nomad {
        /// Allocation id (UUID).
        alloc_id: String,
        /// Task name.
        task: String,
    },
    /// A Docker container, by full id or unique prefix.
    Docker {
        /// Container id (hex).
        id: String,
    },
    /// A systemd unit (`nginx.service`, `machine.slice`).
    SystemdUnit {
        /// Unit name.
        unit: String,
    },
    /// A cgroup path given directly.
    Cgroup {
        /// Path relative to the hierarchy root.
        path: String,
    },
}

impl std::fmt::Display for TaskRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskRef::Pid { pid } => write!(f, "pid {pid}"),
            TaskRef::Nomad { alloc_id, task } => write!(f, "nomad task {alloc_id}.{task}"),
            TaskRef::Docker { id } => write!(f, "docker container {id}"),
            TaskRef::SystemdUnit { unit } => write!(f, "systemd unit {unit}"),
            TaskRef::Cgroup { path } => write!(f, "cgroup {path}"),
        }
    }
}

/// The parsed content of `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroup {
    /// v1 controller name → path (`cpu` → `/docker/abc`); a line
    /// `4:cpu,cpuacct:/x` gives both names.
    pub v1: BTreeMap<String, String>,
    /// The v2 path (`0::/x`), when present.
    pub v2: Option<String>,
}

/// Parses `/proc/<pid>/cgroup` (`hierarchy-id:controllers:path` lines).
pub fn parse_proc_cgroup(text: &str) -> Result<ProcCgroup, String> {
    let mut out = ProcCgroup::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            return Err(line.to_string());
        };
        if id == "0" && ctrls.is_empty() {
            out.v2 = Some(path.to_string());
            continue;
        }
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            out.v1.insert(c.to_string(), path.to_string());
        }
    }
    Ok(out)
}

/// Finds cgroups of tasks in one hierarchy.
#[derive(Debug, Clone)]
pub struct Locator {
    fs: CgroupFs,
    proc_root: PathBuf,
}

impl Locator {
    /// A locator for hierarchy `fs`, reading processes under `proc_root`
    /// (`/proc` on a host).
    pub fn new(fs: CgroupFs, proc_root: impl Into<PathBuf>) -> Locator {
        Locator {
            fs,
            proc_root: proc_root.into(),
        }
    }

    fn exists(&self, rel: &str) -> bool {
        self.fs.dir(Controller::Cpu, rel).is_dir()
    }

    fn first_existing(&self, task: &TaskRef, candidates: &[String]) -> Result<String, LocateError> {
        candidates
            .iter()
            .find(|c| self.exists(c))
            .cloned()
            .ok_or_else(|| LocateError::NotFound {
                task: task.to_string(),
                looked: candidates.join(", "),
            })
    }

    /// The cgroup path of `task`, relative to the hierarchy root.
    pub fn locate(&self, task: &TaskRef) -> Result<String, LocateError> {
        match task {
            TaskRef::Cgroup { path } => {
                check_rel(path)?;
                let p = format!("/{}", path.trim_start_matches('/'));
                self.first_existing(task, &[p])
            }
            TaskRef::Nomad {
                alloc_id,
                task: name,
            } => {
                check_name("nomad allocation id", alloc_id)?;
                check_name("nomad task name", name)?;
                let c = if self.fs.mode().is_v1() {
                    vec![format!("/nomad/{alloc_id}.{name}")]
                } else {
                    vec![
                        format!("/nomad.slice/share.slice/{alloc_id}.{name}.scope"),
                        format!("/nomad.slice/reserve.slice/{alloc_id}.{name}.scope"),
                    ]
                };
                self.first_existing(task, &c)
            }
            TaskRef::Docker { id } => self.docker(task, id),
            TaskRef::SystemdUnit { unit } => self.systemd(task, unit),
            TaskRef::Pid { pid } => self.pid(*pid),
        }
    }

    fn docker(&self, task: &TaskRef, id: &str) -> Result<String, LocateError> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LocateError::Invalid {
                what: "docker container id",
                value: id.to_string(),
                reason: "expected 1 to 64 hex digits",
            });
        }
        let id = id.to_ascii_lowercase();
        // cgroupfs driver: /docker/<id>; systemd driver: /system.slice/docker-<id>.scope.
        let mut found = Vec::new();
        for (parent, prefix, suffix) in
            [("/docker", "", ""), ("/system.slice", "docker-", ".scope")]
        {
            let dir = self.fs.dir(Controller::Cpu, parent);
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let rest = name.strip_prefix(prefix).and_then(|r| {
                    if suffix.is_empty() {
                        Some(r)
                    } else {
                        r.strip_suffix(suffix)
                    }
                });
                let Some(rest) = rest else { continue };
                if rest.starts_with(&id) && rest.len() == 64 && e.path().is_dir() {
                    found.push(format!("{parent}/{name}"));
                }
            }
        }
        match found.len() {
            0 => Err(LocateError::NotFound {
                task: task.to_string(),
                looked: format!("/docker/{id}*, /system.slice/docker-{id}*.scope"),
            }),
            1 => Ok(found.remove(0)),
            _ => Err(LocateError::Ambiguous {
                prefix: id,
                matches: found.join(", "),
            }),
        }
    }

    fn systemd(&self, task: &TaskRef, unit: &str) -> Result<String, LocateError> {
        check_name("systemd unit", unit)?;
        if !unit.contains('.') {
            return Err(LocateError::Invalid {
                what: "systemd unit",
                value: unit.to_string(),
                reason: "expected a unit type suffix such as .service or .slice",
            });
        }
        if let Some(stem) = unit.strip_suffix(".slice") {
            // a-b-c.slice lives at /a.slice/a-b.slice/a-b-c.slice; -.slice is the root.
            if stem == "-" {
                return Ok("/".to_string());
            }
            let parts: Vec<&str> = stem.split('-').collect();
            let mut path = String::new();
            for i in 1..=parts.len() {
                path.push('/');
                path.push_str(&parts[..i].join("-"));
                path.push_str(".slice");
            }
            return self.first_existing(task, &[path]);
        }
        let mut looked = Vec::new();
        for slice in ["/system.slice", "/user.slice", "/machine.slice", ""] {
            let p = format!("{slice}/{unit}");
            if self.exists(&p) {
                return Ok(p);
            }
            looked.push(p);
        }
        // Units in nested slices: a bounded search.
        if let Some(p) = find_dir(&self.fs.dir(Controller::Cpu, "/"), unit, 4) {
            return Ok(p);
        }
        Err(LocateError::NotFound {
            task: task.to_string(),
            looked: format!("{} and slices up to 4 levels deep", looked.join(", ")),
        })
    }

    fn pid(&self, pid: u32) -> Result<String, LocateError> {
        let path = self.proc_root.join(pid.to_string()).join("cgroup");
        let text = fs::read_to_string(&path).map_err(|source| LocateError::Proc {
            path: path.clone(),
            source,
        })?;
        let pc = parse_proc_cgroup(&text).map_err(|line| LocateError::ProcFormat {
            path: path.clone(),
            line,
        })?;
        if !self.fs.mode().is_v1() {
            return pc.v2.ok_or_else(|| LocateError::NotFound {
                task: format!("pid {pid}"),
                looked: format!("the 0:: line of {}", path.display()),
            });
        }
        let paths: BTreeMap<&str, &String> = Controller::ALL
            .iter()
            .filter_map(|c| pc.v1.get(c.name()).map(|p| (c.name(), p)))
            .collect();
        let mut distinct: Vec<&String> = paths.values().copied().collect();
        distinct.sort();
        distinct.dedup();
        match distinct.as_slice() {
            [] => Err(LocateError::NotFound {
                task: format!("pid {pid}"),
                looked: format!("cpu, cpuset, memory, blkio lines of {}", path.display()),
            }),
            [one] => Ok((*one).clone()),
            _ => Err(LocateError::Split {
                pid,
                paths: paths
                    .iter()
                    .map(|(c, p)| format!("{c}:{p}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

fn find_dir(root: &Path, name: &str, depth: usize) -> Option<String> {
    let mut level = vec![(root.to_path_buf(), String::new())];
    for _ in 0..depth {
        let mut next = Vec::new();
        for (dir, rel) in level {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let n = e.file_name().to_string_lossy().into_owned();
                let r = format!("{rel}/{n}");
                if n == name {
                    return Some(r);
                }
                next.push((e.path(), r));
            }
        }
        level = next;
    }
    None
}

fn check_name(what: &'static str, v: &str) -> Result<(), LocateError> {
    let bad = |reason| LocateError::Invalid {
        what,
        value: v.to_string(),
        reason,
    };
    if v.is_empty() {
        return Err(bad("empty"));
    }
    if v.contains('/') || v == "." || v == ".." || v.contains('\0') {
        return Err(bad("must not contain '/' or be '.' or '..'"));
    }
    Ok(())
}

fn check_rel(p: &str) -> Result<(), LocateError> {
    if p.split('/').any(|c| c == "..") || p.contains('\0') {
        return Err(LocateError::Invalid {
            what: "cgroup path",
            value: p.to_string(),
            reason: "must not contain '..'",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_golden() {
        // This machine (hybrid v1).
        let text = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/6dec\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";
        let p = parse_proc_cgroup(text).expect("parse");
        assert_eq!(
            p.v1.get("memory").map(String::as_str),
            Some("/process_api/6dec")
        );
        assert_eq!(p.v1.get("name=systemd").map(String::as_str), Some("/"));
        assert_eq!(p.v2.as_deref(), Some("/"));
        // A Docker container on a systemd v1 host.
        let text = "4:cpu,cpuacct:/system.slice/docker-ab.scope\n";
        let p = parse_proc_cgroup(text).expect("parse");
        assert_eq!(p.v1.get("cpuacct"), p.v1.get("cpu"));
        // Pure v2; a path containing ':' keeps it.
        let p = parse_proc_cgroup("0::/nomad.slice/share.slice/a:b.scope\n").expect("parse");
        assert_eq!(p.v2.as_deref(), Some("/nomad.slice/share.slice/a:b.scope"));
        assert!(parse_proc_cgroup("garbage\n").is_err());
    }

    #[test]
    fn names_cannot_escape() {
        assert!(check_name("x", "../etc").is_err());
        assert!(check_name("x", "..").is_err());
        assert!(check_name("x", "").is_err());
        assert!(check_rel("/a/../../etc").is_err());
        assert!(check_rel("/a/b").is_ok());
    }
}
