//! llama.cpp's (GGML's) block-quantized weight formats, as GGUF files store them: the layouts,
//! the plain dequantization every engine is checked against, and quantization for the formats
//! `wgpt` writes. A tensor row of `n` values is `n / block_len` blocks laid end to end; each block
//! holds its own scale(s), so a row decodes without reading anything else.
//!
//! | type | values per block | bytes per block | bits per weight | layout |
//! |---|---:|---:|---:|---|
//! | Q8_0 | 32 | 34 | 8.5 | f16 `d`, 32 × i8 `q`: `x = d·q` |
//! | Q4_0 | 32 | 18 | 4.5 | f16 `d`, 16 bytes of nibbles (low: values 0–15, high: 16–31): `x = d·(q − 8)` |
//! | Q5_0 | 32 | 22 | 5.5 | f16 `d`, 4 bytes of fifth bits, 16 bytes of nibbles: `x = d·(q − 16)` |
//! | Q4_K | 256 | 144 | 4.5 | f16 `d`, f16 `dmin`, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32, 128 bytes of nibbles: `x = d·sc·q − dmin·m` |
//! | Q6_K | 256 | 210 | 6.56 | 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 × i8 scales, f16 `d`: `x = d·sc·(q − 32)` |
//!
//! (Q4_K_M files mix Q4_K and Q6_K, and fall back to Q5_0 / Q8_0 for rows not a multiple of 256.)

pub mod int8;
mod int8_prefill;
mod k_quants;
pub mod matrix;
mod q4_0;
mod q5_0;
mod q8_0;
pub(crate) mod simd;

pub use int8::Activations;
pub use k_quants::quantize_q4k;
pub use matrix::{BlockBytes, Blocks, Matrix};
pub use q4_0::quantize_q4_0;
pub use q8_0::quantize_q8_0;

/// A tensor's storage type, by GGML's type number (`ggml_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q5_0,
    Q8_0,
    Q4K,
    Q6K,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuantError {
    #[error("GGML tensor type {0} is not one wgpt reads (F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q6_K)")]
    UnknownType(u32),
    #[error("a row of {n} values is not a whole number of {ty:?} blocks of {block}")]
    PartialBlock { ty: GgmlType, n: u64, block: u64 },
    #[error("{ty:?}: {got} bytes for {n} values, expected {want}")]
    Size { ty: GgmlType, n: usize, got: usize, want: usize },
    #[error("cannot quantize a non-finite value ({value}) at index {index}")]
    NonFinite { index: usize, value: f32 },
    #[error(
        "the block at index {index} needs a scale of {scale}, past f16's range: its values are too large to quantize"
    )]
    ScaleOverflow { index: usize, scale: f32 },
    #[error("wgpt quantizes to Q8_0, Q4_0 and Q4_K, not {0:?}")]
    Unsupported(GgmlType),
    #[error("F32 rows held as stored must start on a 4-byte boundary")]
    Unaligned,
    #[error("block {block}'s scale is NaN or infinite")]
    NonFiniteScale { block: usize },
}

impl GgmlType {
    /// From GGML's type number.
    pub fn from_id(id: u32) -> Result<Self, QuantError> {
        Ok(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            6 => GgmlType::Q5_0,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            14 => GgmlType::Q6K,
            30 => GgmlType::BF16,
            other => return Err(QuantError::UnknownType(other)),
        })
    }

    /// GGML's name, as `gguf-py` and llama.cpp print it.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q6K => "Q6_K",
        }
    }

    /// F32, F16 or BF16: one value per "block", no scale.
    pub fn is_float(self) -> bool {
        matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
    }

    /// Values per block.
    pub fn block_len(self) -> u64 {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => 32,
            GgmlType::Q4K | GgmlType::Q6K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => q4_0::BLOCK_BYTES as u64,
            GgmlType::Q5_0 => q5_0::BLOCK_BYTES as u64,
            GgmlType::Q8_0 => q8_0::BLOCK_BYTES as u64,
            GgmlType::Q4K => k_quants::Q4K_BYTES as u64,
            GgmlType::Q6K => k_quants::Q6K_BYTES as u64,
        }
    }

    /// Bytes of a tensor whose rows hold `row` values and which holds `n` values in all (checked:
    /// a row must be whole blocks). None on overflow.
    pub fn bytes_for(self, row: u64, n: u64) -> Result<Option<u64>, QuantError> {
        if !row.is_multiple_of(self.block_len()) {
            return Err(QuantError::PartialBlock { ty: self, n: row, block: self.block_len() });
        }
        Ok((n / self.block_len()).checked_mul(self.block_bytes()))
    }
}

