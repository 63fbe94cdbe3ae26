// matvec_blocks.wgsl — matvec.wgsl's inner sum for weights in GGML blocks (blocks.wgsl's
// interface): each block is decoded in registers, never into memory.
//
// Math: for each of the four output columns c = col + r, Σ over blocks b = first, first + stride,
// … < K / BLOCK_LEN, over their runs s of SUB_LEN values, of scale(c, b, s) · Σ code · x̂ (+
// offset(c, b, s) · Σ x̂ where the format has offsets: Q4_K's minimums) — scale and offset
// applied once per run, as llama.cpp's dot products do.

fn column_sums(base: u32, col: u32, first: u32, stride: u32, staged: bool) -> vec4<f32> {
    let per_row = dims.k / BLOCK_LEN;
    let n_blocks = dims.n * per_row;
    var acc = vec4(0.0);
    for (var b = first; b < per_row; b += stride) {
        for (var s = 0u; s < BLOCK_LEN / SUB_LEN; s++) {
            var xv: array<vec4<f32>, 8>;
            var xsum = vec4(0.0);
            for (var j = 0u; j < SUB_LEN / 4u; j++) {
                let k = b * BLOCK_LEN + s * SUB_LEN + j * 4u;
                if (staged) {
                    xv[j] = vec4(xs[k], xs[k + 1u], xs[k + 2u], xs[k + 3u]);
                } else {
                    xv[j] = vec4(x[base + k], x[base + k + 1u], x[base + k + 2u], x[base + k + 3u]);
                }
                if (OFFSETS) { xsum += xv[j]; }
            }
            for (var r = 0u; r < 4u; r++) {
                let blk = (col + r) * per_row + b;
                var d = 0.0;
                for (var j = 0u; j < SUB_LEN / 4u; j++) { d += dot(codes4(blk, s * (SUB_LEN / 4u) + j), xv[j]); }
                let so = sub_block(blk, s, n_blocks);
                acc[r] += so.x * d;
                if (OFFSETS) { acc[r] += so.y * (xsum.x + xsum.y + xsum.z + xsum.w); }
            }
        }
    }
    return acc;
}
