//! The block dot products with SIMD: AVX2 + FMA (+ F16C) natively (chosen at run time: the trainer's
//! fused kernels do the same), SIMD128 in the browser (built in when the wasm is compiled with
//! `+simd128`, which every browser with WebGPU runs). Each computes exactly what the plain loops
//! in `matrix.rs` compute, in another order of additions; `matrix.rs`'s tests compare them.

/// `pub fn $name(row, x: $x) -> Option<f32>`: the AVX2 + FMA + F16C kernel `x86::$name` where
/// the CPU has all three (checked at run time; every AVX2 CPU has F16C, which converts the blocks'
/// f16 scales in registers), the SIMD128 kernel `wasm::$name` in a wasm built with it, else None
/// (the caller runs the plain loop). `x`: f32 activations, or 8-bit ones (`super::int8`).
macro_rules! simd_dot {
    ($(#[$doc:meta])* $name:ident($x:ty)) => {
        $(#[$doc])*
        pub fn $name(row: &[u8], x: $x) -> Option<f32> {
            #[cfg(target_arch = "x86_64")]
            if has_avx2_fma_f16c() {
                // SAFETY: the CPU has AVX2, FMA and F16C (checked above); the kernel reads within
                // `row` and `x`.
                return Some(unsafe { x86::$name(row, x) });
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            return Some(wasm::$name(row, x));
            #[allow(unreachable_code)]
            {
                let _ = (row, x);
                None
            }
        }
    };
}

simd_dot!(
    /// `Σ_blocks d · Σ_i q_i x_i` over a row of Q8_0 blocks, if this CPU has a SIMD path.
    dot_q8_0(&[f32])
);
simd_dot!(
    /// Q4_0's, as [`dot_q8_0`].
    dot_q4_0(&[f32])
);
simd_dot!(
    /// Q4_K's, as [`dot_q8_0`].
    dot_q4k(&[f32])
);
simd_dot!(
    /// Q6_K's, as [`dot_q8_0`].
    dot_q6k(&[f32])
);
simd_dot!(
    /// F16's: `Σ_i w_i x_i`, each weight widened to f32 as it is read.
    dot_f16(&[f32])
);
simd_dot!(
    /// BF16's (a weight's 16 bits are the top half of an f32), as [`dot_f16`].
    dot_bf16(&[f32])
);
/// Q8_0 or Q4_0 weights times 8-bit activations (`super::int8`), one row, in a wasm built with
/// SIMD128 (natively the engines take four rows at once: [`int8x4`]), else None.
pub fn int8_row(ty: super::GgmlType, row: &[u8], x: &super::int8::Q8Row) -> Option<f32> {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    match ty {
        super::GgmlType::Q8_0 => return Some(wasm::int8_q8_0(row, x)),
        super::GgmlType::Q4_0 => return Some(wasm::int8_q4_0(row, x)),
        _ => {}
    }
    let _ = (ty, row, x);
    None
}

simd_dot!(
    /// Q4_K weights times 8-bit activations (`super::int8`), if this CPU has a SIMD path.
    int8_q4k(&super::int8::Q8Row)
);
simd_dot!(
    /// Q6_K's, as [`int8_q4k`].
    int8_q6k(&super::int8::Q8Row)
);

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma_f16c() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

/// Asks for `values` into the cache, a line at a time (x86-64): the weight rows a prompt's
/// 4-bit product multiplies next ([`super::int8_prefill`]), fetched while the rows before them
/// are multiplied. Read as they come, the rows' reads stall on memory and the products wait on
/// the reads.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn prefetch<T>(values: &[T]) {
    let start = values.as_ptr() as *const i8;
    for at in (0..std::mem::size_of_val(values)).step_by(64) {
        // SAFETY: SSE is part of x86-64; `at` is inside `values`, and a prefetch is only a hint.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(start.add(at)) };
    }
}

/// AVX-512 VNNI (with AVX-512F and AVX2's set): `vpdpbusd`, four byte products summed into each
/// 32-bit lane by one instruction, for the integer products ([`int8x4`], and a prompt's in
/// `super::int8_prefill`).
pub(crate) fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    return has_avx2_fma_f16c()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vnni");
    #[allow(unreachable_code)]
    false
}

/// AVX-512F, for the prompt's products ([`dot_rows_x4`]).
#[cfg(target_arch = "x86_64")]
fn has_avx512f() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// `a · b` over f32s, if this CPU (or this wasm build) has a SIMD path; else None (the caller
/// runs the plain loop). Both the same length.
pub fn dot_f32(a: &[f32], b: &[f32]) -> Option<f32> {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); the kernel reads within `a` and `b`.
        return Some(unsafe { x86::dot_f32(a, b) });
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return Some(wasm::dot_f32(a, b));
    #[allow(unreachable_code)]
    None
}

