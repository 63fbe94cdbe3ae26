// tiled_blocks.wgsl — matmul_tiled.wgsl's load for weights in GGML blocks (blocks.wgsl's
// interface): the matrix is N rows (output columns) of K values.
//
// Math: w_kn4(k, n) = W[k, n .. n + 4], four rows' value at input k.

fn w_kn4(k: u32, n: u32) -> vec4<f32> {
    let per_row = dims.k / BLOCK_LEN;
    let e = k % BLOCK_LEN;
    var out = vec4(0.0);
    for (var j = 0u; j < 4u; j++) {
        let blk = (n + j) * per_row + k / BLOCK_LEN;
        let so = sub_block(blk, e / SUB_LEN, dims.n * per_row);
        out[j] = so.x * codes4(blk, e / 4u)[e % 4u] + so.y;
    }
    return out;
}
