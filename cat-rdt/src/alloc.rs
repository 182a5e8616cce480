//! The way allocator: give one group N cache ways exclusively and shrink
//! the other groups Seer owns out of its way, per cache domain. Pure.
//!
//! Rules, so that every step is one the kernel accepts:
//! - the new region is N contiguous ways inside `cbm_mask`, outside
//!   `shareable_bits` (an exclusive group may not hold them) and outside
//!   every mask Seer must not touch: groups it does not own, and its own
//!   other exclusive groups;
//! - each shrinkable group (owned, shareable, not the target) keeps the
//!   largest contiguous part of its mask outside the region; if that is
//!   less than `max(min_cbm_bits, 1)` ways it gets the largest contiguous
//!   run outside the region and outside every exclusive mask;
//! - among the possible regions the one that keeps most of the target's
//!   current ways wins, then the one that takes fewest ways from the other
//!   groups, then the highest one.

use crate::cbm;
use crate::validate::Mode;

/// One group's mask in one domain, as the allocator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMask {
    /// Group name (`/` for the default group).
    pub name: String,
    /// Its mask (under CDP, the union of code and data).
    pub mask: u64,
    /// Its mode.
    pub mode: Mode,
    /// Whether Seer may change this group.
    pub owned: bool,
}

/// The cache layout of one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// `cbm_mask`.
    pub cbm_mask: u64,
    /// `min_cbm_bits`.
    pub min_cbm_bits: u32,
    /// `shareable_bits`.
    pub shareable_bits: u64,
}

/// The allocator's answer for one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The target's new mask.
    pub region: u64,
    /// New masks of the shrunk groups (only those that change).
    pub shrunk: Vec<(String, u64)>,
}

/// Why no allocation exists.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    /// Asked for fewer ways than the hardware allows, or more than it has.
    #[error("cannot give {ways} way(s): the cache has {len} ways and a group needs at least {min}")]
    BadCount {
        /// Ways asked for.
        ways: u32,
        /// Ways the cache has.
        len: u32,
        /// The least a group may hold.
        min: u32,
    },
    /// The target group is not in the list.
    #[error("group {0} is not in the domain's group list")]
    UnknownTarget(String),
    /// No contiguous region of that size is free of fixed masks.
    #[error(
        "no {ways} contiguous way(s) are free of shareable_bits {shareable:#x} and of groups seer may not shrink (free: {free:#x})"
    )]
    NoRoom {
        /// Ways asked for.
        ways: u32,
        /// `shareable_bits`.
        shareable: u64,
        /// Ways a region could use.
        free: u64,
    },
    /// The other groups would have too few ways left.
    #[error("giving {ways} way(s) leaves fewer than {need} contiguous way(s) for the other groups")]
    NoRoomForOthers {
        /// Ways asked for.
        ways: u32,
        /// What each other group needs.
        need: u32,
    },
}

/// What a shrinkable group needs at least.
fn need(limits: &CacheLimits) -> u32 {
    limits.min_cbm_bits.max(1)
}

/// Shrink `old` out of `region`: its largest contiguous part outside the
/// region, or the largest run of `fallback` (ways outside the region and
/// all exclusive masks) if that part is too small. `None` if neither has
/// `need` ways.
pub fn shrink(old: u64, region: u64, fallback: u64, need: u32) -> Option<u64> {
    let kept = cbm::largest_run(old & !region);
    if cbm::ways(kept) >= need {
        return Some(kept);
    }
    let fb = cbm::largest_run(fallback & !region);
    (cbm::ways(fb) >= need).then_some(fb)
}

