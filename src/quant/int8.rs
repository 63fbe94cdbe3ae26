//! Integer block products: a row of activations quantized to 8 bits per block of 32 (one f32
//! scale per block, as llama.cpp's `Q8_0`/`Q8_K` activations), then each weight block's codes
//! times the activation codes summed in integers, scaled once per block (once per sub-block for
//! the K-quants). What llama.cpp's CPU matrix products do: a block's 32 products are one SIMD
//! multiply-add of bytes instead of 32 conversions to f32. Natively Q8_0, Q4_0 and Q4_K rows go
//! four at a time ([`dot4`]): one activation block loaded for four rows, whose integer sums are
//! scaled as one vector; with AVX-512 VNNI, Q4_0, Q4_K and Q6_K rows too, 64 codes a `vpdpbusd`
//! (llama.cpp goes further on Q4_0, eight rows interleaved in a repacked copy of the matrix).
//!
//! Not exact: an activation is rounded to 1/254 of its block's largest magnitude, so a product
//! differs from the f32 one by at most `Σ_blocks d_x/2 · Σ|w|` (`tests` checks that bound). The
//! CPU reference multiplies in f32 ([`super::matrix::dot`], [`Activations::F32`], `--activations
//! f32`); the engines the CLI and the page run decode with [`Activations::Q8`], the default, as
//! llama.cpp does: natively it decodes Q4_0 1.4–2.0×, Q4_K 2.3–3.1× and Q8_0 1.3–1.6× as fast as
//! the f32 products (BENCHMARKS.md, `WGSL=0 sh benches/vs_llama_cpp.sh`). A prompt's rows take
//! another product: Q4_0 and Q4_K rows four at a time against the prompt's rows side by side
//! ([`super::int8_prefill`], x86-64), every other type each weight row decoded once for all of
//! them ([`crate::cpu::ops::linear_rows`]; an integer product per prompt row ran prefill at
//! 0.5–0.8× of that).
//!
//! Math per weight type (w: the weight block's codes, q: the activation codes, d_x: their scale):
//! - Q8_0: `d · d_x · Σ w·q`;
//! - Q4_0: `d · d_x · Σ (w − 8)·q`;
//! - Q4_K: per sub-block of 32, `d·sc · d_x · Σ w·q − dmin·m · d_x · Σ q` (Σ q kept per block);
//! - Q6_K: per sub-block of 16, `d·sc · d_x · Σ (w − 32)·q` (two sub-blocks per activation block).

use super::GgmlType;
use crate::cpu::ops::PARALLEL_VALUES;

/// How the CPU engines multiply a quantized matrix by one row of activations (a decoded token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activations {
    /// In f32, each weight block decoded in registers: the reference, exact to the decoded matrix.
    F32,
    /// Quantized to 8 bits per block of 32, integer products (Q8_0, Q4_0, Q4_K, Q6_K; any other
    /// type, and f32/16-bit matrices, multiply in f32): what the CLI and the page run.
    #[default]
    Q8,
}

impl Activations {
    /// What `describe` calls an engine multiplying so.
    pub fn engine(self) -> &'static str {
        match self {
            Activations::F32 => "cpu reference",
            Activations::Q8 => "cpu",
        }
    }

    /// What `describe` adds after the weights' types (`GgmlType::name`s): whether any of them is
    /// multiplied in integers.
    pub fn note(self, types: &[&str]) -> &'static str {
        let integer = [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K]
            .into_iter()
            .any(|ty| self.integer(ty) && types.contains(&ty.name()));
        if integer { ", 8-bit activations" } else { "" }
    }

    /// Whether a matrix of type `ty` is multiplied in integers.
    pub fn integer(self, ty: GgmlType) -> bool {
        self == Activations::Q8 && matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4K | GgmlType::Q6K)
    }
}

impl std::str::FromStr for Activations {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Activations::F32),
            "q8" => Ok(Activations::Q8),
            other => Err(format!("unknown activations {other:?} (q8 or f32)")),
        }
    }
}

impl std::fmt::Display for Activations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Activations::F32 => "f32",
            Activations::Q8 => "q8",
        })
    }
}

