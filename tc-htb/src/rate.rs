//! Rates, sizes and the packet-scheduler clock (`/proc/net/psched`).
//!
//! HTB takes rates in bytes per second and bursts as *time* in scheduler
//! ticks: the time the burst takes to send at the class rate. The conversions
//! here copy `iproute2`'s `tc_core.c` bit for bit (including its truncations),
//! so that a class configured here reads back exactly as one configured by
//! `tc`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Microseconds per second, `TIME_UNITS_PER_SEC` in `tc`.
const TIME_UNITS_PER_SEC: f64 = 1_000_000.0;

/// Errors from rates, sizes and `/proc/net/psched`.
#[derive(Debug, thiserror::Error)]
pub enum RateError {
    /// A rate string `tc` would reject.
    #[error("invalid rate {text:?}: expected a number with a unit such as 50mbit, 1gbit, 10mbps")]
    InvalidRate {
        /// The text given.
        text: String,
    },
    /// A rate of zero bytes per second.
    #[error("invalid rate 0: HTB needs a rate of at least 1 byte/s")]
    ZeroRate,
    /// A size string `tc` would reject.
    #[error("invalid size {text:?}: expected bytes with an optional unit such as 1514, 15k, 1m")]
    InvalidSize {
        /// The text given.
        text: String,
    },
    /// `/proc/net/psched` could not be read.
    #[error("failed to read {path}: {source}")]
    PschedRead {
        /// The file read.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `/proc/net/psched` did not hold four hex words.
    #[error("failed to parse {path}: expected four hex words, got {text:?}")]
    PschedParse {
        /// The file read.
        path: PathBuf,
        /// Its content.
        text: String,
    },
}

/// A rate in bytes per second (what the kernel stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate(pub u64);

impl Rate {
    /// A rate in bits per second (rounded down to whole bytes, as `tc` does).
    pub const fn from_bits_per_sec(bits: u64) -> Rate {
        Rate(bits / 8)
    }

    /// `n` megabits per second (10⁶ bits), `tc`'s `mbit`.
    pub const fn mbit(n: u64) -> Rate {
        Rate(n * 1_000_000 / 8)
    }

    /// `n` gigabits per second (10⁹ bits), `tc`'s `gbit`.
    pub const fn gbit(n: u64) -> Rate {
        Rate(n * 1_000_000_000 / 8)
    }

    /// Bytes per second.
    pub const fn bytes_per_sec(self) -> u64 {
        self.0
    }

    /// Bits per second.
    pub const fn bits_per_sec(self) -> u64 {
        self.0.saturating_mul(8)
    }
}

/// `tc`'s rate suffixes (matched case-insensitively) and their scale in bits.
const RATE_SUFFIXES: &[(&str, f64)] = &[
    ("bit", 1.0),
    ("kibit", 1024.0),
    ("kbit", 1000.0),
    ("mibit", 1024.0 * 1024.0),
    ("mbit", 1_000_000.0),
    ("gibit", 1024.0 * 1024.0 * 1024.0),
    ("gbit", 1_000_000_000.0),
    ("tibit", 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("tbit", 1_000_000_000_000.0),
    ("bps", 8.0),
    ("kibps", 8.0 * 1024.0),
    ("kbps", 8000.0),
    ("mibps", 8.0 * 1024.0 * 1024.0),
    ("mbps", 8_000_000.0),
    ("gibps", 8.0 * 1024.0 * 1024.0 * 1024.0),
    ("gbps", 8_000_000_000.0),
    ("tibps", 8.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("tbps", 8_000_000_000_000.0),
];

/// Splits `"15.5mbit"` into the number and the suffix.
fn split_number(text: &str) -> Option<(f64, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let value: f64 = text[..end].parse().ok()?;
    Some((value, &text[end..]))
}

impl FromStr for Rate {
    type Err = RateError;

    /// Parses a rate as `tc` does: a number with a unit (`bit`, `kbit`,
    /// `mbit`, `gbit`, `tbit`, the `ibit` powers of two, or the same in bytes
    /// with `bps`); a bare number is bits per second.
    fn from_str(text: &str) -> Result<Rate, RateError> {
        let invalid = || RateError::InvalidRate {
            text: text.to_string(),
        };
        let (value, suffix) = split_number(text.trim()).ok_or_else(invalid)?;
        let scale = if suffix.is_empty() {
            1.0
        } else {
            RATE_SUFFIXES
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(suffix))
                .map(|&(_, scale)| scale)
                .ok_or_else(invalid)?
        };
        let bytes = value * scale / 8.0;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(invalid());
        }
        let rate = Rate(bytes as u64);
        if rate.0 == 0 {
            return Err(RateError::ZeroRate);
        }
        Ok(rate)
    }
}

impl fmt::Display for Rate {
    /// Prints like `tc`: `50Mbit`, `1Gbit`, `1500bit` (decimal units).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.bits_per_sec();
        for (unit, scale) in [
            ("Tbit", 1_000_000_000_000u64),
            ("Gbit", 1_000_000_000),
            ("Mbit", 1_000_000),
            ("Kbit", 1000),
        ] {
            if bits >= scale && bits.is_multiple_of(scale) {
                return write!(f, "{}{unit}", bits / scale);
            }
        }
        write!(f, "{bits}bit")
    }
}

