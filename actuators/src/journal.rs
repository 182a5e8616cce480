//! The action journal: append-only JSON lines, fsync'd before an action
//! touches the kernel and again when it is done, so that `reconcile` can
//! finish or undo whatever a crash interrupted.
//!
//! Each line is one record with a format version `v`. The first record of an
//! action (state `pending`, or `dry_run`) carries everything: id, action,
//! target, previous value (read just before), baseline (what a revert
//! restores), new value, applied-at, expires-at. Later records carry only the
//! id and the new state. A torn last line (crash mid-write) is cut off on
//! open; a record from a newer format version is refused. The file is held
//! with an exclusive `flock` so two agents never interleave.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::action::{Action, Knob, Setting};

/// The journal format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Errors from the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// An I/O error on the journal file.
    #[error("failed to {what} journal {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another process holds the journal.
    #[error("journal {0} is locked by another process (is another agent running?)")]
    Locked(PathBuf),
    /// A record written by a newer version.
    #[error(
        "journal {path} line {line} was written by format version {found}; this build reads up to version {supported}: upgrade seer or move the journal aside"
    )]
    NewerVersion {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Version found.
        found: u64,
        /// Newest version supported.
        supported: u32,
    },
    /// A line other than the last does not parse.
    #[error("journal {path} line {line} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A state change for an id the journal does not know.
    #[error("journal {path} has no entry with id {id}")]
    UnknownId {
        /// The file.
        path: PathBuf,
        /// The id.
        id: u64,
    },
    /// Serialising a record failed.
    #[error("failed to encode journal record for id {id}: {source}")]
    Encode {
        /// The id.
        id: u64,
        /// The cause.
        source: serde_json::Error,
    },
}

/// The state of a journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Intent recorded; the kernel may have been written partly or fully.
    Pending,
    /// Fully applied and in force.
    Applied,
    /// Revert recorded; the kernel may have been restored partly or fully.
    Reverting,
    /// Restored to the baseline. Terminal.
    Reverted,
    /// Applying failed and the previous value was restored, or a crash
    /// interrupted it and `reconcile` rolled it back. Terminal.
    RolledBack,
    /// A later action on the same knob took over (its revert restores this
    /// one's baseline). Terminal.
    Superseded,
    /// Recorded by a dry run; nothing was touched. Terminal.
    DryRun,
}

impl State {
    /// True when nothing further will happen to the entry.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Reverted | State::RolledBack | State::Superseded | State::DryRun
        )
    }
}

/// One action as the journal knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Unique, increasing id.
    pub id: u64,
    /// Current state.
    pub state: State,
    /// What was asked.
    pub action: Action,
    /// The knob, as text (`cgroup:/docker/abc#cpu.max`).
    pub target: String,
    /// The knob's value read just before the action.
    pub previous: Setting,
    /// What a revert restores: `previous`, or the baseline of the action this
    /// one supersedes.
    pub baseline: Setting,
    /// The value the action sets.
    pub new: Setting,
    /// The applied action on the same knob this one replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<u64>,
    /// When the action was applied.
    #[serde(with = "rfc3339")]
    pub applied_at: SystemTime,
    /// When the action should be reverted (the hotspot has passed).
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<SystemTime>,
}

impl Entry {
    /// The knob the entry changes.
    pub fn knob(&self) -> Knob {
        self.action.knob()
    }
}

#[derive(Serialize)]
struct IntentOut<'a> {
    v: u32,
    #[serde(flatten)]
    entry: &'a Entry,
}

#[derive(Serialize, Deserialize)]
struct Transition {
    v: u32,
    id: u64,
    state: State,
    #[serde(with = "rfc3339")]
    at: SystemTime,
}

/// Whether records are fsync'd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fdatasync` after every record (the default: crash safe).
    Fsync,
    /// No sync: for benchmarks and tests that measure the cost of fsync.
    NoSync,
}