/// `out[j] += w[0]·rows[0][j]`, then `w[1]·rows[1][j]`, … in that order: four rows of an
/// attention's weighted sum of values per pass over `out`, each value of `out` held in a register
/// across the four (one row a pass loaded and stored `out` for every row). The same additions in
/// the same order as one row at a time, so the same bits (Rust fuses no multiply-add unasked);
/// eight lanes with AVX2, SIMD128's four in wasm, wherever the compiler vectorizes the loop.
pub fn add_weighted4(out: &mut [f32], w: [f32; 4], rows: [&[f32]; 4]) {
    assert!(rows.iter().all(|r| r.len() >= out.len()));
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() {
        // SAFETY: the CPU has AVX-512F (checked above).
        return unsafe { x512::add_weighted4(out, w, rows) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { x86::add_weighted4(out, w, rows) };
    }
    add_weighted4_plain(out, w, rows)
}

/// [`crate::cpu::ops::softmax`] compiled for the widest vectors this CPU has (AVX-512F, else
/// AVX2, else the build's own): the compiler vectorizes its loops, the same operations (Rust
/// fuses no multiply-add unasked), so the same bits in more lanes.
pub fn softmax(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() {
        // SAFETY: the CPU has AVX-512F (checked above).
        return unsafe { x512::softmax(x) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { x86::softmax(x) };
    }
    crate::cpu::ops::softmax_plain(x)
}

#[inline(always)]
fn add_weighted4_plain(out: &mut [f32], w: [f32; 4], rows: [&[f32]; 4]) {
    let n = out.len();
    let [r0, r1, r2, r3] = rows.map(|r| &r[..n]);
    for j in 0..n {
        let mut a = out[j];
        a += w[0] * r0[j];
        a += w[1] * r1[j];
        a += w[2] * r2[j];
        a += w[3] * r3[j];
        out[j] = a;
    }
}

/// Whether [`dot_key_tiles`] has a kernel on this CPU (AVX-512F).
pub fn has_key_tiles() -> bool {
    #[cfg(target_arch = "x86_64")]
    return has_avx512f();
    #[allow(unreachable_code)]
    false
}

/// `out[16·c + k] = Σ_j q[j] · tiles[c][j][k]` for every tile `c` of `tiles` (`[tile][q.len()][16]`:
/// sixteen keys' values down a tile's columns): a query row's attention scores, sixteen keys a
/// vector and no horizontal sum per key. Eight tiles at a time, so eight chains of FMAs are in
/// flight; each lane's sum is one chain in order of `j`, so a score's bits depend neither on its
/// tile's place nor on how many tiles. False (nothing written) where [`has_key_tiles`] is false.
pub fn dot_key_tiles(q: &[f32], tiles: &[f32], out: &mut [f32]) -> bool {
    let per = 16 * q.len();
    assert!(per > 0 && tiles.len().is_multiple_of(per) && out.len() >= tiles.len() / q.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() {
        // SAFETY: the CPU has AVX-512F (checked above); the lengths are checked above.
        unsafe { x512::dot_key_tiles(q, tiles, out) };
        return true;
    }
    false
}

/// [`dot_key_tiles`] for four query rows at once, `out[r]` row `q[r]`'s scores: each tile's row
/// loaded once for the four (two tiles at a time, so eight chains in flight). Each lane's sum
/// is the same chain as [`dot_key_tiles`]' (in order of `j`), so the same bits. False (nothing
/// written) where [`has_key_tiles`] is false.
pub fn dot_key_tiles4(q: [&[f32]; 4], tiles: &[f32], out: [&mut [f32]; 4]) -> bool {
    let hd = q[0].len();
    let per = 16 * hd;
    assert!(per > 0 && tiles.len().is_multiple_of(per) && q.iter().all(|q| q.len() == hd));
    assert!(out.iter().all(|o| o.len() >= tiles.len() / hd));
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() {
        // SAFETY: the CPU has AVX-512F (checked above); the lengths are checked above.
        unsafe { x512::dot_key_tiles4(q, tiles, out) };
        return true;
    }
    false
}

/// [`add_weighted4`] for four output rows at once, `out[r] += Σ_k w[r][k] · rows[k]` in order of
/// `k`: each value row loaded once for the four. The same additions in the same order as
/// [`add_weighted4`] on each, so the same bits.
pub fn add_weighted4x4(out: [&mut [f32]; 4], w: [[f32; 4]; 4], rows: [&[f32]; 4]) {
    let n = out[0].len();
    assert!(out.iter().all(|o| o.len() == n) && rows.iter().all(|r| r.len() >= n));
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() {
        // SAFETY: the CPU has AVX-512F (checked above).
        return unsafe { x512::add_weighted4x4(out, w, rows) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { x86::add_weighted4x4(out, w, rows) };
    }
    add_weighted4x4_plain(out, w, rows)
}

#[inline(always)]
fn add_weighted4x4_plain(out: [&mut [f32]; 4], w: [[f32; 4]; 4], rows: [&[f32]; 4]) {
    let n = out[0].len();
    let [r0, r1, r2, r3] = rows.map(|r| &r[..n]);
    let [o0, o1, o2, o3] = out;
    let (o0, o1, o2, o3) = (&mut o0[..n], &mut o1[..n], &mut o2[..n], &mut o3[..n]);
    for j in 0..n {
        let v = [r0[j], r1[j], r2[j], r3[j]];
        for (o, w) in [&mut o0[j], &mut o1[j], &mut o2[j], &mut o3[j]].into_iter().zip(&w) {
            let mut a = *o;
            a += w[0] * v[0];
            a += w[1] * v[1];
            a += w[2] * v[2];
            a += w[3] * v[3];
            *o = a;
        }
    }
}

/// Weight rows as a prompt's kernel reads them ([`dot_rows_x4`]).
#[derive(Clone, Copy)]
pub enum RowGroup<'a, const R: usize> {
    /// f32 rows, all as long.
    F32([&'a [f32]; R]),
    /// f16 rows as stored (two bytes a value), widened in registers: only where
    /// [`widens_f16`] (elsewhere they are widened into f32 rows first).
    F16([&'a [u8]; R]),
}

impl<const R: usize> RowGroup<'_, R> {
    /// Values in a row.
    pub fn cols(&self) -> usize {
        match self {
            RowGroup::F32(w) => w[0].len(),
            RowGroup::F16(w) => w[0].len() / 2,
        }
    }
}

/// How many weight rows a prompt's kernel takes at once on this CPU: their `4·R` sums in
/// registers beside the operands — 6 with AVX-512's 32 registers, 3 with AVX2's 16.
pub fn prompt_rows() -> usize {
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() {
        return 6;
    }
    3
}

/// Whether [`dot_rows_x4`] takes f16 rows as stored ([`RowGroup::F16`]): with AVX-512 (whose
/// 32 registers hold six rows' sums), each 16 values widened by one instruction as they are
/// loaded, instead of a pass writing each row widened to f32 and the product reading it back.
pub fn widens_f16() -> bool {
    #[cfg(target_arch = "x86_64")]
    return has_avx512f();
    #[allow(unreachable_code)]
    false
}

/// `[[w[r] · x[k] for k in 0..4] for r in 0..R]`: `R` rows of weights against four rows of
/// activations, prefill's inner kernel, if this CPU (or wasm build) has one for the rows' type.
/// `4·R` sums in as many registers, so the FMAs do not wait on each other (an FMA's result is
/// ready 4–5 cycles later and two start each cycle: four chains held prefill to half the FMA
/// rate, eight to at most 80 %), each weight loaded once for four products and each activation
/// once for `R`. With AVX-512F, sixteen lanes a step (llama.cpp's build for such a CPU uses them
/// too: about twice the prompt's f32 products per cycle); AVX2, eight; SIMD128, four, a row at a
/// time. Each sum is accumulated lane by lane in the same order whatever `R` and whichever rows
/// are beside it: the same bits.
///
/// `ahead`: the bytes the caller multiplies next (the next group's weight rows, as stored),
/// asked into the cache a few lines per step ([`Ahead`]), or empty. From memory, rows read as
/// they come stall every load, and one burst of prefetches before the product (all of a group's
/// lines at once) waits on the cache's few outstanding misses: spread over the product's steps,
/// the reads stream while it multiplies (one thread, 60 → 90 GFLOPS on 3 × 576 f32 rows).
pub fn dot_rows_x4<const R: usize>(w: RowGroup<'_, R>, x: [&[f32]; 4], ahead: &[u8]) -> Option<[[f32; 4]; R]> {
    let cols = w.cols();
    assert!(x.iter().all(|x| x.len() == cols));
    match w {
        RowGroup::F32(w) => {
            assert!(w.iter().all(|w| w.len() == cols));
            #[cfg(target_arch = "x86_64")]
            if has_avx512f() {
                // SAFETY: the CPU has AVX-512F (checked above); the kernel reads within `w` and
                // `x`, which are the same length (checked above).
                return Some(unsafe { x512::dot_rows_x4_f32(w, x, Ahead::new(ahead, cols / 16)) });
            }
            #[cfg(target_arch = "x86_64")]
            if has_avx2_fma_f16c() {
                // SAFETY: the CPU has AVX2, FMA and F16C (checked above); the kernel reads within
                // `w` and `x`, which are the same length (checked above).
                return Some(unsafe { x86::dot_rows_x4_f32(w, x, Ahead::new(ahead, cols / 8)) });
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            return Some(w.map(|w| wasm::dot4_f32(w, x)));
        }
        RowGroup::F16(w) => {
            assert!(w.iter().all(|w| w.len() == 2 * cols));
            #[cfg(target_arch = "x86_64")]
            if has_avx512f() {
                // SAFETY: the CPU has AVX-512F (checked above); each row holds `2 · cols` bytes
                // and each `x[k]` `cols` values (checked above), which the kernel reads within.
                return Some(unsafe { x512::dot_rows_x4_f16(w, x, Ahead::new(ahead, cols / 16)) });
            }
        }
    }
    let _ = ahead;
    None
}

/// Bytes to ask into the cache over a kernel's `steps` steps: `per_step` lines a step, from
/// `next` until `end` (x86-64; a prefetch is only a hint, so nothing here reads memory).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Ahead {
    next: *const u8,
    end: *const u8,
    per_step: usize,
}

#[cfg(target_arch = "x86_64")]
impl Ahead {
    fn new(bytes: &[u8], steps: usize) -> Self {
        let lines = bytes.len().div_ceil(64);
        let per_step = if lines == 0 { 0 } else { lines.div_ceil(steps.max(1)) };
        Ahead { next: bytes.as_ptr(), end: bytes.as_ptr().wrapping_add(bytes.len()), per_step }
    }

    /// This step's lines.
    #[inline(always)]
    fn step(&mut self) {
        for _ in 0..self.per_step {
            if self.next < self.end {
                // SAFETY: SSE is part of x86-64, and a prefetch is only a hint.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(self.next as *const i8)
                };
            }
            self.next = self.next.wrapping_add(64);
        }
    }
}

/// A row decoded into f32 in `out` (as many values as it holds) — F16 and BF16 widened, Q8_0,
/// Q4_0, Q4_K and Q6_K blocks scaled — if this CPU (or wasm build) has a SIMD path for its type:
/// prefill decodes each weight row once, and the plain decode is a call per f16 value (and
/// Q4_K's a scalar loop: GPT-2's all-Q4_K prefill spent a third of its time there). False
/// (nothing written) without one.
pub fn decode_row(ty: super::GgmlType, row: &[u8], out: &mut [f32]) -> bool {
    use super::GgmlType::{BF16, F16, Q4_0, Q4K, Q6K, Q8_0};
    if !matches!(ty, F16 | BF16 | Q8_0 | Q4_0 | Q4K | Q6K) {
        return false;
    }
    assert_eq!(row.len() as u64, out.len() as u64 / ty.block_len() * ty.block_bytes());
    assert!((out.len() as u64).is_multiple_of(ty.block_len()));
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); `row` holds exactly the blocks
        // of `out`'s values (checked above), which the kernels read and write within.
        unsafe {
            match ty {
                F16 => x86::widen_f16(row, out),
                BF16 => x86::widen_bf16(row, out),
                Q8_0 => x86::decode_q8_0(row, out),
                Q4K => x86::decode_q4k(row, out),
                Q6K => x86::decode_q6k(row, out),
                _ => x86::decode_q4_0(row, out),
            }
        }
        return true;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        match ty {
            F16 => wasm::widen_f16(row, out),
            BF16 => wasm::widen_bf16(row, out),
            Q8_0 => wasm::decode_q8_0(row, out),
            Q4K => wasm::decode_q4k(row, out),
            Q6K => wasm::decode_q6k(row, out),
            _ => wasm::decode_q4_0(row, out),
        }
        return true;
    }
    #[allow(unreachable_code)]
    {
        let _ = (row, out);
        false
    }
}

/// Four rows of blocks of type `ty` times one row of 8-bit activations (`super::int8`), if this
/// CPU has a four-row kernel for `ty` (AVX2: Q8_0, Q4_0 and Q4_K; AVX-512 VNNI: Q4_0, Q4_K and Q6_K,
/// 64 codes a `vpdpbusd`): each activation block loaded once for the four
/// rows, their four integer sums reduced together and scaled as one vector — a single row's
/// kernel spends as much on its block's scaling as on its products. Each row's result is
/// computed from that row alone, in the same order whichever rows are beside it.
pub fn int8x4(ty: super::GgmlType, rows: [&[u8]; 4], x: &super::int8::Q8Row) -> Option<[f32; 4]> {
    int8x4_on(ty, rows, x, has_avx512_vnni())
}

/// [`int8x4`], with AVX-512 VNNI's kernels where `vnni`: Q4_0's (the same bits as AVX2's), Q4_K's
/// and Q6_K's (AVX2 has no four-row one). Tests run both ways on a CPU with VNNI.
pub(crate) fn int8x4_on(ty: super::GgmlType, rows: [&[u8]; 4], x: &super::int8::Q8Row, vnni: bool) -> Option<[f32; 4]> {
    let bytes = 32 * x.d.len() as u64 / ty.block_len() * ty.block_bytes();
    assert!(rows.iter().all(|r| r.len() as u64 == bytes) && x.q.len() == 32 * x.d.len() && x.sum.len() == x.d.len());
    #[cfg(target_arch = "x86_64")]
    if vnni && ty == super::GgmlType::Q4_0 && has_avx512_vnni() {
        // SAFETY: the CPU has AVX2, FMA, F16C, AVX-512F and AVX-512 VNNI (checked above); every
        // row holds as many blocks as `x` has (checked above), which the kernel reads within.
        return Some(unsafe { x512::int8x4_q4_0(rows, x) });
    }
    #[cfg(target_arch = "x86_64")]
    if vnni && ty == super::GgmlType::Q6K && has_avx512_vnni() {
        // SAFETY: as above.
        return Some(unsafe { x512::int8x4_q6k(rows, x) });
    }
    #[cfg(target_arch = "x86_64")]
    if vnni && ty == super::GgmlType::Q4K && has_avx512_vnni() {
        // SAFETY: as above.
        return Some(unsafe { x512::int8x4_q4k(rows, x) });
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above); every row holds as many blocks
        // as `x` has (checked above), which the kernels read within.
        match ty {
            super::GgmlType::Q8_0 => return Some(unsafe { x86::int8x4_q8_0(rows, x) }),
            super::GgmlType::Q4_0 => return Some(unsafe { x86::int8x4_q4_0(rows, x) }),
            super::GgmlType::Q4K => return Some(unsafe { x86::int8x4_q4k(rows, x) }),
            _ => {}
        }
    }
    let _ = (rows, x, vnni);
    None
}

/// The prompt's products in 512-bit registers.
#[cfg(target_arch = "x86_64")]
mod x512 {
    use std::arch::x86_64::*;

    /// `4·R` sums of sixteen lanes, each weight vector loaded once for four products and each
    /// activation vector once for `R`; then the tail past the last whole sixteen.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_rows_x4_f32<const R: usize>(
        w: [&[f32]; R],
        x: [&[f32]; 4],
        ahead: super::Ahead,
    ) -> [[f32; 4]; R] {
        let pw = w.map(|w| w.as_ptr());
        // SAFETY: `sums` loads sixteen values at i + 16 <= x[k].len() == w[r].len().
        let load = |r: usize, i: usize| unsafe { _mm512_loadu_ps(pw[r].add(i)) };
        // SAFETY: the caller's: every row as long as the activations.
        unsafe { sums(x, ahead, load, |r, i| w[r][i]) }
    }

    /// [`super::dot_key_tiles`], the lengths checked by it.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_key_tiles(q: &[f32], tiles: &[f32], out: &mut [f32]) {
        let per = 16 * q.len();
        let count = tiles.len() / per;
        // SAFETY (both): tile c's row j is 16 values at c·per + 16·j, inside `tiles` for c < count.
        let row = |c: usize, j: usize| unsafe { _mm512_loadu_ps(tiles.as_ptr().add(c * per + 16 * j)) };
        let store = |out: &mut [f32], c: usize, s: __m512| unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(16 * c), s) };
        let mut c = 0;
        while c + 8 <= count {
            let mut s = [_mm512_setzero_ps(); 8];
            for (j, &qj) in q.iter().enumerate() {
                let qj = _mm512_set1_ps(qj);
                for (g, s) in s.iter_mut().enumerate() {
                    *s = _mm512_fmadd_ps(qj, row(c + g, j), *s);
                }
            }
            for (g, s) in s.into_iter().enumerate() {
                store(out, c + g, s);
            }
            c += 8;
        }
        for c in c..count {
            let mut s = _mm512_setzero_ps();
            for (j, &qj) in q.iter().enumerate() {
                s = _mm512_fmadd_ps(_mm512_set1_ps(qj), row(c, j), s);
            }
            store(out, c, s);
        }
    }

    /// [`super::dot_key_tiles4`], the lengths checked by it.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_key_tiles4(q: [&[f32]; 4], tiles: &[f32], out: [&mut [f32]; 4]) {
        let hd = q[0].len();
        let per = 16 * hd;
        let count = tiles.len() / per;
        // SAFETY (both): tile c's row j is 16 values at c·per + 16·j, inside `tiles` for c < count;
        // each `out[r]` holds 16·count scores (checked by the caller).
        let row = |c: usize, j: usize| unsafe { _mm512_loadu_ps(tiles.as_ptr().add(c * per + 16 * j)) };
        let out = out.map(|o| o.as_mut_ptr());
        let store = |r: usize, c: usize, s: __m512| unsafe { _mm512_storeu_ps(out[r].add(16 * c), s) };
        let mut c = 0;
        while c + 2 <= count {
            let mut s = [[_mm512_setzero_ps(); 4]; 2];
            for j in 0..hd {
                let qj = q.map(|q| _mm512_set1_ps(q[j]));
                for (g, s) in s.iter_mut().enumerate() {
                    let t = row(c + g, j);
                    for (s, &qj) in s.iter_mut().zip(&qj) {
                        *s = _mm512_fmadd_ps(qj, t, *s);
                    }
                }
            }
            for (g, s) in s.into_iter().enumerate() {
                for (r, s) in s.into_iter().enumerate() {
                    store(r, c + g, s);
                }
            }
            c += 2;
        }
        for c in c..count {
            let mut s = [_mm512_setzero_ps(); 4];
            for j in 0..hd {
                let t = row(c, j);
                for (s, q) in s.iter_mut().zip(&q) {
                    *s = _mm512_fmadd_ps(_mm512_set1_ps(q[j]), t, *s);
                }
            }
            for (r, s) in s.into_iter().enumerate() {
                store(r, c, s);
            }
        }
    }

    /// [`super::add_weighted4x4`] with AVX-512F: sixteen lanes a step, multiplies and adds apart
    /// (the plain loop's bits), the tail by the plain loop. (The plain loop compiled for AVX-512
    /// spent a head size of 64's time on its checks and masked tails.)
    #[target_feature(enable = "avx512f")]
    pub unsafe fn add_weighted4x4(out: [&mut [f32]; 4], w: [[f32; 4]; 4], rows: [&[f32]; 4]) {
        let n = out[0].len();
        let whole = n / 16 * 16;
        let lanes = w.map(|w| w.map(|w| _mm512_set1_ps(w)));
        let [o0, o1, o2, o3] = out;
        let out = [o0.as_mut_ptr(), o1.as_mut_ptr(), o2.as_mut_ptr(), o3.as_mut_ptr()];
        for j in (0..whole).step_by(16) {
            // SAFETY: j + 16 <= n, and every row and output holds n values (the caller's check).
            let v = rows.map(|r| unsafe { _mm512_loadu_ps(r.as_ptr().add(j)) });
            for (o, w) in out.iter().zip(&lanes) {
                let mut a = unsafe { _mm512_loadu_ps(o.add(j)) };
                for (w, v) in w.iter().zip(&v) {
                    a = _mm512_add_ps(a, _mm512_mul_ps(*w, *v));
                }
                unsafe { _mm512_storeu_ps(o.add(j), a) };
            }
        }
        // SAFETY: the outputs are the caller's four disjoint slices of n values.
        let tail = out.map(|o| unsafe { std::slice::from_raw_parts_mut(o.add(whole), n - whole) });
        super::add_weighted4x4_plain(tail, w, rows.map(|r| &r[whole..]))
    }

    /// [`super::softmax`] with AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn softmax(x: &mut [f32]) {
        crate::cpu::ops::softmax_plain(x)
    }

    /// [`super::add_weighted4`] compiled for AVX-512F: sixteen lanes.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn add_weighted4(out: &mut [f32], w: [f32; 4], rows: [&[f32]; 4]) {
        super::add_weighted4_plain(out, w, rows)
    }

    /// [`super::x86::int8x4_q4_0`] with VNNI: the four rows' code bytes of a block side by side
    /// in one register (a row per 128 bits), their low and high nibbles times the activation
    /// block's halves (broadcast to every row) by two `vpdpbusd`, for the four rows at once, where
    /// AVX2 takes two `maddubs`, a `madd` and a shift per row. Each row's four lanes are then
    /// summed in integers: each block's integer sum is exactly AVX2's, scaled and added in the
    /// same order, so the same bits.
    ///
    /// # Safety
    /// AVX2, FMA, F16C, AVX-512F and AVX-512 VNNI; each row holds `x.d.len()` blocks.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vnni")]
    pub unsafe fn int8x4_q4_0(rows: [&[u8]; 4], x: &super::super::int8::Q8Row) -> [f32; 4] {
        use super::x86::{lanes4, prefetch_next_group, scales4};
        let low = _mm512_set1_epi8(0x0F);
        // Lane 4·k (row k's sum after the two folds) to lane k.
        let firsts = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        let mut acc = _mm_setzero_ps();
        for (b, (&dx, &sum)) in x.d.iter().zip(&x.sum).enumerate() {
            // SAFETY: activation block b and block b (18 bytes at 18·b) of each row lie within
            // them (the caller's).
            let half = |h: usize| unsafe {
                _mm512_broadcast_i32x4(_mm_loadu_si128(x.q.as_ptr().add(32 * b + 16 * h) as *const __m128i))
            };
            let codes = |k: usize| unsafe { _mm_loadu_si128(rows[k].as_ptr().add(18 * b + 2) as *const __m128i) };
            prefetch_next_group(rows[0], 4 * 18 * b, 4 * 18);
            let w = _mm512_castsi128_si512(codes(0));
            let w = _mm512_inserti32x4::<1>(w, codes(1));
            let w = _mm512_inserti32x4::<2>(w, codes(2));
            let w = _mm512_inserti32x4::<3>(w, codes(3));
            // Values 0..16 are the low nibbles, 16..32 the high ones.
            let (lo, hi) = (_mm512_and_si512(w, low), _mm512_and_si512(_mm512_srli_epi32::<4>(w), low));
            let s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, half(0)), hi, half(1));
            let s = _mm512_add_epi32(s, _mm512_shuffle_epi32::<_MM_PERM_BADC>(s));
            let s = _mm512_add_epi32(s, _mm512_shuffle_epi32::<_MM_PERM_CDAB>(s));
            let sums =
                _mm_sub_epi32(_mm512_castsi512_si128(_mm512_permutexvar_epi32(firsts, s)), _mm_set1_epi32(8 * sum));
            // SAFETY: as above.
            let d = _mm_mul_ps(unsafe { scales4(&rows, 18 * b) }, _mm_set1_ps(dx));
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), d, acc);
        }
        lanes4(acc)
    }

    /// Four Q6_K rows times `x` with VNNI. A half super-block's 64 `ql` bytes hold, in their low
    /// nibbles, its first two groups of 32 codes and, in their high ones, its last two; its 32
    /// `qh` bytes, put in both halves of a register and the upper half shifted by 2, give each
    /// of those bytes its two high bits with one mask. So 64 codes (unsigned, 0 ..= 63) are five
    /// logic operations from the bytes, and one `vpdpbusd` multiplies them by two activation
    /// blocks, four products a lane: a lane is four values of one sub-block of 16. The codes'
    /// offset of 32 is `32·Σ q` per lane (one `vpdpbusd` of 32s, shared by the rows); each lane's
    /// sum is scaled by its sub-block's scale times `d` and its block's `d_x`, sixteen lanes a
    /// multiply-add. AVX2's one-row kernel takes sixteen instructions per 32 codes, this one
    /// about six.
    ///
    /// # Safety
    /// AVX2, FMA, F16C, AVX-512F and AVX-512 VNNI; each row holds `x.d.len() / 8` super-blocks.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vnni")]
    pub unsafe fn int8x4_q6k(rows: [&[u8]; 4], x: &super::super::int8::Q8Row) -> [f32; 4] {
        use super::super::k_quants::Q6K_BYTES;
        let blocks = x.d.len() / 8;
        assert!(rows.iter().all(|r| r.len() == Q6K_BYTES * blocks) && x.q.len() >= 256 * blocks);
        let (m4, m30, k32) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x30), _mm512_set1_epi8(32));
        let shifts = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
        // Lane i of a register's sums is in sub-block `first + i / 4` and activation block
        // `first + i / 8` (of those the register multiplies).
        let quarters = |f: i32| {
            _mm512_setr_epi32(
                f,
                f,
                f,
                f,
                f + 1,
                f + 1,
                f + 1,
                f + 1,
                f + 2,
                f + 2,
                f + 2,
                f + 2,
                f + 3,
                f + 3,
                f + 3,
                f + 3,
            )
        };
        let eighths =
            |f: i32| _mm512_setr_epi32(f, f, f, f, f, f, f, f, f + 1, f + 1, f + 1, f + 1, f + 1, f + 1, f + 1, f + 1);
        let zero = _mm512_setzero_si512();
        let mut acc = [_mm512_setzero_ps(); 4];
        for sb in 0..blocks {
            // SAFETY (this loop's loads): super-block sb's bytes lie in each row (checked above):
            // scales at 192 ..+ 16, `ql` at 64·half ..+ 64, `qh` at 128 + 32·half ..+ 32; its
            // activations, 256·sb ..+ 256 codes and 8·sb ..+ 8 scales, in `x`.
            let block = |r: usize| unsafe { rows[r].as_ptr().add(Q6K_BYTES * sb) };
            super::x86::prefetch_next_group(rows[0], 4 * Q6K_BYTES * sb, 4 * Q6K_BYTES);
            // Each row's sixteen sub-block scales times its d (converted by F16C).
            let scales: [__m512; 4] = std::array::from_fn(|r| {
                let b = block(r);
                let (sc, d) = unsafe {
                    (_mm_loadu_si128(b.add(192) as *const __m128i), (b.add(208) as *const u16).read_unaligned())
                };
                let d = _mm512_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(d as i32)));
                _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)), d)
            });
            for half in 0..2 {
                let k0 = 8 * sb + 4 * half;
                let q = [0, 1].map(|p| unsafe { _mm512_loadu_si512(x.q.as_ptr().add(32 * (k0 + 2 * p)) as *const _) });
                let offsets = q.map(|q| _mm512_dpbusd_epi32(zero, k32, q));
                let dx4 = _mm512_castps128_ps512(unsafe { _mm_loadu_ps(x.d.as_ptr().add(k0)) });
                let dx = [0, 2].map(|f| _mm512_permutexvar_ps(eighths(f), dx4));
                let subs = [0, 4].map(|f| quarters(8 * half as i32 + f));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let b = block(r);
                    let ql = unsafe { _mm512_loadu_si512(b.add(64 * half) as *const _) };
                    let qh =
                        unsafe { _mm512_broadcast_i64x4(_mm256_loadu_si256(b.add(128 + 32 * half) as *const __m256i)) };
                    let qh = _mm512_srlv_epi32(qh, shifts);
                    let codes = [
                        _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(_mm512_slli_epi32::<4>(qh), m30)),
                        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32::<4>(ql), m4), _mm512_and_si512(qh, m30)),
                    ];
                    for p in 0..2 {
                        let sums = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, codes[p], q[p]), offsets[p]);
                        let scale = _mm512_mul_ps(_mm512_permutexvar_ps(subs[p], scales[r]), dx[p]);
                        *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, *acc);
                    }
                }
            }
        }
        acc.map(|a| _mm512_reduce_add_ps(a))
    }

    /// Four Q4_K rows times `x` with VNNI. Two pairs' 64 code bytes are one register: their low
    /// nibbles are sub-blocks `4p` and `4p + 2`, their high ones `4p + 1` and `4p + 3`, each
    /// multiplied by its two activation blocks (put side by side once for the four rows) by one
    /// `vpdpbusd`; lane i's sum is scaled by its sub-block's `d·sc · d_x`, sixteen lanes a
    /// multiply-add. The minimum term as AVX2's kernel takes it, eight lanes per super-block.
    ///
    /// # Safety
    /// AVX2, FMA, F16C, AVX-512F and AVX-512 VNNI; each row holds `x.d.len() / 8` super-blocks.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vnni")]
    pub unsafe fn int8x4_q4k(rows: [&[u8]; 4], x: &super::super::int8::Q8Row) -> [f32; 4] {
        const BYTES: usize = super::super::k_quants::Q4K_BYTES;
        let blocks = x.d.len() / 8;
        assert!(
            rows.iter().all(|r| r.len() == BYTES * blocks) && x.q.len() >= 256 * blocks && x.sum.len() >= 8 * blocks
        );
        let low = _mm512_set1_epi8(0x0F);
        // Lane i of the register for pairs 2h, 2h + 1's low (n = 0) or high (n = 1) nibbles is in
        // sub-block 4h + n + 2·(i / 8).
        let eighths = |f: i32| {
            let g = f + 2;
            _mm512_setr_epi32(f, f, f, f, f, f, f, f, g, g, g, g, g, g, g, g)
        };
        let subs = [[eighths(0), eighths(1)], [eighths(4), eighths(5)]];
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut minimums = [_mm256_setzero_ps(); 4];
        for sb in 0..blocks {
            super::x86::prefetch_next_group(rows[0], 4 * BYTES * sb, 4 * BYTES);
            // SAFETY (this loop's loads): super-block sb lies in each row (checked above), its
            // activations (256·sb ..+ 256 codes, 8·sb ..+ 8 scales and sums) in `x`.
            let (dx, sums) = unsafe {
                (
                    _mm256_loadu_ps(x.d.as_ptr().add(8 * sb)),
                    _mm256_cvtepi32_ps(_mm256_loadu_si256(x.sum.as_ptr().add(8 * sb) as *const __m256i)),
                )
            };
            // Activation blocks k and k + 2 of this super-block side by side.
            let apart = |k: usize| unsafe {
                let at = x.q.as_ptr().add(256 * sb + 32 * k) as *const __m256i;
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(_mm256_loadu_si256(at)), _mm256_loadu_si256(at.add(2)))
            };
            let q = [[apart(0), apart(1)], [apart(4), apart(5)]];
            for r in 0..4 {
                let b = &rows[r][BYTES * sb..BYTES * (sb + 1)];
                let (sc, mins) = super::x86::q4k_multipliers(b);
                let scales = _mm512_castps256_ps512(_mm256_mul_ps(sc, dx));
                minimums[r] = _mm256_fmadd_ps(_mm256_mul_ps(mins, dx), sums, minimums[r]);
                for h in 0..2 {
                    let codes = unsafe { _mm512_loadu_si512(b.as_ptr().add(16 + 64 * h) as *const _) };
                    let nibbles = [_mm512_and_si512(codes, low), _mm512_and_si512(_mm512_srli_epi32::<4>(codes), low)];
                    for n in 0..2 {
                        let s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), nibbles[n], q[h][n]);
                        let scale = _mm512_permutexvar_ps(subs[h][n], scales);
                        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[r]);
                    }
                }
            }
        }
        std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]) - super::x86::hsum(minimums[r]))
    }

    /// [`dot_rows_x4_f32`] on f16 rows, each 16 values widened as loaded (`vcvtph2ps`: exact,
    /// so the same sums as the rows widened first).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_rows_x4_f16<const R: usize>(w: [&[u8]; R], x: [&[f32]; 4], ahead: super::Ahead) -> [[f32; 4]; R] {
        let pw = w.map(|w| w.as_ptr());
        // SAFETY: `sums` loads values i .. i + 16 <= x[k].len(): 32 bytes of a row of 2 · that.
        let load =
            |r: usize, i: usize| unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(pw[r].add(2 * i) as *const __m256i)) };
        let value = |r: usize, i: usize| half::f16::from_le_bytes([w[r][2 * i], w[r][2 * i + 1]]).to_f32();
        // SAFETY: the caller's: every row holds two bytes per activation.
        unsafe { sums(x, ahead, load, value) }
    }

    /// The kernel both take: `load(r, i)`, weight row `r`'s values `i .. i + 16` in f32;
    /// `value(r, i)` one value, for the tail.
    ///
    /// # Safety
    /// AVX-512F; `load(r, i)` reads within row `r` for every `i + 16 <= x[k].len()`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sums<const R: usize>(
        x: [&[f32]; 4],
        mut ahead: super::Ahead,
        load: impl Fn(usize, usize) -> __m512,
        value: impl Fn(usize, usize) -> f32,
    ) -> [[f32; 4]; R] {
        let cols = x[0].len();
        let n = cols / 16 * 16;
        let px = x.map(|x| x.as_ptr());
        let mut s = [[_mm512_setzero_ps(); 4]; R];
        for i in (0..n).step_by(16) {
            ahead.step();
            let wv: [__m512; R] = std::array::from_fn(|r| load(r, i));
            for k in 0..4 {
                // SAFETY: i + 16 <= n <= x[k].len().
                let xv = unsafe { _mm512_loadu_ps(px[k].add(i)) };
                for r in 0..R {
                    s[r][k] = _mm512_fmadd_ps(wv[r], xv, s[r][k]);
                }
            }
        }
        std::array::from_fn(|r| {
            std::array::from_fn(|k| {
                _mm512_reduce_add_ps(s[r][k]) + (n..cols).map(|i| value(r, i) * x[k][i]).sum::<f32>()
            })
        })
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// A block's f16 scale at the start of `b` in every lane, converted by F16C in registers
    /// (`half`'s conversion is a call, which spills the accumulators every block). A broadcast
    /// load depends on nothing; a one-lane load (`_mm_cvtsi32_si128`) became an insert into
    /// whatever register LLVM picked — the accumulator, in the integer kernels — so each block's
    /// scale waited for the previous block's sum, and the loop ran at that chain's latency.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn scale8(b: &[u8]) -> __m256 {
        _mm256_cvtph_ps(_mm_set1_epi16(i16::from_le_bytes([b[0], b[1]])))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// [`super::softmax`] with AVX2.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn softmax(x: &mut [f32]) {
        crate::cpu::ops::softmax_plain(x)
    }

    /// [`super::add_weighted4`] compiled for AVX2 (no FMA in it: the plain loop's bits).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn add_weighted4(out: &mut [f32], w: [f32; 4], rows: [&[f32]; 4]) {
        super::add_weighted4_plain(out, w, rows)
    }

    /// [`super::add_weighted4x4`] compiled for AVX2, as [`add_weighted4`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn add_weighted4x4(out: [&mut [f32]; 4], w: [[f32; 4]; 4], rows: [&[f32]; 4]) {
        super::add_weighted4x4_plain(out, w, rows)
    }

    /// Two accumulators (the FMA's latency is hidden behind the other's), then the tail.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len() / 16 * 16;
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n <= a.len() == b.len().
            unsafe {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), s1);
            }
        }
        hsum(_mm256_add_ps(s0, s1)) + a[n..].iter().zip(&b[n..]).map(|(x, y)| x * y).sum::<f32>()
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_rows_x4_f32<const R: usize>(
        w: [&[f32]; R],
        x: [&[f32]; 4],
        mut ahead: super::Ahead,
    ) -> [[f32; 4]; R] {
        let n = w[0].len() / 8 * 8;
        let pw = w.map(|w| w.as_ptr());
        let px = x.map(|x| x.as_ptr());
        let mut s = [[_mm256_setzero_ps(); 4]; R];
        for i in (0..n).step_by(8) {
            ahead.step();
            // SAFETY: i + 8 <= n <= w[r].len() == x[k].len().
            unsafe {
                let wv = pw.map(|p| _mm256_loadu_ps(p.add(i)));
                for k in 0..4 {
                    let xv = _mm256_loadu_ps(px[k].add(i));
                    for r in 0..R {
                        s[r][k] = _mm256_fmadd_ps(wv[r], xv, s[r][k]);
                    }
                }
            }
        }
        std::array::from_fn(|r| {
            std::array::from_fn(|k| hsum(s[r][k]) + w[r][n..].iter().zip(&x[k][n..]).map(|(a, b)| a * b).sum::<f32>())
        })
    }

    /// Eight signed bytes at `p` as eight f32s.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn i8x8(p: *const u8) -> __m256 {
        // SAFETY: the caller passes a pointer with 8 readable bytes.
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(unsafe { _mm_loadl_epi64(p as *const __m128i) }))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (b, xs) in row.chunks_exact(34).zip(x.chunks_exact(32)) {
            let mut s = _mm256_setzero_ps();
            for k in 0..4 {
                // SAFETY: block bytes 2 + 8k .. 10 + 8k ≤ 34 and values 8k .. 8k + 8 ≤ 32.
                let (q, v) = unsafe { (i8x8(b.as_ptr().add(2 + 8 * k)), _mm256_loadu_ps(xs.as_ptr().add(8 * k))) };
                s = _mm256_fmadd_ps(q, v, s);
            }
            acc = _mm256_fmadd_ps(scale8(b), s, acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_0(row: &[u8], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let low = _mm_set1_epi8(0x0F);
        let eight = _mm256_set1_ps(8.0);
        for (b, xs) in row.chunks_exact(18).zip(x.chunks_exact(32)) {
            // SAFETY: block bytes 2 .. 18.
            let bytes = unsafe { _mm_loadu_si128(b.as_ptr().add(2) as *const __m128i) };
            let lo = _mm_and_si128(bytes, low); // values 0..16
            let hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low); // values 16..32
            let f = |v: __m128i| _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), eight);
            let mut s = _mm256_setzero_ps();
            for (k, q) in [f(lo), f(_mm_srli_si128(lo, 8)), f(hi), f(_mm_srli_si128(hi, 8))].into_iter().enumerate() {
                // SAFETY: values 8k .. 8k + 8 ≤ 32.
                s = _mm256_fmadd_ps(q, unsafe { _mm256_loadu_ps(xs.as_ptr().add(8 * k)) }, s);
            }
            acc = _mm256_fmadd_ps(scale8(b), s, acc);
        }
        hsum(acc)
    }

    /// A Q4_K super-block's eight sub-block multipliers, lane j: `d·sc_j` and `dmin·m_j`, once
    /// per super-block with `d` and `dmin` converted by F16C. (Per pair of sub-blocks through
    /// the plain `pair_multipliers` and `half`'s conversion, they were calls: 28 % of a Q4_K
    /// decode.)
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn q4k_multipliers(b: &[u8]) -> (__m256, __m256) {
        let (sc, m) = super::super::k_quants::scales_mins(&b[4..16]);
        let widen = |v: [u8; 8]| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(i64::from_le_bytes(v))));
        (_mm256_mul_ps(scale8(&b[0..2]), widen(sc)), _mm256_mul_ps(scale8(&b[2..4]), widen(m)))
    }

    /// Lane `j` of `v` in every lane.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn lane(v: __m256, j: usize) -> __m256 {
        _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(j as i32))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4k(row: &[u8], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let low = _mm_set1_epi8(0x0F);
        let f = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
        for (b, xs) in row.chunks_exact(144).zip(x.chunks_exact(256)) {
            let (scales, mins) = q4k_multipliers(b);
            for pair in 0..4 {
                // SAFETY: code bytes 16 + 32·pair .. + 32 ≤ 144; values 64·pair .. + 64 ≤ 256.
                let (q0, q1, xp) = unsafe {
                    let q = b.as_ptr().add(16 + 32 * pair);
                    (
                        _mm_loadu_si128(q as *const __m128i),
                        _mm_loadu_si128(q.add(16) as *const __m128i),
                        xs.as_ptr().add(64 * pair),
                    )
                };
                let (lo0, lo1) = (_mm_and_si128(q0, low), _mm_and_si128(q1, low));
                let (hi0, hi1) = (_mm_and_si128(_mm_srli_epi16(q0, 4), low), _mm_and_si128(_mm_srli_epi16(q1, 4), low));
                let lo = [f(lo0), f(_mm_srli_si128(lo0, 8)), f(lo1), f(_mm_srli_si128(lo1, 8))];
                let hi = [f(hi0), f(_mm_srli_si128(hi0, 8)), f(hi1), f(_mm_srli_si128(hi1, 8))];
                let (mut s1, mut s2, mut t1, mut t2) =
                    (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
                for k in 0..4 {
                    // SAFETY: values 64·pair + 8k .. + 8 and 64·pair + 32 + 8k .. + 8, inside the 64.
                    let (v1, v2) = unsafe { (_mm256_loadu_ps(xp.add(8 * k)), _mm256_loadu_ps(xp.add(32 + 8 * k))) };
                    s1 = _mm256_fmadd_ps(lo[k], v1, s1);
                    s2 = _mm256_fmadd_ps(hi[k], v2, s2);
                    t1 = _mm256_add_ps(t1, v1);
                    t2 = _mm256_add_ps(t2, v2);
                }
                let (j1, j2) = (2 * pair, 2 * pair + 1);
                acc = _mm256_fmadd_ps(lane(scales, j1), s1, acc);
                acc = _mm256_fmadd_ps(lane(scales, j2), s2, acc);
                acc = _mm256_fnmadd_ps(lane(mins, j1), t1, acc);
                acc = _mm256_fnmadd_ps(lane(mins, j2), t2, acc);
            }
        }
        hsum(acc)
    }

    /// How far ahead of its reads [`dot_16`] asks for a row's bytes: decode streams F16 rows
    /// at 20–25 GB/s on two cores, and without the hint read them 6–30 % slower (GPT-2's and
    /// SmolLM2's shapes, interleaved runs; 512, 1024 and 2048 bytes within the noise of each
    /// other).
    const PREFETCH_16: usize = 512;

    /// `Σ_i w_i x_i` over 16-bit weights, eight at a time widened to f32 by `widen`; the tail
    /// (fewer than 8) in plain code by `one`. Two accumulators in two named registers: an
    /// array indexed by the loop's parity was kept on the stack, and every product waited for
    /// a store and a reload of its sum (a third of decode's speed on F16 weights).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot_16(row: &[u8], x: &[f32], widen: impl Fn(__m128i) -> __m256, one: fn(&[u8]) -> f32) -> f32 {
        let n = x.len().min(row.len() / 2);
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (pw, px) = (row.as_ptr(), x.as_ptr());
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: values i .. i + 16 ≤ n of both `row` (2 bytes each) and `x`.
            unsafe {
                // Past the row's end for its last 512 bytes: a prefetch of any address is a hint.
                _mm_prefetch::<_MM_HINT_T0>(pw.wrapping_add(2 * i + PREFETCH_16) as *const i8);
                let (w0, w1) = (
                    _mm_loadu_si128(pw.add(2 * i) as *const __m128i),
                    _mm_loadu_si128(pw.add(2 * i + 16) as *const __m128i),
                );
                a0 = _mm256_fmadd_ps(widen(w0), _mm256_loadu_ps(px.add(i)), a0);
                a1 = _mm256_fmadd_ps(widen(w1), _mm256_loadu_ps(px.add(i + 8)), a1);
            }
            i += 16;
        }
        if i + 8 <= n {
            // SAFETY: values i .. i + 8 ≤ n, as above.
            unsafe {
                let w = _mm_loadu_si128(pw.add(2 * i) as *const __m128i);
                a0 = _mm256_fmadd_ps(widen(w), _mm256_loadu_ps(px.add(i)), a0);
            }
            i += 8;
        }
        let tail: f32 = (i..n).map(|j| one(&row[2 * j..2 * j + 2]) * x[j]).sum();
        hsum(_mm256_add_ps(a0, a1)) + tail
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn widen_16(row: &[u8], out: &mut [f32], widen: impl Fn(__m128i) -> __m256, one: fn(&[u8]) -> f32) {
        let n = out.len();
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: values i .. i + 8 ≤ n of `out`, and of `row` (2 bytes each; the caller
            // passes at least 2 · n).
            unsafe {
                let w = _mm_loadu_si128(row.as_ptr().add(2 * i) as *const __m128i);
                _mm256_storeu_ps(out.as_mut_ptr().add(i), widen(w));
            }
            i += 8;
        }
        for j in i..n {
            out[j] = one(&row[2 * j..2 * j + 2]);
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen_f16(row: &[u8], out: &mut [f32]) {
        widen_16(row, out, |w| _mm256_cvtph_ps(w), |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn widen_bf16(row: &[u8], out: &mut [f32]) {
        widen_16(
            row,
            out,
            |w| _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(w), 16)),
            |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        )
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn decode_q8_0(row: &[u8], out: &mut [f32]) {
        for (b, y) in row.chunks_exact(34).zip(out.chunks_exact_mut(32)) {
            let d = scale8(b);
            for k in 0..4 {
                // SAFETY: block bytes 2 + 8k .. 10 + 8k ≤ 34; values 8k .. 8k + 8 ≤ 32.
                unsafe {
                    _mm256_storeu_ps(y.as_mut_ptr().add(8 * k), _mm256_mul_ps(i8x8(b.as_ptr().add(2 + 8 * k)), d))
                };
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn decode_q4_0(row: &[u8], out: &mut [f32]) {
        let low = _mm_set1_epi8(0x0F);
        let eight = _mm256_set1_ps(8.0);
        for (b, y) in row.chunks_exact(18).zip(out.chunks_exact_mut(32)) {
            let d = scale8(b);
            // SAFETY: block bytes 2 .. 18.
            let bytes = unsafe { _mm_loadu_si128(b.as_ptr().add(2) as *const __m128i) };
            let lo = _mm_and_si128(bytes, low); // values 0..16
            let hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low); // values 16..32
            let f = |v: __m128i| _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), eight), d);
            for (k, q) in [f(lo), f(_mm_srli_si128(lo, 8)), f(hi), f(_mm_srli_si128(hi, 8))].into_iter().enumerate() {
                // SAFETY: values 8k .. 8k + 8 ≤ 32.
                unsafe { _mm256_storeu_ps(y.as_mut_ptr().add(8 * k), q) };
            }
        }
    }

    /// Each value `d·sc · q − dmin·m` as [`super::super::k_quants::dequantize_q4k`] computes it
    /// (a product, then a difference: the same bits).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn decode_q4k(row: &[u8], out: &mut [f32]) {
        let low = _mm_set1_epi8(0x0F);
        let f = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
        for (b, y) in row.chunks_exact(144).zip(out.chunks_exact_mut(256)) {
            let (scales, mins) = q4k_multipliers(b);
            for pair in 0..4 {
                // SAFETY: code bytes 16 + 32·pair .. + 32 ≤ 144.
                let (q0, q1) = unsafe {
                    let q = b.as_ptr().add(16 + 32 * pair);
                    (_mm_loadu_si128(q as *const __m128i), _mm_loadu_si128(q.add(16) as *const __m128i))
                };
                let (lo0, lo1) = (_mm_and_si128(q0, low), _mm_and_si128(q1, low));
                let (hi0, hi1) = (_mm_and_si128(_mm_srli_epi16(q0, 4), low), _mm_and_si128(_mm_srli_epi16(q1, 4), low));
                let lo = [f(lo0), f(_mm_srli_si128(lo0, 8)), f(lo1), f(_mm_srli_si128(lo1, 8))];
                let hi = [f(hi0), f(_mm_srli_si128(hi0, 8)), f(hi1), f(_mm_srli_si128(hi1, 8))];
                let (j1, j2) = (2 * pair, 2 * pair + 1);
                let (a1, a2, m1, m2) = (lane(scales, j1), lane(scales, j2), lane(mins, j1), lane(mins, j2));
                for k in 0..4 {
                    // SAFETY: values 64·pair + 8k .. + 8 and 64·pair + 32 + 8k .. + 8 ≤ 256.
                    unsafe {
                        let p = y.as_mut_ptr().add(64 * pair + 8 * k);
                        _mm256_storeu_ps(p, _mm256_sub_ps(_mm256_mul_ps(a1, lo[k]), m1));
                        _mm256_storeu_ps(p.add(32), _mm256_sub_ps(_mm256_mul_ps(a2, hi[k]), m2));
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(row: &[u8], x: &[f32]) -> f32 {
        dot_16(row, x, |w| _mm256_cvtph_ps(w), |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_bf16(row: &[u8], x: &[f32]) -> f32 {
        dot_16(
            row,
            x,
            |w| _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(w), 16)),
            |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        )
    }

    /// `Σ w·q` of 32 signed bytes each, as eight i32 lane sums in f32 (lane k: bytes 4k .. 4k + 4):
    /// the sign of `w` moved onto `q` so `maddubs` multiplies |w| (unsigned) by ±q.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn isum(w: __m256i, q: __m256i) -> __m256 {
        let p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w));
        _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
    }

    /// 32 bytes at `p`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load32(p: *const u8) -> __m256i {
        // SAFETY: the caller passes a pointer with 32 readable bytes.
        unsafe { _mm256_loadu_si256(p as *const __m256i) }
    }

    /// The block sums of four rows, `[S0, S1, S2, S3]`, from each row's eight i32 lane sums: row
    /// k's lanes added in one fixed order, whatever the other rows hold.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn sum4(s: [__m256i; 4]) -> __m128i {
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
        _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
    }

    /// The f16 scales at byte `at` of four rows, in f32. Built in a general register and moved in
    /// whole (`movq` depends on no vector register: see [`scale8`]).
    ///
    /// # Safety
    /// Each row has two bytes at `at`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scales4(rows: &[&[u8]; 4], at: usize) -> __m128 {
        // SAFETY: the caller's.
        let h = |r: &[u8]| unsafe { (r.as_ptr().add(at) as *const u16).read_unaligned() } as u64;
        let packed = h(rows[0]) | h(rows[1]) << 16 | h(rows[2]) << 32 | h(rows[3]) << 48;
        _mm_cvtph_ps(_mm_cvtsi64_si128(packed as i64))
    }

    /// Asks for the next four rows' bytes `at .. at + n` into the cache. The four
    /// rows of a group lie one after another, and so do the groups; read four at once, each row
    /// is a short stream of its own that the hardware prefetcher learns too late (the one-row
    /// kernel, reading rows in order, is one long stream): the group after `row0`'s is
    /// fetched while this one is multiplied, as the one-row kernel's reads are.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn prefetch_next_group(row0: &[u8], at: usize, n: usize) {
        // Past the matrix for its last group: a prefetch of any address is only a hint.
        let next = row0.as_ptr().wrapping_add(4 * row0.len() + at);
        for line in (0..n).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(line) as *const i8);
        }
    }

    /// `[f32; 4]` of an accumulator.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn lanes4(v: __m128) -> [f32; 4] {
        let mut out = [0f32; 4];
        // SAFETY: four f32s.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), v) };
        out
    }

    /// A Q8_0 block's 32 codes at byte `at` of `row` times `q`, as eight i32 lane sums.
    ///
    /// # Safety
    /// `row` has 32 bytes at `at`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn isum_q8_0(row: &[u8], at: usize, q: __m256i, ones: __m256i) -> __m256i {
        // SAFETY: the caller's.
        let w = unsafe { load32(row.as_ptr().add(at)) };
        _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w)), ones)
    }

    /// A Q4_0 block's 16 code bytes at byte `at` of `row`, unsigned, times `q`, as eight i32 lane
    /// sums.
    ///
    /// # Safety
    /// `row` has 16 bytes at `at`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn isum_q4_0(row: &[u8], at: usize, q: __m256i, ones: __m256i, low: __m256i) -> __m256i {
        // SAFETY: the caller's.
        let bytes = unsafe { _mm_loadu_si128(row.as_ptr().add(at) as *const __m128i) };
        // Values 0..16 are the low nibbles, 16..32 the high ones.
        let w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(bytes, 4), bytes), low);
        _mm256_madd_epi16(_mm256_maddubs_epi16(w, q), ones)
    }

    /// Four Q8_0 rows times `x` ([`super::int8x4`]): per block, `d_k · d_x · Σ w·q` for the four.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn int8x4_q8_0(rows: [&[u8]; 4], x: &super::super::int8::Q8Row) -> [f32; 4] {
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm_setzero_ps();
        for (b, &dx) in x.d.iter().enumerate() {
            // SAFETY: activation block b and block b (34 bytes at 34·b) of each row lie within
            // them (the caller checked the rows hold as many blocks as `x`).
            let q = unsafe { load32(x.q.as_ptr().add(32 * b) as *const u8) };
            prefetch_next_group(rows[0], 4 * 34 * b, 4 * 34);
            let s = [0, 1, 2, 3].map(|k| unsafe { isum_q8_0(rows[k], 34 * b + 2, q, ones) });
            let d = _mm_mul_ps(unsafe { scales4(&rows, 34 * b) }, _mm_set1_ps(dx));
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sum4(s)), d, acc);
        }
        lanes4(acc)
    }

    /// Four Q4_0 rows times `x` ([`super::int8x4`]): the codes unsigned (0 ..= 15, so `maddubs`
    /// takes them as they are), `Σ (w − 8)·q = Σ w·q − 8·Σ q` with `Σ q` the row's block sum.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn int8x4_q4_0(rows: [&[u8]; 4], x: &super::super::int8::Q8Row) -> [f32; 4] {
        let (ones, low) = (_mm256_set1_epi16(1), _mm256_set1_epi8(0x0F));
        let mut acc = _mm_setzero_ps();
        for (b, (&dx, &sum)) in x.d.iter().zip(&x.sum).enumerate() {
            // SAFETY: activation block b and block b (18 bytes at 18·b) of each row lie within
            // them (the caller checked the rows hold as many blocks as `x`).
            let q = unsafe { load32(x.q.as_ptr().add(32 * b) as *const u8) };
            prefetch_next_group(rows[0], 4 * 18 * b, 4 * 18);
            let s = [0, 1, 2, 3].map(|k| unsafe { isum_q4_0(rows[k], 18 * b + 2, q, ones, low) });
            let sums = _mm_sub_epi32(sum4(s), _mm_set1_epi32(8 * sum));
            let d = _mm_mul_ps(unsafe { scales4(&rows, 18 * b) }, _mm_set1_ps(dx));
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), d, acc);
        }
        lanes4(acc)
    }

    /// A Q4_K row's code pair `pair` of super-block byte offset `at` (32 bytes: the low nibbles
    /// are sub-block 2·pair, the high ones 2·pair + 1) times activation codes `q1`, `q2`, as two
    /// vectors of eight i32 lane sums. The codes are unsigned: no sign moved.
    ///
    /// # Safety
    /// `row` has 32 bytes at `at + 16 + 32·pair`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn isum_q4k_pair(row: &[u8], at: usize, pair: usize, q: [__m256i; 2]) -> [__m256i; 2] {
        let (ones, low) = (_mm256_set1_epi16(1), _mm256_set1_epi8(0x0F));
        // SAFETY: the caller's.
        let codes = unsafe { load32(row.as_ptr().add(at + 16 + 32 * pair)) };
        let (lo, hi) = (_mm256_and_si256(codes, low), _mm256_and_si256(_mm256_srli_epi16(codes, 4), low));
        [
            _mm256_madd_epi16(_mm256_maddubs_epi16(lo, q[0]), ones),
            _mm256_madd_epi16(_mm256_maddubs_epi16(hi, q[1]), ones),
        ]
    }

    /// Four rows' eight lanes each, `s[r][j]`, as eight vectors of four: `[s[0][j], …, s[3][j]]`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn transpose4x8(s: [__m256; 4]) -> [__m128; 8] {
        let (t0, t1) = (_mm256_unpacklo_ps(s[0], s[1]), _mm256_unpackhi_ps(s[0], s[1]));
        let (t2, t3) = (_mm256_unpacklo_ps(s[2], s[3]), _mm256_unpackhi_ps(s[2], s[3]));
        // u[j] holds lane j of the four rows in its low half, lane j + 4 in its high half.
        let u = [
            _mm256_shuffle_ps::<0x44>(t0, t2),
            _mm256_shuffle_ps::<0xEE>(t0, t2),
            _mm256_shuffle_ps::<0x44>(t1, t3),
            _mm256_shuffle_ps::<0xEE>(t1, t3),
        ];
        std::array::from_fn(|j| if j < 4 { _mm256_castps256_ps128(u[j]) } else { _mm256_extractf128_ps::<1>(u[j - 4]) })
    }

    /// Four Q4_K rows times `x` ([`super::int8x4`]): per super-block, each row's sub-block
    /// multipliers times their activation blocks' scales, transposed so sub-block j's four
    /// multipliers are one vector; per sub-block the four rows' integer sums reduced together
    /// and scaled as one vector. The minimum term stays per row, eight lanes at once.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn int8x4_q4k(rows: [&[u8]; 4], x: &super::super::int8::Q8Row) -> [f32; 4] {
        let mut acc = _mm_setzero_ps();
        let mut minimums = [_mm256_setzero_ps(); 4];
        for sb in 0..x.d.len() / 8 {
            prefetch_next_group(rows[0], 4 * 144 * sb, 4 * 144);
            // SAFETY: activation blocks 8·sb .. + 8 lie in `x` (a super-block is 8 of them).
            let (dx, sums) = unsafe {
                (
                    _mm256_loadu_ps(x.d.as_ptr().add(8 * sb)),
                    _mm256_cvtepi32_ps(_mm256_loadu_si256(x.sum.as_ptr().add(8 * sb) as *const __m256i)),
                )
            };
            let at = 144 * sb;
            let mut scales = [_mm256_setzero_ps(); 4];
            for r in 0..4 {
                let (sc, mins) = q4k_multipliers(&rows[r][at..at + 144]);
                scales[r] = _mm256_mul_ps(sc, dx);
                minimums[r] = _mm256_fmadd_ps(_mm256_mul_ps(mins, dx), sums, minimums[r]);
            }
            let scales = transpose4x8(scales);
            for pair in 0..4 {
                let k = 8 * sb + 2 * pair;
                // SAFETY: activation blocks k, k + 1 lie in `x`; each row holds super-block sb
                // (the caller checked the rows hold as many blocks as `x`).
                let q = unsafe {
                    [load32(x.q.as_ptr().add(32 * k) as *const u8), load32(x.q.as_ptr().add(32 * k + 32) as *const u8)]
                };
                let s = [0, 1, 2, 3].map(|r| unsafe { isum_q4k_pair(rows[r], at, pair, q) });
                let (lo, hi) = (sum4(s.map(|s| s[0])), sum4(s.map(|s| s[1])));
                acc = _mm_fmadd_ps(_mm_cvtepi32_ps(lo), scales[2 * pair], acc);
                acc = _mm_fmadd_ps(_mm_cvtepi32_ps(hi), scales[2 * pair + 1], acc);
            }
        }
        let mins = _mm_set_ps(hsum(minimums[3]), hsum(minimums[2]), hsum(minimums[1]), hsum(minimums[0]));
        lanes4(_mm_sub_ps(acc, mins))
    }

    /// Per super-block: the sub-blocks' multipliers times their activation blocks' scales, eight
    /// lanes at once; the minimum term `Σ_j dmin·m_j · d_x · Σq` as one product of eight lanes.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn int8_q4k(row: &[u8], x: &super::super::int8::Q8Row) -> f32 {
        let (mut acc, mut minimums) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let low = _mm256_set1_epi8(0x0F);
        for (sb, b) in row.chunks_exact(144).enumerate() {
            let (scales, mins) = q4k_multipliers(b);
            // SAFETY: activation blocks 8·sb .. + 8 lie in the row (a super-block is 8 of them).
            let (dx, sums) = unsafe {
                (
                    _mm256_loadu_ps(x.d.as_ptr().add(8 * sb)),
                    _mm256_cvtepi32_ps(_mm256_loadu_si256(x.sum.as_ptr().add(8 * sb) as *const __m256i)),
                )
            };
            let scales = _mm256_mul_ps(scales, dx);
            minimums = _mm256_fmadd_ps(_mm256_mul_ps(mins, dx), sums, minimums);
            for pair in 0..4 {
                let (k1, k2) = (8 * sb + 2 * pair, 8 * sb + 2 * pair + 1);
                // SAFETY: code bytes 16 + 32·pair .. + 32 ≤ 144; activation blocks k1, k2 < row's.
                let (codes, q1, q2) = unsafe {
                    (
                        load32(b.as_ptr().add(16 + 32 * pair)),
                        load32(x.q.as_ptr().add(32 * k1) as *const u8),
                        load32(x.q.as_ptr().add(32 * k2) as *const u8),
                    )
                };
                let (lo, hi) = (_mm256_and_si256(codes, low), _mm256_and_si256(_mm256_srli_epi16(codes, 4), low));
                acc = _mm256_fmadd_ps(lane(scales, 2 * pair), isum(lo, q1), acc);
                acc = _mm256_fmadd_ps(lane(scales, 2 * pair + 1), isum(hi, q2), acc);
            }
        }
        hsum(acc) - hsum(minimums)
    }

    /// A Q6_K row times `x`: per group of 32 codes, the integer sums of its two sub-blocks of 16
    /// (the low four lanes and the high four) scaled by `d · (scale · d_x)`. A half's eight
    /// sub-block scales are widened to f32 once and each group's pair picked from them by one
    /// permute (as scalars, converted and multiplied one by one, they took as many instructions
    /// as the group's products).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn int8_q6k(row: &[u8], x: &super::super::int8::Q8Row) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let pick: [__m256i; 4] = std::array::from_fn(|j| {
            let (a, b) = (2 * j as i32, 2 * j as i32 + 1);
            _mm256_setr_epi32(a, a, a, a, b, b, b, b)
        });
        for (sb, b) in row.chunks_exact(210).enumerate() {
            let d = scale8(&b[208..210]);
            for half in 0..2 {
                // SAFETY: the half's eight scale bytes, 192 + 8·half ..+ 8, lie in the block.
                let scales = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(unsafe {
                    _mm_loadl_epi64(b.as_ptr().add(192 + 8 * half) as *const __m128i)
                }));
                for (j, w) in q6k_codes(b, half).into_iter().enumerate() {
                    // Group j of this half is activation block k: values 32j .. 32j + 32.
                    let k = 8 * sb + 4 * half + j;
                    // SAFETY: activation codes 32k .. 32k + 32 lie in the row.
                    let q = unsafe { load32(x.q.as_ptr().add(32 * k) as *const u8) };
                    let pair = _mm256_mul_ps(_mm256_permutevar8x32_ps(scales, pick[j]), _mm256_set1_ps(x.d[k]));
                    acc = _mm256_fmadd_ps(_mm256_mul_ps(d, pair), isum(w, q), acc);
                }
            }
        }
        hsum(acc)
    }

    /// Q6_K super-block `b`'s codes (−32 ..= 31) in half `half` (values 128·half ..+ 128), as
    /// four registers of 32 signed bytes: register `j` holds values `32j .. 32j + 32` of the half,
    /// the low nibbles of `ql` or their high ones, each with its two bits of `qh`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn q6k_codes(b: &[u8], half: usize) -> [__m256i; 4] {
        assert!(b.len() >= 192 && half < 2);
        let (m4, m2, k32) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(3), _mm256_set1_epi8(32));
        // SAFETY: ql bytes 64·half .. + 64 ≤ 128, qh bytes 128 + 32·half .. + 32 ≤ 192 (checked above).
        let (ql0, ql1, qh) = unsafe {
            let p = b.as_ptr();
            (
                _mm256_loadu_si256(p.add(64 * half) as *const __m256i),
                _mm256_loadu_si256(p.add(64 * half + 32) as *const __m256i),
                _mm256_loadu_si256(p.add(128 + 32 * half) as *const __m256i),
            )
        };
        let nibbles = [
            _mm256_and_si256(ql0, m4),
            _mm256_and_si256(ql1, m4),
            _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
            _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
        ];
        let pairs = [
            _mm256_and_si256(qh, m2),
            _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2),
            _mm256_and_si256(_mm256_srli_epi16(qh, 4), m2),
            _mm256_and_si256(_mm256_srli_epi16(qh, 6), m2),
        ];
        std::array::from_fn(|j| _mm256_sub_epi8(_mm256_or_si256(nibbles[j], _mm256_slli_epi16(pairs[j], 4)), k32))
    }

    /// Q6_K: each group of 32 codes is put together in one register — a nibble of `ql` and two
    /// bits of `qh` — less 32, then eight at a time widened to f32; a sub-block of 16 is one half
    /// of a group, scaled once.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q6k(row: &[u8], x: &[f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let f = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
        for (b, xs) in row.chunks_exact(210).zip(x.chunks_exact(256)) {
            let d = scale8(&b[208..210]);
            for half in 0..2 {
                for (j, q) in q6k_codes(b, half).into_iter().enumerate() {
                    for (h, q) in [_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)].into_iter().enumerate() {
                        let sub = 2 * j + h; // sub-block of this half: values 16·sub .. + 16
                        // SAFETY: values 128·half + 16·sub .. + 16 ≤ 256.
                        let (v0, v1) = unsafe {
                            let xp = xs.as_ptr().add(128 * half + 16 * sub);
                            (_mm256_loadu_ps(xp), _mm256_loadu_ps(xp.add(8)))
                        };
                        let s = _mm256_fmadd_ps(f(_mm_srli_si128(q, 8)), v1, _mm256_mul_ps(f(q), v0));
                        let sc = _mm256_mul_ps(d, _mm256_set1_ps(b[192 + 8 * half + sub] as i8 as f32));
                        acc = _mm256_fmadd_ps(sc, s, acc);
                    }
                }
            }
        }
        hsum(acc)
    }

    /// Each value `(d·sc) · q` as [`super::super::k_quants::dequantize_q6k`] computes it, the
    /// codes put together as [`dot_q6k`] does.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn decode_q6k(row: &[u8], out: &mut [f32]) {
        let f = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
        for (b, y) in row.chunks_exact(210).zip(out.chunks_exact_mut(256)) {
            let d = scale8(&b[208..210]);
            for half in 0..2 {
                for (j, q) in q6k_codes(b, half).into_iter().enumerate() {
                    for (h, q) in [_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)].into_iter().enumerate() {
                        let sub = 2 * j + h;
                        let sc = _mm256_mul_ps(d, _mm256_set1_ps(b[192 + 8 * half + sub] as i8 as f32));
                        // SAFETY: values 128·half + 16·sub .. + 16 ≤ 256.
                        unsafe {
                            let p = y.as_mut_ptr().add(128 * half + 16 * sub);
                            _mm256_storeu_ps(p, _mm256_mul_ps(sc, f(q)));
                            _mm256_storeu_ps(p.add(8), _mm256_mul_ps(sc, f(_mm_srli_si128(q, 8))));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    //! Every loop walks whole fixed-size chunks (`as_chunks`: blocks, 16 values, 32 codes), so
    //! the lengths are known where the values are read and no step checks a bound: V8 keeps
    //! the checks a slice index leaves, and on F16 they cost a third of the decode.
    use std::arch::wasm32::*;

    /// A block's f16 scale at the start of `b`.
    fn scale(b: &[u8]) -> f32 {
        super::super::f16(b)
    }

    fn hsum(v: v128) -> f32 {
        f32x4_extract_lane::<0>(v)
            + f32x4_extract_lane::<1>(v)
            + f32x4_extract_lane::<2>(v)
            + f32x4_extract_lane::<3>(v)
    }

    fn load(x: &[f32; 4]) -> v128 {
        // SAFETY: 4 readable f32s; v128_load has no alignment requirement.
        unsafe { v128_load(x.as_ptr() as *const v128) }
    }

    /// The `k`-th four of `x`.
    fn four<const N: usize>(x: &[f32; N], k: usize) -> v128 {
        load(x[4 * k..4 * k + 4].try_into().expect("four values"))
    }

    fn store(y: &mut [f32; 4], v: v128) {
        // SAFETY: 4 writable f32s; v128_store has no alignment requirement.
        unsafe { v128_store(y.as_mut_ptr() as *mut v128, v) }
    }

    fn bytes16(b: &[u8; 16]) -> v128 {
        // SAFETY: 16 readable bytes; v128_load has no alignment requirement.
        unsafe { v128_load(b.as_ptr() as *const v128) }
    }

    /// The 16 bytes of `b` from `at`.
    fn bytes_at<const N: usize>(b: &[u8; N], at: usize) -> v128 {
        bytes16(b[at..at + 16].try_into().expect("16 bytes"))
    }

    /// Sixteen 8-bit integers times 16 values of `x`.
    fn dot16(q16: v128, signed: bool, x: &[f32; 16]) -> v128 {
        let (a, b) = if signed {
            (i16x8_extend_low_i8x16(q16), i16x8_extend_high_i8x16(q16))
        } else {
            (u16x8_extend_low_u8x16(q16), u16x8_extend_high_u8x16(q16))
        };
        let f = |v: v128, lo: bool| {
            f32x4_convert_i32x4(if lo { i32x4_extend_low_i16x8(v) } else { i32x4_extend_high_i16x8(v) })
        };
        let mut s = f32x4_mul(f(a, true), four(x, 0));
        s = f32x4_add(s, f32x4_mul(f(a, false), four(x, 1)));
        s = f32x4_add(s, f32x4_mul(f(b, true), four(x, 2)));
        f32x4_add(s, f32x4_mul(f(b, false), four(x, 3)))
    }

    /// Half `h` (0 or 1) of 32 values.
    fn half16(x: &[f32; 32], h: usize) -> &[f32; 16] {
        x[16 * h..16 * h + 16].try_into().expect("16 values")
    }

    pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let ((ac, _), (bc, _)) = (a[..n].as_chunks::<8>(), b[..n].as_chunks::<8>());
        let (mut s0, mut s1) = (f32x4_splat(0.0), f32x4_splat(0.0));
        for (a, b) in ac.iter().zip(bc) {
            s0 = f32x4_add(s0, f32x4_mul(four(a, 0), four(b, 0)));
            s1 = f32x4_add(s1, f32x4_mul(four(a, 1), four(b, 1)));
        }
        let whole = ac.len() * 8;
        hsum(f32x4_add(s0, s1)) + a[whole..n].iter().zip(&b[whole..n]).map(|(x, y)| x * y).sum::<f32>()
    }

    pub fn dot4_f32(w: &[f32], x: [&[f32]; 4]) -> [f32; 4] {
        let (wc, _) = w.as_chunks::<4>();
        let xc = x.map(|x| &x.as_chunks::<4>().0[..wc.len()]);
        let mut s = [f32x4_splat(0.0); 4];
        for (i, wv) in wc.iter().enumerate() {
            let wv = load(wv);
            for k in 0..4 {
                s[k] = f32x4_add(s[k], f32x4_mul(wv, load(&xc[k][i])));
            }
        }
        let n = wc.len() * 4;
        std::array::from_fn(|k| hsum(s[k]) + w[n..].iter().zip(&x[k][n..]).map(|(a, b)| a * b).sum::<f32>())
    }

    /// Row `row` as blocks of `B` bytes beside `x` as blocks of `N` values.
    fn blocks<'a, const B: usize, T, const N: usize>(
        row: &'a [u8],
        x: &'a [T],
    ) -> impl Iterator<Item = (&'a [u8; B], &'a [T; N])> {
        row.as_chunks::<B>().0.iter().zip(x.as_chunks::<N>().0)
    }

    pub fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
        let mut acc = f32x4_splat(0.0);
        for (b, xs) in blocks::<34, f32, 32>(row, x) {
            let s = f32x4_add(dot16(bytes_at(b, 2), true, half16(xs, 0)), dot16(bytes_at(b, 18), true, half16(xs, 1)));
            acc = f32x4_add(acc, f32x4_mul(f32x4_splat(scale(b)), s));
        }
        hsum(acc)
    }

    pub fn dot_q4_0(row: &[u8], x: &[f32]) -> f32 {
        let mut acc = f32x4_splat(0.0);
        for (b, xs) in blocks::<18, f32, 32>(row, x) {
            let bytes = bytes_at(b, 2);
            // The codes less 8, as signed bytes (−8 ..= 7).
            let lo = i8x16_sub(v128_and(bytes, u8x16_splat(0x0F)), i8x16_splat(8));
            let hi = i8x16_sub(u8x16_shr(bytes, 4), i8x16_splat(8));
            let s = f32x4_add(dot16(lo, true, half16(xs, 0)), dot16(hi, true, half16(xs, 1)));
            acc = f32x4_add(acc, f32x4_mul(f32x4_splat(scale(b)), s));
        }
        hsum(acc)
    }

    /// Σ of 32 values, four lanes.
    fn sum32(x: &[f32; 32]) -> v128 {
        (1..8).fold(four(x, 0), |s, k| f32x4_add(s, four(x, k)))
    }

    /// The `k`-th 32 of 256 values.
    fn thirty_two<T>(x: &[T; 256], k: usize) -> &[T; 32] {
        x[32 * k..32 * k + 32].try_into().expect("32 values")
    }

    pub fn dot_q4k(row: &[u8], x: &[f32]) -> f32 {
        let mut acc = f32x4_splat(0.0);
        for (b, xs) in blocks::<144, f32, 256>(row, x) {
            let multipliers = super::super::k_quants::multipliers(b);
            for (pair, &[a1, a2, o1, o2]) in multipliers.iter().enumerate() {
                let (q0, q1) = (bytes_at(b, 16 + 32 * pair), bytes_at(b, 32 + 32 * pair));
                let (x1, x2) = (thirty_two(xs, 2 * pair), thirty_two(xs, 2 * pair + 1));
                // Codes 0..15: as signed bytes they are the same numbers.
                let lo = |v: v128| v128_and(v, u8x16_splat(0x0F));
                let s1 = f32x4_add(dot16(lo(q0), true, half16(x1, 0)), dot16(lo(q1), true, half16(x1, 1)));
                let s2 = f32x4_add(
                    dot16(u8x16_shr(q0, 4), true, half16(x2, 0)),
                    dot16(u8x16_shr(q1, 4), true, half16(x2, 1)),
                );
                acc = f32x4_add(acc, f32x4_mul(f32x4_splat(a1), s1));
                acc = f32x4_add(acc, f32x4_mul(f32x4_splat(a2), s2));
                acc = f32x4_add(acc, f32x4_mul(f32x4_splat(o1), sum32(x1)));
                acc = f32x4_add(acc, f32x4_mul(f32x4_splat(o2), sum32(x2)));
            }
        }
        hsum(acc)
    }

    /// Q6_K's codes `l = 16h .. 16h + 16` of the four groups of 32 in half `half` of block `b`,
    /// as signed bytes (code − 32), with each one's sub-block index.
    fn q6k_codes(b: &[u8; 210], half: usize, h: usize) -> [(v128, usize); 4] {
        let (m4, m2) = (u8x16_splat(0x0F), u8x16_splat(3));
        let ql0 = bytes_at(b, 64 * half + 16 * h);
        let ql1 = bytes_at(b, 64 * half + 32 + 16 * h);
        let qh = bytes_at(b, 128 + 32 * half + 16 * h);
        let nibbles = [v128_and(ql0, m4), v128_and(ql1, m4), u8x16_shr(ql0, 4), u8x16_shr(ql1, 4)];
        std::array::from_fn(|j| {
            let pair = v128_and(u8x16_shr(qh, 2 * j as u32), m2);
            (i8x16_sub(v128_or(nibbles[j], i8x16_shl(pair, 4)), i8x16_splat(32)), 2 * j + h)
        })
    }

    /// Q6_K as the AVX2 kernel puts it together, 16 codes per register.
    pub fn dot_q6k(row: &[u8], x: &[f32]) -> f32 {
        let mut acc = f32x4_splat(0.0);
        for (b, xs) in blocks::<210, f32, 256>(row, x) {
            let d = scale(&b[208..210]);
            for half in 0..2 {
                for h in 0..2 {
                    for (q, sub) in q6k_codes(b, half, h) {
                        let at = 128 * half + 16 * sub;
                        let s = dot16(q, true, xs[at..at + 16].try_into().expect("16 values"));
                        let sc = d * b[192 + 8 * half + sub] as i8 as f32;
                        acc = f32x4_add(acc, f32x4_mul(f32x4_splat(sc), s));
                    }
                }
            }
        }
        hsum(acc)
    }

    /// 16-bit values widened to f32 by `widen` (four lanes at a time), times `x`, 16 a step;
    /// the tail (fewer than 16) in plain code.
    fn dot_16(row: &[u8], x: &[f32], widen: impl Fn(v128) -> v128, one: fn(&[u8]) -> f32) -> f32 {
        // Four sums, so each add waits only for its own previous one.
        let mut a = [f32x4_splat(0.0); 4];
        let mut steps = 0;
        for (w, xs) in blocks::<32, f32, 16>(row, x) {
            for k in 0..2 {
                let h = bytes_at(w, 16 * k);
                let (lo, hi) = (i32x4_extend_low_i16x8(h), i32x4_extend_high_i16x8(h));
                a[2 * k] = f32x4_add(a[2 * k], f32x4_mul(widen(lo), four(xs, 2 * k)));
                a[2 * k + 1] = f32x4_add(a[2 * k + 1], f32x4_mul(widen(hi), four(xs, 2 * k + 1)));
            }
            steps += 1;
        }
        let (i, n) = (16 * steps, x.len().min(row.len() / 2));
        hsum(f32x4_add(f32x4_add(a[0], a[1]), f32x4_add(a[2], a[3])))
            + (i..n).map(|j| one(&row[2 * j..2 * j + 2]) * x[j]).sum::<f32>()
    }

    /// Four f16s (sign-extended into 32-bit lanes) as f32s: shifted by 13, the sign lands on
    /// f32's and the exponent and mantissa in their places (the sign's copies in bits 28–30 are
    /// masked off), then times 2¹¹² (the exponents' bias difference, which also gets subnormals
    /// right; the sign multiplies through). wasm has no f16 conversion. (Infinities and NaN are
    /// refused at load.)
    fn widen_f16_lanes(h: v128) -> v128 {
        let bits = v128_and(i32x4_shl(h, 13), u32x4_splat(0x8FFF_E000));
        f32x4_mul(bits, f32x4_splat(f32::from_bits(0x7780_0000)))
    }

    pub fn dot_f16(row: &[u8], x: &[f32]) -> f32 {
        dot_16(row, x, widen_f16_lanes, super::super::f16)
    }

    pub fn dot_bf16(row: &[u8], x: &[f32]) -> f32 {
        dot_16(row, x, |h| i32x4_shl(h, 16), |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
    }

    fn widen_16(row: &[u8], out: &mut [f32], widen: impl Fn(v128) -> v128, one: fn(&[u8]) -> f32) {
        let (oc, _) = out.as_chunks_mut::<8>();
        let whole = oc.len() * 8;
        for (w, o) in row.as_chunks::<16>().0.iter().zip(oc) {
            let w = bytes16(w);
            let (lo, hi) = (widen(i32x4_extend_low_i16x8(w)), widen(i32x4_extend_high_i16x8(w)));
            let (a, b) = o.split_at_mut(4);
            store(a.try_into().expect("four"), lo);
            store(b.try_into().expect("four"), hi);
        }
        for j in whole..out.len() {
            out[j] = one(&row[2 * j..2 * j + 2]);
        }
    }

    pub fn widen_f16(row: &[u8], out: &mut [f32]) {
        widen_16(row, out, widen_f16_lanes, |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
    }

    pub fn widen_bf16(row: &[u8], out: &mut [f32]) {
        widen_16(row, out, |h| i32x4_shl(h, 16), |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
    }

    /// Sixteen 8-bit integers (widened to i16 halves by the caller) as f32s times `d`, stored.
    fn store16(a: v128, b: v128, d: v128, y: &mut [f32; 16]) {
        let f = |v: v128, lo: bool| {
            f32x4_mul(f32x4_convert_i32x4(if lo { i32x4_extend_low_i16x8(v) } else { i32x4_extend_high_i16x8(v) }), d)
        };
        let (y, _) = y.as_chunks_mut::<4>();
        store(&mut y[0], f(a, true));
        store(&mut y[1], f(a, false));
        store(&mut y[2], f(b, true));
        store(&mut y[3], f(b, false));
    }

    /// Half `h` of 32 values to write.
    fn half16_mut(y: &mut [f32; 32], h: usize) -> &mut [f32; 16] {
        (&mut y[16 * h..16 * h + 16]).try_into().expect("16 values")
    }

    pub fn decode_q8_0(row: &[u8], out: &mut [f32]) {
        for (b, y) in row.as_chunks::<34>().0.iter().zip(out.as_chunks_mut::<32>().0) {
            let d = f32x4_splat(scale(b));
            for k in 0..2 {
                let q = bytes_at(b, 2 + 16 * k);
                store16(i16x8_extend_low_i8x16(q), i16x8_extend_high_i8x16(q), d, half16_mut(y, k));
            }
        }
    }

    pub fn decode_q4_0(row: &[u8], out: &mut [f32]) {
        for (b, y) in row.as_chunks::<18>().0.iter().zip(out.as_chunks_mut::<32>().0) {
            let d = f32x4_splat(scale(b));
            let bytes = bytes_at(b, 2);
            let eight = i16x8_splat(8);
            for (k, nibbles) in [v128_and(bytes, u8x16_splat(0x0F)), u8x16_shr(bytes, 4)].into_iter().enumerate() {
                let (a, c) = (u16x8_extend_low_u8x16(nibbles), u16x8_extend_high_u8x16(nibbles));
                store16(i16x8_sub(a, eight), i16x8_sub(c, eight), d, half16_mut(y, k));
            }
        }
    }

    /// Each value `d·sc · q − dmin·m` as [`super::super::k_quants::dequantize_q4k`] computes it
    /// (`multipliers` holds `−dmin·m`: a product, then a sum — the same bits).
    pub fn decode_q4k(row: &[u8], out: &mut [f32]) {
        for (b, y) in row.as_chunks::<144>().0.iter().zip(out.as_chunks_mut::<256>().0) {
            let multipliers = super::super::k_quants::multipliers(b);
            for (pair, &[a1, a2, o1, o2]) in multipliers.iter().enumerate() {
                for h in 0..2 {
                    let q = bytes_at(b, 16 + 32 * pair + 16 * h);
                    let (lo, hi) = (v128_and(q, u8x16_splat(0x0F)), u8x16_shr(q, 4));
                    for (codes, a, o, at) in [(lo, a1, o1, 64 * pair + 16 * h), (hi, a2, o2, 64 * pair + 32 + 16 * h)] {
                        let y: &mut [f32; 16] = (&mut y[at..at + 16]).try_into().expect("16 values");
                        let (y, _) = y.as_chunks_mut::<4>();
                        let (a, o) = (f32x4_splat(a), f32x4_splat(o));
                        let (c0, c1) = (u16x8_extend_low_u8x16(codes), u16x8_extend_high_u8x16(codes));
                        for (k, v) in [
                            u32x4_extend_low_u16x8(c0),
                            u32x4_extend_high_u16x8(c0),
                            u32x4_extend_low_u16x8(c1),
                            u32x4_extend_high_u16x8(c1),
                        ]
                        .into_iter()
                        .enumerate()
                        {
                            store(&mut y[k], f32x4_add(f32x4_mul(a, f32x4_convert_i32x4(v)), o));
                        }
                    }
                }
            }
        }
    }

    /// Each value `(d·sc) · q` as [`super::super::k_quants::dequantize_q6k`] computes it.
    pub fn decode_q6k(row: &[u8], out: &mut [f32]) {
        for (b, y) in row.as_chunks::<210>().0.iter().zip(out.as_chunks_mut::<256>().0) {
            let d = scale(&b[208..210]);
            for half in 0..2 {
                for h in 0..2 {
                    for (q, sub) in q6k_codes(b, half, h) {
                        let sc = f32x4_splat(d * b[192 + 8 * half + sub] as i8 as f32);
                        let at = 128 * half + 16 * sub;
                        let y: &mut [f32; 16] = (&mut y[at..at + 16]).try_into().expect("16 values");
                        store16(i16x8_extend_low_i8x16(q), i16x8_extend_high_i8x16(q), sc, y);
                    }
                }
            }
        }
    }

    /// `acc + scale · (four i32 lanes as f32)`.
    fn scaled(acc: v128, scale: f32, lanes: v128) -> v128 {
        f32x4_add(acc, f32x4_mul(f32x4_splat(scale), f32x4_convert_i32x4(lanes)))
    }

    /// The eight 16-bit codes of `q` from `at`.
    fn codes8(q: &[i16; 32], at: usize) -> v128 {
        let q: &[i16; 8] = q[at..at + 8].try_into().expect("8 codes");
        // SAFETY: 16 readable bytes; v128_load has no alignment requirement.
        unsafe { v128_load(q.as_ptr() as *const v128) }
    }

    /// `Σ w·q` of 16 weight codes (widened to 16 bits: `signed` or not) and the activation codes
    /// `q[at .. at + 16]` (widened once per row: `Q8Row::q16`), as four i32 lane sums: two
    /// `i32x4.dot_i16x8` (x86's `pmaddwd`). Exact: a pair of products is at most 2 · 128 · 127.
    /// SIMD128 has no 8-bit multiply-add; `i16x8.extmul` of the 8-bit codes, which V8 lowers to
    /// a sign extension of both operands and a multiply, decoded Q4_0 and Q8_0 6–8 % slower in
    /// Chromium (`benches/browser_cpu.sh`), and widening the activations for every weight row
    /// slower still.
    fn isum16_wide(w: v128, signed: bool, q: &[i16; 32], at: usize) -> v128 {
        let (lo, hi) = if signed {
            (i16x8_extend_low_i8x16(w), i16x8_extend_high_i8x16(w))
        } else {
            (u16x8_extend_low_u8x16(w), u16x8_extend_high_u8x16(w))
        };
        i32x4_add(i32x4_dot_i16x8(lo, codes8(q, at)), i32x4_dot_i16x8(hi, codes8(q, at + 8)))
    }

    /// Four blocks' sums (four i32 lanes each) reduced: lane `k` holds block `k`'s sum.
    fn reduce4([a, b, c, d]: [v128; 4]) -> v128 {
        // [a0+a2, b0+b2, a1+a3, b1+b3], then the same of c and d, then the halves added.
        let ab = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b));
        let cd = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(c, d), i32x4_shuffle::<2, 6, 3, 7>(c, d));
        i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(ab, cd), i32x4_shuffle::<2, 3, 6, 7>(ab, cd))
    }

    /// Four f16 scales as f32 lanes: [`super::super::f16_to_f32`]'s steps for a finite f16 (a
    /// normal or subnormal one scaled by 2¹¹² into place), so its bits. Blocks' scales are
    /// finite (`Blocks::new` refuses others: `first_non_finite_scale`), so the lines that make
    /// an infinity or a NaN are left out: six operations of the four blocks' thirty-odd.
    fn scales4(h: [u16; 4]) -> v128 {
        let h = u32x4(h[0] as u32, h[1] as u32, h[2] as u32, h[3] as u32);
        let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
        let magnitude = v128_and(h, u32x4_splat(0x7FFF));
        let scaled = f32x4_mul(i32x4_shl(magnitude, 13), f32x4_splat(f32::from_bits(0x7780_0000)));
        v128_or(scaled, sign)
    }

    /// `Σ_blocks scale · d_x · (Σ w·q − offset · Σq)` over a row of 32-code blocks of `B` bytes
    /// (`B4` = 4 `B`), the f16 scale first, `isum` giving a block's `Σ w·q` as four i32 lanes.
    /// Four blocks at a time: their sums reduced into one vector's lanes, their four scales
    /// widened and multiplied by the activations' in one vector each — per block, one
    /// conversion, multiply and add where each block took its own, and no scalar f16 conversion
    /// (SmolLM2's decode in node's V8, `benches/wasm_in_node.mjs`, interleaved: Q4_0 67–69 →
    /// 74–85 tokens/s, Q8_0 64–72 → 83–91). The last blocks (fewer than four) one by one.
    /// `codes`: the activation codes the blocks' codes multiply (`Q8Row::q16` or
    /// `q16_low16`); each block's `Σ w·q` is shifted right by `SHIFT` (exactly: `isum` gives it
    /// `2^SHIFT` times over).
    fn int8_rows_of_blocks<const B: usize, const B4: usize, const SHIFT: u32>(
        row: &[u8],
        x: &super::super::int8::Q8Row,
        codes: &[i16],
        offset: i32,
        isum: impl Fn(&[u8; B], &[i16; 32]) -> v128,
    ) -> f32 {
        let mut acc = f32x4_splat(0.0);
        let quads = blocks::<B4, i16, 128>(row, codes).zip(x.d.as_chunks::<4>().0).zip(x.sum.as_chunks::<4>().0);
        let mut n = 0;
        for (((b4, q4), d4), sum4) in quads {
            let (bs, qs) = (b4.as_chunks::<B>().0, q4.as_chunks::<32>().0);
            let sums = i32x4_shr(reduce4(std::array::from_fn(|k| isum(&bs[k], &qs[k]))), SHIFT);
            // SAFETY: 16 readable bytes each; v128_load has no alignment requirement.
            let (d4, sum4) =
                unsafe { (v128_load(d4.as_ptr() as *const v128), v128_load(sum4.as_ptr() as *const v128)) };
            let sums = i32x4_sub(sums, i32x4_mul(sum4, i32x4_splat(offset)));
            let scales = f32x4_mul(scales4(std::array::from_fn(|k| u16::from_le_bytes([bs[k][0], bs[k][1]]))), d4);
            acc = f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(sums), scales));
            n += 4;
        }
        let tail = blocks::<B, i16, 32>(&row[n * B..], &codes[n * 32..]).zip(&x.d[n..]).zip(&x.sum[n..]);
        let mut rest = 0f32;
        for (((b, q), dx), sum) in tail {
            let s = isum(b, q);
            let s = i32x4_extract_lane::<0>(s)
                + i32x4_extract_lane::<1>(s)
                + i32x4_extract_lane::<2>(s)
                + i32x4_extract_lane::<3>(s);
            let s = s >> SHIFT;
            rest += scale(b) * dx * (s - offset * sum) as f32;
        }
        hsum(acc) + rest
    }

    pub fn int8_q8_0(row: &[u8], x: &super::super::int8::Q8Row) -> f32 {
        int8_rows_of_blocks::<34, 136, 0>(row, x, &x.q16, 0, |b, q| {
            i32x4_add(isum16_wide(bytes_at(b, 2), true, q, 0), isum16_wide(bytes_at(b, 18), true, q, 16))
        })
    }

    /// The codes as they are stored (0 ..= 15), the 8 they are less taken off once per block as
    /// `8 · Σq` (the activation block's code sum). The high codes are taken as `byte & 0xF0`
    /// against the plain activation codes and the low ones against codes times 16
    /// (`Q8Row::q16_low16`): each block's sum 16 times over, shifted back exactly.
    pub fn int8_q4_0(row: &[u8], x: &super::super::int8::Q8Row) -> f32 {
        int8_rows_of_blocks::<18, 72, 4>(row, x, &x.q16_low16, 8, |b, q| {
            let bytes = bytes_at(b, 2);
            let (low, high) = (v128_and(bytes, u8x16_splat(0x0F)), v128_and(bytes, u8x16_splat(0xF0)));
            i32x4_add(isum16_wide(low, false, q, 0), isum16_wide(high, false, q, 16))
        })
    }

    pub fn int8_q4k(row: &[u8], x: &super::super::int8::Q8Row) -> f32 {
        let mut acc = f32x4_splat(0.0);
        let mut minimums = 0f32;
        let blocks = blocks::<144, i16, 256>(row, &x.q16).zip(x.d.as_chunks::<8>().0).zip(x.sum.as_chunks::<8>().0);
        for (((b, q), d), sum) in blocks {
            let multipliers = super::super::k_quants::multipliers(b);
            for (pair, &[a1, a2, o1, o2]) in multipliers.iter().enumerate() {
                let (k1, k2) = (2 * pair, 2 * pair + 1);
                let (c0, c1) = (bytes_at(b, 16 + 32 * pair), bytes_at(b, 32 + 32 * pair));
                let lo = |v: v128| v128_and(v, u8x16_splat(0x0F));
                let (q1, q2) = (thirty_two(q, k1), thirty_two(q, k2));
                let s1 = i32x4_add(isum16_wide(lo(c0), false, q1, 0), isum16_wide(lo(c1), false, q1, 16));
                let s2 = i32x4_add(
                    isum16_wide(u8x16_shr(c0, 4), false, q2, 0),
                    isum16_wide(u8x16_shr(c1, 4), false, q2, 16),
                );
                acc = scaled(acc, a1 * d[k1], s1);
                acc = scaled(acc, a2 * d[k2], s2);
                minimums += o1 * d[k1] * sum[k1] as f32 + o2 * d[k2] * sum[k2] as f32;
            }
        }
        hsum(acc) + minimums
    }

    pub fn int8_q6k(row: &[u8], x: &super::super::int8::Q8Row) -> f32 {
        let mut acc = f32x4_splat(0.0);
        for ((b, q), d8) in blocks::<210, i16, 256>(row, &x.q16).zip(x.d.as_chunks::<8>().0) {
            let d = scale(&b[208..210]);
            for half in 0..2 {
                for h in 0..2 {
                    for (w, sub) in q6k_codes(b, half, h) {
                        let k = 4 * half + sub / 2;
                        let s = isum16_wide(w, true, thirty_two(q, k), 16 * h);
                        acc = scaled(acc, d * b[192 + 8 * half + sub] as i8 as f32 * d8[k], s);
                    }
                }
            }
        }
        hsum(acc)
    }
}
