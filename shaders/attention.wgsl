// attention.wgsl — causal multi-head attention of new rows over this layer's KV cache, with
// grouped-query heads (dims.group query heads share one KV head; 1 for GPT-2).
//
// Math, for head h (KV head g = h / group) and new row r (position p = past + r), over t ≤ p:
//   s_t = (q_h · k_{t,g}) / sqrt(head_dim);  P_t = softmax(s)_t;  out[r, h] = Σ_t P_t · v_{t,g}
//
// Layout: q [rows, C] (head h at columns h·head_dim ..); k_cache, v_cache [t_max, kv_c];
// out [rows, C]; probs [rows, n_head, n_positions] (row r, head h: P_0 .. P_p; the rest is
// stale) — read back when the caller asks for attention maps.
//
// Dispatch: (n_head, rows), one workgroup of 64 per (head, row). Threads stride over positions
// for the scores and over head dimensions for the output; max and sum meet in workgroup memory.
// Used for decode (rows = 1) and, row by row, for prefill. head_dim ≤ MAX_HEAD_DIM (256, src/gpu/plan.rs).
// Bindings: `AttentionBindings`, uniform `AttentionDims` (src/gpu/kernels.rs, uniforms.rs).

var<workgroup> qs: array<f32, MAX_HEAD_DIM>;
var<workgroup> red: array<f32, 64>;
var<workgroup> total: f32;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wg.x;
    let r = wg.y;
    let C = dims.c;
    let hd = dims.head_dim;
    let visible = step.past + r + 1u;
    let col = h * hd;
    let KV = dims.kv_c;
    let kv_col = (h / dims.group) * hd;
    let pbase = (r * dims.n_head + h) * dims.t_max;
    for (var d = li; d < hd; d += 64u) { qs[d] = q[r * C + col + d]; }
    workgroupBarrier();

    var m = -3.0e38;
    for (var t = li; t < visible; t += 64u) {
        var s = 0.0;
        for (var d = 0u; d < hd; d++) { s += qs[d] * k_cache[t * KV + kv_col + d]; }
        s *= dims.scale;
        probs[pbase + t] = s;
        m = max(m, s);
    }
    red[li] = m;
    workgroupBarrier();
    if (li == 0u) {
        var mm = red[0];
        for (var i = 1u; i < 64u; i++) { mm = max(mm, red[i]); }
        total = mm;
    }
    workgroupBarrier();
    m = total;
    var sum = 0.0;
    for (var t = li; t < visible; t += 64u) {
        let e = exp(probs[pbase + t] - m);
        probs[pbase + t] = e;
        sum += e;
    }
    red[li] = sum;
    workgroupBarrier();
    if (li == 0u) {
        var s = 0.0;
        for (var i = 0u; i < 64u; i++) { s += red[i]; }
        total = 1.0 / s;
    }
    workgroupBarrier();
    let inv = total;
    for (var t = li; t < visible; t += 64u) { probs[pbase + t] *= inv; }
    storageBarrier();

    for (var d = li; d < hd; d += 64u) {
        var acc = 0.0;
        for (var t = 0u; t < visible; t++) { acc += probs[pbase + t] * v_cache[t * KV + kv_col + d]; }
        out[r * C + col + d] = acc;
    }
}
