//! Latency quantiles per tick: exact for the first samples, HdrHistogram beyond.
//!
//! At 100 ms ticks most services complete a handful of requests per tick, so a
//! sketch keeps the first [`EXACT_LIMIT`] samples and computes exact nearest-rank
//! quantiles from them; past that it moves them into an HdrHistogram (2 significant
//! digits, 1 µs .. 1 h). Memory per sketch is bounded either way.

use hdrhistogram::Histogram;

/// Samples kept exactly before switching to the histogram.
pub const EXACT_LIMIT: usize = 128;

/// Quantile sketch of latencies in microseconds.
#[derive(Debug, Default, Clone)]
pub struct LatencySketch {
    exact: Vec<u64>,
    hist: Option<Histogram<u32>>,
}

const MAX_US: u64 = 3_600_000_000;

/// An empty histogram with the sketches' bounds (1 µs .. 1 h, 2 significant
/// digits), for merging sketches over several ticks.
pub fn window_histogram() -> Histogram<u32> {
    // The bounds are constants that new_with_bounds accepts.
    Histogram::<u32>::new_with_bounds(1, MAX_US, 2).expect("valid histogram bounds")
}

impl LatencySketch {
    /// Records one latency in µs (clamped to 1 µs .. 1 h).
    pub fn record(&mut self, us: u64) {
        let us = us.clamp(1, MAX_US);
        if let Some(h) = &mut self.hist {
            h.saturating_record(us);
            return;
        }
        self.exact.push(us);
        if self.exact.len() > EXACT_LIMIT {
            let mut h = window_histogram();
            for &v in &self.exact {
                h.saturating_record(v);
            }
            self.exact.clear();
            self.hist = Some(h);
        }
    }

    /// Number of samples.
    pub fn len(&self) -> u64 {
        match &self.hist {
            Some(h) => h.len(),
            None => self.exact.len() as u64,
        }
    }

    /// Whether no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The given quantiles (each in 0..=1), in ms; `NaN` when empty.
    pub fn quantiles_ms<const N: usize>(&mut self, qs: [f64; N]) -> [f32; N] {
        let mut out = [f32::NAN; N];
        if let Some(h) = &self.hist {
            for (o, q) in out.iter_mut().zip(qs) {
                *o = h.value_at_quantile(q) as f32 / 1000.0;
            }
        } else if !self.exact.is_empty() {
            self.exact.sort_unstable();
            let n = self.exact.len();
            for (o, q) in out.iter_mut().zip(qs) {
                // Nearest rank: the smallest value with at least q·n samples at or below it.
                let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
                *o = self.exact[rank - 1] as f32 / 1000.0;
            }
        }
        out
    }

    /// Adds every sample to `h` (a histogram made by [`window_histogram`]).
    pub fn add_to(&self, h: &mut Histogram<u32>) {
        match &self.hist {
            // Same bounds and precision: adding cannot fail.
            Some(mine) => {
                let _ = h.add(mine);
            }
            None => {
                for &v in &self.exact {
                    h.saturating_record(v);
                }
            }
        }
    }

    /// Empties the sketch, keeping its allocations.
    pub fn clear(&mut self) {
        self.exact.clear();
        if let Some(h) = &mut self.hist {
            h.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_quantiles() {
        let mut s = LatencySketch::default();
        for v in 1..=100u64 {
            s.record(v * 1000);
        }
        let [p50, p99, p100] = s.quantiles_ms([0.5, 0.99, 1.0]);
        assert_eq!((p50, p99, p100), (50.0, 99.0, 100.0));
    }

    #[test]
    fn empty_is_nan() {
        let mut s = LatencySketch::default();
        assert!(s.quantiles_ms([0.5])[0].is_nan());
    }

    proptest! {
        #[test]
        fn histogram_within_one_percent_of_exact(mut v in proptest::collection::vec(1u64..10_000_000, 200..2000)) {
            let mut s = LatencySketch::default();
            for &x in &v { s.record(x); }
            v.sort_unstable();
            let exact = v[((0.99 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1000.0;
            let got = s.quantiles_ms([0.99])[0] as f64;
            prop_assert!((got - exact).abs() <= exact * 0.011 + 0.001, "got {got} exact {exact}");
        }
    }
}