/// Parses a size as `tc` does (`get_size`): bytes, with an optional unit
/// `b`, `k`/`kb` (1024), `m`/`mb`, `g`/`gb`, or `kbit`/`mbit`/`gbit` (bits,
/// powers of 1024).
pub fn parse_size(text: &str) -> Result<u32, RateError> {
    let invalid = || RateError::InvalidSize {
        text: text.to_string(),
    };
    let (value, suffix) = split_number(text.trim()).ok_or_else(invalid)?;
    let scale = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        "kbit" => 1024.0 / 8.0,
        "mbit" => 1024.0 * 1024.0 / 8.0,
        "gbit" => 1024.0 * 1024.0 * 1024.0 / 8.0,
        _ => return Err(invalid()),
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes > u32::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as u32)
}

/// The packet-scheduler clock, from `/proc/net/psched`.
///
/// The four hex words are ticks-to-µs numerator and denominator, the clock
/// resolution and `HZ` (1e9 with high-resolution timers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Psched {
    /// First word: ticks-to-microseconds numerator.
    pub t2us: u32,
    /// Second word: ticks-to-microseconds denominator.
    pub us2t: u32,
    /// Third word: clock resolution in Hz.
    pub clock_res: u32,
    /// Fourth word: the timer frequency `tc` uses for default bursts.
    pub hz: u32,
}

impl Psched {
    /// The values of every Linux kernel since 2.6.x with `PSCHED_SHIFT` 6
    /// and high-resolution timers: `000003e8 00000040 000f4240 3b9aca00`.
    pub const LINUX_DEFAULT: Psched = Psched {
        t2us: 1000,
        us2t: 64,
        clock_res: 1_000_000,
        hz: 1_000_000_000,
    };

    /// Reads the real `/proc/net/psched` of this machine.
    pub fn discover() -> Result<Psched, RateError> {
        Psched::from_path("/proc/net/psched")
    }

