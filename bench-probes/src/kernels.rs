//! Hot loops in inline assembly on x86-64, so probes and victims run at the
//! same speed whatever the build profile (a debug build of the Rust loops is
//! 10–20× slower, which would turn a bandwidth probe into a compute one).
//! Other architectures use the equivalent Rust loops.

/// `a[i] = b[i] + s * c[i]` for all i. Panics if lengths differ.
pub(crate) fn triad(a: &mut [f64], b: &[f64], c: &[f64], s: f64) {
    assert!(
        a.len() == b.len() && b.len() == c.len(),
        "triad slices differ in length"
    );
    let n = a.len();
    let head = n & !3;
    #[cfg(target_arch = "x86_64")]
    if head > 0 {
        // SAFETY: a, b, c hold at least `head` f64s (checked above); the loop
        // reads b and c and writes a with unaligned SSE2 moves, 4 elements per
        // iteration, exactly head/4 iterations.
        unsafe {
            std::arch::asm!(
                "movq xmm0, {s}",
                "unpcklpd xmm0, xmm0",
                "2:",
                "movupd xmm1, [{c}]",
                "movupd xmm2, [{c} + 16]",
                "mulpd xmm1, xmm0",
                "mulpd xmm2, xmm0",
                "movupd xmm3, [{b}]",
                "movupd xmm4, [{b} + 16]",
                "addpd xmm1, xmm3",
                "addpd xmm2, xmm4",
                "movupd [{a}], xmm1",
                "movupd [{a} + 16], xmm2",
                "add {a}, 32",
                "add {b}, 32",
                "add {c}, 32",
                "sub {n}, 4",
                "jnz 2b",
                s = in(reg) s.to_bits(),
                a = inout(reg) a.as_mut_ptr() => _,
                b = inout(reg) b.as_ptr() => _,
                c = inout(reg) c.as_ptr() => _,
                n = inout(reg) head => _,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _, out("xmm4") _,
                options(nostack),
            );
        }
    }
    #[cfg(target_arch = "x86_64")]
    let start = head;
    #[cfg(not(target_arch = "x86_64"))]
    let start = 0;
    for i in start..n {
        a[i] = b[i] + s * c[i];
    }
}

/// Wrapping sum of all words (a streaming read).
pub(crate) fn sum(words: &[u64]) -> u64 {
    let n = words.len();
    let head = n & !7;
    let mut total = 0u64;
    #[cfg(target_arch = "x86_64")]
    if head > 0 {
        let mut out = [0u64; 2];
        // SAFETY: reads exactly `head` u64s from `words` (8 per iteration,
        // head/8 iterations) with unaligned SSE2 loads; writes 16 bytes to `out`.
        unsafe {
            std::arch::asm!(
                "pxor xmm0, xmm0",
                "pxor xmm1, xmm1",
                "pxor xmm2, xmm2",
                "pxor xmm3, xmm3",
                "2:",
                "movdqu xmm4, [{p}]",
                "movdqu xmm5, [{p} + 16]",
                "movdqu xmm6, [{p} + 32]",
                "movdqu xmm7, [{p} + 48]",
                "paddq xmm0, xmm4",
                "paddq xmm1, xmm5",
                "paddq xmm2, xmm6",
                "paddq xmm3, xmm7",
                "add {p}, 64",
                "sub {n}, 8",
                "jnz 2b",
                "paddq xmm0, xmm1",
                "paddq xmm2, xmm3",
                "paddq xmm0, xmm2",
                "movdqu [{o}], xmm0",
                p = inout(reg) words.as_ptr() => _,
                n = inout(reg) head => _,
                o = in(reg) out.as_mut_ptr(),
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                options(nostack),
            );
        }
        total = out[0].wrapping_add(out[1]);
    }
    #[cfg(target_arch = "x86_64")]
    let start = head;
    #[cfg(not(target_arch = "x86_64"))]
    let start = 0;
    for w in &words[start..] {
        total = total.wrapping_add(*w);
    }
    total
}

