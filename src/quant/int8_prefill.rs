//! Prefill's integer product for 4-bit weights (Q4_0, Q4_K): a prompt's rows quantized to 8 bits
//! once ([`Q8Row`], as decode's), then eight weight rows at a time against four prompt rows at a
//! time (sixteen against eight with AVX-512), every block product summed in integers —
//! llama.cpp's `gemm_q4_0_8x8_q8_0` idea, with the rows interleaved per call instead of in a
//! repacked copy of the matrix kept in memory.
//!
//! **Math.** Both types are, per block of 32 inputs, `w = scale·c + offset` with codes `c` in
//! 0 ..= 15: Q4_0 `scale = d`, `offset = −8d`; Q4_K per sub-block `scale = d·sc`, `offset =
//! −dmin·m`. With the activations `x ≈ d_x·q`, a block's product is
//! `d_x · (scale · Σ c·q + offset · Σ q)`; `Σ c·q` is the integer part, `Σ q` is kept per block.
//!
//! **Layout** (a [`Panel`]): per block of 32 inputs, eight groups of four inputs; a group is the
//! eight rows' four codes one after another (`[group][row][4]`, 32 bytes). So one `maddubs`
//! of a group with an activation row's four codes broadcast gives, in each 32-bit lane, one
//! row's four products: a block's eight groups summed lane by lane are the eight rows' block
//! sums, with no horizontal reduction. The 16-bit partial sums cannot overflow: each of a
//! lane's two halves adds 16 products of at most 15·127 (30,480 < 32,767).
//!
//! **Dispatch.** x86-64 with AVX2 and FMA (the check every x86 kernel here shares,
//! `simd::has_avx2_fma_f16c`): [`linear`], two panels at a time in 512-bit registers with
//! `vpdpbusd` where the CPU also has AVX-512 VNNI (the same bits); elsewhere it returns false and the caller
//! decodes each row to f32 once ([`crate::cpu::ops::linear_rows`]). Tasks own panels of weight
//! rows; each output is its own sum in a fixed order of blocks, whatever the thread count or the
//! rows beside it.

use super::GgmlType;
use super::int8::Q8Row;
use super::matrix::Blocks;
use crate::cpu::ops::{for_each_item, rows_per_task};

/// Weight rows per panel.
const ROWS: usize = 8;
/// Prompt rows per call of the AVX2 kernel ([`x86::panel_x4`]).
#[cfg(target_arch = "x86_64")]
const XROWS: usize = 4;
/// Prompt rows per call of the AVX-512 kernel ([`x86::panels_wide`]): eight rows' sums in
/// registers, so each group of codes loaded (and its two halves joined) serves eight products.
const WIDE_XROWS: usize = 8;

/// Eight weight rows as the kernel reads them (see the module's layout).
#[derive(Default)]
struct Panel {
    /// 256 codes per block: `[group][row][4]`.
    codes: Vec<u8>,
    /// Per block, the eight rows' scales, then their offsets: `[block][row]`.
    scale: Vec<f32>,
    offset: Vec<f32>,
}

