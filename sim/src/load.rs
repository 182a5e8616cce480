//! Load shapes: the arrival rate over time of the open-loop Poisson client.
//!
//! A shape gives the rate (requests/s) at each instant since the start of the run;
//! arrivals are drawn from the non-homogeneous Poisson process with that rate
//! (by thinning), so inter-arrival times stay exponential at every rate.
//!
//! On the command line a shape is written `NAME[:key=value,...]`:
//!
//! | spec | shape |
//! | --- | --- |
//! | `constant` | the target rate |
//! | `diurnal[:period=24h,amplitude=0.5,phase=0]` | `rate × (1 + amplitude × sin(2π t / period + phase))` |
//! | `spikes[:every=10m,length=30s,factor=3,first=5m]` | the rate, times `factor` during each spike |
//! | a path to a `.txt` file | one rate per line, one line per second, scaled to the target mean, repeated |

use std::path::{Path, PathBuf};

/// Errors building a load shape.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The rate file could not be read.
    #[error("failed to read load file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The rate file has a bad line.
    #[error("bad load file {path}: {message}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line number and text.
        message: String,
    },
    /// The shape spec could not be understood.
    #[error("bad load spec {spec:?}: {message}")]
    BadSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
}

/// A spike of extra load.
#[derive(Debug, Clone, PartialEq)]
pub struct Spike {
    /// Start, ns since the start of the run.
    pub start_ns: u64,
    /// Length, ns.
    pub duration_ns: u64,
    /// Rate multiplier during the spike.
    pub factor: f64,
}

/// The arrival rate over time.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadShape {
    /// A constant rate, requests/s.
    Constant {
        /// Requests/s.
        rate: f64,
    },
    /// `mean × (1 + amplitude × sin(2π t / period + phase))`.
    Diurnal {
        /// Mean rate, requests/s.
        mean: f64,
        /// Relative amplitude in `[0, 1]`.
        amplitude: f64,
        /// Period, ns.
        period_ns: u64,
        /// Phase, radians.
        phase: f64,
    },
    /// A base rate with spikes.
    Spikes {
        /// Rate outside spikes, requests/s.
        base: f64,
        /// The spikes, sorted by start.
        spikes: Vec<Spike>,
    },
    /// One rate per second (already scaled), repeated when the run is longer.
    PerSecond {
        /// Requests/s for each second; non-empty.
        rates: Vec<f64>,
    },
}

const NS: f64 = 1e9;

impl LoadShape {
    /// The rate at `t_ns` since the start of the run, requests/s.
    pub fn rate_at(&self, t_ns: u64) -> f64 {
        match self {
            LoadShape::Constant { rate } => *rate,
            LoadShape::Diurnal {
                mean,
                amplitude,
                period_ns,
                phase,
            } => {
                let x =
                    std::f64::consts::TAU * (t_ns % period_ns) as f64 / *period_ns as f64 + phase;
                (mean * (1.0 + amplitude * x.sin())).max(0.0)
            }
            LoadShape::Spikes { base, spikes } => {
                let mut r = *base;
                for s in spikes {
                    if t_ns >= s.start_ns && t_ns < s.start_ns + s.duration_ns {
                        r = base * s.factor;
                    }
                }
                r
            }
            LoadShape::PerSecond { rates } => rates[(t_ns / 1_000_000_000) as usize % rates.len()],
        }
    }

    /// An upper bound of [`LoadShape::rate_at`] (the thinning envelope).
    pub fn max_rate(&self) -> f64 {
        match self {
            LoadShape::Constant { rate } => *rate,
            LoadShape::Diurnal {
                mean, amplitude, ..
            } => mean * (1.0 + amplitude),
            LoadShape::Spikes { base, spikes } => {
                spikes.iter().map(|s| base * s.factor).fold(*base, f64::max)
            }
            LoadShape::PerSecond { rates } => rates.iter().copied().fold(0.0, f64::max),
        }
    }

    /// The mean rate over `[0, duration_ns)`, requests/s (numerically, per 100 ms).
    pub fn mean_rate(&self, duration_ns: u64) -> f64 {
        let step = 100_000_000u64;
        let n = (duration_ns / step).max(1);
        (0..n).map(|i| self.rate_at(i * step)).sum::<f64>() / n as f64
    }

