//! Cache probes: a random pointer chase over a footprint that is a fraction
//! of a cache (`l1d`, `l2`, `llc`), a chain of jumps through generated code
//! (`l1i`), and the LLC calibration that finds the size a chase still hits.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

#[cfg(not(target_arch = "x86_64"))]
use super::ProbeKind;
use super::{ProbeError, ProbeReport, duty_loop, report_from};
use crate::mem::{Mapping, permutation};

const LINE: usize = 64;
const WORDS_PER_LINE: usize = LINE / 8;

/// A pointer chase over up to `max_bytes`, one line per node. For a
/// footprint of `k` lines the chain is a random single cycle (Sattolo) over
/// the first `k` lines of the buffer, so the footprint is contiguous.
pub(crate) struct Chase {
    map: Mapping,
    lines: usize,
    built: usize,
    chains: usize,
}

impl Chase {
    /// Map and fault `max_bytes` for `chains` independent walkers.
    pub(crate) fn new(max_bytes: u64, chains: usize) -> Result<Self, ProbeError> {
        let lines = (max_bytes as usize / LINE).max(16);
        let map = Mapping::anon(lines * LINE, true, true).map_err(|e| ProbeError::Sys {
            what: format!("map {} bytes for a pointer chase", lines * LINE),
            source: e,
        })?;
        let mut c = Chase {
            map,
            lines,
            built: 0,
            chains: chains.max(1),
        };
        c.build(lines);
        Ok(c)
    }

    /// Link the first `k` lines into one random cycle.
    fn build(&mut self, k: usize) {
        if self.built == k {
            return;
        }
        let mut rng = crate::mem::XorShift(0x5eed ^ k as u64);
        let mut order: Vec<usize> = (0..k).collect();
        // Sattolo: a uniformly random single cycle.
        for i in (1..k).rev() {
            let j = rng.below(i);
            order.swap(i, j);
        }
        let w = self.map.words_mut();
        for i in 0..k {
            w[i * WORDS_PER_LINE] = (order[i] * WORDS_PER_LINE) as u64;
        }
        self.built = k;
    }

    /// Chase over the first `lines` lines for `duration`; returns (steps, wall).
    fn walk(&mut self, lines: usize, stop: &AtomicBool, duration: Duration) -> (u64, Duration) {
        let lines = lines.clamp(self.chains.max(2), self.lines);
        self.build(lines);
        super::mark_window_started();
        let chains = self.chains.min(8);
        let w = self.map.words_mut();
        // walkers start spread along the cycle
        let mut starts = [0usize; 8];
        let mut p = 0usize;
        for (j, s) in starts.iter_mut().enumerate().take(chains) {
            *s = p;
            let hop = lines / chains;
            for _ in 0..if j + 1 < chains { hop } else { 0 } {
                p = w[p] as usize;
            }
        }
        let t0 = Instant::now();
        let stats = duty_loop(100, duration, super::DEFAULT_PERIOD, stop, |_| {
            for pj in starts.iter_mut().take(chains) {
                *pj = crate::kernels::chase(w, *pj, 256);
            }
            black_box(&starts);
            256 * chains as u64
        });
        (stats.units, t0.elapsed())
    }

    pub(crate) fn run(
        &mut self,
        intensity: u8,
        duration: Duration,
        stop: &AtomicBool,
    ) -> ProbeReport {
        if intensity == 0 {
            let s = duty_loop(0, duration, super::DEFAULT_PERIOD, stop, |_| 0);
            return report_from(s, "line-access", LINE as f64, 0);
        }
        let t0 = Instant::now();
        let lines = (self.lines * usize::from(intensity.min(100))).div_ceil(100);
        let lines = lines.clamp(self.chains.max(2), self.lines);
        self.build(lines);
        let setup = t0.elapsed();
        let (steps, wall) = self.walk(lines, stop, duration);
        let mut r = report_from(
            super::DutyStats {
                units: steps,
                busy: wall,
                wall,
            },
            "line-access",
            LINE as f64,
            (lines * LINE) as u64,
        );
        r.setup_ms = setup.as_secs_f64() * 1e3;
        r
    }