    /// Reads a psched file at `path` (for tests, a copy of one).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Psched, RateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RateError::PschedRead {
            path: path.to_path_buf(),
            source,
        })?;
        Psched::parse(&text).ok_or_else(|| RateError::PschedParse {
            path: path.to_path_buf(),
            text,
        })
    }

    /// Parses the content of `/proc/net/psched`.
    pub fn parse(text: &str) -> Option<Psched> {
        let mut words = text.split_whitespace().map(|w| u32::from_str_radix(w, 16));
        let mut next = || words.next()?.ok();
        let p = Psched {
            t2us: next()?,
            us2t: next()?,
            clock_res: next()?,
            hz: next()?,
        };
        (p.us2t != 0 && p.clock_res != 0).then_some(p)
    }

    /// Scheduler ticks per microsecond (`tick_in_usec` in `tc_core.c`).
    pub fn ticks_per_usec(&self) -> f64 {
        let t2us = if self.clock_res == 1_000_000_000 {
            self.us2t
        } else {
            self.t2us
        };
        let clock_factor = f64::from(self.clock_res) / TIME_UNITS_PER_SEC;
        f64::from(t2us) / f64::from(self.us2t) * clock_factor
    }

    /// Microseconds to ticks, truncated (`tc_core_time2tick`).
    pub fn usec_to_ticks(&self, usec: u32) -> u32 {
        (f64::from(usec) * self.ticks_per_usec()) as u32
    }

    /// Ticks to microseconds, truncated (`tc_core_tick2time`).
    pub fn ticks_to_usec(&self, ticks: u32) -> u32 {
        (f64::from(ticks) / self.ticks_per_usec()) as u32
    }

    /// Ticks needed to send `size` bytes at `rate` (`tc_calc_xmittime`): how
    /// HTB's `buffer`/`cbuffer` encode a burst.
    pub fn xmit_ticks(&self, rate: Rate, size: u32) -> u32 {
        if rate.0 == 0 {
            return u32::MAX;
        }
        let usec = (TIME_UNITS_PER_SEC * (f64::from(size) / rate.0 as f64)) as u32;
        self.usec_to_ticks(usec)
    }

    /// Bytes sent at `rate` during `ticks` (`tc_calc_xmitsize`): a burst
    /// decoded from the kernel's `buffer`.
    pub fn xmit_size(&self, rate: Rate, ticks: u32) -> u32 {
        let bytes = rate.0 as f64 * f64::from(self.ticks_to_usec(ticks)) / TIME_UNITS_PER_SEC;
        bytes.min(f64::from(u32::MAX)) as u32
    }

    /// The burst `tc` picks when none is given: `rate / HZ + mtu`.
    pub fn default_burst(&self, rate: Rate, mtu: u32) -> u32 {
        let hz = if self.clock_res == 1_000_000 && self.hz != 0 {
            u64::from(self.hz)
        } else {
            100
        };
        u32::try_from(rate.0 / hz + u64::from(mtu)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rates_parse_like_tc() {
        assert_eq!("50mbit".parse::<Rate>().unwrap(), Rate(6_250_000));
        assert_eq!("1gbit".parse::<Rate>().unwrap(), Rate(125_000_000));
        assert_eq!("1Gbit".parse::<Rate>().unwrap(), Rate(125_000_000));
        assert_eq!("40gbit".parse::<Rate>().unwrap(), Rate(5_000_000_000));
        assert_eq!("10mbps".parse::<Rate>().unwrap(), Rate(10_000_000));
        assert_eq!("8000".parse::<Rate>().unwrap(), Rate(1000));
        assert_eq!("1kibit".parse::<Rate>().unwrap(), Rate(128));
        assert_eq!("1.5mbit".parse::<Rate>().unwrap(), Rate(187_500));
        assert!(matches!("0mbit".parse::<Rate>(), Err(RateError::ZeroRate)));
        assert!("fast".parse::<Rate>().is_err());
        assert!("10 furlongs".parse::<Rate>().is_err());
        assert!("".parse::<Rate>().is_err());
        assert_eq!(Rate::mbit(50).to_string(), "50Mbit");
        assert_eq!(Rate::gbit(40).to_string(), "40Gbit");
        assert_eq!(Rate(3).to_string(), "24bit");
    }

    #[test]
    fn sizes_parse_like_tc() {
        assert_eq!(parse_size("1514").unwrap(), 1514);
        assert_eq!(parse_size("15k").unwrap(), 15 * 1024);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("8kbit").unwrap(), 1024);
        assert!(parse_size("1q").is_err());
        assert!(parse_size("5g0").is_err());
    }

    #[test]
    fn psched_of_this_kernel_family() {
        let p = Psched::parse("000003e8 00000040 000f4240 3b9aca00\n").unwrap();
        assert_eq!(p, Psched::LINUX_DEFAULT);
        assert_eq!(p.ticks_per_usec(), 15.625);
        // `tc class add ... rate 50mbit burst 15k` sends buffer 0x95f6.
        assert_eq!(p.xmit_ticks(Rate::mbit(50), 15 * 1024), 0x95f6);
        // `rate 1gbit` with no burst: 1600 bytes, buffer 0xbb.
        assert_eq!(p.default_burst(Rate::gbit(1), 1600), 1600);
        assert_eq!(p.xmit_ticks(Rate::gbit(1), 1600), 0xbb);
        // `rate 40gbit burst 1m`: buffer 0x0cc1.
        assert_eq!(p.xmit_ticks(Rate::gbit(40), 1 << 20), 0x0cc1);
        assert!(Psched::parse("zz").is_none());
        assert!(Psched::parse("1 0 1 1").is_none());
    }

    #[test]
    fn psched_from_missing_path_names_it() {
        let err = Psched::from_path("/nonexistent/psched").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/psched"), "{err}");
    }

    proptest! {
        #[test]
        fn rate_display_parse_round_trip(bits_k in 1u64..100_000_000) {
            let rate = Rate::from_bits_per_sec(bits_k * 1000);
            let back: Rate = rate.to_string().parse().unwrap();
            prop_assert_eq!(back, rate);
        }

        #[test]
        fn burst_round_trips_within_one_tick(rate_kbit in 8u64..100_000_000, size in 64u32..16_000_000) {
            let p = Psched::LINUX_DEFAULT;
            let rate = Rate::from_bits_per_sec(rate_kbit * 1000);
            let ticks = p.xmit_ticks(rate, size);
            let usec = (1e6 * f64::from(size) / rate.0 as f64).floor();
            prop_assume!(usec < f64::from(u32::MAX) / 16.0);
            let back = p.xmit_size(rate, ticks);
            // Two truncations to whole microseconds: at most 2 µs worth of bytes lost.
            let slack = (rate.0 as f64 * 2e-6).ceil() as u32 + 1;
            prop_assert!(back <= size, "back {} > size {}", back, size);
            prop_assert!(size - back <= slack, "size {} back {} slack {}", size, back, slack);
        }

        #[test]
        fn xmit_ticks_is_monotonic(rate_kbit in 8u64..10_000_000, a in 1u32..10_000_000, b in 1u32..10_000_000) {
            let p = Psched::LINUX_DEFAULT;
            let rate = Rate::from_bits_per_sec(rate_kbit * 1000);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(p.xmit_ticks(rate, lo) <= p.xmit_ticks(rate, hi));
        }

        #[test]
        fn size_parse_k_is_1024(n in 0u32..4_000_000) {
            prop_assert_eq!(parse_size(&format!("{n}k")).unwrap(), n * 1024);
            prop_assert_eq!(parse_size(&n.to_string()).unwrap(), n);
        }
    }
}
