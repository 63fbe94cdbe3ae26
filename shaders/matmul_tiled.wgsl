// matmul_tiled.wgsl — prefill GEMM through workgroup memory, with the same epilogues as matvec.
//
// Math, for r < step.rows, n < N:  y[r, n] = Σ_k x[r, k] · W[k, n] + bias[n], stored by the
// epilogue dims.mode (linear_epilogue.wgsl, shared with matvec.wgsl).
// (No LayerNorm prologue here: prefill on GPUs runs layernorm.wgsl first; dims.ln must be 0.)
//
// Layout: x [rows, K] f32; W read as w_kn4(k, n) = W[k, n .. n + 4]: [K, N] row-major f32 or
// f16 packed in u32, or rows of GGML blocks (blocks.wgsl) decoded as loaded; N % 4 == 0; bias [N]; out and the caches as the epilogue says.
// Bindings: `LinearBindings`, uniform `LinearDims` (src/gpu/kernels.rs, uniforms.rs).
//
// Dispatch: (ceil(N / 64), ceil(rows / 64)). Workgroup 16 × 16: the workgroup computes a 64 × 64
// output tile, stepping through K in slices of 16 held in workgroup memory (A: 64 × 16 floats,
// B: 16 × 64 as vec4); thread (tx, ty) accumulates rows 4·ty .. +4 × columns 4·tx .. +4.
// Real GPUs reward this reuse; software adapters do not (they use matvec.wgsl for prefill).

var<workgroup> a_tile: array<f32, 1024>;        // [64 rows][16 k]
var<workgroup> b_tile: array<vec4<f32>, 256>;   // [16 k][16 column quads]

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
        if (bk < K && bc < N) { bv = w_kn4(bk, bc); }
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
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y * 4u + i;
        if (row >= rows) { break; }
        store(row, col, N, acc[i] + b);
    }
}
