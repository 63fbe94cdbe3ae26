//! Prefill's integer product for 4-bit weights (Q4_0, Q4_K): a prompt's rows quantized to 8 bits
//! once ([`Q8Row`], as decode's) and laid out side by side ([`Prompt`]), then four weight rows
//! at a time, read as the file stores them, against sixteen prompt rows at a time (eight
//! without AVX-512), every block product summed in integers.
//!
//! **Math.** Both types are, per block of 32 inputs, `w = scale·c + offset` with codes `c` in
//! 0 ..= 15: Q4_0 `scale = d`, `offset = −8d`; Q4_K per sub-block `scale = d·sc`, `offset =
//! −dmin·m`. With the activations `x ≈ d_x·q`, a block's product is
//! `d_x · (scale · Σ c·q + offset · Σ q)`; `Σ c·q` is the integer part, `Σ q` is kept per block.
//!
//! **Layout.** A vector's 32-bit lanes are prompt rows: lane `i` of a [`Prompt`] word holds row
//! `i`'s four codes of inputs `4k .. 4k + 4` of a block. A weight row's four code bytes are
//! broadcast to every lane, masked to their low nibbles (four codes of one block) and to their
//! high ones (four of another, or of the same block's second half), and multiplied lane by lane
//! with the matching prompt words: each lane sums its own row's products, so no horizontal
//! reduction, and the weights need no layout of their own. The layout work is the prompt's
//! (`n × cols` bytes, once per call), not the matrix's: llama.cpp's `gemm_q4_0_8x8_q8_0` has
//! its weights repacked at load instead; interleaving a panel of weight rows per call cost as
//! much as the products for a 16-token prompt.
//!
//! **Sums.** With AVX-512 VNNI `vpdpbusd` adds four `u8 · i8` products to each 32-bit lane; the
//! high nibbles are taken as `byte & 0xF0` (sixteen times the code), so their sum is shifted
//! back by four bits, exactly. With AVX2 `maddubs` adds pairs into 16 bits: both nibbles are
//! shifted into 0 ..= 15 and a block's 16 products per 16-bit lane stay below 16·15·127 =
//! 30,480 < 32,767. The same integer sums, scaled in the same order: both kernels give each
//! output the same bits.
//!
//! **Dispatch.** x86-64 with AVX2 and FMA (the check every x86 kernel here shares,
//! `simd::has_avx2_fma_f16c`): [`linear`], with sixteen lanes where the CPU also has AVX-512
//! VNNI; elsewhere it returns false and the caller decodes each row to f32 once
//! ([`crate::cpu::ops::linear_rows`]). Tasks own weight rows; each output is its own sum in a
//! fixed order of blocks, whatever the thread count or the rows beside it.

use super::GgmlType;
use super::int8::Q8Row;
use super::matrix::Blocks;
use crate::cpu::ops::{for_each_chunk, for_each_item, rows_per_task};

/// Weight rows per kernel call: each prompt word loaded serves four of them.
const ROWS: usize = 4;
/// Prompt rows per kernel call with AVX-512 ([`x86::rows_x16`]) and with AVX2 ([`x86::rows_x8`]).
const WIDE_LANES: usize = 16;
const LANES: usize = 8;
/// A prompt's words read by the products of one weight row before the next: at most this many
/// bytes (L2-sized), so a long prompt's words are read from L2 by every weight row.
const TILE_BYTES: usize = 256 << 10;

/// A prompt's 8-bit rows as the kernels read them, in groups of `lanes` rows (the last one
/// padded with zeros): per block, its eight words of four codes with the group's rows side by
/// side (`words`, `[group][block][word][lane]`), and the rows' scales `d_x` and `d_x · Σ q`
/// (`[group][block][lane]`).
struct Prompt {
    lanes: usize,
    blocks: usize,
    words: Vec<u32>,
    d: Vec<f32>,
    d_sum: Vec<f32>,
}

