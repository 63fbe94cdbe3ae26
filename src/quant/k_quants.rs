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
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

pub fn dequantize_q4k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16(&b[0..2]), f16(&b[2..4]));
    let scales = &b[4..16];
    let qs = &b[16..Q4K_BYTES];
    for (pair, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * pair, scales);
        let (sc2, m2) = scale_min_k4(2 * pair + 1, scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0F) as f32 - min1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - min2;
        }
    }
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
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| d * sc[is + k] as i8 as f32;
            y[l] = s(0) * q1 as f32;
            y[l + 32] = s(2) * q2 as f32;
            y[l + 64] = s(4) * q3 as f32;
            y[l + 96] = s(6) * q4 as f32;
        }
    }
}