    /// Parses a spec (see the module docs) for the target mean `rate`.
    pub fn parse(spec: &str, rate: f64) -> Result<Self, LoadError> {
        let bad = |message: String| LoadError::BadSpec {
            spec: spec.to_string(),
            message,
        };
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(bad(format!(
                "rate must be a non-negative number, got {rate}"
            )));
        }
        let (name, args) = spec.split_once(':').unwrap_or((spec, ""));
        let mut kv = Vec::new();
        for part in args.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("expected key=value, got {part:?}")))?;
            kv.push((k.trim(), v.trim()));
        }
        let dur = |key: &str, default: &str| -> Result<u64, LoadError> {
            let v = kv
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(default, |(_, v)| v);
            humantime::parse_duration(v)
                .map(|d| d.as_nanos() as u64)
                .map_err(|e| bad(format!("{key}={v}: {e}")))
        };
        let num = |key: &str, default: f64| -> Result<f64, LoadError> {
            match kv.iter().find(|(k, _)| *k == key) {
                None => Ok(default),
                Some((_, v)) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| bad(format!("{key}={v} is not a number"))),
            }
        };
        let check_keys = |allowed: &[&str]| -> Result<(), LoadError> {
            for (k, _) in &kv {
                if !allowed.contains(k) {
                    return Err(bad(format!(
                        "unknown key {k:?} (expected one of {})",
                        allowed.join(", ")
                    )));
                }
            }
            Ok(())
        };
        match name {
            "constant" => {
                check_keys(&[])?;
                Ok(LoadShape::Constant { rate })
            }
            "diurnal" => {
                check_keys(&["period", "amplitude", "phase"])?;
                let amplitude = num("amplitude", 0.5)?;
                if !(0.0..=1.0).contains(&amplitude) {
                    return Err(bad(format!("amplitude must be in [0, 1], got {amplitude}")));
                }
                let period_ns = dur("period", "24h")?;
                if period_ns == 0 {
                    return Err(bad("period must be positive".into()));
                }
                Ok(LoadShape::Diurnal {
                    mean: rate,
                    amplitude,
                    period_ns,
                    phase: num("phase", 0.0)?,
                })
            }
            "spikes" => {
                check_keys(&["every", "length", "factor", "first", "count"])?;
                let every = dur("every", "10m")?;
                let length = dur("length", "30s")?;
                let first = dur("first", "5m")?;
                let factor = num("factor", 3.0)?;
                let count = num("count", 1000.0)? as u64;
                if every == 0 || factor < 0.0 {
                    return Err(bad("every must be positive and factor non-negative".into()));
                }
                let spikes = (0..count)
                    .map(|i| Spike {
                        start_ns: first + i * every,
                        duration_ns: length,
                        factor,
                    })
                    .collect();
                Ok(LoadShape::Spikes { base: rate, spikes })
            }
            _ if spec.ends_with(".txt") || spec.contains('/') => {
                Self::from_file(Path::new(spec), rate)
            }
            _ => Err(bad(
                "expected constant, diurnal, spikes or a path to a .txt rate file".into(),
            )),
        }
    }

    /// Reads a rate file and scales it to the target mean `rate`.
    pub fn from_file(path: &Path, rate: f64) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.into(),
            source,
        })?;
        let raw = parse_rates(&text).map_err(|message| LoadError::BadFile {
            path: path.into(),
            message,
        })?;
        Ok(LoadShape::PerSecond {
            rates: scale_to_mean(&raw, rate),
        })
    }
}

/// Parses a rate file: one non-negative number per line; blank lines and lines
/// starting with `#` are skipped. At least one rate, not all zero.
pub fn parse_rates(text: &str) -> Result<Vec<f64>, String> {
    let mut rates = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match l.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => rates.push(v),
            _ => return Err(format!("line {}: {l:?} is not a non-negative rate", i + 1)),
        }
    }
    if rates.is_empty() {
        return Err("no rates".into());
    }
    if rates.iter().all(|&r| r == 0.0) {
        return Err("all rates are zero".into());
    }
    Ok(rates)
}

/// Scales `rates` so that their mean is `mean`.
pub fn scale_to_mean(rates: &[f64], mean: f64) -> Vec<f64> {
    let m = rates.iter().sum::<f64>() / rates.len() as f64;
    rates.iter().map(|r| r * mean / m).collect()
}

/// Draws Poisson arrival times from a shape by thinning, with an extra
/// time-dependent multiplier (load-spike injections on the front end).
#[derive(Debug, Clone)]
pub struct Arrivals {
    shape: LoadShape,
    envelope_per_ns: f64,
}

