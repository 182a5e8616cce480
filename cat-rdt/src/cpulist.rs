//! CPU sets in the two kernel spellings: lists (`0-3,8`, the `cpus_list` file)
//! and hex masks (`ff,ffffffff`, the `cpus` file). Pure functions.

use std::collections::BTreeSet;

/// A set of CPU numbers.
pub type CpuSet = BTreeSet<u32>;

/// Why a CPU list or mask could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuListError {
    /// A list item is not a number or a range `a-b` with `a <= b`.
    #[error("bad cpu list item {item:?} in {text:?}")]
    BadItem {
        /// The item.
        item: String,
        /// The whole text.
        text: String,
    },
    /// A hex mask holds a character that is not a hex digit or a comma.
    #[error("bad cpu mask {0:?}")]
    BadMask(String),
}

/// Parse a CPU list such as `0-3,8,10-11` (empty text is the empty set).
pub fn parse_list(text: &str) -> Result<CpuSet, CpuListError> {
    let mut set = CpuSet::new();
    let t = text.trim();
    if t.is_empty() {
        return Ok(set);
    }
    for item in t.split(',') {
        let bad = || CpuListError::BadItem {
            item: item.to_string(),
            text: text.to_string(),
        };
        let item_t = item.trim();
        if let Some((a, b)) = item_t.split_once('-') {
            let a: u32 = a.trim().parse().map_err(|_| bad())?;
            let b: u32 = b.trim().parse().map_err(|_| bad())?;
            if a > b || b - a > 1 << 16 {
                return Err(bad());
            }
            set.extend(a..=b);
        } else {
            set.insert(item_t.parse().map_err(|_| bad())?);
        }
    }
    Ok(set)
}

/// Print a CPU set as the kernel prints `cpus_list`: ranges joined by commas.
pub fn format_list(set: &CpuSet) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// Parse a hex CPU mask such as `ff` or `1,00000000` (commas every 32 bits).
pub fn parse_mask(text: &str) -> Result<CpuSet, CpuListError> {
    let t = text.trim();
    let digits: String = t.chars().filter(|&c| c != ',').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CpuListError::BadMask(text.to_string()));
    }
    let mut set = CpuSet::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let v = c.to_digit(16).unwrap_or(0);
        for b in 0..4 {
            if v >> b & 1 == 1 {
                set.insert((i * 4 + b) as u32);
            }
        }
    }
    Ok(set)
}

/// Print a CPU set as the kernel prints `cpus` for `nr_cpus` possible CPUs:
/// hex digits, a comma every 32 bits, zero-padded to the width of `nr_cpus`.
pub fn format_mask(set: &CpuSet, nr_cpus: u32) -> String {
    let nbits = nr_cpus.max(set.iter().next_back().map_or(1, |&c| c + 1));
    let ndigits = nbits.div_ceil(4) as usize;
    let mut digits = Vec::with_capacity(ndigits);
    for d in 0..ndigits {
        let mut v = 0u32;
        for b in 0..4 {
            if set.contains(&((d * 4 + b) as u32)) {
                v |= 1 << b;
            }
        }
        digits.push(char::from_digit(v, 16).unwrap_or('0'));
    }
    let mut out = String::new();
    for (i, c) in digits.iter().enumerate().rev() {
        out.push(*c);
        if i % 8 == 0 && i != 0 {
            out.push(',');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_lists() {
        let s = parse_list("0-3,8,10-11\n").expect("valid");
        assert_eq!(
            s.iter().copied().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(format_list(&s), "0-3,8,10-11");
        assert!(parse_list("").expect("empty").is_empty());
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("a").is_err());
    }

    #[test]
    fn golden_masks() {
        let s: CpuSet = (0..8).collect();
        assert_eq!(format_mask(&s, 8), "ff");
        assert_eq!(format_mask(&CpuSet::new(), 64), "00000000,00000000");
        let s: CpuSet = [0u32, 32].into_iter().collect();
        assert_eq!(format_mask(&s, 40), "01,00000001");
        assert_eq!(parse_mask("01,00000001").expect("valid"), s);
        assert!(parse_mask("xyz").is_err());
    }

    proptest! {
        #[test]
        fn list_and_mask_round_trip(cpus in proptest::collection::btree_set(0u32..200, 0..40)) {
            prop_assert_eq!(parse_list(&format_list(&cpus)).expect("own output"), cpus.clone());
            prop_assert_eq!(parse_mask(&format_mask(&cpus, 200)).expect("own output"), cpus);
        }
    }
}