/// One group of a [`Prompt`]'s rows (read by the x86-64 kernels; elsewhere `linear` returns
/// before any group is made).
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Group<'a> {
    words: &'a [u32],
    d: &'a [f32],
    d_sum: &'a [f32],
}

impl Prompt {
    fn new(q: &Q8Row, n: usize, blocks: usize, lanes: usize) -> Self {
        let groups = n.div_ceil(lanes);
        let mut p = Prompt {
            lanes,
            blocks,
            words: vec![0; groups * blocks * 8 * lanes],
            d: vec![0.0; groups * blocks * lanes],
            d_sum: vec![0.0; groups * blocks * lanes],
        };
        for i in 0..n {
            let (g, lane) = (i / lanes, i % lanes);
            for b in 0..blocks {
                let (k, at) = (i * blocks + b, (g * blocks + b) * lanes + lane);
                (p.d[at], p.d_sum[at]) = (q.d[k], q.d[k] * q.sum[k] as f32);
                for (w, four) in q.q[32 * k..32 * k + 32].chunks_exact(4).enumerate() {
                    p.words[(8 * (g * blocks + b) + w) * lanes + lane] =
                        u32::from_le_bytes(std::array::from_fn(|j| four[j] as u8));
                }
            }
        }
        p
    }

    fn groups(&self) -> usize {
        self.d.len() / (self.blocks * self.lanes)
    }

    fn group(&self, g: usize) -> Group<'_> {
        let per = self.blocks * self.lanes;
        Group {
            words: &self.words[8 * per * g..8 * per * (g + 1)],
            d: &self.d[per * g..per * (g + 1)],
            d_sum: &self.d_sum[per * g..per * (g + 1)],
        }
    }
}

/// `out[i, o] = x[i, :] · row o (+ bias[o])` for a matrix of Q4_0 or Q4_K blocks and several
/// rows of `x`, in integers (see the module). False, with `out` untouched, where this CPU has no
/// kernel or `ty` is another type.
pub fn linear(m: &Blocks, out: &mut [f32], x: &[f32], bias: Option<&[f32]>) -> bool {
    linear_many(&[m], &mut [out], x, &[bias])
}

/// [`linear`] for several matrices of as many columns that read the same `x` (a layer's q, k
/// and v): `x` quantized and laid out once, and all their tasks one parallel region. False,
/// with `outs` untouched, unless every matrix is Q4_0 or Q4_K and this CPU has the kernel.
pub fn linear_many(ms: &[&Blocks], outs: &mut [&mut [f32]], x: &[f32], biases: &[Option<&[f32]>]) -> bool {
    linear_many_on(ms, outs, x, biases, wide_available())
}