impl Arrivals {
    /// Arrivals for `shape`, whose multiplier never exceeds `max_multiplier`.
    pub fn new(shape: LoadShape, max_multiplier: f64) -> Self {
        let envelope_per_ns = shape.max_rate() * max_multiplier.max(1.0) / NS;
        Self {
            shape,
            envelope_per_ns,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &LoadShape {
        &self.shape
    }

    /// The next arrival after `t_ns` (relative to the start), or `None` before
    /// `limit_ns` when the rate is zero throughout. `mult(t)` must stay within the
    /// `max_multiplier` given to [`Arrivals::new`].
    pub fn next(
        &self,
        mut t_ns: u64,
        limit_ns: u64,
        rng: &mut crate::rng::SimRng,
        mult: impl Fn(u64) -> f64,
    ) -> Option<u64> {
        if self.envelope_per_ns <= 0.0 {
            return None;
        }
        loop {
            let gap = rng.exp(1.0 / self.envelope_per_ns);
            t_ns = t_ns.saturating_add(gap.max(1.0) as u64);
            if t_ns >= limit_ns {
                return None;
            }
            let accept = self.shape.rate_at(t_ns) * mult(t_ns) / NS / self.envelope_per_ns;
            if rng.chance(accept) {
                return Some(t_ns);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rng::SimRng;

    #[test]
    fn rate_file_golden() {
        let r = parse_rates("# header\n10\n\n20.5\n 30 \n").unwrap();
        assert_eq!(r, vec![10.0, 20.5, 30.0]);
        assert_eq!(
            parse_rates("10\nx\n").unwrap_err(),
            "line 2: \"x\" is not a non-negative rate"
        );
        assert_eq!(
            parse_rates("10\n-1\n").unwrap_err(),
            "line 2: \"-1\" is not a non-negative rate"
        );
        assert!(parse_rates("\n#\n").is_err());
        assert!(parse_rates("0\n0").is_err());
    }

    #[test]
    fn scaling_hits_the_target_mean() {
        let s = scale_to_mean(&[1.0, 2.0, 3.0], 500.0);
        assert!((s.iter().sum::<f64>() / 3.0 - 500.0).abs() < 1e-9);
        assert!((s[2] / s[0] - 3.0).abs() < 1e-12);
    }

    #[test]
    fn specs_parse() {
        assert_eq!(
            LoadShape::parse("constant", 5.0).unwrap(),
            LoadShape::Constant { rate: 5.0 }
        );
        let d = LoadShape::parse("diurnal:period=1h,amplitude=0.3", 100.0).unwrap();
        assert_eq!(
            d,
            LoadShape::Diurnal {
                mean: 100.0,
                amplitude: 0.3,
                period_ns: 3_600_000_000_000,
                phase: 0.0
            }
        );
        assert!((d.max_rate() - 130.0).abs() < 1e-9);
        assert!((d.mean_rate(3_600_000_000_000) - 100.0).abs() < 0.1);
        let s = LoadShape::parse("spikes:every=1m,length=10s,factor=4,first=30s", 10.0).unwrap();
        assert_eq!(s.rate_at(29_000_000_000), 10.0);
        assert_eq!(s.rate_at(31_000_000_000), 40.0);
        assert_eq!(s.rate_at(41_000_000_000), 10.0);
        assert_eq!(s.rate_at(95_000_000_000), 40.0);
        for (spec, needle) in [
            ("diurnal:amplitude=2", "amplitude"),
            ("diurnal:ampl=0.2", "unknown key \"ampl\""),
            ("spikes:every=soon", "every=soon"),
            ("sawtooth", "expected constant"),
            ("diurnal:period", "key=value"),
        ] {
            let e = LoadShape::parse(spec, 1.0).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
        let e = LoadShape::parse("/nonexistent/x.txt", 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/x.txt"), "{e}");
    }

    #[test]
    fn thinning_gives_the_mean_rate() {
        let shape = LoadShape::parse("diurnal:period=10s,amplitude=0.8", 1000.0).unwrap();
        let a = Arrivals::new(shape, 1.0);
        let mut rng = SimRng::new(1, 0);
        let (mut t, mut n) = (0, 0u64);
        let limit = 100_000_000_000; // 100 s
        while let Some(x) = a.next(t, limit, &mut rng, |_| 1.0) {
            t = x;
            n += 1;
        }
        let rate = n as f64 / 100.0;
        assert!((rate - 1000.0).abs() < 20.0, "{rate}");
    }

    #[test]
    fn shared_load_shapes_scale() {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/load-shapes/diurnal.txt");
        if !p.exists() {
            println!("SKIPPED: {} not present", p.display());
            return;
        }
        let s = LoadShape::from_file(&p, 500.0).unwrap();
        let LoadShape::PerSecond { rates } = &s else {
            panic!("{s:?}")
        };
        assert_eq!(rates.len(), 3600);
        assert!((s.mean_rate(3_600_000_000_000) - 500.0).abs() < 1.0);
    }

    proptest::proptest! {
        #[test]
        fn scaling_keeps_shape_and_hits_mean(
            rates in proptest::collection::vec(0.0f64..1e4, 1..50), target in 1.0f64..1e5,
        ) {
            proptest::prop_assume!(rates.iter().any(|&r| r > 1e-3));
            let s = scale_to_mean(&rates, target);
            let m = s.iter().sum::<f64>() / s.len() as f64;
            proptest::prop_assert!((m - target).abs() <= 1e-9 * target);
            for (a, b) in rates.iter().zip(&s) {
                proptest::prop_assert!(*b >= 0.0);
                proptest::prop_assert!((b * rates.iter().sum::<f64>() / s.iter().sum::<f64>() - a).abs() <= 1e-6 * (1.0 + a));
            }
        }

        #[test]
        fn diurnal_stays_within_its_envelope(mean in 0.0f64..1e4, amp in 0.0f64..=1.0, t in 0u64..u64::MAX / 4) {
            let d = LoadShape::Diurnal { mean, amplitude: amp, period_ns: 3_600_000_000_000, phase: 0.3 };
            let r = d.rate_at(t);
            proptest::prop_assert!(r >= 0.0 && r <= d.max_rate() + 1e-9);
        }
    }
}