impl Panel {
    /// `rows` (whole rows of `ty` blocks, `blocks` blocks of 32 each) laid out for the kernel,
    /// asking for the bytes `next` (the rows packed next) into the cache on the way.
    fn pack(&mut self, ty: GgmlType, rows: [&[u8]; ROWS], blocks: usize, next: &[u8]) {
        self.codes.resize(256 * blocks, 0);
        self.scale.resize(ROWS * blocks, 0.0);
        self.offset.resize(ROWS * blocks, 0.0);
        // Q4_0's scales are converted eight at a time where its codes are laid out.
        if ty == GgmlType::Q4K {
            for (r, row) in rows.iter().enumerate() {
                for (sb, block) in row.chunks_exact(144).enumerate() {
                    for (pair, [a1, a2, o1, o2]) in super::k_quants::multipliers(block).into_iter().enumerate() {
                        let b = 8 * sb + 2 * pair;
                        (self.scale[ROWS * b + r], self.offset[ROWS * b + r]) = (a1, o1);
                        (self.scale[ROWS * (b + 1) + r], self.offset[ROWS * (b + 1) + r]) = (a2, o2);
                    }
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `linear` runs only where the CPU has AVX2, FMA and F16C; each row holds `blocks`
        // blocks of `ty`.
        unsafe {
            x86::pack_codes(ty, rows, blocks, self, next)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = next;
    }
}

/// `out[i, o] = x[i, :] · row o (+ bias[o])` for a matrix of Q4_0 or Q4_K blocks and several
/// rows of `x`, in integers (see the module). False, with `out` untouched, where this CPU has no
/// kernel or `ty` is another type.
pub fn linear(m: &Blocks, out: &mut [f32], x: &[f32], bias: Option<&[f32]>) -> bool {
    linear_many(&[m], &mut [out], x, &[bias])
}

/// [`linear`] for several matrices of as many columns that read the same `x` (a layer's q, k
/// and v): `x` quantized once, and all their tasks one parallel region. False, with `outs`
/// untouched, unless every matrix is Q4_0 or Q4_K and this CPU has the kernel.
pub fn linear_many(ms: &[&Blocks], outs: &mut [&mut [f32]], x: &[f32], biases: &[Option<&[f32]>]) -> bool {
    if ms.iter().any(|m| !matches!(m.ty, GgmlType::Q4_0 | GgmlType::Q4K) || m.cols != ms[0].cols) || !available() {
        return false;
    }
    let n_in = ms[0].cols;
    let (n, blocks) = (x.len() / n_in, n_in / 32);
    let mut q = Q8Row::default();
    q.quantize(x);
    // `d_x · Σ q` per activation block: the offsets' multiplier.
    let d_sum: Vec<f32> = q.d.iter().zip(&q.sum).map(|(d, &s)| d * s as f32).collect();
    // Two panels (sixteen rows) at a time where the kernel takes them in 512-bit registers.
    let wide = wide_available();
    let step = if wide { 2 * ROWS } else { ROWS };
    let per_task: Vec<usize> = ms.iter().map(|m| rows_per_task(m.rows).next_multiple_of(step)).collect();
    // Each task's products, `[n, its rows]`, then laid out by row of `x`.
    let mut by_task: Vec<Vec<f32>> = ms.iter().map(|m| vec![0f32; n * m.rows]).collect();
    let mut tasks = Vec::new();
    for ((m, per_task), buf) in ms.iter().zip(&per_task).zip(&mut by_task) {
        tasks.extend(buf.chunks_mut(per_task * n).enumerate().map(|(t, o)| (*m, t * per_task, o)));
    }
    for_each_item(tasks, |(m, r0, o)| {
        let rows = o.len() / n;
        let mut panels = [Panel::default(), Panel::default()];
        for p in (0..rows).step_by(step) {
            // A last panel of fewer rows repeats its last one (each result is its own row's).
            let width = (rows - p).min(step);
            let row = |k: usize| m.row(r0 + p + k.min(width - 1));
            // The next panels' rows, each panel asking for half of them as it is packed.
            let next = r0 + p + width..r0 + p + width + (rows - p - width).min(step);
            let next = &m.data[next.start * m.row_bytes()..next.end * m.row_bytes()];
            let (next0, next1) = if wide { next.split_at(next.len() / 2) } else { (next, &[][..]) };
            panels[0].pack(m.ty, std::array::from_fn(row), blocks, next0);
            if wide {
                panels[1].pack(m.ty, std::array::from_fn(|k| row(ROWS + k)), blocks, next1);
            }
            for i0 in (0..n).step_by(WIDE_XROWS) {
                let height = (n - i0).min(WIDE_XROWS);
                let xrows = std::array::from_fn(|k| i0 + k.min(height - 1));
                let sums = kernel(&panels, wide, &q, &d_sum, xrows, blocks);
                for (i, s) in sums.iter().enumerate().take(height) {
                    o[(i0 + i) * rows + p..][..width].copy_from_slice(&s[..width]);
                }
            }
        }
    });
    for (((m, out), (buf, per_task)), bias) in
        ms.iter().zip(outs.iter_mut()).zip(by_task.iter().zip(&per_task)).zip(biases)
    {
        for (t, chunk) in buf.chunks(per_task * n).enumerate() {
            let (r0, rows) = (t * per_task, chunk.len() / n);
            for (i, src) in chunk.chunks_exact(rows).enumerate() {
                let dst = &mut out[i * m.rows + r0..][..rows];
                dst.copy_from_slice(src);
                if let Some(b) = bias {
                    dst.iter_mut().zip(&b[r0..]).for_each(|(v, b)| *v += b);
                }
            }
        }
    }
    true
}

/// The products of prompt rows `xrows` with the first panel ([`x86::panel_x4`], eight rows, four
/// prompt rows a call), or with both where `wide` ([`x86::panels_wide`], sixteen rows, eight
/// prompt rows a call): `[prompt row][weight row]`.
fn kernel(
    panels: &[Panel; 2],
    wide: bool,
    q: &Q8Row,
    d_sum: &[f32],
    xrows: [usize; WIDE_XROWS],
    blocks: usize,
) -> [[f32; 2 * ROWS]; WIDE_XROWS] {
    #[cfg(target_arch = "x86_64")]
    {
        if wide {
            // SAFETY: `wide` only where `wide_available()`; the lengths are the kernel's asserts.
            return unsafe { x86::panels_wide(panels, q, d_sum, xrows, blocks) };
        }
        let mut out = [[0f32; 2 * ROWS]; WIDE_XROWS];
        // Four prompt rows a call, as many calls as there are rows (the rest repeat the last).
        let calls = (xrows.windows(2).take_while(|w| w[0] != w[1]).count() + 1).div_ceil(XROWS);
        for (half, out) in out.chunks_exact_mut(XROWS).enumerate().take(calls) {
            let four = std::array::from_fn(|k| xrows[XROWS * half + k]);
            // SAFETY: `linear` calls this only where `available()`; the lengths are the kernel's asserts.
            let eight = unsafe { x86::panel_x4(&panels[0], q, d_sum, four, blocks) };
            for (o, e) in out.iter_mut().zip(eight) {
                o[..ROWS].copy_from_slice(&e);
            }
        }
        out
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (panels, wide, q, d_sum, xrows, blocks);
        unreachable!("`linear` returns before any kernel where there is none")
    }
}

fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::simd::has_avx2_fma_f16c();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// AVX-512 with VNNI: sixteen weight rows per instruction, each lane's four products summed by
/// one `vpdpbusd`.
fn wide_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return available()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vnni");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Panel, Q8Row, ROWS, WIDE_XROWS, XROWS};
    use crate::quant::GgmlType;

    /// Each row's codes of block `b` (32 values, 0 ..= 15, in input order) as eight 32-bit
    /// groups of four, transposed so group g holds the eight rows' g-th four: the panel's layout.
    /// For Q4_0 also the block's eight scales `d` (one F16C conversion) and offsets `−8d`.
    ///
    /// Each block also asks for its share of `next` into the cache: the next panel's rows,
    /// fetched while this one is packed and multiplied. The eight rows here are short streams
    /// the hardware prefetcher learns late, and the Q4_0 scales, the first bytes read of each
    /// block, waited on memory for half the packing's time without it. Spread over the blocks,
    /// not asked for at once: a burst of prefetches waits for the core's free line buffers.
    ///
    /// # Safety
    /// AVX2 and F16C; each row holds `blocks` blocks of `ty` (Q4_0 or Q4_K), the panel's `codes`
    /// 256 bytes per block, its `scale` and `offset` eight values per block.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn pack_codes(ty: GgmlType, rows: [&[u8]; ROWS], blocks: usize, panel: &mut Panel, next: &[u8]) {
        let codes = &mut panel.codes;
        assert!(codes.len() >= 256 * blocks);
        assert!(panel.scale.len() >= ROWS * blocks && panel.offset.len() >= ROWS * blocks);
        let low = _mm256_set1_epi8(0x0F);
        let share = next.len().div_ceil(blocks.max(1));
        for b in 0..blocks {
            crate::quant::simd::prefetch(&next[(share * b).min(next.len())..(share * (b + 1)).min(next.len())]);
            if ty == GgmlType::Q4_0 {
                let d: [u16; ROWS] =
                    std::array::from_fn(|r| u16::from_le_bytes([rows[r][18 * b], rows[r][18 * b + 1]]));
                // SAFETY: sixteen bytes read, eight f32s stored at ROWS·b, inside the lengths checked.
                unsafe {
                    let d = _mm256_cvtph_ps(_mm_loadu_si128(d.as_ptr() as *const __m128i));
                    _mm256_storeu_ps(panel.scale.as_mut_ptr().add(ROWS * b), d);
                    _mm256_storeu_ps(panel.offset.as_mut_ptr().add(ROWS * b), _mm256_mul_ps(d, _mm256_set1_ps(-8.0)));
                }
            }
            let c: [__m256i; ROWS] = std::array::from_fn(|r| {
                let row = rows[r];
                match ty {
                    // 16 bytes after the scale: values 0..16 in the low nibbles, 16..32 high.
                    GgmlType::Q4_0 => {
                        assert!(row.len() >= 18 * b + 18);
                        // SAFETY: 16 bytes at 18·b + 2, checked.
                        let v = unsafe { _mm_loadu_si128(row.as_ptr().add(18 * b + 2) as *const __m128i) };
                        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), low)
                    }
                    // Sub-block b % 8 of super-block b / 8: the low (even) or high (odd) nibbles
                    // of the 32 bytes of its pair.
                    _ => {
                        let at = 144 * (b / 8) + 16 + 32 * (b % 8 / 2);
                        assert!(row.len() >= at + 32);
                        // SAFETY: 32 bytes at `at`, checked.
                        let v = unsafe { _mm256_loadu_si256(row.as_ptr().add(at) as *const __m256i) };
                        let v = if b % 2 == 0 { v } else { _mm256_srli_epi16(v, 4) };
                        _mm256_and_si256(v, low)
                    }
                }
            });
            // An 8×8 transpose of 32-bit words.
            let t =
                [0, 2, 4, 6].map(|k| (_mm256_unpacklo_epi32(c[k], c[k + 1]), _mm256_unpackhi_epi32(c[k], c[k + 1])));
            let u = |a: (__m256i, __m256i), b: (__m256i, __m256i)| {
                [
                    _mm256_unpacklo_epi64(a.0, b.0),
                    _mm256_unpackhi_epi64(a.0, b.0),
                    _mm256_unpacklo_epi64(a.1, b.1),
                    _mm256_unpackhi_epi64(a.1, b.1),
                ]
            };
            // Rows 0–3's words g and g + 4, and rows 4–7's.
            let (lo, hi) = (u(t[0], t[1]), u(t[2], t[3]));
            let out = codes[256 * b..256 * b + 256].as_mut_ptr() as *mut __m256i;
            for g in 0..4 {
                // SAFETY: eight 32-byte stores inside this block's 256 bytes.
                unsafe {
                    _mm256_storeu_si256(out.add(g), _mm256_permute2x128_si256(lo[g], hi[g], 0x20));
                    _mm256_storeu_si256(out.add(g + 4), _mm256_permute2x128_si256(lo[g], hi[g], 0x31));
                }
            }
        }
    }

