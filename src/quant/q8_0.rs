//! Q8_0: blocks of 32 values, one f16 scale `d` and 32 signed bytes; `x = d·q`, `d = max|x| / 127`.

use super::{QuantError, check_finite, f16, f16_scale};

pub const BLOCK_LEN: usize = 32;
pub const BLOCK_BYTES: usize = 2 + BLOCK_LEN;

pub fn dequantize_block(b: &[u8], y: &mut [f32]) {
    let d = f16(b);
    for (y, &q) in y.iter_mut().zip(&b[2..BLOCK_BYTES]) {
        *y = d * q as i8 as f32;
    }
}

/// Quantizes `x` (a whole number of blocks) as GGML's reference `quantize_row_q8_0` does.
pub fn quantize_q8_0(x: &[f32]) -> Result<Vec<u8>, QuantError> {
    check_finite(x)?;
    if !x.len().is_multiple_of(BLOCK_LEN) {
        return Err(QuantError::PartialBlock { ty: super::GgmlType::Q8_0, n: x.len() as u64, block: 32 });
    }
    let mut out = Vec::with_capacity(x.len() / BLOCK_LEN * BLOCK_BYTES);
    for (i, block) in x.chunks_exact(BLOCK_LEN).enumerate() {
        let amax = super::abs_max(block);
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16_scale(d, i * BLOCK_LEN)?);
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
    Ok(out)
}
