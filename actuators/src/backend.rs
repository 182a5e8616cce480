//! The small traits through which actions reach resctrl (cache ways, memory
//! bandwidth) and HTB (network rate), so that the journal, apply and revert
//! logic does not depend on how those are implemented. `cat-rdt` and `tc-htb`
//! implement them; `test_util` has recording implementations.

/// The error type a backend returns (its own error, boxed).
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Reads and sets Intel CAT / MBA allocations of resctrl groups.
pub trait CacheAllocator: Send {
    /// The L3 capacity bitmask of `group` on cache `cache_id`
    /// (`L3:<id>=<mask>` in the group's `schemata`).
    fn l3_mask(&mut self, group: &str, cache_id: u32) -> Result<u64, BackendError>;

    /// Sets the L3 capacity bitmask (`echo "L3:<id>=<mask>" > schemata`).
    fn set_l3_mask(&mut self, group: &str, cache_id: u32, mask: u64) -> Result<(), BackendError>;

    /// The full capacity bitmask of cache `cache_id` (`info/L3/cbm_mask`) and
    /// the fewest bits a mask may have (`info/L3/min_cbm_bits`).
    fn l3_geometry(&mut self, cache_id: u32) -> Result<(u64, u32), BackendError>;

    /// The memory-bandwidth percent of `group` on `domain` (`MB:<id>=<pct>`).
    fn mb_percent(&mut self, group: &str, domain: u32) -> Result<u32, BackendError>;

    /// Sets the memory-bandwidth percent (`echo "MB:<id>=<pct>" > schemata`).
    fn set_mb_percent(
        &mut self,
        group: &str,
        domain: u32,
        percent: u32,
    ) -> Result<(), BackendError>;

    /// The percent the hardware will actually hold for `percent` (rounded
    /// to `bandwidth_gran`, raised to `min_bandwidth`), so that the value
    /// journaled is the value read back. Default: unchanged.
    fn normalize_mb_percent(&mut self, percent: u32) -> Result<u32, BackendError> {
        Ok(percent)
    }
}

/// Reads and sets the rate and ceil of HTB classes.
pub trait BandwidthShaper: Send {
    /// Rate and ceil of `class` on `iface`, bits/s.
    fn class_rate(&mut self, iface: &str, class: &str) -> Result<(u64, u64), BackendError>;

    /// `tc class change dev <iface> classid <class> htb rate <rate>bit ceil <ceil>bit`.
    fn set_class_rate(
        &mut self,
        iface: &str,
        class: &str,
        rate_bps: u64,
        ceil_bps: u64,
    ) -> Result<(), BackendError>;
}

/// A contiguous mask of `ways` bits inside `cbm_mask`, placed at the lowest
/// set bit of `anchor` when it fits there (so a group keeps the ways it had
/// and grows or shrinks at its top end), else as low as `cbm_mask` allows.
/// `None` when `ways` is below `min_bits` or more than `cbm_mask` holds.
pub fn contiguous_mask(ways: u32, cbm_mask: u64, min_bits: u32, anchor: u64) -> Option<u64> {
    if ways == 0 || ways < min_bits || ways > 64 {
        return None;
    }
    let run = if ways == 64 {
        u64::MAX
    } else {
        (1u64 << ways) - 1
    };
    let fits = |start: u32| start + ways <= 64 && (run << start) & !cbm_mask == 0;
    let anchor_start = (anchor & cbm_mask != 0).then(|| (anchor & cbm_mask).trailing_zeros());
    if let Some(s) = anchor_start
        && fits(s)
    {
        return Some(run << s);
    }
    // Else the lowest start that fits.
    (0..=64u32.saturating_sub(ways))
        .find(|s| fits(*s))
        .map(|s| run << s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_golden() {
        assert_eq!(contiguous_mask(4, 0xfff, 1, 0), Some(0xf));
        assert_eq!(contiguous_mask(4, 0xfff, 1, 0xf0), Some(0xf0));
        // Anchor too high to hold 4 ways: slide down.
        assert_eq!(contiguous_mask(4, 0xfff, 1, 0x800), Some(0xf));
        assert_eq!(contiguous_mask(1, 0xfff, 2, 0), None);
        assert_eq!(contiguous_mask(13, 0xfff, 1, 0), None);
        assert_eq!(contiguous_mask(2, 0xff0, 1, 0), Some(0x30));
    }

    proptest! {
        #[test]
        fn mask_is_contiguous_inside_and_sized(
            width in 1u32..=32, ways in 1u32..=32, min in 1u32..=4, anchor in any::<u64>()
        ) {
            let cbm = (1u64 << width) - 1;
            match contiguous_mask(ways, cbm, min, anchor) {
                Some(m) => {
                    prop_assert_eq!(m.count_ones(), ways);
                    prop_assert_eq!(m & !cbm, 0);
                    let shifted = m >> m.trailing_zeros();
                    prop_assert_eq!(shifted & (shifted + 1), 0, "contiguous");
                    prop_assert!(ways >= min);
                }
                None => prop_assert!(ways > width || ways < min),
            }
        }
    }
}
