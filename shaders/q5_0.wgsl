// q5_0.wgsl — GGML's Q5_0 codes as the block readers decode them (blocks.wgsl's interface): 32
// 5-bit codes per block, in 5 words.
//
// Math: the block's 4-byte qh holds the fifth bit of code i in bit i; its 16 bytes of nibbles hold
// code i's low four bits in byte i's low nibble (i < 16) or byte i − 16's high one; a code c
// stands for c − 16 (src/quant/q5_0.rs, llama.cpp's dequantize_row_q5_0). Word 0 is qh, words
// 1–4 the nibbles.

const BLOCK_WORDS: u32 = 5u;

// Codes 4j .. 4j + 3 of block `blk` (j < 8), as f32.
fn codes4(blk: u32, j: u32) -> vec4<f32> {
    let v = w[blk * BLOCK_WORDS + 1u + (j & 3u)] >> ((j >> 2u) * 4u);
    let h = w[blk * BLOCK_WORDS] >> (4u * j);
    let lo = vec4<u32>(v & 15u, (v >> 8u) & 15u, (v >> 16u) & 15u, (v >> 24u) & 15u);
    let hi = vec4<u32>(h & 1u, (h >> 1u) & 1u, (h >> 2u) & 1u, (h >> 3u) & 1u);
    return vec4<f32>(lo | (hi << vec4(4u))) - 16.0;
}
