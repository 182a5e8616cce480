//! Anonymous memory mappings for probe buffers: page-aligned, optionally
//! backed by transparent huge pages, pre-faulted, unmapped on drop.

use std::ptr::NonNull;

/// An anonymous private mapping of `len` bytes.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned exclusively by this value; moving it between
// threads moves the only handle to it.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Map `len` bytes (rounded up to a page), ask for huge pages when `huge`,
    /// and fault every page in when `populate`.
    pub(crate) fn anon(len: usize, huge: bool, populate: bool) -> std::io::Result<Self> {
        let len = len.max(4096).next_multiple_of(4096);
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked against MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        if huge {
            // SAFETY: advice on the range just mapped; failure only means no THP.
            unsafe {
                libc::madvise(p, len, libc::MADV_HUGEPAGE);
            }
        }
        // Not inherited by forked children (the memcap probe's holder): a
        // fork would otherwise make every later write here a copy-on-write fault.
        // SAFETY: advice on the range just mapped; failure is harmless.
        unsafe {
            libc::madvise(p, len, libc::MADV_DONTFORK);
        }
        let Some(ptr) = NonNull::new(p.cast::<u8>()) else {
            return Err(std::io::Error::other("mmap returned null"));
        };
        let mut m = Mapping { ptr, len };
        if populate {
            m.touch_pages();
        }
        Ok(m)
    }

    /// Write one byte in every page, faulting them in.
    pub(crate) fn touch_pages(&mut self) {
        let s = self.bytes_mut();
        let mut i = 0;
        while i < s.len() {
            s[i] = 1;
            i += 4096;
        }
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The mapping as bytes.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr..ptr+len is a live read-write mapping owned by self,
        // borrowed mutably through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The mapping as u64 words.
    pub(crate) fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: the mapping is page-aligned (so u64-aligned) and len is a
        // multiple of 4096, so len/8 words are in bounds; zero-filled or
        // written pages are valid u64 values.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u64>(), self.len / 8) }
    }

    /// The mapping as f64 values.
    pub(crate) fn f64s_mut(&mut self) -> &mut [f64] {
        // SAFETY: as for words_mut; every bit pattern is a valid f64.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<f64>(), self.len / 8) }
    }

    /// Base address.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the range mapped in anon(); no borrow of
        // it can outlive self.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A small, fast, seedable generator (xorshift64*) for building permutations.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 11) as u128 * n as u128) >> 53) as usize
    }
}

/// A random permutation of `0..n` (Fisher–Yates).
pub(crate) fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = XorShift(seed | 1);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_usable_and_sized() {
        let mut m = Mapping::anon(10_000, true, true).unwrap();
        assert_eq!(m.len(), 12_288);
        m.words_mut()[0] = 7;
        assert_eq!(m.bytes_mut()[0], 7);
        assert_eq!(m.f64s_mut().len(), 12_288 / 8);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(1000, 42);
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }
}
