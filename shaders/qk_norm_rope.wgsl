// qk_norm_rope.wgsl — Qwen3's per-head RMSNorm of q and of the new keys, then their rotary
// position embedding, in place (the q | k | v matvec stored them plain: the norm needs a whole
// head, which one epilogue's four columns do not see).
//
// Math, for each head vector u (a query head of new row r, or the new key of a KV head) at
// position p = past + r:  û = u / sqrt(mean(u²) + eps) · g  (g = q_norm or k_norm, [head_dim]);
// then for j < hd/2, θ = p · f_j:  û_j' = û_j cos θ − û_{j+hd/2} sin θ,
//                                  û_{j+hd/2}' = û_{j+hd/2} cos θ + û_j sin θ.
// Layout: q [rows, q_dim]; k_cache [t_max, kv_dim] (rows past .. past + rows are new);
// q_norm, k_norm [head_dim]; rope [t_max, head_dim/2] of (cos θ, sin θ).
// Dispatch: (n_head + n_kv_head, rows): workgroups x < n_head take query heads, the rest key
// heads. Workgroup 64, threads striding over the head's dimensions; one sum meets in workgroup memory.
// Bindings: `QkNormBindings`, uniform `QkNormDims` (src/gpu/kernels.rs, uniforms.rs).

var<workgroup> red: array<f32, 64>;
var<workgroup> total: f32;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let hd = dims.head_dim;
    let half = hd / 2u;
    let r = wg.y;
    let pos = step.past + r;
    let is_q = wg.x < dims.n_head;
    var base: u32;
    if (is_q) { base = r * dims.q_dim + wg.x * hd; }
    else { base = pos * dims.kv_dim + (wg.x - dims.n_head) * hd; }

    var s = 0.0;
    for (var i = li; i < hd; i += 64u) {
        var u: f32;
        if (is_q) { u = q[base + i]; } else { u = k_cache[base + i]; }
        s += u * u;
    }
    red[li] = s;
    workgroupBarrier();
    if (li == 0u) {
        var t = 0.0;
        for (var i = 0u; i < 64u; i++) { t += red[i]; }
        total = inverseSqrt(t / f32(hd) + dims.eps);
    }
    workgroupBarrier();
    let rrms = total;

    for (var j = li; j < half; j += 64u) {
        let cs = rope[pos * half + j];
        var a: f32;
        var b: f32;
        if (is_q) {
            a = q[base + j] * rrms * q_norm[j];
            b = q[base + j + half] * rrms * q_norm[j + half];
            q[base + j] = a * cs.x - b * cs.y;
            q[base + j + half] = b * cs.x + a * cs.y;
        } else {
            a = k_cache[base + j] * rrms * k_norm[j];
            b = k_cache[base + j + half] * rrms * k_norm[j + half];
            k_cache[base + j] = a * cs.x - b * cs.y;
            k_cache[base + j + half] = b * cs.x + a * cs.y;
        }
    }
}
