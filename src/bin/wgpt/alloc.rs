//! The process's allocator on Linux with glibc: glibc's, with every large block (weight
//! matrices, a model file) aligned to a cache line. glibc serves a large block from a mapping of
//! its own, 16 bytes past a page boundary: every 64-byte AVX-512 load of a matrix's rows then
//! spans two cache lines. One thread's f32 product of 6 × 576 rows against 16 prompt rows ran
//! 5–10 % faster with both operands on a line than with both 16 bytes off (in the cache: 182
//! against 164 GFLOPS; streamed from memory: 97–100 against 90–94).

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks this large or larger are aligned to [`LINE`]: every matrix of a real model's shape
/// (SmolLM2-135M's smallest f32 one is 442 KiB) and a model file read whole. Not smaller: with
/// a prompt's activations (36 KiB for SmolLM2's 16 × 576) aligned too, the products were at
/// most a few percent faster, and `wgpt generate` peaked 2 MB higher (SmolLM2-135M Q4_0, 256
/// tokens: 113.0 → 115.0 MB).
const LARGE: usize = 1 << 18;
/// A cache line.
const LINE: usize = 64;
/// The alignment glibc's malloc gives every block on x86-64.
const MALLOC_ALIGN: usize = 16;

pub struct LineAligned;

/// `l` as this allocator asks the system for it: a large block aligned to a line.
fn system_layout(l: Layout) -> Layout {
    if l.size() >= LARGE && l.align() < LINE { Layout::from_size_align(l.size(), LINE).unwrap_or(l) } else { l }
}

// SAFETY: every block comes from glibc (`System` is malloc / posix_memalign there, and frees
// with `free` whatever the layout), at least as aligned as the caller asks; `realloc` returns a
// block with the caller's bytes and alignment or null with the old block untouched.
unsafe impl GlobalAlloc for LineAligned {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, with an alignment at least the caller's.
        unsafe { System.alloc(system_layout(l)) }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(system_layout(l)) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from glibc, which frees any of its blocks with `free`.
        unsafe { System.dealloc(p, system_layout(l)) }
    }

    /// glibc's own `realloc` where the caller needs no more than malloc's alignment: a mapped
    /// block is resized in place or its pages moved (no copy, no second copy resident, and its
    /// offset in a page kept, so its line alignment too); `std`'s realloc for an aligned block
    /// would allocate, copy and free — twice a model file's bytes for a moment, when its buffer
    /// is shrunk to its length. A block that lands off a line where it should be on one is moved
    /// to an aligned block.
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract: `new_size` with `l`'s alignment is a valid layout.
        let want = system_layout(unsafe { Layout::from_size_align_unchecked(new_size, l.align()) });
        if l.align() > MALLOC_ALIGN {
            // SAFETY: `p` was allocated with `system_layout(l)`; `std` moves it to a block of its
            // alignment.
            return unsafe { System.realloc(p, system_layout(l), new_size) };
        }
        // SAFETY: `p` is a glibc block; `realloc` keeps it valid where it returns null.
        let q = unsafe { libc::realloc(p.cast(), new_size) }.cast::<u8>();
        if q.is_null() || (q as usize).is_multiple_of(want.align()) {
            return q;
        }
        // SAFETY: a fresh block of `want`; `q` holds `new_size` bytes. Where none is to be had,
        // `q` itself: valid for the caller's alignment, only not on a line.
        unsafe {
            let r = System.alloc(want);
            if r.is_null() {
                return q;
            }
            std::ptr::copy_nonoverlapping(q, r, new_size);
            libc::free(q.cast());
            r
        }
    }
}

#[cfg(test)]
mod tests {
    /// A large block is line-aligned, and one grown past the threshold (a fresh block) or within
    /// it keeps its bytes and its alignment.
    #[test]
    fn large_blocks_are_line_aligned_and_keep_their_bytes_when_grown() {
        let aligned = |p: *const u8| (p as usize).is_multiple_of(super::LINE);
        let matrix = vec![1.5f32; 576 * 576];
        assert!(aligned(matrix.as_ptr() as *const u8));
        let mut bytes: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        for size in [super::LARGE + 1, 4 * super::LARGE] {
            bytes.resize(size, 7);
            assert!(aligned(bytes.as_ptr()), "{size} bytes");
            assert!(bytes[..1000].iter().enumerate().all(|(i, &b)| b == i as u8));
            assert!(bytes[1000..].iter().all(|&b| b == 7));
        }
        bytes.truncate(10);
        bytes.shrink_to_fit();
        assert_eq!(bytes, (0..10).collect::<Vec<u8>>());
    }
}
