// q6_k.wgsl — GGML's Q6_K super-blocks as the block readers decode them (the interface of
// blocks.wgsl, given here on its own): 256 values in 210 bytes, each padded to 212 (53 words).
//
// Math: 128 bytes of low nibbles ql, 64 bytes of high 2-bit pairs qh, 16 signed 8-bit scales (one
// per 16 values), f16 d. In half h (128 values), quarter q (32 values) at position l < 32: the
// low four bits are ql[64h + 32·(q & 1) + l] (low nibble for q < 2, high after), the top two
// are bits 2q, 2q + 1 of qh[32h + l]; the value is d · scale[8h + l / 16 + 2q] · (code − 32)
// (src/quant/k_quants.rs, llama.cpp's dequantize_row_q6_K).
//
// Layout (src/gpu/upload.rs, pack_blocks): each super-block's bytes as stored and two zero bytes,
// so every super-block starts on a word: ql in words 0–31, qh in 32–47, scales in 48–51, d in
// the low half of word 52.

const BLOCK_LEN: u32 = 256u;
const BLOCK_WORDS: u32 = 53u;
const SUB_LEN: u32 = 16u;
const OFFSETS: bool = false;

// Codes 4j .. 4j + 3 of super-block `blk` (j < 64), as f32.
fn codes4(blk: u32, j: u32) -> vec4<f32> {
    let e = 4u * j;
    let h = e / 128u;
    let q = (e % 128u) / 32u;
    let l = e % 32u;
    let lo = w[blk * BLOCK_WORDS + (64u * h + 32u * (q & 1u) + l) / 4u] >> ((q >> 1u) * 4u);
    let hi = w[blk * BLOCK_WORDS + (128u + 32u * h + l) / 4u] >> (2u * q);
    let nib = vec4<u32>(lo & 15u, (lo >> 8u) & 15u, (lo >> 16u) & 15u, (lo >> 24u) & 15u);
    let top = vec4<u32>(hi & 3u, (hi >> 8u) & 3u, (hi >> 16u) & 3u, (hi >> 24u) & 3u);
    return vec4<f32>(nib | (top << vec4(4u))) - 32.0;
}

// (d · scale, 0) of the 16 values from 16·s16.
fn sub_block(blk: u32, s16: u32, n_blocks: u32) -> vec2<f32> {
    let e = 16u * s16;
    let i = 8u * (e / 128u) + (e % 32u) / 16u + 2u * ((e % 128u) / 32u);
    let word = bitcast<i32>(w[blk * BLOCK_WORDS + 48u + i / 4u]);
    let d = unpack2x16float(w[blk * BLOCK_WORDS + 52u]).x;
    return vec2(d * f32(extractBits(word, (i % 4u) * 8u, 8u)), 0.0);
}