/// [`linear_many`] with sixteen lanes (`wide`: AVX-512 VNNI) or eight.
fn linear_many_on(ms: &[&Blocks], outs: &mut [&mut [f32]], x: &[f32], biases: &[Option<&[f32]>], wide: bool) -> bool {
    if ms.iter().any(|m| !matches!(m.ty, GgmlType::Q4_0 | GgmlType::Q4K) || m.cols != ms[0].cols) || !available() {
        return false;
    }
    let n_in = ms[0].cols;
    let (n, blocks) = (x.len() / n_in, n_in / 32);
    let mut q = Q8Row::default();
    q.quantize(x);
    let prompt = Prompt::new(&q, n, blocks, if wide { WIDE_LANES } else { LANES });
    // Groups of prompt rows whose words take at most TILE_BYTES.
    let tile = (TILE_BYTES / (32 * blocks * prompt.lanes)).max(1);
    let per_task: Vec<usize> = ms.iter().map(|m| rows_per_task(m.rows).next_multiple_of(ROWS)).collect();
    // Each task's products, `[n, its rows]`, then laid out by row of `x`.
    let mut by_task: Vec<Vec<f32>> = ms.iter().map(|m| vec![0f32; n * m.rows]).collect();
    let mut tasks = Vec::new();
    for ((m, per_task), buf) in ms.iter().zip(&per_task).zip(&mut by_task) {
        tasks.extend(buf.chunks_mut(per_task * n).enumerate().map(|(t, o)| (*m, t * per_task, o)));
    }
    for_each_item(tasks, |(m, r0, o)| {
        let rows = o.len() / n;
        for g0 in (0..prompt.groups()).step_by(tile) {
            for p in (0..rows).step_by(ROWS) {
                // A last call of fewer rows repeats its last one (each result is its own row's).
                let width = (rows - p).min(ROWS);
                let weights = std::array::from_fn(|k| m.row(r0 + p + k.min(width - 1)));
                // The next call's rows, asked into the cache by the first group's call.
                let next =
                    (r0 + p + width) * m.row_bytes()..(r0 + p + width + (rows - p - width).min(ROWS)) * m.row_bytes();
                for g in g0..(g0 + tile).min(prompt.groups()) {
                    let next = if g == g0 { &m.data[next.clone()] } else { &[][..] };
                    let sums = kernel(m.ty, wide, weights, prompt.group(g), blocks, next);
                    let (i0, height) = (g * prompt.lanes, (n - g * prompt.lanes).min(prompt.lanes));
                    for i in 0..height {
                        let o = &mut o[(i0 + i) * rows + p..][..width];
                        o.iter_mut().zip(&sums).for_each(|(o, s)| *o = s[i]);
                    }
                }
            }
        }
    });
    // Laid out by prompt row, sixteen rows a parallel task (one thread's pass left the other
    // waiting).
    for (((m, out), (buf, &per_task)), bias) in
        ms.iter().zip(outs.iter_mut()).zip(by_task.iter().zip(&per_task)).zip(biases)
    {
        for_each_chunk(out, 16 * m.rows, |c, out| {
            for (t, chunk) in buf.chunks(per_task * n).enumerate() {
                let (r0, rows) = (t * per_task, chunk.len() / n);
                for (k, dst) in out.chunks_exact_mut(m.rows).enumerate() {
                    let dst = &mut dst[r0..][..rows];
                    dst.copy_from_slice(&chunk[(16 * c + k) * rows..][..rows]);
                    if let Some(b) = bias {
                        dst.iter_mut().zip(&b[r0..]).for_each(|(v, b)| *v += b);
                    }
                }
            }
        });
    }
    true
}

/// The products of four weight rows with a group of prompt rows: `[weight row][prompt row]`
/// (sixteen prompt rows where `wide`, else eight and the rest zeros).
fn kernel(
    ty: GgmlType,
    wide: bool,
    weights: [&[u8]; ROWS],
    x: Group,
    blocks: usize,
    next: &[u8],
) -> [[f32; WIDE_LANES]; ROWS] {
    #[cfg(target_arch = "x86_64")]
    {
        if wide {
            // SAFETY: `wide` only where `wide_available()`; the lengths are the kernel's asserts.
            return unsafe { x86::rows_x16(ty, weights, x, blocks, next) };
        }
        // SAFETY: `linear` calls this only where `available()`; the lengths are the kernel's asserts.
        let eight = unsafe { x86::rows_x8(ty, weights, x, blocks, next) };
        eight.map(|e| std::array::from_fn(|i| if i < LANES { e[i] } else { 0.0 }))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ty, wide, weights, x, blocks, next);
        unreachable!("`linear` returns before any kernel where there is none")
    }
}

fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::simd::has_avx2_fma_f16c();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// AVX-512 with VNNI: sixteen prompt rows per instruction, each lane's four products summed by
/// one `vpdpbusd`.
fn wide_available() -> bool {
    super::simd::has_avx512_vnni()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{GgmlType, Group, LANES, ROWS, WIDE_LANES};
    use crate::quant::k_quants::multipliers;

    /// The kernels' bounds, checked once per call: each weight row holds `blocks` blocks of `ty`
    /// (Q4_0, or Q4_K in whole super-blocks), the group `lanes` lanes of `blocks` blocks.
    fn check(ty: GgmlType, weights: &[&[u8]; ROWS], x: Group, blocks: usize, lanes: usize) {
        let row_bytes = match ty {
            GgmlType::Q4_0 => 18 * blocks,
            _ => {
                assert!(blocks.is_multiple_of(8), "whole Q4_K super-blocks");
                144 * blocks / 8
            }
        };
        assert!(weights.iter().all(|w| w.len() >= row_bytes));
        assert!(x.words.len() >= 8 * lanes * blocks && x.d.len() >= lanes * blocks && x.d_sum.len() >= lanes * blocks);
    }

    /// Block `b`'s share of `next` (the rows multiplied next) asked into the cache: the four
    /// rows are short streams the hardware prefetcher learns late, and each block's scale, its
    /// first byte read, waited on memory without it. Spread over the blocks, not asked for at
    /// once: a burst of prefetches waits for the core's free line buffers.
    #[inline]
    fn ask_ahead(next: &[u8], b: usize, share: usize) {
        crate::quant::simd::prefetch(&next[(share * b).min(next.len())..(share * (b + 1)).min(next.len())]);
    }

    /// Four weight rows times sixteen prompt rows: `[weight row][prompt row]`. Per four bytes of
    /// a weight row, two `vpdpbusd` into its two sums: low nibbles against one block's words,
    /// high nibbles (as `byte & 0xF0`, shifted back per block) against the other's.
    ///
    /// # Safety
    /// AVX2, FMA, AVX-512F and AVX-512 VNNI (the lengths are checked).
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vnni")]
    pub unsafe fn rows_x16(
        ty: GgmlType,
        weights: [&[u8]; ROWS],
        x: Group,
        blocks: usize,
        next: &[u8],
    ) -> [[f32; WIDE_LANES]; ROWS] {
        const L: usize = WIDE_LANES;
        check(ty, &weights, x, blocks, L);
        let share = next.len().div_ceil(blocks.max(1));
        let ask = |b: usize| ask_ahead(next, b, share);
        // The four rows' Q4_0 scales of block `b`, in one F16C conversion.
        let scales = |b: usize| {
            let d: [u16; 8] = std::array::from_fn(|r| {
                let w = weights[r % ROWS];
                u16::from_le_bytes([w[18 * b], w[18 * b + 1]])
            });
            let mut out = [0f32; ROWS];
            // SAFETY: eight u16s read, four f32s written.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), _mm_cvtph_ps(_mm_loadu_si128(d.as_ptr() as *const __m128i))) };
            out
        };
        let (low, high) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0xF0u8 as i8));
        // SAFETY (the three closures): inside the lengths checked.
        let word =
            |b: usize, k: usize| unsafe { _mm512_loadu_si512(x.words.as_ptr().add(L * (8 * b + k)) as *const _) };
        let lanes = |v: &[f32], b: usize| unsafe { _mm512_loadu_ps(v.as_ptr().add(L * b)) };
        let four = |r: usize, at: usize| unsafe {
            _mm512_set1_epi32((weights[r].as_ptr().add(at) as *const i32).read_unaligned())
        };
        // acc += Σ c·q · (scale · d_x) + offset · (d_x · Σ q), block b's lanes.
        let add = |acc: &mut __m512, sums: __m512i, b: usize, scale: f32, offset: f32| {
            let s = _mm512_mul_ps(_mm512_set1_ps(scale), lanes(x.d, b));
            *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), s, *acc);
            *acc = _mm512_fmadd_ps(_mm512_set1_ps(offset), lanes(x.d_sum, b), *acc);
        };
        let mut acc = [_mm512_setzero_ps(); ROWS];
        if ty == GgmlType::Q4_0 {
            // A block: a scale, then 16 bytes with inputs 0..16 in their low nibbles, 16..32 high.
            for b in 0..blocks {
                ask(b);
                let (mut lo, mut hi) = ([_mm512_setzero_si512(); ROWS], [_mm512_setzero_si512(); ROWS]);
                for k in 0..4 {
                    let (xl, xh) = (word(b, k), word(b, k + 4));
                    for r in 0..ROWS {
                        let w = four(r, 18 * b + 2 + 4 * k);
                        lo[r] = _mm512_dpbusd_epi32(lo[r], _mm512_and_si512(w, low), xl);
                        hi[r] = _mm512_dpbusd_epi32(hi[r], _mm512_and_si512(w, high), xh);
                    }
                }
                let d = scales(b);
                for r in 0..ROWS {
                    add(&mut acc[r], _mm512_add_epi32(lo[r], _mm512_srai_epi32(hi[r], 4)), b, d[r], -8.0 * d[r]);
                }
            }
        } else {
            // A super-block: scales, then four pairs of sub-blocks, 32 bytes each (the pair's
            // first sub-block in their low nibbles, its second high).
            for sb in 0..blocks / 8 {
                let m: [_; ROWS] = std::array::from_fn(|r| multipliers(&weights[r][144 * sb..]));
                for pair in 0..4 {
                    let b = 8 * sb + 2 * pair;
                    ask(b);
                    ask(b + 1);
                    let (mut lo, mut hi) = ([_mm512_setzero_si512(); ROWS], [_mm512_setzero_si512(); ROWS]);
                    for k in 0..8 {
                        let (xl, xh) = (word(b, k), word(b + 1, k));
                        for r in 0..ROWS {
                            let w = four(r, 144 * sb + 16 + 32 * pair + 4 * k);
                            lo[r] = _mm512_dpbusd_epi32(lo[r], _mm512_and_si512(w, low), xl);
                            hi[r] = _mm512_dpbusd_epi32(hi[r], _mm512_and_si512(w, high), xh);
                        }
                    }
                    for (r, m) in m.iter().enumerate() {
                        let [a1, a2, o1, o2] = m[pair];
                        add(&mut acc[r], lo[r], b, a1, o1);
                        add(&mut acc[r], _mm512_srai_epi32(hi[r], 4), b + 1, a2, o2);
                    }
                }
            }
        }
        acc.map(|a| {
            let mut out = [0f32; L];
            // SAFETY: sixteen f32s.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), a) };
            out
        })
    }

    /// [`rows_x16`] in 256-bit registers: eight prompt rows, both nibbles shifted into 0 ..= 15
    /// and multiplied by `maddubs` into 16-bit pairs, a block's pairs widened once. The same
    /// integer sums, scaled in the same order, so each output is the same bits.
    ///
    /// # Safety
    /// AVX2 and FMA (the lengths are checked).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn rows_x8(
        ty: GgmlType,
        weights: [&[u8]; ROWS],
        x: Group,
        blocks: usize,
        next: &[u8],
    ) -> [[f32; LANES]; ROWS] {
        const L: usize = LANES;
        check(ty, &weights, x, blocks, L);
        let share = next.len().div_ceil(blocks.max(1));
        let ask = |b: usize| ask_ahead(next, b, share);
        // The four rows' Q4_0 scales of block `b`, in one F16C conversion.
        let scales = |b: usize| {
            let d: [u16; 8] = std::array::from_fn(|r| {
                let w = weights[r % ROWS];
                u16::from_le_bytes([w[18 * b], w[18 * b + 1]])
            });
            let mut out = [0f32; ROWS];
            // SAFETY: eight u16s read, four f32s written.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), _mm_cvtph_ps(_mm_loadu_si128(d.as_ptr() as *const __m128i))) };
            out
        };
        let (low, ones) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi16(1));
        // SAFETY (the three closures): inside the lengths checked.
        let word =
            |b: usize, k: usize| unsafe { _mm256_loadu_si256(x.words.as_ptr().add(L * (8 * b + k)) as *const _) };
        let lanes = |v: &[f32], b: usize| unsafe { _mm256_loadu_ps(v.as_ptr().add(L * b)) };
        let four = |r: usize, at: usize| unsafe {
            _mm256_set1_epi32((weights[r].as_ptr().add(at) as *const i32).read_unaligned())
        };
        // The products of four code bytes' low and high nibbles with `xl` and `xh`, in 16-bit pairs.
        let products = |w: __m256i, xl: __m256i, xh: __m256i| {
            let hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), low);
            (_mm256_maddubs_epi16(_mm256_and_si256(w, low), xl), _mm256_maddubs_epi16(hi, xh))
        };
        let add = |acc: &mut __m256, sums16: __m256i, b: usize, scale: f32, offset: f32| {
            let s = _mm256_mul_ps(_mm256_set1_ps(scale), lanes(x.d, b));
            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(sums16, ones)), s, *acc);
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(offset), lanes(x.d_sum, b), *acc);
        };
        let mut acc = [_mm256_setzero_ps(); ROWS];
        if ty == GgmlType::Q4_0 {
            for b in 0..blocks {
                ask(b);
                let mut s = [_mm256_setzero_si256(); ROWS];
                for k in 0..4 {
                    let (xl, xh) = (word(b, k), word(b, k + 4));
                    for (r, s) in s.iter_mut().enumerate() {
                        let (lo, hi) = products(four(r, 18 * b + 2 + 4 * k), xl, xh);
                        *s = _mm256_add_epi16(*s, _mm256_add_epi16(lo, hi));
                    }
                }
                let d = scales(b);
                for r in 0..ROWS {
                    add(&mut acc[r], s[r], b, d[r], -8.0 * d[r]);
                }
            }
        } else {
            for sb in 0..blocks / 8 {
                let m: [_; ROWS] = std::array::from_fn(|r| multipliers(&weights[r][144 * sb..]));
                for pair in 0..4 {
                    let b = 8 * sb + 2 * pair;
                    ask(b);
                    ask(b + 1);
                    let (mut s1, mut s2) = ([_mm256_setzero_si256(); ROWS], [_mm256_setzero_si256(); ROWS]);
                    for k in 0..8 {
                        let (xl, xh) = (word(b, k), word(b + 1, k));
                        for r in 0..ROWS {
                            let (lo, hi) = products(four(r, 144 * sb + 16 + 32 * pair + 4 * k), xl, xh);
                            (s1[r], s2[r]) = (_mm256_add_epi16(s1[r], lo), _mm256_add_epi16(s2[r], hi));
                        }
                    }
                    for (r, m) in m.iter().enumerate() {
                        let [a1, a2, o1, o2] = m[pair];
                        add(&mut acc[r], s1[r], b, a1, o1);
                        add(&mut acc[r], s2[r], b + 1, a2, o2);
                    }
                }
            }
        }
        acc.map(|a| {
            let mut out = [0f32; L];
            // SAFETY: eight f32s.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), a) };
            out
        })
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::quant::matrix::tests::values;

    /// Each output against decode's integer product of its row and its prompt row alone
    /// ([`super::super::int8::dot`]: the same integer sums, scaled in another order), for 2 to
    /// 530 prompt rows (part of a group of lanes, two groups, and more than a tile of 512 rows of
    /// 512 columns) and 21 weight rows (five calls of four, and one), with a block of codes at 15
    /// against activations at 127 (the 16-bit sums' largest); the same bits on 1, 2 and 3
    /// threads, and with eight lanes as with sixteen.
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
            for n in [2, 3, 4, 5, 9, 17, 530] {
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
                // The AVX2 kernel (eight lanes) gives the AVX-512 kernel's bits (sixteen) where
                // this CPU has both.
                if wide_available() {
                    let mut narrow = vec![0f32; n * rows];
                    assert!(linear_many_on(&[&m], &mut [&mut narrow], &x, &[Some(&bias)], false));
                    assert_eq!(
                        narrow.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{ty:?} {n} rows: eight lanes"
                    );
                }
            }
        }
    }
}
