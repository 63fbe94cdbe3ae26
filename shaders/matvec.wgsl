// matvec.wgsl — decode GEMV (and, on software adapters, prefill one row per workgroup row),
// with an optional fused LayerNorm prologue and a fused epilogue.
//
// Math, for each row r < step.rows and column n < N:
//   x̂[r]      = ln ? (x[r] - mean(x[r])) / sqrt(var(x[r]) + eps) * ln_g + ln_b : x[r]
//   y[r, n]   = Σ_k x̂[r, k] · W[k, n] + bias[n]
//   mode 0: out[r, n]  = y                 (plain)
//   mode 1: out[r, n]  = gelu_tanh(y)      (MLP up-projection)
//   mode 2: out[r, n] += y                 (projection + residual add, out = residual stream)
//   mode 3: q | k | v split of c_attn (N = 3C): n < C → out[r, n] (q);
//           n < 2C → k_cache[past + r, n - C];  else v_cache[past + r, n - 2C]  (KV-cache append)
//
// Layout: x [rows, K] f32; W [K, N] row-major (HF Conv1D), read four columns at a time through
// w4(i) = W elements 4i..4i+3 (f32 as vec4, or f16 packed two per u32 and unpacked with
// unpack2x16float), so N % 4 == 0; bias [N], ln_g/ln_b [K]; out [rows, N] (mode 3: [rows, C]);
// k_cache/v_cache [n_positions, C] of this layer.
//
// Dispatch: (ceil(N / 256), rows). Workgroup (64, KSPLIT): thread (tx, ty) owns columns
// 4·(64·wg.x + tx) .. +4 and sums k ≡ ty (mod KSPLIT); partial sums meet in workgroup memory.
// The input row is staged in workgroup memory (normalised there when ln = 1) when K ≤ 4096.
// KSPLIT = 1 (software adapters, where barriers are expensive) leaves three barriers per row.

struct Step { rows: u32, past: u32, logit_rows: u32, _pad: u32 }
struct Dims { k: u32, n: u32, mode: u32, ln: u32, eps: f32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> dims: Dims;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: WEIGHT_ARRAY;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> ln_g: array<f32>;
@group(0) @binding(6) var<storage, read> ln_b: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(9) var<storage, read_write> v_cache: array<f32>;

fn w4(i: u32) -> vec4<f32> { return WEIGHT_LOAD; }

override KSPLIT: u32 = 4u;
const MAX_STAGED: u32 = 4096u;
var<workgroup> xs: array<f32, MAX_STAGED>;
var<workgroup> part: array<vec4<f32>, 256>;
var<workgroup> total: f32;

fn gelu_tanh(u: vec4<f32>) -> vec4<f32> {
    // tanh saturates long before ±15; clamping keeps tanh's exp() finite on every backend.
    let inner = clamp(0.7978846 * (u + 0.044715 * u * u * u), vec4(-15.0), vec4(15.0));
    return 0.5 * u * (1.0 + tanh(inner));
}

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
        for (var i = li; i < K; i += nthreads) { xs[i] = (xs[i] - mean) * rstd * ln_g[i] + ln_b[i]; }
        workgroupBarrier();
    }

    let quad = wg.x * 64u + lid.x;
    let col = quad * 4u;
    let nq = N / 4u;
    var acc = vec4(0.0);
    if (col < N) {
        for (var k = lid.y; k < K; k += KSPLIT) {
            var xv: f32;
            if (staged) { xv = xs[k]; } else { xv = x[base + k]; }
            acc += xv * w4(k * nq + quad);
        }
    }
    if (KSPLIT > 1u) {
        part[lid.y * 64u + lid.x] = acc;
        workgroupBarrier();
        if (lid.y != 0u) { return; }
        for (var j = 1u; j < KSPLIT; j++) { acc += part[j * 64u + lid.x]; }
    }
    if (col >= N) { return; }

    let y = acc + vec4(bias[col], bias[col + 1u], bias[col + 2u], bias[col + 3u]);
    switch dims.mode {
        case 0u: { for (var j = 0u; j < 4u; j++) { out[row * N + col + j] = y[j]; } }
        case 1u: { let g = gelu_tanh(y); for (var j = 0u; j < 4u; j++) { out[row * N + col + j] = g[j]; } }
        case 2u: { for (var j = 0u; j < 4u; j++) { out[row * N + col + j] += y[j]; } }
        default: {
            let C = N / 3u;
            let pos = step.past + row;
            for (var j = 0u; j < 4u; j++) {
                let n = col + j;
                if (n < C) { out[row * C + n] = y[j]; }
                else if (n < 2u * C) { k_cache[pos * C + n - C] = y[j]; }
                else { v_cache[pos * C + n - 2u * C] = y[j]; }
            }
        }
    }
}