#[inline]
fn f16(b: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

/// An f16's value, the same bits as `half`'s conversion (NaNs made quiet, as it does), without a
/// branch: exponent and mantissa moved into an f32's places and scaled by 2¹¹² (which normalizes
/// the subnormals too), then the all-ones exponent put back for infinities and NaNs. `half`
/// converts in software where there is no F16C (wasm: a block scale per 32 values, with a branch
/// for each special case).
#[inline]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let (sign, magnitude) = ((h as u32 & 0x8000) << 16, h as u32 & 0x7FFF);
    let scaled = f32::from_bits(magnitude << 13) * f32::from_bits(0x7780_0000); // 2^112
    let special = match magnitude {
        0x7C00 => 0x7F80_0000,
        m if m > 0x7C00 => 0x7FC0_0000,
        _ => 0,
    };
    f32::from_bits(scaled.to_bits() | special | sign)
}

/// Decodes `n` values stored as `ty` into f32 (the reference: one block at a time, as GGML's
/// `dequantize_row_*` do).
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>, QuantError> {
    let mut out = vec![0f32; n];
    dequantize_into(ty, bytes, &mut out)?;
    Ok(out)
}

/// [`dequantize`] into `out` (as many values as it holds): no allocation, for the products'
/// block-by-block decoding and embedding lookups.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let n = out.len();
    let want = (n as u64 / ty.block_len()).saturating_mul(ty.block_bytes());
    if !(n as u64).is_multiple_of(ty.block_len()) {
        return Err(QuantError::PartialBlock { ty, n: n as u64, block: ty.block_len() });
    }
    if bytes.len() as u64 != want {
        return Err(QuantError::Size { ty, n, got: bytes.len(), want: want as usize });
    }
    let blocks = bytes.chunks_exact(ty.block_bytes() as usize);
    let rows = out.chunks_exact_mut(ty.block_len() as usize);
    match ty {
        GgmlType::F32 => blocks.zip(rows).for_each(|(b, y)| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        GgmlType::F16 => blocks.zip(rows).for_each(|(b, y)| y[0] = f16(b)),
        GgmlType::BF16 => blocks.zip(rows).for_each(|(b, y)| y[0] = half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        GgmlType::Q4_0 => blocks.zip(rows).for_each(|(b, y)| q4_0::dequantize_block(b, y)),
        GgmlType::Q5_0 => blocks.zip(rows).for_each(|(b, y)| q5_0::dequantize_block(b, y)),
        GgmlType::Q8_0 => blocks.zip(rows).for_each(|(b, y)| q8_0::dequantize_block(b, y)),
        GgmlType::Q4K => blocks.zip(rows).for_each(|(b, y)| k_quants::dequantize_q4k(b, y)),
        GgmlType::Q6K => blocks.zip(rows).for_each(|(b, y)| k_quants::dequantize_q6k(b, y)),
    }
    Ok(())
}

/// `x` as F16 or BF16 (what `--dtype f16` on the CPU holds), refused where a value is not
/// finite or past the type's range (it would decode to infinity).
pub fn to_16_bits(ty: GgmlType, x: &[f32]) -> Result<Vec<u8>, QuantError> {
    check_finite(x)?;
    let mut out = Vec::with_capacity(2 * x.len());
    for (index, &v) in x.iter().enumerate() {
        let (bytes, finite) = match ty {
            GgmlType::F16 => (half::f16::from_f32(v).to_le_bytes(), half::f16::from_f32(v).is_finite()),
            GgmlType::BF16 => (half::bf16::from_f32(v).to_le_bytes(), half::bf16::from_f32(v).is_finite()),
            other => return Err(QuantError::Unsupported(other)),
        };
        if !finite {
            return Err(QuantError::ScaleOverflow { index, scale: v });
        }
        out.extend(bytes);
    }
    Ok(out)
}

/// The first value of F32, F16 or BF16 `bytes` that is NaN or infinite (exponent all ones), with
/// its index: a file's float matrices are held as stored, so they are checked here, where the
/// ones decoded to f32 are checked as they are decoded.
pub fn first_non_finite_float(ty: GgmlType, bytes: &[u8]) -> Option<(usize, f32)> {
    if ty == GgmlType::F32 {
        let (i, b) = bytes.as_chunks::<4>().0.iter().enumerate().find(|(_, b)| !f32::from_le_bytes(**b).is_finite())?;
        return Some((i, f32::from_le_bytes(*b)));
    }
    let exponent: u16 = if ty == GgmlType::F16 { 0x7C00 } else { 0x7F80 };
    let i = bytes.chunks_exact(2).position(|b| u16::from_le_bytes([b[0], b[1]]) & exponent == exponent)?;
    let mut v = [0f32];
    dequantize_into(ty, &bytes[2 * i..2 * i + 2], &mut v).expect("one value");
    Some((i, v[0]))
}

/// The first block of `bytes` (blocks of type `ty`) whose f16 scale is NaN or infinite (Q4_0,
/// Q5_0 and Q8_0's `d`, Q4_K's `d` and `dmin`, Q6_K's `d`): blocks are multiplied as they are
/// stored, and a file's are refused here as its F16 matrices are
/// ([`first_non_finite_float`]), so the kernels may widen scales as finite numbers (SIMD128's
/// `simd.rs` `scales4`).
pub fn first_non_finite_scale(ty: GgmlType, bytes: &[u8]) -> Option<usize> {
    let at: &[usize] = match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4K => &[0, 2],
        GgmlType::Q6K => &[208],
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => return None,
    };
    bytes
        .chunks_exact(ty.block_bytes() as usize)
        .position(|b| at.iter().any(|&i| u16::from_le_bytes([b[i], b[i + 1]]) & 0x7C00 == 0x7C00))
}

