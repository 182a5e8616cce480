//! Seer's own validation of schemata updates, done before anything is
//! written, so that a bad request never reaches the kernel. Pure functions
//! over a [`Layout`]; the rules are those of the kernel's `cbm_validate()`,
//! `bw_validate()` and `rdtgroup_cbm_overlaps()`.

use crate::cbm;
use crate::info::{CacheInfo, Layout, MbInfo, MbScale};
use crate::schemata::{Resource, Schemata, Value};

/// Why an update was refused before writing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidateError {
    /// The resource is not offered by this mount.
    #[error("resource {resource} is not available here{hint}")]
    ResourceAbsent {
        /// The resource.
        resource: Resource,
        /// A hint about CDP, or empty.
        hint: String,
    },
    /// The domain id is not one of the resource's.
    #[error("{resource} has no domain {domain} (domains: {known:?})")]
    UnknownDomain {
        /// The resource.
        resource: Resource,
        /// The domain asked for.
        domain: u32,
        /// The domains that exist.
        known: Vec<u32>,
    },
    /// An empty cache mask where `min_cbm_bits` > 0.
    #[error("{resource} domain {domain}: mask 0 is empty; at least {min} way(s) are needed")]
    ZeroMask {
        /// The resource.
        resource: Resource,
        /// The domain.
        domain: u32,
        /// `min_cbm_bits`.
        min: u32,
    },
    /// The mask has bits outside `cbm_mask`.
    #[error("{resource} domain {domain}: mask {mask:#x} has bits outside cbm_mask {cbm_mask:#x}")]
    OutsideCbmMask {
        /// The resource.
        resource: Resource,
        /// The domain.
        domain: u32,
        /// The mask.
        mask: u64,
        /// `cbm_mask`.
        cbm_mask: u64,
    },
    /// The mask's bits are not contiguous and `sparse_masks` is not 1.
    #[error(
        "{resource} domain {domain}: mask {mask:#x} has non-consecutive 1-bits (this CPU needs contiguous masks)"
    )]
    NotContiguous {
        /// The resource.
        resource: Resource,
        /// The domain.
        domain: u32,
        /// The mask.
        mask: u64,
    },
    /// Fewer bits than `min_cbm_bits`.
    #[error("{resource} domain {domain}: mask {mask:#x} has {bits} way(s); min_cbm_bits is {min}")]
    TooFewBits {
        /// The resource.
        resource: Resource,
        /// The domain.
        domain: u32,
        /// The mask.
        mask: u64,
        /// Its ways.
        bits: u32,
        /// `min_cbm_bits`.
        min: u32,
    },
    /// An MB value out of range.
    #[error("MB domain {domain}: {value} is outside [{min}, {max}] ({scale:?})")]
    MbOutOfRange {
        /// The domain.
        domain: u32,
        /// The value.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// The unit.
        scale: MbScale,
    },
    /// An MB percent not on the `bandwidth_gran` grid.
    #[error(
        "MB domain {domain}: {value} is not a multiple of bandwidth_gran {gran} (the kernel would round it up to {rounded})"
    )]
    MbOffGrid {
        /// The domain.
        domain: u32,
        /// The value.
        value: u64,
        /// `bandwidth_gran`.
        gran: u64,
        /// What the kernel would make of it.
        rounded: u64,
    },
    /// A value of the wrong kind (a mask for MB or a bandwidth for a cache).
    #[error("{resource} domain {domain}: value {value} is of the wrong kind")]
    WrongKind {
        /// The resource.
        resource: Resource,
        /// The domain.
        domain: u32,
        /// The value.
        value: Value,
    },
    /// The mask overlaps a group in exclusive mode.
    #[error(
        "{resource} domain {domain}: mask {mask:#x} overlaps exclusive group {other} ({other_mask:#x})"
    )]
    OverlapsExclusive {
        /// The resource.
        resource: Resource,
        /// The domain.
        domain: u32,
        /// The mask.
        mask: u64,
        /// The exclusive group.
        other: String,
        /// Its mask.
        other_mask: u64,
    },
    /// A group in exclusive mode would overlap another group or the
    /// hardware's `shareable_bits`.
    #[error(
        "{resource} domain {domain}: exclusive group mask {mask:#x} overlaps {other} ({other_mask:#x})"
    )]
    ExclusiveOverlaps {
        /// The resource.
        resource: Resource,
        /// The domain.
        domain: u32,
        /// The mask.
        mask: u64,
        /// The other group, or `shareable_bits`.
        other: String,
        /// Its mask.
        other_mask: u64,
    },
}

