// q8_0.wgsl — GGML's Q8_0 codes as the block readers decode them (blocks.wgsl's interface): 32 int8 per block, in 8 words.
//
// Math: code i of a block is byte i of its words, sign-extended.

const BLOCK_WORDS: u32 = 8u;

// Codes 4j .. 4j + 3 of block `blk` (j < 8), as f32.
fn codes4(blk: u32, j: u32) -> vec4<f32> {
    let v = bitcast<i32>(w[blk * BLOCK_WORDS + j]);
    return vec4<f32>(vec4<i32>(extractBits(v, 0u, 8u), extractBits(v, 8u, 8u), extractBits(v, 16u, 8u),
                               extractBits(v, 24u, 8u)));
}
