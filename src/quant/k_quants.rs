//! The K-quants' super-blocks of 256 values (llama.cpp's `Q4_K` and `Q6_K`), each split into
//! sub-blocks with their own quantized scales.

use super::f16;

/// Q4_K: f16 `d`, f16 `dmin`, 12 bytes packing eight 6-bit scales and eight 6-bit mins, then
/// 128 bytes of nibbles: each 32 bytes hold two sub-blocks of 32 (low nibbles, then high).
pub const Q4K_BYTES: usize = 2 + 2 + 12 + 128;
/// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed 8-bit scales (one
/// per 16 values), then f16 `d`.
pub const Q6K_BYTES: usize = 128 + 64 + 16 + 2;

/// Scale and min of sub-block `j` (0..8) from Q4_K's 12 packed bytes: the first four of each
/// are 6 bits of bytes 0–7; the last four are split between bytes 8–11 and the top bits of 0–7.
#[inline]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// The eight sub-blocks' scales and mins of a Q4_K super-block, from its 12 packed bytes:
/// [`scale_min_k4`] for all eight at once, four bytes per 32-bit operation (llama.cpp's
/// `kmask` trick) — no branch, so it inlines into the SIMD kernels.
#[inline(always)]
pub(super) fn scales_mins(q: &[u8]) -> ([u8; 8], [u8; 8]) {
    let word = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (u0, u1, u2) = (word(0), word(1), word(2));
    let (six, low4, top2) = (0x3F3F_3F3F, 0x0F0F_0F0F, 0x0303_0303);
    let join = |a: u32, b: u32| (a as u64 | (b as u64) << 32).to_le_bytes();
    let scales = join(u0 & six, (u2 & low4) | ((u0 >> 6) & top2) << 4);
    let mins = join(u1 & six, ((u2 >> 4) & low4) | ((u1 >> 6) & top2) << 4);
    (scales, mins)
}

/// The multipliers of Q4_K super-block `b`'s sub-blocks, a pair at a time (the 32 code bytes
/// from `16 + 32·pair` hold sub-blocks `2·pair` and `2·pair + 1`, low nibbles then high):
/// `[d·sc₁, d·sc₂, −dmin·m₁, −dmin·m₂]`. Once per super-block: `d` and `dmin` converted once.
#[inline]
pub(super) fn multipliers(b: &[u8]) -> [[f32; 4]; 4] {
    let (d, dmin) = (f16(&b[0..2]), f16(&b[2..4]));
    let (sc, m) = scales_mins(&b[4..16]);
    std::array::from_fn(|pair| {
        let (j1, j2) = (2 * pair, 2 * pair + 1);
        [d * sc[j1] as f32, d * sc[j2] as f32, -dmin * m[j1] as f32, -dmin * m[j2] as f32]
    })
}

pub fn dequantize_q4k(b: &[u8], y: &mut [f32]) {
    let m = multipliers(b);
    for (pair, (q, y)) in b[16..Q4K_BYTES].chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let [a1, a2, o1, o2] = m[pair];
        for l in 0..32 {
            y[l] = a1 * (q[l] & 0x0F) as f32 + o1;
            y[l + 32] = a2 * (q[l] >> 4) as f32 + o2;
        }
    }
}

/// The four Q6_K codes (−32 .. 31) at `l`, `l + 32`, `l + 64` and `l + 96` of a half super-block:
/// low nibbles of `ql[l]`, `ql[l + 32]`, then their high nibbles, each with two bits of `qh[l]`.
pub(super) fn q6k_codes(ql_l: u8, ql_l32: u8, qh_l: u8) -> [i32; 4] {
    [
        ((ql_l & 0x0F) | ((qh_l & 3) << 4)) as i32 - 32,
        ((ql_l32 & 0x0F) | (((qh_l >> 2) & 3) << 4)) as i32 - 32,
        ((ql_l >> 4) | (((qh_l >> 4) & 3) << 4)) as i32 - 32,
        ((ql_l32 >> 4) | (((qh_l >> 6) & 3) << 4)) as i32 - 32,
    ]
}

pub fn dequantize_q6k(b: &[u8], y: &mut [f32]) {
    let (ql, rest) = b.split_at(128);
    let (qh, rest) = rest.split_at(64);
    let (sc, d) = rest.split_at(16);
    let d = f16(d);
    for half in 0..2 {
        let (ql, qh, sc) = (&ql[64 * half..], &qh[32 * half..], &sc[8 * half..]);
        let y = &mut y[128 * half..];
        for l in 0..32 {
            let is = l / 16;
            for (j, q) in q6k_codes(ql[l], ql[l + 32], qh[l]).into_iter().enumerate() {
                y[l + 32 * j] = d * sc[is + 2 * j] as i8 as f32 * q as f32;
            }
        }
    }
}

/// GGML's `nearest_int`: round half to even through the float's mantissa (|v| < 2²²).
fn nearest_int(v: f32) -> i32 {
    ((v + 12_582_912.0).to_bits() & 0x007F_FFFF) as i32 - 0x0040_0000
}

