//! Q4_0: blocks of 32 values, one f16 scale `d` and 16 bytes of 4-bit codes — byte `j` holds
//! value `j` in its low nibble and value `j + 16` in its high one; `x = d·(q − 8)`. The scale
//! maps the value of largest magnitude to code 0 (`d = that value / −8`), so its sign is exact.

use super::{QuantError, check_finite, f16, f16_scale};

pub const BLOCK_LEN: usize = 32;
pub const BLOCK_BYTES: usize = 2 + BLOCK_LEN / 2;

pub fn dequantize_block(b: &[u8], y: &mut [f32]) {
    let d = f16(b);
    for (j, &q) in b[2..BLOCK_BYTES].iter().enumerate() {
        y[j] = d * ((q & 0x0F) as i32 - 8) as f32;
        y[j + 16] = d * ((q >> 4) as i32 - 8) as f32;
    }
}

/// Quantizes `x` (a whole number of blocks) as GGML's reference `quantize_row_q4_0` does.
pub fn quantize_q4_0(x: &[f32]) -> Result<Vec<u8>, QuantError> {
    check_finite(x)?;
    if !x.len().is_multiple_of(BLOCK_LEN) {
        return Err(QuantError::PartialBlock { ty: super::GgmlType::Q4_0, n: x.len() as u64, block: 32 });
    }
    let mut out = Vec::with_capacity(x.len() / BLOCK_LEN * BLOCK_BYTES);
    for (i, block) in x.chunks_exact(BLOCK_LEN).enumerate() {
        let max = block.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16_scale(d, i * BLOCK_LEN)?);
        let code = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
        out.extend((0..16).map(|j| code(block[j]) | (code(block[j + 16]) << 4)));
    }
    Ok(out)
}
