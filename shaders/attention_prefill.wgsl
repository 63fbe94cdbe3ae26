// attention_prefill.wgsl — causal multi-head attention for a block of new rows at once (prefill on
// GPUs): K/V tiles are staged once in workgroup memory and shared by 16 query rows, with an online
// softmax (running max and sum, as flash attention) so no row of scores is kept.
//
// Math, for head h and new row r (position p = past + r), over positions t ≤ p:
//   out[r, h] = Σ_t softmax_t(q_h · k_{t,h} / sqrt(head_dim)) · v_{t,h}
//   computed tile by tile: m' = max(m, max_j s_j); l' = l·e^{m-m'} + Σ_j e^{s_j-m'};
//   acc' = acc·e^{m-m'} + Σ_j e^{s_j-m'} v_j; out = acc / l.
// Layout: as attention.wgsl (same bindings, so the same bind group serves both): q [rows, C],
// k_cache / v_cache [t_max, kv_c] (head h reads KV head h / group), out [rows, C]; probs is not written (callers that want
// attention maps use attention.wgsl). head_dim ≤ MAX_PREFILL_HEAD_DIM (128, src/gpu/plan.rs).
// Dispatch: (n_head, ceil(rows / 16)). Workgroup 64: thread i works on query row i / 4 of the
// block; its four threads each score 4 of the tile's 16 positions and own a quarter of the
// head dimensions of the output.
// Bindings: `AttentionBindings`, uniform `AttentionDims` (src/gpu/kernels.rs, uniforms.rs).

const BQ: u32 = 16u;
const BK: u32 = 16u;
const MASKED: f32 = -3.0e38;

var<workgroup> q_tile: array<f32, BQ * MAX_PREFILL_HEAD_DIM>;
var<workgroup> k_tile: array<f32, BK * MAX_PREFILL_HEAD_DIM>;
var<workgroup> v_tile: array<f32, BK * MAX_PREFILL_HEAD_DIM>;
var<workgroup> s_tile: array<f32, 256>;    // [BQ][BK]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let C = dims.c;
    let hd = dims.head_dim;
    let col = wg.x * hd;
    let kv_col = (wg.x / dims.group) * hd;
    let KV = dims.kv_c;
    let r0 = wg.y * BQ;
    let row = li / 4u;
    let quarter = li % 4u;
    let live = r0 + row < step.rows;
    let pos = step.past + r0 + row;
    let last_pos = step.past + min(r0 + BQ, step.rows) - 1u;

    for (var i = li; i < BQ * hd; i += 64u) {
        let r = r0 + i / hd;
        var v = 0.0;
        if (r < step.rows) { v = q[r * C + col + i % hd]; }
        q_tile[(i / hd) * MAX_PREFILL_HEAD_DIM + i % hd] = v;
    }
    let per = (hd + 3u) / 4u;
    let d0 = quarter * per;
    let d1 = min(hd, d0 + per);
    var m = MASKED;
    var l = 0.0;
    var acc: array<f32, 32>;

    for (var t0 = 0u; t0 <= last_pos; t0 += BK) {
        workgroupBarrier();
        for (var i = li; i < BK * hd; i += 64u) {
            let t = t0 + i / hd;
            let at = (i / hd) * MAX_PREFILL_HEAD_DIM + i % hd;
            if (t <= last_pos) {
                k_tile[at] = k_cache[t * KV + kv_col + i % hd];
                v_tile[at] = v_cache[t * KV + kv_col + i % hd];
            }
        }
        workgroupBarrier();
        for (var jj = 0u; jj < 4u; jj++) {
            let j = quarter * 4u + jj;
            var s = MASKED;
            if (live && t0 + j <= pos) {
                s = 0.0;
                for (var d = 0u; d < hd; d++) { s += q_tile[row * MAX_PREFILL_HEAD_DIM + d] * k_tile[j * MAX_PREFILL_HEAD_DIM + d]; }
                s *= dims.scale;
            }
            s_tile[row * BK + j] = s;
        }
        workgroupBarrier();
        var tile_max = m;
        for (var j = 0u; j < BK; j++) { tile_max = max(tile_max, s_tile[row * BK + j]); }
        let correction = exp(m - tile_max);
        l *= correction;
        for (var d = d0; d < d1; d++) { acc[d - d0] *= correction; }
        for (var j = 0u; j < BK; j++) {
            let s = s_tile[row * BK + j];
            if (s > 0.5 * MASKED) {
                let p = exp(s - tile_max);
                l += p;
                for (var d = d0; d < d1; d++) { acc[d - d0] += p * v_tile[j * MAX_PREFILL_HEAD_DIM + d]; }
            }
        }
        m = tile_max;
    }
    if (live) {
        for (var d = d0; d < d1; d++) { out[(r0 + row) * C + col + d] = acc[d - d0] / l; }
    }
}
