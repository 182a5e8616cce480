//! Service-time distributions: exponential, lognormal, empirical and constant.
//!
//! In a topology file a distribution is an inline table tagged by `dist`:
//!
//! ```toml
//! time = { dist = "exponential", mean_us = 200 }
//! time = { dist = "lognormal", mean_us = 200, sigma = 0.6 }
//! time = { dist = "empirical", samples_us = [80, 120, 150, 400, 2000] }
//! time = { dist = "constant", us = 50 }
//! ```
//!
//! An empirical distribution samples the piecewise-linear inverse CDF through the
//! sorted samples, so it never returns a value outside `[min, max]` of the samples.

use crate::rng::SimRng;
use serde::{Deserialize, Serialize};

/// A service-time distribution as written in a topology file (microseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum DistSpec {
    /// Exponential (memoryless, coefficient of variation 1).
    Exponential {
        /// Mean, µs.
        mean_us: f64,
    },
    /// Lognormal with the given mean and shape `sigma` (the standard deviation of
    /// the underlying normal; 0.5 is a moderate tail, 1.0 a heavy one).
    Lognormal {
        /// Mean, µs.
        mean_us: f64,
        /// Shape parameter σ of the underlying normal.
        sigma: f64,
    },
    /// Measured samples, µs; sampled through the piecewise-linear inverse CDF.
    Empirical {
        /// At least one sample, µs.
        samples_us: Vec<f64>,
    },
    /// Always the same value.
    Constant {
        /// The value, µs.
        us: f64,
    },
}

/// A validated distribution, sampling nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// Exponential with mean `mean` ns.
    Exp {
        /// Mean, ns.
        mean: f64,
    },
    /// `exp(mu + sigma * N(0,1))` ns.
    LogNormal {
        /// Location of the underlying normal.
        mu: f64,
        /// Shape of the underlying normal.
        sigma: f64,
    },
    /// Sorted samples, ns.
    Empirical {
        /// Sorted ascending, non-empty.
        sorted: Vec<f64>,
    },
    /// A constant, ns.
    Constant {
        /// The value, ns.
        value: f64,
    },
}

impl DistSpec {
    /// Checks the parameters and converts to nanoseconds; the error says which
    /// parameter is wrong and its value.
    pub fn compile(&self) -> Result<Dist, String> {
        let pos = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(format!("{name} must be a positive number, got {v}"))
            }
        };
        Ok(match self {
            DistSpec::Exponential { mean_us } => Dist::Exp {
                mean: pos("mean_us", *mean_us)? * 1e3,
            },
            DistSpec::Lognormal { mean_us, sigma } => {
                let mean = pos("mean_us", *mean_us)? * 1e3;
                if !(sigma.is_finite() && *sigma >= 0.0 && *sigma <= 4.0) {
                    return Err(format!("sigma must be in [0, 4], got {sigma}"));
                }
                // E[X] = exp(mu + sigma^2 / 2)
                Dist::LogNormal {
                    mu: mean.ln() - sigma * sigma / 2.0,
                    sigma: *sigma,
                }
            }
            DistSpec::Empirical { samples_us } => {
                if samples_us.is_empty() {
                    return Err("samples_us must not be empty".into());
                }
                let mut sorted = Vec::with_capacity(samples_us.len());
                for &s in samples_us {
                    if !(s.is_finite() && s >= 0.0) {
                        return Err(format!("samples_us must be non-negative numbers, got {s}"));
                    }
                    sorted.push(s * 1e3);
                }
                sorted.sort_by(f64::total_cmp);
                Dist::Empirical { sorted }
            }
            DistSpec::Constant { us } => {
                if !(us.is_finite() && *us >= 0.0) {
                    return Err(format!("us must be a non-negative number, got {us}"));
                }
                Dist::Constant { value: us * 1e3 }
            }
        })
    }
}

impl Dist {
    /// The mean, ns.
    pub fn mean_ns(&self) -> f64 {
        match self {
            Dist::Exp { mean } => *mean,
            Dist::LogNormal { mu, sigma } => (mu + sigma * sigma / 2.0).exp(),
            Dist::Empirical { sorted } => {
                // Mean of the piecewise-linear inverse CDF: trapezoids between
                // consecutive samples.
                if sorted.len() == 1 {
                    return sorted[0];
                }
                let n = (sorted.len() - 1) as f64;
                sorted.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / n
            }
            Dist::Constant { value } => *value,
        }
    }

    /// One sample, ns (never negative).
    #[inline]
    pub fn sample(&self, rng: &mut SimRng) -> f64 {
        match self {
            Dist::Exp { mean } => rng.exp(*mean),
            Dist::LogNormal { mu, sigma } => (mu + sigma * rng.normal()).exp(),
            Dist::Empirical { sorted } => {
                if sorted.len() == 1 {
                    return sorted[0];
                }
                let x = rng.uniform() * (sorted.len() - 1) as f64;
                let i = x as usize;
                let f = x - i as f64;
                sorted[i] + (sorted[i + 1] - sorted[i]) * f
            }
            Dist::Constant { value } => *value,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample_mean(d: &Dist, n: usize) -> f64 {
        let mut r = SimRng::new(11, 0);
        (0..n).map(|_| d.sample(&mut r)).sum::<f64>() / n as f64
    }

    #[test]
    fn means_match_the_spec() {
        for spec in [
            DistSpec::Exponential { mean_us: 200.0 },
            DistSpec::Lognormal {
                mean_us: 200.0,
                sigma: 0.6,
            },
            DistSpec::Empirical {
                samples_us: vec![100.0, 150.0, 400.0, 90.0],
            },
            DistSpec::Constant { us: 200.0 },
        ] {
            let d = spec.compile().unwrap();
            let m = sample_mean(&d, 200_000);
            let want = d.mean_ns();
            assert!(
                (m - want).abs() / want < 0.02,
                "{spec:?}: sampled {m}, expected {want}"
            );
        }
        let d = DistSpec::Lognormal {
            mean_us: 200.0,
            sigma: 0.6,
        }
        .compile()
        .unwrap();
        assert!((d.mean_ns() - 200_000.0).abs() < 1e-6);
    }

    #[test]
    fn empirical_stays_in_range() {
        let d = DistSpec::Empirical {
            samples_us: vec![5.0, 1.0, 3.0],
        }
        .compile()
        .unwrap();
        let mut r = SimRng::new(1, 0);
        for _ in 0..10_000 {
            let x = d.sample(&mut r);
            assert!((1000.0..=5000.0).contains(&x), "{x}");
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let e = DistSpec::Exponential { mean_us: -1.0 }
            .compile()
            .unwrap_err();
        assert!(e.contains("mean_us") && e.contains("-1"), "{e}");
        let e = DistSpec::Empirical { samples_us: vec![] }
            .compile()
            .unwrap_err();
        assert!(e.contains("samples_us"), "{e}");
        let e = DistSpec::Lognormal {
            mean_us: 1.0,
            sigma: 9.0,
        }
        .compile()
        .unwrap_err();
        assert!(e.contains("sigma"), "{e}");
    }

    #[test]
    fn parses_from_toml() {
        #[derive(Deserialize)]
        struct W {
            time: DistSpec,
        }
        let w: W =
            toml::from_str("time = { dist = \"lognormal\", mean_us = 50, sigma = 0.5 }").unwrap();
        assert_eq!(
            w.time,
            DistSpec::Lognormal {
                mean_us: 50.0,
                sigma: 0.5
            }
        );
        assert!(toml::from_str::<W>("time = { dist = \"gamma\", mean_us = 5 }").is_err());
    }
}
