// matmul_tiled.wgsl — prefill GEMM through workgroup memory, with the same epilogues as matvec.
//
// Math, for r < step.rows, n < N:  y[r, n] = Σ_k x[r, k] · W[k, n] + bias[n], then
//   mode 0: out = y;  mode 1: out = gelu_tanh(y);  mode 2: out += y (residual);
//   mode 3: q | k | v split into out (q, [rows, C]) and this layer's k_cache / v_cache at
//           position past + r (N = 3C).
// (No LayerNorm prologue here: prefill on GPUs runs layernorm.wgsl first; dims.ln must be 0.)
//
// Layout: x [rows, K] f32; W [K, N] row-major read as w4(i) = elements 4i..4i+3 (f32, or f16
// packed in u32), N % 4 == 0; bias [N]; out [rows, N]; caches [n_positions, C].
//
// Dispatch: (ceil(N / 64), ceil(rows / 64)). Workgroup 16 × 16: the workgroup computes a 64 × 64
// output tile, stepping through K in slices of 16 held in workgroup memory (A: 64 × 16 floats,
// B: 16 × 64 as vec4); thread (tx, ty) accumulates rows 4·ty .. +4 × columns 4·tx .. +4.
// Real GPUs reward this reuse; software adapters do not (they use matvec.wgsl for prefill).

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

var<workgroup> a_tile: array<f32, 1024>;        // [64 rows][16 k]
var<workgroup> b_tile: array<vec4<f32>, 256>;   // [16 k][16 column quads]

fn gelu_tanh(u: vec4<f32>) -> vec4<f32> {
    let inner = clamp(0.7978846 * (u + 0.044715 * u * u * u), vec4(-15.0), vec4(15.0));
    return 0.5 * u * (1.0 + tanh(inner));
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
    let K = dims.k;
    let N = dims.n;
    let rows = step.rows;
    let row0 = wg.y * 64u;
    let col0 = wg.x * 64u;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < K; k0 += 16u) {
        for (var i = 0u; i < 4u; i++) {
            let idx = tid + i * 256u;
            let r = row0 + idx / 16u;
            let k = k0 + idx % 16u;
            var v = 0.0;
            if (r < rows && k < K) { v = x[r * K + k]; }
            a_tile[idx] = v;
        }
        let bk = k0 + tid / 16u;
        let bc = col0 + (tid % 16u) * 4u;
        var bv = vec4(0.0);
        if (bk < K && bc < N) { bv = w4((bk * N + bc) / 4u); }
        b_tile[tid] = bv;
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            let b = b_tile[kk * 16u + lid.x];
            for (var i = 0u; i < 4u; i++) {
                acc[i] += a_tile[(lid.y * 4u + i) * 16u + kk] * b;
            }
        }
        workgroupBarrier();
    }

    let col = col0 + lid.x * 4u;
    if (col >= N) { return; }
    let b = vec4(bias[col], bias[col + 1u], bias[col + 2u], bias[col + 3u]);
    let C = N / 3u;
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y * 4u + i;
        if (row >= rows) { break; }
        let y = acc[i] + b;
        switch dims.mode {
            case 0u: { for (var j = 0u; j < 4u; j++) { out[row * N + col + j] = y[j]; } }
            case 1u: { let g = gelu_tanh(y); for (var j = 0u; j < 4u; j++) { out[row * N + col + j] = g[j]; } }
            case 2u: { for (var j = 0u; j < 4u; j++) { out[row * N + col + j] += y[j]; } }
            default: {
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
}