    /// The panel's eight rows times prompt rows `xrows` of `q`: `[prompt row][weight row]`.
    ///
    /// # Safety
    /// AVX2 and FMA; the panel packed for `blocks` blocks; `q` holds `blocks` blocks for each of
    /// `xrows`, `d_sum` one value per block of `q`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn panel_x4(
        panel: &Panel,
        q: &Q8Row,
        d_sum: &[f32],
        xrows: [usize; XROWS],
        blocks: usize,
    ) -> [[f32; ROWS]; XROWS] {
        let max_row = xrows.iter().copied().max().unwrap_or(0);
        assert!(panel.codes.len() >= 256 * blocks && panel.scale.len() >= ROWS * blocks);
        assert!(q.q.len() >= 32 * blocks * (max_row + 1) && q.d.len() >= blocks * (max_row + 1));
        assert!(d_sum.len() >= blocks * (max_row + 1) && panel.offset.len() >= ROWS * blocks);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); XROWS];
        let (codes, qs) = (panel.codes.as_ptr(), q.q.as_ptr() as *const u8);
        for b in 0..blocks {
            let mut s16 = [_mm256_setzero_si256(); XROWS];
            for g in 0..8 {
                // SAFETY: within the lengths asserted above.
                let w = unsafe { _mm256_loadu_si256(codes.add(256 * b + 32 * g) as *const __m256i) };
                for (i, s) in s16.iter_mut().enumerate() {
                    let at = 32 * (xrows[i] * blocks + b) + 4 * g;
                    // SAFETY: as above.
                    let four = unsafe { (qs.add(at) as *const i32).read_unaligned() };
                    *s = _mm256_add_epi16(*s, _mm256_maddubs_epi16(w, _mm256_set1_epi32(four)));
                }
            }
            // SAFETY: as above.
            let (scale, offset) = unsafe {
                (
                    _mm256_loadu_ps(panel.scale.as_ptr().add(ROWS * b)),
                    _mm256_loadu_ps(panel.offset.as_ptr().add(ROWS * b)),
                )
            };
            for i in 0..XROWS {
                let k = xrows[i] * blocks + b;
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16[i], ones));
                acc[i] = _mm256_fmadd_ps(sums, _mm256_mul_ps(scale, _mm256_set1_ps(q.d[k])), acc[i]);
                acc[i] = _mm256_fmadd_ps(offset, _mm256_set1_ps(d_sum[k]), acc[i]);
            }
        }
        acc.map(|a| {
            let mut out = [0f32; ROWS];
            // SAFETY: eight f32s.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), a) };
            out
        })
    }

    /// [`panel_x4`] over two panels at once in 512-bit registers: a group is panel 0's eight
    /// rows then panel 1's, and `vpdpbusd` adds its four products per lane in one instruction
    /// (where `maddubs`, a 16-bit add and, per block, `madd` were three). The integer sums are
    /// exact either way and are scaled lane by lane in the same order, so each output is the
    /// same bits as [`panel_x4`] gives it. Eight prompt rows a call: eight sums in flight, so no
    /// `vpdpbusd` waits on the one before it into its register.
    ///
    /// # Safety
    /// AVX2, FMA, AVX-512F and AVX-512 VNNI; both panels packed for `blocks` blocks; `q` and
    /// `d_sum` as [`panel_x4`] takes them.
    #[target_feature(enable = "avx2,fma,avx512f,avx512vnni")]
    pub unsafe fn panels_wide(
        panels: &[Panel; 2],
        q: &Q8Row,
        d_sum: &[f32],
        xrows: [usize; WIDE_XROWS],
        blocks: usize,
    ) -> [[f32; 2 * ROWS]; WIDE_XROWS] {
        let max_row = xrows.iter().copied().max().unwrap_or(0);
        for p in panels {
            assert!(p.codes.len() >= 256 * blocks && p.scale.len() >= ROWS * blocks);
            assert!(p.offset.len() >= ROWS * blocks);
        }
        assert!(q.q.len() >= 32 * blocks * (max_row + 1) && q.d.len() >= blocks * (max_row + 1));
        assert!(d_sum.len() >= blocks * (max_row + 1));
        // Panel 0's eight lanes, then panel 1's.
        let both = |f: &dyn Fn(&Panel) -> __m256| {
            _mm512_castpd_ps(_mm512_insertf64x4(
                _mm512_castps_pd(_mm512_castps256_ps512(f(&panels[0]))),
                _mm256_castps_pd(f(&panels[1])),
                1,
            ))
        };
        let mut acc = [_mm512_setzero_ps(); WIDE_XROWS];
        let qs = q.q.as_ptr() as *const u8;
        let codes = panels.each_ref().map(|p| p.codes.as_ptr());
        for b in 0..blocks {
            let mut s32 = [_mm512_setzero_si512(); WIDE_XROWS];
            for g in 0..8 {
                // SAFETY: within the lengths asserted above.
                let w = unsafe {
                    let [c0, c1] = codes.map(|c| _mm256_loadu_si256(c.add(256 * b + 32 * g) as *const __m256i));
                    _mm512_inserti64x4(_mm512_castsi256_si512(c0), c1, 1)
                };
                for (i, s) in s32.iter_mut().enumerate() {
                    let at = 32 * (xrows[i] * blocks + b) + 4 * g;
                    // SAFETY: as above.
                    let four = unsafe { (qs.add(at) as *const i32).read_unaligned() };
                    *s = _mm512_dpbusd_epi32(*s, w, _mm512_set1_epi32(four));
                }
            }
            // SAFETY (both): as above.
            let scale = both(&|p| unsafe { _mm256_loadu_ps(p.scale.as_ptr().add(ROWS * b)) });
            let offset = both(&|p| unsafe { _mm256_loadu_ps(p.offset.as_ptr().add(ROWS * b)) });
            for i in 0..WIDE_XROWS {
                let k = xrows[i] * blocks + b;
                let sums = _mm512_cvtepi32_ps(s32[i]);
                acc[i] = _mm512_fmadd_ps(sums, _mm512_mul_ps(scale, _mm512_set1_ps(q.d[k])), acc[i]);
                acc[i] = _mm512_fmadd_ps(offset, _mm512_set1_ps(d_sum[k]), acc[i]);
            }
        }
        acc.map(|a| {
            let mut out = [0f32; 2 * ROWS];
            // SAFETY: sixteen f32s.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), a) };
            out
        })
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::quant::matrix::tests::values;

    /// Each output against decode's integer product of its row and its prompt row alone
    /// ([`super::super::int8::dot`]: the same integer sums, scaled in another order), for 2 to 9
    /// prompt rows (the kernel's four and its remainders) and 21 weight rows (two panels and a
    /// part), with a block of codes at 15 against activations at 127 (the 16-bit sums' largest);
    /// and the same bits on 1, 2 and 3 threads.
    #[test]
    fn prefill_integer_products_are_each_row_s_integer_product() {
        let rows = 21;
        for (ty, cols) in [(GgmlType::Q4_0, 96), (GgmlType::Q4K, 512)] {
            let mut w = values(rows * cols, 40);
            // Row 0's first 32 values: one 1.0, the rest −0.875 — Q4_0 codes 0 and fifteen 15s.
            w[0] = 1.0;
            w[1..32].fill(-0.875);
            let data = match ty {
                GgmlType::Q4_0 => super::super::quantize_q4_0(&w).unwrap(),
                _ => super::super::quantize_q4k(&w).unwrap(),
            };
            let m = Blocks::new(ty, rows, cols, data).unwrap();
            if ty == GgmlType::Q4_0 {
                assert!(m.row(0)[2..18].iter().filter(|&&b| b == 0xFF).count() >= 15, "codes at 15");
            }
            let bias: Vec<f32> = values(rows, 3);
            for n in [2, 3, 4, 5, 9] {
                let mut x = values(n * cols, 41 + n as u64);
                x[..cols].fill(1.0); // codes 127
                let mut got = vec![f32::NAN; n * rows];
                assert_eq!(linear(&m, &mut got, &x, Some(&bias)), available());
                if !available() {
                    continue;
                }
                let mut q = Q8Row::default();
                for i in 0..n {
                    q.quantize(&x[i * cols..(i + 1) * cols]);
                    for r in 0..rows {
                        let want = super::super::int8::dot(ty, m.row(r), &q) + bias[r];
                        let g = got[i * rows + r];
                        assert!(
                            (g - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{ty:?} {n} rows [{i}, {r}]: {g} vs {want}"
                        );
                    }
                }
                for threads in 1..=3 {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let mut again = vec![0f32; n * rows];
                    pool.install(|| linear(&m, &mut again, &x, Some(&bias)));
                    assert_eq!(
                        again.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{ty:?}, {threads} threads"
                    );
                }
                // The AVX-512 kernel (sixteen rows, eight prompt rows a call) gives the AVX2
                // kernel's bits (eight rows, four a call) where this CPU has both.
                if wide_available() {
                    let mut q = Q8Row::default();
                    q.quantize(&x);
                    let d_sum: Vec<f32> = q.d.iter().zip(&q.sum).map(|(d, &s)| d * s as f32).collect();
                    let blocks = cols / 32;
                    let mut panels = [Panel::default(), Panel::default()];
                    for (p, panel) in panels.iter_mut().enumerate() {
                        panel.pack(ty, std::array::from_fn(|k| m.row(ROWS * p + k)), blocks, &[]);
                    }
                    let xrows = std::array::from_fn(|k| k.min(n - 1));
                    let wide = kernel(&panels, true, &q, &d_sum, xrows, blocks);
                    let narrow = kernel(&panels, false, &q, &d_sum, xrows, blocks);
                    for i in 0..n.min(WIDE_XROWS) {
                        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&wide[i][..ROWS]), bits(&narrow[i][..ROWS]), "{ty:?} {n} rows, row {i}");
                    }
                }
            }
        }
    }
}
