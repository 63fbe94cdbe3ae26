// blocks.wgsl — reading a matrix held in GGML blocks (Q8_0, Q4_0), for matvec.wgsl and
// matmul_tiled.wgsl; put after the block format's q8_0.wgsl or q4_0.wgsl, which defines
// BLOCK_WORDS and codes4.
//
// Math: W[k, n] = scale(n, k / 32) · code(n, k / 32, k % 32), the code an integer (Q8_0: −128..127;
// Q4_0: 0..15 − 8) and the scale GGML's f16 — exactly the values the CPU reference decodes.
//
// Layout (src/gpu/upload.rs, pack_blocks): the matrix is N rows (output columns) of K / 32
// blocks; block `blk = n · (K / 32) + k / 32`. `w` is `array<u32>`: first every block's codes,
// BLOCK_WORDS words each, in GGML's byte order; then every block's scale, two f16 per word
// (block 2i in the low half).

// The f16 scale of block `blk`, widened.
fn block_scale(blk: u32) -> f32 {
    let scales = dims.n * (dims.k / 32u) * BLOCK_WORDS;
    let pair = unpack2x16float(w[scales + blk / 2u]);
    return select(pair.x, pair.y, (blk & 1u) == 1u);
}

// W[k, n .. n + 4]: four output columns' weight at input k (the tiled prefill's load).
fn w_kn4(k: u32, n: u32) -> vec4<f32> {
    let per_row = dims.k / 32u;
    let e = k % 32u;
    var out = vec4(0.0);
    for (var j = 0u; j < 4u; j++) {
        let blk = (n + j) * per_row + k / 32u;
        out[j] = block_scale(blk) * codes4(blk, e / 4u)[e % 4u];
    }
    return out;
}
