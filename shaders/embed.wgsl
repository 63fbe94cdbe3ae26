// embed.wgsl — token + position embedding into the residual stream.
//
// Math: x[r, c] = wte[ids[r], c] + wpe[past + r, c] (the second term only when dims.positions = 1:
// rotary models have no position table); and seen[ids[r]] = 1 (the context's tokens,
// for the sampler's repetition penalty).
// Layout: ids [rows] u32; wte rows v_lo .. v_lo + v_count of [vocab, C] (a tensor larger than
// one storage binding is split into row chunks, one dispatch each; a chunk writes only the rows
// whose token it holds), read as w4 (f32 or packed f16); wpe [n_positions, C] f32 (unread when
// dims.positions = 0); x [rows, C];
// seen [vocab] u32.
// Dispatch: (ceil(C / 4 / 64), rows); each thread writes four channels. C % 4 == 0.
// Bindings: `EmbedBindings`, uniform `EmbedDims` (src/gpu/kernels.rs, uniforms.rs).

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let quad = gid.x;
    let r = gid.y;
    let C = dims.c;
    if (quad * 4u >= C || r >= step.rows) { return; }
    let id = ids[r];
    if (id < dims.v_lo || id >= dims.v_lo + dims.v_count) { return; }
    if (quad == 0u) { seen[id] = 1u; }
    let e = w4(((id - dims.v_lo) * C) / 4u + quad);
    for (var j = 0u; j < 4u; j++) {
        let c = quad * 4u + j;
        var p = 0.0;
        if (dims.positions == 1u) { p = wpe[(step.past + r) * C + c]; }
        x[r * C + c] = e[j] + p;
    }
}
