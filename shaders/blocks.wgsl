// blocks.wgsl — the formats of one f16 scale per 32-value block (Q8_0, Q4_0, Q5_0): where their
// scales are, and `sub_block` over them. Put after the format's q8_0.wgsl, q4_0.wgsl or q5_0.wgsl
// and before the kernel's reader.
//
// Every block format gives the readers — matvec_blocks.wgsl (matvec's inner sum),
// tiled_blocks.wgsl (the tiled GEMM's load), table_blocks.wgsl (the embedding and the head) —
// the same things: BLOCK_LEN (values per block: 32, or 256 for the K-quants), BLOCK_WORDS,
// SUB_LEN (values per scale: 32, Q6_K's 16), OFFSETS (whether a scale comes with an offset: Q4_K's
// minimums), `codes4(blk, j)` (codes 4j .. 4j + 3 of block `blk`, as f32) and
// `sub_block(blk, s, n_blocks)` (scale and offset of the SUB_LEN values from SUB_LEN·s:
// W = scale · code + offset). q4_k.wgsl and q6_k.wgsl give them on their own.
//
// Math: W[row, i] = scale(blk) · code(blk, i % 32), blk = row · (K / 32) + i / 32, the code an
// integer (Q8_0: −128..127; Q4_0: 0..15 − 8) and the scale GGML's f16 — exactly the values the
// CPU reference decodes.
//
// Layout (src/gpu/upload.rs, pack_blocks): rows of K / 32 blocks; `w` is `array<u32>`: first every
// block's codes, BLOCK_WORDS words each, in GGML's byte order; then every block's scale, two f16
// per word (block 2i in the low half).

const BLOCK_LEN: u32 = 32u;
const SUB_LEN: u32 = 32u;
const OFFSETS: bool = false;

// The f16 scale of block `blk` of `n_blocks`, widened.
fn block_scale(blk: u32, n_blocks: u32) -> f32 {
    let pair = unpack2x16float(w[n_blocks * BLOCK_WORDS + blk / 2u]);
    return select(pair.x, pair.y, (blk & 1u) == 1u);
}

// The block's one scale, no offset.
fn sub_block(blk: u32, s: u32, n_blocks: u32) -> vec2<f32> {
    return vec2(block_scale(blk, n_blocks), 0.0);
}