    /// Mean latency of one dependent access over `lines` nodes, in ns.
    fn latency_ns(&mut self, lines: usize, duration: Duration) -> f64 {
        let stop = AtomicBool::new(false);
        let chains = self.chains;
        self.chains = 1;
        let _ = self.walk(lines, &stop, Duration::from_millis(2));
        let (steps, wall) = self.walk(lines, &stop, duration);
        self.chains = chains;
        wall.as_nanos() as f64 / steps.max(1) as f64
    }
}

/// The result of [`calibrate_llc`].
#[derive(Debug, Clone, Serialize)]
pub struct LlcCalibration {
    /// LLC size sysfs reports, bytes.
    pub sysfs_bytes: u64,
    /// Largest footprint a dependent chase still finds in the cache, bytes.
    pub effective_bytes: u64,
    /// Latency of a hit (footprint twice the L2), ns.
    pub hit_ns: f64,
    /// Latency at four times the sysfs LLC, ns.
    pub miss_ns: f64,
    /// Every point measured: (footprint bytes, ns per access).
    pub points: Vec<(u64, f64)>,
}

/// Measure the LLC size a pointer chase on the calling thread actually gets:
/// latency is measured from twice `l2` to four times `sysfs_llc` in power-of-two
/// steps, and the effective size is where it crosses the geometric mean of the
/// hit and miss latencies (interpolated in log size). Virtual machines often
/// report the host's LLC while sharing it; this finds what is left. Takes
/// about `points × per_point`.
pub fn calibrate_llc(
    l2: u64,
    sysfs_llc: u64,
    per_point: Duration,
) -> Result<LlcCalibration, ProbeError> {
    let max = (sysfs_llc * 4).max(l2 * 8);
    let mut chase = Chase::new(max, 1)?;
    let mut points = Vec::new();
    let mut size = (l2 * 2).max(64 << 10);
    while size <= max {
        let ns = chase.latency_ns(size as usize / LINE, per_point);
        points.push((size, ns));
        size *= 2;
    }
    let hit = points.first().map_or(1.0, |p| p.1);
    let miss = points.last().map_or(1.0, |p| p.1);
    let threshold = (hit * miss).sqrt();
    let mut effective = points.first().map_or(sysfs_llc, |p| p.0);
    for pair in points.windows(2) {
        let ((s0, l0), (s1, l1)) = (pair[0], pair[1]);
        if l0 < threshold && l1 >= threshold {
            let f = ((threshold - l0) / (l1 - l0)).clamp(0.0, 1.0);
            let ls = (s0 as f64).log2() + f * ((s1 as f64).log2() - (s0 as f64).log2());
            effective = ls.exp2() as u64;
            break;
        }
        if l1 < threshold {
            effective = s1;
        }
    }
    Ok(LlcCalibration {
        sysfs_bytes: sysfs_llc,
        effective_bytes: effective / LINE as u64 * LINE as u64,
        hit_ns: hit,
        miss_ns: miss,
        points,
    })
}

/// Generated code: one `jmp` per cache line, lines linked in random order,
/// so each call fetches `lines` distinct instruction lines.
pub(crate) struct CodeChain {
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    map: Mapping,
    perm: Vec<usize>,
}

impl CodeChain {
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn new(max_bytes: u64) -> Result<Self, ProbeError> {
        let lines = (max_bytes as usize / LINE).max(4);
        let perm = permutation(lines, 0xc0de);
        let mut map = Mapping::anon(lines * LINE, false, true).map_err(|e| ProbeError::Sys {
            what: format!("map {} bytes of code for l1i", lines * LINE),
            source: e,
        })?;
        let base = map.as_ptr() as usize;
        let b = map.bytes_mut();
        b.fill(0xCC); // int3 everywhere else
        for i in 0..lines {
            let at = perm[i] * LINE;
            if i + 1 == lines {
                b[at] = 0xC3; // ret
            } else {
                let target = base + perm[i + 1] * LINE;
                let rel = target as i64 - (base + at + 5) as i64;
                let rel = i32::try_from(rel)
                    .map_err(|_| ProbeError::Config("l1i code too large".into()))?;
                b[at] = 0xE9; // jmp rel32
                b[at + 1..at + 5].copy_from_slice(&rel.to_le_bytes());
            }
        }
        let c = CodeChain { map, perm };
        c.protect(libc::PROT_READ | libc::PROT_EXEC)?;
        Ok(c)
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) fn new(_max_bytes: u64) -> Result<Self, ProbeError> {
        Err(ProbeError::Unsupported {
            probe: ProbeKind::L1i,
            reason: "the code generator emits x86-64 only".into(),
        })
    }