/// The largest magnitude in `x` (0 for none; NaNs passed over, as `f32::max` does) by compare
/// and select: in wasm `f32::max` is a call to libm's `fmaxf` per value (its NaN rule is not
/// `f32.max`'s), 2–3 % of the page's decode where each product's activations are quantized.
pub(crate) fn abs_max(x: &[f32]) -> f32 {
    // Eight running maxima, which vectorize (a maximum is exact in any order).
    let mut lanes = [0f32; 8];
    let (chunks, rest) = x.as_chunks::<8>();
    for c in chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            if v.abs() > *m {
                *m = v.abs();
            }
        }
    }
    lanes.iter().chain(rest).fold(0f32, |m, v| if v.abs() > m { v.abs() } else { m })
}

/// Refuses NaN and infinities before quantizing (a scale of NaN would poison a whole block).
fn check_finite(x: &[f32]) -> Result<(), QuantError> {
    match x.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(QuantError::NonFinite { index, value: x[index] }),
        None => Ok(()),
    }
}

/// A block's scale as stored (f16), refused when it does not fit (it would decode to infinity).
fn f16_scale(d: f32, index: usize) -> Result<[u8; 2], QuantError> {
    let h = half::f16::from_f32(d);
    if h.is_infinite() {
        return Err(QuantError::ScaleOverflow { index, scale: d });
    }
    Ok(h.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The branch-free f16 conversion is `half`'s, bit for bit, on all 65,536 values.
    #[test]
    fn f16_to_f32_is_half_s_conversion_on_every_value() {
        for h in 0..=u16::MAX {
            let (got, want) = (f16_to_f32(h), half::f16::from_bits(h).to_f32());
            assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}: {got} vs {want}");
        }
    }

    /// Deterministic values in ±`scale`.
    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                scale * ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    /// `--dtype f16` refuses what F16 cannot hold, and a 16-bit matrix's NaN or infinity is found
    /// (as a file's must be, before it is held as stored).
    #[test]
    fn sixteen_bit_values_are_checked() {
        assert!(matches!(to_16_bits(GgmlType::F16, &[1.0, 70_000.0]), Err(QuantError::ScaleOverflow { index: 1, .. })));
        assert!(matches!(to_16_bits(GgmlType::BF16, &[f32::NAN]), Err(QuantError::NonFinite { index: 0, .. })));
        assert_eq!(to_16_bits(GgmlType::BF16, &[70_000.0]).unwrap().len(), 2);
        let f32_bytes = [0.5f32, f32::NAN, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        assert_eq!(first_non_finite_float(GgmlType::F32, &f32_bytes).map(|(i, _)| i), Some(1));
        assert_eq!(first_non_finite_float(GgmlType::F32, &f32_bytes[..4]), None);
        for ty in [GgmlType::F16, GgmlType::BF16] {
            let mut bytes = to_16_bits(ty, &[0.5, -2.0, 3.0]).unwrap();
            assert_eq!(first_non_finite_float(ty, &bytes), None);
            let inf = if ty == GgmlType::F16 {
                half::f16::INFINITY.to_le_bytes()
            } else {
                half::bf16::NEG_INFINITY.to_le_bytes()
            };
            bytes[2..4].copy_from_slice(&inf);
            let (index, value) = first_non_finite_float(ty, &bytes).unwrap();
            assert_eq!(index, 1);
            assert!(value.is_infinite(), "{ty:?}");
        }
    }

    /// `abs_max` is the fold of `f32::max` over the magnitudes, NaNs and zeros of either sign
    /// included.
    #[test]
    fn abs_max_is_f32_max_s_fold() {
        let mut x = values(300, 9, 3.0);
        x.extend([f32::NAN, -0.0, 0.0, -f32::NAN]);
        for start in [0, 1, 150, 299, 300, 303] {
            let want = x[start..].iter().fold(0f32, |m, v| m.max(v.abs()));
            assert_eq!(abs_max(&x[start..]).to_bits(), want.to_bits(), "from {start}");
        }
        x.push(f32::INFINITY);
        assert_eq!(abs_max(&x), f32::INFINITY);
    }

    /// A block whose scale is NaN or infinite is found, whichever scale of its type it is.
    #[test]
    fn non_finite_block_scales_are_found() {
        let x = values(512, 5, 1.0);
        for (ty, bytes, scales) in [
            (GgmlType::Q8_0, quantize_q8_0(&x).unwrap(), &[0][..]),
            (GgmlType::Q4_0, quantize_q4_0(&x).unwrap(), &[0]),
            (GgmlType::Q4K, quantize_q4k(&x).unwrap(), &[0, 2]),
        ] {
            assert_eq!(first_non_finite_scale(ty, &bytes), None, "{ty:?}");
            let last = bytes.len() / ty.block_bytes() as usize - 1;
            for &at in scales {
                for bad in [half::f16::INFINITY, half::f16::NEG_INFINITY, half::f16::NAN] {
                    let mut b = bytes.clone();
                    let i = last * ty.block_bytes() as usize + at;
                    b[i..i + 2].copy_from_slice(&bad.to_le_bytes());
                    assert_eq!(first_non_finite_scale(ty, &b), Some(last), "{ty:?} scale at {at}: {bad}");
                    let err = super::matrix::Blocks::new(ty, 1, 512, b).map(|_| ()).unwrap_err();
                    assert!(matches!(err, QuantError::NonFiniteScale { block } if block == last), "{err}");
                }
            }
        }
        let mut q6 = vec![0u8; 2 * 210];
        assert_eq!(first_non_finite_scale(GgmlType::Q6K, &q6), None);
        q6[210 + 208..210 + 210].copy_from_slice(&half::f16::NAN.to_le_bytes());
        assert_eq!(first_non_finite_scale(GgmlType::Q6K, &q6), Some(1));
    }

    /// Each value decodes within `bound(block's largest magnitude)` of the input.
    fn round_trip(ty: GgmlType, quantize: fn(&[f32]) -> Result<Vec<u8>, QuantError>, x: &[f32], bound: fn(f32) -> f32) {
        let bytes = quantize(x).unwrap();
        assert_eq!(bytes.len() as u64, ty.bytes_for(32, x.len() as u64).unwrap().unwrap());
        let y = dequantize(ty, &bytes, x.len()).unwrap();
        for (b, (xs, ys)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (a, b2)) in xs.iter().zip(ys).enumerate() {
                assert!((a - b2).abs() <= bound(amax), "{ty:?} block {b} value {i}: {a} → {b2} (max {amax})");
            }
        }
    }

    /// How far f16 may round a scale `d`: 2⁻¹¹ relative, or 2⁻²⁵ among the subnormals.
    fn f16_err(d: f32) -> f32 {
        (d * 2f32.powi(-11)).max(2f32.powi(-25))
    }
    // Q8_0's step is max/127; rounding is half a step, plus the scale's f16 rounding times at
    // most 127 steps.
    fn q8_bound(amax: f32) -> f32 {
        let d = amax / 127.0;
        d / 2.0 + 127.0 * f16_err(d)
    }
    // Q4_0's step is max/8; the far side of the range stops at +7 steps, so a value there may
    // be off by a whole step, plus the scale's f16 rounding times 8 steps.
    fn q4_bound(amax: f32) -> f32 {
        let d = amax / 8.0;
        d + 8.0 * f16_err(d)
    }

    #[test]
    fn q8_0_and_q4_0_decode_within_their_rounding_bounds() {
        for (seed, scale) in [(1, 1.0), (2, 1e-3), (3, 300.0)] {
            let x = values(32 * 7, seed, scale);
            round_trip(GgmlType::Q8_0, quantize_q8_0, &x, q8_bound);
            round_trip(GgmlType::Q4_0, quantize_q4_0, &x, q4_bound);
        }
    }

    #[test]
    fn a_block_of_zeros_decodes_to_zeros() {
        let x = vec![0f32; 64];
        for (ty, q) in [(GgmlType::Q8_0, quantize_q8_0 as fn(&[f32]) -> _), (GgmlType::Q4_0, quantize_q4_0)] {
            let bytes = q(&x).unwrap();
            assert_eq!(dequantize(ty, &bytes, 64).unwrap(), x, "{ty:?}");
        }
    }

    #[test]
    fn one_huge_value_keeps_its_own_precision_and_the_bound_holds() {
        let mut x = values(64, 4, 1.0);
        x[5] = 60_000.0;
        x[40] = -1e5;
        round_trip(GgmlType::Q8_0, quantize_q8_0, &x, q8_bound);
        round_trip(GgmlType::Q4_0, quantize_q4_0, &x, q4_bound);
        let y = dequantize(GgmlType::Q4_0, &quantize_q4_0(&x).unwrap(), 64).unwrap();
        assert!((y[40] + 1e5).abs() < 1e5 * 1e-3, "the block's extreme is its scale: {}", y[40]);
        // Past f16's range the scale itself cannot be stored: refused, not turned into ∞.
        x[7] = 1e10;
        assert!(matches!(quantize_q8_0(&x), Err(QuantError::ScaleOverflow { index: 0, .. })));
        assert!(matches!(quantize_q4_0(&x), Err(QuantError::ScaleOverflow { index: 0, .. })));
    }

    #[test]
    fn nan_and_infinity_are_refused() {
        for bad in [f32::NAN, f32::INFINITY] {
            let mut x = vec![0.5f32; 32];
            x[3] = bad;
            assert!(matches!(quantize_q8_0(&x), Err(QuantError::NonFinite { index: 3, .. })));
            assert!(matches!(quantize_q4_0(&x), Err(QuantError::NonFinite { index: 3, .. })));
        }
    }

    #[test]
    fn sizes_are_checked() {
        assert!(matches!(dequantize(GgmlType::Q8_0, &[0; 33], 32), Err(QuantError::Size { .. })));
        assert!(matches!(dequantize(GgmlType::Q4K, &[0; 144], 200), Err(QuantError::PartialBlock { .. })));
        assert!(matches!(GgmlType::Q6K.bytes_for(100, 100), Err(QuantError::PartialBlock { .. })));
        assert!(matches!(quantize_q8_0(&[1.0; 31]), Err(QuantError::PartialBlock { .. })));
        assert_eq!(GgmlType::from_id(7), Err(QuantError::UnknownType(7)));
    }

    /// Hand-made K-quant blocks against values worked out from llama.cpp's layout.
    #[test]
    fn k_quant_blocks_decode_by_their_layout() {
        // Q4_K: d = 1, dmin = 0.5; sub-block 0 scale 2 min 3, sub-block 5 scale 33 (split bits)
        // min 17; codes: byte 0 low nibble 7 (value 0), byte 64+1 high nibble 9 (value 128+32+1).
        let mut b = vec![0u8; Q4K];
        b[0..2].copy_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
        b[2..4].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        let sc = &mut b[4..16];
        sc[0] = 2; // scale 0
        sc[4] = 3; // min 0
        // Sub-block 5 (the high nibbles of code bytes 64..96): scale = (sc[9] & 15) |
        // (sc[1] >> 6) << 4, min = (sc[9] >> 4) | (sc[5] >> 6) << 4.
        sc[9] = (33 & 15) | ((17 & 15) << 4);
        sc[1] = (33 >> 4) << 6;
        sc[5] = (17 >> 4) << 6;
        b[16] = 7;
        b[16 + 64 + 1] = 9 << 4;
        let y = dequantize(GgmlType::Q4K, &b, 256).unwrap();
        assert_eq!(y[0], 2.0 * 7.0 - 0.5 * 3.0);
        assert_eq!(y[1], -1.5);
        assert_eq!(y[128 + 32 + 1], 33.0 * 9.0 - 0.5 * 17.0);
        // Q6_K: d = 0.25; value 97 (second 32 of the first half's third quarter): low nibble
        // from ql[1] >> 4, high bits from (qh[1] >> 4) & 3, scale sc[0 + 4] (l = 1 → is 0).
        let mut b = vec![0u8; Q6K];
        b[1] = 0xA0; // ql[1]: high nibble 10
        b[128 + 1] = 0b10 << 4; // qh[1]: bits 4-5 = 2
        b[192 + 4] = (-3i8) as u8;
        b[208..210].copy_from_slice(&half::f16::from_f32(0.25).to_le_bytes());
        let y = dequantize(GgmlType::Q6K, &b, 256).unwrap();
        assert_eq!(y[64 + 1], 0.25 * -3.0 * ((10 | (2 << 4)) as f32 - 32.0));
        assert_eq!(y[0], 0.0, "scale 0");
    }

    /// Byte for byte what llama.cpp's `quantize_row_q4_K_ref` wrote for the same values
    /// (`scripts/make_quant_fixtures.py`: smooth, one-signed, zero, huge and tiny blocks).
    #[test]
    fn q4_k_blocks_are_llama_cpp_s() {
        let input = include_bytes!("../../tests/fixtures/quant/q4_k.input.f32");
        let want = include_bytes!("../../tests/fixtures/quant/q4_k.llama-cpp.bin");
        let x: Vec<f32> = input.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let got = quantize_q4k(&x).unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.chunks(Q4K).zip(want.chunks(Q4K)).enumerate() {
            assert_eq!(g, w, "super-block {i}");
        }
        // And what they decode to is near the input: within one 4-bit step of the super-block's
        // spread (not of each sub-block's: beside one huge value, a quiet sub-block's 6-bit
        // scale rounds to 0, as in llama.cpp), plus f16's subnormal step of d and dmin times the
        // largest 6-bit scale times the largest code.
        let y = dequantize(GgmlType::Q4K, &got, x.len()).unwrap();
        for (xs, ys) in x.chunks(256).zip(y.chunks(256)) {
            let spread = xs.iter().fold(0f32, |m, v| m.max(*v)) - xs.iter().fold(0f32, |m, v| m.min(*v));
            let err = xs.iter().zip(ys).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err <= spread / 15.0 + 63.0 * 15.0 * 2f32.powi(-25), "{err} of a spread of {spread}");
        }
        assert!(matches!(quantize_q4k(&x[..100]), Err(QuantError::PartialBlock { .. })));
        let mut bad = x.clone();
        bad[300] = f32::NAN;
        assert!(matches!(quantize_q4k(&bad), Err(QuantError::NonFinite { index: 300, .. })));
    }

    const Q4K: usize = k_quants::Q4K_BYTES;
    const Q6K: usize = k_quants::Q6K_BYTES;
}
