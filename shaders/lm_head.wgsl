// lm_head.wgsl — logits from the final hidden state with the (tied) embedding matrix.
//
// Math: logits[j, v] = Σ_c h[first + j, c] · E[v, c], for the last step.logit_rows rows
// (first = rows - logit_rows) and v in this chunk v_lo .. v_lo + v_count.
// Layout: h [rows, C] f32; E rows v_lo .. of [vocab, C] (wte, or lm_head when untied), read as
// w4 (f32 or packed f16), C % 4 == 0; logits [logit_rows, vocab].
// Dispatch: (ceil(v_count / 64), logit_rows); one vocabulary entry per thread, a dot product
// over contiguous memory. A matrix larger than one binding is split by rows, one dispatch each.
// Bindings: `HeadBindings`, uniform `HeadDims` (src/gpu/kernels.rs, uniforms.rs).

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let v = gid.x;
    let j = gid.y;
    if (v >= dims.v_count || j >= step.logit_rows) { return; }
    let cq = dims.c / 4u;
    let hrow = (step.rows - step.logit_rows + j) * cq;
    var acc = vec4(0.0);
    for (var i = 0u; i < cq; i++) { acc += h[hrow + i] * w4(v * cq + i); }
    logits[j * dims.vocab + dims.v_lo + v] = acc.x + acc.y + acc.z + acc.w;
}