/// Give `target` `ways` ways exclusively in one domain, shrinking the
/// other owned shareable groups. See the module doc for the rules.
pub fn give_ways(
    limits: &CacheLimits,
    groups: &[GroupMask],
    target: &str,
    ways: u32,
) -> Result<Allocation, AllocError> {
    let len = cbm::cbm_len(limits.cbm_mask);
    if ways < need(limits) || ways > len {
        return Err(AllocError::BadCount {
            ways,
            len,
            min: need(limits),
        });
    }
    let tgt = groups
        .iter()
        .find(|g| g.name == target)
        .ok_or_else(|| AllocError::UnknownTarget(target.to_string()))?;
    let shrinkable = |g: &GroupMask| g.owned && g.name != target && g.mode == Mode::Shareable;
    let fixed: u64 = groups
        .iter()
        .filter(|g| g.name != target && !shrinkable(g))
        .fold(0, |a, g| a | g.mask);
    let exclusive: u64 = groups
        .iter()
        .filter(|g| g.name != target && g.mode != Mode::Shareable)
        .fold(0, |a, g| a | g.mask);
    let free = limits.cbm_mask & !limits.shareable_bits & !fixed;
    let n = need(limits);

    let mut best: Option<((u32, u32, u32), Allocation)> = None;
    let mut any_region = false;
    for start in 0..=(len - ways) {
        let region = cbm::contiguous(start, ways);
        if region & !free != 0 {
            continue;
        }
        any_region = true;
        let fallback = limits.cbm_mask & !exclusive;
        let mut shrunk = Vec::new();
        let mut taken = 0u32;
        let mut ok = true;
        for g in groups.iter().filter(|g| shrinkable(g)) {
            match shrink(g.mask, region | exclusive, fallback, n) {
                Some(m) => {
                    if m != g.mask {
                        taken += cbm::ways(g.mask & !m);
                        shrunk.push((g.name.clone(), m));
                    }
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        // Higher is better on each key.
        let key = (cbm::ways(region & tgt.mask), u32::MAX - taken, start);
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, Allocation { region, shrunk }));
        }
    }
    match best {
        Some((_, a)) => Ok(a),
        None if any_region => Err(AllocError::NoRoomForOthers { ways, need: n }),
        None => Err(AllocError::NoRoom {
            ways,
            shareable: limits.shareable_bits,
            free,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn g(name: &str, mask: u64, mode: Mode, owned: bool) -> GroupMask {
        GroupMask {
            name: name.into(),
            mask,
            mode,
            owned,
        }
    }

    const SKX: CacheLimits = CacheLimits {
        cbm_mask: 0x7ff,
        min_cbm_bits: 1,
        shareable_bits: 0x600,
    };

    #[test]
    fn fresh_group_on_skx() {
        let groups = vec![
            g("/", 0x7ff, Mode::Shareable, true),
            g("web", 0x7ff, Mode::Shareable, true),
        ];
        let a = give_ways(&SKX, &groups, "web", 4).expect("room");
        // The lowest 4 ways: the default group keeps the 7 others, the
        // shareable (DDIO) ways 9-10 included, as one contiguous block.
        assert_eq!(a.region, 0x00f);
        assert_eq!(a.shrunk, vec![("/".to_string(), 0x7f0)]);
    }

    #[test]
    fn foreign_groups_are_respected() {
        let groups = vec![
            g("/", 0x7ff, Mode::Shareable, true),
            g("theirs", 0x1c0, Mode::Exclusive, false),
            g("web", 0x7ff, Mode::Shareable, true),
        ];
        // Root holds 0x1c0 too in this made-up state; it is shrinkable.
        let a = give_ways(&SKX, &groups, "web", 3).expect("room");
        assert_eq!(a.region, 0x038);
        assert!(matches!(
            give_ways(&SKX, &groups, "web", 7),
            Err(AllocError::NoRoom { .. })
        ));
    }

    #[test]
    fn keeps_current_ways() {
        let groups = vec![
            g("/", 0x00f, Mode::Shareable, true),
            g("web", 0x0f0, Mode::Exclusive, true),
        ];
        let a = give_ways(&SKX, &groups, "web", 3).expect("room");
        assert_eq!(a.region & 0x0f0, a.region);
        assert!(a.shrunk.is_empty());
    }

    #[test]
    fn bad_counts() {
        let groups = vec![g("web", 0x7ff, Mode::Shareable, true)];
        assert!(matches!(
            give_ways(&SKX, &groups, "web", 0),
            Err(AllocError::BadCount { .. })
        ));
        assert!(matches!(
            give_ways(&SKX, &groups, "web", 12),
            Err(AllocError::BadCount { .. })
        ));
        assert!(matches!(
            give_ways(&SKX, &groups, "db", 2),
            Err(AllocError::UnknownTarget(_))
        ));
    }

    fn arb_group(len: u32) -> impl Strategy<Value = (u32, u32, bool, bool)> {
        (0..len, 1..=len, any::<bool>(), any::<bool>())
    }

    proptest! {
        /// Over random layouts: when the allocator answers, the region is N
        /// contiguous ways outside shareable_bits and every fixed mask, and
        /// every shrunk group keeps a valid contiguous mask outside the
        /// region and every exclusive mask; when it refuses, brute force
        /// finds no region either.
        #[test]
        fn allocations_are_valid(
            len in 4u32..21,
            min in 1u32..3,
            share_len in 0u32..3,
            raw in proptest::collection::vec(arb_group(20), 1..6),
            ways in 1u32..10,
        ) {
            let limits = CacheLimits {
                cbm_mask: cbm::contiguous(0, len),
                min_cbm_bits: min,
                shareable_bits: if share_len == 0 { 0 } else { cbm::contiguous(len - share_len, share_len) },
            };
            let mut groups = vec![g("/", limits.cbm_mask, Mode::Shareable, true), g("t", limits.cbm_mask, Mode::Shareable, true)];
            for (i, (s, l, excl, owned)) in raw.into_iter().enumerate() {
                let s = s % len;
                let l = l.min(len - s).max(min.min(len - s));
                let mask = cbm::contiguous(s, l);
                groups.push(g(&format!("g{i}"), mask, if excl { Mode::Exclusive } else { Mode::Shareable }, owned));
            }
            let fixed: u64 = groups.iter().filter(|x| x.name != "t" && !(x.owned && x.mode == Mode::Shareable)).fold(0, |a, x| a | x.mask);
            let excl: u64 = groups.iter().filter(|x| x.name != "t" && x.mode != Mode::Shareable).fold(0, |a, x| a | x.mask);
            match give_ways(&limits, &groups, "t", ways) {
                Ok(a) => {
                    prop_assert_eq!(cbm::ways(a.region), ways);
                    prop_assert!(cbm::is_contiguous(a.region));
                    prop_assert_eq!(a.region & !limits.cbm_mask, 0);
                    prop_assert_eq!(a.region & limits.shareable_bits, 0);
                    prop_assert_eq!(a.region & fixed, 0);
                    for (name, m) in &a.shrunk {
                        let old = groups.iter().find(|x| &x.name == name).expect("listed");
                        prop_assert!(old.owned && old.mode == Mode::Shareable);
                        prop_assert!(cbm::is_contiguous(*m));
                        prop_assert!(cbm::ways(*m) >= min);
                        prop_assert_eq!(m & a.region, 0);
                        prop_assert_eq!(m & excl, 0);
                    }
                    for x in groups.iter().filter(|x| x.owned && x.mode == Mode::Shareable && x.name != "t") {
                        if !a.shrunk.iter().any(|(n, _)| n == &x.name) {
                            prop_assert_eq!(x.mask & a.region, 0);
                        }
                    }
                }
                Err(AllocError::NoRoom { .. }) => {
                    let free = limits.cbm_mask & !limits.shareable_bits & !fixed;
                    for s in 0..=(len.saturating_sub(ways)) {
                        prop_assert!(cbm::contiguous(s, ways) & !free != 0);
                    }
                }
                Err(AllocError::BadCount { .. }) => prop_assert!(ways < min || ways > len),
                Err(AllocError::NoRoomForOthers { .. }) => {
                    // Every free region leaves a shrinkable group without room.
                    let free = limits.cbm_mask & !limits.shareable_bits & !fixed;
                    for s in 0..=(len.saturating_sub(ways)) {
                        let region = cbm::contiguous(s, ways);
                        if region & !free == 0 {
                            let fb = limits.cbm_mask & !excl;
                            prop_assert!(groups.iter().filter(|x| x.owned && x.mode == Mode::Shareable && x.name != "t")
                                .any(|x| shrink(x.mask, region | excl, fb, min).is_none()));
                        }
                    }
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