/// A row of activations in blocks of 32: codes in −127 ..= 127, each block's scale (`x ≈ d·q`)
/// and the sum of its codes (the K-quants' minimum term).
#[derive(Debug, Default)]
pub struct Q8Row {
    pub q: Vec<i8>,
    pub d: Vec<f32>,
    pub sum: Vec<i32>,
    /// The codes widened to 16 bits once per row, for SIMD128, which has no 8-bit multiply-add:
    /// each weight block is widened and multiplied by these with `i32x4.dot_i16x8` (widening
    /// the activations too for every weight row cost as much again).
    #[cfg(target_arch = "wasm32")]
    pub q16: Vec<i16>,
    /// `q16` with the first 16 codes of each block times 16, for SIMD128's Q4_0 product: a
    /// weight byte's high code is taken as `byte & 0xF0` (16 times the code) against the plain
    /// codes and its low code as `byte & 0x0F` against these, so the block's sum comes out 16
    /// times over (one shift per four blocks) and no byte is shifted: SIMD128's `i8x16.shr_u`
    /// is five instructions in V8 on x86-64 (a 16-bit shift and a mask built each time).
    #[cfg(target_arch = "wasm32")]
    pub q16_low16: Vec<i16>,
}

impl Q8Row {
    /// Quantizes `x` (a whole number of blocks of 32) into this row, reusing its buffers. A
    /// prompt's rows ([`PARALLEL_VALUES`]) in parallel, groups of blocks at a time: serial, they
    /// were a tenth of the time of the thread that leads a prompt's forward pass while the
    /// others waited (SmolLM2's Q4_0 prefill of 16 tokens, `perf`).
    pub fn quantize(&mut self, x: &[f32]) {
        let blocks = x.len() / 32;
        self.q.resize(x.len(), 0);
        self.d.resize(blocks, 0.0);
        self.sum.resize(blocks, 0);
        #[cfg(target_arch = "wasm32")]
        {
            self.q16.resize(x.len(), 0);
            self.q16_low16.resize(x.len(), 0);
        }
        // One group serially, or groups of 32 blocks over the threads.
        let n = if x.len() < PARALLEL_VALUES { blocks.max(1) } else { 32 };
        let mut q = self.q.chunks_mut(32 * n);
        let (mut d, mut sum) = (self.d.chunks_mut(n), self.sum.chunks_mut(n));
        #[cfg(target_arch = "wasm32")]
        let (mut q16, mut q16_low16) = (self.q16.chunks_mut(32 * n), self.q16_low16.chunks_mut(32 * n));
        let groups = x.chunks(32 * n).map(|x| BlockGroup {
            x,
            q: q.next().expect("as many chunks as x"),
            d: d.next().expect("as many chunks as x"),
            sum: sum.next().expect("as many chunks as x"),
            #[cfg(target_arch = "wasm32")]
            q16: q16.next().expect("as many chunks as x"),
            #[cfg(target_arch = "wasm32")]
            q16_low16: q16_low16.next().expect("as many chunks as x"),
        });
        if x.len() < PARALLEL_VALUES {
            groups.for_each(BlockGroup::quantize);
        } else {
            crate::cpu::ops::for_each_item(groups.collect(), BlockGroup::quantize);
        }
    }
}

/// Consecutive blocks of a [`Q8Row`] and the values they quantize.
struct BlockGroup<'a> {
    x: &'a [f32],
    q: &'a mut [i8],
    d: &'a mut [f32],
    sum: &'a mut [i32],
    #[cfg(target_arch = "wasm32")]
    q16: &'a mut [i16],
    #[cfg(target_arch = "wasm32")]
    q16_low16: &'a mut [i16],
}

