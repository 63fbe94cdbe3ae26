// blocks.wgsl — a matrix held in GGML blocks (Q8_0, Q4_0), as every block-reading kernel sees it;
// put after the format's q8_0.wgsl or q4_0.wgsl (BLOCK_WORDS, codes4) and before the kernel's
// reader: matvec_blocks.wgsl (matvec's inner sum), tiled_blocks.wgsl (the tiled GEMM's load) or
// table_blocks.wgsl (the embedding and the head).
//
// Math: W[row, i] = scale(blk) · code(blk, i % 32), blk = row · (K / 32) + i / 32, the code an
// integer (Q8_0: −128..127; Q4_0: 0..15 − 8) and the scale GGML's f16 — exactly the values the
// CPU reference decodes.
//
// Layout (src/gpu/upload.rs, pack_blocks): rows of K / 32 blocks; `w` is `array<u32>`: first every
// block's codes, BLOCK_WORDS words each, in GGML's byte order; then every block's scale, two f16
// per word (block 2i in the low half).

// The f16 scale of block `blk` of `n_blocks`, widened.
fn block_scale(blk: u32, n_blocks: u32) -> f32 {
    let pair = unpack2x16float(w[n_blocks * BLOCK_WORDS + blk / 2u]);
    return select(pair.x, pair.y, (blk & 1u) == 1u);
}
