//! [`Actuator`]: applies, reverts, expires and reconciles actions, journaling
//! each before it touches anything.
//!
//! Protocol for one action (each arrow is a step boundary, see [`Step`]):
//! read the knob's current value → journal `pending` (with previous, baseline
//! and new value) and fsync → write the kernel file(s) one by one → journal
//! `applied` and fsync. Revert: journal `reverting` → write the baseline →
//! journal `reverted`. After a crash at any boundary, [`Actuator::reconcile`]
//! rolls `pending` entries back to their previous value, finishes `reverting`
//! ones, reverts expired `applied` ones and re-adopts (re-writing on drift)
//! the rest, so the node matches the journal.

use std::time::{Duration, SystemTime};

use crate::action::{Action, ActionError, Knob, Setting};
use crate::backend::{self, BackendError, BandwidthShaper, CacheAllocator};
use crate::bounds::{Bounds, BoundsError};
use crate::caps::{self, CapsError, Need};
use crate::cgroup::{CgroupError, CgroupFs};
use crate::journal::{Entry, Journal, JournalError, State};
use crate::units::Limit;

/// Errors from applying, reverting or reconciling actions.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    /// cgroup file access.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The journal.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// An invalid action.
    #[error(transparent)]
    Action(#[from] ActionError),
    /// Outside the configured bounds.
    #[error(transparent)]
    Bounds(#[from] BoundsError),
    /// Missing capability.
    #[error(transparent)]
    Caps(#[from] CapsError),
    /// A cache or bandwidth backend failed.
    #[error("failed to {op} {knob}: {source}")]
    Backend {
        /// What was being done.
        op: &'static str,
        /// The knob.
        knob: String,
        /// The backend's error.
        source: BackendError,
    },
    /// No backend configured for a knob.
    #[error("no {what} configured; cannot act on {knob}")]
    NoBackend {
        /// Which backend.
        what: &'static str,
        /// The knob.
        knob: String,
    },
    /// LLC ways that do not fit the cache.
    #[error("{ways} ways do not fit cache {cache_id} (cbm_mask {cbm:#x}, min_cbm_bits {min})")]
    Ways {
        /// Ways asked.
        ways: u32,
        /// Cache id.
        cache_id: u32,
        /// Full mask.
        cbm: u64,
        /// Minimum bits.
        min: u32,
    },
    /// Revert of an id the journal never had.
    #[error("no action with id {0} in the journal")]
    UnknownId(u64),
    /// Applying failed and restoring the previous value failed too; the
    /// entry stays `pending` for `reconcile`.
    #[error("{apply}; restoring the previous value also failed: {restore}")]
    RestoreFailed {
        /// The apply error.
        apply: Box<ActuatorError>,
        /// The restore error.
        restore: Box<ActuatorError>,
    },
}

/// A step boundary in applying or reverting one action. A hook installed
/// with [`Actuator::with_step_hook`] runs at each (crash tests abort there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The `pending` record is synced; nothing written yet.
    ApplyRecorded {
        /// Entry id.
        id: u64,
    },
    /// The `n`-th kernel write (1-based) of an apply is done.
    ApplyWrote {
        /// Entry id.
        id: u64,
        /// Writes done.
        n: usize,
    },
    /// The `applied` record is synced.
    ApplyDone {
        /// Entry id.
        id: u64,
    },
    /// The `reverting` record is synced.
    RevertRecorded {
        /// Entry id.
        id: u64,
    },
    /// The `n`-th kernel write of a revert is done.
    RevertWrote {
        /// Entry id.
        id: u64,
        /// Writes done.
        n: usize,
    },
    /// The `reverted` record is synced.
    RevertDone {
        /// Entry id.
        id: u64,
    },
}

/// A source of wall-clock time (injectable for tests).
pub trait Clock: Send {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The result of [`Actuator::apply`].
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// Journal id (use it to revert).
    pub id: u64,
    /// The knob's value before.
    pub previous: Setting,
    /// The value set.
    pub new: Setting,
    /// What a revert will restore.
    pub baseline: Setting,
    /// True when nothing was touched (dry run).
    pub dry_run: bool,
}

/// The result of [`Actuator::revert`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reverted {
    /// The baseline was written back.
    Restored {
        /// Entry id.
        id: u64,
        /// The value restored.
        value: Setting,
    },
    /// Nothing to do: the entry is already in a terminal state.
    AlreadyFinished {
        /// Entry id.
        id: u64,
        /// Its state.
        state: State,
    },
    /// Dry run: this value would be written back.
    WouldRestore {
        /// Entry id.
        id: u64,
        /// The value.
        value: Setting,
    },
}