/// Check one cache mask against the resource's limits, as `cbm_validate()` does.
pub fn validate_cbm(
    resource: &Resource,
    domain: u32,
    mask: u64,
    info: &CacheInfo,
) -> Result<(), ValidateError> {
    if mask == 0 && info.min_cbm_bits > 0 {
        return Err(ValidateError::ZeroMask {
            resource: resource.clone(),
            domain,
            min: info.min_cbm_bits,
        });
    }
    if mask & !info.cbm_mask != 0 {
        return Err(ValidateError::OutsideCbmMask {
            resource: resource.clone(),
            domain,
            mask,
            cbm_mask: info.cbm_mask,
        });
    }
    if !info.sparse_masks && !cbm::is_contiguous(mask) {
        return Err(ValidateError::NotContiguous {
            resource: resource.clone(),
            domain,
            mask,
        });
    }
    // The kernel counts the first run of ones, sparse masks included.
    let bits = cbm::ways(cbm::first_run(mask));
    if bits < info.min_cbm_bits {
        return Err(ValidateError::TooFewBits {
            resource: resource.clone(),
            domain,
            mask,
            bits,
            min: info.min_cbm_bits,
        });
    }
    Ok(())
}

/// Round an MB percent up to the `bandwidth_gran` grid, as the kernel does.
pub fn round_to_grid(value: u64, gran: u64) -> u64 {
    if gran <= 1 {
        value
    } else {
        value.div_ceil(gran) * gran
    }
}

/// Check one MB value: within `[min_bandwidth, 100]` on the `bandwidth_gran`
/// grid for Intel percent, within `[0, 2048]` for AMD units, anything for MBps.
pub fn validate_bw(
    domain: u32,
    value: u64,
    info: &MbInfo,
    scale: MbScale,
) -> Result<(), ValidateError> {
    let (min, max) = match scale {
        MbScale::Percent => (info.min_bandwidth, 100),
        MbScale::AmdUnits => (info.min_bandwidth, 2048),
        MbScale::Mbps => (0, scale.max()),
    };
    if value < min || value > max {
        return Err(ValidateError::MbOutOfRange {
            domain,
            value,
            min,
            max,
            scale,
        });
    }
    if scale == MbScale::Percent
        && info.bandwidth_gran > 1
        && !value.is_multiple_of(info.bandwidth_gran)
    {
        return Err(ValidateError::MbOffGrid {
            domain,
            value,
            gran: info.bandwidth_gran,
            rounded: round_to_grid(value, info.bandwidth_gran),
        });
    }
    Ok(())
}

/// Check an update against the mount's layout: every resource exists (CDP
/// lines only with CDP, plain `L3` only without), every domain exists, and
/// every value passes [`validate_cbm`] or [`validate_bw`].
pub fn validate_update(layout: &Layout, update: &Schemata) -> Result<(), ValidateError> {
    for line in &update.lines {
        let r = &line.resource;
        let absent = |hint: &str| ValidateError::ResourceAbsent {
            resource: r.clone(),
            hint: hint.to_string(),
        };
        if r.is_cache() {
            let Some(info) = layout.caches.get(r) else {
                let hint = match r {
                    Resource::L3Data | Resource::L3Code => {
                        " (CDP is off: mount resctrl with -o cdp, or use L3)"
                    }
                    Resource::L2Data | Resource::L2Code => {
                        " (L2 CDP is off: mount resctrl with -o cdpl2, or use L2)"
                    }
                    Resource::L3 if layout.l3_cdp() => " (CDP is on: use L3DATA and L3CODE)",
                    Resource::L2 if layout.l2_cdp() => " (L2 CDP is on: use L2DATA and L2CODE)",
                    _ => "",
                };
                return Err(absent(hint));
            };
            for &(d, v) in &line.domains {
                check_domain(layout, r, d)?;
                match v {
                    Value::Cbm(m) => validate_cbm(r, d, m, info)?,
                    Value::Bw(_) => {
                        return Err(ValidateError::WrongKind {
                            resource: r.clone(),
                            domain: d,
                            value: v,
                        });
                    }
                }
            }
        } else if *r == Resource::Mb {
            let (Some(info), Some(scale)) = (&layout.mb, layout.mb_scale) else {
                return Err(absent(" (no MBA on this machine)"));
            };
            for &(d, v) in &line.domains {
                check_domain(layout, r, d)?;
                match v {
                    Value::Bw(b) => validate_bw(d, b, info, scale)?,
                    Value::Cbm(_) => {
                        return Err(ValidateError::WrongKind {
                            resource: r.clone(),
                            domain: d,
                            value: v,
                        });
                    }
                }
            }
        } else {
            return Err(absent(""));
        }
    }
    Ok(())
}

