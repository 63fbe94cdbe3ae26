// table_blocks.wgsl — embed.wgsl's and lm_head.wgsl's load for an embedding or head held in GGML
// blocks (blocks.wgsl's interface): this binding's dims.v_count rows of dims.c values.
//
// Math: w4(i) = elements 4i .. 4i + 3 of the row-major chunk; four consecutive elements never
// straddle a block or a run of SUB_LEN values (a multiple of 4).

fn w4(i: u32) -> vec4<f32> {
    let per_block = BLOCK_LEN / 4u;
    let blk = i / per_block;
    let j = i % per_block;
    let so = sub_block(blk, j / (SUB_LEN / 4u), dims.v_count * (dims.c / BLOCK_LEN));
    return so.x * codes4(blk, j) + so.y;
}
