// matvec.wgsl — decode GEMV (and, on software adapters, prefill one row per workgroup row),
// with an optional fused LayerNorm prologue and a fused epilogue.
//
// Math, for each row r < step.rows and column n < N:
//   x̂[r]      = ln = 1 (LayerNorm): (x[r] - mean(x[r])) / sqrt(var(x[r]) + eps) * ln_g + ln_b_or_rope
//               ln = 2 (RMSNorm):   x[r] / sqrt(mean(x[r]²) + eps) * ln_g
//               ln = 0:             x[r]
//   y[r, n]   = Σ_k x̂[r, k] · W[k, n] + bias[n], stored by the epilogue dims.mode
//               (linear_epilogue.wgsl: plain, GELU, residual add, SwiGLU, or q | k | v with KV
//               append, rotary or not)
//
// Layout: x [rows, K] f32; W [K, N] row-major (HF Conv1D), read four columns at a time through
// w4(i) = W elements 4i..4i+3 (f32 as vec4, or f16 packed two per u32 and unpacked with
// unpack2x16float) by matvec_floats.wgsl, or N rows of GGML blocks (blocks.wgsl) decoded by
// matvec_blocks.wgsl — the sum over k (`column_sums`) is the weight format's; N % 4 == 0;
// bias [N], ln_g [K]; ln_b_or_rope: LayerNorm's shift [K], or
// with RMSNorm (which has none) the rotary table the QkvRope epilogue reads; out, k_cache,
// v_cache as the epilogue says. Bindings: `LinearBindings`, uniform `LinearDims` (src/gpu/kernels.rs, uniforms.rs).
//
// Dispatch: (ceil(N / 256), rows). Workgroup (64, KSPLIT): thread (tx, ty) owns columns
// 4·(64·wg.x + tx) .. +4 and sums k ≡ ty (mod KSPLIT); partial sums meet in workgroup memory.
// The input row is staged in workgroup memory (normalised there when ln ≠ 0) when K ≤ MAX_STAGED (4096;
// set by src/gpu/plan.rs, which refuses a normed row longer than that).
// KSPLIT = 1 (software adapters, where barriers are expensive) leaves three barriers per row.

override KSPLIT: u32 = 4u;
var<workgroup> xs: array<f32, MAX_STAGED>;
var<workgroup> part: array<vec4<f32>, 256>;
var<workgroup> total: f32;

// Sum of one value per thread, by thread 0 (two barriers; cheaper than a tree on software adapters).
fn workgroup_sum(v: f32, li: u32) -> f32 {
    part[li] = vec4(v, 0.0, 0.0, 0.0);
    workgroupBarrier();
    if (li == 0u) {
        var s = 0.0;
        for (var i = 0u; i < 64u * KSPLIT; i++) { s += part[i].x; }
        total = s;
    }
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64, KSPLIT)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let K = dims.k;
    let N = dims.n;
    let row = wg.y;
    let base = row * K;
    let nthreads = 64u * KSPLIT;
    let staged = K <= MAX_STAGED;
    if (staged) {
        for (var i = li; i < K; i += nthreads) { xs[i] = x[base + i]; }
        workgroupBarrier();
    }
    if (dims.ln == 1u) {
        // Two-pass mean and variance over the staged row (ln implies K = n_embd ≤ MAX_STAGED).
        var s = 0.0;
        for (var i = li; i < K; i += nthreads) { s += xs[i]; }
        let mean = workgroup_sum(s, li) / f32(K);
        var q = 0.0;
        for (var i = li; i < K; i += nthreads) { let d = xs[i] - mean; q += d * d; }
        let rstd = inverseSqrt(workgroup_sum(q, li) / f32(K) + dims.eps);
        for (var i = li; i < K; i += nthreads) { xs[i] = (xs[i] - mean) * rstd * ln_g[i] + ln_b_or_rope[i]; }
        workgroupBarrier();
    } else if (dims.ln == 2u) {
        var q = 0.0;
        for (var i = li; i < K; i += nthreads) { q += xs[i] * xs[i]; }
        let rrms = inverseSqrt(workgroup_sum(q, li) / f32(K) + dims.eps);
        for (var i = li; i < K; i += nthreads) { xs[i] = xs[i] * rrms * ln_g[i]; }
        workgroupBarrier();
    }

    let quad = wg.x * 64u + lid.x;
    let col = quad * 4u;
    var acc = vec4(0.0);
    if (col < N) { acc = column_sums(base, col, lid.y, KSPLIT, staged); }
    if (KSPLIT > 1u) {
        part[lid.y * 64u + lid.x] = acc;
        workgroupBarrier();
        if (lid.y != 0u) { return; }
        for (var j = 1u; j < KSPLIT; j++) { acc += part[j * 64u + lid.x]; }
    }
    if (col >= N) { return; }

    store(row, col, N, acc + vec4(bias[col], bias[col + 1u], bias[col + 2u], bias[col + 3u]));
}
