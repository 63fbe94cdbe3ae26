//! Q5_0: blocks of 32 values, one f16 scale `d`, 32 fifth bits (a little-endian u32) and 16
//! bytes of low nibbles laid out as Q4_0's; `x = d·(q − 16)`. llama-quantize falls back to it
//! for Q4_K rows that are not a multiple of 256 values.

use super::f16;

pub const BLOCK_BYTES: usize = 2 + 4 + 16;

pub fn dequantize_block(b: &[u8], y: &mut [f32]) {
    let d = f16(b);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (j, &q) in b[6..BLOCK_BYTES].iter().enumerate() {
        let lo = (q & 0x0F) as u32 | (((qh >> j) & 1) << 4);
        let hi = (q >> 4) as u32 | (((qh >> (j + 16)) & 1) << 4);
        y[j] = d * (lo as i32 - 16) as f32;
        y[j + 16] = d * (hi as i32 - 16) as f32;
    }
}
