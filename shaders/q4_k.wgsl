// q4_k.wgsl — GGML's Q4_K super-blocks as the block readers decode them (the interface of
// blocks.wgsl, given here on its own): 256 values in 144 bytes, kept whole as 36 words.
//
// Math: the super-block holds f16 d and dmin, then 12 bytes packing eight 6-bit scales sc_s and
// eight 6-bit mins m_s (one per 32 values), then 128 bytes of 4-bit codes q. Value i of
// sub-block s is d·sc_s·q − dmin·m_s. The 32 bytes from 16 + 32p hold sub-block 2p in their
// low nibbles and 2p + 1 in their high ones (src/quant/k_quants.rs, llama.cpp's
// dequantize_row_q4_K).
//
// Layout (src/gpu/upload.rs, pack_blocks): the file's bytes unchanged (144 = 36 words, so every
// super-block starts on a word); word 0 is d | dmin, words 1–3 the packed scales, 4–35 the codes.

const BLOCK_LEN: u32 = 256u;
const BLOCK_WORDS: u32 = 36u;
const SUB_LEN: u32 = 32u;
const OFFSETS: bool = true;

// Codes 4j .. 4j + 3 of super-block `blk` (j < 64): four bytes of one word, low or high nibbles.
fn codes4(blk: u32, j: u32) -> vec4<f32> {
    let v = w[blk * BLOCK_WORDS + 4u + (j / 16u) * 8u + (j % 8u)] >> (((j / 8u) & 1u) * 4u);
    return vec4<f32>(vec4<u32>(v & 15u, (v >> 8u) & 15u, (v >> 16u) & 15u, (v >> 24u) & 15u));
}

// Byte i (< 12) of the packed scales.
fn scale_byte(blk: u32, i: u32) -> u32 {
    return (w[blk * BLOCK_WORDS + 1u + i / 4u] >> ((i % 4u) * 8u)) & 255u;
}

// (d·sc_s, −dmin·m_s) of sub-block s of 32: the first four 6-bit pairs are bytes s and s + 4;
// the last four take their low 4 bits from byte s + 4 and their top 2 from the tops of bytes
// s − 4 and s.
fn sub_block(blk: u32, s: u32, n_blocks: u32) -> vec2<f32> {
    let dm = unpack2x16float(w[blk * BLOCK_WORDS]);
    var sc: u32;
    var m: u32;
    if (s < 4u) {
        sc = scale_byte(blk, s) & 63u;
        m = scale_byte(blk, s + 4u) & 63u;
    } else {
        let lo = scale_byte(blk, s + 4u);
        sc = (lo & 15u) | ((scale_byte(blk, s - 4u) >> 6u) << 4u);
        m = (lo >> 4u) | ((scale_byte(blk, s) >> 6u) << 4u);
    }
    return vec2(dm.x * f32(sc), -dm.y * f32(m));
}
