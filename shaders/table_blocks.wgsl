// table_blocks.wgsl — embed.wgsl's and lm_head.wgsl's load for an embedding or head held in GGML
// blocks (blocks.wgsl): this binding's dims.v_count rows of dims.c values.
//
// Math: w4(i) = elements 4i .. 4i + 3 of the row-major chunk; four consecutive elements never
// straddle a block (32 % 4 = 0).

fn w4(i: u32) -> vec4<f32> {
    let blk = i / 8u;
    return block_scale(blk, dims.v_count * (dims.c / 32u)) * codes4(blk, i % 8u);
}
