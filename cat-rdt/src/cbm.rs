//! Cache bit masks (CBMs): pure helpers for contiguity, way counts, runs of
//! set bits and the way bars that `seer-rdt` draws.

/// Number of set bits (cache ways) in `mask`.
pub fn ways(mask: u64) -> u32 {
    mask.count_ones()
}

/// A mask of `len` contiguous bits starting at bit `start`.
pub fn contiguous(start: u32, len: u32) -> u64 {
    if len == 0 {
        return 0;
    }
    let ones = if len >= 64 {
        u64::MAX
    } else {
        (1u64 << len) - 1
    };
    ones << start
}

/// Whether the set bits of `mask` form one run (an empty mask counts as contiguous).
pub fn is_contiguous(mask: u64) -> bool {
    if mask == 0 {
        return true;
    }
    let shifted = mask >> mask.trailing_zeros();
    shifted & shifted.wrapping_add(1) == 0
}

/// The runs of set bits of `mask` as `(start, len)`, lowest first.
pub fn runs(mask: u64) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut m = mask;
    while m != 0 {
        let start = m.trailing_zeros();
        let len = (m >> start).trailing_ones();
        out.push((start, len));
        m &= !contiguous(start, len);
    }
    out
}

/// The longest run of set bits of `mask` as a mask (the highest one on ties);
/// 0 for an empty mask.
pub fn largest_run(mask: u64) -> u64 {
    let mut best = (0u32, 0u32);
    for (s, l) in runs(mask) {
        if l >= best.1 {
            best = (s, l);
        }
    }
    contiguous(best.0, best.1)
}

/// Keep the first run of `mask` (from the lowest set bit up to the first gap),
/// as the kernel's `cbm_ensure_valid()` does for a new group's default mask.
pub fn first_run(mask: u64) -> u64 {
    runs(mask)
        .first()
        .map(|&(s, l)| contiguous(s, l))
        .unwrap_or(0)
}

/// Length in bits of a `cbm_mask` such as `0x7ff` (position of its highest bit + 1).
pub fn cbm_len(cbm_mask: u64) -> u32 {
    64 - cbm_mask.leading_zeros()
}

/// Hex digits the kernel prints for a mask of `cbm_len` bits.
pub fn hex_width(cbm_len: u32) -> usize {
    (cbm_len as usize).div_ceil(4).max(1)
}

/// Draw `mask` as a bar of `cbm_len` cells, highest way on the left as in the
/// hex number: `█` for a way held, `·` for a way not held.
pub fn bar(mask: u64, cbm_len: u32) -> String {
    (0..cbm_len)
        .rev()
        .map(|b| if mask >> b & 1 == 1 { '█' } else { '·' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn contiguity() {
        assert!(is_contiguous(0));
        assert!(is_contiguous(0x7ff));
        assert!(is_contiguous(0x0f0));
        assert!(!is_contiguous(0x101));
        assert!(!is_contiguous(0x7fef));
        assert!(is_contiguous(u64::MAX));
    }

    #[test]
    fn runs_and_largest() {
        assert_eq!(runs(0b1110_0110), vec![(1, 2), (5, 3)]);
        assert_eq!(largest_run(0b1110_0110), 0b1110_0000);
        assert_eq!(largest_run(0b0110_0110), 0b0110_0000);
        assert_eq!(first_run(0b1110_0110), 0b0110);
        assert_eq!(largest_run(0), 0);
    }

    #[test]
    fn widths_and_bars() {
        assert_eq!(cbm_len(0x7ff), 11);
        assert_eq!(hex_width(11), 3);
        assert_eq!(hex_width(20), 5);
        assert_eq!(bar(0x0f0, 12), "····████····");
    }

    proptest! {
        #[test]
        fn contiguous_masks_are_contiguous(start in 0u32..40, len in 1u32..24) {
            let m = contiguous(start, len);
            prop_assert!(is_contiguous(m));
            prop_assert_eq!(ways(m), len);
            prop_assert_eq!(runs(m), vec![(start, len)]);
        }

        #[test]
        fn runs_rebuild_the_mask(mask in any::<u32>()) {
            let mask = u64::from(mask);
            let rebuilt = runs(mask).iter().fold(0, |acc, &(s, l)| acc | contiguous(s, l));
            prop_assert_eq!(rebuilt, mask);
            prop_assert_eq!(is_contiguous(mask), runs(mask).len() <= 1);
            prop_assert!(largest_run(mask) & !mask == 0);
        }
    }
}