/// llama.cpp's `make_qkx2_quants` for `n = 32`, `nmax = 15`: the scale and (negated) minimum of
/// one sub-block fitted to `x` by weighted least squares over 21 trial scales, codes in `l`.
/// Returns `(scale, -min)`.
fn fit_scale_min(x: &[f32; 32], weights: &[f32; 32], l: &mut [u8]) -> (f32, f32) {
    const NMAX: i32 = 15;
    let (rmin, rdelta, nstep) = (-1.0f32, 0.1f32, 20);
    let (mut min, mut max) = (x[0], x[0]);
    let (mut sum_w, mut sum_x) = (weights[0], weights[0] * x[0]);
    for i in 1..32 {
        min = min.min(x[i]);
        max = max.max(x[i]);
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    // `min` is read afresh on every trial: as in C, a better fit moves it for the trials after.
    let code = |iscale: f32, v: f32, min: f32| nearest_int(iscale * (v - min)).clamp(0, NMAX) as u8;
    let mut iscale = NMAX as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..32 {
        l[i] = code(iscale, x[i], min);
        let diff = scale * l[i] as f32 + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    let mut aux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + NMAX as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..32 {
            aux[i] = code(iscale, x[i], min);
            let (w, q) = (weights[i], aux[i] as f32);
            sum_l += w * q;
            sum_l2 += w * q * q;
            sum_xl += w * q * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut error = 0f32;
            for i in 0..32 {
                let diff = this_scale * aux[i] as f32 + this_min - x[i];
                error += weights[i] * (diff * diff);
            }
            if error < best_error {
                l.copy_from_slice(&aux);
                best_error = error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Quantizes `x` (whole super-blocks of 256) as llama.cpp's `quantize_row_q4_K_ref` does (what
/// `llama-quantize` writes without an importance matrix): per sub-block of 32 a least-squares
/// scale and minimum, both then quantized to 6 bits against the super-block's largest.
pub fn quantize_q4k(x: &[f32]) -> Result<Vec<u8>, super::QuantError> {
    super::check_finite(x)?;
    if !x.len().is_multiple_of(256) {
        return Err(super::QuantError::PartialBlock { ty: super::GgmlType::Q4K, n: x.len() as u64, block: 256 });
    }
    let mut out = Vec::with_capacity(x.len() / 256 * Q4K_BYTES);
    for (i, x) in x.chunks_exact(256).enumerate() {
        let mut codes = [0u8; 256];
        let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
        for j in 0..8 {
            let xs: &[f32; 32] = x[32 * j..32 * j + 32].try_into().expect("32 values");
            let av_x = (xs.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
            let weights = xs.map(|v| av_x + v.abs());
            (scales[j], mins[j]) = fit_scale_min(xs, &weights, &mut codes[32 * j..32 * j + 32]);
        }
        let max_scale = scales.iter().fold(0f32, |m, &s| if s > m { s } else { m });
        let max_min = mins.iter().fold(0f32, |m, &s| if s > m { s } else { m });
        let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        let mut packed = [0u8; 12];
        for j in 0..8 {
            // C stores nearest_int in a uint8_t before MIN(63, ·): the same wrap, then the cap.
            let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
            if j < 4 {
                packed[j] = ls;
                packed[j + 4] = lm;
            } else {
                packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
                packed[j - 4] |= (ls >> 4) << 6;
                packed[j] |= (lm >> 4) << 6;
            }
        }
        let d = super::f16_scale(max_scale / 63.0, i * 256)?;
        let dmin = super::f16_scale(max_min / 63.0, i * 256)?;
        let (d_f, dmin_f) = (f16(&d), f16(&dmin));
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, &packed);
            let d = d_f * sc as f32;
            if d == 0.0 {
                continue;
            }
            let dm = dmin_f * m as f32;
            for (l, &v) in codes[32 * j..32 * j + 32].iter_mut().zip(&x[32 * j..]) {
                *l = nearest_int((v + dm) / d).clamp(0, 15) as u8;
            }
        }
        out.extend_from_slice(&d);
        out.extend_from_slice(&dmin);
        out.extend_from_slice(&packed);
        for half in codes.chunks_exact(64) {
            out.extend((0..32).map(|l| half[l] | (half[l + 32] << 4)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_and_mins_unpack_alike_one_at_a_time_and_all_at_once() {
        // Every bit of the 12 bytes set alone, then mixed patterns.
        let mut patterns: Vec<[u8; 12]> = (0..96)
            .map(|bit| {
                let mut q = [0u8; 12];
                q[bit / 8] = 1 << (bit % 8);
                q
            })
            .collect();
        patterns.extend((0..64u32).map(|s| {
            std::array::from_fn(|i| (s.wrapping_mul(2_654_435_761) >> (i % 24)) as u8 ^ (i as u8).wrapping_mul(37))
        }));
        patterns.push([0xFF; 12]);
        for q in patterns {
            let (scales, mins) = scales_mins(&q);
            for j in 0..8 {
                assert_eq!((scales[j], mins[j]), scale_min_k4(j, &q), "sub-block {j} of {q:?}");
            }
        }
    }
}
