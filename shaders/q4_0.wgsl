// q4_0.wgsl — GGML's Q4_0 codes as the block readers decode them (blocks.wgsl's interface): 32 4-bit codes per block, in 4 words.
//
// Math: GGML's byte i (i < 16) holds code i in its low nibble and code i + 16 in its high one;
// a code c stands for c − 8. Word j holds bytes 4j .. 4j + 3.

const BLOCK_WORDS: u32 = 4u;

// Codes 4j .. 4j + 3 of block `blk` (j < 8), as f32: low nibbles of word j for j < 4, high
// nibbles of word j − 4 after.
fn codes4(blk: u32, j: u32) -> vec4<f32> {
    let v = w[blk * BLOCK_WORDS + (j & 3u)] >> ((j >> 2u) * 4u);
    return vec4<f32>(vec4<u32>(v & 15u, (v >> 8u) & 15u, (v >> 16u) & 15u, (v >> 24u) & 15u)) - 8.0;
}