/// What opening the journal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Records read.
    pub records: usize,
    /// Bytes of a torn last line that were cut off (0 when none).
    pub torn_bytes: usize,
}

/// The open, locked journal and the state of every entry.
pub struct Journal {
    path: PathBuf,
    file: Flock<File>,
    durability: Durability,
    live: BTreeMap<u64, Entry>,
    finished: HashMap<u64, State>,
    next_id: u64,
    report: OpenReport,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("live", &self.live.len())
            .field("next_id", &self.next_id)
            .finish()
    }
}

impl Journal {
    /// Opens (creating if needed) and locks the journal at `path`, replays
    /// it and cuts off a torn last line.
    pub fn open(path: impl Into<PathBuf>, durability: Durability) -> Result<Journal, JournalError> {
        let path = path.into();
        let io = |what, source| JournalError::Io {
            what,
            path: path.clone(),
            source,
        };
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io("open", e))?;
        if !existed && durability == Durability::Fsync {
            // The new file's name must survive a crash too.
            sync_parent(&path).map_err(|e| io("fsync directory of", e))?;
        }
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((_, nix::Error::EWOULDBLOCK)) => return Err(JournalError::Locked(path)),
            Err((_, e)) => return Err(io("lock", e.into())),
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
        file.read_to_end(&mut bytes).map_err(|e| io("read", e))?;
        let (replay, good_len) = replay(&path, &bytes)?;
        let report = OpenReport {
            records: replay.records,
            torn_bytes: bytes.len() - good_len,
        };
        if report.torn_bytes > 0 {
            tracing::warn!(path = %path.display(), bytes = report.torn_bytes, "cutting torn last journal line");
            file.set_len(good_len as u64)
                .map_err(|e| io("truncate", e))?;
            file.sync_all().map_err(|e| io("fsync", e))?;
        }
        Ok(Journal {
            path,
            file,
            durability,
            live: replay.live,
            finished: replay.finished,
            next_id: replay.max_id + 1,
            report,
            buf: Vec::with_capacity(1024),
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What opening found.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// Entries that are not finished (pending, applied, reverting), by id.
    pub fn live(&self) -> impl Iterator<Item = &Entry> {
        self.live.values()
    }

    /// A live entry.
    pub fn get(&self, id: u64) -> Option<&Entry> {
        self.live.get(&id)
    }

    /// The terminal state of a finished entry.
    pub fn finished_state(&self, id: u64) -> Option<State> {
        self.finished.get(&id).copied()
    }

    /// How many finished entries the file holds that [`Journal::compact`]
    /// would drop (counted since open or the last compaction).
    pub fn finished_count(&self) -> usize {
        self.finished.len()
    }

    /// The applied entry currently in force on `knob`, if any.
    pub fn active_on(&self, knob: &Knob) -> Option<&Entry> {
        self.live
            .values()
            .rev()
            .find(|e| e.state == State::Applied && &e.knob() == knob)
    }

    /// The id the next entry will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Records a new entry (its `id` is assigned here) and syncs it.
    pub fn begin(&mut self, mut entry: Entry) -> Result<u64, JournalError> {
        entry.id = self.next_id;
        let id = entry.id;
        self.buf.clear();
        serde_json::to_writer(
            &mut self.buf,
            &IntentOut {
                v: FORMAT_VERSION,
                entry: &entry,
            },
        )
        .map_err(|source| JournalError::Encode { id, source })?;
        self.buf.push(b'\n');
        self.append()?;
        self.next_id += 1;
        if entry.state.is_terminal() {
            self.finished.insert(id, entry.state);
        } else {
            self.live.insert(id, entry);
        }
        Ok(id)
    }

    /// Records a state change and syncs it. An entry reaching `Applied`
    /// supersedes the one it names.
    pub fn transition(
        &mut self,
        id: u64,
        state: State,
        at: SystemTime,
    ) -> Result<(), JournalError> {
        if !self.live.contains_key(&id) {
            return Err(JournalError::UnknownId {
                path: self.path.clone(),
                id,
            });
        }
        self.buf.clear();
        serde_json::to_writer(
            &mut self.buf,
            &Transition {
                v: FORMAT_VERSION,
                id,
                state,
                at,
            },
        )
        .map_err(|source| JournalError::Encode { id, source })?;
        self.buf.push(b'\n');
        self.append()?;
        apply_transition(&mut self.live, &mut self.finished, id, state);
        Ok(())
    }

    fn append(&mut self) -> Result<(), JournalError> {
        let io = |what, source| JournalError::Io {
            what,
            path: self.path.clone(),
            source,
        };
        // One write(2) on an O_APPEND file: a crash leaves the record whole
        // or torn at the end, never interleaved.
        self.file
            .write_all(&self.buf)
            .map_err(|e| io("append to", e))?;
        if self.durability == Durability::Fsync {
            self.file.sync_data().map_err(|e| io("fsync", e))?;
        }
        Ok(())
    }

    /// Rewrites the journal with only the live entries (atomically: a new
    /// file is synced, renamed over the old one, and the directory synced).
    /// Finished entries are forgotten.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        let io = |what, source| JournalError::Io {
            what,
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("compact.tmp");
        let mut out = Vec::new();
        for e in self.live.values() {
            let state = e.state;
            let mut first = e.clone();
            first.state = State::Pending;
            serde_json::to_writer(
                &mut out,
                &IntentOut {
                    v: FORMAT_VERSION,
                    entry: &first,
                },
            )
            .map_err(|source| JournalError::Encode { id: e.id, source })?;
            out.push(b'\n');
            if state != State::Pending {
                serde_json::to_writer(
                    &mut out,
                    &Transition {
                        v: FORMAT_VERSION,
                        id: e.id,
                        state,
                        at: SystemTime::now(),
                    },
                )
                .map_err(|source| JournalError::Encode { id: e.id, source })?;
                out.push(b'\n');
            }
        }
        {
            let mut f = File::create(&tmp).map_err(|e| io("create compacted", e))?;
            f.write_all(&out).map_err(|e| io("write compacted", e))?;
            f.sync_all().map_err(|e| io("fsync compacted", e))?;
        }
        // Lock the new file before it replaces the old one.
        let new = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&tmp)
            .map_err(|e| io("open compacted", e))?;
        let new = Flock::lock(new, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| io("lock compacted", e.into()))?;
        fs::rename(&tmp, &self.path).map_err(|e| io("rename compacted", e))?;
        sync_parent(&self.path).map_err(|e| io("fsync directory of", e))?;
        self.file = new;
        self.finished.clear();
        Ok(())
    }
}

fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn apply_transition(
    live: &mut BTreeMap<u64, Entry>,
    finished: &mut HashMap<u64, State>,
    id: u64,
    state: State,
) {
    let mut superseded = None;
    if let Some(e) = live.get_mut(&id) {
        e.state = state;
        if state == State::Applied {
            superseded = e.supersedes;
        }
    }
    if state.is_terminal() {
        live.remove(&id);
        finished.insert(id, state);
    }
    if let Some(old) = superseded
        && live.get(&old).is_some_and(|e| e.state == State::Applied)
    {
        live.remove(&old);
        finished.insert(old, State::Superseded);
    }
}

struct Replay {
    live: BTreeMap<u64, Entry>,
    finished: HashMap<u64, State>,
    max_id: u64,
    records: usize,
}

/// Replays journal bytes; returns the state and the length of the good
/// prefix (everything up to a torn last line).
fn replay(path: &Path, bytes: &[u8]) -> Result<(Replay, usize), JournalError> {
    let mut r = Replay {
        live: BTreeMap::new(),
        finished: HashMap::new(),
        max_id: 0,
        records: 0,
    };
    let mut pos = 0;
    let mut line_no = 0;
    while pos < bytes.len() {
        line_no += 1;
        let (line, next, complete) = match bytes[pos..].iter().position(|b| *b == b'\n') {
            Some(n) => (&bytes[pos..pos + n], pos + n + 1, true),
            None => (&bytes[pos..], bytes.len(), false),
        };
        let is_last = next >= bytes.len();
        let corrupt = |reason: String| JournalError::Corrupt {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        if line.iter().all(u8::is_ascii_whitespace) && complete {
            pos = next;
            continue;
        }
        let value: serde_json::Value = match serde_json::from_slice(line) {
            Ok(v) if complete => v,
            // A last line without its newline, or one that does not parse,
            // is a record whose write never finished: cut it off.
            Ok(_) | Err(_) if is_last => return Ok((r, pos)),
            Ok(_) => return Err(corrupt("missing newline".into())),
            Err(e) => return Err(corrupt(e.to_string())),
        };
        let v = value
            .get("v")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| corrupt("no format version \"v\"".into()))?;
        if v > u64::from(FORMAT_VERSION) {
            return Err(JournalError::NewerVersion {
                path: path.to_path_buf(),
                line: line_no,
                found: v,
                supported: FORMAT_VERSION,
            });
        }
        if value.get("action").is_some() {
            let e: Entry = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
            r.max_id = r.max_id.max(e.id);
            if e.state.is_terminal() {
                r.finished.insert(e.id, e.state);
            } else {
                r.live.insert(e.id, e);
            }
        } else {
            let t: Transition =
                serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
            if !r.live.contains_key(&t.id) && !r.finished.contains_key(&t.id) {
                return Err(corrupt(format!("state change for unknown id {}", t.id)));
            }
            apply_transition(&mut r.live, &mut r.finished, t.id, t.state);
        }
        r.records += 1;
        pos = next;
    }
    Ok((r, pos))
}