fn check_domain(layout: &Layout, r: &Resource, d: u32) -> Result<(), ValidateError> {
    let known = layout.domain_ids(r);
    if known.contains(&d) {
        Ok(())
    } else {
        Err(ValidateError::UnknownDomain {
            resource: r.clone(),
            domain: d,
            known: known.to_vec(),
        })
    }
}

/// Group mode (`mode` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Masks may overlap other shareable groups.
    Shareable,
    /// No other group may hold any of this group's ways.
    Exclusive,
    /// Pseudo-locking being set up (`pseudo-locksetup`).
    PseudoLockSetup,
    /// Pseudo-locked region.
    PseudoLocked,
}

impl Mode {
    /// The word in the `mode` file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shareable => "shareable",
            Mode::Exclusive => "exclusive",
            Mode::PseudoLockSetup => "pseudo-locksetup",
            Mode::PseudoLocked => "pseudo-locked",
        }
    }

    /// Parse the `mode` file.
    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim() {
            "shareable" => Some(Mode::Shareable),
            "exclusive" => Some(Mode::Exclusive),
            "pseudo-locksetup" => Some(Mode::PseudoLockSetup),
            "pseudo-locked" => Some(Mode::PseudoLocked),
            _ => None,
        }
    }
}

/// Another group's state, for overlap checks.
#[derive(Debug, Clone)]
pub struct Peer<'a> {
    /// Its name (`/` for the default group).
    pub name: &'a str,
    /// Its mode.
    pub mode: Mode,
    /// Its schemata.
    pub schemata: &'a Schemata,
}

/// The peer resource of a CDP half (`L3DATA` ↔ `L3CODE`): the kernel checks
/// overlaps against both halves.
fn cdp_peer(r: &Resource) -> Option<Resource> {
    match r {
        Resource::L3Data => Some(Resource::L3Code),
        Resource::L3Code => Some(Resource::L3Data),
        Resource::L2Data => Some(Resource::L2Code),
        Resource::L2Code => Some(Resource::L2Data),
        _ => None,
    }
}