/// What [`Actuator::reconcile`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReconcileReport {
    /// `pending` entries rolled back to their previous value.
    pub rolled_back: Vec<u64>,
    /// `reverting` or expired entries restored to their baseline.
    pub reverted: Vec<u64>,
    /// `applied` entries kept in force.
    pub readopted: Vec<u64>,
    /// Of those, entries whose knob had drifted and was written again.
    pub repaired: Vec<u64>,
    /// Entries that could not be reconciled (they stay as they were).
    pub failed: Vec<(u64, String)>,
    /// True when the journal was compacted afterwards.
    pub compacted: bool,
}

/// `reconcile` compacts the journal when it holds at least this many
/// finished entries.
pub const COMPACT_AFTER: usize = 10_000;

/// A live entry whose knob does not hold the value the journal says.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Entry id.
    pub id: u64,
    /// The knob.
    pub target: String,
    /// What the journal says.
    pub expected: Setting,
    /// What the kernel has.
    pub found: Setting,
}

/// Applies and reverts actions on one node, with a journal.
pub struct Actuator {
    cgroups: CgroupFs,
    cache: Option<Box<dyn CacheAllocator>>,
    shaper: Option<Box<dyn BandwidthShaper>>,
    journal: Journal,
    bounds: Bounds,
    dry_run: bool,
    clock: Box<dyn Clock>,
    hook: Option<Box<dyn FnMut(Step) + Send>>,
}

impl std::fmt::Debug for Actuator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actuator")
            .field("cgroups", &self.cgroups)
            .field("journal", &self.journal)
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

/// Memory limits are kept in whole pages, as the kernel stores them, so
/// that a value read back equals the value journaled.
const PAGE: u64 = 4096;

impl Actuator {
    /// An actuator on hierarchy `cgroups` with `journal`, default bounds,
    /// the system clock and no cache/bandwidth backends.
    pub fn new(cgroups: CgroupFs, journal: Journal) -> Actuator {
        Actuator {
            cgroups,
            cache: None,
            shaper: None,
            journal,
            bounds: Bounds::default(),
            dry_run: false,
            clock: Box::new(SystemClock),
            hook: None,
        }
    }

    /// Uses `cache` for LLC-ways and MBA actions.
    pub fn with_cache(mut self, cache: Box<dyn CacheAllocator>) -> Actuator {
        self.cache = Some(cache);
        self
    }

    /// Uses `shaper` for network-rate actions.
    pub fn with_shaper(mut self, shaper: Box<dyn BandwidthShaper>) -> Actuator {
        self.shaper = Some(shaper);
        self
    }

    /// Sets the bounds.
    pub fn with_bounds(mut self, bounds: Bounds) -> Actuator {
        self.bounds = bounds;
        self
    }

    /// Dry run: journal what would be done (state `dry_run`), touch nothing.
    pub fn with_dry_run(mut self, dry_run: bool) -> Actuator {
        self.dry_run = dry_run;
        self
    }

    /// Uses `clock` for applied-at/expires-at and expiry.
    pub fn with_clock(mut self, clock: Box<dyn Clock>) -> Actuator {
        self.clock = clock;
        self
    }