    #[cfg(target_arch = "x86_64")]
    fn protect(&self, prot: libc::c_int) -> Result<(), ProbeError> {
        // SAFETY: changes protection of the whole mapping owned by self;
        // nothing executes or writes it concurrently (&self on one thread).
        let rc = unsafe { libc::mprotect(self.map.as_ptr().cast(), self.map.len(), prot) };
        if rc != 0 {
            return Err(ProbeError::Sys {
                what: format!("mprotect l1i code to {prot:#x}"),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    fn set_byte(&mut self, at: usize, v: u8) -> Result<(), ProbeError> {
        self.protect(libc::PROT_READ | libc::PROT_WRITE)?;
        self.map.bytes_mut()[at] = v;
        self.protect(libc::PROT_READ | libc::PROT_EXEC)
    }

    #[cfg(target_arch = "x86_64")]
    pub(crate) fn run(
        &mut self,
        intensity: u8,
        duration: Duration,
        stop: &AtomicBool,
    ) -> Result<ProbeReport, ProbeError> {
        let n = self.perm.len();
        let lines = (n * usize::from(intensity.min(100))).div_ceil(100);
        if lines == 0 {
            let s = duty_loop(0, duration, super::DEFAULT_PERIOD, stop, |_| 0);
            return Ok(report_from(s, "line-fetch", LINE as f64, 0));
        }
        let last = self.perm[lines - 1] * LINE;
        let patched = lines < n;
        if patched {
            self.set_byte(last, 0xC3)?;
        }
        // SAFETY: perm[0]'s line starts a chain of jmps that ends in the ret
        // just written (or the final ret); the code only jumps inside the
        // mapping and touches no registers the C ABI requires preserved.
        let f: extern "C" fn() = unsafe {
            std::mem::transmute::<*mut u8, extern "C" fn()>(
                self.map.as_ptr().add(self.perm[0] * LINE),
            )
        };
        let per = lines as u64;
        let reps = (4096 / per).max(1);
        let stats = duty_loop(100, duration, super::DEFAULT_PERIOD, stop, |_| {
            for _ in 0..reps {
                f();
            }
            reps * per
        });
        if patched {
            self.set_byte(last, 0xE9)?;
        }
        Ok(report_from(
            stats,
            "line-fetch",
            LINE as f64,
            (lines * LINE) as u64,
        ))
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) fn run(
        &mut self,
        _i: u8,
        _d: Duration,
        _s: &AtomicBool,
    ) -> Result<ProbeReport, ProbeError> {
        let _ = &self.perm;
        Err(ProbeError::Unsupported {
            probe: ProbeKind::L1i,
            reason: "the code generator emits x86-64 only".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chase_footprint_follows_intensity() {
        let mut c = Chase::new(64 << 10, 4).unwrap();
        let stop = AtomicBool::new(false);
        let r = c.run(50, Duration::from_millis(3), &stop);
        assert_eq!(r.footprint_bytes, 32 << 10);
        assert!(r.ops > 1000);
        let r = c.run(100, Duration::from_millis(3), &stop);
        assert_eq!(r.footprint_bytes, 64 << 10);
        let r = c.run(0, Duration::from_millis(1), &stop);
        assert_eq!((r.ops, r.footprint_bytes), (0, 0));
    }

    #[test]
    fn chase_visits_every_line_once_per_cycle() {
        let mut c = Chase::new(16 << 10, 1).unwrap();
        for k in [256usize, 100, 16] {
            c.build(k);
            let w = c.map.words_mut();
            let mut p = 0usize;
            let mut seen = std::collections::HashSet::new();
            for _ in 0..k {
                assert!(p < k * WORDS_PER_LINE, "chain leaves the footprint");
                assert!(seen.insert(p));
                p = w[p] as usize;
            }
            assert_eq!(p, 0, "cycle of length {k}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn code_chain_runs_at_every_footprint() {
        let mut c = CodeChain::new(32 << 10).unwrap();
        let stop = AtomicBool::new(false);
        for i in [1u8, 30, 100] {
            let r = c.run(i, Duration::from_millis(2), &stop).unwrap();
            assert!(r.ops > 0, "{i}: {r:?}");
            assert_eq!(r.footprint_bytes, (512 * u64::from(i)).div_ceil(100) * 64);
        }
    }
}
