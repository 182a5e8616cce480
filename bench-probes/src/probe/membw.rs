//! The `membw` probe and the STREAM triad it is measured against: `a[i] =
//! b[i] + s * c[i]` over three arrays of at least four times the LLC, counted
//! as 24 bytes per element as STREAM counts it.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{PinGuard, ProbeError, ProbeReport, duty_loop, report_from};
use crate::mem::Mapping;

/// Bytes per triad element, STREAM's convention (two reads, one write).
pub const TRIAD_BYTES_PER_ELEMENT: f64 = 24.0;
const CHUNK: usize = 8192;

/// Size of each triad array for an LLC of `llc` bytes: 4 × LLC, within 16–256 MiB.
pub(crate) fn array_bytes(llc: u64) -> u64 {
    (llc * 4).clamp(16 << 20, 256 << 20)
}

/// Three pre-faulted arrays.
pub(crate) struct Triad {
    a: Mapping,
    b: Mapping,
    c: Mapping,
    n: usize,
    pos: usize,
}

fn triad_kernel(a: &mut [f64], b: &[f64], c: &[f64], s: f64) {
    crate::kernels::triad(a, b, c, s);
}

impl Triad {
    pub(crate) fn new(bytes: u64) -> Result<Self, ProbeError> {
        let map = |what| {
            Mapping::anon(bytes as usize, true, false).map_err(|e| ProbeError::Sys {
                what: format!("map {bytes} bytes for triad array {what}"),
                source: e,
            })
        };
        let (mut a, mut b, mut c) = (map("a")?, map("b")?, map("c")?);
        // First touch by the (pinned) preparing thread: pages are local to it.
        a.f64s_mut().fill(1.0);
        b.f64s_mut().fill(2.0);
        c.f64s_mut().fill(0.5);
        let n = a.len() / 8;
        Ok(Triad { a, b, c, n, pos: 0 })
    }

    /// One full pass over the arrays; returns its time.
    fn pass(&mut self) -> Duration {
        let b = self.b.f64s_mut().as_ptr();
        let c = self.c.f64s_mut().as_ptr();
        let n = self.n;
        let t0 = Instant::now();
        // SAFETY: b and c are distinct live mappings of n f64s each, owned by
        // self and not aliased by a, which is borrowed mutably below.
        let (bs, cs) = unsafe {
            (
                std::slice::from_raw_parts(b, n),
                std::slice::from_raw_parts(c, n),
            )
        };
        triad_kernel(&mut self.a.f64s_mut()[..n], bs, cs, 3.0);
        t0.elapsed()
    }

    pub(crate) fn run(
        &mut self,
        intensity: u8,
        duration: Duration,
        period: Duration,
        stop: &AtomicBool,
    ) -> ProbeReport {
        let n = self.n;
        let b = self.b.f64s_mut().as_ptr();
        let c = self.c.f64s_mut().as_ptr();
        // SAFETY: as in pass().
        let (bs, cs) = unsafe {
            (
                std::slice::from_raw_parts(b, n),
                std::slice::from_raw_parts(c, n),
            )
        };
        let a = &mut self.a.f64s_mut()[..n];
        let mut pos = self.pos;
        let stats = duty_loop(intensity, duration, period, stop, |_| {
            let end = (pos + CHUNK).min(n);
            triad_kernel(&mut a[pos..end], &bs[pos..end], &cs[pos..end], 3.0);
            let done = (end - pos) as u64;
            pos = if end == n { 0 } else { end };
            done
        });
        self.pos = pos;
        let mut r = report_from(
            stats,
            "triad-element",
            TRIAD_BYTES_PER_ELEMENT,
            (3 * n * 8) as u64,
        );
        r.note = Some(format!("3 arrays of {} MiB", (n * 8) >> 20));
        r
    }
}

/// STREAM triad figures.
#[derive(Debug, Clone, Serialize)]
pub struct TriadResult {
    /// CPUs that ran it.
    pub cpus: Vec<usize>,
    /// Bytes of each array per thread.
    pub array_bytes: u64,
    /// Best pass, bytes per second (STREAM reports the best).
    pub best_bytes_per_sec: f64,
    /// Median pass, bytes per second.
    pub median_bytes_per_sec: f64,
    /// Passes timed.
    pub passes: usize,
}

/// Run the STREAM triad on each CPU in `cpus` at once (one pinned thread
/// each, arrays of `array_bytes` first-touched by their thread), `passes`
/// timed passes after one warm-up pass.
pub fn stream_triad(
    cpus: &[usize],
    array_bytes: u64,
    passes: usize,
) -> Result<TriadResult, ProbeError> {
    if cpus.is_empty() || passes == 0 {
        return Err(ProbeError::Config(
            "stream triad needs at least one cpu and one pass".into(),
        ));
    }
    let barrier = std::sync::Barrier::new(cpus.len());
    let results: Vec<Result<Vec<Duration>, ProbeError>> = std::thread::scope(|s| {
        let handles: Vec<_> = cpus
            .iter()
            .map(|&cpu| {
                let barrier = &barrier;
                s.spawn(move || -> Result<Vec<Duration>, ProbeError> {
                    let _pin = PinGuard::pin(cpu)?;
                    let mut t = Triad::new(array_bytes)?;
                    t.pass();
                    let mut times = Vec::with_capacity(passes);
                    for _ in 0..passes {
                        barrier.wait();
                        times.push(t.pass());
                    }
                    Ok(times)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(ProbeError::Config("stream triad thread panicked".into()))
                })
            })
            .collect()
    });
    let mut per_pass = vec![Duration::ZERO; passes];
    for r in results {
        for (i, t) in r?.into_iter().enumerate() {
            per_pass[i] = per_pass[i].max(t);
        }
    }
    let n = (array_bytes / 8) as f64 * cpus.len() as f64;
    let mut rates: Vec<f64> = per_pass
        .iter()
        .map(|t| n * TRIAD_BYTES_PER_ELEMENT / t.as_secs_f64().max(1e-9))
        .collect();
    rates.sort_by(f64::total_cmp);
    Ok(TriadResult {
        cpus: cpus.to_vec(),
        array_bytes,
        best_bytes_per_sec: *rates.last().unwrap_or(&0.0),
        median_bytes_per_sec: rates[rates.len() / 2],
        passes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_size_is_four_llcs_within_bounds() {
        assert_eq!(array_bytes(32 << 20), 128 << 20);
        assert_eq!(array_bytes(1 << 20), 16 << 20);
        assert_eq!(array_bytes(1 << 30), 256 << 20);
    }

    #[test]
    fn kernel_computes_the_triad() {
        let mut a = vec![0.0; 5];
        triad_kernel(&mut a, &[1.0; 5], &[2.0; 5], 3.0);
        assert_eq!(a, vec![7.0; 5]);
    }

    #[test]
    fn stream_triad_measures_something() {
        let r = stream_triad(&[0], 16 << 20, 2).unwrap();
        assert!(r.best_bytes_per_sec > 1e8, "{r:?}");
        assert!(r.best_bytes_per_sec >= r.median_bytes_per_sec);
        assert!(stream_triad(&[], 1 << 20, 1).is_err());
    }
}