/// Follow `steps` links from `p` in `words` (each word holds the index of
/// the next word) and return where it ends. Every index must be in bounds.
pub(crate) fn chase(words: &[u64], mut p: usize, steps: u64) -> usize {
    #[cfg(target_arch = "x86_64")]
    if steps > 0 {
        debug_assert!(p < words.len());
        // SAFETY: the caller built `words` so that every reachable entry holds
        // an index < words.len() (checked in tests); the loop only loads
        // words[p] for such p, `steps` times.
        unsafe {
            std::arch::asm!(
                "2:",
                "mov {p}, [{base} + {p} * 8]",
                "dec {n}",
                "jnz 2b",
                base = in(reg) words.as_ptr(),
                p = inout(reg) p,
                n = inout(reg) steps => _,
                options(nostack, readonly),
            );
        }
        return p;
    }
    for _ in 0..steps {
        p = words[p] as usize;
    }
    p
}

/// `iters` rounds of four independent multiply/rotate/xor chains on
/// `state`; integer ALU work whose speed does not depend on the profile.
pub(crate) fn int_work(state: &mut [u64; 4], iters: u64) {
    #[cfg(target_arch = "x86_64")]
    if iters > 0 {
        let k: u64 = 0x9E37_79B9_7F4A_7C15;
        // SAFETY: register-only arithmetic on the four state words, `iters`
        // iterations; no memory is touched.
        unsafe {
            std::arch::asm!(
                "2:",
                "imul {a}, {k}",
                "imul {b}, {k}",
                "imul {c}, {k}",
                "imul {d}, {k}",
                "rol {a}, 17",
                "rol {b}, 17",
                "rol {c}, 17",
                "rol {d}, 17",
                "xor {a}, {d}",
                "xor {b}, {a}",
                "xor {c}, {b}",
                "xor {d}, {c}",
                "dec {n}",
                "jnz 2b",
                a = inout(reg) state[0],
                b = inout(reg) state[1],
                c = inout(reg) state[2],
                d = inout(reg) state[3],
                k = in(reg) k,
                n = inout(reg) iters => _,
                options(nostack, nomem, pure),
            );
        }
        return;
    }
    for _ in 0..iters {
        for x in state.iter_mut() {
            *x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
        }
        state[0] ^= state[3];
        state[1] ^= state[0];
        state[2] ^= state[1];
        state[3] ^= state[2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triad_matches_the_formula_with_odd_tails() {
        for n in [0usize, 1, 3, 4, 7, 8, 33] {
            let b: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let c: Vec<f64> = (0..n).map(|i| (i * 2) as f64).collect();
            let mut a = vec![0.0; n];
            triad(&mut a, &b, &c, 3.0);
            for i in 0..n {
                assert_eq!(a[i], b[i] + 3.0 * c[i], "n={n} i={i}");
            }
        }
    }

    #[test]
    fn sum_matches_iterator() {
        for n in [0usize, 1, 7, 8, 9, 64, 1001] {
            let w: Vec<u64> = (0..n as u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .collect();
            let want = w.iter().fold(0u64, |a, b| a.wrapping_add(*b));
            assert_eq!(sum(&w), want, "n={n}");
        }
    }

    #[test]
    fn int_work_changes_state() {
        let mut s = [1u64, 2, 3, 4];
        int_work(&mut s, 0);
        assert_eq!(s, [1, 2, 3, 4]);
        int_work(&mut s, 100);
        assert_ne!(s, [1, 2, 3, 4]);
    }

    #[test]
    fn chase_follows_links() {
        let w = vec![2u64, 0, 3, 1];
        // 0 -> 2 -> 3 -> 1 -> 0
        assert_eq!(chase(&w, 0, 1), 2);
        assert_eq!(chase(&w, 0, 3), 1);
        assert_eq!(chase(&w, 0, 4), 0);
        assert_eq!(chase(&w, 3, 0), 3);
    }
}