impl BlockGroup<'_> {
    fn quantize(self) {
        let blocks = self.x.chunks_exact(32).zip(self.q.chunks_exact_mut(32)).zip(self.d.iter_mut().zip(self.sum));
        for ((xs, qs), (d, sum)) in blocks {
            let amax = super::abs_max(xs);
            *d = amax / 127.0;
            let id = if *d != 0.0 { 1.0 / *d } else { 0.0 };
            *sum = 0;
            for (q, &v) in qs.iter_mut().zip(xs) {
                // Round to nearest through the float's mantissa (|v·id| ≤ 127): no libm call, so
                // the loop vectorizes.
                *q = ((v * id + 12_582_912.0).to_bits() as i32 - 0x4B40_0000) as i8;
                *sum += *q as i32;
            }
        }
        #[cfg(target_arch = "wasm32")]
        for (i, (&q, (q16, low16))) in self.q.iter().zip(self.q16.iter_mut().zip(self.q16_low16)).enumerate() {
            *q16 = q as i16;
            *low16 = if i % 32 < 16 { 16 * q as i16 } else { q as i16 };
        }
    }
}

/// One row of weight blocks of type `ty` (one of [`Activations::integer`]'s) times `x`.
pub fn dot(ty: GgmlType, row: &[u8], x: &Q8Row) -> f32 {
    match ty {
        GgmlType::Q8_0 => super::simd::int8_row(ty, row, x).unwrap_or_else(|| dot_q8_0(row, x)),
        GgmlType::Q4_0 => super::simd::int8_row(ty, row, x).unwrap_or_else(|| dot_q4_0(row, x)),
        GgmlType::Q4K => super::simd::int8_q4k(row, x).unwrap_or_else(|| dot_q4k(row, x)),
        GgmlType::Q6K => super::simd::int8_q6k(row, x).unwrap_or_else(|| dot_q6k(row, x)),
        other => unreachable!("{other:?} is not multiplied in integers"),
    }
}

/// Four rows of blocks of type `ty` times `x`: the four-row SIMD kernel where this CPU has one
/// for `ty` ([`super::simd::int8x4`]), else [`dot`] on each. Each result depends on its row alone.
pub fn dot4(ty: GgmlType, rows: [&[u8]; 4], x: &Q8Row) -> [f32; 4] {
    super::simd::int8x4(ty, rows, x).unwrap_or_else(|| rows.map(|r| dot(ty, r, x)))
}

fn dot_q8_0(row: &[u8], x: &Q8Row) -> f32 {
    let mut sum = 0f32;
    for ((b, q), dx) in row.chunks_exact(34).zip(x.q.chunks_exact(32)).zip(&x.d) {
        let s: i32 = b[2..].iter().zip(q).map(|(&w, &q)| w as i8 as i32 * q as i32).sum();
        sum += super::f16(b) * dx * s as f32;
    }
    sum
}

fn dot_q4_0(row: &[u8], x: &Q8Row) -> f32 {
    let mut sum = 0f32;
    for ((b, q), dx) in row.chunks_exact(18).zip(x.q.chunks_exact(32)).zip(&x.d) {
        let mut s = 0i32;
        for (j, &w) in b[2..].iter().enumerate() {
            s += ((w & 0x0F) as i32 - 8) * q[j] as i32 + ((w >> 4) as i32 - 8) * q[j + 16] as i32;
        }
        sum += super::f16(b) * dx * s as f32;
    }
    sum
}

fn dot_q4k(row: &[u8], x: &Q8Row) -> f32 {
    let mut sum = 0f32;
    for (sb, b) in row.chunks_exact(144).enumerate() {
        let multipliers = super::k_quants::multipliers(b);
        for pair in 0..4 {
            let codes = &b[16 + 32 * pair..48 + 32 * pair];
            let [a1, a2, o1, o2] = multipliers[pair];
            // Activation blocks 2·pair and 2·pair + 1 of this super-block.
            let (k1, k2) = (8 * sb + 2 * pair, 8 * sb + 2 * pair + 1);
            let (q1, q2) = (&x.q[32 * k1..32 * k1 + 32], &x.q[32 * k2..32 * k2 + 32]);
            let (mut s1, mut s2) = (0i32, 0i32);
            for l in 0..32 {
                s1 += (codes[l] & 0x0F) as i32 * q1[l] as i32;
                s2 += (codes[l] >> 4) as i32 * q2[l] as i32;
            }
            sum += x.d[k1] * (a1 * s1 as f32 + o1 * x.sum[k1] as f32);
            sum += x.d[k2] * (a2 * s2 as f32 + o2 * x.sum[k2] as f32);
        }
    }
    sum
}