    /// Runs `hook` at every [`Step`] boundary.
    pub fn with_step_hook(mut self, hook: Box<dyn FnMut(Step) + Send>) -> Actuator {
        self.hook = Some(hook);
        self
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The cgroup hierarchy.
    pub fn cgroups(&self) -> &CgroupFs {
        &self.cgroups
    }

    /// Checks the capabilities this actuator needs (CAP_SYS_ADMIN for
    /// cgroups and resctrl, CAP_NET_ADMIN for tc). A dry run needs none.
    pub fn check_capabilities(&self) -> Result<(), CapsError> {
        if self.dry_run {
            return Ok(());
        }
        let mut needs = vec![Need::Cgroups];
        if self.cache.is_some() {
            needs.push(Need::Resctrl);
        }
        if self.shaper.is_some() {
            needs.push(Need::Tc);
        }
        caps::check_effective(&needs)
    }

    fn step(&mut self, s: Step) {
        if let Some(h) = self.hook.as_mut() {
            h(s);
        }
    }

    /// Reads the current value of `knob`.
    pub fn read(&mut self, knob: &Knob) -> Result<Setting, ActuatorError> {
        let backend = |op, source| ActuatorError::Backend {
            op,
            knob: knob.to_string(),
            source,
        };
        match knob {
            Knob::L3 { group, cache_id } => {
                let c = self.cache_mut(knob)?;
                let mask = c
                    .l3_mask(group, *cache_id)
                    .map_err(|e| backend("read", e))?;
                Ok(Setting::L3Mask { mask })
            }
            Knob::Mb { group, domain } => {
                let c = self.cache_mut(knob)?;
                let percent = c
                    .mb_percent(group, *domain)
                    .map_err(|e| backend("read", e))?;
                Ok(Setting::MbPercent { percent })
            }
            Knob::Htb { iface, class } => {
                let s = self
                    .shaper
                    .as_mut()
                    .ok_or_else(|| ActuatorError::NoBackend {
                        what: "bandwidth shaper",
                        knob: knob.to_string(),
                    })?;
                let (rate_bps, ceil_bps) =
                    s.class_rate(iface, class).map_err(|e| backend("read", e))?;
                Ok(Setting::HtbRate { rate_bps, ceil_bps })
            }
            _ => Ok(self.cgroups.read_setting(knob)?),
        }
    }

    fn cache_mut(&mut self, knob: &Knob) -> Result<&mut Box<dyn CacheAllocator>, ActuatorError> {
        self.cache.as_mut().ok_or_else(|| ActuatorError::NoBackend {
            what: "cache allocator",
            knob: knob.to_string(),
        })
    }

    /// The value `action` would set, given the knob's `current` value.
    pub fn plan(&mut self, action: &Action, current: &Setting) -> Result<Setting, ActuatorError> {
        if let Action::LlcWays { cache_id, ways, .. } = action {
            let knob = action.knob();
            let c = self.cache_mut(&knob)?;
            let (cbm, min) = c
                .l3_geometry(*cache_id)
                .map_err(|source| ActuatorError::Backend {
                    op: "read the geometry of",
                    knob: knob.to_string(),
                    source,
                })?;
            let anchor = match current {
                Setting::L3Mask { mask } => *mask,
                _ => 0,
            };
            let mask =
                backend::contiguous_mask(*ways, cbm, min, anchor).ok_or(ActuatorError::Ways {
                    ways: *ways,
                    cache_id: *cache_id,
                    cbm,
                    min,
                })?;
            return Ok(Setting::L3Mask { mask });
        }
        let mut new = action.plan(current, self.cgroups.mode().is_v1())?;
        if let Setting::MbPercent { percent } = &mut new {
            let knob = action.knob();
            *percent = self
                .cache_mut(&knob)?
                .normalize_mb_percent(*percent)
                .map_err(|source| ActuatorError::Backend {
                    op: "round the percent of",
                    knob: knob.to_string(),
                    source,
                })?;
        }
        if let Setting::Memory { limit, swap } = &mut new {
            let page = |l: &mut Limit| {
                if let Limit::Value(v) = l {
                    *v -= *v % PAGE;
                }
            };
            page(limit);
            if let Some(s) = swap {
                page(s);
            }
        }
        Ok(new)
    }

    /// Writes `to` into `knob` (which holds `from`), running the hook after
    /// each kernel write.
    fn write(
        &mut self,
        knob: &Knob,
        from: &Setting,
        to: &Setting,
        id: u64,
        revert: bool,
    ) -> Result<(), ActuatorError> {
        let step = |n| {
            if revert {
                Step::RevertWrote { id, n }
            } else {
                Step::ApplyWrote { id, n }
            }
        };
        let backend = |source| ActuatorError::Backend {
            op: "set",
            knob: knob.to_string(),
            source,
        };
        match (knob, to) {
            (Knob::L3 { group, cache_id }, Setting::L3Mask { mask }) => {
                self.cache_mut(knob)?
                    .set_l3_mask(group, *cache_id, *mask)
                    .map_err(backend)?;
                self.step(step(1));
            }
            (Knob::Mb { group, domain }, Setting::MbPercent { percent }) => {
                self.cache_mut(knob)?
                    .set_mb_percent(group, *domain, *percent)
                    .map_err(backend)?;
                self.step(step(1));
            }
            (Knob::Htb { iface, class }, Setting::HtbRate { rate_bps, ceil_bps }) => {
                let s = self
                    .shaper
                    .as_mut()
                    .ok_or_else(|| ActuatorError::NoBackend {
                        what: "bandwidth shaper",
                        knob: knob.to_string(),
                    })?;
                s.set_class_rate(iface, class, *rate_bps, *ceil_bps)
                    .map_err(backend)?;
                self.step(step(1));
            }
            _ => {
                let writes = self.cgroups.plan_writes(knob, from, to)?;
                for (i, w) in writes.iter().enumerate() {
                    self.cgroups.write_path(&w.path, &w.value)?;
                    self.step(step(i + 1));
                }
            }
        }
        Ok(())
    }

    /// Applies `action`; it is reverted by [`Actuator::expire`] once `ttl`
    /// has passed (`None`: only by an explicit revert). Returns the previous
    /// value. Applying the same action twice leaves the node as once; a
    /// second action on the same knob supersedes the first and keeps its
    /// baseline, so reverting it restores the value from before both.
    pub fn apply(
        &mut self,
        action: &Action,
        ttl: Option<Duration>,
    ) -> Result<Applied, ActuatorError> {
        let knob = action.knob();
        let current = self.read(&knob)?;
        let new = self.plan(action, &current)?;
        self.bounds.check(&knob.to_string(), &current, &new)?;
        if let (
            Action::Memory { force: false, .. },
            Setting::Memory {
                limit: Limit::Value(l),
                ..
            },
        ) = (action, &new)
            && let Some(cg) = knob.cgroup()
        {
            let usage = self.cgroups.memory_usage(cg)?;
            if usage > *l {
                return Err(BoundsError::BelowUsage {
                    knob: knob.to_string(),
                    limit: *l,
                    usage,
                }
                .into());
            }
        }
        let active = self.journal.active_on(&knob);
        let (baseline, supersedes) = match active {
            Some(e) => (e.baseline.clone(), Some(e.id)),
            None => (current.clone(), None),
        };
        let now = self.clock.now();
        let entry = Entry {
            id: 0,
            state: if self.dry_run {
                State::DryRun
            } else {
                State::Pending
            },
            action: action.clone(),
            target: knob.to_string(),
            previous: current.clone(),
            baseline: baseline.clone(),
            new: new.clone(),
            supersedes,
            applied_at: now,
            expires_at: ttl.map(|t| now + t),
        };
        let id = self.journal.begin(entry)?;
        if self.dry_run {
            return Ok(Applied {
                id,
                previous: current,
                new,
                baseline,
                dry_run: true,
            });
        }
        self.step(Step::ApplyRecorded { id });
        if let Err(e) = self.write(&knob, &current, &new, id, false) {
            // Put back what was there; the kernel may hold part of `new`.
            let restore = self
                .read(&knob)
                .and_then(|now_val| self.write(&knob, &now_val, &current, id, false));
            return match restore {
                Ok(()) => {
                    self.journal
                        .transition(id, State::RolledBack, self.clock.now())?;
                    Err(e)
                }
                Err(r) => Err(ActuatorError::RestoreFailed {
                    apply: Box::new(e),
                    restore: Box::new(r),
                }),
            };
        }
        self.journal
            .transition(id, State::Applied, self.clock.now())?;
        self.step(Step::ApplyDone { id });
        Ok(Applied {
            id,
            previous: current,
            new,
            baseline,
            dry_run: false,
        })
    }

    /// Reverts entry `id` to its baseline. Idempotent: reverting a finished
    /// entry (reverted, superseded, rolled back, dry run) does nothing.
    pub fn revert(&mut self, id: u64) -> Result<Reverted, ActuatorError> {
        let Some(entry) = self.journal.get(id).cloned() else {
            return match self.journal.finished_state(id) {
                Some(state) => Ok(Reverted::AlreadyFinished { id, state }),
                None => Err(ActuatorError::UnknownId(id)),
            };
        };
        // A pending entry (its apply was interrupted) goes back to its
        // previous value; an applied or reverting one to its baseline.
        let (target, final_state) = match entry.state {
            State::Pending => (entry.previous.clone(), State::RolledBack),
            _ => (entry.baseline.clone(), State::Reverted),
        };
        if self.dry_run {
            return Ok(Reverted::WouldRestore { id, value: target });
        }
        let knob = entry.knob();
        if entry.state == State::Applied {
            self.journal
                .transition(id, State::Reverting, self.clock.now())?;
            self.step(Step::RevertRecorded { id });
        }
        let current = self.read(&knob)?;
        self.write(&knob, &current, &target, id, true)?;
        self.journal.transition(id, final_state, self.clock.now())?;
        self.step(Step::RevertDone { id });
        Ok(Reverted::Restored { id, value: target })
    }

    /// Reverts every applied entry whose expiry is at or before now.
    /// Returns the ids reverted; stops at the first error.
    pub fn expire(&mut self) -> Result<Vec<u64>, ActuatorError> {
        let now = self.clock.now();
        let due: Vec<u64> = self
            .journal
            .live()
            .filter(|e| e.state == State::Applied && e.expires_at.is_some_and(|t| t <= now))
            .map(|e| e.id)
            .collect();
        for id in &due {
            self.revert(*id)?;
        }
        Ok(due)
    }

    /// Brings the node in line with the journal after a start or a crash:
    /// rolls back `pending` entries, finishes `reverting` ones, reverts
    /// expired `applied` ones and re-adopts the others (re-writing a knob
    /// that drifted). Errors on one entry are reported, not fatal. In a dry
    /// run, reports what it would do and writes nothing.
    pub fn reconcile(&mut self) -> Result<ReconcileReport, ActuatorError> {
        let mut report = ReconcileReport::default();
        let now = self.clock.now();
        let entries: Vec<Entry> = self.journal.live().cloned().collect();
        for e in entries {
            let expired = e.expires_at.is_some_and(|t| t <= now);
            let result = match e.state {
                State::Pending => self
                    .finish(&e, false)
                    .map(|()| report.rolled_back.push(e.id)),
                State::Reverting => self.finish(&e, true).map(|()| report.reverted.push(e.id)),
                State::Applied if expired => {
                    self.finish(&e, true).map(|()| report.reverted.push(e.id))
                }
                State::Applied => self.readopt(&e).map(|repaired| {
                    report.readopted.push(e.id);
                    if repaired {
                        report.repaired.push(e.id);
                    }
                }),
                _ => Ok(()),
            };
            if let Err(err) = result {
                tracing::error!(id = e.id, target = %e.target, error = %err, "cannot reconcile journal entry");
                report.failed.push((e.id, err.to_string()));
            }
        }
        if !self.dry_run && self.journal.finished_count() >= COMPACT_AFTER {
            self.journal.compact()?;
            report.compacted = true;
        }
        Ok(report)
    }

    /// Rewrites the journal with only its live entries (see
    /// [`Journal::compact`]); `reconcile` does this on its own once
    /// `COMPACT_AFTER` finished entries have piled up.
    pub fn compact_journal(&mut self) -> Result<(), ActuatorError> {
        Ok(self.journal.compact()?)
    }

    fn finish(&mut self, e: &Entry, to_baseline: bool) -> Result<(), ActuatorError> {
        if self.dry_run {
            return Ok(());
        }
        if to_baseline {
            self.revert(e.id).map(|_| ())
        } else {
            let knob = e.knob();
            let current = self.read(&knob)?;
            self.write(&knob, &current, &e.previous, e.id, true)?;
            self.journal
                .transition(e.id, State::RolledBack, self.clock.now())?;
            Ok(())
        }
    }

    fn readopt(&mut self, e: &Entry) -> Result<bool, ActuatorError> {
        let knob = e.knob();
        let current = self.read(&knob)?;
        if current == e.new {
            return Ok(false);
        }
        if !self.dry_run {
            tracing::warn!(id = e.id, target = %e.target, found = ?current, expected = ?e.new, "knob drifted; writing the journaled value again");
            self.write(&knob, &current, &e.new, e.id, false)?;
        }
        Ok(true)
    }

    /// Live `applied` entries whose knob does not hold the journaled value.
    pub fn verify(&mut self) -> Result<Vec<Mismatch>, ActuatorError> {
        let entries: Vec<Entry> = self
            .journal
            .live()
            .filter(|e| e.state == State::Applied)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for e in entries {
            let found = self.read(&e.knob())?;
            if found != e.new {
                out.push(Mismatch {
                    id: e.id,
                    target: e.target.clone(),
                    expected: e.new.clone(),
                    found,
                });
            }
        }
        Ok(out)
    }
}
