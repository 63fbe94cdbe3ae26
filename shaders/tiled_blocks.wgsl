// tiled_blocks.wgsl — matmul_tiled.wgsl's load for weights in GGML blocks (blocks.wgsl): the
// matrix is N rows (output columns) of K values.
//
// Math: w_kn4(k, n) = W[k, n .. n + 4], four rows' value at input k.

fn w_kn4(k: u32, n: u32) -> vec4<f32> {
    let per_row = dims.k / 32u;
    let e = k % 32u;
    var out = vec4(0.0);
    for (var j = 0u; j < 4u; j++) {
        let blk = (n + j) * per_row + k / 32u;
        out[j] = block_scale(blk, dims.n * per_row) * codes4(blk, e / 4u)[e % 4u];
    }
    return out;
}