fn dot_q6k(row: &[u8], x: &Q8Row) -> f32 {
    let mut sum = 0f32;
    for (sb, b) in row.chunks_exact(super::k_quants::Q6K_BYTES).enumerate() {
        let d = super::f16(&b[208..210]);
        for half in 0..2 {
            let (ql, qh, sc) = (&b[64 * half..], &b[128 + 32 * half..], &b[192 + 8 * half..200 + 8 * half]);
            // Integer sums of the eight sub-blocks of 16 in this half.
            let mut s = [0i32; 8];
            let base = 256 * sb + 128 * half;
            for l in 0..32 {
                let codes = super::k_quants::q6k_codes(ql[l], ql[l + 32], qh[l]);
                for (j, w) in codes.into_iter().enumerate() {
                    s[l / 16 + 2 * j] += w * x.q[base + l + 32 * j] as i32;
                }
            }
            for (k, (&sc, s)) in sc.iter().zip(s).enumerate() {
                // Sub-block k (values 16k .. 16k + 16 of this half) lies in activation block k / 2.
                sum += d * sc as i8 as f32 * x.d[base / 32 + k / 2] * s as f32;
            }
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::matrix::tests::{q6k_blocks as q6k, values};

    /// A prompt's rows quantized over three threads are each block quantized alone: the same
    /// codes, scales and sums as a row of that block by itself.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn a_prompt_s_rows_quantize_as_each_block_alone() {
        let x = values(PARALLEL_VALUES + 32 * 37, 4);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let mut all = Q8Row::default();
        pool.install(|| crate::cpu::ops::on_pool(|| all.quantize(&x)));
        let mut one = Q8Row::default();
        for (b, xs) in x.chunks_exact(32).enumerate() {
            one.quantize(xs);
            assert_eq!(one.q, all.q[32 * b..32 * b + 32], "block {b}");
            assert_eq!((one.d[0].to_bits(), one.sum[0]), (all.d[b].to_bits(), all.sum[b]), "block {b}");
        }
    }

    /// Every integer product (plain and SIMD) against the f32 product of the same weights: within
    /// the activations' rounding, `Σ_blocks d_x/2 · Σ_block |w|`, and the plain and SIMD ones
    /// agree with each other to rounding.
    #[test]
    fn integer_products_are_the_f32_products_within_the_activations_rounding() {
        let n = 512;
        let mut w = values(n, 1);
        w[70] = 9.0;
        let mut x = values(n, 2);
        x[3] = 0.0;
        x[300] = -6.0; // one large activation: its block's step is coarse
        x[32..64].fill(0.0); // a block of zeros: scale 0
        let mut row = Q8Row::default();
        row.quantize(&x);
        for (ty, bytes) in [
            (GgmlType::Q8_0, super::super::quantize_q8_0(&w).unwrap()),
            (GgmlType::Q4_0, super::super::quantize_q4_0(&w).unwrap()),
            (GgmlType::Q4K, super::super::quantize_q4k(&w).unwrap()),
            (GgmlType::Q6K, q6k(n / 256, 3)),
        ] {
            let decoded = super::super::dequantize(ty, &bytes, n).unwrap();
            let exact: f32 = decoded.iter().zip(&x).map(|(a, b)| a * b).sum();
            let bound: f32 = decoded
                .chunks_exact(32)
                .zip(&row.d)
                .map(|(ws, d)| d / 2.0 * ws.iter().map(|w| w.abs()).sum::<f32>())
                .sum();
            let plain = match ty {
                GgmlType::Q8_0 => dot_q8_0(&bytes, &row),
                GgmlType::Q4_0 => dot_q4_0(&bytes, &row),
                GgmlType::Q4K => dot_q4k(&bytes, &row),
                _ => dot_q6k(&bytes, &row),
            };
            assert!((plain - exact).abs() <= bound * 1.001 + 1e-5, "{ty:?}: {plain} vs {exact} (bound {bound})");
            let fast = dot(ty, &bytes, &row);
            assert!((fast - plain).abs() <= 1e-4 * plain.abs().max(1.0), "{ty:?}: SIMD {fast} vs plain {plain}");
        }
    }

    /// Four rows at once ([`dot4`]: the four-row SIMD kernels for Q8_0, Q4_0, Q4_K, and Q6_K with
    /// AVX-512 VNNI) against the plain product of each row, on rows of an odd number of blocks;
    /// each row's result is the same bits whichever rows are beside it and in which place (the
    /// engine's groups of four depend on the thread count). On a CPU with VNNI, the kernels
    /// without it too, and Q4_0's two kernels the same bits.
    #[test]
    fn four_rows_at_once_are_each_row_s_product() {
        let mut row = Q8Row::default();
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K] {
            // Three blocks; two super-blocks of Q4_K, three of Q6_K.
            let n = match ty {
                GgmlType::Q4K => 512,
                GgmlType::Q6K => 768,
                _ => 96,
            };
            let x = values(n, 7);
            row.quantize(&x);
            let rows: Vec<Vec<u8>> = (0..5u64)
                .map(|seed| match ty {
                    GgmlType::Q8_0 => super::super::quantize_q8_0(&values(n, 10 + seed)).unwrap(),
                    GgmlType::Q4_0 => super::super::quantize_q4_0(&values(n, 10 + seed)).unwrap(),
                    GgmlType::Q4K => super::super::quantize_q4k(&values(n, 10 + seed)).unwrap(),
                    _ => q6k(3, 10 + seed),
                })
                .collect();
            let r = |k: usize| rows[k].as_slice();
            let mut ways = Vec::new();
            for vnni in [false, true] {
                let four = |rows: [&[u8]; 4]| {
                    crate::quant::simd::int8x4_on(ty, rows, &row, vnni)
                        .unwrap_or_else(|| rows.map(|r| dot(ty, r, &row)))
                };
                let got = four([r(0), r(1), r(2), r(3)]);
                for (k, g) in got.iter().enumerate() {
                    let plain = match ty {
                        GgmlType::Q8_0 => dot_q8_0(r(k), &row),
                        GgmlType::Q4_0 => dot_q4_0(r(k), &row),
                        GgmlType::Q4K => dot_q4k(r(k), &row),
                        _ => dot_q6k(r(k), &row),
                    };
                    assert!((g - plain).abs() <= 1e-4 * plain.abs().max(1.0), "{ty:?} row {k}: {g} vs {plain}");
                }
                let moved = four([r(4), r(2), r(2), r(0)]);
                assert_eq!(moved[1].to_bits(), got[2].to_bits(), "{ty:?}");
                assert_eq!(moved[3].to_bits(), got[0].to_bits(), "{ty:?}");
                assert_eq!(four([r(3); 4])[0].to_bits(), got[3].to_bits(), "{ty:?}");
                ways.push(got.map(f32::to_bits));
            }
            if ty == GgmlType::Q4_0 {
                assert_eq!(ways[0], ways[1]);
            }
        }
    }

    /// The engine names 8-bit activations only where a matrix is multiplied in integers.
    #[test]
    fn the_note_names_8_bit_activations_where_they_are_used() {
        assert_eq!(Activations::Q8.note(&["F16", "F32"]), "");
        assert_eq!(Activations::Q8.note(&["F32", "Q6_K"]), ", 8-bit activations");
        assert_eq!(Activations::F32.note(&["Q4_0"]), "");
    }

    #[test]
    fn activations_round_to_their_block_s_step() {
        let x = values(64, 4);
        let mut row = Q8Row::default();
        row.quantize(&x);
        for (b, xs) in x.chunks_exact(32).enumerate() {
            let d = row.d[b];
            assert_eq!(row.sum[b], row.q[32 * b..32 * b + 32].iter().map(|&q| q as i32).sum::<i32>());
            for (i, &v) in xs.iter().enumerate() {
                assert!((v - d * row.q[32 * b + i] as f32).abs() <= d / 2.0 + 1e-7);
            }
        }
    }
}