/// RFC 3339 timestamps with microseconds, in UTC.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_micros(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339(&s).map_err(D::Error::custom)
    }
}

/// Optional RFC 3339 timestamps.
mod rfc3339_opt {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&humantime::format_rfc3339_micros(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => humantime::parse_rfc3339(&s)
                .map(Some)
                .map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(cg: &str, q: u64) -> Entry {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        Entry {
            id: 0,
            state: State::Pending,
            action: Action::CpuQuota {
                cgroup: cg.into(),
                cores: Some(q as f64 / 100_000.0),
                period_us: None,
            },
            target: format!("cgroup:{cg}#cpu.max"),
            previous: Setting::CpuMax {
                quota_us: None,
                period_us: 100_000,
            },
            baseline: Setting::CpuMax {
                quota_us: None,
                period_us: 100_000,
            },
            new: Setting::CpuMax {
                quota_us: Some(q),
                period_us: 100_000,
            },
            supersedes: None,
            applied_at: t,
            expires_at: Some(t + Duration::from_secs(5)),
        }
    }

    #[test]
    fn record_golden() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("j.jsonl");
        let mut j = Journal::open(&p, Durability::Fsync).expect("open");
        let id = j.begin(entry("/a", 25_000)).expect("begin");
        assert_eq!(id, 1);
        j.transition(id, State::Applied, SystemTime::UNIX_EPOCH)
            .expect("applied");
        let text = fs::read_to_string(&p).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"v":1,"id":1,"state":"pending","action":{"kind":"cpu_quota","cgroup":"/a","cores":0.25},"target":"cgroup:/a#cpu.max","previous":{"kind":"cpu_max","quota_us":null,"period_us":100000},"baseline":{"kind":"cpu_max","quota_us":null,"period_us":100000},"new":{"kind":"cpu_max","quota_us":25000,"period_us":100000},"applied_at":"2027-01-15T08:00:00.000000Z","expires_at":"2027-01-15T08:00:05.000000Z"}"#
        );
        assert_eq!(
            lines[1],
            r#"{"v":1,"id":1,"state":"applied","at":"1970-01-01T00:00:00.000000Z"}"#
        );
    }

    #[test]
    fn replay_and_supersede() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("j.jsonl");
        {
            let mut j = Journal::open(&p, Durability::NoSync).expect("open");
            let a = j.begin(entry("/a", 25_000)).expect("a");
            j.transition(a, State::Applied, SystemTime::now())
                .expect("a applied");
            let mut e = entry("/a", 50_000);
            e.supersedes = Some(a);
            let b = j.begin(e).expect("b");
            assert_eq!(
                j.active_on(&Knob::CpuMax {
                    cgroup: "/a".into()
                })
                .map(|e| e.id),
                Some(a)
            );
            j.transition(b, State::Applied, SystemTime::now())
                .expect("b applied");
            assert_eq!(j.finished_state(a), Some(State::Superseded));
            let c = j.begin(entry("/c", 10_000)).expect("c");
            j.transition(c, State::Reverting, SystemTime::now())
                .expect("c reverting");
        }
        let j = Journal::open(&p, Durability::NoSync).expect("reopen");
        assert_eq!(j.open_report().records, 6);
        assert_eq!(j.finished_state(1), Some(State::Superseded));
        assert_eq!(j.get(2).map(|e| e.state), Some(State::Applied));
        assert_eq!(j.get(3).map(|e| e.state), Some(State::Reverting));
        assert_eq!(j.next_id(), 4);
    }

    #[test]
    fn torn_last_line_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("j.jsonl");
        {
            let mut j = Journal::open(&p, Durability::NoSync).expect("open");
            let a = j.begin(entry("/a", 25_000)).expect("a");
            j.transition(a, State::Applied, SystemTime::now())
                .expect("applied");
        }
        let good = fs::read(&p).expect("read").len();
        // Every prefix of a record, with and without garbage, is cut back.
        let rec = br#"{"v":1,"id":1,"state":"reverting","at":"2026-01-01T00:00:00Z"}"#;
        for cut in [1, 10, rec.len()] {
            let mut f = OpenOptions::new().append(true).open(&p).expect("append");
            f.write_all(&rec[..cut]).expect("torn write");
            drop(f);
            let j = Journal::open(&p, Durability::NoSync).expect("reopen");
            assert_eq!(j.open_report().torn_bytes, cut, "cut {cut}");
            assert_eq!(j.get(1).map(|e| e.state), Some(State::Applied));
            drop(j);
            assert_eq!(fs::read(&p).expect("read").len(), good);
        }
        // NUL padding left by a power loss, newline-terminated, is torn too.
        let mut f = OpenOptions::new().append(true).open(&p).expect("append");
        f.write_all(&[0u8; 40]).expect("nul");
        f.write_all(b"\n").expect("nl");
        drop(f);
        let j = Journal::open(&p, Durability::NoSync).expect("reopen");
        assert_eq!(j.open_report().torn_bytes, 41);
    }

    #[test]
    fn corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("j.jsonl");
        fs::write(
            &p,
            "{\"v\":1,\"id\":1,\"state\":\"applied\"\nnot json\n{\"v\":1}\n",
        )
        .expect("write");
        let e = Journal::open(&p, Durability::NoSync).expect_err("corrupt");
        assert!(e.to_string().contains("line 1 is corrupt"), "{e}");
    }

    #[test]
    fn newer_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("j.jsonl");
        fs::write(
            &p,
            "{\"v\":2,\"id\":1,\"state\":\"hibernating\",\"at\":\"x\"}\n{\"v\":1}\n",
        )
        .expect("write");
        let e = Journal::open(&p, Durability::NoSync).expect_err("newer");
        let msg = e.to_string();
        assert!(
            msg.contains("format version 2") && msg.contains("up to version 1"),
            "{msg}"
        );
        // Even as the last line (it parses, so it is not torn).
        fs::write(&p, "{\"v\":9,\"id\":1}\n").expect("write");
        assert!(matches!(
            Journal::open(&p, Durability::NoSync),
            Err(JournalError::NewerVersion { found: 9, .. })
        ));
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("j.jsonl");
        let _j = Journal::open(&p, Durability::NoSync).expect("open");
        assert!(matches!(
            Journal::open(&p, Durability::NoSync),
            Err(JournalError::Locked(_))
        ));
    }

    #[test]
    fn compact_keeps_live_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("j.jsonl");
        let mut j = Journal::open(&p, Durability::Fsync).expect("open");
        for i in 0..10 {
            let id = j.begin(entry("/a", 10_000 + i)).expect("begin");
            j.transition(id, State::Applied, SystemTime::now())
                .expect("applied");
            if i % 2 == 0 {
                j.transition(id, State::Reverted, SystemTime::now())
                    .expect("reverted");
            }
        }
        let before = fs::metadata(&p).expect("meta").len();
        j.compact().expect("compact");
        assert!(fs::metadata(&p).expect("meta").len() < before);
        let id = j.begin(entry("/b", 1)).expect("after compact");
        assert_eq!(id, 11);
        drop(j);
        let j = Journal::open(&p, Durability::NoSync).expect("reopen");
        let live: Vec<u64> = j.live().map(|e| e.id).collect();
        // Odd i (ids 2, 4, ..) stayed applied; even ones were reverted.
        assert_eq!(live, vec![2, 4, 6, 8, 10, 11]);
        assert_eq!(
            j.get(10).map(|e| e.new.clone()),
            Some(Setting::CpuMax {
                quota_us: Some(10_009),
                period_us: 100_000
            })
        );
    }

    mod torn {
        use super::*;
        use proptest::prelude::*;

        fn snapshot(j: &Journal) -> (Vec<(u64, State)>, u64) {
            (j.live().map(|e| (e.id, e.state)).collect(), j.next_id())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
            /// Cutting the file at any byte gives exactly the state after
            /// the last whole record before the cut, and the cut-off bytes
            /// are reported as torn.
            #[test]
            fn any_cut_replays_the_whole_records_before_it(
                ops in proptest::collection::vec((0u8..4, any::<u8>()), 1..25),
                cuts in proptest::collection::vec(any::<prop::sample::Index>(), 1..8),
            ) {
                let dir = tempfile::tempdir().expect("tempdir");
                let p = dir.path().join("j.jsonl");
                let mut j = Journal::open(&p, Durability::NoSync).expect("open");
                let mut bounds = vec![(0u64, snapshot(&j))];
                for (kind, pick) in ops {
                    let live: Vec<u64> = j.live().map(|e| e.id).collect();
                    let target = (!live.is_empty()).then(|| live[usize::from(pick) % live.len()]);
                    match (kind, target) {
                        (0, _) | (_, None) => { j.begin(entry("/a", 1000 + u64::from(pick))).expect("begin"); }
                        (1, Some(id)) => j.transition(id, State::Applied, SystemTime::now()).expect("applied"),
                        (2, Some(id)) => j.transition(id, State::Reverting, SystemTime::now()).expect("reverting"),
                        (_, Some(id)) => j.transition(id, State::Reverted, SystemTime::now()).expect("reverted"),
                    }
                    bounds.push((fs::metadata(&p).expect("meta").len(), snapshot(&j)));
                }
                drop(j);
                let full = fs::read(&p).expect("read");
                for cut in cuts {
                    let at = cut.index(full.len() + 1);
                    fs::write(&p, &full[..at]).expect("cut");
                    let j = Journal::open(&p, Durability::NoSync).expect("open a cut journal");
                    let (b, want) = bounds.iter().rev().find(|(b, _)| *b as usize <= at).expect("boundary 0");
                    prop_assert_eq!(&snapshot(&j), want, "cut at {}", at);
                    prop_assert_eq!(j.open_report().torn_bytes, at - *b as usize);
                }
            }
        }
    }
}
