//! The `cpu` (integer) and `fpu` (floating-point/SIMD) probes: duty-cycled
//! arithmetic with a register-only footprint.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::{ProbeReport, duty_loop, report_from};

const CPU_ITERS: u64 = 512;
const CPU_CHAINS: u64 = 4;

/// One work unit: `CPU_ITERS` steps of four independent multiply/xorshift chains.
fn int_chunk(seed: &mut [u64; 4]) -> u64 {
    crate::kernels::int_work(seed, CPU_ITERS);
    black_box(&seed);
    CPU_ITERS * CPU_CHAINS
}

pub(super) fn run_cpu(
    intensity: u8,
    duration: Duration,
    period: Duration,
    stop: &AtomicBool,
) -> ProbeReport {
    let mut seed = [1u64, 2, 3, 4];
    let stats = duty_loop(intensity, duration, period, stop, |_| int_chunk(&mut seed));
    report_from(stats, "int-op", 0.0, 0)
}

const FPU_ITERS: u64 = 256;

fn fpu_chunk_scalar(acc: &mut [f64; 16]) -> u64 {
    let mut a = *acc;
    for _ in 0..FPU_ITERS {
        for x in a.iter_mut() {
            *x = x.mul_add(0.999_999, 1e-3);
        }
    }
    *acc = black_box(a);
    // one fused multiply-add = 2 flops
    FPU_ITERS * 16 * 2
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fpu_chunk_avx2(acc: &mut [f64; 32]) -> u64 {
    use std::arch::x86_64::*;
    // SAFETY: loads/stores go through a [f64; 32] borrowed mutably, 8 vectors
    // of 4 lanes, all in bounds; unaligned intrinsics are used.
    unsafe {
        let p = acc.as_mut_ptr();
        let mut v = [_mm256_setzero_pd(); 8];
        for (i, vi) in v.iter_mut().enumerate() {
            *vi = _mm256_loadu_pd(p.add(i * 4));
        }
        let m = _mm256_set1_pd(0.999_999);
        let c = _mm256_set1_pd(1e-3);
        for _ in 0..FPU_ITERS {
            for vi in v.iter_mut() {
                *vi = _mm256_fmadd_pd(*vi, m, c);
            }
        }
        for (i, vi) in v.iter().enumerate() {
            _mm256_storeu_pd(p.add(i * 4), *vi);
        }
    }
    FPU_ITERS * 32 * 2
}

/// True when the FMA/AVX2 kernel is used.
pub(crate) fn fpu_uses_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

pub(super) fn run_fpu(
    intensity: u8,
    duration: Duration,
    period: Duration,
    stop: &AtomicBool,
) -> ProbeReport {
    let avx = fpu_uses_avx2();
    let mut acc16 = [1.0f64; 16];
    let mut acc32 = [1.0f64; 32];
    let stats = duty_loop(intensity, duration, period, stop, |_| {
        #[cfg(target_arch = "x86_64")]
        if avx {
            // SAFETY: avx2 and fma were detected at run time just above.
            return unsafe { fpu_chunk_avx2(&mut acc32) };
        }
        let _ = &mut acc32;
        fpu_chunk_scalar(&mut acc16)
    });
    let mut r = report_from(stats, "flop", 0.0, 0);
    r.note = Some(
        if avx {
            "avx2+fma kernel"
        } else {
            "scalar fma kernel"
        }
        .into(),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_do_work() {
        let mut s = [1, 2, 3, 4];
        assert_eq!(int_chunk(&mut s), CPU_ITERS * 4);
        assert_ne!(s, [1, 2, 3, 4]);
        let mut a = [1.0; 16];
        assert!(fpu_chunk_scalar(&mut a) > 0);
        assert!(a[0] != 1.0);
    }
}