/// Check the cache masks of `new` (the full schemata a group in `mode`
/// would have) against other groups, as `rdtgroup_cbm_overlaps()` does:
/// no mask may overlap an exclusive group's, and an exclusive group may not
/// overlap any other group nor `shareable_bits`.
pub fn validate_overlaps(
    layout: &Layout,
    mode: Mode,
    new: &Schemata,
    peers: &[Peer<'_>],
) -> Result<(), ValidateError> {
    for line in new.lines.iter().filter(|l| l.resource.is_cache()) {
        let r = &line.resource;
        let Some(info) = layout.caches.get(r) else {
            continue;
        };
        for &(d, v) in &line.domains {
            let mask = v.raw();
            if mode == Mode::Exclusive && mask & info.shareable_bits != 0 {
                return Err(ValidateError::ExclusiveOverlaps {
                    resource: r.clone(),
                    domain: d,
                    mask,
                    other: "shareable_bits".into(),
                    other_mask: info.shareable_bits,
                });
            }
            for p in peers.iter().filter(|p| p.mode != Mode::PseudoLockSetup) {
                let mut theirs = p.schemata.get(r, d).map_or(0, Value::raw);
                if let Some(peer_r) = cdp_peer(r) {
                    theirs |= p.schemata.get(&peer_r, d).map_or(0, Value::raw);
                }
                if mask & theirs == 0 {
                    continue;
                }
                if matches!(p.mode, Mode::Exclusive | Mode::PseudoLocked) {
                    return Err(ValidateError::OverlapsExclusive {
                        resource: r.clone(),
                        domain: d,
                        mask,
                        other: p.name.to_string(),
                        other_mask: theirs,
                    });
                }
                if mode == Mode::Exclusive {
                    return Err(ValidateError::ExclusiveOverlaps {
                        resource: r.clone(),
                        domain: d,
                        mask,
                        other: p.name.to_string(),
                        other_mask: theirs,
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn l3(cbm_mask: u64, min: u32, sparse: bool) -> CacheInfo {
        CacheInfo {
            num_closids: 16,
            cbm_mask,
            min_cbm_bits: min,
            shareable_bits: 0,
            sparse_masks: sparse,
            bit_usage: None,
        }
    }

    #[test]
    fn cbm_rules() {
        let i = l3(0x7ff, 1, false);
        let r = Resource::L3;
        assert!(validate_cbm(&r, 0, 0x7ff, &i).is_ok());
        assert!(matches!(
            validate_cbm(&r, 0, 0, &i),
            Err(ValidateError::ZeroMask { .. })
        ));
        assert!(matches!(
            validate_cbm(&r, 0, 0x800, &i),
            Err(ValidateError::OutsideCbmMask { .. })
        ));
        assert!(matches!(
            validate_cbm(&r, 0, 0x101, &i),
            Err(ValidateError::NotContiguous { .. })
        ));
        assert!(validate_cbm(&r, 0, 0x101, &l3(0x7ff, 1, true)).is_ok());
        assert!(matches!(
            validate_cbm(&r, 0, 0x1, &l3(0x7ff, 2, false)),
            Err(ValidateError::TooFewBits {
                bits: 1,
                min: 2,
                ..
            })
        ));
        // AMD: min_cbm_bits 0 lets a group hold no way at all.
        assert!(validate_cbm(&r, 0, 0, &l3(0xffff, 0, true)).is_ok());
    }

    #[test]
    fn mb_rules() {
        let i = MbInfo {
            num_closids: 8,
            min_bandwidth: 10,
            bandwidth_gran: 10,
            delay_linear: true,
            thread_throttle_mode: None,
        };
        assert!(validate_bw(0, 50, &i, MbScale::Percent).is_ok());
        assert!(matches!(
            validate_bw(0, 5, &i, MbScale::Percent),
            Err(ValidateError::MbOutOfRange { .. })
        ));
        assert!(matches!(
            validate_bw(0, 101, &i, MbScale::Percent),
            Err(ValidateError::MbOutOfRange { .. })
        ));
        assert!(matches!(
            validate_bw(0, 55, &i, MbScale::Percent),
            Err(ValidateError::MbOffGrid { rounded: 60, .. })
        ));
        assert!(validate_bw(0, 20000, &i, MbScale::Mbps).is_ok());
        let amd = MbInfo {
            min_bandwidth: 0,
            bandwidth_gran: 1,
            ..i
        };
        assert!(validate_bw(0, 2048, &amd, MbScale::AmdUnits).is_ok());
        assert!(validate_bw(0, 2049, &amd, MbScale::AmdUnits).is_err());
    }

    proptest! {
        /// Every mask that passes is non-empty, inside cbm_mask, contiguous
        /// and holds at least min_cbm_bits ways; every contiguous mask of
        /// enough ways inside cbm_mask passes.
        #[test]
        fn cbm_validation_matches_rules(len in 4u32..21, min in 1u32..4, mask in any::<u32>()) {
            let cbm_mask = cbm::contiguous(0, len);
            let i = l3(cbm_mask, min, false);
            let mask = u64::from(mask) & 0x1f_ffff;
            let ok = validate_cbm(&Resource::L3, 0, mask, &i).is_ok();
            let rules = mask != 0 && mask & !cbm_mask == 0 && cbm::is_contiguous(mask) && cbm::ways(mask) >= min;
            prop_assert_eq!(ok, rules);
        }
    }
}
