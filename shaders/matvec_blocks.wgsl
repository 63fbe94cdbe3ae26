// matvec_blocks.wgsl — matvec.wgsl's inner sum for weights in GGML blocks (blocks.wgsl): each
// block is decoded in registers, never into memory.
//
// Math: for each of the four output columns c = col + r, Σ over blocks b = first, first + stride,
// … < K / 32 of scale(c, b) · Σ_{i < 32} code(c, b, i) · x̂[32b + i] — the scale applied once per
// block, as llama.cpp's dot products do.

fn column_sums(base: u32, col: u32, first: u32, stride: u32, staged: bool) -> vec4<f32> {
    let per_row = dims.k / 32u;
    var acc = vec4(0.0);
    for (var b = first; b < per_row; b += stride) {
        var xv: array<vec4<f32>, 8>;
        for (var j = 0u; j < 8u; j++) {
            let k = b * 32u + j * 4u;
            if (staged) {
                xv[j] = vec4(xs[k], xs[k + 1u], xs[k + 2u], xs[k + 3u]);
            } else {
                xv[j] = vec4(x[base + k], x[base + k + 1u], x[base + k + 2u], x[base + k + 3u]);
            }
        }
        for (var r = 0u; r < 4u; r++) {
            let blk = (col + r) * per_row + b;
            var d = 0.0;
            for (var j = 0u; j < 8u; j++) { d += dot(codes4(blk, j), xv[j]); }
            acc[r] += block_scale(blk, dims.n * per_row) * d;
        }
    }
    return acc;
}
